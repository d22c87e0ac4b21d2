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
//! - **Windows**: a wait registration on the process handle
//!   (`RegisterWaitForSingleObject`, see `exit_wait`); a blocking
//!   `WaitForSingleObject` on the pool only if the system refuses one.
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

use super::offload::to_pool;
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
        None => to_pool(move || {
            let exited = waitid_nowait(&proc);
            finish(&proc, exited);
        }),
    }
}

/// Starts a wait (the caller has set `waiting`), on the pool.
#[cfg(all(unix, not(target_os = "linux")))]
pub(super) fn start(proc: Arc<Proc>) {
    to_pool(move || {
        let exited = waitid_nowait(&proc);
        finish(&proc, exited);
    });
}

/// Starts a wait (the caller has set `waiting`): a wait registration
/// on the process handle, or the pool should the system refuse one.
#[cfg(windows)]
pub(super) fn start(proc: Arc<Proc>) {
    if let Err(proc) = exit_wait::register(proc) {
        to_pool(move || {
            let exited = exit_wait::block(&proc);
            finish(&proc, exited);
        });
    }
}

/// Waiting for a process handle to be signalled (the process exited) on
/// Windows.
///
/// `RegisterWaitForSingleObject` hands the handle to the system thread
/// pool's wait threads, which wait for up to 63 handles each: no thread
/// of ours blocks per child. The one-shot callback reaps and wakes the
/// waiters ([`finish`]), whose wakers reach the runtime through its own
/// wake handle, so the port needs no packet of its own.
///
/// # Invariants
///
/// - The registration's context holds the `Arc<Proc>`, so the process
///   handle stays open while the system may wait on it; the callback
///   (run once: `WT_EXECUTEONLYONCE`) takes that count back.
/// - The wait object is unregistered exactly once, by whichever of the
///   registering thread and the callback comes second (`Reg::state`), and
///   never with a blocking `UnregisterWaitEx` inside the callback.
#[cfg(windows)]
mod exit_wait {
    use std::ffi::c_void;
    use std::io;
    use std::os::windows::io::AsRawHandle;
    use std::sync::{Arc, Mutex};

    use windows_sys::Win32::Foundation::{HANDLE, WAIT_FAILED};
    use windows_sys::Win32::System::Threading::{
        RegisterWaitForSingleObject, UnregisterWait, WaitForSingleObject, INFINITE,
        WT_EXECUTEONLYONCE,
    };

    use super::{finish, Proc};
    use crate::sync::lock;

    /// One registration's context.
    struct Reg {
        proc: Arc<Proc>,
        /// The wait object (as an address: `HANDLE` is not `Send`), once
        /// the registering thread has stored it, and whether the callback
        /// has run.
        state: Mutex<(usize, bool)>,
    }

    /// Registers the wait; gives `proc` back should the system refuse.
    pub(super) fn register(proc: Arc<Proc>) -> Result<(), Arc<Proc>> {
        let handle = lock(&proc.state).child.as_raw_handle();
        let reg = Arc::new(Reg {
            proc,
            state: Mutex::new((0, false)),
        });
        let ctx = Arc::into_raw(reg.clone());
        let mut wait: HANDLE = std::ptr::null_mut();
        // SAFETY: `wait` is a live local the call fills; `handle` is the
        // process handle, open while `reg` (and so the std child) lives,
        // which the context count keeps until the callback; `ctx` is a
        // counted `Arc<Reg>` pointer the callback takes back once.
        let ok = unsafe {
            RegisterWaitForSingleObject(
                &mut wait,
                handle,
                Some(on_exit),
                ctx.cast(),
                INFINITE,
                WT_EXECUTEONLYONCE,
            )
        };
        if ok == 0 {
            // SAFETY: the callback was never registered, so the count
            // `ctx` carries is still ours to take back.
            drop(unsafe { Arc::from_raw(ctx) });
            return Err(Arc::into_inner(reg)
                .map_or_else(|| unreachable!("the only count left"), |r| r.proc));
        }
        let mut st = lock(&reg.state);
        if st.1 {
            drop(st);
            // SAFETY: a wait object just registered, unregistered once
            // (the callback saw no handle, so it left this to us).
            unsafe { UnregisterWait(wait) };
        } else {
            st.0 = wait as usize;
        }
        Ok(())
    }

    /// The callback: the process exited.
    unsafe extern "system" fn on_exit(ctx: *mut c_void, _timed_out: bool) {
        // SAFETY: `ctx` is the counted pointer `register` made; this
        // one-shot callback runs once and takes the count back.
        let reg = unsafe { Arc::from_raw(ctx.cast_const().cast::<Reg>()) };
        finish(&reg.proc, Ok(()));
        let wait = {
            let mut st = lock(&reg.state);
            st.1 = true;
            st.0
        };
        if wait != 0 {
            // SAFETY: the registered wait object, unregistered once; the
            // non-blocking `UnregisterWait` may be called from its own
            // callback (it reports `ERROR_IO_PENDING`, which is fine).
            unsafe { UnregisterWait(wait as HANDLE) };
        }
    }

    /// Blocks until the process has exited (the pool fallback).
    pub(super) fn block(proc: &Proc) -> io::Result<()> {
        let handle = lock(&proc.state).child.as_raw_handle();
        // SAFETY: the process handle is owned by the std child inside
        // `proc`, which the job keeps alive (`Arc`), so it stays open for
        // the call.
        let r = unsafe { WaitForSingleObject(handle, INFINITE) };
        if r == WAIT_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
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

#[cfg(all(test, windows))]
mod tests {
    use std::time::Duration;

    use super::super::offload::pool_jobs;
    use super::super::test_util::wait_for_many;
    use super::super::Command;

    #[test]
    fn waits_use_registrations_not_the_pool() {
        let before = pool_jobs();
        crate::block_on(async {
            let status = Command::new("cmd").args(["/c", "exit 3"]).status().await;
            assert_eq!(status.unwrap().code(), Some(3));

            // A dropped wait, a kill, a wait again.
            let mut child = Command::new("ping")
                .args(["-n", "30", "127.0.0.1"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let res = crate::time::timeout(Duration::from_millis(50), child.wait()).await;
            assert!(res.is_err());
            child.kill().await.unwrap();
            assert!(!child.wait().await.unwrap().success());

            // Many at once.
            wait_for_many(20, 5, |code| {
                Command::new("cmd")
                    .args(["/c", &format!("exit {code}")])
                    .spawn()
                    .unwrap()
            })
            .await;
        });
        assert_eq!(pool_jobs(), before, "no wait may use the pool");
    }
}
