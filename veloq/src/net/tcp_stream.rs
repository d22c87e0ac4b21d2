//! [`TcpStream`]: a connected TCP socket whose reads and writes are driver
//! ops on owned buffers.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};

use socket2::{Protocol, Type};

use super::addr;
use super::socket::Socket;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::op::{Connect, Op};

/// A connected TCP stream.
///
/// Reads and writes take an owned buffer and give it back with the result.
/// Methods take `&self`, so one task may read while another writes.
///
/// # When the socket closes
///
/// Dropping the stream closes the socket once no operation names it any
/// more: at once if none is in flight, else when the last cancelled
/// operation's completion arrives (on its runtime's next turn). Until then
/// the descriptor stays open, so no operation can ever act on a new socket
/// that reused its number.
///
/// # Cancellation
///
/// [`read`](Self::read) is cancel-safe (bytes a dropped read took go to
/// the next read). [`write`](Self::write) and [`write_all`](Self::write_all)
/// are not: a dropped write may have sent part of its buffer.
/// [`read_exact`](Self::read_exact) keeps what earlier reads filled in its
/// buffer, so a dropped `read_exact` loses those bytes with the buffer.
///
/// # Threads
///
/// A stream and its operations belong to the worker that made them: they
/// are `!Send`, so an operation can never be polled or dropped where its
/// driver is not.
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// async fn f(s: veloq::net::TcpStream) {
///     assert_send(s.read(vec![0u8; 8]));
/// }
/// ```
///
/// ```no_run
/// use veloq::net::TcpStream;
///
/// async fn ping() -> std::io::Result<()> {
///     let stream = TcpStream::connect("127.0.0.1:8080").await?;
///     stream.set_nodelay(true)?;
///     let (res, _) = stream.write_all(b"ping".to_vec()).await;
///     res?;
///     let (res, buf) = stream.read(vec![0u8; 1024]).await;
///     let n = res?;
///     println!("got {:?}", &buf[..n]);
///     Ok(())
/// }
///
/// veloq::block_on(ping()).unwrap();
/// ```
pub struct TcpStream {
    socket: Socket,
}

impl TcpStream {
    /// The socket, for `compat::Compat`'s direct writes.
    #[cfg_attr(
        not(all(target_os = "linux", any(feature = "futures-io", feature = "tokio"))),
        allow(dead_code)
    )]
    pub(crate) fn socket(&self) -> &Socket {
        &self.socket
    }
}

impl TcpStream {
    pub(crate) fn from_socket(mut socket: Socket) -> TcpStream {
        socket.allow_zero_copy();
        TcpStream { socket }
    }

    /// Adopts a connected `std` stream on the current worker, registering
    /// it with this worker's driver. With
    /// [`TcpListener::accept_std`](crate::net::TcpListener::accept_std) it
    /// moves connections between workers.
    ///
    /// The stream may be blocking or not; veloq's operations complete
    /// either way.
    ///
    /// # Errors
    ///
    /// Whatever registering reports. On Windows a socket already
    /// associated with a completion port (one that went through another
    /// veloq worker, or a handle some other library uses with IOCP) cannot
    /// be associated again, and that fails (`InvalidInput`).
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        let socket = Socket::register(socket2::Socket::from(stream))?;
        Ok(TcpStream::from_socket(socket))
    }

    /// Turns the stream back into a `std` stream, for blocking use or for
    /// another worker.
    ///
    /// On Linux the result may be adopted by any worker with
    /// [`from_std`](TcpStream::from_std). On Windows it stays associated
    /// with this worker's completion port — blocking `std` I/O on it works,
    /// but no other worker can adopt it; hand connections over before
    /// their first veloq operation instead (`accept_std`).
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let socket = self.socket.into_inner()?;
        // A readiness driver (epoll) made the socket non-blocking; a std
        // stream is expected to block.
        socket.set_nonblocking(false)?;
        Ok(socket.into())
    }

    /// Connects to `addr`, trying each resolved address in turn until one
    /// accepts.
    ///
    /// Dropping the future cancels the connect and closes the socket.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an address that cannot be parsed or resolved;
    /// otherwise the last address's error (e.g. `ConnectionRefused`).
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = None;
        for a in addr::resolve(addr)? {
            match TcpStream::connect_one(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve yields at least one address"))
    }

    async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let mut socket = Socket::new(&addr, Type::STREAM, Protocol::TCP)?;
        // Before the connect op shares it.
        socket.allow_zero_copy();
        let desc = Connect {
            fd: socket.fd(),
            addr,
        };
        let (out, _) = Op::submit(desc, socket.shared()).await;
        out.res?;
        Ok(TcpStream { socket })
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
    /// (`0` once the peer has closed its side) and marks them initialised.
    ///
    /// Cancel-safe: dropping the future cancels the read, and whatever it
    /// had already received goes to the next read on this stream, in
    /// order, never lost. (The driver holds the buffer until the kernel has
    /// let go of it.)
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.recv(buf).await
    }

    /// Writes once from `buf[..bytes_init]`; returns how many bytes the
    /// kernel took (possibly fewer than offered).
    ///
    /// Not cancel-safe: a write whose future is dropped may already have
    /// sent some or all of its bytes, and there is no telling how many.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.send(buf).await
    }

    /// Reads into several buffers, filling them in order; returns how many
    /// bytes came in all (`0` at end of stream, or when no buffer has
    /// room). The buffers come back in the same order.
    ///
    /// One receive over all the buffers: `recvmsg` on Unix, `WSARecv` over
    /// an array of `WSABUF`s on Windows. Each buffer is filled to its
    /// `bytes_total` before the next gets a byte. Cancel-safe, as
    /// [`read`](Self::read): bytes a dropped `read_vectored` took go to the
    /// next read.
    pub async fn read_vectored<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        self.socket.recv_vectored(bufs).await
    }

    /// Writes from several buffers, in order; returns how many bytes the
    /// kernel took in all (possibly fewer than offered). The buffers come
    /// back in the same order.
    ///
    /// One send over all the buffers (`sendmsg` on Unix, `WSASend` over an
    /// array of `WSABUF`s on Windows). Loop to send everything.
    pub async fn write_vectored<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        self.socket.send_vectored(bufs).await
    }

    /// Reads until `buf[..bytes_total]` is full.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the peer closes first.
    ///
    /// ```no_run
    /// # veloq::block_on(async {
    /// # let stream = veloq::net::TcpStream::connect("127.0.0.1:8080").await?;
    /// let (res, header) = stream.read_exact(vec![0u8; 16]).await;
    /// res?;
    /// assert_eq!(header.len(), 16);
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        self.socket.recv_exact(buf).await
    }

    /// Writes all of `buf[..bytes_init]`, issuing further writes from the
    /// same buffer after a partial one.
    ///
    /// # Errors
    ///
    /// `WriteZero` if the kernel accepts no bytes.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.socket.send_all(buf).await
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm when `true`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket.inner().set_tcp_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket.inner().tcp_nodelay()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Shuts down the read side, the write side or both (synchronously).
    /// After `Shutdown::Write` the peer's reads return `0`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.inner().shutdown(how)
    }

    /// Splits the stream into a read half and a write half that may be
    /// moved into different tasks (of this worker); put them back
    /// together with [`reunite`](super::tcp::OwnedReadHalf::reunite).
    ///
    /// Dropping the write half shuts down the write side (the peer reads
    /// end of stream). For two borrowed halves in one task, use `&stream`
    /// twice: `&TcpStream` reads and writes too.
    pub fn into_split(self) -> (super::tcp::OwnedReadHalf, super::tcp::OwnedWriteHalf) {
        super::split::split(self)
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.socket.fmt_debug("TcpStream", f)
    }
}
