//! The io_uring driver (Linux).
//!
//! One ring per thread. Ops live in an [`OpRegistry<UringOp>`]; an op's
//! SQE carries its [`OpKey`] as `user_data` and points only into the op's
//! slot (stable address) and the op's buffer (owned by its future or the
//! registry's keep-alive), so nothing the kernel touches can move or be
//! freed before the op's CQE has been processed.
//!
//! # Kernel
//!
//! The ops need Linux 5.6 (OPENAT, CLOSE, SEND/RECV, ACCEPT, CONNECT,
//! FALLOCATE as io_uring opcodes); on an older kernel an op fails with the
//! kernel's `EINVAL`. Newer features are used where present and skipped
//! where not: EXT_ARG waits (5.11), the sparse buffer table (5.13),
//! `CQE_SKIP_SUCCESS` (5.17) and the setup flags (5.18 to 6.1; `setup`).
//!
//! # One `io_uring_enter` per turn
//!
//! Ops are only queued in the SQ by `submit` (a full SQ is submitted on
//! the spot). `wait` submits everything queued and waits for at least one
//! completion in the same syscall, bounded by the earlier of the caller's
//! timeout and the timer wheel's next deadline. Then every CQE is
//! processed and due timers fire. `ETIME`, `EINTR`, `EBUSY` and `EAGAIN`
//! from the enter are not errors: the turn just ends early.
//!
//! The deadline goes to the kernel as the enter's own timeout
//! (`IORING_ENTER_EXT_ARG`, Linux 5.11) where available: exact, no extra
//! SQE, no CQE to reap, nothing left in the kernel after the wait. Older
//! kernels get an armed `IORING_OP_TIMEOUT` request instead (`deadline`).
//!
//! Some CQEs end a kernel wait without being news for the executor: the
//! acks of `ASYNC_CANCEL`/`TIMEOUT_REMOVE` (posted only on failure where
//! the kernel has `CQE_SKIP_SUCCESS`), a removed timeout, a cancelled op's
//! completion. When a blocking enter returned with nothing but those and
//! the deadline has not passed, `wait` enters again (at most
//! `NOISE_RETRIES` times), so it returns on an op completion, a wake or a
//! due deadline.
//!
//! # Wakes and fixed buffers
//!
//! Cross-thread wakes complete a `READ` the driver keeps armed on an
//! eventfd (`wake`). A sparse fixed-buffer table is registered at setup
//! and handed out in index runs to `BufPool`s (`buf_table`).
//!
//! # Internal `user_data` tokens
//!
//! ```text
//!  63  62     56 55                                  0
//! +---+---------+-------------------------------------+
//! | 1 |  kind   |  sequence (timeouts) / 0            |
//! +---+---------+-------------------------------------+
//! kind 1 = wake READ, 2 = wait TIMEOUT, 3 = ASYNC_CANCEL / TIMEOUT_REMOVE ack
//! ```
//!
//! Op keys never have bit 63 set (see `op_registry`).
//!
//! # Drop
//!
//! Dropping the driver asks the kernel to cancel every op, the wake read
//! and the armed timeout, then keeps waiting until every one of them has
//! posted its CQE; only then are the ring, the slots and the keep-alives
//! freed. Should the kernel not report them within [`DRAIN_LIMIT`], the
//! memory it might still write is leaked rather than freed.

mod buf_table;
mod deadline;
mod drain;
mod op;
mod setup;
mod wake;

#[cfg(test)]
mod tests;

use std::any::Any;
use std::io;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, EnterFlags, IoUring};

use super::op_registry::{CancelAction, OpRegistry};
use super::{Driver, DriverConfig, DriverStats, OpKey, TimerWheel, WakeHandle};
use crate::io::buf::pool;
use crate::io::op::OpOutput;
use crate::sys::RawFd;

use buf_table::{BufTable, TABLE_SLOTS};
use deadline::Deadlines;
pub(crate) use op::UringOp;
pub(crate) use setup::SetupLevel;
use wake::EventFdWaker;

/// How long a dropping driver waits for the kernel to report the ops it
/// cancelled before it leaks their memory instead.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Internal `user_data` tokens; see the module docs for the layout.
mod token {
    use crate::io::driver::op_registry::INTERNAL_TAG;

    const KIND_SHIFT: u32 = 56;
    const KIND_MASK: u64 = 0x7f << KIND_SHIFT;

    /// The eventfd wake read.
    pub(crate) const WAKE: u64 = INTERNAL_TAG | (1 << KIND_SHIFT);
    /// Kind of the wait timeouts.
    pub(crate) const TIMEOUT_KIND: u64 = INTERNAL_TAG | (2 << KIND_SHIFT);
    /// Acks of `ASYNC_CANCEL` / `TIMEOUT_REMOVE` (ignored).
    pub(crate) const CANCEL: u64 = INTERNAL_TAG | (3 << KIND_SHIFT);

    /// The token of wait timeout number `seq`.
    pub(crate) fn timeout(seq: u64) -> u64 {
        TIMEOUT_KIND | (seq & !(INTERNAL_TAG | KIND_MASK))
    }

    /// The kind bits of an internal token.
    pub(crate) fn kind(token: u64) -> u64 {
        token & (INTERNAL_TAG | KIND_MASK)
    }
}

/// Blocking enters one `wait` makes at most while only noise arrives.
const NOISE_RETRIES: usize = 8;

/// CQEs copied out of the ring per batch.
const CQE_BATCH: usize = 64;

/// The io_uring driver; see the module docs.
///
/// `!Send`: the ring may be set up with SINGLE_ISSUER and the registry
/// holds `!Send` keep-alives; it stays on the thread that created it.
pub(crate) struct UringDriver {
    /// Closed explicitly in `Drop`, after a successful drain and before
    /// any other field is freed; leaked otherwise.
    ring: ManuallyDrop<IoUring>,
    level: SetupLevel,
    registry: OpRegistry<UringOp>,
    timers: TimerWheel,
    waker: Arc<EventFdWaker>,
    /// Where the armed wake read writes; freed only once no read is armed.
    wake_buf: ManuallyDrop<Box<u64>>,
    wake_armed: bool,
    wake_rearm: bool,
    deadlines: Deadlines,
    /// Whether waits take their deadline as an enter argument (EXT_ARG);
    /// otherwise through `deadlines`.
    ext_arg: bool,
    /// SQE flags of requests whose success CQE is noise (cancels,
    /// timeout removals): `SKIP_SUCCESS` where the kernel has it.
    ack_flags: squeue::Flags,
    /// CQEs that are news for the executor (see the module docs).
    signals: u64,
    /// The sparse fixed-buffer table; `None` where the kernel refused it.
    buf_table: Option<BufTable>,
    /// Set by `drop`: no more re-arming.
    closing: bool,
    completions: u64,
    wait_calls: u64,
    in_flight: usize,
}

impl UringDriver {
    /// Creates a driver whose ring uses at most the `best` setup level (the
    /// fallback path is tested this way).
    pub(crate) fn with_level(config: &DriverConfig, best: SetupLevel) -> io::Result<Self> {
        let (ring, level) = setup::build_ring(config.entries, best)?;
        let buf_table = match ring.submitter().register_buffers_sparse(TABLE_SLOTS as u32) {
            Ok(()) => Some(BufTable::new(TABLE_SLOTS)),
            Err(_) => None,
        };
        let ext_arg = ring.params().is_feature_ext_arg();
        let ack_flags = if ring.params().is_feature_skip_cqe_on_success() {
            squeue::Flags::SKIP_SUCCESS
        } else {
            squeue::Flags::empty()
        };
        let mut driver = UringDriver {
            ring: ManuallyDrop::new(ring),
            level,
            registry: OpRegistry::new(),
            timers: TimerWheel::new(Instant::now()),
            waker: EventFdWaker::new()?,
            wake_buf: ManuallyDrop::new(Box::new(0)),
            wake_armed: false,
            wake_rearm: false,
            deadlines: Deadlines::default(),
            ext_arg,
            ack_flags,
            signals: 0,
            buf_table,
            closing: false,
            completions: 0,
            wait_calls: 0,
            in_flight: 0,
        };
        driver.arm_wake()?;
        Ok(driver)
    }

    /// The setup level the kernel accepted.
    #[cfg(test)]
    pub(crate) fn setup_level(&self) -> SetupLevel {
        self.level
    }

    /// Makes waits use the `IORING_OP_TIMEOUT` path even where the kernel
    /// has EXT_ARG (tests of the fallback).
    #[cfg(test)]
    pub(crate) fn use_timeout_op(&mut self) {
        self.ext_arg = false;
    }

    /// Whether the sparse fixed-buffer table is available.
    #[cfg(test)]
    pub(crate) fn has_fixed_buffers(&self) -> bool {
        self.buf_table.is_some()
    }

    /// Queues `entry`, submitting the SQ to the kernel when it is full.
    ///
    /// # Safety
    ///
    /// Every pointer in `entry` must stay valid (and the memory it points
    /// at unmoved) until the entry's CQE has been processed.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..8 {
            // SAFETY: the caller guarantees the entry's memory outlives the
            // op.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if is_transient(&e) => {
                    // The kernel wants the CQ drained first.
                    self.enter(0)?;
                    self.reap();
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "io_uring submission queue stays full",
        ))
    }

    /// Submits everything queued and, with `GETEVENTS`, runs deferred
    /// completion work; waits for `min_complete` completions.
    fn enter(&mut self, min_complete: u32) -> io::Result<()> {
        let to_submit = self.ring.submission().len() as u32;
        // SAFETY: no extended argument is passed; every queued SQE was
        // pushed through `push`, whose callers keep its memory alive.
        let res = unsafe {
            self.ring.submitter().enter::<libc::sigset_t>(
                to_submit,
                min_complete,
                EnterFlags::GETEVENTS.bits(),
                None,
            )
        };
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// As [`enter`](Self::enter) with `min_complete` 1, giving up at `at`:
    /// through EXT_ARG, or an armed `IORING_OP_TIMEOUT`.
    fn enter_until(&mut self, at: Instant) -> io::Result<()> {
        let now = Instant::now();
        if !self.ext_arg {
            for entry in self.deadlines.arm(at, now, self.ack_flags) {
                // SAFETY: the timespec box stays in `deadlines` until the
                // timeout's CQE arrives (or is leaked).
                if let Err(e) = unsafe { self.push(&entry) } {
                    self.deadlines.disarm_unqueued();
                    return Err(e);
                }
            }
            return self.enter(1);
        }
        let ts = types::Timespec::from(at.saturating_duration_since(now));
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether a non-blocking turn needs a syscall at all: something is
    /// queued, the kernel flagged pending completion work (TASKRUN_FLAG,
    /// set with every level that defers that work; without it the kernel
    /// runs the work on any return to user space), or the CQ overflowed.
    fn needs_enter(&mut self) -> bool {
        let sq = self.ring.submission();
        !sq.is_empty() || sq.cq_overflow() || (self.level.has_taskrun_flag() && sq.taskrun())
    }

    /// Arms the eventfd read that cross-thread wakes complete.
    fn arm_wake(&mut self) -> io::Result<()> {
        let buf: *mut u64 = &mut **self.wake_buf;
        let entry = opcode::Read::new(types::Fd(self.waker.fd()), buf.cast(), 8)
            .build()
            .user_data(token::WAKE);
        // SAFETY: `wake_buf` is a heap box owned by the driver; it is freed
        // only when no wake read is armed (`drop` drains, or leaks it).
        unsafe { self.push(&entry) }?;
        self.wake_armed = true;
        Ok(())
    }

    /// Processes every CQE in the ring; returns how many.
    fn reap(&mut self) -> usize {
        // Cancelled ops' keep-alives are dropped in here.
        let call = pool::driver_call();
        let mut total = 0;
        loop {
            let mut buf = [const { MaybeUninit::<cqueue::Entry>::uninit() }; CQE_BATCH];
            let batch = self.ring.completion().fill(&mut buf);
            if batch.is_empty() {
                break;
            }
            total += batch.len();
            for cqe in batch.iter() {
                self.on_cqe(cqe.user_data(), cqe.result());
            }
        }
        if self.wake_rearm && !self.closing {
            self.wake_rearm = false;
            // Should the SQ refuse it now, the next `wait` re-arms.
            let _ = self.arm_wake();
        }
        self.release_deferred_pools(call);
        total
    }

    /// Unregisters and frees the buffer pools that died during `call`
    /// (their last owner was a keep-alive dropped by this driver).
    fn release_deferred_pools(&mut self, call: pool::DriverCall) {
        let me: WakeHandle = self.waker.clone();
        pool::release_deferred(&me, |first, count| self.unregister_buffers(first, count));
        drop(call);
    }

    /// Handles one completion.
    fn on_cqe(&mut self, user_data: u64, res: i32) {
        self.completions += 1;
        let Some(key) = OpKey::from_user_data(user_data) else {
            match token::kind(user_data) {
                token::WAKE => {
                    self.signals += 1;
                    self.wake_armed = false;
                    self.waker.consumed();
                    // A read error other than an interruption would repeat
                    // forever; leave the wake disarmed then.
                    self.wake_rearm = res >= 0
                        || res == -libc::EINTR
                        || res == -libc::EAGAIN
                        || res == -libc::ECANCELED;
                    debug_assert!(self.wake_rearm, "veloq: eventfd read failed: {res}");
                }
                token::TIMEOUT_KIND if self.deadlines.on_cqe(user_data, res) => {
                    self.signals += 1;
                }
                _ => {}
            }
            return;
        };
        // A stale key (the slot was reused) or a slot without an op is
        // ignored: the closure does not run.
        let in_flight = &mut self.in_flight;
        let signals = &mut self.signals;
        self.registry.complete_with(key, |op, cancelled| {
            *in_flight -= 1;
            if cancelled {
                if let Some(fd) = op.created_fd(res) {
                    // Nobody will take the handle a cancelled accept/open
                    // created; close it rather than leak it.
                    // SAFETY: the kernel just created `fd` for this op and
                    // nothing else knows of it.
                    unsafe { libc::close(fd) };
                }
                OpOutput {
                    res: Ok(0),
                    addr: None,
                }
            } else {
                *signals += 1;
                op.output(res)
            }
        });
    }

    /// Queues an `ASYNC_CANCEL` of the request tagged `target`.
    fn push_cancel(&mut self, target: u64) {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .flags(self.ack_flags)
            .user_data(token::CANCEL);
        // SAFETY: ASYNC_CANCEL points at no memory. Should the SQ refuse
        // it, the op still completes on its own (and drop retries).
        let _ = unsafe { self.push(&entry) };
    }
}

/// Enter results that end a turn early but are not failures.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
    )
}

impl Driver for UringDriver {
    type Op = UringOp;

    fn new(config: &DriverConfig) -> io::Result<Self> {
        UringDriver::with_level(config, SetupLevel::DeferTaskrun)
    }

    fn reserve(&mut self) -> io::Result<OpKey> {
        Ok(self.registry.reserve())
    }

    fn submit(&mut self, key: OpKey, op: UringOp) -> io::Result<()> {
        if let UringOp::Invalid(e) = op {
            self.registry.free(key);
            return Err(e);
        }
        let Some(slot) = self.registry.get_mut(key) else {
            return Err(io::Error::other("veloq: submit with a stale op key"));
        };
        // The op moves into its slot first; the SQE points into it there.
        let entry = match slot.op.insert(op).prepare(key.to_user_data()) {
            Ok(entry) => entry,
            Err(e) => {
                self.registry.free(key);
                return Err(e);
            }
        };
        // SAFETY: the SQE points into the op's slot, which stays put until
        // its CQE is processed (the registry frees a slot only on poll
        // after completion, on completion after cancel, or here on
        // failure), and into the op's buffer, which the `Op` future or the
        // slot's keep-alive owns until then.
        if let Err(e) = unsafe { self.push(&entry) } {
            self.registry.free(key);
            return Err(e);
        }
        self.in_flight += 1;
        Ok(())
    }

    fn poll_op(&mut self, key: OpKey, cx: &mut Context<'_>) -> Poll<OpOutput> {
        self.registry.poll(key, cx)
    }

    fn cancel(&mut self, key: OpKey, keep_alive: Option<Box<dyn Any>>) {
        // An op that already completed drops `keep_alive` in here.
        let call = pool::driver_call();
        if let Some(slot) = self.registry.get_mut(key) {
            if let (Some(op), Some(OpOutput { res: Ok(n), .. })) = (&slot.op, slot.output()) {
                if let Some(fd) = op.created_fd(*n as i32) {
                    // The accept/open completed but its future is gone:
                    // nobody will take the descriptor, so close it.
                    // SAFETY: the kernel created `fd` for this op and only
                    // its (now dropped) future would have adopted it.
                    unsafe { libc::close(fd) };
                }
            }
        }
        if self.registry.get_mut(key).is_some_and(|s| s.op.is_none()) {
            self.registry.free(key);
        } else if self.registry.cancel(key, keep_alive) == CancelAction::CancelInKernel {
            self.push_cancel(key.to_user_data());
        }
        self.release_deferred_pools(call);
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if !self.wake_armed {
            self.arm_wake()?;
        }
        let now = Instant::now();
        let deadline = match (
            timeout.and_then(|t| now.checked_add(t)),
            self.timers.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let block = deadline.is_none_or(|d| d > now) && self.ring.completion().is_empty();
        if !block {
            if self.needs_enter() {
                self.enter(0)?;
            }
            self.reap();
        } else {
            // Bounded: an early return is allowed, a spin is not.
            for _ in 0..NOISE_RETRIES {
                self.wait_calls += 1;
                let signals = self.signals;
                match deadline {
                    Some(at) => self.enter_until(at)?,
                    None => self.enter(1)?,
                }
                self.reap();
                let due = deadline.is_some_and(|d| Instant::now() >= d);
                if self.signals != signals || due {
                    break;
                }
            }
        }
        self.timers.expire(Instant::now());
        Ok(())
    }

    fn process_completions(&mut self) -> usize {
        let pending = {
            let sq = self.ring.submission();
            sq.taskrun() || sq.cq_overflow()
        };
        if pending {
            // Runs deferred completion work without waiting; a failure
            // leaves the work for the next `wait`.
            let _ = self.enter(0);
        }
        self.reap()
    }

    fn wake_handle(&self) -> WakeHandle {
        self.waker.clone()
    }

    fn register_handle(&mut self, _fd: RawFd) -> io::Result<()> {
        Ok(())
    }

    unsafe fn register_buffers(&mut self, bufs: &[(*mut u8, usize)]) -> io::Result<Option<u16>> {
        // SAFETY: forwarded from the caller.
        unsafe { self.register_fixed(bufs) }
    }

    fn unregister_buffers(&mut self, first: u16, count: u16) {
        self.unregister_fixed(first, count);
    }

    fn timers(&mut self) -> &mut TimerWheel {
        &mut self.timers
    }

    fn stats(&self) -> DriverStats {
        DriverStats {
            completions: self.completions,
            wait_calls: self.wait_calls,
            in_flight: self.in_flight,
        }
    }
}
