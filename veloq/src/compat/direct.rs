//! Direct writes: large borrowed writes go from the caller's slices to the
//! socket in one non-blocking `sendmsg`, with no copy into `Compat`'s
//! write stage and no op.
//!
//! # When
//!
//! Only on Linux, only for a [`TcpStream`](crate::net::TcpStream) or a
//! [`UnixStream`](crate::net::UnixStream) (the stream
//! type is recognised by its `TypeId`; other streams always take the
//! buffered path), and only when the caller (`Compat::poll_write_slices`)
//! has nothing staged and no write op in flight, so the direct bytes
//! cannot overtake buffered ones. Writes of fewer than [`DIRECT_MIN`]
//! bytes stay buffered, and their op rides in the turn's one
//! `io_uring_enter` with the other submissions.
//!
//! Sending small writes directly too was measured (`veloq-bench http`,
//! `results/shared-2cpu-vm/http/http-small-direct-ab.md`): it cuts
//! hyper's `GET /` user-space instructions by a quarter under callgrind
//! (9,818 to 7,341 per request; tokio 6,678: the flush no longer waits
//! for a write op), but each response then costs a system call of its
//! own, and on a quiet machine the server's CPU per request was 1.01–1.10×
//! that of the batched op in all four cases. So small writes stay
//! buffered.
//!
//! # Why it keeps `Compat`'s guarantees
//!
//! - The call is synchronous: it either sent `n` bytes (reported as
//!   accepted, and they are in the kernel already), failed (the error is
//!   returned by this very `poll_write`), or would block (nothing sent:
//!   the caller falls back to the buffered path, whose op waits for the
//!   socket). No op and no readiness wait is ever left in flight, so there
//!   is nothing to cancel and nothing a dropped future could lose or send
//!   twice, and a `poll_write` that returns `Pending` still accepted
//!   nothing (the h2 case: different data on the retry).
//! - `MSG_DONTWAIT` makes the call non-blocking whether or not the socket
//!   is (io_uring leaves sockets blocking; epoll makes them
//!   non-blocking); `MSG_NOSIGNAL` turns a closed peer into `EPIPE`
//!   instead of `SIGPIPE`, as veloq's own send ops do.
//! - The descriptor stays open for the call: `Compat` holds the stream.
//!
//! Windows keeps the buffered path: IOCP has no cheap non-blocking send
//! that reports "would block" without an overlapped operation.

use std::io::IoSlice;

/// Writes below this many bytes (all slices together) stay buffered.
pub(super) const DIRECT_MIN: usize = 8 * 1024;

#[cfg(target_os = "linux")]
pub(super) use linux::try_write;
#[cfg(not(target_os = "linux"))]
pub(super) use other::try_write;

#[cfg(target_os = "linux")]
mod linux {
    use std::any::Any;
    use std::io::{self, IoSlice};

    use crate::net::{TcpStream, UnixStream};
    use crate::sys::RawFd;

    /// The most slices one `sendmsg` takes (`UIO_MAXIOV` on Linux).
    const MAX_IOV: usize = 1024;

    /// The socket of `stream`, if it is a type with a direct path.
    fn socket_fd<S: 'static>(stream: &S) -> Option<RawFd> {
        let any: &dyn Any = stream;
        if let Some(s) = any.downcast_ref::<TcpStream>() {
            return Some(s.socket().fd());
        }
        if let Some(s) = any.downcast_ref::<UnixStream>() {
            return Some(s.socket().fd());
        }
        None
    }

    /// Sends as much of `bufs` as the socket takes now. `None`: no direct
    /// path for this stream, or the socket would block (nothing was sent);
    /// `Some(Ok(n))`: `n` bytes sent; `Some(Err)`: the send failed.
    pub(in crate::compat) fn try_write<S: 'static>(
        stream: &S,
        bufs: &[IoSlice<'_>],
    ) -> Option<io::Result<usize>> {
        let fd = socket_fd(stream)?;
        let bufs = &bufs[..bufs.len().min(MAX_IOV)];
        // SAFETY: an all-zero `msghdr` is a valid value (null pointers,
        // zero lengths).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix; the
        // kernel only reads through the pointer.
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len();
        loop {
            // SAFETY: `msg` points at `bufs`, live borrowed slices, for the
            // length of the call; `fd` stays open because the caller holds
            // the stream that owns it.
            let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
            if r >= 0 {
                return Some(Ok(r as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return None,
                _ => return Some(Err(e)),
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    use std::io::{self, IoSlice};

    /// No direct path here: always the buffered one.
    pub(in crate::compat) fn try_write<S: 'static>(
        _stream: &S,
        _bufs: &[IoSlice<'_>],
    ) -> Option<io::Result<usize>> {
        None
    }
}

/// Whether `bufs` is large enough for a direct write.
pub(super) fn worth_it(bufs: &[IoSlice<'_>]) -> bool {
    let mut total = 0;
    for b in bufs {
        total += b.len();
        if total >= DIRECT_MIN {
            return true;
        }
    }
    false
}
