//! Task utilities beyond [`spawn`]: running blocking code
//! without blocking a worker.

use std::panic::{self, AssertUnwindSafe};

use crate::runtime::blocking;
use crate::sync::oneshot;
use crate::JoinHandle;

pub use crate::runtime::{spawn, yield_now, JoinError};

/// Runs the blocking function `f` on the runtime's blocking-thread pool
/// and returns a handle to its result, so that a worker never blocks on
/// file-system calls, CPU-heavy work or a blocking library.
///
/// The pool is shared by the whole process and bounded (512 threads; more
/// calls wait in a queue); idle threads exit after 10 s.
///
/// A panic in `f` does not take a pool thread down: awaiting the handle
/// gives a [`JoinError`] whose [`is_panic`](JoinError::is_panic) is true.
/// [`abort`](JoinHandle::abort) stops the wait for the result, not `f`
/// itself, which runs to completion once started.
///
/// ```
/// veloq::block_on(async {
///     let sum = veloq::task::spawn_blocking(|| (1..=100u64).sum::<u64>()).await.unwrap();
///     assert_eq!(sum, 5050);
/// });
/// ```
///
/// # Panics
///
/// Outside a veloq runtime.
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    // The task first (it panics outside a runtime, before any work runs).
    let handle = crate::spawn(async move {
        match rx.await {
            Ok(Ok(value)) => value,
            // Re-raised in the task, so the executor turns it into the
            // handle's `JoinError`.
            Ok(Err(payload)) => panic::resume_unwind(payload),
            Err(_) => unreachable!("the blocking job always sends its result"),
        }
    });
    blocking::pool().execute(Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        // The receiver is gone only if the task was aborted.
        let _ = tx.send(result);
    }));
    handle
}
