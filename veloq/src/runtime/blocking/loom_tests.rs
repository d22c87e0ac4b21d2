//! Loom models of the blocking pool's result hand-off ([`hand_off`]): the
//! job runs on one thread while the task awaiting its result polls, or is
//! dropped, on another.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use super::hand_off;
use crate::loom::model_util::{block_on, Signal};
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::Arc;
use crate::loom::thread;

/// A result whose drops are counted.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn loom_hand_off_result_reaches_the_awaiting_task() {
    loom::model(|| {
        let (job, result) = hand_off(|| 7u32);
        let pool = thread::spawn(job);
        assert_eq!(block_on(result), 7);
        pool.join().unwrap();
    });
}

#[test]
fn loom_hand_off_racing_the_awaiting_tasks_drop() {
    // The task polls once (its waker is stored), then is aborted (its
    // future dropped) while the job finishes: the result is dropped
    // exactly once, by whichever side holds it last, and nothing waits.
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (job, result) = {
            let drops = drops.clone();
            hand_off(move || Counted(drops))
        };
        let pool = thread::spawn(job);
        {
            let signal = Signal::new();
            let waker = Waker::from(signal);
            let mut result = pin!(result);
            if let std::task::Poll::Ready(value) =
                result.as_mut().poll(&mut Context::from_waker(&waker))
            {
                drop(value);
            }
        }
        pool.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}
