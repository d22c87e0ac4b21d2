//! Cross-thread wake-ups of the Linux drivers: an eventfd that the driver
//! watches (io_uring: an armed `READ`; epoll: a level-triggered entry in
//! its set).
//!
//! Another thread (or a blocking-pool thread that finished an op) wakes the
//! driver by writing to the eventfd; the driver's wait returns, and the
//! driver consumes the wake.
//!
//! # Coalescing
//!
//! `pending` is `true` from the first `unpark` after a wake was consumed
//! until the driver consumes the next one:
//!
//! ```text
//! unpark:  pending.swap(true) == false -> write(eventfd, 1)
//!                             == true  -> nothing (a wake is on its way)
//! driver:  counter drained (io_uring: by the READ; epoll: by `drain`),
//!          THEN pending.swap(false)
//! ```
//!
//! The counter is drained *before* `pending` is cleared: the other order
//! could swallow the write of an `unpark` that came in between and leave
//! `pending` set with nothing in the counter, so that no later `unpark`
//! would ever write again. The clearing swap is a read-modify-write, so it
//! synchronises with every `unpark` that found `pending` set: what that
//! thread published before calling `unpark` is visible to the driver once
//! it has consumed the wake. `eventfd/loom_tests.rs` checks both claims
//! under loom (`scripts/test-loom.sh`).
//!
//! io_uring's eventfd is blocking (its `READ` of a non-blocking file would
//! complete with `EAGAIN` instead of waiting); epoll's is non-blocking (its
//! driver drains it with a plain `read`). A write could only block or fail
//! once the counter nears `u64::MAX`, which coalescing rules out.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::Unpark;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::KernelObject;

/// The shared half of the wake mechanism (handed out as `WakeHandle`).
pub(crate) struct EventFdWaker {
    fd: OwnedFd,
    pending: AtomicBool,
    /// The counter, as the loom models see it (nothing in a normal build).
    kernel: KernelObject,
}

impl EventFdWaker {
    /// Creates the eventfd, non-blocking or not (see the module docs).
    pub(crate) fn new(nonblocking: bool) -> io::Result<Arc<EventFdWaker>> {
        let flags = if nonblocking {
            libc::EFD_CLOEXEC | libc::EFD_NONBLOCK
        } else {
            libc::EFD_CLOEXEC
        };
        // SAFETY: plain syscall with no pointers.
        let fd = unsafe { libc::eventfd(0, flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(EventFdWaker {
            // SAFETY: `eventfd` just returned this descriptor; nobody else
            // owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            pending: AtomicBool::new(false),
            kernel: KernelObject::new(),
        }))
    }

    /// The descriptor the driver watches or reads.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The driver's own read drained the counter (io_uring's `READ`
    /// completed): later `unpark`s must write again.
    pub(crate) fn consumed(&self) {
        self.pending.swap(false, Ordering::AcqRel);
    }

    /// The eventfd was readable (epoll): drains the counter, then lets
    /// later `unpark`s write again (in this order; see the module docs).
    pub(crate) fn drain(&self) {
        let mut counter: u64 = 0;
        loop {
            self.kernel.call();
            // SAFETY: reads 8 bytes into a live local from a descriptor this
            // struct owns.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), (&mut counter as *mut u64).cast(), 8) };
            if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        self.consumed();
    }

    /// Writes to the eventfd whatever `pending` says (used by a dropping
    /// driver to complete its armed read for sure).
    pub(crate) fn force_write(&self) {
        self.pending.store(true, Ordering::Release);
        self.write();
    }

    fn write(&self) {
        let one: u64 = 1;
        loop {
            self.kernel.call();
            // SAFETY: writes 8 bytes from a live local to a descriptor this
            // struct owns.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
    }
}

impl Unpark for EventFdWaker {
    fn unpark(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.write();
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(w: &EventFdWaker) -> Option<u64> {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live local from the waker's fd.
        let n = unsafe { libc::read(w.fd(), (&mut value as *mut u64).cast(), 8) };
        (n == 8).then_some(value)
    }

    #[test]
    fn unparks_coalesce_until_consumed() {
        let w = EventFdWaker::new(true).unwrap();
        w.unpark();
        w.unpark();
        w.unpark();
        assert_eq!(counter(&w), Some(1), "one write for three unparks");
        w.consumed();
        w.unpark();
        assert_eq!(counter(&w), Some(1), "writes again after consumed");
    }

    #[test]
    fn drain_empties_the_counter_and_rearms() {
        let w = EventFdWaker::new(true).unwrap();
        w.unpark();
        w.drain();
        assert_eq!(counter(&w), None, "drained (EAGAIN)");
        w.unpark();
        assert_eq!(counter(&w), Some(1));
    }
}
