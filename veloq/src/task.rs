//! Task utilities beyond [`spawn`]: running blocking code
//! without blocking a worker.

use crate::runtime::blocking;
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
    let (job, result) = blocking::hand_off(f);
    // The task first (it panics outside a runtime, before any work runs).
    // A panic in `f` is re-raised in the task, so the executor turns it
    // into the handle's `JoinError`; if the task is aborted, the job's
    // result is dropped on the pool thread.
    let handle = crate::spawn(result);
    blocking::pool().execute(job);
    handle
}
