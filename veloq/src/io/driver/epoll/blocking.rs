//! The blocking pool of the epoll driver: file ops on threads, with
//! results delivered back through the driver.
//!
//! Regular files are always "ready" to epoll, so their reads and writes
//! (and open, close, fsync, sync_file_range, fallocate) would block the
//! driver thread. The driver hands each as a [`Job`] to this pool; a pool
//! thread runs the syscall, pushes `(key, result)` onto the pool's done
//! list and wakes the driver through its eventfd; the driver's next turn
//! takes the done list and completes the ops ([`BlockingPool::take_done`]).
//!
//! # Bounds
//!
//! At most `max_threads` threads run. A job goes to an idle thread, or
//! starts a new one while under the bound; beyond it, jobs queue (FIFO)
//! for the next free thread. A thread idle for `keep_alive` exits. If the
//! OS refuses to start the first thread, the job runs inline on the
//! calling thread (slow, never lost).
//!
//! # Pool state (under `Shared::state`)
//!
//! - `jobs`: queued, not yet taken by a thread.
//! - `threads`: started and not exited.
//! - `idle`: threads waiting on the condvar.
//! - `shutdown`: set when the driver is gone; threads exit once `jobs` is
//!   empty.
//!
//! A thread that timed out exits only if `jobs` is empty under the lock,
//! so a job queued while it was timing out is never stranded.
//!
//! # Memory
//!
//! A job holds raw pointers into the op's buffer. The driver keeps that
//! buffer (in the op's future or the registry's keep-alive) and the op's
//! slot alive until it has processed the job's result, and a dropping
//! driver waits for every job it handed out (leaking their memory if they
//! never finish), so the pointers stay valid for as long as a thread can
//! use them.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::io::driver::eventfd::EventFdWaker;
use crate::io::driver::{OpKey, Unpark};
use crate::io::op::OpenFlags;
use crate::sys::RawFd;

/// `sync_file_range` flags: wait for earlier writeback, start writeback of
/// the range and wait for it, so the range is on the device on return.
const SYNC_RANGE_FLAGS: libc::c_uint = libc::SYNC_FILE_RANGE_WAIT_BEFORE
    | libc::SYNC_FILE_RANGE_WRITE
    | libc::SYNC_FILE_RANGE_WAIT_AFTER;

/// A file op for the pool.
pub(crate) enum BlockingOp {
    /// `pread`.
    Read {
        fd: RawFd,
        buf: *mut u8,
        len: u32,
        offset: u64,
    },
    /// `pwrite`.
    Write {
        fd: RawFd,
        buf: *const u8,
        len: u32,
        offset: u64,
    },
    /// `open` with `std::fs::OpenOptions`' flag rules (and `O_CLOEXEC`);
    /// the result is the new descriptor.
    Open { path: PathBuf, flags: OpenFlags },
    /// `close`.
    Close { fd: RawFd },
    /// `fsync` / `fdatasync`.
    Fsync { fd: RawFd, data_only: bool },
    /// `sync_file_range` (waiting for the range to reach the device).
    SyncFileRange { fd: RawFd, offset: u64, len: u64 },
    /// `fallocate` (mode 0: allocate and extend).
    Fallocate { fd: RawFd, offset: u64, len: u64 },
}

impl BlockingOp {
    /// Runs the op (blocking).
    fn run(self) -> io::Result<usize> {
        match self {
            BlockingOp::Read {
                fd,
                buf,
                len,
                offset,
            } => syscall(|| {
                let offset = off(offset)?;
                // SAFETY: `buf[..len]` is the op's buffer, alive and
                // unmoved until the driver has processed this result (see
                // the module docs).
                Ok(unsafe { libc::pread(fd, buf.cast(), len as usize, offset) })
            }),
            BlockingOp::Write {
                fd,
                buf,
                len,
                offset,
            } => syscall(|| {
                let offset = off(offset)?;
                // SAFETY: as for `Read`.
                Ok(unsafe { libc::pwrite(fd, buf.cast(), len as usize, offset) })
            }),
            BlockingOp::Open { path, flags } => open(&path, &flags),
            BlockingOp::Close { fd } => {
                // SAFETY: the caller hands the descriptor over to be closed.
                // Not retried on EINTR: Linux closes it regardless.
                let r = unsafe { libc::close(fd) };
                check(r as isize)
            }
            BlockingOp::Fsync { fd, data_only } => syscall(|| {
                // SAFETY: plain syscalls on a descriptor, no pointers.
                let r = unsafe {
                    if data_only {
                        libc::fdatasync(fd)
                    } else {
                        libc::fsync(fd)
                    }
                };
                Ok(r as isize)
            }),
            BlockingOp::SyncFileRange { fd, offset, len } => syscall(|| {
                // A length past `off64_t` means "to the end of the file",
                // which `sync_file_range` spells 0.
                let len = i64::try_from(len).unwrap_or(0);
                let offset = off(offset)?;
                // SAFETY: plain syscall, no pointers.
                let r = unsafe { libc::sync_file_range(fd, offset, len, SYNC_RANGE_FLAGS) };
                Ok(r as isize)
            }),
            BlockingOp::Fallocate { fd, offset, len } => syscall(|| {
                let (offset, len) = (off(offset)?, off(len)?);
                // SAFETY: plain syscall, no pointers.
                let r = unsafe { libc::fallocate(fd, 0, offset, len) };
                Ok(r as isize)
            }),
        }
    }
}

/// A file offset or length as `off_t`.
fn off(v: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(v)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))
}

/// Runs `f` (a syscall returning -1 and `errno` on failure) again while it
/// is interrupted by a signal.
fn syscall(mut f: impl FnMut() -> io::Result<isize>) -> io::Result<usize> {
    loop {
        match check(f()?) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn check(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Opens `path` as `std::fs::OpenOptions` would (the io_uring driver maps
/// the same flags by the same rules), returning the raw descriptor.
fn open(path: &std::path::Path, f: &OpenFlags) -> io::Result<usize> {
    let mut o = OpenOptions::new();
    o.read(f.read)
        .write(f.write)
        .append(f.append)
        .truncate(f.truncate)
        .create(f.create)
        .create_new(f.create_new);
    if f.mode != 0 {
        o.mode(f.mode);
    }
    let file = o.open(path)?;
    Ok(file.into_raw_fd() as usize)
}

/// One op for the pool, tagged with its registry key.
pub(crate) struct Job {
    key: OpKey,
    op: BlockingOp,
}

// SAFETY: the raw pointers in `op` point into a buffer that the driver
// keeps alive and unmoved until it has processed this job's result, and
// nothing else touches that memory meanwhile (the op's future is pending
// or dropped); the pool thread is the only user of the pointers.
unsafe impl Send for Job {}

impl Job {
    /// A job running `op` for the op under `key`.
    pub(crate) fn new(key: OpKey, op: BlockingOp) -> Job {
        Job { key, op }
    }

    fn run(self) -> Done {
        Done {
            key: self.key,
            res: self.op.run(),
        }
    }
}

/// A finished job.
pub(crate) struct Done {
    /// The op's key.
    pub(crate) key: OpKey,
    /// The syscall's result (bytes, or the new descriptor).
    pub(crate) res: io::Result<usize>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    done: Mutex<Vec<Done>>,
    waker: Arc<EventFdWaker>,
    max_threads: usize,
    keep_alive: Duration,
}

/// Locks `m`; a poisoned lock (a panic while it was held, which only a bug
/// could cause) is taken over as is: every state change under these locks
/// is a single assignment or push.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The bounded pool; see the module docs.
pub(crate) struct BlockingPool {
    shared: Arc<Shared>,
}

impl BlockingPool {
    /// A pool of at most `max_threads` threads (at least one) that wakes
    /// the driver through `waker` when a job is done.
    pub(crate) fn new(max_threads: usize, keep_alive: Duration, waker: Arc<EventFdWaker>) -> Self {
        BlockingPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                cond: Condvar::new(),
                done: Mutex::new(Vec::new()),
                waker,
                max_threads: max_threads.max(1),
                keep_alive,
            }),
        }
    }

    /// Queues `job`; its result arrives through [`take_done`](Self::take_done).
    pub(crate) fn execute(&self, job: Job) {
        let mut st = lock(&self.shared.state);
        st.jobs.push_back(job);
        if st.idle > 0 {
            drop(st);
            self.shared.cond.notify_one();
            return;
        }
        if st.threads < self.shared.max_threads {
            st.threads += 1;
            drop(st);
            let shared = self.shared.clone();
            let spawned = thread::Builder::new()
                .name("veloq-blocking".into())
                .spawn(move || worker(shared));
            if spawned.is_err() {
                let mut st = lock(&self.shared.state);
                st.threads -= 1;
                if st.threads == 0 {
                    // No thread at all: run what is queued here.
                    let jobs = std::mem::take(&mut st.jobs);
                    drop(st);
                    for job in jobs {
                        finish(&self.shared, job.run());
                    }
                }
            }
        }
        // Otherwise every thread is busy: the job waits in the queue.
    }

    /// Moves every finished job's result into `into`.
    pub(crate) fn take_done(&self, into: &mut Vec<Done>) {
        let mut done = lock(&self.shared.done);
        if into.is_empty() {
            // Swapping keeps both vectors' capacity: no allocation in
            // steady use.
            std::mem::swap(&mut *done, into);
        } else {
            into.append(&mut done);
        }
    }

    /// Threads running or idle (tests).
    #[cfg(test)]
    pub(crate) fn threads(&self) -> usize {
        lock(&self.shared.state).threads
    }
}

impl Drop for BlockingPool {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.cond.notify_all();
    }
}

/// Publishes a result and wakes the driver.
fn finish(shared: &Shared, done: Done) {
    lock(&shared.done).push(done);
    shared.waker.unpark();
}

/// A pool thread: runs jobs until idle for `keep_alive` or shut down.
fn worker(shared: Arc<Shared>) {
    let mut st = lock(&shared.state);
    loop {
        if let Some(job) = st.jobs.pop_front() {
            drop(st);
            finish(&shared, job.run());
            st = lock(&shared.state);
            continue;
        }
        if st.shutdown {
            break;
        }
        st.idle += 1;
        let (guard, timeout) = shared
            .cond
            .wait_timeout(st, shared.keep_alive)
            .unwrap_or_else(PoisonError::into_inner);
        st = guard;
        st.idle -= 1;
        if timeout.timed_out() && st.jobs.is_empty() {
            break;
        }
    }
    st.threads -= 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::driver::op_registry::OpRegistry;
    use std::time::Instant;

    fn wait_done(pool: &BlockingPool, n: usize) -> Vec<Done> {
        let mut all = Vec::new();
        let started = Instant::now();
        while all.len() < n {
            pool.take_done(&mut all);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "jobs never finished"
            );
            thread::sleep(Duration::from_millis(1));
        }
        all
    }

    #[test]
    fn jobs_run_and_report_their_keys() {
        let waker = EventFdWaker::new(true).unwrap();
        let pool = BlockingPool::new(2, Duration::from_secs(1), waker);
        let mut reg: OpRegistry<()> = OpRegistry::new();
        let keys: Vec<OpKey> = (0..8).map(|_| reg.reserve()).collect();
        for &key in &keys {
            // Fsync of a bad descriptor: fails fast with EBADF.
            pool.execute(Job::new(
                key,
                BlockingOp::Fsync {
                    fd: -1,
                    data_only: false,
                },
            ));
        }
        let done = wait_done(&pool, keys.len());
        assert!(pool.threads() <= 2, "bounded");
        let mut got: Vec<OpKey> = done.iter().map(|d| d.key).collect();
        got.sort_by_key(|k| k.to_user_data());
        assert_eq!(got, keys);
        for d in done {
            assert_eq!(d.res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        }
    }

    #[test]
    fn idle_threads_exit_after_keep_alive() {
        let waker = EventFdWaker::new(true).unwrap();
        let pool = BlockingPool::new(4, Duration::from_millis(20), waker);
        let mut reg: OpRegistry<()> = OpRegistry::new();
        pool.execute(Job::new(reg.reserve(), BlockingOp::Close { fd: -1 }));
        wait_done(&pool, 1);
        let started = Instant::now();
        while pool.threads() > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "idle thread lingered"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn open_follows_std_rules() {
        let waker = EventFdWaker::new(true).unwrap();
        let pool = BlockingPool::new(1, Duration::from_secs(1), waker);
        let mut reg: OpRegistry<()> = OpRegistry::new();
        let missing = std::env::temp_dir().join(format!("veloq-missing-{}", std::process::id()));
        let flags = OpenFlags {
            read: true,
            ..OpenFlags::default()
        };
        pool.execute(Job::new(
            reg.reserve(),
            BlockingOp::Open {
                path: missing,
                flags,
            },
        ));
        let bad = OpenFlags {
            read: true,
            create: true,
            ..OpenFlags::default()
        };
        let path = std::env::temp_dir();
        pool.execute(Job::new(
            reg.reserve(),
            BlockingOp::Open { path, flags: bad },
        ));
        let mut done = wait_done(&pool, 2);
        done.sort_by_key(|d| d.key.to_user_data());
        let kinds: Vec<io::ErrorKind> = done
            .into_iter()
            .map(|d| d.res.unwrap_err().kind())
            .collect();
        assert_eq!(
            kinds,
            [io::ErrorKind::NotFound, io::ErrorKind::InvalidInput]
        );
    }
}
