//! `EpollOp`: what one in-flight op keeps in its registry slot, the
//! conversions from the platform-neutral descriptions, and the
//! non-blocking socket calls behind the readiness ops.
//!
//! # Two kinds of op
//!
//! - [`NetOp`]s (send, recv, sendto, recvfrom, connect, accept) run on the
//!   driver thread: the syscall is tried on the non-blocking socket, and
//!   on `EAGAIN` the op waits for the socket's readiness and is tried
//!   again ([`NetOp::attempt`]). No kernel call ever holds a pointer past
//!   its return: addresses are encoded and decoded on the stack.
//! - [`BlockingOp`]s (file reads and writes, open, close, fsync,
//!   sync_file_range, fallocate) run on the blocking pool. On submit the
//!   op moves into the pool's job and the slot keeps
//!   [`EpollOp::InPool`] until the pool reports the result.
//!
//! The user's buffer belongs to the op's future (or, after a cancel, to
//! the registry's keep-alive) until the completion has been processed, so
//! every pointer below stays valid while the op can use it.
//!
//! No conversion allocates (`Open` moves its `PathBuf`).

use std::io;
use std::mem;
use std::net::SocketAddr;

use socket2::{SockAddr, SockAddrStorage};

use super::blocking::BlockingOp;
use super::fd_table::Dir;
use super::EpollDriver;
use crate::io::driver::IntoPlatformOp;
use crate::io::op::{self, OpOutput};
use crate::sys::RawFd;

/// An op in the epoll driver's registry; see the module docs.
pub(crate) enum EpollOp {
    /// A socket op run on the driver thread.
    Net(NetOp),
    /// A file op for the pool, not yet handed over.
    Blocking(BlockingOp),
    /// A path op this driver does not run (the fs layer uses the
    /// blocking pool instead, see `LinuxDriver::supports_path_op`):
    /// `submit` refuses it with `Unsupported`.
    Unsupported(&'static str),
    /// Handed to the pool. (A descriptor a cancelled open creates is
    /// closed by the op's cancel hook, not by the driver.)
    InPool,
}

/// A socket op; see the module docs.
pub(crate) enum NetOp {
    /// `send(MSG_NOSIGNAL)`.
    Send { fd: RawFd, buf: *const u8, len: u32 },
    /// `recv`.
    Recv { fd: RawFd, buf: *mut u8, len: u32 },
    /// `sendto(MSG_NOSIGNAL)`.
    SendTo {
        fd: RawFd,
        buf: *const u8,
        len: u32,
        addr: SocketAddr,
    },
    /// `recvfrom`; the output carries the source address.
    RecvFrom { fd: RawFd, buf: *mut u8, len: u32 },
    /// `sendto(MSG_NOSIGNAL)` to an address of any family.
    SendToName {
        fd: RawFd,
        buf: *const u8,
        len: u32,
        addr: SockAddr,
    },
    /// `recvfrom` that stores the source address (any family) in the
    /// caller's `SockName`.
    RecvFromName {
        fd: RawFd,
        buf: *mut u8,
        len: u32,
        from: *mut op::SockName,
    },
    /// `sendmsg(MSG_NOSIGNAL)` of a header built by the caller.
    SendMsg { fd: RawFd, msg: *const libc::msghdr },
    /// `recvmsg(MSG_CMSG_CLOEXEC)` into a header built by the caller.
    RecvMsg { fd: RawFd, msg: *mut libc::msghdr },
    /// `connect`, then (once writable) `SO_ERROR`. `started` once the
    /// kernel said `EINPROGRESS`.
    Connect {
        fd: RawFd,
        addr: SocketAddr,
        started: bool,
    },
    /// `accept4(SOCK_CLOEXEC)`; the output is the new descriptor and the
    /// peer's address. The new socket is blocking, as io_uring's accept
    /// makes it (so `accept_std` hands out the same kind of socket on both
    /// drivers); `register_handle` makes it non-blocking when a veloq
    /// stream adopts it.
    Accept { fd: RawFd },
    // --- process ops (procwait) ---
    /// `poll(fd, 0)` for readability (or writability with `write`): done
    /// once the descriptor is ready, with the ready mask. For pidfds and
    /// pipes, which the driver adds to the epoll set when the op is
    /// submitted (`prepare_pollable`).
    Poll { fd: RawFd, write: bool },
}

/// What one try of a [`NetOp`] came to.
pub(crate) enum Attempt {
    /// Finished, successfully or not.
    Done(OpOutput),
    /// The socket is not ready (`EAGAIN`, or a connect in progress).
    WouldBlock,
}

impl NetOp {
    /// The descriptor the op works on.
    pub(crate) fn fd(&self) -> RawFd {
        match *self {
            NetOp::Send { fd, .. }
            | NetOp::Recv { fd, .. }
            | NetOp::SendTo { fd, .. }
            | NetOp::RecvFrom { fd, .. }
            | NetOp::SendToName { fd, .. }
            | NetOp::RecvFromName { fd, .. }
            | NetOp::SendMsg { fd, .. }
            | NetOp::RecvMsg { fd, .. }
            | NetOp::Connect { fd, .. }
            | NetOp::Accept { fd }
            | NetOp::Poll { fd, .. } => fd,
        }
    }

    /// Whether this is a [`NetOp::Poll`] (process ops, procwait).
    pub(crate) fn is_poll(&self) -> bool {
        matches!(self, NetOp::Poll { .. })
    }

    /// The readiness the op waits for.
    pub(crate) fn dir(&self) -> Dir {
        match self {
            NetOp::Recv { .. }
            | NetOp::RecvFrom { .. }
            | NetOp::RecvFromName { .. }
            | NetOp::RecvMsg { .. }
            | NetOp::Accept { .. }
            | NetOp::Poll { write: false, .. } => Dir::Read,
            NetOp::Send { .. }
            | NetOp::SendTo { .. }
            | NetOp::SendToName { .. }
            | NetOp::SendMsg { .. }
            | NetOp::Connect { .. }
            | NetOp::Poll { write: true, .. } => Dir::Write,
        }
    }

    /// Whether a transfer of `n` bytes by this op means its side of a
    /// *stream* socket is now drained: a short `recv` emptied the receive
    /// queue, a short `send` filled the send buffer. The next op on that
    /// side would only get `EAGAIN`, so it waits for the next edge
    /// instead. (Not so for datagram sockets, whose transfers are one
    /// datagram each; the driver asks only for stream sockets.)
    pub(crate) fn drains(&self, n: usize) -> bool {
        match *self {
            NetOp::Recv { len, .. } => n > 0 && n < len as usize,
            NetOp::Send { len, .. } => n < len as usize,
            _ => false,
        }
    }

    /// Tries the op once, without blocking (the socket is non-blocking).
    pub(crate) fn attempt(&mut self) -> Attempt {
        match self {
            NetOp::Send { fd, buf, len } => {
                // SAFETY: `buf[..len]` is the op's buffer, kept alive and
                // unmoved by its owner until the op completes.
                let r = retry(|| unsafe {
                    libc::send(*fd, buf.cast(), *len as usize, libc::MSG_NOSIGNAL)
                });
                finish(r, None)
            }
            NetOp::Recv { fd, buf, len } => {
                // SAFETY: as for `Send`; the op owns `buf[..len]` for
                // writing.
                let r = retry(|| unsafe { libc::recv(*fd, buf.cast(), *len as usize, 0) });
                finish(r, None)
            }
            NetOp::SendMsg { fd, msg } => {
                // SAFETY: the header and the memory it points to live in
                // the op's keep until the op completes.
                let r = retry(|| unsafe { libc::sendmsg(*fd, *msg, libc::MSG_NOSIGNAL) });
                finish(r, None)
            }
            NetOp::RecvMsg { fd, msg } => {
                // SAFETY: as for `SendMsg`; the kernel writes the buffers,
                // the control buffer and the header's lengths and flags.
                let r = retry(|| unsafe { libc::recvmsg(*fd, *msg, libc::MSG_CMSG_CLOEXEC) });
                finish(r, None)
            }
            NetOp::SendTo { fd, buf, len, addr } => {
                let to = SockAddr::from(*addr);
                // SAFETY: as for `Send`; `to` is a live local.
                let r = retry(|| unsafe {
                    libc::sendto(
                        *fd,
                        buf.cast(),
                        *len as usize,
                        libc::MSG_NOSIGNAL,
                        to.as_ptr().cast(),
                        to.len(),
                    )
                });
                finish(r, None)
            }
            NetOp::RecvFrom { fd, buf, len } => {
                let mut from = SockAddrStorage::zeroed();
                let mut from_len = from.size_of();
                // SAFETY: as for `Recv`; `from`/`from_len` are live locals
                // the kernel fills.
                let r = retry(|| unsafe {
                    libc::recvfrom(
                        *fd,
                        buf.cast(),
                        *len as usize,
                        0,
                        (&mut from as *mut SockAddrStorage).cast(),
                        &mut from_len,
                    )
                });
                finish(r, decode_addr(from, from_len))
            }
            NetOp::SendToName { fd, buf, len, addr } => {
                // SAFETY: as for `Send`; `addr` lives in the op.
                let r = retry(|| unsafe {
                    libc::sendto(
                        *fd,
                        buf.cast(),
                        *len as usize,
                        libc::MSG_NOSIGNAL,
                        addr.as_ptr().cast(),
                        addr.len(),
                    )
                });
                finish(r, None)
            }
            NetOp::RecvFromName { fd, buf, len, from } => {
                // SAFETY: `from` points into the op's keep-alive, alive
                // and not otherwise accessed until the op completes.
                let from = unsafe { &mut **from };
                let mut from_len = from.storage.size_of();
                // SAFETY: as for `Recv`; the kernel fills `from.storage`
                // (of `from_len` bytes) and `from_len`.
                let r = retry(|| unsafe {
                    libc::recvfrom(
                        *fd,
                        buf.cast(),
                        *len as usize,
                        0,
                        (&mut from.storage as *mut SockAddrStorage).cast(),
                        &mut from_len,
                    )
                });
                if r.is_ok() {
                    from.len = from_len;
                }
                finish(r, None)
            }
            NetOp::Accept { fd } => {
                let mut peer = SockAddrStorage::zeroed();
                let mut peer_len = peer.size_of();
                // SAFETY: `peer`/`peer_len` are live locals the kernel fills.
                let r = retry(|| unsafe {
                    libc::accept4(
                        *fd,
                        (&mut peer as *mut SockAddrStorage).cast(),
                        &mut peer_len,
                        libc::SOCK_CLOEXEC,
                    ) as isize
                });
                finish(r, decode_addr(peer, peer_len))
            }
            NetOp::Connect { fd, addr, started } => connect(*fd, addr, started),
            NetOp::Poll { fd, write } => poll_now(*fd, *write),
        }
    }
}

// --- process ops (procwait) ---

/// One non-blocking `poll` of `fd`: done with the ready mask (an error or
/// hang-up counts as ready: the caller's next call reports it), else
/// would block.
fn poll_now(fd: RawFd, write: bool) -> Attempt {
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is one live `pollfd`; a zero timeout never blocks.
    let r = retry(|| unsafe { libc::poll(&mut pfd, 1, 0) as isize });
    match r {
        Ok(0) => Attempt::WouldBlock,
        Ok(_) => done(Ok(pfd.revents as u16 as usize), None),
        Err(e) => done(Err(e), None),
    }
}

/// One step of a non-blocking connect; see [`NetOp::Connect`].
fn connect(fd: RawFd, addr: &SocketAddr, started: &mut bool) -> Attempt {
    if !*started {
        let to = SockAddr::from(*addr);
        // SAFETY: `to` is a live local the kernel reads during the call.
        let r = unsafe { libc::connect(fd, to.as_ptr().cast(), to.len()) };
        if r == 0 {
            return done(Ok(0), None);
        }
        let err = io::Error::last_os_error();
        // An interrupted connect goes on in the background, like one in
        // progress.
        return match err.raw_os_error() {
            Some(libc::EINPROGRESS | libc::EINTR) => {
                *started = true;
                Attempt::WouldBlock
            }
            _ => done(Err(err), None),
        };
    }
    let mut so_error: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `so_error`/`len` are live locals of the sizes passed.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut so_error as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return done(Err(io::Error::last_os_error()), None);
    }
    if so_error != 0 {
        return done(Err(io::Error::from_raw_os_error(so_error)), None);
    }
    // No error yet: connected, or (a spurious wake-up) still connecting.
    let mut peer = SockAddrStorage::zeroed();
    let mut peer_len = peer.size_of();
    // SAFETY: `peer`/`peer_len` are live locals the kernel fills.
    let r = unsafe {
        libc::getpeername(
            fd,
            (&mut peer as *mut SockAddrStorage).cast(),
            &mut peer_len,
        )
    };
    if r == 0 {
        return done(Ok(0), None);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOTCONN) {
        Attempt::WouldBlock
    } else {
        done(Err(err), None)
    }
}

/// Runs `f` (a syscall returning -1 and `errno` on failure) again while it
/// is interrupted by a signal.
fn retry(mut f: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Maps a syscall's result: `EAGAIN` waits, anything else finishes.
fn finish(res: io::Result<usize>, addr: Option<SocketAddr>) -> Attempt {
    match res {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Attempt::WouldBlock,
        Ok(n) => done(Ok(n), addr),
        Err(e) => done(Err(e), None),
    }
}

fn done(res: io::Result<usize>, addr: Option<SocketAddr>) -> Attempt {
    Attempt::Done(OpOutput { res, addr })
}

/// Decodes a kernel-written socket address (`None` for a family other
/// than IPv4/IPv6, or a length the kernel did not fill).
fn decode_addr(storage: SockAddrStorage, len: libc::socklen_t) -> Option<SocketAddr> {
    if len == 0 || len > storage.size_of() {
        return None;
    }
    // SAFETY: the kernel initialised the first `len` bytes of the storage
    // with a socket address (`accept4`/`recvfrom` contract), and `len`
    // fits in it.
    let addr = unsafe { SockAddr::new(storage, len) };
    addr.as_socket()
}

impl IntoPlatformOp<EpollDriver> for op::ReadFixed {
    fn into_platform_op(self) -> EpollOp {
        // No registered buffers here: `fixed` is always `None`, and a
        // fixed buffer is plain memory anyway.
        EpollOp::Blocking(BlockingOp::Read {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
            offset: self.offset,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::WriteFixed {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Blocking(BlockingOp::Write {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
            offset: self.offset,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::Send {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::Send {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::Recv {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::Recv {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::SendTo {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::SendTo {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
            addr: self.addr,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::RecvFrom {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::RecvFrom {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::SendMsg {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::SendMsg {
            fd: self.fd,
            msg: self.msg,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::RecvMsg {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::RecvMsg {
            fd: self.fd,
            msg: self.msg,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::SendToName {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::SendToName {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
            addr: self.addr,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::RecvFromName {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::RecvFromName {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
            from: self.from,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::Connect {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::Connect {
            fd: self.fd,
            addr: self.addr,
            started: false,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::Accept {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::Accept { fd: self.fd })
    }
}

impl IntoPlatformOp<EpollDriver> for op::Open {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Blocking(BlockingOp::Open {
            path: self.path,
            flags: self.flags,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::Close {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Blocking(BlockingOp::Close { fd: self.fd })
    }
}

impl IntoPlatformOp<EpollDriver> for op::Fsync {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Blocking(BlockingOp::Fsync {
            fd: self.fd,
            data_only: self.data_only,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::SyncFileRange {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Blocking(BlockingOp::SyncFileRange {
            fd: self.fd,
            offset: self.offset,
            len: self.len,
        })
    }
}

impl IntoPlatformOp<EpollDriver> for op::Fallocate {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Blocking(BlockingOp::Fallocate {
            fd: self.fd,
            offset: self.offset,
            len: self.len,
        })
    }
}

// --- filesystem path ops (fsuring) ---

/// Implements the epoll conversion of path ops: never submitted (the fs
/// layer asks `supports_path_op` first), and refused if they were.
macro_rules! unsupported_path_ops {
    ($($name:ident),*) => {
        $(
            impl IntoPlatformOp<EpollDriver> for op::$name {
                fn into_platform_op(self) -> EpollOp {
                    EpollOp::Unsupported(concat!(
                        "veloq: the epoll driver runs no ",
                        stringify!($name),
                        " op (the blocking pool does)"
                    ))
                }
            }
        )*
    };
}

unsupported_path_ops!(Statx, RenameAt, UnlinkAt, MkdirAt, LinkAt, SymlinkAt);

// --- process ops (procwait) ---

impl IntoPlatformOp<EpollDriver> for op::PollReady {
    fn into_platform_op(self) -> EpollOp {
        EpollOp::Net(NetOp::Poll {
            fd: self.fd,
            write: self.write,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trips_through_storage() {
        for text in ["127.0.0.1:4242", "[::1]:9"] {
            let addr: SocketAddr = text.parse().unwrap();
            let enc = SockAddr::from(addr);
            let len = enc.len();
            assert_eq!(decode_addr(enc.as_storage(), len), Some(addr));
        }
        assert_eq!(decode_addr(SockAddrStorage::zeroed(), 0), None);
    }

    #[test]
    fn ops_wait_on_the_right_side() {
        let recv = NetOp::Recv {
            fd: 3,
            buf: std::ptr::null_mut(),
            len: 0,
        };
        assert_eq!((recv.dir(), recv.fd()), (Dir::Read, 3));
        let accept = NetOp::Accept { fd: 4 };
        assert_eq!((accept.dir(), accept.fd()), (Dir::Read, 4));
        let connect = NetOp::Connect {
            fd: 5,
            addr: "127.0.0.1:1".parse().unwrap(),
            started: false,
        };
        assert_eq!(connect.dir(), Dir::Write);
        assert!(!connect.drains(0));
    }

    #[test]
    fn short_stream_transfers_drain_their_side() {
        let recv = NetOp::Recv {
            fd: 3,
            buf: std::ptr::null_mut(),
            len: 100,
        };
        assert!(recv.drains(10), "a short read emptied the queue");
        assert!(!recv.drains(100), "a full read may leave more");
        assert!(!recv.drains(0), "end of stream is not readiness news");
        let send = NetOp::Send {
            fd: 3,
            buf: std::ptr::null(),
            len: 100,
        };
        assert!(send.drains(99));
        assert!(!send.drains(100));
    }

    #[test]
    fn would_block_waits_and_errors_finish() {
        let wb = io::Error::from_raw_os_error(libc::EAGAIN);
        assert!(matches!(finish(Err(wb), None), Attempt::WouldBlock));
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        match finish(Err(refused), None) {
            Attempt::Done(out) => {
                assert_eq!(
                    out.res.unwrap_err().kind(),
                    io::ErrorKind::ConnectionRefused
                )
            }
            Attempt::WouldBlock => panic!("an error finishes the op"),
        }
    }

    // --- process ops (procwait) ---

    #[test]
    fn poll_ops_wait_until_their_side_is_ready() {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a live array of two descriptors for the call.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (r, w) = (fds[0], fds[1]);
        let mut read = NetOp::Poll {
            fd: r,
            write: false,
        };
        let mut write = NetOp::Poll { fd: w, write: true };
        assert!(read.is_poll() && !read.drains(1));
        assert_eq!((read.dir(), read.fd()), (Dir::Read, r));
        assert_eq!((write.dir(), write.fd()), (Dir::Write, w));
        assert!(matches!(read.attempt(), Attempt::WouldBlock), "empty pipe");
        match write.attempt() {
            Attempt::Done(out) => assert!(out.res.unwrap() & libc::POLLOUT as usize != 0),
            Attempt::WouldBlock => panic!("an empty pipe has room"),
        }
        // SAFETY: one byte from a live local into our pipe.
        assert_eq!(unsafe { libc::write(w, b"x".as_ptr().cast(), 1) }, 1);
        match read.attempt() {
            Attempt::Done(out) => assert!(out.res.unwrap() & libc::POLLIN as usize != 0),
            Attempt::WouldBlock => panic!("a byte is there"),
        }
        // SAFETY: our own descriptors, closed once.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    }
}

// --- multishot ops (recvring) ---

/// Multishot ops are io_uring's alone: the net layer asks
/// `supports_multishot_*` first, and the epoll backend refuses them.
macro_rules! unsupported_multishot_ops {
    ($($name:ident),*) => {
        $(
            impl IntoPlatformOp<EpollDriver> for op::$name {
                fn into_platform_op(self) -> EpollOp {
                    EpollOp::Unsupported(concat!(
                        "veloq: the epoll driver has no multishot ",
                        stringify!($name)
                    ))
                }
            }
        )*
    };
}

unsupported_multishot_ops!(AcceptMulti, RecvMulti);
