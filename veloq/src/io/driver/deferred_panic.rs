//! [`DeferredPanic`]: a panic caught while a driver processes a batch of
//! completions, kept until the batch is done.
//!
//! A waker or cancel hook runs inside the driver's loop over a batch of
//! completions. Should one panic, unwinding from there would drop the rest
//! of the batch (completions already taken from the kernel) and leave their
//! tasks waiting forever. So each driver catches the panic, finishes the
//! batch and the work after it (re-arming, timers, deferred releases), and
//! only then re-raises the first panic it caught.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use super::TimerWheel;

/// The first panic caught in a batch; see the module docs.
#[derive(Default)]
pub(crate) struct DeferredPanic(Option<Box<dyn Any + Send>>);

impl DeferredPanic {
    /// Runs `f`, keeping its panic (the first one only) instead of
    /// unwinding.
    #[inline]
    pub(crate) fn catch<R>(&mut self, f: impl FnOnce() -> R) -> Option<R> {
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(payload) => {
                self.keep(payload);
                None
            }
        }
    }

    /// Keeps `payload` unless an earlier panic is kept already.
    pub(crate) fn keep(&mut self, payload: Box<dyn Any + Send>) {
        if self.0.is_none() {
            self.0 = Some(payload);
        }
    }

    /// Fires the timers due at `now`, finishing them all even if a waker
    /// panics (the wheel takes each timer off its due list before waking
    /// it, so every retry makes progress).
    pub(crate) fn expire_timers(&mut self, timers: &mut TimerWheel, now: Instant) {
        while self.catch(|| timers.expire(now)).is_none() {}
    }

    /// Re-raises the kept panic, now that the batch is done.
    pub(crate) fn resume(&mut self) {
        if let Some(payload) = self.0.take() {
            panic::resume_unwind(payload);
        }
    }
}
