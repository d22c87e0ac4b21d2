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

/// Takes ownership of a raw socket handle (one an `Accept` op returned).
///
/// # Safety
///
/// `fd` must be an open socket that nothing else owns or will close.
#[cfg(unix)]
pub(crate) unsafe fn socket_from_raw(fd: RawFd) -> socket2::Socket {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller hands us sole ownership of an open socket.
    unsafe { socket2::Socket::from_raw_fd(fd) }
}

/// Takes ownership of a raw socket handle (one an `Accept` op returned).
///
/// # Safety
///
/// `fd` must be an open `SOCKET` that nothing else owns or will close.
#[cfg(windows)]
pub(crate) unsafe fn socket_from_raw(fd: RawFd) -> socket2::Socket {
    use std::os::windows::io::FromRawSocket;
    // SAFETY: the caller hands us sole ownership of an open socket.
    unsafe { socket2::Socket::from_raw_socket(fd as _) }
}

/// Takes ownership of a raw file handle (one an `Open` op returned).
///
/// # Safety
///
/// `fd` must be an open file handle that nothing else owns or will close.
#[cfg(unix)]
pub(crate) unsafe fn file_from_raw(fd: RawFd) -> std::fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller hands us sole ownership of an open file.
    unsafe { std::fs::File::from_raw_fd(fd) }
}

/// Takes ownership of a raw file handle (one an `Open` op returned).
///
/// # Safety
///
/// `fd` must be an open file `HANDLE` that nothing else owns or will close.
#[cfg(windows)]
pub(crate) unsafe fn file_from_raw(fd: RawFd) -> std::fs::File {
    use std::os::windows::io::FromRawHandle;
    // SAFETY: the caller hands us sole ownership of an open handle.
    unsafe { std::fs::File::from_raw_handle(fd as _) }
}

/// Gives up ownership of a file's handle without closing it.
#[cfg(unix)]
pub(crate) fn file_into_raw(f: std::fs::File) -> RawFd {
    use std::os::fd::IntoRawFd;
    f.into_raw_fd()
}

/// Gives up ownership of a file's handle without closing it.
#[cfg(windows)]
pub(crate) fn file_into_raw(f: std::fs::File) -> RawFd {
    use std::os::windows::io::IntoRawHandle;
    f.into_raw_handle() as usize
}

/// Platform options for a listening socket, set before `bind`: Unix sets
/// `SO_REUSEADDR` so a restarted server can rebind a port in `TIME_WAIT`.
#[cfg(unix)]
pub(crate) fn prepare_listener(s: &socket2::Socket) -> std::io::Result<()> {
    s.set_reuse_address(true)
}

/// Platform options for a listening socket: none on Windows, where
/// `SO_REUSEADDR` would let another process steal the port.
#[cfg(windows)]
pub(crate) fn prepare_listener(_s: &socket2::Socket) -> std::io::Result<()> {
    Ok(())
}
