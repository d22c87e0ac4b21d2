//! The Windows driver: I/O completion ports.
//!
//! `IocpDriver` posts each op to the kernel with an `OVERLAPPED` that lives
//! inside the op (`iocp/op.rs`), and waits for completions on one port with
//! `GetQueuedCompletionStatusEx`, up to `DriverConfig::entries` packets per
//! call.
//!
//! # Modules
//!
//! - `op`: `IocpOp` (header + vtable + payload union), `define_iocp_ops!`.
//! - `store`: `OpStore`, the raw-pointer-only memory ops live in.
//! - `submit`: `submit_*` / `complete_*` per op type.
//! - `blocking`: the bounded pool for open/close/flush/allocate.
//! - `ext`: `AcceptEx`, `ConnectEx`, `GetAcceptExSockaddrs`, RIO detection.
//! - `port`: the port handle, completion keys and the cross-thread wake.
//! - `error`: Win32/Winsock codes → `io::Error`.
//! - `sockaddr`: IP socket addresses as Winsock reads and writes them.
//!
//! # Where an op lives, and who may touch it
//!
//! The [`OpRegistry`] slot of an op holds its metadata — waker, output,
//! cancel flag, keep-alive — and an `OpRef`: a pointer to the op's cell in
//! the driver's `OpStore` (pages allocated once, never moved). The op's
//! bytes are never inside a registry slot, so the `&mut OpSlot` the
//! registry hands out never covers memory the kernel writes.
//!
//! ```text
//! IocpOp built ─submit─► moved into an OpStore cell (OpRef in the slot)
//!   ├─ Err: nothing in flight ─────────────────────────► slot + op freed
//!   ├─ Ready / Immediate (skip-on-success) ─► Completed ─► output stored
//!   ├─ InKernel / Offloaded ─ one packet dequeued ─► Completed ─► output
//!   │     (raw pointer only)                          (&mut allowed)
//!   └─ InKernel, status already final ─► Finished: output stored, op moved
//!         from the slot to `finished` ─ its packet dequeued ─► op freed
//! output stored ─poll─► handed out, slot (+ op, if still there) freed
//! cancelled slot ─packet─► slot + op freed, hook(output)
//! ```
//!
//! Invariants:
//!
//! - While an op is `InKernel` or `Offloaded`, Rust code reaches it only
//!   through the `*mut IocpOp` its `OpRef` holds, reading or writing the
//!   fields that the kernel and the pool never write (`state`, `user_data`,
//!   `handle`) and taking field addresses for the kernel (`CancelIoEx`,
//!   the `submit_*` calls). No reference covers its `OVERLAPPED`, its
//!   payload or `header.blocking` then.
//! - An op's cell is freed (and reused) only by `OpRef::drop`, which aborts
//!   on an in-flight (or `Finished`) op; the registry frees a slot of an
//!   in-flight op only after its packet was processed, and a `Finished`
//!   op's `OpRef` sits in `finished`, not in a slot, until its packet.
//!   So the `OVERLAPPED*` in a dequeued packet always points at a live
//!   op.
//! - The packet orders the kernel's (or the pool's) writes before the
//!   driver's reads: after dequeuing it, the driver is the op's only user,
//!   marks it `Completed` and may use `&mut IocpOp`.
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
//! # Pending, but already done
//!
//! An op the kernel reports pending (`ERROR_IO_PENDING`) may in fact be
//! complete by the time the call returns: its `OVERLAPPED` then holds a
//! final status (the test `HasOverlappedIoCompleted` makes), and its packet
//! is queued all the same. `submit` looks once, right after the call; for
//! such an op it makes the output at once (the task goes on without a trip
//! through the port) and moves the op out of its registry slot into
//! `finished`, where its memory stays, state `Finished`, until the packet
//! is dequeued and only frees it. The kernel writes nothing into an op
//! after its final status, so handing the buffer back early is sound;
//! the packet still finds a live op.
//!
//! On Windows this is the rare case (a read served from the cache goes
//! through skip-on-success instead). Wine 8 takes it for every overlapped
//! read or write of a regular file: it does the `pread` inside `ReadFile`,
//! then returns `STATUS_PENDING` and queues a packet even on a handle in
//! skip-on-success mode, so without this a sequential file read waited for
//! its own packet every time (a `wineserver` round trip to dequeue it,
//! plus a turn of the loop). At most [`EARLY_BUDGET`] ops per turn finish
//! this way (then the rest wait for their packets as usual), so a task
//! that keeps reading still lets the loop run and reap the packets. Ops
//! that own a handle (accept) never finish early: their output must not
//! be dropped unread without closing it, which only the registry path does.
//!
//! `DriverStats::completions` counts packets dequeued, so
//! `completions / wait_calls` is the packets per
//! `GetQueuedCompletionStatusEx` call; ops finished inside `submit` are
//! counted apart (`immediate_completions`).
//!
//! # Outputs and handles
//!
//! A completion's output is made the same way whether or not the op was
//! cancelled: the bytes a cancelled receive got, the socket and peer
//! address of a cancelled accept. An op the kernel aborted reports
//! `ERROR_OPERATION_ABORTED`, an error, even a send that moved some bytes
//! before the abort (its status is the abort's). When an
//! accept or open succeeds, the driver moves its handle from the op into
//! the output at that moment (`IocpOp::disown`, in `process` and in the
//! immediate path of `submit`): the op's future, or a cancelled op's hook,
//! then owns it. A failed accept's pre-created socket stays with the op,
//! which closes it.
//!
//! # Cancellation
//!
//! `cancel` marks the slot cancelled (the registry keeps the hook, which
//! holds the buffer) and calls `CancelIoEx(handle, overlapped)` for an op
//! in the kernel. Whatever happens next, the op's one packet still arrives:
//!
//! - not yet done: the kernel aborts it, the packet says
//!   `ERROR_OPERATION_ABORTED`;
//! - already done, packet queued but not dequeued (`CancelIoEx` fails with
//!   `ERROR_NOT_FOUND`): the packet is the normal one;
//! - done partly (bytes moved before the abort): the packet carries them.
//!
//! In every case the packet frees the slot and the op, then hands the
//! output to the hook. An offloaded op cannot be cancelled; its packet
//! comes when the pool thread finishes. An op already completed (packet
//! processed, output not yet taken) gives its output to the hook at once.
//!
//! # Panics in wakers and hooks
//!
//! Storing an output wakes the op's task, and finishing a cancelled op runs
//! its hook; both are code outside the driver and may panic. Each packet of
//! a batch is processed under `catch_unwind`, after the driver's own state
//! for it is settled, so a panic loses no other packet of the batch: the
//! first panic is re-raised once the whole batch is processed.
//!
//! # Drop
//!
//! Dropping the driver cancels every op (an unread output's handle is
//! closed), then dequeues until each in-flight op has produced its packet,
//! at most [`DRAIN_LIMIT`]; only then is op memory freed. If the limit
//! passes (or the port fails) with ops still in flight, the kernel or a
//! pool thread may still write them: the op store, the registry (with the
//! keep-alives) and the pool are leaked, never freed, and one line says so
//! on stderr.

mod blocking;
mod error;
mod ext;
mod op;
mod port;
mod sockaddr;
mod store;
mod submit;

#[cfg(test)]
mod tests;

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::io;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, addr_of, addr_of_mut, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{ERROR_INVALID_DATA, HANDLE, STATUS_PENDING, WAIT_TIMEOUT};
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
use self::op::{close_owned, OpState, OverlappedEntry, OwnedHandle};
use self::port::{Port, PortWaker, KEY_IO, KEY_OFFLOAD, KEY_WAKE};
use self::store::{OpRef, OpStore};
use self::submit::SubmissionResult;
use super::op_registry::{CancelAction, OpRegistry};
use super::{Driver, DriverConfig, DriverStats, KeepAlive, OpKey, TimerWheel, WakeHandle};
use crate::io::op::OpOutput;
use crate::sys::RawFd;

/// How many ops per turn may finish inside `submit` although the kernel
/// said pending (see "Pending, but already done" in the module docs).
pub(crate) const EARLY_BUDGET: usize = 128;

/// How long a dropping driver waits for the packets of the ops it
/// cancelled before it leaks their memory instead.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// A panic caught while a batch of packets was processed.
type PanicPayload = Box<dyn Any + Send + 'static>;

/// The IOCP driver; see the module docs.
pub(crate) struct IocpDriver {
    port: Arc<Port>,
    /// Op metadata by key; each live slot's `OpRef` owns an op in `store`.
    /// `ManuallyDrop` so that `Drop` can leak it (with the keep-alives) if
    /// ops are still in flight when the drain gives up.
    ops: ManuallyDrop<OpRegistry<OpRef>>,
    /// Ops that finished inside `submit` although the kernel said pending,
    /// by address, until their packet is dequeued (see the module docs).
    /// Leaked with the store if the drain gives up.
    finished: ManuallyDrop<HashMap<usize, OpRef>>,
    /// How many more ops may finish that way this turn.
    early_left: usize,
    /// Ops that finished that way so far.
    early: u64,
    /// The memory ops live in; freed after `ops` in `Drop`, or leaked.
    store: NonNull<OpStore>,
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
    /// How long `Drop` waits for in-flight ops ([`DRAIN_LIMIT`]; tests
    /// shorten it).
    drain_limit: Duration,
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

    /// Ops that the kernel reported pending but that were done when
    /// `submit` looked: finished there, their packet reaped later.
    #[allow(dead_code)]
    pub(crate) fn early_completions(&self) -> u64 {
        self.early
    }

    /// Threads the blocking pool runs now.
    #[allow(dead_code)]
    pub(crate) fn blocking_threads(&self) -> usize {
        self.pool.threads()
    }

    /// One `GetQueuedCompletionStatusEx` call waiting at most `timeout_ms`,
    /// then processes what it returned. Returns the packets dequeued. A
    /// panic of a waker or hook is re-raised after the whole batch.
    fn dequeue(&mut self, timeout_ms: u32) -> io::Result<usize> {
        let mut caught = None;
        let res = self.dequeue_batch(timeout_ms, &mut caught);
        if let Some(payload) = caught {
            panic::resume_unwind(payload);
        }
        res
    }

    /// As [`dequeue`](Self::dequeue), but a panic while a packet is
    /// processed is caught and kept in `caught` (the first one; later ones
    /// are dropped), and every other packet of the batch is still
    /// processed.
    fn dequeue_batch(
        &mut self,
        timeout_ms: u32,
        caught: &mut Option<PanicPayload>,
    ) -> io::Result<usize> {
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
            // Unwind safety: user code (a waker, a cancel hook) runs only
            // at the end of `process`, after the op is marked `Completed`,
            // counted out of `in_flight` and settled in the registry
            // (output stored, or slot freed): a panic there leaves the
            // driver consistent.
            let res = panic::catch_unwind(AssertUnwindSafe(|| self.process(&entry)));
            if let Err(payload) = res {
                caught.get_or_insert(payload);
            }
        }
        Ok(n)
    }

    /// Handles one dequeued packet.
    fn process(&mut self, entry: &OVERLAPPED_ENTRY) {
        let expected = match entry.lpCompletionKey {
            KEY_WAKE => {
                self.waker.acknowledge();
                return;
            }
            KEY_IO => OpState::InKernel,
            KEY_OFFLOAD => OpState::Offloaded,
            _ => return,
        };
        if entry.lpOverlapped.is_null() {
            return;
        }
        let header = entry.lpOverlapped.cast::<OverlappedEntry>();
        // SAFETY: every packet with these keys carries the OVERLAPPED of
        // an op that is still alive in the store (one packet per op, cell
        // freed only after it; see the module docs), and `OVERLAPPED` is
        // the first field of its `OverlappedEntry`. `user_data` was written
        // before submission, `state` is written by this thread only:
        // neither is ever written by the kernel or pool.
        let (user_data, state) = unsafe { ((*header).user_data, (*header).state) };
        if state == OpState::Finished && expected == OpState::InKernel {
            self.reap_finished(header);
            return;
        }
        let Some(key) = OpKey::from_user_data(user_data) else {
            return;
        };
        let Some(op) = self.ops.get_mut(key).and_then(|s| s.op.as_ref()) else {
            // Stale: never reaches a reused slot, but counted (a packet
            // for an op whose memory was already let go).
            self.ops.note_stale();
            return;
        };
        if !ptr::eq(op.as_ptr().cast::<OverlappedEntry>(), header) || op.state() != expected {
            self.ops.note_stale();
            return;
        }
        let op = op.as_ptr();
        // SAFETY: this packet was the op's one packet: the kernel (or the
        // pool thread, which posted it after its last write) is done with
        // the op, and the dequeue orders their writes before this point.
        // Nothing but this thread reaches the op from here on.
        let op = unsafe { &mut *op };
        let outcome = if expected == OpState::Offloaded {
            op.header.blocking.take().unwrap_or(Err(ERROR_INVALID_DATA))
        } else {
            kernel_outcome(&op.header, entry.dwNumberOfBytesTransferred)
        };
        op.header.state = OpState::Completed;
        self.stats.in_flight -= 1;
        // SAFETY: the op is `Completed` and was built with its vtable.
        let output = unsafe { finish(op, outcome) };
        // Stores the output and wakes the task, or (cancelled) frees the
        // slot and the op and runs the hook: may panic (see above).
        self.ops.complete(key, output);
    }

    /// Finishes an op whose final status `done_early` saw: its output goes
    /// to its slot now, and the op moves to `finished` until its packet.
    fn finish_early(&mut self, key: OpKey, op: *mut IocpOp) {
        let Some(op_ref) = self.ops.get_mut(key).and_then(|s| s.op.take()) else {
            return;
        };
        // SAFETY: the op's final status was seen with acquire ordering:
        // the kernel has written everything it will write (the packet it
        // still queues carries only the op's address), so this thread is
        // the op's only user. It stays allocated (in `finished`) until that
        // packet is dequeued.
        let op = unsafe { &mut *op };
        let bytes = op.header.overlapped.InternalHigh as u32;
        let outcome = kernel_outcome(&op.header, bytes);
        op.header.state = OpState::Finished;
        self.early_left -= 1;
        self.early += 1;
        // SAFETY: the kernel is done with the op (above) and it was built
        // with its vtable. `finish` only hands a handle over for ops that
        // own one, and those never get here (`done_early`).
        let output = unsafe { finish(op, outcome) };
        self.finished.insert(op_ref.as_ptr() as usize, op_ref);
        // Stores the output and wakes the task (or runs a cancel hook).
        self.ops.complete(key, output);
    }

    /// The packet of an op that finished inside `submit`: frees it.
    fn reap_finished(&mut self, header: *const OverlappedEntry) {
        let Some(op) = self.finished.remove(&(header as usize)) else {
            self.ops.note_stale();
            return;
        };
        // SAFETY: the op is live (owned by `op`), and this was its one
        // packet: nothing but this thread reaches it from here on; the
        // state is the driver's field.
        unsafe { (*op.as_ptr()).header.state = OpState::Completed };
        self.stats.in_flight -= 1;
        drop(op);
    }

    /// Whether the kernel has already finished the op it reported pending
    /// (`HasOverlappedIoCompleted`), with this turn's budget left for
    /// finishing it at once; see the module docs.
    ///
    /// # Safety
    ///
    /// `op` is live and `InKernel`.
    unsafe fn done_early(&self, op: *mut IocpOp) -> bool {
        if self.early_left == 0 {
            return false;
        }
        // SAFETY: the op is live; `owned` is written before submission and
        // by this thread only.
        if unsafe { (*op).header.owned } != OwnedHandle::None {
            return false;
        }
        // SAFETY: `Internal` is a naturally aligned `usize` inside the live
        // op; the kernel may store to it concurrently, so it is read
        // atomically. Acquire: once it shows a final status, the kernel's
        // writes of the op's results (the byte count, the buffer) are
        // visible, as for `GetOverlappedResult`.
        let status = unsafe {
            AtomicUsize::from_ptr(addr_of_mut!((*op).header.overlapped.Internal))
                .load(Ordering::Acquire)
        };
        status != STATUS_PENDING as u32 as usize
    }

    /// Cancels every op (drop): in-flight ops get `CancelIoEx` (again, for
    /// those the user cancelled before; harmless), completed outputs
    /// nobody read are thrown away (closing the handle an accept or open
    /// put in them), reserved or unsubmitted slots are freed.
    fn cancel_all(&mut self) {
        for key in self.ops.keys() {
            let Some(slot) = self.ops.get_mut(key) else {
                continue;
            };
            let Some(op) = slot.op.as_ref() else {
                // Reserved, never submitted.
                drop(self.ops.release(key));
                continue;
            };
            match op.state() {
                OpState::InKernel => {
                    let op = op.as_ptr();
                    // Never a second `cancel` on a cancelled slot: it would
                    // replace (drop) the hook that keeps the buffer alive.
                    if !self.ops.is_cancelled(key) {
                        self.ops.cancel(key, None);
                    }
                    // SAFETY: the op is live and in the kernel.
                    unsafe { cancel_in_kernel(op) };
                }
                OpState::Offloaded => {
                    if !self.ops.is_cancelled(key) {
                        self.ops.cancel(key, None);
                    }
                }
                OpState::Completed => {
                    // SAFETY: a completed op is no longer written by the
                    // kernel or the pool.
                    let handed = unsafe { (*op.as_ptr()).handed_out() };
                    // Its output is still in the slot (taking it frees the
                    // slot), and is dropped here unread: close its handle.
                    self.ops.cancel(key, None);
                    close_owned(handed);
                }
                OpState::Built => drop(self.ops.release(key)),
                // Never in a slot: `finish_early` moves it to `finished`,
                // where its packet frees it.
                OpState::Finished => {}
            }
        }
    }

    /// Cancels everything and dequeues until no op is in flight; `false`
    /// if some still are after `drain_limit`. A panic of a hook during the
    /// drain is kept in `caught`.
    fn drain(&mut self, caught: &mut Option<PanicPayload>) -> bool {
        let started = Instant::now();
        let mut cancelled_at: Option<Instant> = None;
        loop {
            if cancelled_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                // Again now and then: cheap, and covers a provider that
                // ignored the first request.
                self.cancel_all();
                cancelled_at = Some(Instant::now());
            }
            if self.stats.in_flight == 0 {
                return true;
            }
            let elapsed = started.elapsed();
            if elapsed >= self.drain_limit {
                return false;
            }
            let step = (self.drain_limit - elapsed).min(Duration::from_millis(50));
            if self
                .dequeue_batch(ms_until(Some(Instant::now() + step)), caught)
                .is_err()
            {
                std::thread::sleep(Duration::from_millis(1));
            }
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

/// Makes a completed op's output and, if it succeeded, moves the handle the
/// op created (accept, open) into it: from here the output owns it.
///
/// # Safety
///
/// `op` is `Completed` and was built with its vtable.
unsafe fn finish(op: &mut IocpOp, outcome: Result<usize, u32>) -> OpOutput {
    // SAFETY: the caller guarantees the vtable is the op's own.
    let output = unsafe { (op.vtable.on_complete)(op, outcome) };
    if output.res.is_ok() {
        op.disown();
    }
    output
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
            finished: ManuallyDrop::new(HashMap::new()),
            early_left: EARLY_BUDGET,
            early: 0,
            store: OpStore::new_raw(),
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
            drain_limit: DRAIN_LIMIT,
        })
    }

    fn reserve(&mut self) -> io::Result<OpKey> {
        Ok(self.ops.reserve())
    }

    fn submit(&mut self, key: OpKey, op: IocpOp) -> io::Result<()> {
        let Some(slot) = self.ops.get_mut(key) else {
            return Err(io::Error::other("veloq: submit with a stale op key"));
        };
        // SAFETY: the store lives as long as the driver.
        let op_ref = unsafe { OpStore::alloc(self.store, op) };
        let op = op_ref.as_ptr();
        slot.op = Some(op_ref);
        // From here until the op completes, `op` is used as a raw pointer
        // only (see the module docs).
        // SAFETY: the op is live and not yet submitted: nothing else
        // reaches it.
        let (vtable, handle) = unsafe {
            (*op).header.user_data = key.to_user_data();
            ((*op).vtable, (*op).header.handle)
        };
        // SAFETY: the op was built with this vtable, sits at its final
        // address (a store cell) and is submitted once.
        let started = unsafe { (vtable.submit)(op) };
        let started = match started {
            // With skip-on-success no packet follows: finish it here, with
            // the byte count the kernel left in the OVERLAPPED.
            Ok(SubmissionResult::Immediate) if !self.no_skip.contains(&handle) => {
                self.immediate += 1;
                // SAFETY: the kernel finished the op inside the call and
                // queues nothing for it: it no longer writes the op.
                Ok(SubmissionResult::Ready(Ok(unsafe {
                    (*op).header.overlapped.InternalHigh
                })))
            }
            Ok(SubmissionResult::Immediate) => Ok(SubmissionResult::Pending),
            other => other,
        };
        match started {
            Ok(SubmissionResult::Pending) => {
                // SAFETY: `state` is the driver's field; the kernel, which
                // may be writing the op now, never writes it.
                unsafe { (*op).header.state = OpState::InKernel };
                self.stats.in_flight += 1;
                // SAFETY: the op is live and in the kernel.
                if unsafe { self.done_early(op) } {
                    self.finish_early(key, op);
                }
            }
            Ok(SubmissionResult::Offload(task)) => {
                // SAFETY: as above; set before the pool can see the op.
                unsafe { (*op).header.state = OpState::Offloaded };
                self.stats.in_flight += 1;
                let job = OffloadJob {
                    task,
                    // SAFETY: the op is live; only the address is taken.
                    entry: unsafe { addr_of!((*op).header) },
                    port: self.port.clone(),
                };
                if let Err(job) = self.pool.execute(job) {
                    // No pool thread could be started: run it here. It
                    // still reports through the port.
                    blocking::Job::run(job);
                }
            }
            Ok(SubmissionResult::Ready(outcome)) => {
                // SAFETY: no packet comes for this op and nothing else
                // reaches it: this thread is its only user.
                let op = unsafe { &mut *op };
                op.header.state = OpState::Completed;
                // SAFETY: completed, built with its vtable.
                let output = unsafe { finish(op, outcome) };
                self.ops.complete(key, output);
            }
            Ok(SubmissionResult::Immediate) => unreachable!("resolved above"),
            Err(e) => {
                // Nothing in flight (the op is still `Built`): free the
                // slot and the op, which closes anything it created (a
                // pre-created accept socket).
                drop(self.ops.release(key));
                return Err(e);
            }
        }
        Ok(())
    }

    fn poll_op(&mut self, key: OpKey, cx: &mut Context<'_>) -> Poll<OpOutput> {
        self.ops.poll(key, cx)
    }

    fn cancel(&mut self, key: OpKey, keep_alive: Option<KeepAlive>) {
        match self.ops.cancel(key, keep_alive) {
            CancelAction::Done | CancelAction::Unknown => {}
            CancelAction::CancelInKernel => {
                let Some(slot) = self.ops.get_mut(key) else {
                    return;
                };
                match slot.op.as_ref().map(|op| (op.state(), op.as_ptr())) {
                    // SAFETY: the op is live and in the kernel.
                    Some((OpState::InKernel, op)) => unsafe { cancel_in_kernel(op) },
                    // Offloaded ops cannot be stopped; their packet frees
                    // the slot when the pool finishes.
                    Some((OpState::Offloaded, _)) => {}
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
        self.early_left = EARLY_BUDGET;
        let deadline = self.wheel.wait_deadline(Instant::now(), timeout);
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
        self.early_left = EARLY_BUDGET;
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
    /// Message-type named pipes likewise (`ERROR_MORE_DATA`; see
    /// `submit::is_message_pipe`).
    fn register_handle(&mut self, fd: RawFd) -> io::Result<()> {
        let handle = submit::resolve_fd(fd) as HANDLE;
        self.port.associate(handle)?;
        let skip_allowed = match ext::socket_type(fd) {
            None => !submit::is_message_pipe(fd),
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
        DriverStats {
            stale_completions: self.ops.stale_completions(),
            fault_completions: self.ops.fault_completions(),
            ..self.stats
        }
    }
}

/// Asks the kernel to abort an op; its packet still comes (see the module
/// docs), so failure to cancel needs no handling.
///
/// # Safety
///
/// `op` points at a live op that is `InKernel`.
unsafe fn cancel_in_kernel(op: *mut IocpOp) {
    // SAFETY: the caller guarantees the op is live; `handle` is never
    // written by the kernel, and only the OVERLAPPED's address is taken.
    let (handle, overlapped) = unsafe {
        (
            (*op).header.handle as HANDLE,
            addr_of!((*op).header.overlapped),
        )
    };
    // SAFETY: CancelIoEx only marks the request that uses `overlapped`. A
    // handle closed meanwhile fails with ERROR_INVALID_HANDLE: its ops are
    // aborted by the close anyway. ERROR_NOT_FOUND: already complete, its
    // packet is queued.
    let _ = unsafe { CancelIoEx(handle, overlapped) };
}

impl Drop for IocpDriver {
    fn drop(&mut self) {
        let mut caught = None;
        if self.drain(&mut caught) {
            // SAFETY: nothing is in flight: the kernel and the pool hold no
            // pointer into the ops. Each field is dropped once, here; the
            // registry (whose `OpRef`s point into the store) before the
            // store.
            unsafe {
                ManuallyDrop::drop(&mut self.ops);
                ManuallyDrop::drop(&mut self.finished);
                ManuallyDrop::drop(&mut self.pool);
                OpStore::free_store(self.store);
            }
        } else {
            // The kernel or a pool thread may still write into these ops
            // (and the buffers their keep-alives hold): never free them,
            // nor the pool that may still post for them.
            super::note_leaked_drain();
            eprintln!(
                "veloq: IOCP driver dropped with {} op(s) still in flight after {:?}; \
                 leaking their memory, keep-alives and the blocking pool",
                self.stats.in_flight, self.drain_limit
            );
        }
        if let Some(payload) = caught {
            if !std::thread::panicking() {
                panic::resume_unwind(payload);
            }
        }
    }
}
