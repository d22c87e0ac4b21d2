//! [`TcpStream::into_split`]'s owned halves, and the owned-buffer I/O
//! traits ([`AsyncRead`](crate::io::AsyncRead),
//! [`AsyncWrite`](crate::io::AsyncWrite)) for TCP streams and halves (see
//! `halves`).

use super::halves::owned_halves;
use super::TcpStream;

owned_halves!(TcpStream, std::net::SocketAddr);
