//! Per-round figures and what we derive from them: the median and the
//! veloq/peer ratio.
//!
//! A [`Figure`] is one measured quantity (say "echo req/s, 64 conns") with
//! one [`Series`] of per-round values for each runtime. Rounds run the
//! contenders alternately (A B A B …), so round *i* of every series was
//! taken under roughly the same machine conditions.

/// Which direction of a figure is the good one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Larger is better (throughput).
    Higher,
    /// Smaller is better (latency, CPU, allocations).
    Lower,
}

/// The per-round values one runtime produced for one figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Runtime name as shown in tables ("veloq", "tokio", …).
    pub runtime: String,
    /// One value per round, in round order.
    pub rounds: Vec<f64>,
}

impl Series {
    /// The median of the rounds (`NaN` when there are none).
    pub fn median(&self) -> f64 {
        median(&self.rounds)
    }
}

/// One measured quantity across runtimes.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What was measured, e.g. "echo req/s, 64 conns".
    pub name: String,
    /// Unit shown next to the values, e.g. "req/s", "µs".
    pub unit: String,
    /// Which direction is better.
    pub better: Better,
    /// One series per runtime; the first is the one ratios are taken of.
    pub series: Vec<Series>,
}

impl Figure {
    /// A figure with no series yet.
    pub fn new(name: impl Into<String>, unit: impl Into<String>, better: Better) -> Self {
        Figure {
            name: name.into(),
            unit: unit.into(),
            better,
            series: Vec::new(),
        }
    }

    /// Appends one round's value for `runtime`, creating its series on
    /// first use (series keep the order in which runtimes first appear).
    pub fn push(&mut self, runtime: &str, value: f64) {
        match self.series.iter_mut().find(|s| s.runtime == runtime) {
            Some(s) => s.rounds.push(value),
            None => self.series.push(Series {
                runtime: runtime.to_string(),
                rounds: vec![value],
            }),
        }
    }

    /// The series of `runtime`, if measured.
    pub fn get(&self, runtime: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.runtime == runtime)
    }

    /// median(subject) / median(peer), or `None` when either is missing.
    pub fn ratio(&self, subject: &str, peer: &str) -> Option<f64> {
        Some(ratio(self.get(subject)?.median(), self.get(peer)?.median()))
    }
}

/// The median of `values`: the middle one, or the mean of the two middle
/// ones for an even count; `NaN` for none. NaNs sort last.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `a / b`, `NaN` when `b` is zero (a ratio to nothing is not infinite
/// speed, it is no measurement), and 1.0 when both are zero (equal).
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        if a == 0.0 {
            1.0
        } else {
            f64::NAN
        }
    } else {
        a / b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn median_sorts_nan_last() {
        assert_eq!(median(&[f64::NAN, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn ratio_handles_zero() {
        assert_eq!(ratio(3.0, 2.0), 1.5);
        assert_eq!(ratio(0.0, 0.0), 1.0);
        assert!(ratio(1.0, 0.0).is_nan());
    }

    #[test]
    fn figure_groups_rounds_by_runtime_in_first_seen_order() {
        let mut f = Figure::new("req/s", "req/s", Better::Higher);
        for round in 0..3 {
            f.push("veloq", 100.0 + round as f64);
            f.push("tokio", 80.0);
        }
        assert_eq!(f.series.len(), 2);
        assert_eq!(f.series[0].runtime, "veloq");
        assert_eq!(f.series[0].rounds, vec![100.0, 101.0, 102.0]);
        assert_eq!(f.ratio("veloq", "tokio"), Some(101.0 / 80.0));
        assert_eq!(f.ratio("veloq", "monoio"), None);
    }
}

/// The value at quantile `q` (0..=1) of an ascending slice, nearest rank;
/// `NaN` when empty.
// Used by the timers scenario, which is Linux-only.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod percentile_tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
