//! [`UdpSocket`]: datagrams sent and received as driver ops on owned
//! buffers.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use socket2::{Protocol, SockAddr, Type};

use super::addr;
use super::socket::{op_len, Socket};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::op::{self, Op, RecvFrom, SendTo};
use crate::io::stash::{OrphanRecv, RecvKeep};

/// A UDP socket.
///
/// ```no_run
/// use veloq::net::UdpSocket;
///
/// async fn echo_once() -> std::io::Result<()> {
///     let socket = UdpSocket::bind("127.0.0.1:0")?;
///     let (res, buf) = socket.recv_from(vec![0u8; 1500]).await;
///     let (n, from) = res?;
///     let (res, _) = socket.send_to(buf[..n].to_vec(), from).await;
///     res?;
///     Ok(())
/// }
///
/// veloq::block_on(echo_once()).unwrap();
/// ```
pub struct UdpSocket {
    socket: Socket,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (IPv4 or IPv6); each resolved
    /// address is tried in turn.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an address that cannot be parsed or resolved;
    /// otherwise the last address's error.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        addr::try_each(addr, |a| {
            let socket = Socket::new(&a, Type::DGRAM, Protocol::UDP)?;
            socket.inner().bind(&SockAddr::from(a))?;
            Ok(UdpSocket { socket })
        })
    }

    /// Sets the default destination for [`send`](Self::send) and the only
    /// source [`recv`](Self::recv) accepts. Each resolved address is tried
    /// in turn. (A UDP connect only records the address; it completes at
    /// once.)
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        addr::try_each(addr, |a| self.socket.inner().connect(&SockAddr::from(a)))
    }

    /// Sends `buf[..bytes_init]` as one datagram to `addr` (its first
    /// resolved address); returns the bytes sent.
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: impl ToSocketAddrs) -> BufResult<usize, B> {
        let addr = match addr::resolve_one(addr) {
            Ok(a) => a,
            Err(e) => return (Err(e), buf),
        };
        let desc = SendTo {
            fd: self.socket.fd(),
            buf: buf.stable_ptr(),
            len: op_len(buf.bytes_init()),
            addr,
        };
        let (out, (buf, _)) = Op::submit(desc, (buf, self.socket.shared())).await;
        (out.res, buf)
    }

    /// Receives one datagram into `buf[..bytes_total]`; returns its length
    /// and source address. A datagram longer than the buffer is truncated.
    ///
    /// Cancel-safe: a datagram that a dropped `recv_from` (or `recv`) had
    /// already received is returned by the next one.
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
        let len = op_len(buf.bytes_total());
        let desc = RecvFrom {
            fd: self.socket.fd(),
            buf: buf.stable_mut_ptr(),
            len,
        };
        let keep = RecvKeep {
            buf,
            off: 0,
            sock: self.socket.shared(),
        };
        let (out, keep) = Op::submit_with(desc, keep, OrphanRecv::orphan).await;
        let mut buf = keep.buf;
        // SAFETY: the kernel wrote at most `len <= bytes_total` bytes of the
        // datagram at the start of the buffer.
        unsafe { op::mark_read(&out, &mut buf, 0, len) };
        let n = match out.res {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        match out.addr {
            Some(from) => (Ok((n, from)), buf),
            None => (
                Err(io::Error::other(
                    "driver reported no source address for a datagram",
                )),
                buf,
            ),
        }
    }

    /// Sends the initialised bytes of `bufs`, in order, as one datagram
    /// (gathered by the kernel: one `sendmsg` on Unix, one `WSASendTo` or
    /// `WSASend` over an array of `WSABUF`s on Windows) to `target`, or to
    /// the connected address when `target` is `None`; returns the bytes
    /// sent. The buffers come back in the same order.
    ///
    /// ```no_run
    /// # veloq::block_on(async {
    /// let socket = veloq::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let header = b"len=5;".to_vec();
    /// let body = b"hello".to_vec();
    /// let to = "127.0.0.1:9000".parse().unwrap();
    /// let (res, _) = socket.send_msg(vec![header, body], Some(to)).await;
    /// assert_eq!(res?, 11);
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// `NotConnected` (or the platform's equivalent) with no `target` on
    /// an unconnected socket; whatever the kernel reports.
    pub async fn send_msg<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        target: Option<SocketAddr>,
    ) -> BufResult<usize, Vec<B>> {
        self.socket
            .send_gather(bufs, target.map(SockAddr::from))
            .await
    }

    /// Receives one datagram into `bufs`, filling each buffer to its
    /// `bytes_total` before the next (one `recvmsg`, or one `WSARecvFrom`
    /// over an array of `WSABUF`s); returns its length (at most the
    /// buffers' room: a longer datagram is truncated) and its source
    /// address. The buffers come back in the same order.
    ///
    /// Cancel-safe, as [`recv_from`](Self::recv_from): a datagram a dropped
    /// `recv_msg` had received is returned, with its source, by the next
    /// receive.
    pub async fn recv_msg<B: IoBufMut>(
        &self,
        bufs: Vec<B>,
    ) -> BufResult<(usize, SocketAddr), Vec<B>> {
        let (res, bufs) = self.socket.recv_scatter(bufs, true).await;
        let res = res.and_then(|(n, from)| Ok((n, self.source_or_peer(from)?)));
        (res, bufs)
    }

    /// A received datagram's source: the one the kernel reported, else
    /// (a datagram a cancelled `recv` took, which has none) the connected
    /// address.
    fn source_or_peer(&self, from: Option<SockAddr>) -> io::Result<SocketAddr> {
        match from.and_then(|a| a.as_socket()) {
            Some(from) => Ok(from),
            None => self.socket.peer_addr(),
        }
    }

    /// Sends `buf[..bytes_init]` as one datagram to the connected address.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.send(buf).await
    }

    /// Receives one datagram from the connected address into
    /// `buf[..bytes_total]`; returns its length. Cancel-safe, as
    /// [`recv_from`](Self::recv_from).
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.socket.recv(buf).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The connected address (`NotConnected` before [`connect`](Self::connect)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.socket.fmt_debug("UdpSocket", f)
    }
}
