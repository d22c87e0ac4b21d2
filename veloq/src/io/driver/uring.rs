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
//! `CQE_SKIP_SUCCESS` (5.17), the setup flags (5.18 to 6.1; `setup`) and
//! the opt-in zero-copy sends (`SEND_ZC`, 6.0; `send_zc`).
//!
//! # One `io_uring_enter` per turn
//!
//! Ops are only queued in the SQ by `submit` (a full SQ is submitted on
//! the spot). `wait` submits everything queued and waits for at least one
//! completion in the same syscall, bounded by the earlier of the caller's
//! timeout and the timer wheel's next deadline. Then every CQE is
//! processed and due timers fire.
//!
//! The deadline goes to the kernel as the enter's own timeout
//! (`IORING_ENTER_EXT_ARG`, Linux 5.11) where available: exact, no extra
//! SQE, no CQE to reap, nothing left in the kernel after the wait. Older
//! kernels get an armed `IORING_OP_TIMEOUT` request instead (`deadline`).
//!
//! Some CQEs end a kernel wait without being news for the executor: the
//! acks of `ASYNC_CANCEL`/`TIMEOUT_REMOVE` (posted only on failure where
//! the kernel has `CQE_SKIP_SUCCESS`), a removed timeout. (A cancelled
//! op's completion is news: its hook may wake a task, e.g. a read waiting
//! at its socket's stash gate for that orphan, and a same-thread wake
//! does not interrupt the driver.) When a blocking enter returned with
//! nothing but those and the deadline has not passed, `wait` enters again
//! (at most `NOISE_RETRIES` times), so it returns on an op completion, a
//! wake or a due deadline.
//!
//! # Faults
//!
//! - `ETIME` and `EINTR` from an enter are not errors: the turn just ends
//!   early (a blocking `wait` reaps and enters again).
//! - `EBUSY` and `EAGAIN` (the kernel wants the CQ drained first, or has
//!   no memory for new requests right now) are retried after reaping
//!   while reaping makes progress. A blocking `wait` in which neither the
//!   enter nor the reap moved anything returns the error, and the executor
//!   backs off before it waits again.
//! - A full SQ is submitted on the spot. Should the kernel take nothing,
//!   its completions are collected and the push retried, then with a short
//!   backoff once nothing moves at all, for up to [`PUSH_STALL_LIMIT`]; only
//!   then does the op fail, with the kernel's error (never `WouldBlock`),
//!   and so do later pushes into the full SQ, without the wait, until the
//!   kernel takes a submission again.
//! - A full CQ loses no completion. Every kernel the ops run on (5.6+) has
//!   `IORING_FEAT_NODROP` (`setup` refuses a ring without it): the kernel
//!   keeps the excess on its overflow list and raises
//!   `IORING_SQ_CQ_OVERFLOW`, and `reap` then enters with `GETEVENTS` to
//!   move it into the emptied CQ, again until the list is empty (at most
//!   [`OVERFLOW_FLUSHES`] times per reap; the next turn goes on). The
//!   ring's overflow counter only counts completions the kernel had to
//!   drop (no memory even for the overflow list); the tests assert it
//!   stays 0.
//! - Hard errors (`ENOMEM`, a dropped completion's `EBADR`, anything
//!   unexpected) are returned from `wait`, never panicked on; the timers
//!   still fire and the completions already posted are still processed.
//! - A waker (or a cancelled op's hook) that panics while a batch of CQEs
//!   is processed loses nothing: the panic is caught, the rest of the
//!   batch, the wake re-arm, the released buffer pools and the timers are
//!   finished, and the first panic is resumed when `wait` or
//!   `process_completions` returns. A panic caught where no such call is
//!   on the stack (a reap inside `submit`'s push) waits for the next one.
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
mod multishot;
mod op;
mod path_op;
mod send_zc;
mod setup;

#[cfg(test)]
mod tests;

use std::io;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, EnterFlags, IoUring};

use super::deferred_panic::DeferredPanic;
use super::op_registry::{CancelAction, OpRegistry, OpSlot};
use super::{Driver, DriverConfig, DriverStats, KeepAlive, OpKey, TimerWheel, WakeHandle};
use crate::io::buf::pool;
use crate::io::op::OpOutput;
use crate::sys::RawFd;

use super::eventfd::EventFdWaker;
use buf_table::{BufTable, TABLE_SLOTS};
use deadline::Deadlines;
pub(crate) use multishot::PbufReleases;
use multishot::{MultishotSet, PbufRings};
pub(crate) use op::UringOp;
pub(crate) use path_op::PathOpSet;
pub(crate) use setup::SetupLevel;

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

/// Overflow flushes (enters that move the kernel's overflow list into the
/// CQ) one `reap` makes at most; the next turn continues.
const OVERFLOW_FLUSHES: usize = 256;

/// How long `push` keeps retrying a full SQ that the kernel refuses to
/// take while no completion arrives either, before it fails the op.
const PUSH_STALL_LIMIT: Duration = Duration::from_millis(500);

/// The longest single sleep of `push`'s backoff.
const PUSH_BACKOFF_MAX: Duration = Duration::from_millis(50);

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
    /// The first panic caught while processing completions, resumed at the
    /// end of the current (or next) `wait` / `process_completions`.
    panic: DeferredPanic,
    /// Set when a push gave up on a full SQ the kernel kept refusing;
    /// cleared once the SQ has room again.
    push_stalled: bool,
    /// Submissions the kernel refused (see `after_refusal`).
    refusals: u32,
    completions: u64,
    wait_calls: u64,
    in_flight: usize,
    /// The path opcodes this kernel has (probed once at setup).
    path_ops: PathOpSet,
    /// The multishot ops this kernel has (probed once at setup).
    multishot: MultishotSet,
    /// Provided-buffer rings (group ids, released rings).
    pbuf: PbufRings,
    /// Sends allowed to go zero-copy go out as `SEND_ZC` from this length
    /// up; `None`: never (see `send_zc`).
    zero_copy_min: Option<u32>,
    /// `SEND_ZC`s submitted.
    zero_copy_sends: u64,
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
        let path_ops = PathOpSet::probe(&ring);
        let multishot = MultishotSet::probe(&ring);
        let send_zc = send_zc::probe(&ring);
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
            waker: EventFdWaker::new(false)?,
            wake_buf: ManuallyDrop::new(Box::new(0)),
            wake_armed: false,
            wake_rearm: false,
            deadlines: Deadlines::default(),
            ext_arg,
            ack_flags,
            signals: 0,
            buf_table,
            closing: false,
            panic: DeferredPanic::default(),
            push_stalled: false,
            refusals: 0,
            completions: 0,
            wait_calls: 0,
            in_flight: 0,
            path_ops,
            multishot,
            pbuf: PbufRings::default(),
            zero_copy_min: send_zc::min_len(config.zero_copy_min, send_zc),
            zero_copy_sends: 0,
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

    /// Whether the path op `kind` runs as an io_uring opcode here (the
    /// probe at setup found it).
    pub(crate) fn supports_path_op(&self, kind: crate::io::op::PathOpKind) -> bool {
        self.path_ops.contains(kind)
    }

    /// Forgets every path opcode, as if the probe had found none (tests of
    /// the blocking-pool fallback).
    #[cfg(test)]
    pub(crate) fn forget_path_ops(&mut self) {
        self.path_ops = PathOpSet::default();
    }

    /// Whether the sparse fixed-buffer table is available.
    #[cfg(test)]
    pub(crate) fn has_fixed_buffers(&self) -> bool {
        self.buf_table.is_some()
    }

    /// Queues `entry`, submitting the SQ to the kernel when it is full.
    ///
    /// Should the kernel take nothing from a full SQ (`EBUSY`, `EAGAIN`),
    /// the completions it has are collected and the push retried, at once
    /// while that makes progress, else after a short sleep, for up to
    /// [`PUSH_STALL_LIMIT`] without progress; then the kernel's error is
    /// returned (see the module docs).
    ///
    /// # Safety
    ///
    /// Every pointer in `entry` must stay valid (and the memory it points
    /// at unmoved) until the entry's CQE has been processed.
    #[inline]
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        // SAFETY: the caller guarantees the entry's memory outlives the op.
        if unsafe { self.ring.submission().push(entry) }.is_ok() {
            // Room in the SQ: the kernel took submissions since any stall.
            self.push_stalled = false;
            return Ok(());
        }
        // SAFETY: the same entry, under the same guarantee from our caller.
        unsafe { self.push_full(entry) }
    }

    /// [`push`](Self::push) when the SQ is full: submits, collects
    /// completions and backs off as described there. Kept out of line so
    /// the common push (room in the SQ) has no loop state to set up.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    #[cold]
    #[inline(never)]
    unsafe fn push_full(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        let mut stalled = Duration::ZERO;
        let mut backoff = Duration::from_millis(1);
        loop {
            // SAFETY: the caller guarantees the entry's memory outlives the
            // op.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                // Room in the SQ: the kernel took submissions since any
                // stall.
                self.push_stalled = false;
                return Ok(());
            }
            let refused = match self.ring.submit() {
                Ok(n) if n > 0 => continue,
                Ok(_) => io::Error::other("veloq: io_uring took no submission from a full SQ"),
                Err(e) if is_interruption(&e) || is_retryable(&e) => e,
                Err(e) => return Err(e),
            };
            // The kernel wants its completions collected first (the CQ
            // and its overflow list drained), or memory that completing
            // requests gives back.
            self.after_refusal();
            if self.reap() > 0 {
                stalled = Duration::ZERO;
                backoff = Duration::from_millis(1);
                continue;
            }
            // Once a push gave up, the next ones do not wait again while
            // the SQ stays full.
            if self.push_stalled || stalled >= PUSH_STALL_LIMIT {
                self.push_stalled = true;
                return Err(stall_error(refused));
            }
            std::thread::sleep(backoff);
            stalled += backoff;
            backoff = (backoff * 2).min(PUSH_BACKOFF_MAX);
        }
    }

    /// Submits everything queued and, with `GETEVENTS`, runs deferred
    /// completion work, moves the CQ overflow list into the CQ and waits
    /// for `min_complete` completions. `ETIME` and `EINTR` are not errors;
    /// `EBUSY` and `EAGAIN` are (see [`is_retryable`]): the submission was
    /// refused and the wait did not happen.
    fn enter(&mut self, min_complete: u32) -> io::Result<()> {
        let to_submit = self.ring.submission().len() as u32;
        self.enter_with(to_submit, min_complete)
    }

    /// Completion work alone: posts deferred completions and moves the
    /// overflow list into the CQ, submitting nothing (so that a refused
    /// submission cannot skip it) and without waiting.
    pub(super) fn get_events(&mut self) -> io::Result<()> {
        self.enter_with(0, 0)
    }

    /// After the kernel refused a submission (`EBUSY`, `EAGAIN`): runs the
    /// completion work the refusal skipped, so that the reap that follows
    /// finds what is done. After every other refusal only: a fault that
    /// recurs every other syscall (as injected ones do) must not meet
    /// every retried submission.
    fn after_refusal(&mut self) {
        self.refusals = self.refusals.wrapping_add(1);
        if self.refusals % 2 == 1 {
            let _ = self.get_events();
        }
    }

    fn enter_with(&mut self, to_submit: u32, min_complete: u32) -> io::Result<()> {
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
            Err(e) if is_interruption(&e) => Ok(()),
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
            Err(e) if is_interruption(&e) => Ok(()),
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

    /// Processes every CQE in the ring, and what a full CQ left on the
    /// kernel's overflow list; returns how many.
    fn reap(&mut self) -> usize {
        // Cancelled ops' keep-alives are dropped in here.
        let call = pool::driver_call();
        let mut total = 0;
        let mut flushes = 0;
        loop {
            let mut buf = [const { MaybeUninit::<cqueue::Entry>::uninit() }; CQE_BATCH];
            let batch = self.ring.completion().fill(&mut buf);
            if batch.is_empty() {
                // Completions that did not fit wait on the overflow list
                // until an enter moves them into the (now empty) CQ.
                if flushes < OVERFLOW_FLUSHES && self.ring.submission().cq_overflow() {
                    flushes += 1;
                    if self.get_events().is_ok() && !self.ring.completion().is_empty() {
                        continue;
                    }
                }
                break;
            }
            total += batch.len();
            self.process_batch(batch);
        }
        if self.wake_rearm && !self.closing {
            self.wake_rearm = false;
            // Should the SQ refuse it now, the next `wait` re-arms.
            let _ = self.arm_wake();
        }
        self.release_deferred_pools(call);
        self.release_pbuf_rings();
        total
    }

    /// Handles every CQE of `batch`. A panic (a waker's, a hook's) is
    /// caught and kept for `DeferredPanic::resume`, and the
    /// batch goes on with the next CQE: the CQEs are copies already taken
    /// off the ring, so one left unhandled would be lost for good.
    fn process_batch(&mut self, batch: &[cqueue::Entry]) {
        let mut next = 0;
        while next < batch.len() {
            // One catch per batch on the common path; after a panic, a new
            // one for the rest.
            let res = panic::catch_unwind(AssertUnwindSafe(|| {
                while let Some(cqe) = batch.get(next) {
                    next += 1;
                    self.on_cqe(cqe.user_data(), cqe.result(), cqe.flags());
                }
            }));
            if let Err(payload) = res {
                self.panic.keep(payload);
            }
        }
    }

    /// Whether the kernel keeps CQEs that overflow the CQ
    /// (`IORING_FEAT_NODROP`; `setup` refuses a ring without it).
    #[cfg(test)]
    pub(crate) fn has_nodrop(&self) -> bool {
        self.ring.params().is_feature_nodrop()
    }

    /// Completions the kernel dropped because neither the CQ nor its
    /// overflow list could take them (the ring's overflow counter).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn dropped_completions(&mut self) -> u32 {
        self.ring.completion().overflow()
    }

    /// Unregisters and frees the buffer pools that died during `call`
    /// (their last owner was a keep-alive dropped by this driver).
    fn release_deferred_pools(&mut self, call: pool::DriverCall) {
        // Almost every call has none: skip the handle clone then.
        if pool::any_deferred() {
            let me: WakeHandle = self.waker.clone();
            pool::release_deferred(&me, |first, count| self.unregister_buffers(first, count));
        }
        drop(call);
    }

    /// Handles one completion.
    fn on_cqe(&mut self, user_data: u64, res: i32, flags: u32) {
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
        // A `SEND_ZC`'s result that a notification follows only goes into
        // its op (see `send_zc`).
        let res = if send_zc::may_split(flags) {
            match self.send_zc_cqe(key, res, flags) {
                Some(res) => res,
                None => return,
            }
        } else {
            res
        };
        // A multishot op's CQE that leaves it armed goes to its sink only
        // (see `multishot`); its final CQE completes the slot below.
        if io_uring::cqueue::more(flags) {
            if self.on_more(key, res, flags) {
                self.signals += 1;
            } else {
                self.registry.note_stale();
            }
            return;
        }
        // A stale key (the slot was reused) or a slot without an op is
        // ignored: the closure does not run.
        let in_flight = &mut self.in_flight;
        let signals = &mut self.signals;
        self.registry.complete_with(key, |op, _cancelled| {
            *in_flight -= 1;
            // A cancelled op's completion is news too: its hook, or a
            // multishot op's sink freed with the slot, may wake a task (a
            // read waiting at its socket's stash gate for this orphan).
            *signals += 1;
            if let Some(sink) = op.sink() {
                sink.deliver(multishot::event(res, flags));
            }
            // A cancelled op's output goes to its hook, which owns what
            // the op produced (bytes, a created descriptor).
            op.output(res)
        });
    }

    /// Queues an `ASYNC_CANCEL` of the request tagged `target`.
    /// [`Driver::submit`] with the op built in its registry slot by
    /// `fill` (given the slot's empty `op`), so it is never copied on the
    /// way in.
    #[inline]
    pub(super) fn submit_in_place(
        &mut self,
        key: OpKey,
        fill: impl FnOnce(&mut Option<UringOp>),
    ) -> io::Result<()> {
        let Some(slot) = self.registry.get_mut(key) else {
            return Err(io::Error::other("veloq: submit with a stale op key"));
        };
        let prepared = Self::prepare_in_slot(
            slot,
            key,
            fill,
            self.zero_copy_min,
            &mut self.zero_copy_sends,
        );
        self.push_prepared(key, prepared)
    }

    /// [`Driver::submit_polled`] with the op built in place (as
    /// [`submit_in_place`](Self::submit_in_place)) in a slot that holds
    /// `waker` from the start: one slot lookup for reserve, submit and the
    /// first poll. That poll is always pending: the op's CQE cannot have
    /// been processed before its SQE was queued, and should it complete
    /// early the slot's waker is already there to be woken. On error
    /// nothing is in flight and the slot is free.
    #[inline]
    pub(super) fn submit_new(
        &mut self,
        fill: impl FnOnce(&mut Option<UringOp>),
        waker: &Waker,
    ) -> io::Result<OpKey> {
        let (key, slot) = self.registry.reserve_waiting(waker);
        let prepared = Self::prepare_in_slot(
            slot,
            key,
            fill,
            self.zero_copy_min,
            &mut self.zero_copy_sends,
        );
        self.push_prepared(key, prepared)?;
        Ok(key)
    }

    /// Builds the op in `slot` with `fill` and makes its SQE. On error
    /// the slot holds no op and the caller frees it.
    #[inline]
    fn prepare_in_slot(
        slot: &mut OpSlot<UringOp>,
        key: OpKey,
        fill: impl FnOnce(&mut Option<UringOp>),
        zero_copy_min: Option<u32>,
        zero_copy_sends: &mut u64,
    ) -> io::Result<squeue::Entry> {
        // The op is built in its slot first; the SQE points into it there.
        fill(&mut slot.op);
        let op = match &mut slot.op {
            Some(
                op @ UringOp::Send {
                    zero_copy: true, ..
                },
            ) => {
                if Self::choose_send_zc(op, zero_copy_min) {
                    *zero_copy_sends += 1;
                }
                op
            }
            Some(UringOp::Invalid(_)) => {
                let Some(UringOp::Invalid(e)) = slot.op.take() else {
                    unreachable!("matched just above")
                };
                return Err(e);
            }
            Some(op) => op,
            None => unreachable!("`fill` stores the op"),
        };
        op.prepare(key.to_user_data())
    }

    /// Queues the SQE `prepared` for the op in slot `key`, or frees the
    /// slot if preparing or queueing it failed.
    #[inline]
    fn push_prepared(&mut self, key: OpKey, prepared: io::Result<squeue::Entry>) -> io::Result<()> {
        let entry = match prepared {
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

/// Enter results that end a turn early but are not failures: the wait's
/// own timeout, a signal.
fn is_interruption(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR))
}

/// Enter results where the kernel refused the submission for now: the CQ
/// must be drained first (`EBUSY`), or it has no memory for requests
/// (`EAGAIN`). Worth retrying once completions have been collected.
fn is_retryable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN))
}

/// The error of a push that stayed refused for [`PUSH_STALL_LIMIT`]: the
/// kernel's, but never `WouldBlock` (an `EAGAIN` here means the kernel is
/// out of memory for requests).
fn stall_error(refused: io::Error) -> io::Error {
    if refused.raw_os_error() == Some(libc::EAGAIN) {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            "veloq: io_uring refused new requests (EAGAIN) for too long",
        )
    } else {
        refused
    }
}

impl Driver for UringDriver {
    type Op = UringOp;

    fn new(config: &DriverConfig) -> io::Result<Self> {
        UringDriver::with_level(config, SetupLevel::DeferTaskrun)
    }

    #[inline]
    fn reserve(&mut self) -> io::Result<OpKey> {
        Ok(self.registry.reserve())
    }

    fn submit(&mut self, key: OpKey, op: UringOp) -> io::Result<()> {
        self.submit_in_place(key, |slot| *slot = Some(op))
    }

    #[inline]
    fn poll_op(&mut self, key: OpKey, cx: &mut Context<'_>) -> Poll<OpOutput> {
        self.registry.poll(key, cx)
    }

    fn cancel(&mut self, key: OpKey, keep_alive: Option<KeepAlive>) {
        // An op that already completed runs its hook (and drops its
        // keep-alive) in here.
        let call = pool::driver_call();
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
            // What the kernel refused stays queued for the next `wait`.
            Err(e) if is_interruption(&e) || is_retryable(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // Without the wake read a blocking wait could miss a wake: should
        // arming fail, this turn does not block.
        let mut res = if self.wake_armed {
            Ok(())
        } else {
            self.arm_wake()
        };
        let (due, deadline) = self.timers.turn_deadline(timeout);
        let block = res.is_ok() && !due && self.ring.completion().is_empty();
        if !block {
            if self.needs_enter() {
                match self.enter(0) {
                    Ok(()) => {}
                    // Refused for now: the completions are collected below
                    // and the submission is retried next turn.
                    Err(e) if is_retryable(&e) => self.after_refusal(),
                    Err(e) => res = res.and(Err(e)),
                }
            }
            self.reap();
        } else {
            // Bounded: an early return is allowed, a spin is not.
            for _ in 0..NOISE_RETRIES {
                self.wait_calls += 1;
                let signals = self.signals;
                let entered = match deadline {
                    Some(at) => self.enter_until(at),
                    None => self.enter(1),
                };
                let retryable = matches!(&entered, Err(e) if is_retryable(e));
                if retryable {
                    // A refused submission skips the wait too.
                    self.after_refusal();
                }
                let reaped = self.reap();
                if let Err(e) = entered {
                    if !retryable || reaped == 0 {
                        // Nothing moved: the executor backs off (or hears
                        // of the fault) rather than spin here.
                        res = Err(e);
                        break;
                    }
                }
                let due = deadline.is_some_and(|d| Instant::now() >= d);
                if self.signals != signals || due {
                    break;
                }
            }
        }
        if !self.timers.is_idle() {
            self.panic.expire_timers(&mut self.timers, Instant::now());
        }
        self.panic.resume();
        res
    }

    fn process_completions(&mut self) -> usize {
        let pending = {
            let sq = self.ring.submission();
            sq.taskrun() || sq.cq_overflow()
        };
        if pending && self.enter(0).is_err() {
            // A refused submission skips the completion work; run it
            // alone. A failure leaves the work for the next `wait`.
            self.after_refusal();
        }
        let n = self.reap();
        self.panic.resume();
        n
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
            stale_completions: self.registry.stale_completions(),
            fault_completions: self.registry.fault_completions(),
            zero_copy_sends: self.zero_copy_sends,
        }
    }
}
