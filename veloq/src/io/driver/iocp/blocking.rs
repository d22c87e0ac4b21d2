//! The blocking-offload pool: runs ops that may block the calling thread
//! (open, close, flush, allocate) and reports them through the port.
//!
//! Windows has no overlapped form of `CreateFileW`, `CloseHandle`,
//! `FlushFileBuffers` or `SetFileInformationByHandle`, and they can block
//! for a long time (a network share, a cold disk). The driver thread never
//! calls them; it hands a [`BlockingTask`] to this pool. The pool thread
//! runs it, writes the result into the op's header
//! (`OverlappedEntry::blocking`) and posts a packet with
//! [`KEY_OFFLOAD`](super::port::KEY_OFFLOAD) and the op's `OVERLAPPED*`, so
//! the result arrives through the same `GetQueuedCompletionStatusEx` as
//! every kernel completion.
//!
//! # Bounds
//!
//! [`BlockingPool`] runs at most `max_threads` threads. A job finds an idle
//! thread, or starts a new one while under the bound; beyond it, jobs wait
//! in the queue (`SegQueue`) for the next free thread. A thread idle for
//! `keep_alive` exits. Nothing is ever rejected: a job that cannot get a
//! thread at all (the OS refused to start the first one) is handed back to
//! the caller to run inline.
//!
//! # Pool state (under `Shared::state`)
//!
//! - `threads`: started and not exited.
//! - `idle`: threads waiting on the condvar and not yet claimed.
//! - `notified`: wake-ups handed out by `execute`, each claimed by exactly
//!   one waiting thread (which `execute` already took out of `idle`).
//!
//! A worker re-checks the queue under the lock before it waits, and
//! `execute` pushes before it takes the lock, so a job is never left in the
//! queue with every thread asleep.

use std::io;
use std::mem::size_of;
use std::ptr::{self, addr_of};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_queue::SegQueue;
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Networking::WinSock::{closesocket, SOCKET};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FileAllocationInfo, FileEndOfFileInfo, FileStandardInfo, FlushFileBuffers,
    GetFileInformationByHandleEx, SetFileInformationByHandle, FILE_ALLOCATION_INFO,
    FILE_ATTRIBUTE_NORMAL, FILE_END_OF_FILE_INFO, FILE_FLAG_OVERLAPPED, FILE_SHARE_DELETE,
    FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_STANDARD_INFO,
};

use super::error::{last_error, last_wsa_error};
use super::ext::socket_type;
use super::op::OverlappedEntry;
use super::port::{Port, KEY_OFFLOAD};

/// Work the pool can run.
pub(crate) trait Job: Send + 'static {
    /// Runs the job on a pool thread.
    fn run(self);
}

/// A bounded thread pool; see the module docs.
pub(crate) struct BlockingPool<J: Job> {
    shared: Arc<Shared<J>>,
}

struct Shared<J> {
    queue: SegQueue<J>,
    state: Mutex<PoolState>,
    cond: Condvar,
    max_threads: usize,
    keep_alive: Duration,
}

#[derive(Default)]
struct PoolState {
    threads: usize,
    idle: usize,
    notified: usize,
    shutdown: bool,
}

impl<J> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A worker never panics while holding the lock (jobs run outside
        // it), so a poisoned lock still holds consistent counters.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<J: Job> BlockingPool<J> {
    /// A pool of at most `max_threads` (at least 1) threads that exit after
    /// `keep_alive` without work.
    pub(crate) fn new(max_threads: usize, keep_alive: Duration) -> Self {
        BlockingPool {
            shared: Arc::new(Shared {
                queue: SegQueue::new(),
                state: Mutex::new(PoolState::default()),
                cond: Condvar::new(),
                max_threads: max_threads.max(1),
                keep_alive,
            }),
        }
    }

    /// Queues `job`, waking or starting a thread for it. `Err(job)` only if
    /// the pool has no thread and the OS refused to start one: the caller
    /// runs that job itself.
    pub(crate) fn execute(&self, job: J) -> Result<(), J> {
        self.shared.queue.push(job);
        let mut st = self.shared.lock();
        if st.idle > 0 {
            st.idle -= 1;
            st.notified += 1;
            self.shared.cond.notify_one();
            return Ok(());
        }
        if st.threads >= self.shared.max_threads {
            // Every thread is busy; the next one to finish takes it.
            return Ok(());
        }
        st.threads += 1;
        drop(st);
        let shared = self.shared.clone();
        let spawned = thread::Builder::new()
            .name("veloq-blocking".into())
            .spawn(move || worker(shared));
        if spawned.is_ok() {
            return Ok(());
        }
        let mut st = self.shared.lock();
        st.threads -= 1;
        if st.threads == 0 {
            if let Some(job) = self.shared.queue.pop() {
                return Err(job);
            }
        }
        Ok(())
    }

    /// Threads running now.
    pub(crate) fn threads(&self) -> usize {
        self.shared.lock().threads
    }
}

impl<J: Job> Drop for BlockingPool<J> {
    fn drop(&mut self) {
        // Threads finish what is queued, then exit; nobody waits for them.
        self.shared.lock().shutdown = true;
        self.shared.cond.notify_all();
    }
}

fn worker<J: Job>(shared: Arc<Shared<J>>) {
    loop {
        while let Some(job) = shared.queue.pop() {
            job.run();
        }
        let mut st = shared.lock();
        if !shared.queue.is_empty() {
            continue;
        }
        if st.shutdown {
            st.threads -= 1;
            return;
        }
        st.idle += 1;
        let deadline = Instant::now() + shared.keep_alive;
        loop {
            let now = Instant::now();
            let (guard, _) = shared
                .cond
                .wait_timeout(st, deadline.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            if st.notified > 0 {
                // Claimed by `execute` (which took us out of `idle`).
                st.notified -= 1;
                break;
            }
            let timed_out = Instant::now() >= deadline;
            if st.shutdown || timed_out {
                st.idle -= 1;
                if !shared.queue.is_empty() {
                    break;
                }
                st.threads -= 1;
                return;
            }
            // Spurious wake-up: keep waiting.
        }
    }
}

// ---- the driver's jobs --------------------------------------------------------

/// An op that runs on the pool.
pub(crate) enum BlockingTask {
    /// `CreateFileW` with `FILE_FLAG_OVERLAPPED`; the result is the handle.
    Open {
        /// NUL-terminated wide path.
        path: Vec<u16>,
        access: u32,
        disposition: u32,
    },
    /// `closesocket` for a socket, else `CloseHandle`.
    Close { handle: usize },
    /// `FlushFileBuffers` (fsync, fdatasync and sync_file_range alike).
    Flush { handle: usize },
    /// Extend the file's allocation and size to `end` (never shrinks).
    Allocate { handle: usize, end: u64 },
    /// Sleeps, then succeeds with 0 (tests of ops the pool holds long).
    #[cfg(test)]
    Sleep(Duration),
}

impl BlockingTask {
    /// Runs the task on this thread: `Ok(value)` or a Win32 error code.
    pub(crate) fn run(self) -> Result<usize, u32> {
        match self {
            BlockingTask::Open {
                path,
                access,
                disposition,
            } => open(&path, access, disposition),
            BlockingTask::Close { handle } => close(handle),
            BlockingTask::Flush { handle } => {
                // SAFETY: `handle` is the caller's open file handle.
                if unsafe { FlushFileBuffers(handle as HANDLE) } == 0 {
                    return Err(last_error());
                }
                Ok(0)
            }
            BlockingTask::Allocate { handle, end } => allocate(handle as HANDLE, end),
            #[cfg(test)]
            BlockingTask::Sleep(d) => {
                thread::sleep(d);
                Ok(0)
            }
        }
    }
}

fn open(path: &[u16], access: u32, disposition: u32) -> Result<usize, u32> {
    // SAFETY: `path` is NUL-terminated (built by `submit_open`); no
    // security attributes or template.
    let handle = unsafe {
        CreateFileW(
            path.as_ptr(),
            access,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            ptr::null(),
            disposition,
            FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OVERLAPPED,
            ptr::null_mut(),
        )
    };
    if handle == INVALID_HANDLE_VALUE {
        return Err(last_error());
    }
    Ok(handle as usize)
}

fn close(handle: usize) -> Result<usize, u32> {
    if socket_type(handle).is_some() {
        // SAFETY: the op owns `handle` (its future gave it up); closed once.
        if unsafe { closesocket(handle as SOCKET) } != 0 {
            return Err(last_wsa_error());
        }
    // SAFETY: as above, for a file handle.
    } else if unsafe { CloseHandle(handle as HANDLE) } == 0 {
        return Err(last_error());
    }
    Ok(0)
}

fn allocate(handle: HANDLE, end: u64) -> Result<usize, u32> {
    let mut info = FILE_STANDARD_INFO::default();
    // SAFETY: `info` is a FILE_STANDARD_INFO of the size passed.
    let ok = unsafe {
        GetFileInformationByHandleEx(
            handle,
            FileStandardInfo,
            (&mut info as *mut FILE_STANDARD_INFO).cast(),
            size_of::<FILE_STANDARD_INFO>() as u32,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    let end = end as i64;
    if end > info.AllocationSize {
        let alloc = FILE_ALLOCATION_INFO {
            AllocationSize: end,
        };
        // A hint for a contiguous reservation; setting the end of file
        // below allocates the space anyway, so a file system (or Wine)
        // that refuses the hint is not an error.
        // SAFETY: `alloc` is a FILE_ALLOCATION_INFO of the size passed.
        unsafe {
            SetFileInformationByHandle(
                handle,
                FileAllocationInfo,
                (&alloc as *const FILE_ALLOCATION_INFO).cast(),
                size_of::<FILE_ALLOCATION_INFO>() as u32,
            )
        };
    }
    if end > info.EndOfFile {
        let eof = FILE_END_OF_FILE_INFO { EndOfFile: end };
        // SAFETY: `eof` is a FILE_END_OF_FILE_INFO of the size passed.
        let ok = unsafe {
            SetFileInformationByHandle(
                handle,
                FileEndOfFileInfo,
                (&eof as *const FILE_END_OF_FILE_INFO).cast(),
                size_of::<FILE_END_OF_FILE_INFO>() as u32,
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
    }
    Ok(0)
}

/// A [`BlockingTask`] for the op whose header is at `entry`.
pub(crate) struct OffloadJob {
    pub(crate) task: BlockingTask,
    pub(crate) entry: *const OverlappedEntry,
    pub(crate) port: Arc<Port>,
}

// SAFETY: `entry` points into an op that stays at its address (an
// `OpStore` cell), alive and `Offloaded`, until the packet this job posts
// has been dequeued: the driver neither frees nor reuses the cell before
// (`OpRef::drop` aborts on an in-flight op), and while the op is
// `Offloaded` the driver holds only a raw pointer to it and never forms a
// reference that covers `entry.blocking`, the only part the job writes.
unsafe impl Send for OffloadJob {}

impl Job for OffloadJob {
    fn run(self) {
        let result = self.task.run();
        // SAFETY: see `unsafe impl Send`: the op is alive and only this job
        // writes its blocking result. The shared reference covers only the
        // `BlockingResult`, whose fields are atomics; the driver reads them
        // after dequeuing the packet posted below, which orders this write
        // before that read (and the `done` flag's release/acquire says the
        // same in Rust's memory model).
        unsafe { (*addr_of!((*self.entry).blocking)).store(result) };
        // From the post on, the op is the driver's again: `self.entry` is
        // not used after it.
        // The op completes only through this packet; a post that fails
        // (kernel memory exhausted) is retried rather than lost, which
        // would leave the op in flight forever.
        while let Err(e) = self.port.post(0, KEY_OFFLOAD, self.entry.cast()) {
            report_post_failure(&e);
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn report_post_failure(e: &io::Error) {
    eprintln!("veloq: PostQueuedCompletionStatus failed ({e}); retrying");
}
