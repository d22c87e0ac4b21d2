//! [`UnixDatagram`]: Unix-domain datagrams sent and received as driver ops
//! on owned buffers.
//!
//! The source address of a received datagram is a Unix address, which the
//! IP-only `RecvFrom` op cannot report; `recv_from` uses the `RecvFromName`
//! op, which stores the kernel's address in a [`SockName`] the op's keep
//! owns (so the memory outlives a cancelled op, like the buffer). A
//! cancelled `recv_from` stashes its datagram with that address, so the
//! next receive reports the right source.

use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use socket2::{Domain, SockAddr, Type};

use super::socket::{op_len, Socket, SocketInner};
use super::unix_stream::{from_sockaddr, path_addr, to_sockaddr, unnamed};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::driver::KeepAlive;
use crate::io::op::{self, Op, OpOutput, RecvFromName, SendToName, SockName};
use crate::io::stash::{DatagramSource, OrphanRecv, RecvKeep};

/// A Unix-domain datagram socket.
///
/// Like a listener's, a bound socket's file stays when the socket is
/// dropped, and binding to an existing path fails with `AddrInUse`.
///
/// ```no_run
/// use veloq::net::UnixDatagram;
///
/// async fn echo_once() -> std::io::Result<()> {
///     let socket = UnixDatagram::bind("/tmp/veloq-echo.sock")?;
///     let (res, buf) = socket.recv_from(vec![0u8; 1500]).await;
///     let (n, from) = res?;
///     if let Some(path) = from.as_pathname() {
///         let (res, _) = socket.send_to(buf[..n].to_vec(), path).await;
///         res?;
///     }
///     Ok(())
/// }
///
/// veloq::block_on(echo_once()).unwrap();
/// ```
pub struct UnixDatagram {
    socket: Socket,
}

impl UnixDatagram {
    fn new_socket() -> io::Result<socket2::Socket> {
        socket2::Socket::new(Domain::UNIX, Type::DGRAM, None)
    }

    /// Creates a socket bound to `path` (a NUL first byte: an abstract
    /// name, on Linux).
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the path exists; `InvalidInput` for a path that
    /// cannot be a socket address.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_addr(&path_addr(path.as_ref())?)
    }

    /// Creates a socket bound to `addr`; as [`bind`](Self::bind).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        let sock = UnixDatagram::new_socket()?;
        sock.bind(&to_sockaddr(addr)?)?;
        Ok(UnixDatagram {
            socket: Socket::register(sock)?,
        })
    }

    /// Creates a socket bound to no address. Its datagrams reach their
    /// receivers with an unnamed source, which cannot be answered.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            socket: Socket::register(UnixDatagram::new_socket()?)?,
        })
    }

    /// A connected pair of unnamed sockets (`socketpair`).
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((
            UnixDatagram {
                socket: Socket::register(a.into())?,
            },
            UnixDatagram {
                socket: Socket::register(b.into())?,
            },
        ))
    }

    /// Adopts a `std` socket on the current worker.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(false)?;
        Ok(UnixDatagram {
            socket: Socket::register(socket.into())?,
        })
    }

    /// Sets the default destination for [`send`](Self::send) and the only
    /// source [`recv`](Self::recv) accepts (synchronous, as in tokio).
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.connect_addr(&path_addr(path.as_ref())?)
    }

    /// As [`connect`](Self::connect), to `addr`.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.socket.inner().connect(&to_sockaddr(addr)?)
    }

    /// Sends `buf[..bytes_init]` as one datagram to the socket at `path`;
    /// returns the bytes sent.
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        match path_addr(path.as_ref()) {
            Ok(addr) => self.send_to_addr(buf, &addr).await,
            Err(e) => (Err(e), buf),
        }
    }

    /// Sends `buf[..bytes_init]` as one datagram to `addr`.
    pub async fn send_to_addr<B: IoBuf>(&self, buf: B, addr: &SocketAddr) -> BufResult<usize, B> {
        let addr = match to_sockaddr(addr) {
            Ok(a) => a,
            Err(e) => return (Err(e), buf),
        };
        let desc = SendToName {
            fd: self.socket.fd(),
            buf: buf.stable_ptr(),
            len: op_len(buf.bytes_init()),
            addr,
        };
        let (out, (buf, _)) = Op::submit(desc, (buf, self.socket.shared())).await;
        (out.res, buf)
    }

    /// Receives one datagram into `buf[..bytes_total]`; returns its length
    /// and source address (unnamed for an unbound sender). A datagram
    /// longer than the buffer is truncated.
    ///
    /// Cancel-safe: a datagram a dropped `recv_from` (or `recv_msg`) had
    /// received is returned by the next receive, with its source address.
    /// (One a dropped `recv` took has none kept: it reports the connected
    /// peer's address, or the unnamed address on an unconnected socket.)
    pub async fn recv_from<B: IoBufMut>(&self, mut buf: B) -> BufResult<(usize, SocketAddr), B> {
        let stashed = self
            .socket
            .take_stashed(|stash| stash.take_datagram(&mut buf))
            .await;
        if let Some((n, from)) = stashed {
            return match self.source_or_peer(from) {
                Ok(from) => (Ok((n, from)), buf),
                Err(e) => (Err(e), buf),
            };
        }
        let name = Rc::new(UnsafeCell::new(SockName::new()));
        let len = op_len(buf.bytes_total());
        let desc = RecvFromName {
            fd: self.socket.fd(),
            buf: buf.stable_mut_ptr(),
            len,
            from: name.get(),
        };
        let keep = NamedRecvKeep {
            recv: RecvKeep {
                buf,
                off: 0,
                sock: self.socket.shared(),
            },
            name: NameSource(name),
        };
        let (out, keep) = Op::submit_with(desc, keep, NamedRecvKeep::orphan).await;
        let mut buf = keep.recv.buf;
        // SAFETY: the kernel wrote at most `len <= bytes_total` bytes of
        // the datagram at the start of the buffer.
        unsafe { op::mark_read(&out, &mut buf, 0, len) };
        let n = match out.res {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        match self.source_or_peer(keep.name.source(&out)) {
            Ok(from) => (Ok((n, from)), buf),
            Err(e) => (Err(e), buf),
        }
    }

    /// Sends the initialised bytes of `bufs`, in order, as one datagram
    /// (one `sendmsg`) to `target`, or to the connected address when
    /// `target` is `None`, passing the descriptors `fds` with it
    /// (`SCM_RIGHTS`; duplicates are made at once, so the caller may close
    /// its copies as soon as this is called). Returns the bytes sent; the
    /// buffers come back in the same order.
    ///
    /// ```no_run
    /// use std::os::fd::AsFd;
    /// # veloq::block_on(async {
    /// let (a, b) = veloq::net::UnixDatagram::pair()?;
    /// let file = std::fs::File::open("/etc/hostname")?;
    /// let bufs = vec![b"take ".to_vec(), b"this".to_vec()];
    /// let (res, _) = a.send_msg(bufs, &[file.as_fd()], None).await;
    /// assert_eq!(res?, 9);
    /// let (res, _) = b.recv_msg(vec![Vec::with_capacity(4), Vec::with_capacity(8)], 1).await;
    /// let (n, fds, _from) = res?;
    /// assert_eq!((n, fds.len()), (9, 1));
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn send_msg<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        fds: &[BorrowedFd<'_>],
        target: Option<&SocketAddr>,
    ) -> BufResult<usize, Vec<B>> {
        let dest = match target.map(to_sockaddr).transpose() {
            Ok(d) => d,
            Err(e) => return (Err(e), bufs),
        };
        self.socket.send_msg_to(bufs, fds, dest).await
    }

    /// Receives one datagram into `bufs`, filling each buffer to its
    /// `bytes_total` before the next (one `recvmsg`), with room for up to
    /// `max_fds` descriptors passed with it (received close-on-exec; more
    /// are dropped by the kernel). Returns its length (a datagram longer
    /// than the buffers' room is truncated), the descriptors, now the
    /// caller's, and the source address (unnamed for an unbound sender).
    ///
    /// Cancel-safe for the datagram, as [`recv_from`](Self::recv_from)
    /// (it goes, with its source, to the next receive); descriptors a
    /// dropped `recv_msg` had received are closed.
    pub async fn recv_msg<B: IoBufMut>(
        &self,
        bufs: Vec<B>,
        max_fds: usize,
    ) -> BufResult<(usize, Vec<OwnedFd>, SocketAddr), Vec<B>> {
        let (res, bufs) = self.socket.recv_msg_from(bufs, max_fds, true).await;
        let res = res.and_then(|r| Ok((r.n, r.fds, self.source_or_peer(r.from)?)));
        (res, bufs)
    }

    /// A received datagram's source: the one the kernel stored, else (an
    /// unnamed sender, or a datagram a cancelled `recv` took) the connected
    /// peer's, else the unnamed address.
    fn source_or_peer(&self, from: Option<SockAddr>) -> io::Result<SocketAddr> {
        match from {
            Some(a) => from_sockaddr(&a),
            None => self.peer_addr().or_else(|_| unnamed()),
        }
    }

    /// Sends `buf[..bytes_init]` as one datagram to the connected address.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.send(buf).await
    }

    /// Receives one datagram into `buf[..bytes_total]`; returns its
    /// length. Cancel-safe, as [`recv_from`](Self::recv_from).
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.recv(buf).await
    }

    /// The local address (unnamed for an unbound socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.socket.inner().local_addr()?)
    }

    /// The connected address (`NotConnected` before
    /// [`connect`](Self::connect); unnamed for a [`pair`](Self::pair)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.socket.inner().peer_addr()?)
    }

    /// Shuts down the read side, the write side or both (synchronously).
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.socket.inner().shutdown(how)
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixDatagram");
        d.field("fd", &self.socket.fd());
        if let Ok(a) = self.local_addr() {
            d.field("local_addr", &a);
        }
        if let Ok(a) = self.peer_addr() {
            d.field("peer_addr", &a);
        }
        d.finish()
    }
}

/// The keep-alive of a `recv_from`: the receive's, plus the memory the
/// driver stores the source address in.
struct NamedRecvKeep<B> {
    recv: RecvKeep<B, SocketInner>,
    name: NameSource,
}

impl<B: IoBufMut> NamedRecvKeep<B> {
    /// [`Orphan`](crate::io::op::Orphan) of a `recv_from`: the datagram
    /// goes to the stash with the source address the kernel stored in the
    /// name, which the hook keeps alive until the completion.
    fn orphan(keep: NamedRecvKeep<B>) -> KeepAlive {
        OrphanRecv::orphan_with(keep.recv, keep.name)
    }
}

/// The memory a `RecvFromName` op stores the source address in.
struct NameSource(Rc<UnsafeCell<SockName>>);

impl DatagramSource for NameSource {
    fn source(&self, _out: &OpOutput) -> Option<SockAddr> {
        // SAFETY: called once the op has completed (the trait's contract),
        // so the driver no longer writes the name; nothing else refers to
        // it mutably.
        unsafe { &*self.0.get() }.get()
    }
}
