//! STUB (owned by the runtime helper): the thread's current runtime.

use crate::io::driver::PlatformDriver;

/// Runs `f` with the current runtime's driver.
///
/// # Panics
///
/// Outside a veloq runtime, with a message saying so.
pub(crate) fn with_driver<R>(_f: impl FnOnce(&mut PlatformDriver) -> R) -> R {
    todo!()
}

/// As [`with_driver`], but `None` where no runtime (or driver) is current.
pub(crate) fn try_with_driver<R>(_f: impl FnOnce(&mut PlatformDriver) -> R) -> Option<R> {
    todo!()
}
