//! Unix-domain stream sockets ([`UnixListener`], [`UnixStream`]), the
//! address conversions the Unix types share, and [`UCred`].
//!
//! # Addresses
//!
//! Addresses are `std::os::unix::net::SocketAddr`, as in std and tokio.
//! Methods that take a path treat a path whose first byte is NUL as an
//! abstract name on Linux (the rest of the path is the name), as tokio
//! does; the `*_addr` methods take a `SocketAddr` built any way std allows
//! (`SocketAddr::from_pathname`, `SocketAddrExt::from_abstract_name`).
//!
//! # Invariants
//!
//! - As for TCP: every socket is registered with the current driver once
//!   (`Socket::register`), its descriptor is shared with in-flight ops,
//!   and reads go through the socket's stash (cancel-safe).
//! - Sockets handed to the driver are blocking (io_uring needs that; the
//!   epoll driver makes them non-blocking itself when registering).

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, SockAddr, Type};

use super::accept_queue::AcceptQueue;
use super::socket::Socket;
use crate::buf::{BufResult, IoBuf, IoBufMut};

/// Backlog of every listener, as for TCP.
const BACKLOG: i32 = 1024;

/// The address a path argument names: a path starting with NUL is an
/// abstract name on Linux (tokio's rule), any other a filesystem path.
pub(crate) fn path_addr(path: &Path) -> io::Result<SocketAddr> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(name) = path.as_os_str().as_bytes().strip_prefix(b"\0") {
        use std::os::linux::net::SocketAddrExt;
        return SocketAddr::from_abstract_name(name);
    }
    SocketAddr::from_pathname(path)
}

/// std's address in kernel form.
pub(crate) fn to_sockaddr(addr: &SocketAddr) -> io::Result<SockAddr> {
    if let Some(path) = addr.as_pathname() {
        return SockAddr::unix(path);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::linux::net::SocketAddrExt;
        if let Some(name) = addr.as_abstract_name() {
            // socket2 reads a leading NUL as "abstract".
            let mut bytes = Vec::with_capacity(name.len() + 1);
            bytes.push(0);
            bytes.extend_from_slice(name);
            return SockAddr::unix(OsStr::from_bytes(&bytes));
        }
    }
    // Unnamed: an empty path.
    SockAddr::unix("")
}

/// A kernel address as std's; anything that is neither a path nor an
/// abstract name (an unnamed socket) is the unnamed address.
pub(crate) fn from_sockaddr(addr: &SockAddr) -> io::Result<SocketAddr> {
    if let Some(path) = addr.as_pathname() {
        return SocketAddr::from_pathname(path);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(name) = addr.as_abstract_namespace() {
        use std::os::linux::net::SocketAddrExt;
        return SocketAddr::from_abstract_name(name);
    }
    unnamed()
}

/// The address of an unnamed socket (std builds it from an empty path).
pub(crate) fn unnamed() -> io::Result<SocketAddr> {
    SocketAddr::from_pathname("")
}

/// A Unix-domain socket listening for connections.
///
/// Binding creates the socket file; like std's, the listener does **not**
/// remove it when dropped, and binding to a path that exists (even a stale
/// socket file) fails with `AddrInUse`: remove the file first if that is
/// what you want.
///
/// ```no_run
/// use veloq::net::UnixListener;
///
/// async fn serve() -> std::io::Result<()> {
///     let listener = UnixListener::bind("/tmp/veloq.sock")?;
///     loop {
///         let (stream, _peer) = listener.accept().await?;
///         let (res, _) = stream.write_all(b"hello\n".to_vec()).await;
///         res?;
///     }
/// }
///
/// veloq::block_on(serve()).unwrap();
/// ```
pub struct UnixListener {
    socket: Socket,
    accepts: AcceptQueue,
}

impl UnixListener {
    /// Creates a listener bound to `path` (a NUL first byte: an abstract
    /// name, on Linux), with a backlog of 1024.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the path exists; `InvalidInput` for a path that
    /// cannot be a socket address (too long, or with a NUL byte inside);
    /// otherwise the system's error.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::bind_addr(&path_addr(path.as_ref())?)
    }

    /// Creates a listener bound to `addr`.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        let sock = socket2::Socket::new(Domain::UNIX, Type::STREAM, None)?;
        sock.bind(&to_sockaddr(addr)?)?;
        sock.listen(BACKLOG)?;
        Ok(UnixListener {
            socket: Socket::register(sock)?,
            accepts: AcceptQueue::default(),
        })
    }

    /// Adopts a `std` listener on the current worker.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        // The driver needs a blocking socket (see the module docs).
        listener.set_nonblocking(false)?;
        Ok(UnixListener {
            socket: Socket::register(listener.into())?,
            accepts: AcceptQueue::default(),
        })
    }

    /// Waits for a connection; returns the stream and the peer's address
    /// (usually unnamed: a connecting socket rarely binds a name).
    ///
    /// Cancel-safe: a connection a dropped `accept` had taken goes to the
    /// next `accept`. On io_uring one multishot accept stays armed, as for
    /// [`TcpListener::accept`](crate::net::TcpListener::accept).
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (fd, _) = self.accepts.accept(&self.socket, false).await?;
        // SAFETY: the accept handed over a new socket that nothing else
        // owns; the driver keeps no reference to it.
        let socket = unsafe { Socket::from_accepted(fd)? };
        // The driver decodes IP addresses only; ask the kernel. A peer
        // that has already gone may leave no address to ask for: it is
        // reported unnamed, and the stream reads end of stream.
        let peer = match socket.inner().peer_addr() {
            Ok(a) => from_sockaddr(&a)?,
            Err(_) => unnamed()?,
        };
        Ok((UnixStream { socket }, peer))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.socket.inner().local_addr()?)
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixListener");
        d.field("fd", &self.socket.fd());
        if let Ok(a) = self.local_addr() {
            d.field("local_addr", &a);
        }
        d.finish()
    }
}

/// A connected Unix-domain stream socket.
///
/// Reads and writes take an owned buffer and give it back with the result,
/// as [`TcpStream`](crate::net::TcpStream)'s do; methods take `&self`, and
/// `&UnixStream` implements [`AsyncRead`](crate::io::AsyncRead) and
/// [`AsyncWrite`](crate::io::AsyncWrite) too.
///
/// [`read`](Self::read) is cancel-safe (bytes a dropped read took go to
/// the next read); writes are not.
///
/// ```no_run
/// use veloq::net::UnixStream;
///
/// async fn ping() -> std::io::Result<()> {
///     let stream = UnixStream::connect("/tmp/veloq.sock").await?;
///     let (res, _) = stream.write_all(b"ping".to_vec()).await;
///     res?;
///     let (res, buf) = stream.read(vec![0u8; 1024]).await;
///     println!("got {:?}", &buf[..res?]);
///     Ok(())
/// }
///
/// veloq::block_on(ping()).unwrap();
/// ```
pub struct UnixStream {
    socket: Socket,
}

impl UnixStream {
    /// The socket, for `compat::Compat`'s direct writes.
    #[cfg_attr(
        not(all(target_os = "linux", any(feature = "futures-io", feature = "tokio"))),
        allow(dead_code)
    )]
    pub(crate) fn socket(&self) -> &Socket {
        &self.socket
    }
}

impl UnixStream {
    /// Connects to the socket at `path` (a NUL first byte: an abstract
    /// name, on Linux).
    ///
    /// A Unix-domain connect completes at once unless the listener's
    /// backlog is full; then it is retried after a short pause (growing to
    /// 64 ms) until the listener takes it. Dropping the future gives up.
    ///
    /// # Errors
    ///
    /// `NotFound` if no socket file exists, `ConnectionRefused` if no
    /// listener is bound there; `InvalidInput` for a path that cannot be a
    /// socket address.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = path_addr(path.as_ref())?;
        UnixStream::connect_addr(&addr).await
    }

    /// Connects to `addr`; as [`connect`](Self::connect).
    pub async fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        let to = to_sockaddr(addr)?;
        let sock = socket2::Socket::new(Domain::UNIX, Type::STREAM, None)?;
        // Non-blocking, so a full backlog is `WouldBlock` rather than a
        // blocked thread. (A Unix connect never goes on in the background:
        // it succeeds, fails, or did nothing and may be retried.)
        sock.set_nonblocking(true)?;
        let mut pause = Duration::from_millis(1);
        loop {
            match sock.connect(&to) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    crate::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(64));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        sock.set_nonblocking(false)?;
        Ok(UnixStream {
            socket: Socket::register(sock)?,
        })
    }

    /// A connected pair of streams (`socketpair`), both on this worker.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((
            UnixStream {
                socket: Socket::register(a.into())?,
            },
            UnixStream {
                socket: Socket::register(b.into())?,
            },
        ))
    }

    /// Adopts a connected `std` stream on the current worker.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(false)?;
        Ok(UnixStream {
            socket: Socket::register(stream.into())?,
        })
    }

    /// The received bytes as a stream of buffers from `ring`: each
    /// `next().await` yields one received chunk as a
    /// [`PooledBuf`](crate::buf::PooledBuf) that goes back to the ring when
    /// dropped, and `None` at end of stream. On io_uring with a kernel
    /// ring one multishot receive stays armed for the stream; elsewhere
    /// each `next()` is one receive (see [`BufRing`](crate::buf::BufRing)).
    ///
    /// Cancel-safe, as [`read`](Self::read): dropping a `next()` or the
    /// whole stream loses nothing; what was received but not handed out
    /// goes to this socket's next read or stream, in order. Don't read the
    /// socket otherwise while a stream of it is in use (both would take
    /// bytes of the same stream).
    pub fn recv_stream<'a>(&'a self, ring: &crate::buf::BufRing) -> crate::net::RecvStream<'a> {
        crate::net::RecvStream::new(&self.socket, ring)
    }

    /// Reads once into `buf[..bytes_total]`; returns how many bytes came
    /// (`0` once the peer has closed its side). Cancel-safe.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.recv(buf).await
    }

    /// Writes once from `buf[..bytes_init]`; returns how many bytes the
    /// kernel took. Not cancel-safe.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.send(buf).await
    }

    /// Reads into several buffers, filling them in order; returns how many
    /// bytes came in all (`0` at end of stream, or when no buffer has
    /// room). The buffers come back in the same order.
    ///
    /// One `recvmsg` over all the buffers.
    /// Cancel-safe, as [`read`](Self::read).
    pub async fn read_vectored<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        self.socket.recv_vectored(bufs).await
    }

    /// Writes from several buffers, in order; returns how many bytes the
    /// kernel took in all (possibly fewer than offered). The buffers come
    /// back in the same order.
    ///
    /// One `sendmsg` over all the buffers.
    pub async fn write_vectored<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        self.socket.send_vectored(bufs).await
    }

    /// Sends `bufs` in order in one `sendmsg`, passing the descriptors
    /// `fds` to the peer (`SCM_RIGHTS`) with the first byte; returns the
    /// bytes sent. The peer receives its own descriptors for the same open
    /// files (duplicates are made at once, so the caller may close its
    /// copies as soon as this is called).
    ///
    /// ```no_run
    /// use std::os::fd::AsFd;
    /// # veloq::block_on(async {
    /// let (a, b) = veloq::net::UnixStream::pair()?;
    /// let file = std::fs::File::open("/etc/hostname")?;
    /// let (res, _) = a.send_msg(vec![b"f".to_vec()], &[file.as_fd()]).await;
    /// res?;
    /// let (res, _) = b.recv_msg(vec![Vec::with_capacity(8)], 4).await;
    /// let (n, fds) = res?;
    /// assert_eq!((n, fds.len()), (1, 1));
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn send_msg<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> BufResult<usize, Vec<B>> {
        self.socket.send_msg(bufs, fds).await
    }

    /// Receives into `bufs` in order in one `recvmsg`, with room for up to
    /// `max_fds` descriptors the peer passed (`SCM_RIGHTS`, received
    /// close-on-exec); returns the bytes received and the descriptors,
    /// now owned by the caller. Descriptors beyond `max_fds` are dropped
    /// by the kernel.
    ///
    /// Cancel-safe for the bytes, as [`read`](Self::read); descriptors a
    /// dropped `recv_msg` had received are closed.
    pub async fn recv_msg<B: IoBufMut>(
        &self,
        bufs: Vec<B>,
        max_fds: usize,
    ) -> BufResult<(usize, Vec<std::os::fd::OwnedFd>), Vec<B>> {
        self.socket.recv_msg(bufs, max_fds).await
    }

    /// Reads until `buf[..bytes_total]` is full; `UnexpectedEof` if the
    /// peer closes first.
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        self.socket.recv_exact(buf).await
    }

    /// Writes all of `buf[..bytes_init]`; `WriteZero` if the kernel takes
    /// nothing.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.socket.send_all(buf).await
    }

    /// The local address (unnamed unless the socket was bound).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.socket.inner().local_addr()?)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.socket.inner().peer_addr()?)
    }

    /// The credentials of the peer process, as the kernel recorded them
    /// when the connection (or pair) was made (`SO_PEERCRED`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn peer_cred(&self) -> io::Result<UCred> {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are live locals of the sizes passed;
        // the socket stays open (borrowed through `self`) during the call.
        let r = unsafe {
            libc::getsockopt(
                self.socket.fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(UCred {
            uid: cred.uid,
            gid: cred.gid,
            pid: (cred.pid != 0).then_some(cred.pid),
        })
    }

    /// Shuts down the read side, the write side or both (synchronously).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.inner().shutdown(how)
    }

    /// Splits the stream into halves that may live in different tasks (of
    /// this worker); see [`TcpStream::into_split`](crate::net::TcpStream::into_split).
    pub fn into_split(self) -> (super::unix::OwnedReadHalf, super::unix::OwnedWriteHalf) {
        super::unix_split::split(self)
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixStream");
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

/// The credentials of a Unix socket's peer process
/// ([`UnixStream::peer_cred`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UCred {
    uid: libc::uid_t,
    gid: libc::gid_t,
    pid: Option<libc::pid_t>,
}

impl UCred {
    /// The peer's user id.
    pub fn uid(&self) -> libc::uid_t {
        self.uid
    }

    /// The peer's group id.
    pub fn gid(&self) -> libc::gid_t {
        self.gid
    }

    /// The peer's process id, where the system reports one.
    pub fn pid(&self) -> Option<libc::pid_t> {
        self.pid
    }
}
