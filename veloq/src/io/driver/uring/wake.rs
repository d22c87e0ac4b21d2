//! Cross-thread wake-ups: an eventfd that the ring always has a read
//! armed on.
//!
//! Another thread wakes the driver by writing to the eventfd; the armed
//! `READ` completes, so an `io_uring_enter` blocked in `wait` returns. The
//! driver re-arms the read after each such completion.
//!
//! # Coalescing
//!
//! `pending` is `true` from the first `unpark` after a wake was consumed
//! until the driver consumes the next one:
//!
//! ```text
//! unpark:   pending.swap(true)  == false  -> write(eventfd, 1)
//!                               == true   -> nothing (a wake is on its way)
//! driver:   wake READ completed -> pending.swap(false), re-arm the READ
//! ```
//!
//! The driver clears `pending` with a swap (a read-modify-write), so it
//! synchronises with every `unpark` that found `pending` already set: what
//! that thread published before calling `unpark` is visible to the driver
//! once it returns from `wait`.
//!
//! The eventfd is blocking; a write can only block once the counter nears
//! `u64::MAX`, which coalescing rules out.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::io::driver::Unpark;

/// The shared half of the wake mechanism (handed out as `WakeHandle`).
pub(crate) struct EventFdWaker {
    fd: OwnedFd,
    pending: AtomicBool,
}

impl EventFdWaker {
    /// Creates the eventfd.
    pub(crate) fn new() -> io::Result<Arc<EventFdWaker>> {
        // SAFETY: plain syscall with no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(EventFdWaker {
            // SAFETY: `eventfd` just returned this descriptor; nobody else
            // owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            pending: AtomicBool::new(false),
        }))
    }

    /// The descriptor the driver's armed `READ` reads.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The driver consumed a wake: later `unpark`s must write again.
    pub(crate) fn consumed(&self) {
        self.pending.swap(false, Ordering::AcqRel);
    }

    /// Writes to the eventfd whatever `pending` says (used by the driver's
    /// drop to complete the armed read for sure).
    pub(crate) fn force_write(&self) {
        self.pending.store(true, Ordering::Release);
        self.write();
    }

    fn write(&self) {
        let one: u64 = 1;
        loop {
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
