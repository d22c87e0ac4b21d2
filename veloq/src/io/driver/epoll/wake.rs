//! Cross-thread wake-ups of the epoll driver: a non-blocking eventfd in
//! the driver's epoll set (level-triggered, so a wake cannot be lost by an
//! unread counter).
//!
//! Another thread (or a blocking-pool thread that finished an op) wakes the
//! driver by writing to the eventfd; `epoll_wait` returns and the driver
//! drains the counter.
//!
//! # Coalescing
//!
//! `pending` is `true` from the first `unpark` after a wake was consumed
//! until the driver consumes the next one:
//!
//! ```text
//! unpark:  pending.swap(true) == false -> write(eventfd, 1)
//!                             == true  -> nothing (a wake is on its way)
//! driver:  eventfd readable -> read (counter to 0), THEN pending.swap(false)
//! ```
//!
//! The driver drains the counter *before* it clears `pending`: the other
//! order could swallow the write of an `unpark` that came in between and
//! leave `pending` set with nothing in the counter, so that no later
//! `unpark` would ever write again. The clearing swap is a
//! read-modify-write, so it synchronises with every `unpark` that found
//! `pending` set: what that thread published before calling `unpark` is
//! visible to the driver once `consume` returns.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::io::driver::Unpark;

/// The shared half of the wake mechanism (handed out as `WakeHandle`).
pub(crate) struct EpollWaker {
    fd: OwnedFd,
    pending: AtomicBool,
}

impl EpollWaker {
    /// Creates the (non-blocking) eventfd.
    pub(crate) fn new() -> io::Result<Arc<EpollWaker>> {
        // SAFETY: plain syscall with no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(EpollWaker {
            // SAFETY: `eventfd` just returned this descriptor; nobody else
            // owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            pending: AtomicBool::new(false),
        }))
    }

    /// The descriptor the driver watches.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The eventfd was readable: drain it, then let later `unpark`s write
    /// again (in this order; see the module docs).
    pub(crate) fn consume(&self) {
        let mut counter: u64 = 0;
        loop {
            // SAFETY: reads 8 bytes into a live local from a descriptor this
            // struct owns.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), (&mut counter as *mut u64).cast(), 8) };
            if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        self.pending.swap(false, Ordering::AcqRel);
    }
}

impl Unpark for EpollWaker {
    fn unpark(&self) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a live local to a descriptor this
            // struct owns.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            // EAGAIN would mean the counter is near `u64::MAX`, which
            // coalescing rules out; the driver is woken either way.
            if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
    }
}
