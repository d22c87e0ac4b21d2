//! The thread's current runtime.
//!
//! A runtime is *current* on a thread while that thread is inside its
//! `block_on`, and while the runtime is being dropped (so that task futures
//! dropped then can still cancel their ops through [`try_with_driver`]).
//! At most one runtime is current per thread: `block_on` inside `block_on`
//! panics.
//!
//! Everything that needs "the" runtime — `spawn`, every op, every timer —
//! finds it here. The driver sits in a `RefCell`; a second borrow while one
//! is active (a waker or destructor that runs inside a driver call and
//! calls back into the driver) panics with a message saying so rather than
//! aliasing the driver.

use std::cell::RefCell;
use std::rc::Rc;

use super::executor::Core;
use crate::io::driver::PlatformDriver;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// The panic message for runtime functions called outside a runtime.
pub(crate) const NO_RUNTIME: &str =
    "veloq: no runtime on this thread; call this from within veloq::block_on or #[veloq::main]";

/// The current runtime, if any (`None` also while the thread's locals are
/// being destroyed).
pub(crate) fn current() -> Option<Rc<Core>> {
    CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()
}

/// Calls `f` with the current runtime, if any, without touching reference
/// counts.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Core>) -> R) -> R {
    let mut f = Some(f);
    let out = CURRENT.try_with(|c| match c.try_borrow() {
        Ok(c) => Some((f.take().expect("called once"))(c.as_deref())),
        Err(_) => None,
    });
    match out {
        Ok(Some(r)) => r,
        _ => (f.take().expect("called once"))(None),
    }
}

/// Whether a runtime is current on this thread.
pub(crate) fn is_running() -> bool {
    with_current(|c| c.is_some())
}

/// Runs `f` with the current runtime's driver.
///
/// # Panics
///
/// Outside a veloq runtime, with a message saying so; on re-entrant use of
/// the driver; after the runtime's driver has been dropped.
pub(crate) fn with_driver<R>(f: impl FnOnce(&mut PlatformDriver) -> R) -> R {
    let core = current().unwrap_or_else(|| panic!("{NO_RUNTIME}"));
    core.with_driver(f)
        .unwrap_or_else(|| panic!("veloq: the runtime's I/O driver has already shut down"))
}

/// As [`with_driver`], but `None` where no runtime is current or its driver
/// is gone (used by destructors, which may run after the runtime).
///
/// # Panics
///
/// On re-entrant use of the driver.
pub(crate) fn try_with_driver<R>(f: impl FnOnce(&mut PlatformDriver) -> R) -> Option<R> {
    current()?.with_driver(f)
}

/// Makes `core` current until the guard drops.
///
/// # Panics
///
/// If a runtime is already current on this thread (`block_on` inside
/// `block_on`).
pub(crate) fn enter(core: &Rc<Core>) -> EnterGuard {
    let entered = CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        let free = c.is_none();
        if free {
            *c = Some(core.clone());
        }
        free
    });
    if !entered {
        panic!(
            "veloq: cannot start a runtime from within a runtime: block_on was called while a \
             runtime is already running on this thread; spawn the future or .await it instead"
        );
    }
    EnterGuard { prev: None }
}

/// Makes `core` current until the guard drops, whatever was current before
/// (restored then). Used to drop a runtime's tasks in its own context.
pub(crate) fn enter_for_shutdown(core: &Rc<Core>) -> EnterGuard {
    let prev = CURRENT.try_with(|c| c.borrow_mut().replace(core.clone()));
    EnterGuard {
        prev: prev.ok().flatten(),
    }
}

/// Restores the previously current runtime on drop (also on unwind).
pub(crate) struct EnterGuard {
    prev: Option<Rc<Core>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // The runtime we leave is dropped here, outside the borrow.
        let _left = CURRENT.try_with(move |c| c.replace(prev));
    }
}
