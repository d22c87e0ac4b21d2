//! Preparing a descriptor for the epoll driver: sockets become
//! non-blocking and join the epoll set (edge-triggered); other descriptors
//! (files, which epoll cannot watch) are only noted as not registered.
//!
//! `register_handle` runs this for every socket veloq creates or adopts,
//! before its first op; an op on a descriptor that never went through it
//! runs it first, so no syscall is ever tried on a blocking socket.

use std::io;
use std::mem;

use super::EpollDriver;
use crate::sys::RawFd;

impl EpollDriver {
    /// Makes `fd` ready for socket ops: non-blocking and in the epoll set.
    /// Other descriptors (files) are only noted as not registered.
    pub(super) fn prepare_fd(&mut self, fd: RawFd) -> io::Result<()> {
        // SAFETY: all-zero is a valid `stat`, which `fstat` fills.
        let mut st: libc::stat = unsafe { mem::zeroed() };
        // SAFETY: `st` is a live local of the right type.
        if unsafe { libc::fstat(fd, &mut st) } < 0 {
            return Err(io::Error::last_os_error());
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            self.fds.reset(fd, false, false);
            return Ok(());
        }
        let stream = socket_type(fd)? == libc::SOCK_STREAM;
        set_nonblocking(fd)?;
        self.poller.add_socket(fd)?;
        self.fds.reset(fd, true, stream);
        Ok(())
    }
}

// --- process ops (procwait) ---

impl EpollDriver {
    /// Makes a pollable non-socket descriptor (a pidfd, a pipe end) ready
    /// for `Poll` ops: in the epoll set (edge-triggered) and noted as
    /// registered, not a stream. Run on every `Poll` submit: the number
    /// may name a new descriptor since the last one, and adding it again
    /// (`EPOLL_CTL_MOD` once present) is harmless. The op's first try
    /// polls the descriptor itself, so a readiness that came before the
    /// registration is not missed.
    pub(super) fn prepare_pollable(&mut self, fd: RawFd) -> io::Result<()> {
        self.poller.add_socket(fd)?;
        self.fds.reset(fd, true, false);
        Ok(())
    }
}

/// The `SO_TYPE` of socket `fd` (`SOCK_STREAM`, `SOCK_DGRAM`, ...).
fn socket_type(fd: RawFd) -> io::Result<libc::c_int> {
    let mut ty: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `ty`/`len` are live locals of the sizes passed.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ty)
}

/// Sets `O_NONBLOCK` on `fd` (one `ioctl`).
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `FIONBIO` reads one `int` from a live local.
    if unsafe { libc::ioctl(fd, libc::FIONBIO, &on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
