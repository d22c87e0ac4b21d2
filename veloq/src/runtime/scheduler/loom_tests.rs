//! Loom models of the scheduler's cross-thread paths: tasks woken from
//! other threads (the `remote` queue plus `Parker::notify`) racing the
//! worker's drain and park, and `spawn_on`'s `inject` racing shutdown.
//!
//! The worker runs the executor's turn (`Core::turn`) against a stand-in
//! driver that blocks until unparked; a lost wake-up is a loom deadlock.

use std::future::poll_fn;
use std::sync::Arc as StdArc;
use std::task::{Poll, Waker};

use async_task::Runnable;

use super::{schedule, Scheduler};
use crate::loom::lock;
use crate::loom::model_util::Signal;
use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::loom::sync::{Arc, Mutex};
use crate::loom::thread;

/// `Core::turn`, with `driver` for the I/O driver and `more` for
/// `block_on`'s "the main future was woken" (here: the model's task is
/// done; the real main future would be woken by its `JoinHandle`).
fn turn(sched: &Scheduler, driver: &Signal, more: impl Fn() -> bool) {
    sched.run_batch(4);
    let parker = sched.shared().parker();
    if more() || sched.has_work() || !parker.park_begin() {
        driver.take();
    } else {
        driver.wait();
        parker.park_end();
    }
}

fn scheduler() -> (Scheduler, StdArc<Signal>) {
    let driver = Signal::new();
    (Scheduler::new(driver.clone()), driver)
}

/// A `Send` task of `sched`, scheduled through the real `schedule`.
fn task<F>(sched: &Scheduler, fut: F) -> Runnable
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let shared = sched.shared().clone();
    let (runnable, task) = async_task::spawn(fut, move |r| schedule(&shared, r));
    task.detach();
    runnable
}

#[test]
fn loom_remote_schedule_races_the_workers_drain() {
    loom::model(|| {
        let (sched, driver) = scheduler();
        let ran = Arc::new(AtomicBool::new(false));
        let runnable = {
            let ran = ran.clone();
            task(&sched, async move { ran.store(true, Ordering::Relaxed) })
        };
        // Woken on another thread: the remote queue, then notify.
        let waker = thread::spawn(move || runnable.schedule());
        let ran_ = || ran.load(Ordering::Relaxed);
        while !ran_() {
            turn(&sched, &driver, ran_);
        }
        waker.join().unwrap();
    });
}

/// What the double-wake task and its wakers share: its waker (stored by
/// each poll) and one flag per waking thread, under one lock. (async-task's
/// own task state is std atomics, which loom cannot see; the lock gives
/// loom the happens-before that those provide in a real run.)
#[derive(Default)]
struct Wakes {
    waker: Option<Waker>,
    flags: [bool; 2],
}

#[test]
fn loom_double_wake_from_two_threads_runs_the_task_to_the_end() {
    loom::model(|| {
        let (sched, driver) = scheduler();
        let wakes: Arc<Mutex<Wakes>> = Arc::default();
        let polls = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let runnable = {
            let (wakes, polls, done) = (wakes.clone(), polls.clone(), done.clone());
            task(&sched, async move {
                poll_fn(|cx| {
                    polls.fetch_add(1, Ordering::Relaxed);
                    let mut w = lock(&wakes);
                    w.waker = Some(cx.waker().clone());
                    if w.flags == [true, true] {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                done.store(true, Ordering::Relaxed);
            })
        };
        runnable.run(); // first poll on the worker: Pending, waker stored
        let spawn = |i: usize| {
            let wakes = wakes.clone();
            thread::spawn(move || {
                let waker = {
                    let mut w = lock(&wakes);
                    w.flags[i] = true;
                    w.waker.clone()
                };
                waker.expect("stored by the first poll").wake();
            })
        };
        let (a, b) = (spawn(0), spawn(1));
        let done_ = || done.load(Ordering::Relaxed);
        while !done_() {
            turn(&sched, &driver, done_);
        }
        a.join().unwrap();
        b.join().unwrap();
        // Two wakes of a task not yet run again queue it once: 2 or 3 polls.
        assert!((2..=3).contains(&polls.load(Ordering::Relaxed)));
        drop(lock(&wakes).waker.take());
    });
}

/// Counts drops of the future it is moved into.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn loom_inject_racing_shutdown_drops_the_task_exactly_once() {
    loom::model(|| {
        let (sched, _driver) = scheduler();
        let drops = Arc::new(AtomicUsize::new(0));
        let runnable = {
            let count = DropCount(drops.clone());
            task(&sched, async move {
                let _count = count;
            })
        };
        let shared = sched.shared().clone();
        let injector = thread::spawn(move || shared.inject(runnable));
        sched.shutdown();
        injector.join().unwrap();
        // Either the worker's shutdown dropped it, or the injector saw
        // `closed` and dropped it; it is never left queued, never run.
        assert_eq!(drops.load(Ordering::Relaxed), 1, "the task future leaked");
        assert!(!sched.has_work());
        drop(sched);
    });
}
