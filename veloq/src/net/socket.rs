//! The socket shared by TCP and UDP: a `socket2::Socket` registered with
//! the current runtime's driver, plus the buffer loops (`recv`, `send`,
//! `recv_exact`, `send_all`) both protocols use.
//!
//! # Invariants
//!
//! - The descriptor is owned by a [`SocketInner`] behind an `Rc`; the
//!   `Socket` holds one reference and every op naming the descriptor holds
//!   another in its `keep`. The descriptor closes when the last reference
//!   goes: after the `Socket` is dropped *and* every op on it has completed
//!   (a cancelled op completes when the kernel reports it). So no op ever
//!   runs on a descriptor number that was closed and reused.
//! - `fd` is the raw handle; it was passed to `register_handle` exactly
//!   once, when the `Socket` was built.
//! - An op's description points into the buffer that its [`Op`] future
//!   owns as `keep`, so the memory stays put (and alive) for as long as the
//!   kernel may touch it, even if the future is dropped.
//! - Receives and accepts go through the socket's [`Stash`] gate
//!   (cancel-safe reads; see `stash`).
//! - `!Send`/`!Sync` (the `Rc`; see the `net` module docs).

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use socket2::{Domain, Protocol, SockAddr, Type};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::driver::Driver;
use crate::io::op::{self, Op, Recv, Send};
use crate::runtime::context;
use crate::sys::{self, RawFd};

use crate::io::stash::{OrphanRecv, RecvKeep, Stash, StashKind, StashOwner};

/// A registered socket.
pub(crate) struct Socket {
    inner: Rc<SocketInner>,
}

/// What a socket and its in-flight ops share; see the module docs.
pub(crate) struct SocketInner {
    sock: socket2::Socket,
    fd: RawFd,
    datagram: bool,
    /// A TCP stream: its sends may go out zero-copy (see `op::Send`).
    zero_copy: bool,
    stash: RefCell<Stash>,
}

impl StashOwner for SocketInner {
    fn stash(&self) -> RefMut<'_, Stash> {
        self.stash.borrow_mut()
    }

    fn stash_kind(&self) -> StashKind {
        if self.datagram {
            StashKind::Datagrams
        } else {
            StashKind::Bytes
        }
    }
}

/// Clamps a buffer length to what one op can carry.
pub(crate) fn op_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Socket {
    /// Creates a socket of `ty` for `addr`'s family and registers it.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub(crate) fn new(addr: &SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
        let inner = socket2::Socket::new(Domain::for_address(*addr), ty, Some(protocol))?;
        Socket::register(inner)
    }

    /// Wraps a handle an `Accept` op returned and registers it.
    ///
    /// # Safety
    ///
    /// `fd` must be an open socket that nothing else owns.
    pub(crate) unsafe fn from_accepted(fd: RawFd) -> io::Result<Socket> {
        // SAFETY: the caller passes sole ownership of the open socket; from
        // here on `socket2::Socket` closes it exactly once.
        let inner = unsafe { sys::socket_from_raw(fd) };
        Socket::register(inner)
    }

    /// Registers an open socket (one that is not yet registered with any
    /// driver) with the current runtime's driver.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub(crate) fn register(inner: socket2::Socket) -> io::Result<Socket> {
        let fd = sys::socket_fd(&inner);
        // On failure `inner` is dropped here, closing the socket.
        context::with_driver(|d| d.register_handle(fd))?;
        let datagram = inner.r#type().is_ok_and(|t| t == Type::DGRAM);
        Ok(Socket {
            inner: Rc::new(SocketInner {
                sock: inner,
                fd,
                datagram,
                zero_copy: false,
                stash: RefCell::default(),
            }),
        })
    }

    /// Gives the socket2 socket back, leaving the driver (which keeps no
    /// state for a socket with no op in flight; on Windows the socket stays
    /// associated with this driver's completion port).
    ///
    /// Where cancelled ops still hold the descriptor, the caller gets a
    /// duplicate of it, and the original closes when they complete. Bytes a
    /// cancelled read took that no read has received yet are dropped.
    pub(crate) fn into_inner(self) -> io::Result<socket2::Socket> {
        match Rc::try_unwrap(self.inner) {
            Ok(inner) => Ok(inner.sock),
            Err(shared) => shared.sock.try_clone(),
        }
    }

    /// Marks the socket a TCP stream, whose sends the driver may run
    /// zero-copy (see `op::Send`). Called by `TcpStream`'s constructors,
    /// while the socket is not yet shared; a no-op once it is.
    pub(crate) fn allow_zero_copy(&mut self) {
        if let Some(inner) = Rc::get_mut(&mut self.inner) {
            inner.zero_copy = true;
        }
    }

    /// The socket2 socket, for synchronous option calls.
    pub(crate) fn inner(&self) -> &socket2::Socket {
        &self.inner.sock
    }

    /// The raw handle the ops name.
    pub(crate) fn fd(&self) -> RawFd {
        self.inner.fd
    }

    /// Whether this is a datagram socket (its reads take whole datagrams).
    pub(crate) fn is_datagram(&self) -> bool {
        self.inner.datagram
    }

    /// A reference to the descriptor's owner, for an op's `keep`: the
    /// descriptor stays open until the op is done with it.
    pub(crate) fn shared(&self) -> Rc<SocketInner> {
        self.inner.clone()
    }

    /// Waits while a cancelled read-like op of this socket is still in the
    /// kernel (see `stash`), then runs `take` on the stash: `Some` is data
    /// a cancelled op took, to be returned instead of a new op.
    pub(crate) async fn take_stashed<R>(
        &self,
        take: impl FnOnce(&mut Stash) -> Option<R>,
    ) -> Option<R> {
        if !self.inner.stash().busy() {
            return None;
        }
        poll_fn(|cx| self.inner.stash().poll_gate(cx)).await;
        take(&mut self.inner.stash())
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        to_std(self.inner.sock.local_addr()?)
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        to_std(self.inner.sock.peer_addr()?)
    }

    /// One receive into `buf[..bytes_total]`; marks the received bytes
    /// initialised.
    pub(crate) async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.recv_at(buf, 0).await
    }

    /// One send of `buf[..bytes_init]`.
    pub(crate) async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.send_at(buf, 0).await
    }

    /// Receives until `buf[..bytes_total]` is full; `UnexpectedEof` if the
    /// peer closes first (the bytes received so far are marked initialised).
    pub(crate) async fn recv_exact<B: IoBufMut>(&self, mut buf: B) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let mut filled = 0;
        while filled < total {
            let (res, b) = self.recv_at(buf, filled).await;
            buf = b;
            match res {
                Ok(0) => return (Err(eof()), buf),
                Ok(n) => filled += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Sends until all of `buf[..bytes_init]` is sent.
    pub(crate) async fn send_all<B: IoBuf>(&self, mut buf: B) -> BufResult<(), B> {
        let total = buf.bytes_init();
        let mut sent = 0;
        while sent < total {
            let (res, b) = self.send_at(buf, sent).await;
            buf = b;
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => sent += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Receives into `buf[off..bytes_total]` and marks `buf[..off + n]`
    /// initialised. `off <= bytes_total`, and `buf[..off]` is initialised.
    ///
    /// Cancel-safe: should the future be dropped, whatever the op already
    /// received goes to the next receive (see `stash`).
    async fn recv_at<B: IoBufMut>(&self, mut buf: B, off: usize) -> BufResult<usize, B> {
        let total = buf.bytes_total();
        debug_assert!(off <= total);
        let datagram = self.inner.datagram;
        let stashed = self
            .take_stashed(|stash| {
                if datagram {
                    stash.take_datagram(&mut buf).map(|(n, _)| n)
                } else {
                    stash.take_bytes(&mut buf, off)
                }
            })
            .await;
        if let Some(n) = stashed {
            return (Ok(n), buf);
        }
        if total == off && !datagram {
            // No room: nothing to read (as std's `read` of an empty
            // buffer). A kernel receive of 0 bytes may wait for data
            // instead; a datagram receive, though, must consume one.
            return (Ok(0), buf);
        }
        // `wrapping_add` stays inside the buffer because `off <= total`.
        let ptr = buf.stable_mut_ptr().wrapping_add(off);
        let len = op_len(total - off);
        let desc = Recv {
            fd: self.inner.fd,
            buf: ptr,
            len,
        };
        let keep = RecvKeep {
            buf,
            off,
            sock: self.shared(),
        };
        let (out, keep) = Op::submit_on_poll(desc, keep, OrphanRecv::orphan).await;
        let mut buf = keep.buf;
        // SAFETY: the op read at most `len` bytes into `buf[off..]`, with
        // `off + len <= total`; the caller guarantees `buf[..off]` was
        // initialised.
        unsafe { op::mark_read(&out, &mut buf, off, len) };
        (out.res, buf)
    }

    /// Sends `buf[off..bytes_init]`. `off <= bytes_init`.
    async fn send_at<B: IoBuf>(&self, buf: B, off: usize) -> BufResult<usize, B> {
        let init = buf.bytes_init();
        debug_assert!(off <= init);
        // `wrapping_add` stays inside the buffer because `off <= init`.
        let ptr = buf.stable_ptr().wrapping_add(off);
        let desc = Send {
            fd: self.inner.fd,
            buf: ptr,
            len: op_len(init - off),
            zero_copy: self.inner.zero_copy,
        };
        let (out, (buf, _)) = Op::submit_on_poll(desc, (buf, self.shared()), op::keep_only).await;
        (out.res, buf)
    }

    /// Formats the socket for the public types' `Debug` impls.
    pub(crate) fn fmt_debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(name);
        d.field("fd", &self.inner.fd);
        if let Ok(a) = self.local_addr() {
            d.field("local_addr", &a);
        }
        if let Ok(a) = self.peer_addr() {
            d.field("peer_addr", &a);
        }
        d.finish()
    }
}

/// Converts a socket2 address to std's; only IP sockets are made here.
pub(crate) fn to_std(a: SockAddr) -> io::Result<SocketAddr> {
    a.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "socket address is not IP"))
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "stream closed before the buffer was full",
    )
}
