//! Property tests: the timer wheel against a `BTreeMap` model.
//!
//! A random script of inserts, polls, removes (of live and of stale keys)
//! and advances of the clock (sub-millisecond steps up to jumps of years,
//! and "sleep until `next_deadline`" as a driver does) runs against the
//! wheel and against a model that knows each timer's deadline. After every
//! step:
//!
//! - nothing fires early: a timer is woken only once the clock the wheel
//!   was last told (`expire(now)`) is at or past its deadline;
//! - nothing is lost: every timer whose deadline that clock has reached has
//!   been woken, exactly once;
//! - `next_deadline` is `None` exactly when no timer is pending, and never
//!   later than the earliest pending deadline (rounded up to the tick);
//! - `len` matches the model, `poll` is `Ready` exactly for fired timers,
//!   and a stale key (polled to completion, or removed) never touches the
//!   timer that reuses its entry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::{TimerKey, TimerWheel};

/// Records its timer's id in a shared log when woken.
struct LogWaker {
    id: usize,
    log: Arc<Mutex<Vec<usize>>>,
}

impl Wake for LogWaker {
    fn wake(self: Arc<Self>) {
        self.log.lock().unwrap().push(self.id);
    }
}

/// How far a step moves the clock (or where a deadline lies from now).
fn span() -> impl Strategy<Value = Duration> {
    prop_oneof![
        // Within a tick or two: rounding at tick edges.
        4 => (0u64..2_500_000).prop_map(Duration::from_nanos),
        // Level 0 and 1.
        4 => (0u64..5_000).prop_map(Duration::from_millis),
        // Levels 2 to 4.
        2 => (0u64..2_000_000_000).prop_map(Duration::from_millis),
        // Up to ~3 years: the top level and the overflow list.
        1 => (0u64..100_000_000).prop_map(Duration::from_secs),
        // Exact powers of 64 ms: level boundaries.
        1 => (0u32..5).prop_map(|n| Duration::from_millis(64u64.pow(n + 1))),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    /// A timer at `now + span`.
    Insert(Duration),
    /// A timer at `now - span` (already due, or due at the next expire).
    InsertPast(Duration),
    /// Poll timer number `n` (modulo the timers made so far).
    Poll(usize),
    /// Remove timer number `n`.
    Remove(usize),
    /// Move the clock by `span` and expire.
    Advance(Duration),
    /// Move the clock to `next_deadline` (if later than now) and expire,
    /// as a driver's wait does.
    ToNextDeadline,
    /// Move the clock without telling the wheel.
    Drift(Duration),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => span().prop_map(Step::Insert),
        1 => span().prop_map(Step::InsertPast),
        3 => any::<usize>().prop_map(Step::Poll),
        2 => any::<usize>().prop_map(Step::Remove),
        4 => span().prop_map(Step::Advance),
        2 => Just(Step::ToNextDeadline),
        1 => span().prop_map(Step::Drift),
    ]
}

/// What the model knows of one timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    /// Inserted, not fired: due at this tick.
    Pending(u64),
    /// Fired (woken), not polled yet.
    Fired,
    /// Polled to `Ready` or removed: its key is stale.
    Gone,
}

struct Harness {
    t0: Instant,
    /// Clock offset from `t0`.
    now: Duration,
    /// The tick the wheel has been told about: `expire(t0 + now)` of the
    /// last expire, rounded down.
    told: u64,
    wheel: TimerWheel,
    log: Arc<Mutex<Vec<usize>>>,
    timers: Vec<(TimerKey, Waker, Model)>,
    /// Pending timers by (tick, id): the model's wheel.
    pending: BTreeMap<(u64, usize), ()>,
    woken: BTreeSet<usize>,
}

/// The first whole millisecond at or after `d` (the wheel rounds up).
fn tick_up(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000) as u64
}

impl Harness {
    fn new() -> Self {
        let t0 = Instant::now();
        Harness {
            t0,
            now: Duration::ZERO,
            told: 0,
            wheel: TimerWheel::new(t0),
            log: Arc::new(Mutex::new(Vec::new())),
            timers: Vec::new(),
            pending: BTreeMap::new(),
            woken: BTreeSet::new(),
        }
    }

    fn insert(&mut self, at: Duration) -> Result<(), TestCaseError> {
        let id = self.timers.len();
        let waker = Waker::from(Arc::new(LogWaker {
            id,
            log: self.log.clone(),
        }));
        let key = self.wheel.insert(self.t0 + at, &waker);
        let tick = tick_up(at);
        let model = if tick <= self.told {
            // Already passed: woken before insert returns.
            Model::Fired
        } else {
            self.pending.insert((tick, id), ());
            Model::Pending(tick)
        };
        self.timers.push((key, waker, model));
        let fired = [id];
        self.check_wakes(if model == Model::Fired {
            &fired[..]
        } else {
            &[]
        })
    }

    fn expire(&mut self) -> Result<(), TestCaseError> {
        let now_tick = self.now.as_millis() as u64;
        self.wheel.expire(self.t0 + self.now);
        self.told = self.told.max(now_tick);
        // Everything due at or before the told tick fires, nothing else.
        let due: Vec<(u64, usize)> = self
            .pending
            .range(..(self.told + 1, 0))
            .map(|(&k, _)| k)
            .collect();
        let mut ids = Vec::new();
        for (tick, id) in due {
            self.pending.remove(&(tick, id));
            self.timers[id].2 = Model::Fired;
            ids.push(id);
        }
        self.check_wakes(&ids)
    }

    /// The log must hold exactly `ids` (in any order), each new.
    fn check_wakes(&mut self, ids: &[usize]) -> Result<(), TestCaseError> {
        let mut got = std::mem::take(&mut *self.log.lock().unwrap());
        got.sort_unstable();
        let mut want = ids.to_vec();
        want.sort_unstable();
        prop_assert_eq!(&got, &want, "woken timers (now {:?})", self.now);
        for id in got {
            prop_assert!(self.woken.insert(id), "timer {} woken twice", id);
        }
        Ok(())
    }

    fn pick(&self, n: usize) -> Option<usize> {
        (!self.timers.is_empty()).then(|| n % self.timers.len())
    }

    fn run(&mut self, step: Step) -> Result<(), TestCaseError> {
        match step {
            Step::Insert(d) => self.insert(self.now + d)?,
            Step::InsertPast(d) => self.insert(self.now.saturating_sub(d))?,
            Step::Poll(n) => {
                let Some(id) = self.pick(n) else {
                    return Ok(());
                };
                let (key, waker, model) = self.timers[id].clone();
                let ready = self
                    .wheel
                    .poll(key, &mut Context::from_waker(&waker))
                    .is_ready();
                match model {
                    Model::Pending(_) => prop_assert!(!ready, "timer {} ready early", id),
                    Model::Fired | Model::Gone => {
                        prop_assert!(ready, "fired/stale timer {} not ready", id);
                        self.timers[id].2 = Model::Gone;
                    }
                }
                self.check_wakes(&[])?;
            }
            Step::Remove(n) => {
                let Some(id) = self.pick(n) else {
                    return Ok(());
                };
                let (key, _, model) = self.timers[id].clone();
                self.wheel.remove(key);
                if let Model::Pending(tick) = model {
                    self.pending.remove(&(tick, id));
                }
                self.timers[id].2 = Model::Gone;
                self.check_wakes(&[])?;
            }
            Step::Advance(d) => {
                self.now += d;
                self.expire()?;
            }
            Step::ToNextDeadline => {
                if let Some(at) = self.wheel.next_deadline() {
                    let at = at.duration_since(self.t0);
                    self.now = self.now.max(at);
                }
                self.expire()?;
            }
            Step::Drift(d) => self.now += d,
        }
        self.check_invariants()
    }

    fn check_invariants(&self) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.wheel.len(), self.pending.len());
        prop_assert_eq!(self.wheel.is_empty(), self.pending.is_empty());
        let next = self.wheel.next_deadline();
        match self.pending.keys().next() {
            None => prop_assert_eq!(next, None),
            Some(&(earliest, id)) => {
                let next = next.expect("a timer is pending, so there is a next deadline");
                let next_tick = tick_up(next.duration_since(self.t0));
                prop_assert!(
                    next_tick <= earliest,
                    "next_deadline tick {} after timer {} due at {}",
                    next_tick,
                    id,
                    earliest
                );
                // And it lies ahead of what was processed: waiting for it
                // makes progress.
                prop_assert!(
                    next_tick > self.told,
                    "next_deadline {} not ahead of {}",
                    next_tick,
                    self.told
                );
            }
        }
        Ok(())
    }

    /// Runs the clock until every pending timer fires, as a driver would:
    /// wait for `next_deadline`, expire, repeat. Each cascade step brings
    /// the earliest timer one level down, so few rounds suffice.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        let mut rounds = 0;
        while !self.pending.is_empty() {
            let before = self.pending.len();
            self.run(Step::ToNextDeadline)?;
            if self.pending.len() < before {
                rounds = 0;
            } else {
                rounds += 1;
                prop_assert!(rounds <= 8, "no timer fired after {} waits", rounds);
            }
        }
        prop_assert!(self.wheel.next_deadline().is_none());
        for (id, (_, _, model)) in self.timers.iter().enumerate() {
            prop_assert!(!matches!(model, Model::Pending(_)), "timer {} lost", id);
        }
        Ok(())
    }
}

/// `linux` cases per test (fewer under Wine, where every case is slower);
/// `PROPTEST_CASES` overrides (the ASan leg sets it lower).
fn config(linux: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if cfg!(windows) { linux / 5 } else { linux });
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn wheel_matches_model(steps in prop::collection::vec(step(), 1..200)) {
        let mut h = Harness::new();
        for step in steps {
            h.run(step)?;
        }
        h.drain()?;
    }

    /// Many timers at once, then the clock in a few big jumps: every
    /// timer fires in the jump that passes its deadline.
    #[test]
    fn jumps_fire_everything_passed(
        deadlines in prop::collection::vec(span(), 1..300),
        jumps in prop::collection::vec(span(), 1..6),
    ) {
        let mut h = Harness::new();
        for d in deadlines {
            h.run(Step::Insert(d))?;
        }
        for j in jumps {
            h.run(Step::Advance(j))?;
        }
        h.drain()?;
    }
}
