//! The epoll instance: registering descriptors and waiting for events.
//!
//! Sockets are registered once, edge-triggered, for everything the driver
//! may ever wait on (`IN | OUT | RDHUP`); the driver keeps the readiness it
//! learned per descriptor (`fd_table`) and only asks the kernel again
//! after a syscall said `EAGAIN`. The wake eventfd is registered
//! level-triggered. Every event carries the descriptor number as its
//! data; [`WAKE_TOKEN`] (never a valid descriptor) marks the eventfd.
//!
//! A descriptor leaves the set by itself when it is closed, so nothing is
//! ever deregistered explicitly.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Event data of the wake eventfd.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// What a socket is registered for.
const SOCKET_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// An epoll instance and its event buffer.
pub(crate) struct Poller {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

/// One event as the driver sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    /// The event data: a descriptor, or [`WAKE_TOKEN`].
    pub(crate) token: u64,
    /// The `EPOLL*` bits.
    pub(crate) events: u32,
}

impl Poller {
    /// Creates an epoll instance that returns at most `capacity` events per
    /// wait.
    pub(crate) fn new(capacity: usize) -> io::Result<Poller> {
        // SAFETY: plain syscall with no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Poller {
            // SAFETY: `epoll_create1` just returned this descriptor; nobody
            // else owns it.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
        })
    }

    /// Adds the wake eventfd, level-triggered.
    pub(crate) fn add_waker(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, WAKE_TOKEN)
    }

    /// Adds a socket, edge-triggered for reads and writes. A descriptor
    /// that is already in the set (a duplicate of a registered socket
    /// shares its file) is modified instead.
    pub(crate) fn add_socket(&self, fd: RawFd) -> io::Result<()> {
        match self.ctl(libc::EPOLL_CTL_ADD, fd, SOCKET_EVENTS, fd as u64) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.ctl(libc::EPOLL_CTL_MOD, fd, SOCKET_EVENTS, fd as u64)
            }
            other => other,
        }
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live local the kernel reads during the call.
        let r = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Waits up to `timeout` (`None`: without limit) for events; returns
    /// how many there are (read them with [`event`](Self::event)). A wait
    /// cut short by a signal returns 0.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let ms = match timeout {
            None => -1,
            // Rounded up: a wait that ends before its deadline only makes
            // the caller wait again.
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000);
                ms.min(i32::MAX as u128) as libc::c_int
            }
        };
        // SAFETY: the kernel writes at most `events.len()` entries into the
        // buffer, which lives for the whole call.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    /// Event `i` of the last [`wait`](Self::wait) (`i` below what it
    /// returned).
    pub(crate) fn event(&self, i: usize) -> Event {
        let ev = self.events[i];
        // Copied out of the (packed) struct before use.
        let (token, events) = (ev.u64, ev.events);
        Event { token, events }
    }
}
