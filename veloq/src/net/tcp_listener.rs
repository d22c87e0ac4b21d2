//! [`TcpListener`]: a listening TCP socket whose accepts are driver ops.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use socket2::{Protocol, SockAddr, Type};

use super::accept_queue::AcceptQueue;
use super::addr;
use super::socket::Socket;
use super::TcpStream;
use crate::sys;

/// Backlog of every listener: pending connections the kernel queues before
/// `accept` takes them.
const BACKLOG: i32 = 1024;

/// A TCP socket listening for connections.
///
/// ```no_run
/// use veloq::net::TcpListener;
///
/// async fn serve() -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     println!("listening on {}", listener.local_addr()?);
///     loop {
///         let (stream, peer) = listener.accept().await?;
///         println!("connection from {peer}");
///         drop(stream);
///     }
/// }
///
/// veloq::block_on(serve()).unwrap();
/// ```
pub struct TcpListener {
    socket: Socket,
    ipv6: bool,
    pub(super) accepts: AcceptQueue,
}

impl TcpListener {
    /// Creates a listener bound to `addr` (IPv4 or IPv6), with a backlog
    /// of 1024. Each resolved address is tried in turn; the first that
    /// binds is used.
    ///
    /// On Unix `SO_REUSEADDR` is set first, so a restarted server can bind
    /// a port whose old connections linger in `TIME_WAIT`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an address that cannot be parsed or resolved;
    /// otherwise the error of the last address tried (e.g. `AddrInUse`).
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, sys::prepare_listener)
    }

    /// Creates a listener that shares its port with other listeners bound
    /// the same way (`SO_REUSEPORT`): bind one on each worker to the same
    /// address and the kernel spreads incoming connections over them, with
    /// no hand-off between workers.
    ///
    /// To share a port picked by the system, bind the first listener to
    /// port 0 and the others to its [`local_addr`](TcpListener::local_addr).
    ///
    /// ```no_run
    /// use veloq::net::TcpListener;
    ///
    /// let rt = veloq::Runtime::builder().workers(2).build()?;
    /// rt.block_on(async {
    ///     for worker in 0..veloq::worker_count() {
    ///         veloq::spawn_on(worker, || async {
    ///             let listener = TcpListener::bind_reuseport("0.0.0.0:8080").unwrap();
    ///             loop {
    ///                 let (stream, _) = listener.accept().await.unwrap();
    ///                 veloq::spawn(async move { drop(stream) });
    ///             }
    ///         });
    ///     }
    ///     std::future::pending::<()>().await
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`bind`](TcpListener::bind). On Windows always `Unsupported`:
    /// Windows has no `SO_REUSEPORT` (its `SO_REUSEADDR` lets a socket take
    /// a port over, not share its connections); accept on one worker with
    /// [`accept_std`](TcpListener::accept_std) and hand the connections to
    /// the others instead.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn bind_reuseport(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, sys::prepare_reuseport_listener)
    }

    fn bind_with(
        addr: impl ToSocketAddrs,
        prepare: fn(&socket2::Socket) -> io::Result<()>,
    ) -> io::Result<TcpListener> {
        addr::try_each(addr, |a| {
            let socket = Socket::new(&a, Type::STREAM, Protocol::TCP)?;
            prepare(socket.inner())?;
            socket.inner().bind(&SockAddr::from(a))?;
            socket.inner().listen(BACKLOG)?;
            Ok(TcpListener {
                socket,
                ipv6: a.is_ipv6(),
                accepts: AcceptQueue::default(),
            })
        })
    }

    /// Waits for a connection; returns the connected stream and the peer's
    /// address.
    ///
    /// Cancel-safe: dropping the future cancels the accept, and a
    /// connection the kernel had already taken for it is handed to the
    /// next `accept` (or `accept_std`) on this listener, never lost.
    ///
    /// On io_uring (Linux 5.19+) the first call arms one multishot accept
    /// that stays armed for the listener's life: the kernel queues every
    /// new connection for the next calls, without a new op per
    /// connection. Connections still queued when the listener is dropped
    /// are closed.
    ///
    /// ```no_run
    /// # veloq::block_on(async {
    /// let listener = veloq::net::TcpListener::bind("[::1]:0")?;
    /// let (stream, peer) = listener.accept().await?;
    /// assert_eq!(stream.peer_addr()?, peer);
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = self.accept_raw().await?;
        // SAFETY: `accept_raw` hands us a new socket that nothing else
        // owns; the driver keeps no reference to it.
        let socket = unsafe { Socket::from_accepted(fd)? };
        let peer = match addr {
            Some(a) => a,
            None => socket.peer_addr()?,
        };
        Ok((TcpStream::from_socket(socket), peer))
    }

    /// One accepted connection, owned by the caller: a connection a
    /// cancelled accept had taken, or a new one.
    async fn accept_raw(&self) -> io::Result<(sys::RawFd, Option<SocketAddr>)> {
        self.accepts.accept(&self.socket, self.ipv6).await
    }

    /// Waits for a connection and returns it as a `std` stream that belongs
    /// to no driver: it is `Send`, so it can be handed to another worker
    /// (through a channel, or a [`spawn_on`](crate::spawn_on) closure),
    /// which adopts it with [`TcpStream::from_std`]. This is how one
    /// accepting worker feeds the others, on every platform.
    ///
    /// On Windows this matters: a socket can be associated with only one
    /// completion port, ever, so a stream accepted with
    /// [`accept`](TcpListener::accept) (associated with this worker's port)
    /// can never move to another worker. The socket returned here has not
    /// been associated with any port.
    ///
    /// ```no_run
    /// use veloq::net::{TcpListener, TcpStream};
    ///
    /// let rt = veloq::Runtime::builder().workers(2).build()?;
    /// rt.block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:8080").unwrap();
    ///     loop {
    ///         let (std_stream, _) = listener.accept_std().await.unwrap();
    ///         veloq::spawn_balanced(move || async move {
    ///             let stream = TcpStream::from_std(std_stream).unwrap();
    ///             let (res, _) = stream.write_all(b"hello\n".to_vec()).await;
    ///             res.unwrap();
    ///         });
    ///     }
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// Dropping the future cancels the accept, as for `accept`.
    pub async fn accept_std(&self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        let (fd, addr) = self.accept_raw().await?;
        // SAFETY: `accept_raw` hands us a new socket that nothing else
        // owns; the driver keeps no reference to it.
        let socket = unsafe { sys::socket_from_raw(fd) };
        let peer = match addr {
            Some(a) => a,
            None => super::socket::to_std(socket.peer_addr()?)?,
        };
        Ok((socket.into(), peer))
    }

    /// The address the listener is bound to (with the real port when bound
    /// to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.socket.fmt_debug("TcpListener", f)
    }
}
