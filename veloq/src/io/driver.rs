//! The `Driver` trait: the contract every I/O backend fulfils.
//!
//! A driver turns platform-neutral op descriptions (`io::op`) into kernel
//! operations, keeps each in-flight op at a stable address, and reports
//! completions back to the futures that wait on them.
//!
//! # Backends
//!
//! The backend is chosen here, once, by target: `linux` on Linux (io_uring,
//! or the `epoll` readiness fallback, picked when the runtime starts; see
//! `linux` and `kind`), `iocp` (I/O completion ports) on Windows. The rest
//! of the crate names only [`PlatformDriver`].
//!
//! # The life of an op
//!
//! 1. `reserve` takes a slot in the driver's [`OpRegistry`] and returns its
//!    key (slot index + generation, packed into the kernel's `user_data`).
//! 2. `submit` converts the description ([`IntoPlatformOp`]) into the slot
//!    and queues or posts it. From here on the kernel may hold pointers into
//!    the slot (an `OVERLAPPED`, a `sockaddr`, an iovec) and into the op's
//!    buffer, so neither may move or be freed until step 4.
//! 3. `poll_op` returns `Pending` and records the waker until the completion
//!    has been processed, then returns the [`OpOutput`] and frees the slot.
//! 4. If the future is dropped first — wherever: the op holds its own
//!    runtime's core, so the cancel always reaches the driver that owns the
//!    slot — `cancel` asks the kernel to stop the op and takes a
//!    [`KeepAlive`] hook: whatever must outlive the op (the buffer, the
//!    descriptor's owner) and what to do with its real output. The slot is
//!    freed when the kernel's completion (normal or cancelled) arrives; the
//!    hook then gets the output (a read hands its bytes to the socket's
//!    next read, an accept its connection to the next accept, an open
//!    closes what it opened) and drops the keep-alive.
//!
//! A multishot op (io_uring's multishot accept and receive) keeps its slot
//! across completions: those that leave it armed go to the op's sink, and
//! the slot completes (and, after a cancel, is freed) only with the final
//! one (see `io::op`).
//!
//! A completion whose key does not match a live slot (stale generation) is
//! ignored: it can never reach a slot that was reused.
//!
//! Dropping a driver cancels every op still in flight and waits for their
//! completions before freeing any memory the kernel may still write.
//!
//! # Waiting
//!
//! `wait` submits everything queued, blocks until at least one completion,
//! a cross-thread wake, the given timeout or the timer wheel's next deadline
//! (whichever is first), then processes completions and fires due timers.
//! `wait(Some(Duration::ZERO))` never blocks.

#[cfg(target_os = "linux")]
mod deferred_panic;
mod kind;
pub(crate) mod op_registry;
pub(crate) mod stable_slab;
pub(crate) mod timer;

#[cfg(test)]
pub(crate) mod test_util;

#[cfg(target_os = "linux")]
pub(crate) mod uring;

#[cfg(target_os = "linux")]
pub(crate) mod epoll;

#[cfg(target_os = "linux")]
pub(crate) mod linux;

#[cfg(target_os = "linux")]
mod eventfd;

#[cfg(windows)]
pub(crate) mod iocp;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use kind::DriverKind;
pub(crate) use op_registry::{KeepAlive, OpKey};
pub(crate) use timer::TimerWheel;

use crate::io::op::OpOutput;
use crate::sys::RawFd;

/// Drivers that leaked their in-flight memory on drop (see [`note_leaked_drain`]).
static LEAKED_DRAINS: AtomicUsize = AtomicUsize::new(0);

/// A driver being dropped could not drain (the kernel did not report every
/// op within its limit) and leaked the op memory instead of freeing it.
/// Ops whose futures outlive such a driver must leak their buffers too.
pub(crate) fn note_leaked_drain() {
    LEAKED_DRAINS.fetch_add(1, Ordering::Relaxed);
}

/// How many driver drops leaked so far, process-wide.
pub(crate) fn leaked_drains() -> usize {
    LEAKED_DRAINS.load(Ordering::Relaxed)
}

/// The driver of this platform.
#[cfg(target_os = "linux")]
pub(crate) type PlatformDriver = linux::LinuxDriver;

/// The driver of this platform.
#[cfg(windows)]
pub(crate) type PlatformDriver = iocp::IocpDriver;

/// Which backend `driver` is.
#[cfg(target_os = "linux")]
pub(crate) fn platform_kind(driver: &PlatformDriver) -> DriverKind {
    driver.kind()
}

/// Which backend `driver` is.
#[cfg(windows)]
pub(crate) fn platform_kind(_driver: &PlatformDriver) -> DriverKind {
    DriverKind::Iocp
}

/// Settings a driver is built with (from `Runtime::builder()`).
#[derive(Debug, Clone)]
pub(crate) struct DriverConfig {
    /// Which backend to start (Linux: io_uring or epoll; see `kind`).
    pub(crate) kind: DriverKind,
    /// Submission queue size (io_uring) / completions fetched per wait (IOCP).
    pub(crate) entries: u32,
    /// Most threads the blocking-offload pool may run at once (IOCP).
    pub(crate) max_blocking_threads: usize,
    /// How long an idle blocking-pool thread lingers before it exits.
    pub(crate) blocking_keep_alive: Duration,
    /// Sends of at least this many bytes on a TCP stream go out zero-copy
    /// where the driver can (io_uring `SEND_ZC`); `None` (the default,
    /// measured in the io_uring driver's `send_zc` module docs): never.
    pub(crate) zero_copy_min: Option<usize>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            kind: DriverKind::Auto,
            entries: 256,
            max_blocking_threads: 16,
            blocking_keep_alive: Duration::from_secs(10),
            zero_copy_min: None,
        }
    }
}

/// Counters a driver keeps so tests and benchmarks can see batching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Kernel completions processed (op completions, wakes and offloaded
    /// results alike).
    pub completions: u64,
    /// Calls that waited on the kernel (`io_uring_enter` with a wait,
    /// `GetQueuedCompletionStatusEx`).
    pub wait_calls: u64,
    /// Ops submitted and not yet completed.
    pub in_flight: usize,
    /// Completions that arrived for an op the driver had already freed
    /// (a stale key): the kernel finished with memory (a buffer, a
    /// cancelled op's keep-alive) after the runtime let it go. Ignored,
    /// never applied to a reused slot, and 0 in a sound run; the
    /// cancellation torture tests assert it stays 0.
    pub stale_completions: u64,
    /// Ops that completed with an error saying the kernel could not reach
    /// their memory (`EFAULT`; `WSAEFAULT` or `ERROR_NOACCESS` on Windows).
    /// Safe code cannot give the kernel a bad address, so with buffers that
    /// become inaccessible when dropped (the torture tests' guarded
    /// buffers) this counts buffers released while their op still ran.
    pub fault_completions: u64,
    /// Sends submitted zero-copy (io_uring `SEND_ZC`, see
    /// [`Builder::zero_copy_send`](crate::runtime::Builder::zero_copy_send));
    /// always 0 on the other drivers, which copy.
    pub zero_copy_sends: u64,
}

/// Wakes a driver blocked in `wait` from any thread.
///
/// Wakes coalesce: waking a driver that already has a wake pending costs no
/// system call.
pub(crate) trait Unpark: Send + Sync {
    /// Makes the driver's current or next `wait` return promptly.
    fn unpark(&self);
}

/// A cloneable, thread-safe handle that wakes one driver.
pub(crate) type WakeHandle = Arc<dyn Unpark>;

/// Converts a platform-neutral op description into driver `D`'s op.
pub(crate) trait IntoPlatformOp<D: Driver> {
    /// Builds the platform op. No heap allocation may happen here for the
    /// hot ops (reads, writes, sends, receives).
    fn into_platform_op(self) -> D::Op;

    /// [`Driver::submit_polled`] of this description. A backend whose op
    /// type is an enum of descriptions over several backends (Linux's)
    /// overrides it to build the active backend's op straight from the
    /// description, never the enum (a ~150-byte value copied on the way).
    #[inline]
    fn submit_polled_to(
        self,
        driver: &mut D,
        cx: &mut Context<'_>,
    ) -> io::Result<(OpKey, Poll<OpOutput>)>
    where
        Self: Sized,
    {
        driver.submit_polled(self.into_platform_op(), cx)
    }
}

/// The backend contract; see the module docs for the op life cycle.
pub(crate) trait Driver: Sized {
    /// The backend's in-flight op type, stored in its registry.
    type Op;

    /// Creates a driver.
    fn new(config: &DriverConfig) -> io::Result<Self>;

    /// Takes a free op slot.
    fn reserve(&mut self) -> io::Result<OpKey>;

    /// Fills slot `key` with `op` and queues (io_uring) or posts (IOCP) it.
    ///
    /// On error the slot is released and nothing is in flight.
    fn submit(&mut self, key: OpKey, op: Self::Op) -> io::Result<()>;

    /// Returns the op's output once its completion has been processed
    /// (freeing the slot); until then records `cx`'s waker.
    fn poll_op(&mut self, key: OpKey, cx: &mut Context<'_>) -> Poll<OpOutput>;

    /// [`reserve`](Self::reserve), [`submit`](Self::submit) and
    /// [`poll_op`](Self::poll_op) in one call: what an op future's first
    /// poll does when it submits then (a backend may do it with one slot
    /// lookup). On error nothing is in flight; a `Ready` output means the
    /// op completed at once and its slot is freed already.
    #[inline]
    fn submit_polled(
        &mut self,
        op: Self::Op,
        cx: &mut Context<'_>,
    ) -> io::Result<(OpKey, Poll<OpOutput>)> {
        let key = self.reserve()?;
        self.submit(key, op)?;
        Ok((key, self.poll_op(key, cx)))
    }

    /// The op's future was dropped: cancel it in the kernel and keep
    /// `keep_alive` (its buffer and descriptor) alive until the completion
    /// arrives, then hand it the op's real output (see
    /// [`CancelHook`](op_registry::CancelHook)). A descriptor the op created
    /// (accept, open) is the hook's to close or pass on, never the
    /// driver's.
    fn cancel(&mut self, key: OpKey, keep_alive: Option<KeepAlive>);

    /// Hands every queued submission to the kernel without waiting.
    // The executor submits through `wait`; driver tests and embedders that
    // run their own loop use `flush` and `process_completions`.
    #[allow(dead_code)]
    fn flush(&mut self) -> io::Result<()>;

    /// Submits, waits (see the module docs), processes completions and fires
    /// due timers.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Processes completions already available without blocking; returns how
    /// many were processed.
    #[allow(dead_code)]
    fn process_completions(&mut self) -> usize;

    /// A handle that wakes this driver from another thread.
    fn wake_handle(&self) -> WakeHandle;

    /// Prepares a handle for use with this driver (IOCP associates it with
    /// the port, once). A no-op where the backend needs nothing.
    fn register_handle(&mut self, fd: RawFd) -> io::Result<()>;

    /// Registers buffer memory with the kernel for fixed reads and writes;
    /// returns the index of the first buffer, or `None` where the backend
    /// has no registered buffers (the buffers then work as plain memory).
    ///
    /// # Safety
    ///
    /// Each `(ptr, len)` must stay valid until the driver is dropped.
    unsafe fn register_buffers(&mut self, bufs: &[(*mut u8, usize)]) -> io::Result<Option<u16>>;

    /// Releases `count` registered buffers starting at index `first` (a
    /// `BufPool` going away). Ops that still use them keep their memory
    /// alive through their `FixedBuf`s.
    fn unregister_buffers(&mut self, first: u16, count: u16);

    /// The timer wheel that gives `wait` its deadline.
    fn timers(&mut self) -> &mut TimerWheel;

    /// Current counters.
    fn stats(&self) -> DriverStats;
}
