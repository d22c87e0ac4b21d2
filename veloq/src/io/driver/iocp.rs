//! The Windows driver: I/O completion ports.
//!
//! `IocpDriver` posts each op to the kernel with an `OVERLAPPED` that lives
//! inside the op (`iocp/op.rs`), the op inside a slot of the driver's
//! [`OpRegistry`] (a `StableSlab`, so the address never moves), and waits
//! for completions on one port with `GetQueuedCompletionStatusEx`, up to
//! `DriverConfig::entries` packets per call.
//!
//! # Modules
//!
//! - `op`: `IocpOp` (header + vtable + payload union), `define_iocp_ops!`.
//! - `submit`: `submit_*` / `complete_*` per op type.
//! - `blocking`: the bounded pool for open/close/flush/allocate.
//! - `ext`: `AcceptEx`, `ConnectEx`, `GetAcceptExSockaddrs`, RIO detection.
//! - `port`: the port handle, completion keys and the cross-thread wake.
//! - `error`: Win32/Winsock codes → `io::Error`.
//! - `sockaddr`: IP socket addresses as Winsock reads and writes them.
//!
//! # One packet per op
//!
//! Every op that `submit` left in flight produces exactly one packet: the
//! kernel's (`KEY_IO`) or the pool's (`KEY_OFFLOAD`). The op's slot is
//! freed only after that packet has been processed, so the `OVERLAPPED*`
//! in a packet always points at a live op, and reading its `user_data` is
//! sound. An op that failed to start produces no packet and is freed at
//! once.
//!
//! Files and stream sockets are registered with
//! `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` (see `register_handle`): an op
//! on them that succeeds at once produces *no* packet and completes inside
//! `submit`. Handles without that mode (datagram sockets, non-IFS
//! providers) get a packet for an immediate success too. Two cases return
//! failure at once and still produce a packet, so they stay in flight: a
//! pending op (`ERROR_IO_PENDING`) and a truncated datagram
//! (`WSAEMSGSIZE`, a warning status to the kernel).
//!
//! `DriverStats::completions` counts packets dequeued, so
//! `completions / wait_calls` is the packets per
//! `GetQueuedCompletionStatusEx` call; ops finished inside `submit` are
//! counted apart (`immediate_completions`).
//!
//! # Cancellation
//!
//! `cancel` marks the slot cancelled (the registry takes the buffer as a
//! keep-alive) and calls `CancelIoEx(handle, overlapped)` for an op in the
//! kernel. Whatever happens next, the op's one packet still arrives:
//!
//! - not yet done: the kernel aborts it, the packet says
//!   `ERROR_OPERATION_ABORTED`;
//! - already done, packet queued but not dequeued (`CancelIoEx` fails with
//!   `ERROR_NOT_FOUND`): the packet is the normal one;
//! - done partly (bytes moved before the abort): the packet carries them.
//!
//! In every case the packet frees the slot, the op and the keep-alive —
//! and an accepted socket or opened file the op owned is closed, never
//! leaked. An offloaded op cannot be cancelled; its packet comes when the
//! pool thread finishes. An op already completed (packet processed, output
//! not yet taken) is freed at once.
//!
//! # Drop
//!
//! Dropping the driver cancels every op still in flight and keeps
//! dequeuing until each has produced its packet; only then is any op
//! memory freed. If the port itself fails (it cannot, short of a kernel
//! bug) the op memory is leaked rather than freed under the kernel.

mod blocking;
mod error;
mod ext;
mod op;
mod port;
mod sockaddr;
mod submit;

#[cfg(test)]
mod tests;

use std::any::Any;
use std::collections::HashSet;
use std::io;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{ERROR_INVALID_DATA, HANDLE, WAIT_TIMEOUT};
use windows_sys::Win32::Networking::WinSock::{
    WSAGetOverlappedResult, SOCKET, SOCK_STREAM, WSAEMSGSIZE,
};
use windows_sys::Win32::Storage::FileSystem::SetFileCompletionNotificationModes;
use windows_sys::Win32::System::Threading::INFINITE;
use windows_sys::Win32::System::WindowsProgramming::{
    FILE_SKIP_COMPLETION_PORT_ON_SUCCESS, FILE_SKIP_SET_EVENT_ON_HANDLE,
};
use windows_sys::Win32::System::IO::{
    CancelIoEx, GetOverlappedResult, GetQueuedCompletionStatusEx, OVERLAPPED_ENTRY,
};

use self::blocking::{BlockingPool, OffloadJob};
use self::error::{last_error, last_wsa_error};
pub(crate) use self::op::IocpOp;
use self::op::{OpState, OverlappedEntry};
use self::port::{Port, PortWaker, KEY_IO, KEY_OFFLOAD, KEY_WAKE};
use self::submit::SubmissionResult;
use super::op_registry::{CancelAction, OpRegistry};
use super::{Driver, DriverConfig, DriverStats, OpKey, TimerWheel, WakeHandle};
use crate::io::op::OpOutput;
use crate::sys::RawFd;

/// The IOCP driver; see the module docs.
pub(crate) struct IocpDriver {
    port: Arc<Port>,
    /// In-flight ops. `ManuallyDrop` so that `Drop` can leak them if the
    /// port ever fails while the kernel still holds pointers into them.
    ops: ManuallyDrop<OpRegistry<IocpOp>>,
    pool: ManuallyDrop<BlockingPool<OffloadJob>>,
    wheel: TimerWheel,
    waker: Arc<PortWaker>,
    /// Dequeue buffer, `DriverConfig::entries` long.
    entries: Vec<OVERLAPPED_ENTRY>,
    stats: DriverStats,
    /// Most packets one `GetQueuedCompletionStatusEx` call returned.
    max_batch: usize,
    /// Ops that finished inside `submit` (skip-on-success), no packet.
    immediate: u64,
    /// Registered handles that could not be put in skip-on-success mode:
    /// their immediate successes still queue a packet. (A handle value
    /// reused by a new handle is re-registered, which updates this.)
    no_skip: HashSet<RawFd>,
    /// Whether Registered I/O is available (detected, not used yet).
    rio: bool,
}

impl IocpDriver {
    /// Whether the Winsock provider offers Registered I/O. veloq detects it
    /// and sends and receives with `WSASend`/`WSARecv` either way.
    #[allow(dead_code)]
    pub(crate) fn rio_available(&self) -> bool {
        self.rio
    }

    /// Most packets a single `GetQueuedCompletionStatusEx` call returned.
    #[allow(dead_code)]
    pub(crate) fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Ops that completed inside `submit`, with no packet
    /// (`FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`).
    #[allow(dead_code)]
    pub(crate) fn immediate_completions(&self) -> u64 {
        self.immediate
    }

    /// Threads the blocking pool runs now.
    #[allow(dead_code)]
    pub(crate) fn blocking_threads(&self) -> usize {
        self.pool.threads()
    }

    /// One `GetQueuedCompletionStatusEx` call waiting at most `timeout_ms`,
    /// then processes what it returned. Returns the packets dequeued.
    fn dequeue(&mut self, timeout_ms: u32) -> io::Result<usize> {
        let mut removed = 0u32;
        // SAFETY: `entries` has `len` writable OVERLAPPED_ENTRYs; the port
        // is open while `self` lives.
        let ok = unsafe {
            GetQueuedCompletionStatusEx(
                self.port.handle(),
                self.entries.as_mut_ptr(),
                self.entries.len() as u32,
                &mut removed,
                timeout_ms,
                0,
            )
        };
        self.stats.wait_calls += 1;
        if ok == 0 {
            let code = last_error();
            if code == WAIT_TIMEOUT {
                return Ok(0);
            }
            return Err(io::Error::from_raw_os_error(code as i32));
        }
        let n = removed as usize;
        self.stats.completions += n as u64;
        self.max_batch = self.max_batch.max(n);
        for i in 0..n {
            let entry = self.entries[i];
            self.process(&entry);
        }
        Ok(n)
    }

    /// Handles one dequeued packet.
    fn process(&mut self, entry: &OVERLAPPED_ENTRY) {
        match entry.lpCompletionKey {
            KEY_WAKE => self.waker.acknowledge(),
            KEY_IO | KEY_OFFLOAD if !entry.lpOverlapped.is_null() => {
                let header = entry.lpOverlapped as *const OverlappedEntry;
                // SAFETY: every packet with these keys carries the
                // OVERLAPPED of an op that is still alive (one packet per
                // op, slot freed only after it; see the module docs), and
                // `OVERLAPPED` is the first field of its `OverlappedEntry`.
                let user_data = unsafe { (*header).user_data };
                self.complete(user_data, header, entry);
            }
            _ => {}
        }
    }

    fn complete(
        &mut self,
        user_data: u64,
        header: *const OverlappedEntry,
        entry: &OVERLAPPED_ENTRY,
    ) {
        let Some(key) = OpKey::from_user_data(user_data) else {
            return;
        };
        let Some(slot) = self.ops.get_mut(key) else {
            return; // Stale: never reaches a reused slot.
        };
        let Some(op) = slot.op.as_mut() else {
            return;
        };
        if !std::ptr::eq(&op.header, header) || !op.in_flight() {
            return;
        }
        let outcome = if entry.lpCompletionKey == KEY_OFFLOAD {
            op.header.blocking.take().unwrap_or(Err(ERROR_INVALID_DATA))
        } else {
            kernel_outcome(&op.header, entry.dwNumberOfBytesTransferred)
        };
        op.header.state = OpState::Completed;
        self.stats.in_flight -= 1;
        // SAFETY: the op's vtable is its own; the kernel (or pool) is done
        // with it.
        let output = unsafe { (op.vtable.on_complete)(op, outcome) };
        // A cancelled slot is freed here, and the op's drop closes any
        // handle it still owns (an accepted socket).
        self.ops.complete(key, output);
    }

    /// When `wait` must return at the latest: the earlier of `timeout`
    /// and the timer wheel's next deadline; `None` for no limit.
    fn wait_deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        let now = Instant::now();
        let timeout = timeout.and_then(|t| now.checked_add(t));
        match (timeout, self.wheel.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Milliseconds from now until `deadline`, rounded up (waking before the
/// deadline would only spin); `INFINITE` for none.
fn ms_until(deadline: Option<Instant>) -> u32 {
    match deadline {
        None => INFINITE,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            left.as_nanos()
                .div_ceil(1_000_000)
                .min(INFINITE as u128 - 1) as u32
        }
    }
}

/// The outcome of a kernel packet: bytes, or the op's Win32/Winsock error.
fn kernel_outcome(header: &OverlappedEntry, bytes: u32) -> Result<usize, u32> {
    // `Internal` is the NTSTATUS; 0 is STATUS_SUCCESS. Anything else (an
    // error or a warning like STATUS_BUFFER_OVERFLOW) is converted to a
    // Win32/Winsock code by the API that owns the handle.
    if header.overlapped.Internal == 0 {
        return Ok(bytes as usize);
    }
    let mut transferred = 0u32;
    if header.is_socket {
        let mut flags = 0u32;
        // SAFETY: the op is complete; this only reads its OVERLAPPED.
        let ok = unsafe {
            WSAGetOverlappedResult(
                header.handle as SOCKET,
                &header.overlapped,
                &mut transferred,
                0,
                &mut flags,
            )
        };
        if ok != 0 {
            return Ok(transferred as usize);
        }
        match last_wsa_error() {
            // A datagram cut to the buffer: the buffer is full of its
            // first bytes. Reported as that many bytes, as Linux does.
            code if code == WSAEMSGSIZE as u32 => Ok(transferred as usize),
            code => Err(code),
        }
    } else {
        // SAFETY: as above.
        let ok = unsafe {
            GetOverlappedResult(header.raw_handle(), &header.overlapped, &mut transferred, 0)
        };
        if ok != 0 {
            return Ok(transferred as usize);
        }
        Err(last_error())
    }
}

impl Driver for IocpDriver {
    type Op = IocpOp;

    fn new(config: &DriverConfig) -> io::Result<Self> {
        let port = Arc::new(Port::new()?);
        // Loaded now so that the first accept/connect does not pay for it;
        // a failure is reported by the ops that need the functions.
        let rio = ext::Extensions::get()
            .map(|e| e.rio_available())
            .unwrap_or(false);
        Ok(IocpDriver {
            waker: Arc::new(PortWaker::new(port.clone())),
            port,
            ops: ManuallyDrop::new(OpRegistry::new()),
            pool: ManuallyDrop::new(BlockingPool::new(
                config.max_blocking_threads,
                config.blocking_keep_alive,
            )),
            wheel: TimerWheel::new(Instant::now()),
            entries: vec![OVERLAPPED_ENTRY::default(); config.entries.max(1) as usize],
            stats: DriverStats::default(),
            max_batch: 0,
            immediate: 0,
            no_skip: HashSet::new(),
            rio,
        })
    }

    fn reserve(&mut self) -> io::Result<OpKey> {
        Ok(self.ops.reserve())
    }

    fn submit(&mut self, key: OpKey, op: IocpOp) -> io::Result<()> {
        let Some(slot) = self.ops.get_mut(key) else {
            return Err(io::Error::other("veloq: submit with a stale op key"));
        };
        let op = slot.op.insert(op);
        op.header.user_data = key.to_user_data();
        // SAFETY: the op was built with this vtable, sits at its final
        // address (the slab slot) and is submitted once.
        let started = unsafe { (op.vtable.submit)(op) };
        let started = match started {
            // With skip-on-success no packet follows: finish it here, with
            // the byte count the kernel left in the OVERLAPPED.
            Ok(SubmissionResult::Immediate) if !self.no_skip.contains(&op.header.handle) => {
                self.immediate += 1;
                Ok(SubmissionResult::Ready(Ok(op
                    .header
                    .overlapped
                    .InternalHigh)))
            }
            Ok(SubmissionResult::Immediate) => Ok(SubmissionResult::Pending),
            other => other,
        };
        match started {
            Ok(SubmissionResult::Pending) => {
                op.header.state = OpState::InKernel;
                self.stats.in_flight += 1;
            }
            Ok(SubmissionResult::Offload(task)) => {
                op.header.state = OpState::Offloaded;
                self.stats.in_flight += 1;
                let job = OffloadJob {
                    task,
                    entry: &op.header,
                    port: self.port.clone(),
                };
                if let Err(job) = self.pool.execute(job) {
                    // No pool thread could be started: run it here. It
                    // still reports through the port.
                    blocking::Job::run(job);
                }
            }
            Ok(SubmissionResult::Ready(outcome)) => {
                op.header.state = OpState::Completed;
                // SAFETY: as above; nothing holds the op's memory.
                let output = unsafe { (op.vtable.on_complete)(op, outcome) };
                self.ops.complete(key, output);
            }
            Ok(SubmissionResult::Immediate) => unreachable!("resolved above"),
            Err(e) => {
                // Nothing in flight: free the slot (and close anything the
                // op created, such as a pre-created accept socket).
                drop(self.ops.release(key));
                return Err(e);
            }
        }
        Ok(())
    }

    fn poll_op(&mut self, key: OpKey, cx: &mut Context<'_>) -> Poll<OpOutput> {
        if let Some(op) = self.ops.get_mut(key).and_then(|s| s.op.as_mut()) {
            if op.header.state == OpState::Completed {
                // The output is about to be handed out (the registry frees
                // the slot): the handle in it now belongs to the caller.
                op.disown();
            }
        }
        self.ops.poll(key, cx)
    }

    fn cancel(&mut self, key: OpKey, keep_alive: Option<Box<dyn Any>>) {
        match self.ops.cancel(key, keep_alive) {
            CancelAction::Done | CancelAction::Unknown => {}
            CancelAction::CancelInKernel => {
                let Some(slot) = self.ops.get_mut(key) else {
                    return;
                };
                match slot.op.as_ref().map(|op| op.header.state) {
                    Some(OpState::InKernel) => {
                        let op = slot.op.as_ref().expect("checked above");
                        cancel_in_kernel(&op.header);
                    }
                    // Offloaded ops cannot be stopped; their packet frees
                    // the slot when the pool finishes.
                    Some(OpState::Offloaded) => {}
                    // Never submitted (or completed without an output,
                    // which cannot happen): nothing will come for it.
                    _ => drop(self.ops.release(key)),
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // IOCP ops are posted to the kernel by `submit`; nothing is queued.
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let deadline = self.wait_deadline(timeout);
        let mut last = loop {
            let n = self.dequeue(ms_until(deadline))?;
            // The port's timer and `Instant` are different clocks (under
            // Wine the port may time out a little early): a timeout that
            // came before the deadline waits for the rest.
            match deadline {
                Some(d) if n == 0 && Instant::now() < d => continue,
                _ => break n,
            }
        };
        // Drain what else is ready without blocking while full batches
        // keep coming.
        let batch = self.entries.len();
        while last == batch {
            last = self.dequeue(0)?;
        }
        self.wheel.expire(Instant::now());
        Ok(())
    }

    fn process_completions(&mut self) -> usize {
        let batch = self.entries.len();
        let mut total = 0;
        while let Ok(n) = self.dequeue(0) {
            total += n;
            if n < batch {
                break;
            }
        }
        total
    }

    fn wake_handle(&self) -> WakeHandle {
        self.waker.clone()
    }

    /// Associates the handle with the port and, where safe, sets
    /// `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` (an op that succeeds at once
    /// then completes inside `submit`, saving a packet and a dequeue) and
    /// `FILE_SKIP_SET_EVENT_ON_HANDLE`.
    ///
    /// Files and stream sockets get it, sockets only when every IP Winsock
    /// provider is IFS (see `Extensions::ifs_sockets`). Datagram sockets
    /// do not: a truncated datagram received at once ends with a warning
    /// status (`WSAEMSGSIZE`), which Windows still reports through the
    /// port but Wine 8, in skip mode, does not — the one case where the two
    /// disagree on whether a packet follows, so it is kept out of the mode.
    fn register_handle(&mut self, fd: RawFd) -> io::Result<()> {
        let handle = submit::resolve_fd(fd) as HANDLE;
        self.port.associate(handle)?;
        let skip_allowed = match ext::socket_type(fd) {
            None => true,
            Some(ty) => ty == SOCK_STREAM && ext::Extensions::get().is_ok_and(|e| e.ifs_sockets),
        };
        // SAFETY: `handle` is the caller's open handle; this only sets its
        // completion flags.
        let skipping = skip_allowed
            && unsafe {
                SetFileCompletionNotificationModes(
                    handle,
                    (FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE) as u8,
                )
            } != 0;
        if skipping {
            self.no_skip.remove(&fd);
        } else {
            self.no_skip.insert(fd);
        }
        Ok(())
    }

    unsafe fn register_buffers(&mut self, _bufs: &[(*mut u8, usize)]) -> io::Result<Option<u16>> {
        // ReadFile/WSARecv take plain memory; registered buffers would be
        // RIO buffer regions, which the RIO path (not wired) would need.
        Ok(None)
    }

    fn unregister_buffers(&mut self, _first: u16, _count: u16) {}

    fn timers(&mut self) -> &mut TimerWheel {
        &mut self.wheel
    }

    fn stats(&self) -> DriverStats {
        self.stats
    }
}

/// Asks the kernel to abort an op; its packet still comes (see the module
/// docs), so failure to cancel needs no handling.
fn cancel_in_kernel(header: &OverlappedEntry) {
    // SAFETY: `header.overlapped` is the op's, still in flight; CancelIoEx
    // only marks the matching request. A handle closed meanwhile fails
    // with ERROR_INVALID_HANDLE: its ops are aborted by the close anyway.
    // ERROR_NOT_FOUND: already complete, its packet is queued.
    let _ = unsafe { CancelIoEx(header.raw_handle(), &header.overlapped) };
}

impl Drop for IocpDriver {
    fn drop(&mut self) {
        // Cancel everything: completed outputs are freed now, in-flight
        // ops are aborted and freed by their packets.
        for key in self.ops.keys() {
            self.cancel(key, None);
        }
        while self.stats.in_flight > 0 {
            if let Err(e) = self.dequeue(INFINITE) {
                eprintln!(
                    "veloq: completion port failed with {} op(s) in flight ({e}); leaking their memory",
                    self.stats.in_flight
                );
                // The kernel may still write into the ops: never free
                // them, nor the pool that may still post for them.
                return;
            }
        }
        // SAFETY: nothing is in flight: the kernel and the pool hold no
        // pointer into the ops; each field is dropped once, here.
        unsafe {
            ManuallyDrop::drop(&mut self.ops);
            ManuallyDrop::drop(&mut self.pool);
        }
    }
}
