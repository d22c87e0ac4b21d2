//! The executor of one worker: [`Runtime`], its [`Core`] and the loop.
//!
//! # The loop
//!
//! ```text
//! loop {
//!     poll the main future if it was woken      (block_on only; return when Ready)
//!     run up to TASK_BUDGET queued tasks
//!     driver.wait(ZERO)  if anything is runnable (never blocks)
//!     driver.wait(None)  otherwise, if the parker lets it park
//!                        (blocks until a completion, a timer or a wake)
//! }
//! ```
//!
//! Every turn passes through the driver, so completions and timers are
//! processed at least once per `TASK_BUDGET` tasks however busy the tasks
//! are. Worker 0 runs this loop inside `block_on`; workers `1..n` run it
//! on their own threads until the runtime is dropped (`workers`).
//!
//! # Dropping a runtime
//!
//! Workers `1..n` are asked to stop. Worker 0, with its runtime current
//! again, cancels every unfinished task (dropping its future, which cancels
//! its in-flight ops through the still-present driver), then drops the
//! driver, which cancels and drains whatever is still in flight; the other
//! workers do the same on their threads. Then their threads are joined.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::builder::Builder;
use super::context;
use super::join::JoinHandle;
use super::scheduler::{Scheduler, Shared};
use super::spawn_on::spawn_on_set;
use super::workers::{self, Threads, WorkerSet};
use crate::io::driver::{self, DriverConfig, KeepAlive, OpKey, PlatformDriver};
use crate::loom::sync::atomic::{AtomicBool, Ordering};

/// Tasks run between two passes through the driver.
pub(crate) const TASK_BUDGET: usize = 128;

/// One worker's state, shared (on its thread) by its owner (the
/// [`Runtime`] or the worker thread) and the thread-local context.
pub(crate) struct Core {
    pub(crate) scheduler: Scheduler,
    /// `None` once dropped (or in driver-less unit tests).
    driver: RefCell<Option<PlatformDriver>>,
    /// Set when the driver, on drop, could not drain and leaked the memory
    /// the kernel may still write: ops that outlive it leak their buffers
    /// too.
    driver_leaked: Cell<bool>,
    /// The driver's failures: see [`wait`](Self::wait).
    fault: DriverFault,
    /// This worker's index in `workers`.
    id: usize,
    /// Every worker of the runtime, this one included.
    workers: Arc<WorkerSet>,
}

/// What a [`Core`] remembers of its driver's failures.
#[derive(Default)]
struct DriverFault {
    /// The first hard error the driver's `wait` returned; kept for good
    /// (a driver that failed that way cannot be trusted to complete new
    /// ops) and reported by [`Core::driver_fault`].
    error: RefCell<Option<io::Error>>,
    /// Whether `error` is set (checked on every op submission).
    failed: Cell<bool>,
    /// How long to sleep after the next failed `wait`: zero after a
    /// success, then [`FAULT_BACKOFF_MIN`] doubling to
    /// [`FAULT_BACKOFF_MAX`] while waits keep failing.
    backoff: Cell<Duration>,
}

/// The first sleep after a failed driver `wait`.
const FAULT_BACKOFF_MIN: Duration = Duration::from_millis(1);

/// The longest sleep after a failed driver `wait`.
const FAULT_BACKOFF_MAX: Duration = Duration::from_millis(100);

impl Core {
    /// Worker `id` of `workers`, around `driver` (`None` only in tests).
    pub(crate) fn new(
        driver: Option<PlatformDriver>,
        scheduler: Scheduler,
        id: usize,
        workers: Arc<WorkerSet>,
    ) -> Self {
        debug_assert!(workers.get(id).is_some_and(|s| scheduler.owns(s)));
        Core {
            scheduler,
            driver: RefCell::new(driver),
            driver_leaked: Cell::new(false),
            fault: DriverFault::default(),
            id,
            workers,
        }
    }

    /// This worker's index.
    pub(crate) fn worker_id(&self) -> usize {
        self.id
    }

    /// Every worker of the runtime.
    pub(crate) fn workers(&self) -> &Arc<WorkerSet> {
        &self.workers
    }

    /// Runs `f` with the driver; `None` if it is gone.
    ///
    /// # Panics
    ///
    /// If the driver is already in use further up this thread's stack.
    #[inline]
    pub(crate) fn with_driver<R>(&self, f: impl FnOnce(&mut PlatformDriver) -> R) -> Option<R> {
        let mut driver = self.driver.try_borrow_mut().unwrap_or_else(|_| {
            panic!(
                "veloq: re-entrant use of the I/O driver: code running inside a driver call \
                 (a waker or a destructor) tried to use the driver again"
            )
        });
        driver.as_mut().map(f)
    }

    /// As [`with_driver`](Self::with_driver), but `None` also where the
    /// driver is in use further up the stack (for destructors, which must
    /// not panic).
    pub(crate) fn with_driver_if_free<R>(
        &self,
        f: impl FnOnce(&mut PlatformDriver) -> R,
    ) -> Option<R> {
        self.driver.try_borrow_mut().ok()?.as_mut().map(f)
    }

    /// Cancels op `key` of this core's driver (its future was dropped),
    /// handing it `keep`. Works from any runtime or none. Where the driver
    /// is gone it has drained (`keep` is dropped) or leaked (`keep` is
    /// leaked too); where it is busy further up the stack (a destructor
    /// running inside a driver call), `keep` and the slot are leaked rather
    /// than freed under the kernel.
    pub(crate) fn cancel_op(&self, key: OpKey, keep: Option<KeepAlive>) {
        let Ok(mut driver) = self.driver.try_borrow_mut() else {
            std::mem::forget(keep);
            return;
        };
        match driver.as_mut() {
            Some(d) => driver::Driver::cancel(d, key, keep),
            None if self.driver_leaked.get() => std::mem::forget(keep),
            None => drop(keep),
        }
    }

    /// One pass through the driver. Its errors never panic and never end
    /// the loop:
    ///
    /// - an interruption is no error;
    /// - a shortage (`ENOMEM`, `ENOBUFS`, `EAGAIN`, `EBUSY`) is retried:
    ///   the worker sleeps a little (1 ms, doubling to 100 ms while the
    ///   waits keep failing) and the loop goes on;
    /// - any other error is recorded, and every op submitted from then on
    ///   fails with it ([`driver_fault`](Self::driver_fault)); the loop goes
    ///   on with the same backoff, so that ops already in the kernel still
    ///   complete where the driver can still reap them. Those are never
    ///   resolved early: the kernel may still write their buffers.
    fn wait(&self, timeout: Option<Duration>) {
        let res = self.with_driver(|d| driver::Driver::wait(d, timeout));
        let e = match res {
            Some(Ok(())) | None => {
                self.fault.backoff.set(Duration::ZERO);
                return;
            }
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => return,
            Some(Err(e)) => e,
        };
        if !is_shortage(&e) {
            let mut error = self.fault.error.borrow_mut();
            if error.is_none() {
                *error = Some(e);
                self.fault.failed.set(true);
            }
        }
        let backoff = self.fault.backoff.get().max(FAULT_BACKOFF_MIN);
        self.fault.backoff.set((backoff * 2).min(FAULT_BACKOFF_MAX));
        std::thread::sleep(backoff);
    }

    /// The hard error the driver's `wait` failed with, if it ever did: a
    /// new op must fail with it rather than be submitted (see
    /// [`wait`](Self::wait)).
    /// Records `e` as the driver's hard failure (tests of what follows).
    #[cfg(test)]
    pub(crate) fn inject_fault(&self, e: io::Error) {
        *self.fault.error.borrow_mut() = Some(e);
        self.fault.failed.set(true);
    }

    #[inline]
    pub(crate) fn driver_fault(&self) -> Option<io::Error> {
        if !self.fault.failed.get() {
            return None;
        }
        let error = self.fault.error.borrow();
        let e = error.as_ref()?;
        Some(match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), format!("veloq: the I/O driver failed: {e}")),
        })
    }

    /// Runs a batch of tasks, then passes through the driver: without
    /// blocking if a task has work or `more()` (asked after the batch) says
    /// the caller has, else parked until a completion, a timer or a wake.
    pub(crate) fn turn(&self, more: impl Fn() -> bool) {
        self.scheduler.run_batch(TASK_BUDGET);
        let parker = self.scheduler.shared().parker();
        if more() || self.scheduler.has_work() || !parker.park_begin() {
            self.wait(Some(Duration::ZERO));
        } else {
            self.wait(None);
            parker.park_end();
        }
    }

    /// Cancels every task, then drops the driver. The core must be current.
    pub(crate) fn shutdown(&self) {
        self.scheduler.shutdown();
        let driver = self.driver.borrow_mut().take();
        let leaks = driver::leaked_drains();
        drop(driver);
        if driver::leaked_drains() != leaks {
            // Possibly another thread's driver: leaking then is only
            // wasteful, never unsound.
            self.driver_leaked.set(true);
        }
        // Dropping the driver may have released the last wakers of tasks
        // cancelled above; nothing may have been queued, but be thorough.
        self.scheduler.shutdown();
    }
}

/// Driver errors that mean "not now" rather than "broken": out of memory
/// or another resource, busy, try again.
fn is_shortage(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ENOBUFS) {
        return true;
    }
    matches!(
        e.kind(),
        io::ErrorKind::OutOfMemory | io::ErrorKind::WouldBlock | io::ErrorKind::ResourceBusy
    )
}

/// The main future's waker: a flag, plus a notification of the worker when
/// set from another thread.
struct MainWaker {
    notified: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Ordering::Release);
        if !self.shared.is_current() {
            self.shared.notify();
        }
    }
}

/// A veloq runtime: one worker per thread, each with its executor, its
/// I/O driver and its timers. Worker 0 is the thread that created it.
///
/// [`block_on`](Runtime::block_on) runs a future on worker 0; with
/// [`Builder::workers`] above 1, workers `1..n` run on threads of their
/// own from `build` until the runtime is dropped, and tasks reach them
/// through [`spawn_on`](crate::spawn_on) and
/// [`spawn_balanced`](crate::spawn_balanced).
///
/// Tasks spawned on worker 0 stay with it between `block_on` calls (those
/// of other workers keep running on their threads meanwhile). Dropping the
/// runtime stops every worker: each cancels its unfinished tasks (dropping
/// their futures, which cancels their I/O), shuts its driver down (waiting
/// for the kernel to let go of every op) and its thread ends; the drop
/// returns once every worker thread has been joined.
///
/// A `Runtime` is neither `Send` nor `Sync`: it and worker 0's tasks belong
/// to the thread that created it.
///
/// ```
/// let rt = veloq::Runtime::builder().entries(64).build()?;
/// let n = rt.block_on(async { veloq::spawn(async { 1 + 1 }).await.unwrap() });
/// assert_eq!(n, 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    pub(crate) core: Rc<Core>,
    /// Workers `1..n`, if any.
    threads: Option<Threads>,
}

impl Runtime {
    /// A runtime with the default settings.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`] to configure a runtime.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Creates the workers: worker 0 here, `workers - 1` threads.
    pub(crate) fn with_config(
        config: &DriverConfig,
        workers: usize,
        pin: bool,
    ) -> io::Result<Runtime> {
        let (core, threads) = workers::start(config, workers, pin)?;
        Ok(Runtime { core, threads })
    }

    /// Runs `fut` to completion on worker 0 (this thread), running worker
    /// 0's tasks and I/O meanwhile; returns its output.
    ///
    /// # Panics
    ///
    /// If a runtime is already running on this thread (nested `block_on`),
    /// and with whatever `fut` panics with.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let _enter = context::enter(&self.core);
        let core = &*self.core;
        let main = Arc::new(MainWaker {
            notified: AtomicBool::new(true),
            shared: core.scheduler.shared().clone(),
        });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        loop {
            if main.notified.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                    return out;
                }
            }
            core.turn(|| main.notified.load(Ordering::Acquire));
        }
    }

    /// Spawns `fut` on worker 0 from outside it; it starts running at the
    /// next [`block_on`](Runtime::block_on).
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.core.scheduler.spawn(fut)
    }

    /// [`spawn_on`](crate::spawn_on) from outside the runtime: runs `f` on
    /// worker `worker` (worker 0's tasks start at the next `block_on`).
    ///
    /// # Panics
    ///
    /// If `worker` is not below [`workers`](Runtime::workers).
    pub fn spawn_on<F, Fut>(&self, worker: usize, f: F) -> JoinHandle<Fut::Output>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        spawn_on_set(self.core.workers(), worker, f)
    }

    /// How many workers the runtime has.
    pub fn workers(&self) -> usize {
        self.core.workers().len()
    }

    /// Spawned tasks of worker 0 that have not finished.
    pub fn active_tasks(&self) -> usize {
        self.core.scheduler.active_tasks()
    }

    /// Which I/O driver this runtime's worker 0 runs on (the other
    /// workers choose theirs by the same settings): `IoUring` or `Epoll`
    /// on Linux (see [`Builder::driver`]), `Iocp` on Windows.
    ///
    /// ```
    /// let rt = veloq::Runtime::new()?;
    /// println!("running on {}", rt.driver_kind());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn driver_kind(&self) -> super::DriverKind {
        self.core
            .with_driver(|d| crate::io::driver::platform_kind(d))
            .expect("a live runtime has its driver")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let mut threads = self.threads.take();
        if let Some(t) = &threads {
            t.request_stop();
        }
        {
            let _enter = context::enter_for_shutdown(&self.core);
            self.core.shutdown();
        }
        if let Some(t) = &mut threads {
            t.stop_and_join();
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.workers())
            .field("active_tasks", &self.active_tasks())
            .finish()
    }
}
