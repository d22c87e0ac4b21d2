//! The executor, thread-per-core: a runtime is one or more *workers*, each
//! a thread with its own executor and I/O driver; a task runs on the worker
//! that spawned it, for its whole life.
//!
//! - [`block_on`] runs a future to completion on a fresh one-worker runtime
//!   for this thread; [`Runtime`] (from [`Runtime::builder`]) is the same
//!   with settings (among them [`Builder::workers`]) and a lifetime of its
//!   own.
//! - [`spawn`] starts a task on the current worker; tasks need not be
//!   `Send`, and a [`JoinHandle`] awaits or aborts one.
//! - [`spawn_on`] starts a task on a given worker from a `Send` closure,
//!   [`spawn_balanced`] on the less loaded of two random workers;
//!   [`worker_id`] and [`worker_count`] say where the caller is.
//! - [`yield_now`] lets the other tasks run.
//!
//! Calling [`spawn`] (or any I/O or timer) outside a runtime panics with a
//! message saying so, as does starting a runtime inside a runtime.
//!
//! The pieces: `context` (the thread's current worker), `executor` (the
//! loop, [`Runtime`]), `workers` (worker threads, start and stop),
//! `scheduler` (run queues, wakes), `park` (parking a worker, cross-thread
//! wakes without syscalls when it is awake), `spawn_on` (moving work
//! between workers), `task` (what a spawned future is wrapped in), `join`
//! ([`JoinHandle`], [`JoinError`]), `builder` ([`Builder`]).
//!
//! The attribute macros must be put on an `async fn`:
//!
//! ```compile_fail
//! #[veloq::main]
//! fn main() {}
//! ```
//!
//! ```compile_fail
//! #[veloq::test]
//! fn not_async() {}
//! ```
//!
//! A runtime belongs to its thread (`JoinHandle<T>` is `Send` only where
//! `T` is):
//!
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<veloq::Runtime>();
//! ```
//!
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<veloq::JoinHandle<std::rc::Rc<u8>>>();
//! ```
//!
//! ```
//! fn assert_send<T: Send>() {}
//! assert_send::<veloq::JoinHandle<String>>();
//! assert_send::<veloq::JoinError>();
//! ```

pub(crate) mod blocking;
mod builder;
pub(crate) mod context;
pub(crate) mod executor;
mod join;
mod park;
mod scheduler;
mod spawn_on;
mod task;
#[cfg(test)]
mod tests;
mod workers;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use crate::io::driver::{DriverKind, DriverStats};
pub use builder::Builder;
pub use executor::Runtime;
pub use join::{JoinError, JoinHandle};
pub use spawn_on::{spawn_balanced, spawn_on, worker_count, worker_id};

use crate::io::driver::Driver;

/// Runs `fut` to completion on a runtime created for this thread, and
/// drops the runtime (cancelling any tasks still running) before returning.
///
/// ```
/// let n = veloq::block_on(async {
///     let task = veloq::spawn(async { 20 });
///     task.await.unwrap() + 22
/// });
/// assert_eq!(n, 42);
/// ```
///
/// # Panics
///
/// If a runtime is already running on this thread, if the driver cannot
/// start (e.g. io_uring is disabled), and with whatever `fut` panics with.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    if context::is_running() {
        panic!(
            "veloq: cannot start a runtime from within a runtime: block_on was called while a \
             runtime is already running on this thread; spawn the future or .await it instead"
        );
    }
    let rt = Runtime::new().unwrap_or_else(|e| panic!("veloq: failed to start a runtime: {e}"));
    rt.block_on(fut)
}

/// Spawns `fut` as a task on the current worker and returns its handle.
///
/// The task starts at the worker's next turn and runs on this thread, for
/// its whole life; `fut` need not be `Send`. Dropping the handle detaches
/// the task. To run work on another worker, see [`spawn_on`] and
/// [`spawn_balanced`].
///
/// # Panics
///
/// Outside a runtime (not within [`block_on`] or `#[veloq::main]`).
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match context::current() {
        Some(core) => core.scheduler.spawn(fut),
        None => panic!(
            "veloq::spawn called outside a runtime: no runtime on this thread; call it from \
             within veloq::block_on or #[veloq::main]"
        ),
    }
}

/// Yields once: the current task (or main future) is queued behind every
/// task that is already runnable, and continues after they ran.
pub async fn yield_now() {
    YieldNow { yielded: false }.await
}

/// Pending once (waking itself), then ready.
struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The current runtime's driver counters (completions, waits, ops in
/// flight, stale and faulted completions).
///
/// # Panics
///
/// Outside a runtime.
pub fn driver_stats() -> DriverStats {
    context::with_driver(|d| d.stats())
}

/// Which I/O driver the current runtime runs on: `IoUring` or `Epoll` on
/// Linux (see [`Builder::driver`]), `Iocp` on Windows; never `Auto`.
///
/// ```
/// let kind = veloq::block_on(async { veloq::runtime::driver_kind() });
/// println!("running on {kind}");
/// ```
///
/// # Panics
///
/// Outside a runtime.
pub fn driver_kind() -> DriverKind {
    context::with_driver(|d| crate::io::driver::platform_kind(d))
}
