//! Parking a worker in its driver, and waking it from other threads
//! without a system call unless it really sleeps.
//!
//! A worker blocks in the driver's `wait` when it has nothing to run.
//! Another thread that queues work for it (a task wake, a `spawn_on`, the
//! main future's waker, a stop request) must make that `wait` return; the
//! driver's wake handle does it with a kernel call (an `eventfd` write, a
//! `PostQueuedCompletionStatus`). [`Parker`] makes that call only when the
//! worker is actually parked, so wakes aimed at a busy worker cost one
//! atomic swap.
//!
//! # States
//!
//! ```text
//!            notify (any thread)           park_begin (worker)
//!  RUNNING ----------------------> NOTIFIED ----------------> RUNNING   (do not block)
//!     |                                                          ^
//!     | park_begin (worker)                                      | park_end (worker)
//!     v                                                          |
//!   PARKED --- notify: swap to NOTIFIED, then unpark() (syscall) -+
//! ```
//!
//! - `RUNNING`: the worker runs tasks and will look at its queues before
//!   it next blocks. Only the worker leaves it (for `PARKED`); `notify`
//!   turns it into `NOTIFIED`.
//! - `PARKED`: set by the worker just before it blocks in `wait(None)`;
//!   the `notify` that swaps it out makes the one kernel call.
//! - `NOTIFIED`: work was published since the worker last became
//!   `RUNNING`; its next `park_begin` consumes the notification and does
//!   not block.
//!
//! # Why no wake is lost
//!
//! Every transition is a read-modify-write on the one atomic, so they are
//! totally ordered and each acquires what the previous writers released.
//! A notifier publishes its work (pushes to a queue, sets a flag) *before*
//! its swap. If its swap comes before the worker's `park_begin`, the worker
//! finds `NOTIFIED`, does not block, and (having acquired the swap) sees
//! the work on its next turn. If it comes after, it finds `PARKED` and
//! unparks the driver. `park_end` is a swap too, so a notification
//! overwritten by it was still acquired before the worker's next look at
//! its queues.
//!
//! `park/loom_tests.rs` checks this under loom (`scripts/test-loom.sh`):
//! every interleaving of a parking worker with one or two notifiers, with
//! the work published `Relaxed` so that only the parker can order it.

use crate::io::driver::WakeHandle;
use crate::loom::sync::atomic::{AtomicU8, Ordering};

const RUNNING: u8 = 0;
const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;

/// The park state of one worker plus its driver's wake handle.
pub(crate) struct Parker {
    state: AtomicU8,
    unpark: WakeHandle,
}

impl Parker {
    /// A parker for a running worker whose driver `unpark` wakes.
    pub(crate) fn new(unpark: WakeHandle) -> Self {
        Parker {
            state: AtomicU8::new(RUNNING),
            unpark,
        }
    }

    /// Any thread, after publishing work for the worker: makes sure the
    /// worker sees it, with a kernel call only if the worker is parked.
    /// Returns whether that call was made.
    pub(crate) fn notify(&self) -> bool {
        if self.state.swap(NOTIFIED, Ordering::AcqRel) == PARKED {
            self.unpark.unpark();
            true
        } else {
            false
        }
    }

    /// The worker, about to block: returns `true` if it may block (it is
    /// now `PARKED`; call [`park_end`](Parker::park_end) after the wait),
    /// `false` if a notification came in since it last ran (consumed here;
    /// it must look at its queues again instead of blocking).
    pub(crate) fn park_begin(&self) -> bool {
        match self
            .state
            .compare_exchange(RUNNING, PARKED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(_) => {
                self.state.swap(RUNNING, Ordering::AcqRel);
                false
            }
        }
    }

    /// The worker returned from a blocking wait.
    pub(crate) fn park_end(&self) {
        self.state.swap(RUNNING, Ordering::AcqRel);
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use super::*;
    use crate::io::driver::Unpark;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Unpark for Count {
        fn unpark(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn parker() -> (Parker, Arc<Count>) {
        let count = Arc::new(Count::default());
        (Parker::new(count.clone()), count)
    }

    #[test]
    fn notify_while_running_makes_no_call_and_skips_next_park() {
        let (p, count) = parker();
        for _ in 0..1000 {
            assert!(!p.notify());
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert!(!p.park_begin(), "a pending notification must stop the park");
        assert!(p.park_begin(), "the notification was consumed");
        p.park_end();
    }

    #[test]
    fn notify_while_parked_unparks_once() {
        let (p, count) = parker();
        assert!(p.park_begin());
        assert!(p.notify());
        assert!(!p.notify(), "wakes coalesce until the worker runs");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        p.park_end();
        assert!(p.park_begin(), "park_end consumed the notification");
        assert!(p.notify());
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn racing_notifiers_never_lose_a_wake() {
        // A worker that parks and a thread that notifies, many times: every
        // round the worker either sees the notification before blocking or
        // is unparked.
        let (p, count) = parker();
        let p = Arc::new(p);
        let rounds = 20_000;
        let flag = Arc::new(AtomicUsize::new(0));
        let notifier = {
            let (p, flag) = (p.clone(), flag.clone());
            std::thread::spawn(move || {
                for i in 1..=rounds {
                    while flag.load(Ordering::Acquire) != i * 2 - 1 {
                        std::hint::spin_loop();
                    }
                    flag.store(i * 2, Ordering::Release);
                    p.notify();
                }
            })
        };
        for i in 1..=rounds {
            let unparks = count.0.load(Ordering::SeqCst);
            flag.store(i * 2 - 1, Ordering::Release);
            // Wait for "work" the way the executor does.
            loop {
                if flag.load(Ordering::Acquire) == i * 2 {
                    break;
                }
                if p.park_begin() {
                    // "Block" until unparked: the notifier must call unpark.
                    let start = std::time::Instant::now();
                    while count.0.load(Ordering::SeqCst) == unparks {
                        assert!(
                            start.elapsed() < std::time::Duration::from_secs(10),
                            "round {i}: parked and never unparked (a lost wake)"
                        );
                        std::thread::yield_now();
                    }
                    p.park_end();
                }
            }
        }
        notifier.join().unwrap();
    }
}
