//! [`UnixStream::into_split`]'s owned halves, and the owned-buffer I/O
//! traits ([`AsyncRead`](crate::io::AsyncRead),
//! [`AsyncWrite`](crate::io::AsyncWrite)) for Unix streams and halves (see
//! `halves`).

use super::halves::owned_halves;
use super::unix_stream::UnixStream;

owned_halves!(UnixStream, std::os::unix::net::SocketAddr);
