//! A hand-written SVG bar chart of a report's medians: one small panel
//! per figure, one bar per runtime, bars scaled to the largest median in
//! that panel (figures have different units, so panels never share a
//! scale). Each bar is labelled with its median and veloq's ratio to it.

use std::fmt::Write as _;

use crate::report::{fmt_ratio, fmt_value, Report, SUBJECT};
use crate::stats::Better;

const WIDTH: f64 = 760.0;
const LABEL_W: f64 = 90.0;
const BAR_MAX: f64 = 430.0;
const ROW_H: f64 = 18.0;
const TITLE_H: f64 = 22.0;
const GAP: f64 = 14.0;

/// Bar colour for a runtime (stable per name, veloq stands out).
fn colour(runtime: &str) -> &'static str {
    match runtime {
        "veloq" => "#d9480f",
        "tokio" => "#1c7ed6",
        "monoio" => "#37b24d",
        "compio" => "#7048e8",
        "pread" | "seek_read" => "#868e96",
        _ => "#495057",
    }
}

/// Escapes the five XML special characters.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The report's medians as an SVG document.
pub fn to_svg(report: &Report) -> String {
    let rows: usize = report.figures.iter().map(|f| f.series.len()).sum();
    let height = 30.0 + report.figures.len() as f64 * (TITLE_H + GAP) + rows as f64 * ROW_H + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="8" y="20" font-size="15" font-weight="bold">{}</text>"#,
        esc(&report.title)
    );
    let mut y = 30.0;
    for f in &report.figures {
        let arrow = match f.better {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
        };
        y += TITLE_H;
        let _ = writeln!(
            s,
            r#"<text x="8" y="{:.1}" font-weight="bold">{} ({}, {arrow})</text>"#,
            y - 6.0,
            esc(&f.name),
            esc(&f.unit)
        );
        let max = f
            .series
            .iter()
            .map(|x| x.median())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        for series in &f.series {
            let m = series.median();
            let w = if max > 0.0 && m.is_finite() {
                (m / max * BAR_MAX).max(1.0)
            } else {
                0.0
            };
            let label = if series.runtime == SUBJECT {
                fmt_value(m)
            } else {
                format!(
                    "{}  ({SUBJECT}/{} {})",
                    fmt_value(m),
                    series.runtime,
                    fmt_ratio(f.ratio(SUBJECT, &series.runtime))
                )
            };
            let _ = writeln!(
                s,
                r#"<text x="8" y="{:.1}">{}</text><rect x="{LABEL_W}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                y + 13.0,
                esc(&series.runtime),
                y + 2.0,
                ROW_H - 4.0,
                colour(&series.runtime),
                LABEL_W + w + 6.0,
                y + 13.0,
                esc(&label)
            );
            y += ROW_H;
        }
        y += GAP;
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Figure;

    #[test]
    fn svg_has_one_bar_per_series_scaled_to_the_largest() {
        let mut f = Figure::new("req/s <64>", "req/s", Better::Higher);
        f.push("veloq", 200.0);
        f.push("tokio", 100.0);
        let r = Report {
            title: "echo & co".into(),
            notes: vec![],
            figures: vec![f],
        };
        let svg = to_svg(&r);
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains(&format!(r#"width="{BAR_MAX:.1}""#)));
        assert!(svg.contains(&format!(r#"width="{:.1}""#, BAR_MAX / 2.0)));
        assert!(svg.contains("echo &amp; co"));
        assert!(svg.contains("req/s &lt;64&gt;"));
        assert!(svg.contains("veloq/tokio 2.00×"));
    }
}
