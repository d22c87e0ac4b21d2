//! The run queues of one runtime and the `schedule` function its tasks
//! are woken through.
//!
//! Tasks are `async-task` tasks; a task's waker is a reference count on
//! the task, and waking it calls [`schedule`], which puts the task's
//! `Runnable` on a queue:
//!
//! - woken on the runtime's own thread (the runtime is current there): the
//!   local `VecDeque`, no atomics, no system call;
//! - woken on any other thread: the `SegQueue` in [`Shared`], then the
//!   driver's wake handle, so a driver blocked in `wait` returns.
//!
//! Runnables are only ever run or dropped on the runtime's thread, so task
//! futures need not be `Send` (`async_task::spawn_local` checks it).
//!
//! Every task that has not finished holds a slot in `active` (its waker),
//! so dropping the runtime can find and cancel even tasks nobody will ever
//! wake again.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use async_task::Runnable;
use crossbeam_queue::SegQueue;

use super::context;
use super::join::JoinHandle;
use super::task::{self, ActiveGuard, ActiveTasks};
use crate::io::driver::WakeHandle;

/// The part of a runtime other threads may touch (through task wakers and
/// the main future's waker).
pub(crate) struct Shared {
    /// Runnables woken from other threads.
    remote: SegQueue<Runnable>,
    /// Wakes the runtime's driver.
    unpark: WakeHandle,
}

impl Shared {
    /// Whether this runtime is the one running on the calling thread.
    pub(crate) fn is_current(self: &Arc<Self>) -> bool {
        context::with_current(|core| core.is_some_and(|c| c.scheduler.owns(self)))
    }

    /// Makes the runtime's driver return from (or skip) its next wait.
    pub(crate) fn unpark(&self) {
        self.unpark.unpark();
    }
}

/// Puts a woken task on a queue; see the module docs.
fn schedule(shared: &Arc<Shared>, runnable: Runnable) {
    let mut runnable = Some(runnable);
    context::with_current(|core| {
        if let Some(core) = core.filter(|c| c.scheduler.owns(shared)) {
            core.scheduler
                .local
                .borrow_mut()
                .push_back(runnable.take().expect("taken once"));
        }
    });
    if let Some(runnable) = runnable {
        shared.remote.push(runnable);
        shared.unpark();
    }
}

/// A runtime's task queues and task registry.
pub(crate) struct Scheduler {
    shared: Arc<Shared>,
    /// Runnables woken on this thread.
    local: RefCell<VecDeque<Runnable>>,
    /// Wakers of all unfinished tasks.
    active: RefCell<ActiveTasks>,
    /// Set once the runtime is being dropped.
    closing: Cell<bool>,
}

impl Scheduler {
    /// A scheduler whose cross-thread wakes call `unpark`.
    pub(crate) fn new(unpark: WakeHandle) -> Self {
        Scheduler {
            shared: Arc::new(Shared {
                remote: SegQueue::new(),
                unpark,
            }),
            local: RefCell::new(VecDeque::with_capacity(64)),
            active: RefCell::new(ActiveTasks::new()),
            closing: Cell::new(false),
        }
    }

    /// The thread-safe half.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether `shared` belongs to this scheduler.
    pub(crate) fn owns(&self, shared: &Arc<Shared>) -> bool {
        Arc::ptr_eq(&self.shared, shared)
    }

    /// Spawns `fut` as a task and queues its first poll.
    pub(crate) fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let index = self.active.borrow_mut().reserve();
        let guard = ActiveGuard::new(index, &self.shared);
        let shared = self.shared.clone();
        let (runnable, handle) =
            async_task::spawn_local(task::wrap(fut, guard), move |r| schedule(&shared, r));
        self.active.borrow_mut().set(index, runnable.waker());
        self.local.borrow_mut().push_back(runnable);
        JoinHandle::new(handle.fallible())
    }

    /// A finished task's guard gives back its registry slot (unless the
    /// runtime is closing and has emptied the registry itself).
    pub(crate) fn release(&self, index: usize) {
        if !self.closing.get() {
            self.active.borrow_mut().remove(index);
        }
    }

    /// Runs up to `budget` queued tasks; returns how many ran.
    ///
    /// Tasks woken from other threads are moved to the local queue first
    /// (at most `budget` of them), so a task that keeps yielding cannot
    /// starve them.
    pub(crate) fn run_batch(&self, budget: usize) -> usize {
        {
            let mut local = self.local.borrow_mut();
            for _ in 0..budget {
                match self.shared.remote.pop() {
                    Some(r) => local.push_back(r),
                    None => break,
                }
            }
        }
        for ran in 0..budget {
            // The borrow ends before the task runs: running it may wake
            // (and so queue) other tasks.
            let next = self.local.borrow_mut().pop_front();
            match next {
                Some(runnable) => {
                    runnable.run();
                }
                None => return ran,
            }
        }
        budget
    }

    /// Whether any task is queued.
    pub(crate) fn has_work(&self) -> bool {
        !self.local.borrow().is_empty() || !self.shared.remote.is_empty()
    }

    /// Unfinished tasks.
    pub(crate) fn active_tasks(&self) -> usize {
        self.active.borrow().len()
    }

    /// Cancels every task: each unfinished task is queued one last time and
    /// its `Runnable` dropped, which drops its future here, on the runtime's
    /// thread (cancelling the future's in-flight ops while the driver still
    /// exists). Tasks spawned or woken while this runs are cancelled too.
    ///
    /// The runtime must be current on this thread.
    pub(crate) fn shutdown(&self) {
        self.closing.set(true);
        loop {
            let wakers = self.active.borrow_mut().drain();
            let mut progressed = !wakers.is_empty();
            for waker in wakers {
                waker.wake();
            }
            loop {
                let next = self.local.borrow_mut().pop_front();
                let Some(runnable) = next.or_else(|| self.shared.remote.pop()) else {
                    break;
                };
                drop(runnable);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }
}
