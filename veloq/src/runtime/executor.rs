//! The single-threaded executor: [`Runtime`], its [`Core`] and the
//! `block_on` loop.
//!
//! # The loop
//!
//! ```text
//! loop {
//!     poll the main future if it was woken      (return when Ready)
//!     run up to TASK_BUDGET queued tasks
//!     driver.wait(ZERO)  if anything is runnable (never blocks)
//!     driver.wait(None)  otherwise               (blocks until a completion,
//!                                                 a timer or a cross-thread wake)
//! }
//! ```
//!
//! Every turn passes through the driver, so completions and timers are
//! processed at least once per `TASK_BUDGET` tasks however busy the tasks
//! are.
//!
//! # Dropping a runtime
//!
//! With the runtime current again: first every unfinished task is
//! cancelled and its future dropped (cancelling its in-flight ops through
//! the still-present driver), then the driver itself is dropped, which
//! cancels and drains whatever is still in flight.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::builder::Builder;
use super::context;
use super::join::JoinHandle;
use super::scheduler::{Scheduler, Shared};
use crate::io::driver::{Driver, DriverConfig, PlatformDriver, WakeHandle};

/// Tasks run between two passes through the driver.
pub(crate) const TASK_BUDGET: usize = 128;

/// One runtime's state, shared (on its thread) by the [`Runtime`] and the
/// thread-local context.
pub(crate) struct Core {
    pub(crate) scheduler: Scheduler,
    /// `None` once dropped (or in driver-less unit tests).
    driver: RefCell<Option<PlatformDriver>>,
}

impl Core {
    /// A core around `driver` (`None` only in tests); `unpark` wakes it.
    pub(crate) fn new(driver: Option<PlatformDriver>, unpark: WakeHandle) -> Self {
        Core {
            scheduler: Scheduler::new(unpark),
            driver: RefCell::new(driver),
        }
    }

    /// Runs `f` with the driver; `None` if it is gone.
    ///
    /// # Panics
    ///
    /// If the driver is already in use further up this thread's stack.
    pub(crate) fn with_driver<R>(&self, f: impl FnOnce(&mut PlatformDriver) -> R) -> Option<R> {
        let mut driver = self.driver.try_borrow_mut().unwrap_or_else(|_| {
            panic!(
                "veloq: re-entrant use of the I/O driver: code running inside a driver call \
                 (a waker or a destructor) tried to use the driver again"
            )
        });
        driver.as_mut().map(f)
    }

    /// One pass through the driver.
    fn wait(&self, timeout: Option<Duration>) {
        let res = self.with_driver(|d| d.wait(timeout));
        match res {
            Some(Ok(())) | None => {}
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Some(Err(e)) => panic!("veloq: the I/O driver failed: {e}"),
        }
    }

    /// Cancels every task, then drops the driver. The core must be current.
    fn shutdown(&self) {
        self.scheduler.shutdown();
        let driver = self.driver.borrow_mut().take();
        drop(driver);
        // Dropping the driver may have released the last wakers of tasks
        // cancelled above; nothing may have been queued, but be thorough.
        self.scheduler.shutdown();
    }
}

/// The main future's waker: a flag, plus a driver wake when set from
/// another thread.
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
            self.shared.unpark();
        }
    }
}

/// A single-threaded veloq runtime: an executor, an I/O driver and its
/// timers, on the thread that created it.
///
/// Tasks spawned on it stay with it between [`block_on`](Runtime::block_on)
/// calls. Dropping it cancels every unfinished task (dropping their futures,
/// which cancels their I/O) and then shuts the driver down.
///
/// A `Runtime` is neither `Send` nor `Sync`: it and its tasks belong to one
/// thread.
///
/// ```
/// let rt = veloq::Runtime::builder().entries(64).build()?;
/// let n = rt.block_on(async { veloq::spawn(async { 1 + 1 }).await.unwrap() });
/// assert_eq!(n, 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    core: Rc<Core>,
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

    /// Creates the driver and the runtime around it.
    pub(crate) fn with_config(config: &DriverConfig) -> io::Result<Runtime> {
        let driver = PlatformDriver::new(config)?;
        let unpark = driver.wake_handle();
        Ok(Runtime {
            core: Rc::new(Core::new(Some(driver), unpark)),
        })
    }

    /// Runs `fut` to completion on this thread, running the runtime's tasks
    /// and I/O meanwhile; returns its output.
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
            core.scheduler.run_batch(TASK_BUDGET);
            let runnable = main.notified.load(Ordering::Acquire) || core.scheduler.has_work();
            core.wait(if runnable { Some(Duration::ZERO) } else { None });
        }
    }

    /// Spawns `fut` on this runtime from outside it; it starts running at
    /// the next [`block_on`](Runtime::block_on).
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.core.scheduler.spawn(fut)
    }

    /// Spawned tasks that have not finished.
    pub fn active_tasks(&self) -> usize {
        self.core.scheduler.active_tasks()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _enter = context::enter_for_shutdown(&self.core);
        self.core.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("active_tasks", &self.active_tasks())
            .finish()
    }
}
