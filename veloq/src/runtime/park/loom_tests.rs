//! Loom models of the park state machine: a worker that parks whenever it
//! sees no work, against threads that publish work and notify it.
//!
//! The work flags are `Relaxed` atomics on purpose: the only thing that can
//! make a notifier's work visible to the worker is the parker itself (its
//! `AcqRel` transitions, or the driver's wake-up). A lost wake-up leaves
//! the worker blocked in its stand-in driver with nobody left to wake it,
//! which loom reports as a deadlock.

use std::sync::Arc as StdArc;

use super::Parker;
use crate::loom::model_util::Signal;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::sync::Arc;
use crate::loom::thread;

/// The worker side of the executor's loop (`Core::turn`): look for work,
/// park if there is none, until `done` says every piece of work was seen.
/// Returns how many times it blocked in the driver.
fn worker(parker: &Parker, driver: &Signal, done: impl Fn() -> bool) -> usize {
    let mut blocked = 0;
    while !done() {
        if parker.park_begin() {
            blocked += 1;
            driver.wait();
            parker.park_end();
        } else {
            // `wait(Some(ZERO))`: consumes any wake without blocking.
            driver.take();
        }
    }
    blocked
}

fn parker() -> (Arc<Parker>, StdArc<Signal>) {
    let driver = Signal::new();
    (Arc::new(Parker::new(driver.clone())), driver)
}

#[test]
fn loom_park_and_notify_never_lose_a_wake() {
    loom::model(|| {
        let (parker, driver) = parker();
        let work = Arc::new(AtomicBool::new(false));
        let notifier = {
            let (parker, work) = (parker.clone(), work.clone());
            thread::spawn(move || {
                work.store(true, Ordering::Relaxed);
                parker.notify();
            })
        };
        worker(&parker, &driver, || work.load(Ordering::Relaxed));
        notifier.join().unwrap();
    });
}

#[test]
fn loom_two_notifiers_both_seen_and_wakes_coalesce() {
    loom::model(|| {
        let (parker, driver) = parker();
        let a = Arc::new(AtomicBool::new(false));
        let b = Arc::new(AtomicBool::new(false));
        let spawn = |flag: &Arc<AtomicBool>| {
            let (parker, flag) = (parker.clone(), flag.clone());
            thread::spawn(move || {
                flag.store(true, Ordering::Relaxed);
                parker.notify()
            })
        };
        let (ta, tb) = (spawn(&a), spawn(&b));
        let blocked = worker(&parker, &driver, || {
            a.load(Ordering::Relaxed) && b.load(Ordering::Relaxed)
        });
        let calls = usize::from(ta.join().unwrap()) + usize::from(tb.join().unwrap());
        // Each kernel call answers one park: a second notify of the same
        // park finds NOTIFIED and makes none.
        assert!(calls <= blocked, "{calls} unparks for {blocked} parks");
        assert_eq!(calls, driver.total(), "notify's return value is honest");
    });
}

#[test]
fn loom_notify_across_two_parks() {
    // The worker parks, is woken, runs, and parks again while the second
    // notification races with its `park_end`: the second must not be
    // swallowed by the first wake-up's `park_end`.
    loom::model(|| {
        let (parker, driver) = parker();
        let round = Arc::new(crate::loom::sync::atomic::AtomicUsize::new(0));
        let notifier = {
            let (parker, round) = (parker.clone(), round.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    round.fetch_add(1, Ordering::Relaxed);
                    parker.notify();
                }
            })
        };
        worker(&parker, &driver, || round.load(Ordering::Relaxed) >= 1);
        worker(&parker, &driver, || round.load(Ordering::Relaxed) == 2);
        notifier.join().unwrap();
    });
}
