//! Waiting until a descriptor of a child is ready (Linux): a pidfd turns
//! readable when its process exits, a non-blocking pipe end when it can be
//! read or written. The one place where process code meets the driver.
//!
//! # Through the driver, owned by a task
//!
//! [`watch`] submits one [`PollReady`] op (io_uring `POLL_ADD`, epoll
//! readiness) from a small task it spawns on the current runtime, and
//! calls the caller's `done` when the op completes. The op lives in that
//! task, never in the caller's future, so [`Child`](super::Child), the
//! pipe handles and their futures stay `Send` and `Sync`: they only share
//! a mutex with the task and keep thread-safe wakers. No pool thread is
//! used on this path.
//!
//! # Fallback: the blocking pool
//!
//! Outside a runtime (a future polled by another executor), a blocking
//! `poll` on the blocking pool does the same wait (unless the descriptor
//! is ready already: then `done` runs at once, on the caller's thread). So does a watch whose
//! task is dropped before its op completed (its runtime shut down) or
//! whose op failed: `done` is still called exactly once, after the
//! descriptor is ready.
//!
//! # Invariants
//!
//! - `owner` keeps the descriptor open: the op's keep holds it until the
//!   kernel (or the epoll set) has let go of the op, and the pool job
//!   holds it while it polls. The descriptor is never closed under a wait.
//! - `done` runs exactly once per [`watch`], on the runtime's thread, a
//!   pool thread or (descriptor ready at once, no runtime) the caller's;
//!   it may take locks, so callers hold none of theirs when they call
//!   [`watch`], and none is held when `done` is called.

use std::io;
use std::sync::Arc;

use super::offload::to_pool;
use crate::io::op::{Op, PollReady};
use crate::runtime::context;
use crate::sys::RawFd;

/// Calls `done(&owner, outcome)` once `fd` is readable (or writable, with
/// `write`); `owner` keeps `fd` open. Returns at once; see the module docs
/// for where the wait runs. The outcome is an error only when even a
/// blocking `poll` fails (e.g. `fd` is not open).
pub(super) fn watch<O, F>(owner: Arc<O>, fd: RawFd, write: bool, done: F)
where
    O: Send + Sync + 'static,
    F: FnOnce(&O, io::Result<()>) + Send + 'static,
{
    if !context::is_running() {
        return watch_on_pool(owner, fd, write, done);
    }
    let mut guard = Fallback {
        job: Some((owner.clone(), fd, write, done)),
    };
    let _detached = crate::spawn(async move {
        let (out, _owner) = Op::submit(PollReady { fd, write }, owner).await;
        let (owner, fd, write, done) = guard.job.take().expect("taken once");
        match out.res {
            Ok(_) => done(&owner, Ok(())),
            // Its runtime shut down under it, or the driver refused the
            // descriptor: the pool's `poll` waits (or names the error).
            Err(_) => watch_on_pool(owner, fd, write, done),
        }
    });
}

/// What a watch task still owes if it is dropped before its op completed:
/// the wait, on the pool.
struct Fallback<O: Send + Sync + 'static, F: FnOnce(&O, io::Result<()>) + Send + 'static> {
    job: Option<(Arc<O>, RawFd, bool, F)>,
}

impl<O, F> Drop for Fallback<O, F>
where
    O: Send + Sync + 'static,
    F: FnOnce(&O, io::Result<()>) + Send + 'static,
{
    fn drop(&mut self) {
        if let Some((owner, fd, write, done)) = self.job.take() {
            watch_on_pool(owner, fd, write, done);
        }
    }
}

/// [`watch`] as a blocking `poll` on the pool.
fn watch_on_pool<O, F>(owner: Arc<O>, fd: RawFd, write: bool, done: F)
where
    O: Send + Sync + 'static,
    F: FnOnce(&O, io::Result<()>) + Send + 'static,
{
    if ready_now(fd, write) {
        // Already ready (e.g. a runtime shut down after the process had
        // exited): no thread needs to wait for it.
        return done(&owner, Ok(()));
    }
    to_pool(move || {
        let res = poll_blocking(fd, write);
        done(&owner, res);
    });
}

/// Whether `fd` is readable (or writable) now, as a `poll` without
/// waiting sees it (an error or hang-up counts as ready).
fn ready_now(fd: RawFd, write: bool) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: if write { libc::POLLOUT } else { libc::POLLIN },
        revents: 0,
    };
    // SAFETY: `pfd` is one live `pollfd`; a zero timeout never blocks.
    unsafe { libc::poll(&mut pfd, 1, 0) > 0 }
}

/// Blocks until `fd` is readable (or writable); a hang-up or error
/// condition counts as ready (the next read or write reports it).
pub(super) fn poll_blocking(fd: RawFd, write: bool) -> io::Result<()> {
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one live `pollfd` for the call's duration; the
        // caller keeps `fd` open.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r > 0 && pfd.revents & libc::POLLNVAL != 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        if r > 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if r < 0 && e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
