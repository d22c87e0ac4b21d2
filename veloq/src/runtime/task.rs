//! What a spawned future is wrapped in, and the registry of unfinished
//! tasks.
//!
//! [`wrap`] adds two things around the user's future:
//!
//! - `catch_unwind` around every poll, so a panicking task finishes with
//!   the panic as its output (reported by its `JoinHandle` as a
//!   [`JoinError`](super::JoinError)) instead of unwinding through the
//!   executor;
//! - guards dropped right after the future — after completing, or
//!   cancelled, even if it was never polled: an [`ActiveGuard`] removes the
//!   task from its worker's [`ActiveTasks`], a [`LoadGuard`] takes it off
//!   the worker's load count.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Poll, Waker};

use super::context;
use super::scheduler::Shared;
use crate::loom::sync::atomic::Ordering;

/// A caught panic's payload.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

/// What a task's `async_task::Task` resolves to.
pub(crate) type TaskOutput<T> = Result<T, Panic>;

/// Wraps a spawned future; see the module docs.
///
/// The arguments live in the returned future from the start, so `guards`
/// are dropped with it even if it is cancelled before its first poll, and
/// always after `fut`.
pub(crate) async fn wrap<F: Future, G>(fut: F, guards: G) -> TaskOutput<F::Output> {
    let _guards = guards;
    let mut fut = pin!(fut);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        },
    )
    .await
}

/// Counts a task in its worker's `Shared::load` for as long as the guard
/// lives (the task's future holds it).
pub(crate) struct LoadGuard(Arc<Shared>);

impl LoadGuard {
    /// Adds one to `shared`'s load.
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        shared.load.fetch_add(1, Ordering::Relaxed);
        LoadGuard(shared.clone())
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        // Release: a shutdown that sees the count drop sees the future gone.
        self.0.load.fetch_sub(1, Ordering::Release);
    }
}

/// Holds a task's slot in its runtime's [`ActiveTasks`]; frees it on drop.
pub(crate) struct ActiveGuard {
    index: usize,
    /// Identifies the runtime (compared, never dereferenced). The task's
    /// schedule function keeps `Shared` alive as long as the task, so the
    /// address cannot be reused while this guard lives.
    runtime: *const Shared,
}

impl ActiveGuard {
    /// A guard for slot `index` of the runtime owning `shared`.
    pub(crate) fn new(index: usize, shared: &Arc<Shared>) -> Self {
        ActiveGuard {
            index,
            runtime: Arc::as_ptr(shared),
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        // Task futures are dropped on their runtime's thread, with the
        // runtime current (while running or shutting down).
        context::with_current(|core| {
            if let Some(core) = core {
                if std::ptr::eq(Arc::as_ptr(core.scheduler.shared()), self.runtime) {
                    core.scheduler.release(self.index);
                }
            }
        });
    }
}

/// Wakers of a runtime's unfinished tasks, by slot; O(1) reserve and
/// remove through a free list of slot indices.
pub(crate) struct ActiveTasks {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
    len: usize,
}

impl ActiveTasks {
    /// An empty registry.
    pub(crate) const fn new() -> Self {
        ActiveTasks {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Takes a slot for a task about to be spawned.
    pub(crate) fn reserve(&mut self) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        }
    }

    /// Stores the task's waker in its reserved slot.
    pub(crate) fn set(&mut self, index: usize, waker: Waker) {
        self.slots[index] = Some(waker);
    }

    /// Frees slot `index` (once per reserve).
    pub(crate) fn remove(&mut self, index: usize) {
        self.slots[index] = None;
        self.free.push(index);
        self.len -= 1;
    }

    /// Unfinished tasks.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Empties the registry, returning every stored waker. Slot indices
    /// handed out before are invalid afterwards.
    pub(crate) fn drain(&mut self) -> Vec<Waker> {
        self.free.clear();
        self.len = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }
}
