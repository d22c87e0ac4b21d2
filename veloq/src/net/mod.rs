//! TCP, UDP and Unix-domain sockets driven by the runtime's
//! completion-based driver.
//!
//! Every operation takes an owned buffer and hands it back with the result
//! ([`BufResult`](crate::BufResult)); the kernel works on the buffer while
//! the operation is in flight, and dropping the operation's future cancels
//! it (the driver keeps the buffer alive until the kernel lets go).
//!
//! # Invariants
//!
//! - Every socket this module creates or accepts is passed to the driver's
//!   `register_handle` exactly once, before its first operation (on Windows
//!   this associates it with the completion port).
//! - The types are `!Send` and `!Sync`: a socket belongs to the runtime
//!   thread that created it, because its operations (and, on Windows, its
//!   completion port) belong to that thread's driver. Create sockets inside
//!   the task or worker that uses them (see `veloq::spawn_on`).
//! - Creating a socket outside a veloq runtime panics.
//!
//! Addresses are given as anything [`ToSocketAddrs`](std::net::ToSocketAddrs)
//! accepts. An address that cannot be parsed or resolved is an
//! [`InvalidInput`](std::io::ErrorKind::InvalidInput) error. Name lookup
//! (a host name rather than an IP address) blocks the thread like std's
//! does; pass a `SocketAddr` to avoid it.

#[cfg(target_os = "linux")]
mod accept_multi;
mod accept_queue;
mod addr;
mod halves;
#[cfg(unix)]
mod msg;
#[cfg(windows)]
mod msg_windows;
#[cfg(target_os = "linux")]
mod recv_multi;
#[cfg(not(target_os = "linux"))]
mod recv_multi_none;
mod recv_stream;
mod socket;
mod split;

mod tcp_listener;
mod tcp_stream;
mod udp;
#[cfg(unix)]
mod unix_datagram;
#[cfg(unix)]
mod unix_split;
#[cfg(unix)]
mod unix_stream;
#[cfg(windows)]
mod unix_windows;
mod vectored;

pub use recv_stream::RecvStream;
pub use tcp_listener::TcpListener;

/// The owned halves of a [`TcpStream`], from
/// [`TcpStream::into_split`].
pub mod tcp {
    pub use super::split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
}
pub use tcp_stream::TcpStream;
pub use udp::UdpSocket;

/// Unix-domain sockets' companion types: the owned halves of a
/// [`UnixStream`] (from [`UnixStream::into_split`]), the peer credentials
/// [`UCred`](unix::UCred), and the address type (std's, on Unix).
///
/// On Windows the Unix-domain types exist so that portable code compiles,
/// but creating one fails with `Unsupported`.
pub mod unix {
    #[cfg(unix)]
    pub use super::unix_split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
    #[cfg(unix)]
    pub use super::unix_stream::UCred;
    #[cfg(windows)]
    pub use super::unix_windows::SocketAddr;
    #[cfg(unix)]
    pub use std::os::unix::net::SocketAddr;
}
#[cfg(unix)]
pub use unix_datagram::UnixDatagram;
#[cfg(unix)]
pub use unix_stream::{UnixListener, UnixStream};
#[cfg(windows)]
pub use unix_windows::{UnixDatagram, UnixListener, UnixStream};
