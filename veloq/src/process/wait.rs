//! [`Proc`]: the process behind a [`Child`](super::Child), shared with the
//! one wait in flight, and how that wait runs.
//!
//! A wait first learns, *without reaping*, that the process has exited,
//! then takes the mutex and reaps with std's `try_wait`
//! ([`finish`]). Killing takes the same mutex and uses std's `kill`, which
//! does nothing once the child is reaped. So a signal never reaches a
//! reaped (possibly reused) pid, even while a wait is in flight.
//!
//! How the exit is learnt:
//!
//! - **Linux, with a pidfd** (opened at spawn, kernel 5.3 on): through the
//!   driver ([`ready::watch`](super::ready::watch): io_uring `POLL_ADD`,
//!   epoll readiness on the pidfd); on the blocking pool only outside a
//!   runtime. (io_uring's `WAITID` is not used: it reaps, outside the
//!   mutex.)
//! - **Linux without a pidfd** (an old kernel, or a seccomp filter that
//!   refuses `pidfd_open`), **other Unix**: `waitid(WNOWAIT)` blocking on
//!   the pool.
//! - **Windows**: `WaitForSingleObject` on the process handle, on the pool.
//!
//! # Invariants
//!
//! - `ProcState::waiting` is true exactly while one wait runs; a wait
//!   starts only when none runs, and every waiter is woken when it ends.
//! - `status` is set once the process has been reaped (by a wait,
//!   `try_wait` or `Drop`), and never changes afterwards.
//! - No waker runs while the mutex is held.

use std::io;
use std::mem;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use crate::sync::lock;

/// The process, shared with the wait in flight; see the module docs.
pub(super) struct Proc {
    pub(super) state: Mutex<ProcState>,
    /// A pidfd for the child, opened at spawn while the pid cannot have
    /// been reaped: waiting on it can never mistake another process for
    /// ours. `None` where the kernel refuses pidfds.
    #[cfg(target_os = "linux")]
    pub(super) pidfd: Option<std::os::fd::OwnedFd>,
}

/// What the mutex guards.
pub(super) struct ProcState {
    /// std's handle, without its pipes (they moved into `Child`).
    pub(super) child: std::process::Child,
    /// Set once reaped.
    pub(super) status: Option<ExitStatus>,
    /// A wait is running.
    pub(super) waiting: bool,
    /// A wait's error, for the next `wait`.
    pub(super) error: Option<io::Error>,
    pub(super) waiters: Vec<Waker>,
}

impl Proc {
    /// Wraps a freshly spawned std child (its pipes taken).
    pub(super) fn new(child: std::process::Child) -> Proc {
        Proc {
            #[cfg(target_os = "linux")]
            pidfd: pidfd_open(child.id()),
            state: Mutex::new(ProcState {
                child,
                status: None,
                waiting: false,
                error: None,
                waiters: Vec::new(),
            }),
        }
    }
}

/// A wait's end: `exited` says whether the process was seen to exit.
/// Reaps it under the mutex, records the status (or the error) and wakes
/// the waiters.
fn finish(proc: &Proc, exited: io::Result<()>) {
    let waiters = {
        let mut st = lock(&proc.state);
        st.waiting = false;
        if st.status.is_none() {
            match exited.and_then(|()| st.child.try_wait()) {
                Ok(Some(status)) => st.status = Some(status),
                Ok(None) => {
                    st.error = Some(io::Error::other(
                        "the child was reported as exited but has no exit status",
                    ))
                }
                Err(e) => st.error = Some(e),
            }
        }
        mem::take(&mut st.waiters)
    };
    for w in waiters {
        w.wake();
    }
}

/// Starts a wait (the caller has set `waiting`): through the driver on
/// the pidfd where there is one, else on the pool.
#[cfg(target_os = "linux")]
pub(super) fn start(proc: Arc<Proc>) {
    use std::os::fd::AsRawFd;
    match proc.pidfd.as_ref().map(|fd| fd.as_raw_fd()) {
        // A pidfd polls readable once its process has exited.
        Some(fd) => super::ready::watch(proc, fd, false, finish),
        None => super::ready::to_pool(move || {
            let exited = waitid_nowait(&proc);
            finish(&proc, exited);
        }),
    }
}

/// Starts a wait (the caller has set `waiting`), on the pool.
#[cfg(all(unix, not(target_os = "linux")))]
pub(super) fn start(proc: Arc<Proc>) {
    crate::runtime::blocking::pool().execute(Box::new(move || {
        let exited = waitid_nowait(&proc);
        finish(&proc, exited);
    }));
}

/// Starts a wait (the caller has set `waiting`), on the pool.
#[cfg(windows)]
pub(super) fn start(proc: Arc<Proc>) {
    crate::runtime::blocking::pool().execute(Box::new(move || {
        let exited = wait_for_handle(&proc);
        finish(&proc, exited);
    }));
}

/// Blocks until the process has exited, without reaping it.
#[cfg(unix)]
fn waitid_nowait(proc: &Proc) -> io::Result<()> {
    let pid = lock(&proc.state).child.id();
    loop {
        // SAFETY: all-zero is a valid `siginfo_t` (plain data).
        let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
        // SAFETY: `info` is valid for writes; WNOWAIT leaves the child
        // unreaped, so its pid stays ours until `try_wait` reaps it under
        // the mutex.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Already reaped (by `try_wait` meanwhile): std has its status.
            Some(libc::ECHILD) => return Ok(()),
            _ => return Err(e),
        }
    }
}

/// Blocks until the process has exited.
#[cfg(windows)]
fn wait_for_handle(proc: &Proc) -> io::Result<()> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::WAIT_FAILED;
    use windows_sys::Win32::System::Threading::{WaitForSingleObject, INFINITE};

    let handle = lock(&proc.state).child.as_raw_handle();
    // SAFETY: the process handle is owned by the std child inside `proc`,
    // which the job keeps alive (`Arc`), so it stays open for the call.
    let r = unsafe { WaitForSingleObject(handle, INFINITE) };
    if r == WAIT_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pidfd for `pid`, or `None` where the kernel has none (before 5.3, or
/// a seccomp filter refuses it): waiting then falls back to `waitid`.
#[cfg(target_os = "linux")]
fn pidfd_open(pid: u32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new
    // descriptor (close-on-exec) or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor returned to us, owned by nobody else.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}
