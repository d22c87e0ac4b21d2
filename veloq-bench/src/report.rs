//! Markdown rendering of a scenario's figures: a table of medians with
//! veloq/peer ratios, then every round's value, so a reader can see the
//! spread the median came from.

use std::fmt::Write as _;

use crate::stats::{Better, Figure};

/// Everything one scenario run writes out.
#[derive(Debug, Clone)]
pub struct Report {
    /// Heading, e.g. "echo".
    pub title: String,
    /// Free-form lines printed under the heading (command, machine, load).
    pub notes: Vec<String>,
    /// The measured figures.
    pub figures: Vec<Figure>,
}

/// The runtime ratios are taken of.
pub const SUBJECT: &str = "veloq";

impl Report {
    /// Every runtime that appears in any figure, in first-seen order.
    pub fn runtimes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in &self.figures {
            for s in &f.series {
                if !out.contains(&s.runtime) {
                    out.push(s.runtime.clone());
                }
            }
        }
        out
    }

    /// The whole report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "### {}\n", self.title);
        for n in &self.notes {
            let _ = writeln!(md, "- {n}");
        }
        if !self.notes.is_empty() {
            md.push('\n');
        }
        md.push_str(&self.medians_table());
        md.push('\n');
        md.push_str(&self.rounds_table());
        md
    }

    /// Medians per runtime and the veloq/peer ratio for each peer.
    pub fn medians_table(&self) -> String {
        let runtimes = self.runtimes();
        let peers: Vec<&String> = runtimes.iter().filter(|r| *r != SUBJECT).collect();
        let mut md = String::from("| figure | better |");
        for r in &runtimes {
            let _ = write!(md, " {r} |");
        }
        for p in &peers {
            let _ = write!(md, " {SUBJECT}/{p} |");
        }
        md.push_str("\n|---|---|");
        md.push_str(&"---:|".repeat(runtimes.len() + peers.len()));
        md.push('\n');
        for f in &self.figures {
            let better = match f.better {
                Better::Higher => "higher",
                Better::Lower => "lower",
            };
            let _ = write!(md, "| {} ({}) | {better} |", f.name, f.unit);
            for r in &runtimes {
                let v = f.get(r).map(|s| s.median());
                let _ = write!(md, " {} |", v.map_or("–".into(), fmt_value));
            }
            for p in &peers {
                let _ = write!(md, " {} |", fmt_ratio(f.ratio(SUBJECT, p)));
            }
            md.push('\n');
        }
        md
    }

    /// Every round's value, one row per figure and runtime.
    pub fn rounds_table(&self) -> String {
        let rounds = self
            .figures
            .iter()
            .flat_map(|f| f.series.iter().map(|s| s.rounds.len()))
            .max()
            .unwrap_or(0);
        let mut md = String::from("| figure | runtime |");
        for i in 1..=rounds {
            let _ = write!(md, " round {i} |");
        }
        md.push_str(" median |\n|---|---|");
        md.push_str(&"---:|".repeat(rounds + 1));
        md.push('\n');
        for f in &self.figures {
            for s in &f.series {
                let _ = write!(md, "| {} ({}) | {} |", f.name, f.unit, s.runtime);
                for i in 0..rounds {
                    let v = s.rounds.get(i).copied();
                    let _ = write!(md, " {} |", v.map_or("–".into(), fmt_value));
                }
                let _ = writeln!(md, " {} |", fmt_value(s.median()));
            }
        }
        md
    }
}

/// A value with as many digits as it deserves: none above 100, one
/// between 10 and 100, two below; thousands separated by commas.
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        group_thousands(v.round() as i64)
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio as "1.23×", "–" when unknown.
pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => format!("{r:.2}×"),
        _ => "–".into(),
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut f = Figure::new("echo, 64 conns", "req/s", Better::Higher);
        f.push("veloq", 300_000.0);
        f.push("tokio", 200_000.0);
        f.push("veloq", 310_000.0);
        f.push("tokio", 250_000.0);
        let mut g = Figure::new("CPU per request", "µs", Better::Lower);
        g.push("veloq", 3.0);
        g.push("tokio", 4.0);
        Report {
            title: "echo".into(),
            notes: vec!["machine: test".into()],
            figures: vec![f, g],
        }
    }

    #[test]
    fn values_are_formatted_by_magnitude() {
        assert_eq!(fmt_value(1234567.4), "1,234,567");
        assert_eq!(fmt_value(-1234.0), "-1,234");
        assert_eq!(fmt_value(100.0), "100");
        assert_eq!(fmt_value(12.34), "12.3");
        assert_eq!(fmt_value(0.5), "0.50");
        assert_eq!(fmt_value(f64::NAN), "–");
        assert_eq!(fmt_ratio(Some(1.256)), "1.26×");
        assert_eq!(fmt_ratio(None), "–");
    }

    #[test]
    fn medians_table_has_a_ratio_column_per_peer() {
        let md = sample().medians_table();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| figure | better | veloq | tokio | veloq/tokio |"
        );
        assert_eq!(lines[1], "|---|---|---:|---:|---:|");
        // medians 305k / 225k = 1.36
        assert_eq!(
            lines[2],
            "| echo, 64 conns (req/s) | higher | 305,000 | 225,000 | 1.36× |"
        );
        assert_eq!(
            lines[3],
            "| CPU per request (µs) | lower | 3.00 | 4.00 | 0.75× |"
        );
    }

    #[test]
    fn rounds_table_pads_short_series() {
        let md = sample().rounds_table();
        assert!(md.starts_with("| figure | runtime | round 1 | round 2 | median |"));
        assert!(md.contains("| echo, 64 conns (req/s) | tokio | 200,000 | 250,000 | 225,000 |"));
        assert!(md.contains("| CPU per request (µs) | veloq | 3.00 | – | 3.00 |"));
    }

    #[test]
    fn markdown_has_heading_notes_and_both_tables() {
        let md = sample().to_markdown();
        assert!(md.starts_with("### echo\n\n- machine: test\n\n| figure"));
        assert_eq!(md.matches("| figure |").count(), 2);
    }
}
