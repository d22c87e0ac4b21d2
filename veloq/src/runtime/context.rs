//! The thread's current runtime.
//!
//! A runtime is *current* on a thread while that thread is inside its
//! `block_on`, and while the runtime is being dropped (so that task futures
//! dropped then can still cancel their ops through [`try_with_driver`]).
//! At most one runtime is current per thread: `block_on` inside `block_on`
//! panics.
//!
//! Everything that needs "the" runtime — `spawn`, every op, every timer —
//! finds it here. The driver sits in a `RefCell` in the `Core`; a second
//! borrow while one is active (a waker or destructor that runs inside a
//! driver call and calls back into the driver) panics with a message saying
//! so rather than aliasing the driver.
//!
//! # Invariants
//!
//! The current core is kept as a raw pointer in a `Cell` (a thread-local
//! with a constant initialiser and no destructor: reading it is one
//! thread-local load, with no lazy-init or destroyed-state check and no
//! borrow flag — this lookup runs on every driver call):
//!
//! - `CURRENT` is either null or a pointer obtained from `Rc::into_raw`,
//!   and it *owns* that one strong count. Only [`enter`],
//!   [`enter_for_shutdown`] and [`EnterGuard`]'s drop write it, and each
//!   write hands the count it replaces to its new owner (a guard's `prev`,
//!   or an `Rc` dropped there) — so the pointee stays alive as long as the
//!   pointer sits in `CURRENT`.
//! - Every `&Core` handed out ([`with_current`], [`with_driver`]) is
//!   backed by a strong count of its own taken for the duration of the call
//!   (`Rc` clone: a non-atomic increment), so code running inside the call
//!   may even switch or leave the current runtime (a destructor that drops
//!   another runtime) without freeing the core in use.
//! - A thread that ends while a runtime is current (impossible with the
//!   guards on the stack, which unwind first) would leak the count, never
//!   free the core early.

use std::cell::Cell;
use std::ptr;
use std::rc::Rc;

use super::executor::Core;
use crate::io::driver::PlatformDriver;

thread_local! {
    /// `Rc::into_raw` of the current core, or null; see the module docs.
    static CURRENT: Cell<*const Core> = const { Cell::new(ptr::null()) };
}

/// The panic message for runtime functions called outside a runtime.
pub(crate) const NO_RUNTIME: &str =
    "veloq: no runtime on this thread; call this from within veloq::block_on or #[veloq::main]";

/// The current runtime, if any. (`CURRENT` has no destructor, so this
/// works even while the thread's other locals are being destroyed; no
/// runtime is current by then.)
#[inline]
pub(crate) fn current() -> Option<Rc<Core>> {
    let ptr = CURRENT.with(Cell::get);
    if ptr.is_null() {
        return None;
    }
    // SAFETY: a non-null `CURRENT` came from `Rc::into_raw` and owns a
    // strong count (module invariants), so the core is alive; the new count
    // taken here is owned by the returned `Rc`.
    unsafe {
        Rc::increment_strong_count(ptr);
        Some(Rc::from_raw(ptr))
    }
}

/// Calls `f` with the current runtime, if any. The core is held by a count
/// of its own while `f` runs (see the module docs).
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Core>) -> R) -> R {
    f(current().as_deref())
}

/// As [`with_current`], without taking a count on the core: for the
/// wake path, which runs once per completion.
///
/// # Safety
///
/// `f` must not switch or leave the current runtime, nor drop anything
/// that could (a runtime, a task's future, a `Core`): with no count of its
/// own, the `&Core` it gets is kept alive only by `CURRENT`'s.
#[inline]
pub(crate) unsafe fn with_current_uncounted<R>(f: impl FnOnce(Option<&Core>) -> R) -> R {
    let ptr = CURRENT.with(Cell::get);
    // SAFETY: a non-null `CURRENT` came from `Rc::into_raw` and owns a
    // strong count (module invariants); the caller guarantees `f` leaves
    // `CURRENT` as it is, so that count, and the core, outlive the call.
    f(unsafe { ptr.as_ref() })
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
#[inline]
pub(crate) fn with_driver<R>(f: impl FnOnce(&mut PlatformDriver) -> R) -> R {
    let Some(core) = current() else { no_runtime() };
    match core.with_driver(f) {
        Some(r) => r,
        None => driver_gone(),
    }
}

#[cold]
#[inline(never)]
pub(crate) fn no_runtime() -> ! {
    panic!("{NO_RUNTIME}")
}

/// Panics unless `core` is the current runtime: an op or timer is polled
/// only by the runtime (worker) it belongs to.
#[inline]
pub(crate) fn assert_current(core: &Rc<Core>) {
    if CURRENT.with(Cell::get) != Rc::as_ptr(core) {
        wrong_runtime();
    }
}

#[cold]
#[inline(never)]
fn wrong_runtime() -> ! {
    if CURRENT.with(Cell::get).is_null() {
        panic!(
            "veloq: an operation or timer was polled outside its runtime; poll it inside the \
             block_on or task of the runtime (worker) that started it"
        )
    }
    panic!(
        "veloq: an operation or timer was polled on another runtime or worker than the one that \
         started it; it belongs to its first runtime (worker) and must be polled there"
    )
}

#[cold]
#[inline(never)]
pub(crate) fn driver_gone() -> ! {
    panic!("veloq: the runtime's I/O driver has already shut down")
}

/// As [`with_driver`], but `None` where no runtime is current or its driver
/// is gone (used by destructors, which may run after the runtime).
///
/// # Panics
///
/// On re-entrant use of the driver.
#[inline]
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
        let free = c.get().is_null();
        if free {
            // The count taken here is owned by `CURRENT` until the guard's
            // drop takes it back (module invariants).
            c.set(Rc::into_raw(core.clone()));
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
    let prev = CURRENT.with(|c| c.replace(Rc::into_raw(core.clone())));
    EnterGuard {
        prev: take_count(prev),
    }
}

/// Restores the previously current runtime on drop (also on unwind).
pub(crate) struct EnterGuard {
    prev: Option<Rc<Core>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take().map_or(ptr::null(), Rc::into_raw);
        // The count of the runtime we leave moves out of `CURRENT` into
        // `_left` and is dropped here, after `CURRENT` is consistent again.
        let _left = take_count(CURRENT.with(|c| c.replace(prev)));
    }
}

/// Takes over the strong count a pointer removed from `CURRENT` owned.
fn take_count(ptr: *const Core) -> Option<Rc<Core>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the pointer was just taken out of `CURRENT`, which owned one
    // strong count through it (module invariants); that count moves into
    // the returned `Rc`, and `CURRENT` no longer holds the pointer.
    Some(unsafe { Rc::from_raw(ptr) })
}
