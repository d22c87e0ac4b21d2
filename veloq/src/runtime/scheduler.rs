//! The run queues of one worker and the `schedule` function its tasks are
//! woken through.
//!
//! Tasks are `async-task` tasks; a task's waker is a reference count on
//! the task, and waking it calls [`schedule`], which puts the task's
//! `Runnable` on a queue:
//!
//! - woken on the worker's own thread (its runtime is current there): the
//!   local `VecDeque`, no atomics, no system call;
//! - woken on any other thread: the `remote` `SegQueue` in [`Shared`], then
//!   [`Parker::notify`], which wakes the worker's driver only if the worker
//!   is parked in it (see `park`).
//!
//! Tasks sent here by `spawn_on` from another thread arrive, before their
//! first poll, on a third queue, `injected` ([`Shared::inject`]).
//!
//! Runnables are only ever run on the worker's thread, and dropped there
//! too, with one exception: an `injected` runnable (a `spawn_on` task that
//! never ran, whose future holds only its `Send` closure) may be dropped by
//! the thread that injected it when the worker has already shut down. So
//! local task futures need not be `Send` (`async_task::spawn_local` checks
//! it).
//!
//! # Which tasks a worker knows about
//!
//! - `active`: the waker of every task that has started (or, for local
//!   spawns, been spawned) and not finished, so that shutting down can find
//!   and cancel even tasks nobody will ever wake again.
//! - `Shared::load`: every task of this worker whose future still exists,
//!   including `spawn_on` tasks on their way here. `spawn_balanced` reads
//!   it; shutdown waits for it to reach zero.
//!
//! # Shutdown
//!
//! `closing` (set first) stops `release` from touching the registry while
//! it is drained; `Shared::closed` (set once every known task is cancelled)
//! makes later `spawn`s and `inject`s drop their task at once. Between the
//! two, a task another thread is waking at that very moment may still be
//! on its way to `remote`; `shutdown` waits for it (by `load`).
//!
//! `scheduler/loom_tests.rs` model-checks remote wakes against the
//! worker's drain and park, and `inject` against shutdown
//! (`scripts/test-loom.sh`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use async_task::Runnable;

use super::context;
use super::join::JoinHandle;
use super::park::Parker;
use super::task::{self, ActiveGuard, ActiveTasks, LoadGuard};
use crate::io::driver::WakeHandle;
use crate::loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use crate::loom::SegQueue;

/// How long `shutdown` waits for tasks another thread is still waking
/// before it gives up on them (they are then leaked, never dropped on the
/// wrong thread). Such a wake is a few instructions away from done.
const IN_TRANSIT_LIMIT: Duration = Duration::from_secs(5);

/// The part of a worker other threads may touch (through task wakers,
/// `spawn_on` and the main future's waker).
pub(crate) struct Shared {
    /// Runnables woken from other threads.
    remote: SegQueue<Runnable>,
    /// `spawn_on` tasks sent from other threads, not yet run.
    injected: SegQueue<Runnable>,
    /// Parks the worker in its driver and wakes it.
    parker: Parker,
    /// Tasks of this worker whose future still exists.
    pub(crate) load: AtomicUsize,
    /// Set once the worker has cancelled its tasks for good.
    closed: AtomicBool,
}

impl Shared {
    /// Whether this worker is the one running on the calling thread.
    pub(crate) fn is_current(self: &Arc<Self>) -> bool {
        context::with_current(|core| core.is_some_and(|c| c.scheduler.owns(self)))
    }

    /// Makes sure the worker sees work published before this call; wakes
    /// its driver only if it is parked (see `park`).
    pub(crate) fn notify(&self) {
        self.parker.notify();
    }

    /// The worker's park state.
    pub(crate) fn parker(&self) -> &Parker {
        &self.parker
    }

    /// Tasks of this worker whose future still exists.
    pub(crate) fn load(&self) -> usize {
        self.load.load(Ordering::Relaxed)
    }

    /// Queues the first run of a task `spawn_on` created for this worker.
    ///
    /// The runnable's future must be safe to drop on the calling thread
    /// before its first poll (see the module docs): if the worker has shut
    /// down, it is dropped here.
    pub(crate) fn inject(self: &Arc<Self>, runnable: Runnable) {
        let mut runnable = Some(runnable);
        context::with_current(|core| {
            if let Some(core) = core.filter(|c| c.scheduler.owns(self)) {
                let r = runnable.take().expect("taken once");
                if !self.closed.load(Ordering::Acquire) {
                    core.scheduler.local.borrow_mut().push_back(r);
                }
            }
        });
        let Some(runnable) = runnable else { return };
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.injected.push(runnable);
        // Pairs with the fence in `Scheduler::close`: either the worker's
        // last drain sees this push, or this load sees `closed`.
        fence(Ordering::SeqCst);
        if self.closed.load(Ordering::Relaxed) {
            while let Some(r) = self.injected.pop() {
                drop(r);
            }
            return;
        }
        self.notify();
    }
}

/// Puts a woken task on a queue; see the module docs.
pub(crate) fn schedule(shared: &Arc<Shared>, runnable: Runnable) {
    let mut runnable = Some(runnable);
    let local = |core: Option<&super::executor::Core>| {
        if let Some(core) = core.filter(|c| c.scheduler.owns(shared)) {
            core.scheduler
                .local
                .borrow_mut()
                .push_back(runnable.take().expect("taken once"));
        }
    };
    // SAFETY: `local` only moves the runnable into the queue (a
    // `VecDeque` push, which may allocate); it runs no task, drops
    // nothing and leaves the current runtime as it is.
    unsafe { context::with_current_uncounted(local) };
    if let Some(runnable) = runnable {
        shared.remote.push(runnable);
        shared.notify();
    }
}

/// A worker's task queues and task registry.
pub(crate) struct Scheduler {
    shared: Arc<Shared>,
    /// Runnables woken on this thread.
    local: RefCell<VecDeque<Runnable>>,
    /// Wakers of all unfinished tasks.
    active: RefCell<ActiveTasks>,
    /// Set once the worker is shutting down.
    closing: Cell<bool>,
}

impl Scheduler {
    /// A scheduler whose driver `unpark` wakes.
    pub(crate) fn new(unpark: WakeHandle) -> Self {
        Scheduler {
            shared: Arc::new(Shared {
                remote: SegQueue::new(),
                injected: SegQueue::new(),
                parker: Parker::new(unpark),
                load: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
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
        let load = LoadGuard::new(&self.shared);
        let index = self.active.borrow_mut().reserve();
        let guard = ActiveGuard::new(index, &self.shared);
        let shared = self.shared.clone();
        let (runnable, handle) =
            async_task::spawn_local(task::wrap(fut, (guard, load)), move |r| {
                schedule(&shared, r)
            });
        self.active.borrow_mut().set(index, runnable.waker());
        if self.shared.closed.load(Ordering::Acquire) {
            // Shut down: the task is cancelled before it starts.
            drop(runnable);
        } else {
            self.local.borrow_mut().push_back(runnable);
        }
        JoinHandle::new(handle.fallible())
    }

    /// Enters a task that was spawned elsewhere (`spawn_on`) into the
    /// registry, on its first poll; `waker` is its own.
    pub(crate) fn register(&self, waker: &Waker) -> ActiveGuard {
        let mut active = self.active.borrow_mut();
        let index = active.reserve();
        active.set(index, waker.clone());
        ActiveGuard::new(index, &self.shared)
    }

    /// A finished task's guard gives back its registry slot (unless the
    /// worker is closing and has emptied the registry itself).
    pub(crate) fn release(&self, index: usize) {
        if !self.closing.get() {
            self.active.borrow_mut().remove(index);
        }
    }

    /// Runs up to `budget` queued tasks; returns how many ran.
    ///
    /// Tasks woken or sent from other threads are moved to the local queue
    /// first (at most `budget` of them), so a task that keeps yielding
    /// cannot starve them.
    pub(crate) fn run_batch(&self, budget: usize) -> usize {
        {
            let mut local = self.local.borrow_mut();
            let mut moved = 0;
            // `is_empty` is two loads where an empty `pop` costs ~30
            // instructions, and almost every turn finds both queues empty
            // (a wake on the worker's own thread goes to `local`). A push
            // that races past the check is seen by `has_work` before the
            // worker parks, or its notify ends the park.
            let remote = !self.shared.remote.is_empty();
            while remote && moved < budget {
                match self.shared.remote.pop() {
                    Some(r) => local.push_back(r),
                    None => break,
                }
                moved += 1;
            }
            let injected = !self.shared.injected.is_empty();
            while injected && moved < budget {
                match self.shared.injected.pop() {
                    Some(r) => local.push_back(r),
                    None => break,
                }
                moved += 1;
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
        !self.local.borrow().is_empty()
            || !self.shared.remote.is_empty()
            || !self.shared.injected.is_empty()
    }

    /// Unfinished tasks.
    pub(crate) fn active_tasks(&self) -> usize {
        self.active.borrow().len()
    }

    /// Cancels every task for good: each unfinished task is queued one last
    /// time and its `Runnable` dropped, which drops its future here, on the
    /// worker's thread (cancelling the future's in-flight ops while the
    /// driver still exists). Tasks spawned or woken while this runs are
    /// cancelled too, and so is every task spawned here afterwards.
    ///
    /// The worker's runtime must be current on this thread. Calling it
    /// again does nothing more.
    pub(crate) fn shutdown(&self) {
        self.closing.set(true);
        self.cancel_all();
        self.close();
    }

    /// Wakes every registered task and drops every queued runnable until
    /// nothing new turns up.
    fn cancel_all(&self) {
        loop {
            let wakers = self.active.borrow_mut().drain();
            let mut progressed = !wakers.is_empty();
            for waker in wakers {
                waker.wake();
            }
            progressed |= self.drop_queued();
            if !progressed {
                break;
            }
        }
    }

    /// Drops every queued runnable; returns whether there was any.
    fn drop_queued(&self) -> bool {
        let mut any = false;
        loop {
            let next = self.local.borrow_mut().pop_front();
            let next = next
                .or_else(|| self.shared.remote.pop())
                .or_else(|| self.shared.injected.pop());
            let Some(runnable) = next else { return any };
            drop(runnable);
            any = true;
        }
    }

    /// Marks the worker closed, then waits until every task future of this
    /// worker is gone: those another thread was waking (or injecting) as
    /// the registry was drained arrive on a queue shortly.
    fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        // Pairs with the fence in `Shared::inject`.
        fence(Ordering::SeqCst);
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            self.cancel_all();
            if self.shared.load.load(Ordering::Acquire) == 0 {
                return;
            }
            if start.elapsed() > IN_TRANSIT_LIMIT {
                // A waking thread stalled for seconds: leak its task rather
                // than wait forever or drop it on the wrong thread.
                return;
            }
            spins += 1;
            if spins < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
