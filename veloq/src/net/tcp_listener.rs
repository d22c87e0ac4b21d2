//! [`TcpListener`]: a listening TCP socket whose accepts are driver ops.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use socket2::{Protocol, SockAddr, Type};

use super::addr;
use super::socket::Socket;
use super::TcpStream;
use crate::io::op::{Accept, Op};
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
        addr::try_each(addr, |a| {
            let socket = Socket::new(&a, Type::STREAM, Protocol::TCP)?;
            sys::prepare_listener(socket.inner())?;
            socket.inner().bind(&SockAddr::from(a))?;
            socket.inner().listen(BACKLOG)?;
            Ok(TcpListener {
                socket,
                ipv6: a.is_ipv6(),
            })
        })
    }

    /// Waits for a connection; returns the connected stream and the peer's
    /// address.
    ///
    /// Dropping the future cancels the accept; a connection the kernel had
    /// already taken for it is closed by the driver.
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
        let desc = Accept {
            fd: self.socket.fd(),
            ipv6: self.ipv6,
        };
        let (out, ()) = Op::submit(desc, ()).await;
        let fd = out.res?;
        // SAFETY: a successful `Accept` hands us a new socket that nothing
        // else owns; the driver keeps no reference to it.
        let socket = unsafe { Socket::from_accepted(fd as sys::RawFd)? };
        let peer = match out.addr {
            Some(a) => a,
            None => socket.peer_addr()?,
        };
        Ok((TcpStream::from_socket(socket), peer))
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
