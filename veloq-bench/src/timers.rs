//! The timer scenario: 1,000,000 sleeps with random deadlines up to 1 s
//! (the same pseudo-random deadlines for every runtime), half of them
//! cancelled. Measured: ns per insert (creating the boxed sleep and its
//! first poll, which registers it), ns per cancel (dropping it), and how
//! late the other half fire.
//!
//! Lateness counts only sleeps due after all of them were handed to
//! their own tasks; earlier deadlines pass while the set-up still runs.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::file::XorShift;
use crate::opts::Opts;
use crate::progress::Progress;
use crate::report::Report;
use crate::stats::{percentile, Better, Figure};

/// The contenders.
pub const CONTENDERS: [&str; 2] = ["veloq", "tokio"];

/// One run's figures.
#[derive(Debug, Clone, Copy)]
pub struct TimerSample {
    /// ns per insert.
    pub insert_ns: f64,
    /// ns per cancel.
    pub cancel_ns: f64,
    /// Lateness percentiles (µs) of the sleeps that fired.
    pub late_p50_us: f64,
    /// 99th percentile lateness, µs.
    pub late_p99_us: f64,
    /// Worst lateness, µs.
    pub late_max_us: f64,
}

/// How long after the last deadline the lateness is collected.
const SETTLE: Duration = Duration::from_millis(200);

thread_local! {
    /// (deadline, fired) of every sleep that fired, on this thread's
    /// runtime (both contenders run their tasks on the calling thread).
    static FIRED: RefCell<Vec<(Instant, Instant)>> = const { RefCell::new(Vec::new()) };
}

fn record(deadline: Instant, fired: Instant) {
    FIRED.with(|f| f.borrow_mut().push((deadline, fired)));
}

/// Lateness in µs of the recorded sleeps due after `ready`; clears the record.
fn take_lateness(ready: Instant) -> Vec<f64> {
    FIRED.with(|f| {
        f.borrow_mut()
            .drain(..)
            .filter(|(d, _)| *d > ready)
            .map(|(d, t)| t.saturating_duration_since(d).as_nanos() as f64 / 1000.0)
            .collect()
    })
}

/// `n` deadline offsets, uniform in 1 ms ..= 1 s.
pub fn offsets(n: usize) -> Vec<Duration> {
    let mut rng = XorShift::new(7);
    (0..n)
        .map(|_| Duration::from_micros(1_000 + rng.next_u64() % 999_001))
        .collect()
}

/// Sorted lateness in µs → sample.
fn sample(insert_ns: f64, cancel_ns: f64, mut late_us: Vec<f64>) -> TimerSample {
    late_us.sort_by(|a, b| a.total_cmp(b));
    TimerSample {
        insert_ns,
        cancel_ns,
        late_p50_us: percentile(&late_us, 0.5),
        late_p99_us: percentile(&late_us, 0.99),
        late_max_us: percentile(&late_us, 1.0),
    }
}

/// Splits boxed sleeps into (kept, cancelled): every odd one is cancelled.
fn halves<T>(all: Vec<T>) -> (Vec<T>, Vec<T>) {
    let mut keep = Vec::with_capacity(all.len() / 2 + 1);
    let mut cancel = Vec::with_capacity(all.len() / 2 + 1);
    for (i, s) in all.into_iter().enumerate() {
        if i % 2 == 0 {
            keep.push(s)
        } else {
            cancel.push(s)
        }
    }
    (keep, cancel)
}

fn run_veloq(offs: &[Duration]) -> TimerSample {
    use veloq::time::{sleep_until, Sleep};
    veloq::block_on(async {
        let mut all: Vec<Pin<Box<Sleep>>> = Vec::with_capacity(offs.len());
        let t0 = Instant::now();
        std::future::poll_fn(|cx| {
            for off in offs {
                let mut s = Box::pin(sleep_until(Instant::now() + *off));
                let _ = s.as_mut().poll(cx);
                all.push(s);
            }
            Poll::Ready(())
        })
        .await;
        let insert_ns = t0.elapsed().as_nanos() as f64 / offs.len() as f64;
        let (keep, cancel) = halves(all);
        let t1 = Instant::now();
        let cancelled = cancel.len();
        drop(cancel);
        let cancel_ns = t1.elapsed().as_nanos() as f64 / cancelled as f64;
        let last = keep.iter().map(|s| s.deadline()).max();
        for s in keep {
            // Detached: the task records its own lateness.
            drop(veloq::spawn(async move {
                let deadline = s.deadline();
                s.await;
                record(deadline, Instant::now());
            }));
        }
        let ready = Instant::now();
        if let Some(last) = last {
            veloq::time::sleep_until(last + SETTLE).await;
        }
        let late = take_lateness(ready);
        sample(insert_ns, cancel_ns, late)
    })
}

fn run_tokio(offs: &[Duration]) -> TimerSample {
    use tokio::time::{sleep_until, Sleep};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let mut all: Vec<Pin<Box<Sleep>>> = Vec::with_capacity(offs.len());
        let t0 = Instant::now();
        std::future::poll_fn(|cx| {
            for off in offs {
                let d = tokio::time::Instant::now() + *off;
                let mut s = Box::pin(sleep_until(d));
                let _ = s.as_mut().poll(cx);
                all.push(s);
            }
            Poll::Ready(())
        })
        .await;
        let insert_ns = t0.elapsed().as_nanos() as f64 / offs.len() as f64;
        let (keep, cancel) = halves(all);
        let t1 = Instant::now();
        let cancelled = cancel.len();
        drop(cancel);
        let cancel_ns = t1.elapsed().as_nanos() as f64 / cancelled as f64;
        let last = keep.iter().map(|s| s.deadline()).max();
        for s in keep {
            drop(tokio::spawn(async move {
                let deadline = s.deadline().into_std();
                s.await;
                record(deadline, Instant::now());
            }));
        }
        let ready = Instant::now();
        if let Some(last) = last {
            tokio::time::sleep_until(last + SETTLE).await;
        }
        let late = take_lateness(ready);
        sample(insert_ns, cancel_ns, late)
    })
}

/// Runs the whole scenario.
pub fn run(o: &Opts) -> Result<Report, String> {
    let offs = offsets(o.timers);
    let mut progress = Progress::new("timers", o.rounds * CONTENDERS.len());
    let mut f_ins = Figure::new("insert", "ns", Better::Lower);
    let mut f_can = Figure::new("cancel", "ns", Better::Lower);
    let mut f_sum = Figure::new("insert + cancel", "ns", Better::Lower);
    let mut f_p50 = Figure::new("lateness p50", "µs", Better::Lower);
    let mut f_p99 = Figure::new("lateness p99", "µs", Better::Lower);
    let mut f_max = Figure::new("lateness max", "µs", Better::Lower);
    for round in 1..=o.rounds {
        for rt in CONTENDERS {
            progress.step(&format!("round {round}, {rt}"));
            let s = if rt == "veloq" {
                run_veloq(&offs)
            } else {
                run_tokio(&offs)
            };
            f_ins.push(rt, s.insert_ns);
            f_can.push(rt, s.cancel_ns);
            f_sum.push(rt, s.insert_ns + s.cancel_ns);
            f_p50.push(rt, s.late_p50_us);
            f_p99.push(rt, s.late_p99_us);
            f_max.push(rt, s.late_max_us);
        }
    }
    progress.finish();
    Ok(Report {
        title: format!("timers: {} sleeps, random deadlines 1 ms–1 s, half cancelled", o.timers),
        notes: vec![
            "insert = boxed sleep creation + first poll (registration); cancel = drop; both include the Box".into(),
            "lateness: fire time minus deadline, for sleeps due after set-up ended; each kept sleep is awaited by its own detached task".into(),
        ],
        figures: vec![f_sum, f_ins, f_can, f_p50, f_p99, f_max],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_in_range_and_repeat() {
        let a = offsets(10_000);
        assert!(a
            .iter()
            .all(|d| *d >= Duration::from_millis(1) && *d <= Duration::from_secs(1)));
        assert_eq!(a, offsets(10_000));
    }

    #[test]
    fn halves_alternate() {
        let (k, c) = halves((0..5).collect());
        assert_eq!(k, vec![0, 2, 4]);
        assert_eq!(c, vec![1, 3]);
    }
}
