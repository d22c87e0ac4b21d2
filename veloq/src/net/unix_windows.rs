//! The Unix-domain socket types on Windows: they exist so that portable
//! code compiles, but every constructor fails with `Unsupported`, so no
//! value of them is ever made (each holds an uninhabited field, and its
//! methods are unreachable).
//!
//! Windows 10 has `AF_UNIX` stream sockets, but veloq's IOCP driver does
//! not drive them (its accept pre-creates IP sockets), and Wine has none.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::path::Path;

use crate::buf::{BufResult, IoBuf, IoBufMut};

/// No value: the types below cannot be constructed on Windows.
#[derive(Clone, Copy)]
enum Never {}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "veloq: Unix-domain sockets are not supported on Windows",
    )
}

/// A Unix socket address; never made on Windows.
#[derive(Clone)]
pub struct SocketAddr {
    never: Never,
}

impl SocketAddr {
    /// The path, for a path address.
    pub fn as_pathname(&self) -> Option<&Path> {
        match self.never {}
    }

    /// Whether the address is unnamed.
    pub fn is_unnamed(&self) -> bool {
        match self.never {}
    }
}

impl fmt::Debug for SocketAddr {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}

/// A Unix-domain listener; on Windows [`bind`](Self::bind) fails with
/// `Unsupported`.
pub struct UnixListener {
    never: Never,
}

impl UnixListener {
    /// Fails with `Unsupported` on Windows.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let _ = path;
        Err(unsupported())
    }

    /// Unreachable: no listener exists on Windows.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        match self.never {}
    }

    /// Unreachable: no listener exists on Windows.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self.never {}
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}

/// A Unix-domain stream; on Windows [`connect`](Self::connect) and
/// [`pair`](Self::pair) fail with `Unsupported`.
pub struct UnixStream {
    never: Never,
}

impl UnixStream {
    /// Fails with `Unsupported` on Windows.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let _ = path;
        Err(unsupported())
    }

    /// Fails with `Unsupported` on Windows.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        Err(unsupported())
    }

    /// Unreachable: no stream exists on Windows.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        let _ = buf;
        match self.never {}
    }

    /// Unreachable: no stream exists on Windows.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        let _ = buf;
        match self.never {}
    }

    /// Unreachable: no stream exists on Windows.
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        let _ = buf;
        match self.never {}
    }

    /// Unreachable: no stream exists on Windows.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let _ = buf;
        match self.never {}
    }

    /// Unreachable: no stream exists on Windows.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self.never {}
    }

    /// Unreachable: no stream exists on Windows.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self.never {}
    }

    /// Unreachable: no stream exists on Windows.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let _ = how;
        match self.never {}
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}

/// A Unix-domain datagram socket; on Windows every constructor fails with
/// `Unsupported`.
pub struct UnixDatagram {
    never: Never,
}

impl UnixDatagram {
    /// Fails with `Unsupported` on Windows.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let _ = path;
        Err(unsupported())
    }

    /// Fails with `Unsupported` on Windows.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Err(unsupported())
    }

    /// Fails with `Unsupported` on Windows.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        Err(unsupported())
    }

    /// Unreachable: no socket exists on Windows.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let _ = path;
        match self.never {}
    }

    /// Unreachable: no socket exists on Windows.
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        let _ = (buf, path);
        match self.never {}
    }

    /// Unreachable: no socket exists on Windows.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let _ = buf;
        match self.never {}
    }

    /// Unreachable: no socket exists on Windows.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        let _ = buf;
        match self.never {}
    }

    /// Unreachable: no socket exists on Windows.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        let _ = buf;
        match self.never {}
    }

    /// Unreachable: no socket exists on Windows.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self.never {}
    }

    /// Unreachable: no socket exists on Windows.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self.never {}
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}
