//! What the epoll driver knows per descriptor: whether it is in the epoll
//! set, and per direction (read, write) whether it may be ready and which
//! ops wait for it.
//!
//! # Readiness
//!
//! Sockets are registered edge-triggered, so the kernel reports a
//! direction only when it *becomes* ready. A [`Side`] therefore remembers:
//!
//! ```text
//! ready = true    after registration and after every event for the side:
//!                 a syscall may succeed, so ops try it
//! ready = false   after a syscall on the side said EAGAIN: ops skip the
//!                 syscall and queue until the next event
//! ```
//!
//! # Waiters
//!
//! Ops that got `EAGAIN` (or found the side not ready, or others already
//! queued) wait in FIFO order. On an event the driver retries them from
//! the front until one says `EAGAIN` again, so the ops on one side of a
//! descriptor complete in submission order, as on io_uring. A waiter is
//! removed when its op completes or is cancelled; the queue never holds a
//! stale key. Queues keep their capacity, so a descriptor in steady use
//! allocates nothing.
//!
//! On a stream socket a short transfer also clears the side (a short
//! `recv` emptied the receive queue, a short `send` filled the send
//! buffer): new data or buffer space raises a fresh edge, and the futile
//! `EAGAIN` call is saved.

use std::collections::VecDeque;

use crate::io::driver::OpKey;
use crate::sys::RawFd;

/// A direction an op waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Readable (recv, recvfrom, accept).
    Read,
    /// Writable (send, sendto, connect).
    Write,
}

/// One direction of a descriptor; see the module docs.
#[derive(Default)]
pub(crate) struct Side {
    ready: bool,
    waiters: VecDeque<OpKey>,
}

impl Side {
    /// Whether a new op may try its syscall now: the side may be ready and
    /// no earlier op is waiting (which would have to go first).
    pub(crate) fn can_try(&self) -> bool {
        self.ready && self.waiters.is_empty()
    }

    /// A syscall said `EAGAIN` (`false`) or an event arrived (`true`).
    pub(crate) fn set_ready(&mut self, ready: bool) {
        self.ready = ready;
    }

    /// Queues `key` behind the other waiters.
    pub(crate) fn park(&mut self, key: OpKey) {
        self.waiters.push_back(key);
    }

    /// The oldest waiter.
    pub(crate) fn front(&self) -> Option<OpKey> {
        self.waiters.front().copied()
    }

    /// Removes the oldest waiter (it completed).
    pub(crate) fn pop_front(&mut self) {
        self.waiters.pop_front();
    }

    /// Removes `key` wherever it waits (it was cancelled); `false` if it
    /// was not waiting here.
    pub(crate) fn remove(&mut self, key: OpKey) -> bool {
        match self.waiters.iter().position(|k| *k == key) {
            Some(at) => {
                self.waiters.remove(at);
                true
            }
            None => false,
        }
    }

    /// Number of waiting ops.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.len()
    }
}

/// The state of one descriptor.
#[derive(Default)]
pub(crate) struct FdState {
    /// In the epoll set, non-blocking (a socket).
    pub(crate) registered: bool,
    /// A stream (TCP) socket: short transfers drain a side.
    pub(crate) stream: bool,
    /// An event reported the peer's close or an error (`EPOLLRDHUP`,
    /// `EPOLLHUP`, `EPOLLERR`). Its edge is spent, and from now on a read
    /// returns at once (end of stream or the error), so a short transfer
    /// no longer means the side must wait for another edge.
    pub(crate) closed: bool,
    read: Side,
    write: Side,
}

impl FdState {
    /// The side for `dir`.
    pub(crate) fn side(&mut self, dir: Dir) -> &mut Side {
        match dir {
            Dir::Read => &mut self.read,
            Dir::Write => &mut self.write,
        }
    }
}

/// Descriptor states indexed by descriptor number (descriptors are small,
/// dense integers).
#[derive(Default)]
pub(crate) struct FdTable {
    fds: Vec<FdState>,
}

impl FdTable {
    /// The state of `fd`, created (unregistered, not ready) on first use.
    pub(crate) fn get(&mut self, fd: RawFd) -> &mut FdState {
        let i = usize::try_from(fd).expect("negative descriptor");
        if i >= self.fds.len() {
            self.fds.resize_with(i + 1, FdState::default);
        }
        &mut self.fds[i]
    }

    /// The state of `fd` if the table has one (events for descriptors
    /// never seen are ignored).
    pub(crate) fn existing(&mut self, fd: RawFd) -> Option<&mut FdState> {
        usize::try_from(fd).ok().and_then(|i| self.fds.get_mut(i))
    }

    /// `fd` is a new handle: it may be ready both ways. Waiters stay (none
    /// exist in practice: ops borrow their socket, so a descriptor cannot
    /// be closed and its number reused while one of its ops waits).
    pub(crate) fn reset(&mut self, fd: RawFd, registered: bool, stream: bool) {
        let st = self.get(fd);
        st.registered = registered;
        st.stream = stream;
        st.closed = false;
        st.read.ready = true;
        st.write.ready = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::driver::op_registry::OpRegistry;

    #[test]
    fn a_fresh_side_is_tried_only_after_reset() {
        let mut t = FdTable::default();
        assert!(!t.get(7).side(Dir::Read).can_try());
        t.reset(7, true, true);
        assert!(t.get(7).registered);
        assert!(t.get(7).side(Dir::Read).can_try());
        assert!(t.get(7).side(Dir::Write).can_try());
        assert!(t.existing(3).is_some_and(|s| !s.registered));
        assert!(t.existing(100).is_none());
    }

    #[test]
    fn waiters_are_fifo_and_block_new_tries() {
        let mut reg: OpRegistry<()> = OpRegistry::new();
        let (a, b, c) = (reg.reserve(), reg.reserve(), reg.reserve());
        let mut t = FdTable::default();
        t.reset(4, true, false);
        let side = t.get(4).side(Dir::Read);
        side.set_ready(false);
        side.park(a);
        side.park(b);
        side.park(c);
        side.set_ready(true);
        assert!(!side.can_try(), "queued ops go first");
        assert!(side.remove(b));
        assert!(!side.remove(b), "removed once");
        assert_eq!(side.front(), Some(a));
        side.pop_front();
        assert_eq!(side.front(), Some(c));
        side.pop_front();
        assert_eq!(side.waiting(), 0);
        assert!(side.can_try());
        assert_eq!(t.get(4).side(Dir::Write).waiting(), 0, "sides are separate");
    }
}
