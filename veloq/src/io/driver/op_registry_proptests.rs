//! Property tests: `StableSlab` and `OpRegistry` against models.
//!
//! Random scripts of reserve / complete / complete_with / poll / cancel /
//! free / release, aimed at live keys and at stale ones (the slab reuses
//! the most recently freed entry first, so a stale key almost always
//! names a reused slot), run against a `HashMap` model. Keep-alives are
//! counting hooks. Checked after every step and at the end:
//!
//! - every keep-alive is dropped exactly once (by its hook's completion,
//!   by a free of its slot, or by the registry's drop), and a hook is
//!   called at most once, with the real output of its op;
//! - a stale key is refused by every call and never reaches the op that
//!   reuses its slot (that op's output stays its own);
//! - `poll` returns exactly the stored output, once; `keys`, `is_empty`
//!   and `is_cancelled` match the model.
//!
//! The slab alone: values stay at one address while they live, stale
//! handles miss, every value is dropped exactly once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use proptest::prelude::*;

use super::{CancelAction, CancelHook, OpKey, OpRegistry};
use crate::io::driver::stable_slab::StableSlab;
use crate::io::driver::test_util::CountWake;
use crate::io::op::OpOutput;

fn out(n: usize) -> OpOutput {
    OpOutput {
        res: Ok(n),
        addr: None,
    }
}

/// What happened to the keep-alives, by hook id.
#[derive(Default)]
struct HookLog {
    /// Hook id → number of drops.
    drops: HashMap<usize, usize>,
    /// Hook id → outputs it was handed.
    completions: HashMap<usize, Vec<usize>>,
}

/// A keep-alive that records its completion and its drop.
struct CountingHook {
    id: usize,
    log: Rc<RefCell<HookLog>>,
}

impl CancelHook for CountingHook {
    fn completed(self: Box<Self>, out: OpOutput) {
        let n = out.res.expect("the tests complete with Ok");
        self.log
            .borrow_mut()
            .completions
            .entry(self.id)
            .or_default()
            .push(n);
        // `self` drops here, recording the drop.
    }
}

impl Drop for CountingHook {
    fn drop(&mut self) {
        *self.log.borrow_mut().drops.entry(self.id).or_default() += 1;
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// Take a slot; with `op` the platform op is filled in at once.
    Reserve {
        op: bool,
    },
    /// Fill in the op of key `n` (modulo keys made).
    SetOp(usize),
    Complete(usize, usize),
    CompleteWith(usize, usize),
    Poll(usize),
    /// Cancel, with a counting hook or without a keep-alive.
    Cancel(usize, bool),
    Free(usize),
    Release(usize),
    /// Ask for `keys()` and drain-cancel every op, as a driver's drop does.
    CancelAll,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Reserve { op: true }),
        1 => Just(Step::Reserve { op: false }),
        1 => any::<usize>().prop_map(Step::SetOp),
        4 => (any::<usize>(), 0usize..1000).prop_map(|(k, v)| Step::Complete(k, v)),
        4 => (any::<usize>(), 0usize..1000).prop_map(|(k, v)| Step::CompleteWith(k, v)),
        4 => any::<usize>().prop_map(Step::Poll),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(k, h)| Step::Cancel(k, h)),
        1 => any::<usize>().prop_map(Step::Free),
        1 => any::<usize>().prop_map(Step::Release),
        1 => Just(Step::CancelAll),
    ]
}

/// The model's view of one key.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// `op`: whether the slot's op is filled in (its value is the key's
    /// number).
    InFlight {
        op: bool,
        polled: bool,
    },
    /// Completed with this output, not polled yet.
    Completed {
        value: usize,
        op: bool,
    },
    /// Cancelled with this hook (if any).
    Cancelled {
        hook: Option<usize>,
        op: bool,
    },
    Gone,
}

struct Harness {
    reg: OpRegistry<usize>,
    keys: Vec<(OpKey, State)>,
    hooks: Rc<RefCell<HookLog>>,
    /// Hook id → (op it was given to, the output it must get, if it must).
    expected: HashMap<usize, Option<usize>>,
    next_hook: usize,
    wake: Arc<CountWake>,
    waker: Waker,
    wakes: usize,
}

impl Harness {
    fn new() -> Self {
        let wake = Arc::new(CountWake(AtomicUsize::new(0)));
        Harness {
            reg: OpRegistry::new(),
            keys: Vec::new(),
            hooks: Rc::default(),
            expected: HashMap::new(),
            next_hook: 0,
            waker: Waker::from(wake.clone()),
            wake,
            wakes: 0,
        }
    }

    fn pick(&self, n: usize) -> Option<usize> {
        (!self.keys.is_empty()).then(|| n % self.keys.len())
    }

    /// The hook was handed `n` (or dropped unused when `None`).
    fn hook_done(&mut self, hook: Option<usize>, n: Option<usize>) {
        if let Some(h) = hook {
            self.expected.insert(h, n);
        }
    }

    fn complete(&mut self, i: usize, v: usize, with: bool) -> Result<(), TestCaseError> {
        let key = self.keys[i].0;
        let state = self.keys[i].1.clone();
        let accepted = if with {
            let mut called = false;
            let ok = self.reg.complete_with(key, |op, cancelled| {
                called = true;
                assert_eq!(
                    cancelled,
                    matches!(state, State::Cancelled { .. }),
                    "cancelled flag"
                );
                out(*op * 1000 + v)
            });
            prop_assert_eq!(ok, called);
            ok
        } else {
            self.reg.complete(key, out(v))
        };
        let (live, op) = match &state {
            State::InFlight { op, .. }
            | State::Cancelled { op, .. }
            | State::Completed { op, .. } => (true, *op),
            State::Gone => (false, false),
        };
        // `complete_with` needs an op in the slot (a completed slot keeps
        // its op).
        let want = live && (!with || op);
        prop_assert_eq!(
            accepted,
            want,
            "complete({}) of key {} in {:?}",
            with,
            i,
            state
        );
        if !accepted {
            return Ok(());
        }
        let value = if with { i * 1000 + v } else { v };
        self.keys[i].1 = match state {
            State::InFlight { polled, op } => {
                if polled {
                    self.wakes += 1;
                }
                State::Completed { value, op }
            }
            // A second completion before the poll replaces the output.
            State::Completed { op, .. } => State::Completed { value, op },
            State::Cancelled { hook, .. } => {
                self.hook_done(hook, Some(value));
                State::Gone
            }
            State::Gone => unreachable!(),
        };
        Ok(())
    }

    fn run(&mut self, step: Step) -> Result<(), TestCaseError> {
        match step {
            Step::Reserve { op } => {
                let key = self.reg.reserve();
                let id = self.keys.len();
                let slot = self.reg.get_mut(key).expect("a reserved slot is live");
                prop_assert!(slot.op.is_none());
                slot.op = op.then_some(id);
                self.keys.push((key, State::InFlight { op, polled: false }));
            }
            Step::SetOp(n) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                let key = self.keys[i].0;
                let live = self
                    .reg
                    .get_mut(key)
                    .map(|slot| slot.op = Some(i))
                    .is_some();
                match &mut self.keys[i].1 {
                    State::InFlight { op, .. }
                    | State::Cancelled { op, .. }
                    | State::Completed { op, .. } => {
                        prop_assert!(live);
                        *op = true;
                    }
                    State::Gone => prop_assert!(!live, "stale key {} reached a slot", i),
                }
            }
            Step::Complete(n, v) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                self.complete(i, v, false)?;
            }
            Step::CompleteWith(n, v) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                self.complete(i, v, true)?;
            }
            Step::Poll(n) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                let key = self.keys[i].0;
                let got = self.reg.poll(key, &mut Context::from_waker(&self.waker));
                match self.keys[i].1.clone() {
                    State::InFlight { op, .. } => {
                        prop_assert!(got.is_pending(), "in-flight key {} ready", i);
                        self.keys[i].1 = State::InFlight { op, polled: true };
                    }
                    State::Completed { value: v, .. } => {
                        let Poll::Ready(o) = got else {
                            return Err(TestCaseError::fail(format!("completed key {i} pending")));
                        };
                        prop_assert_eq!(o.res.unwrap(), v);
                        self.keys[i].1 = State::Gone;
                    }
                    // A future never polls after its drop, but a stale or
                    // cancelled key must not hand out anything real.
                    State::Cancelled { .. } => prop_assert!(got.is_pending()),
                    State::Gone => match got {
                        Poll::Ready(o) => {
                            prop_assert!(o.res.is_err(), "stale key {} got output", i)
                        }
                        Poll::Pending => return Err(TestCaseError::fail("stale key pending")),
                    },
                }
            }
            Step::Cancel(n, with_hook) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                let key = self.keys[i].0;
                let hook = with_hook.then(|| {
                    self.next_hook += 1;
                    self.next_hook
                });
                let keep = hook.map(|id| {
                    Box::new(CountingHook {
                        id,
                        log: self.hooks.clone(),
                    }) as super::KeepAlive
                });
                let action = self.reg.cancel(key, keep);
                match self.keys[i].1.clone() {
                    State::InFlight { op, .. } => {
                        prop_assert_eq!(action, CancelAction::CancelInKernel);
                        self.keys[i].1 = State::Cancelled { hook, op };
                    }
                    State::Completed { value: v, .. } => {
                        prop_assert_eq!(action, CancelAction::Done);
                        self.hook_done(hook, Some(v));
                        self.keys[i].1 = State::Gone;
                    }
                    State::Cancelled { hook: old, op } => {
                        // Not something a driver does (a future drops
                        // once); the registry keeps the newer keep-alive
                        // and drops the older one unused.
                        prop_assert_eq!(action, CancelAction::CancelInKernel);
                        self.hook_done(old, None);
                        self.keys[i].1 = State::Cancelled { hook, op };
                    }
                    State::Gone => {
                        prop_assert_eq!(action, CancelAction::Unknown);
                        // The hook was dropped unused with the call.
                        self.hook_done(hook, None);
                    }
                }
            }
            Step::Free(n) | Step::Release(n) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                let key = self.keys[i].0;
                let freed = match step {
                    Step::Free(_) => self.reg.free(key),
                    _ => self.reg.release(key).is_some(),
                };
                let state = std::mem::replace(&mut self.keys[i].1, State::Gone);
                prop_assert_eq!(
                    freed,
                    state != State::Gone,
                    "free of key {} in {:?}",
                    i,
                    state
                );
                if let State::Cancelled { hook, .. } = state {
                    self.hook_done(hook, None);
                }
            }
            Step::CancelAll => {
                let mut keys = self.reg.keys();
                keys.sort_by_key(|k| k.to_user_data());
                let mut want: Vec<OpKey> = self
                    .keys
                    .iter()
                    .filter(|(_, s)| *s != State::Gone)
                    .map(|(k, _)| *k)
                    .collect();
                want.sort_by_key(|k| k.to_user_data());
                prop_assert_eq!(keys, want);
            }
        }
        self.check()
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.wake.0.load(Ordering::SeqCst), self.wakes, "wakes");
        let live = self.keys.iter().filter(|(_, s)| *s != State::Gone).count();
        prop_assert_eq!(self.reg.is_empty(), live == 0);
        for (i, (key, state)) in self.keys.iter().enumerate() {
            let cancelled = matches!(state, State::Cancelled { .. });
            prop_assert_eq!(
                self.reg.is_cancelled(*key),
                cancelled,
                "is_cancelled({})",
                i
            );
        }
        // Hooks finished so far: dropped once, completed as expected.
        let log = self.hooks.borrow();
        for (&h, &want) in &self.expected {
            prop_assert_eq!(log.drops.get(&h).copied(), Some(1), "hook {} drops", h);
            let got = log.completions.get(&h).cloned().unwrap_or_default();
            prop_assert_eq!(
                got,
                want.into_iter().collect::<Vec<_>>(),
                "hook {} output",
                h
            );
        }
        // No other hook was dropped yet.
        for &h in log.drops.keys() {
            prop_assert!(self.expected.contains_key(&h), "hook {} dropped early", h);
        }
        Ok(())
    }

    /// Drops the registry: the keep-alives of cancelled ops still in it
    /// go with it, each once, with no completion.
    fn finish(mut self) -> Result<(), TestCaseError> {
        for (_, state) in std::mem::take(&mut self.keys) {
            if let State::Cancelled { hook: Some(h), .. } = state {
                self.expected.insert(h, None);
            }
        }
        drop(std::mem::take(&mut self.reg));
        self.check()?;
        let log = self.hooks.borrow();
        prop_assert_eq!(log.drops.len(), self.next_hook, "every hook dropped");
        Ok(())
    }
}

/// A slab value that counts its drops.
struct Counted {
    id: usize,
    drops: Rc<RefCell<Vec<usize>>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.borrow_mut().push(self.id);
    }
}

#[derive(Debug, Clone)]
enum SlabStep {
    Insert,
    Remove(usize),
    Free(usize),
    Get(usize),
}

fn slab_step() -> impl Strategy<Value = SlabStep> {
    prop_oneof![
        4 => Just(SlabStep::Insert),
        2 => any::<usize>().prop_map(SlabStep::Remove),
        2 => any::<usize>().prop_map(SlabStep::Free),
        2 => any::<usize>().prop_map(SlabStep::Get),
    ]
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
    fn registry_matches_model(steps in prop::collection::vec(step(), 1..300)) {
        let mut h = Harness::new();
        for step in steps {
            h.run(step)?;
        }
        h.finish()?;
    }

    #[test]
    fn slab_matches_model(steps in prop::collection::vec(slab_step(), 1..400)) {
        let drops = Rc::new(RefCell::new(Vec::new()));
        let mut slab = StableSlab::new();
        // Every handle made: (index, generation, value id, address, live).
        let mut handles: Vec<(usize, u32, *const Counted, bool)> = Vec::new();
        let mut dropped = 0;
        for step in steps {
            match step {
                SlabStep::Insert => {
                    let id = handles.len();
                    let (index, generation) = slab.insert(Counted { id, drops: drops.clone() });
                    for (i, g, _, live) in &handles {
                        prop_assert!(!(*live && *i == index), "index {} given twice", index);
                        prop_assert!(!(*i == index && *g == generation), "handle reused");
                    }
                    let addr = slab.get(index, generation).unwrap() as *const Counted;
                    handles.push((index, generation, addr, true));
                }
                SlabStep::Remove(n) | SlabStep::Free(n) => {
                    if handles.is_empty() { continue; }
                    let id = n % handles.len();
                    let (index, generation, _, live) = handles[id];
                    let hit = match step {
                        SlabStep::Remove(_) => slab.remove(index, generation).map(|v| {
                            assert_eq!(v.id, id);
                        }).is_some(),
                        _ => slab.free(index, generation),
                    };
                    prop_assert_eq!(hit, live, "handle {} live {}", id, live);
                    if live {
                        dropped += 1;
                        handles[id].3 = false;
                    }
                }
                SlabStep::Get(n) => {
                    if handles.is_empty() { continue; }
                    let id = n % handles.len();
                    let (index, generation, addr, live) = handles[id];
                    match slab.get_mut(index, generation) {
                        Some(v) => {
                            prop_assert!(live, "stale handle {} reached a value", id);
                            prop_assert_eq!(v.id, id);
                            prop_assert_eq!(v as *const Counted, addr, "value moved");
                        }
                        None => prop_assert!(!live, "live handle {} missed", id),
                    }
                }
            }
            let live = handles.iter().filter(|h| h.3).count();
            prop_assert_eq!(slab.len(), live);
            prop_assert_eq!(slab.occupied().count(), live);
            prop_assert_eq!(drops.borrow().len(), dropped);
        }
        drop(slab);
        let mut all = drops.borrow().clone();
        all.sort_unstable();
        prop_assert_eq!(all, (0..handles.len()).collect::<Vec<_>>(), "each value dropped once");
    }
}
