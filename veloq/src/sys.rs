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

/// Sets `SO_REUSEADDR` and `SO_REUSEPORT` before `bind`, so that several
/// sockets (one per worker) can listen on one port and the kernel spreads
/// incoming connections over them.
#[cfg(unix)]
pub(crate) fn prepare_reuseport_listener(s: &socket2::Socket) -> std::io::Result<()> {
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)
}

/// Windows has no `SO_REUSEPORT`: `SO_REUSEADDR` there lets a second socket
/// take the port over rather than share its connections. `Unsupported`.
#[cfg(windows)]
pub(crate) fn prepare_reuseport_listener(_s: &socket2::Socket) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "veloq: SO_REUSEPORT does not exist on Windows; accept on one worker and hand \
         connections to the others (TcpListener::accept_std, TcpStream::from_std)",
    ))
}

/// Pins the calling thread to the `index`-th CPU (wrapping) of those the
/// process may run on; returns that CPU's number.
#[cfg(target_os = "linux")]
pub(crate) fn pin_current_thread(index: usize) -> std::io::Result<usize> {
    use std::mem::{size_of, zeroed};
    // SAFETY: `cpu_set_t` is a plain bit array; all zeroes is the empty set.
    let mut allowed: libc::cpu_set_t = unsafe { zeroed() };
    // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into
    // the local set.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE, inside the set.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &allowed) })
        .collect();
    let Some(&cpu) = cpus.get(index % cpus.len().max(1)) else {
        return Err(std::io::Error::other(
            "veloq: the process may run on no CPU",
        ));
    };
    // SAFETY: as above, the empty set.
    let mut set: libc::cpu_set_t = unsafe { zeroed() };
    // SAFETY: `cpu` came from the set above, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes of the local set;
    // pid 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cpu)
}

/// Pins the calling thread to the `index`-th CPU (wrapping) of those the
/// process may run on, within the first processor group; returns that
/// CPU's number.
#[cfg(windows)]
pub(crate) fn pin_current_thread(index: usize) -> std::io::Result<usize> {
    use windows_sys::Win32::System::Threading::{
        GetCurrentProcess, GetCurrentThread, GetProcessAffinityMask, SetThreadAffinityMask,
    };
    let (mut process, mut system) = (0usize, 0usize);
    // SAFETY: the out-pointers are live locals; the pseudo handle of the
    // current process needs no closing.
    if unsafe { GetProcessAffinityMask(GetCurrentProcess(), &mut process, &mut system) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let cpus: Vec<usize> = (0..usize::BITS as usize)
        .filter(|&c| process & (1 << c) != 0)
        .collect();
    let Some(&cpu) = cpus.get(index % cpus.len().max(1)) else {
        return Err(std::io::Error::other(
            "veloq: the process may run on no CPU",
        ));
    };
    // SAFETY: the pseudo handle of the current thread; the mask is a subset
    // of the process mask.
    if unsafe { SetThreadAffinityMask(GetCurrentThread(), 1 << cpu) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cpu)
}
