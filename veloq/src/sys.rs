//! The few platform facts the platform-neutral code needs: what a raw
//! handle is and how to take one out of a std/socket2 object.
//!
//! Everything that talks to the kernel lives under `io/driver/<backend>/`.

/// A raw kernel handle as the drivers see it.
///
/// On Unix it is a file descriptor. On Windows it is a `SOCKET` or a
/// `HANDLE`; both are pointer-sized, so one `usize` carries either.
#[cfg(unix)]
pub(crate) type RawFd = std::os::fd::RawFd;

/// A raw kernel handle as the drivers see it (see the Unix variant).
#[cfg(windows)]
pub(crate) type RawFd = usize;

/// Returns the raw handle of a socket.
#[cfg(unix)]
pub(crate) fn socket_fd(s: &socket2::Socket) -> RawFd {
    use std::os::fd::AsRawFd;
    s.as_raw_fd()
}

/// Returns the raw handle of a socket.
#[cfg(windows)]
pub(crate) fn socket_fd(s: &socket2::Socket) -> RawFd {
    use std::os::windows::io::AsRawSocket;
    s.as_raw_socket() as usize
}
