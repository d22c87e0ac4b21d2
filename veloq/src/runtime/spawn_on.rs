//! Moving work between workers: [`spawn_on`], [`spawn_balanced`],
//! [`worker_id`], [`worker_count`].
//!
//! `spawn_on` takes a `Send` closure, not a future: the closure travels to
//! the target worker and is called there, so the future it returns (and
//! everything it creates: sockets, files, timers, `Rc`s) is born on, and
//! never leaves, that worker. Only the output travels back, through the
//! task's `JoinHandle`.
//!
//! # The task's future
//!
//! The task is an `async_task` task whose future ([`SendOnce`] around an
//! `async` block) is:
//!
//! ```text
//! unresumed:  holds only its captures: the Send closure, a LoadGuard (Send),
//!             the target's Arc<Shared> (Send)
//! first poll: on the target worker: enter the task in its registry, call
//!             the closure (inside the task's catch_unwind), poll the future
//! afterwards: polled and dropped only on the target worker
//! ```
//!
//! Its type is not `Send` (it may hold the closure's future), but its value
//! is, until the first poll; after that the scheduler never lets it leave
//! the worker. `SendOnce` asserts exactly that (see its `Send` impl).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::context::{self, NO_RUNTIME};
use super::join::JoinHandle;
use super::scheduler::schedule;
use super::task::{self, LoadGuard};
use super::workers::WorkerSet;

/// Runs `f` on worker `worker` of the current runtime and returns a handle
/// to the task running the future `f` returns.
///
/// `f` is called on the target worker, so its future need not be `Send`:
/// it may create sockets, files and timers there, which then belong to
/// that worker. The output must be `Send`: it comes back through the
/// [`JoinHandle`], which any worker (or thread) may await or abort.
///
/// Aimed at the calling worker, it is [`spawn`](crate::spawn) with one more
/// step (calling `f` on the task's first poll).
///
/// ```
/// let rt = veloq::Runtime::builder().workers(2).build()?;
/// let id = rt.block_on(async {
///     veloq::spawn_on(1, || async { veloq::worker_id() }).await.unwrap()
/// });
/// assert_eq!(id, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// Outside a runtime, and if `worker` is not below
/// [`worker_count()`](worker_count).
pub fn spawn_on<F, Fut>(worker: usize, f: F) -> JoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let set = current_set();
    spawn_on_set(&set, worker, f)
}

/// Runs `f` on whichever of two randomly chosen workers has fewer live
/// tasks ("the power of two choices"), as [`spawn_on`] would.
///
/// Use it for independent units of work — a connection, a request — when
/// their cost is not known up front; it keeps the workers' task counts
/// close without any shared queue.
///
/// # Panics
///
/// Outside a runtime.
pub fn spawn_balanced<F, Fut>(f: F) -> JoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let set = current_set();
    let worker = set.pick_balanced();
    spawn_on_set(&set, worker, f)
}

/// The index of the worker running the caller, from `0` to
/// [`worker_count()`](worker_count)` - 1`. Worker 0 runs `block_on`.
///
/// # Panics
///
/// Outside a runtime.
pub fn worker_id() -> usize {
    context::with_current(|core| core.map(|c| c.worker_id()))
        .unwrap_or_else(|| panic!("{NO_RUNTIME}"))
}

/// How many workers the current runtime has.
///
/// # Panics
///
/// Outside a runtime.
pub fn worker_count() -> usize {
    context::with_current(|core| core.map(|c| c.workers().len()))
        .unwrap_or_else(|| panic!("{NO_RUNTIME}"))
}

fn current_set() -> Arc<WorkerSet> {
    context::with_current(|core| core.map(|c| c.workers().clone()))
        .unwrap_or_else(|| panic!("{NO_RUNTIME}"))
}

/// [`spawn_on`] for a known worker set (also `Runtime::spawn_on`).
pub(crate) fn spawn_on_set<F, Fut>(set: &WorkerSet, worker: usize, f: F) -> JoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let count = set.len();
    let shared = set
        .get(worker)
        .unwrap_or_else(|| {
            panic!("veloq::spawn_on: no worker {worker}: the runtime has {count} worker(s)")
        })
        .clone();
    let load = LoadGuard::new(&shared);
    let home = shared.clone();
    let fut = async move {
        let _load = load;
        let guard = poll_fn(|cx| {
            let guard = context::with_current(|core| {
                let core = core
                    .filter(|c| c.scheduler.owns(&home))
                    .expect("veloq: a spawn_on task ran off its worker");
                core.scheduler.register(cx.waker())
            });
            Poll::Ready(guard)
        })
        .await;
        task::wrap(async move { f().await }, guard).await
    };
    let sched = shared.clone();
    let (runnable, handle) = async_task::spawn(SendOnce(fut), move |r| schedule(&sched, r));
    shared.inject(runnable);
    JoinHandle::new(handle.fallible())
}

/// A future that is `Send` while unpolled and then stays on one thread.
struct SendOnce<F>(F);

// SAFETY: `SendOnce` wraps only the `spawn_on` task future built above. Until
// its first poll that future (an unresumed `async` block) holds just its
// captures, all `Send`: the closure `F: Send`, a `LoadGuard` and an
// `Arc<Shared>`. It is first polled on its target worker (its runnable is
// only ever queued there: `Shared::inject`, then `schedule`, which pushes
// to that worker's queues), and every later poll and its drop happen there
// too, because runnables are run and dropped only by their worker, except
// an injected runnable that never ran, dropped by its injector when the
// worker has shut down (`Shared::inject`) — before any poll, so still only
// `Send` data.
unsafe impl<F> Send for SendOnce<F> {}

impl<F: Future> Future for SendOnce<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structural pinning of the only field; `SendOnce` never
        // moves it out and has no `Drop` impl of its own.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        inner.poll(cx)
    }
}

/// A small xorshift generator per thread, for `spawn_balanced`.
pub(crate) fn random(bound: usize) -> usize {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};

    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            // A random seed from std's hasher keys; `| 1` keeps it non-zero.
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(&h as *const _ as usize);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x % bound as u64) as usize
    })
}
