//! The epoll driver: completion semantics on a readiness kernel interface,
//! for Linux systems where io_uring is refused (container seccomp
//! profiles, `kernel.io_uring_disabled`, gVisor, old kernels).
//!
//! It implements the same [`Driver`] contract as the io_uring driver, so
//! everything above it runs unchanged:
//!
//! - **Sockets** are made non-blocking and registered edge-triggered once
//!   (`register_handle`). A socket op tries its syscall at once; on
//!   `EAGAIN` it waits in the descriptor's FIFO (`fd_table`) until an
//!   event says the socket may be ready, and is tried again then. Its
//!   completion is stored in the [`OpRegistry`] exactly as a CQE's would
//!   be.
//! - **Files** (reads, writes, open, close, fsync, sync_file_range,
//!   fallocate) run on a bounded thread pool (`blocking`) whose results
//!   come back through the driver's eventfd and are completed on the
//!   driver thread.
//! - **Timers** come from the shared [`TimerWheel`]; `wait` bounds
//!   `epoll_wait` by its next deadline.
//! - **Wakes** from other threads write an eventfd in the epoll set, with
//!   coalescing (`wake`).
//!
//! # Op states
//!
//! ```text
//! socket op:  submit ─► try ─┬─ done ────────────────► completed
//!                 │          └─ EAGAIN ─► waiting ─event─► try ...
//!                 └─ budget spent ─► deferred ─(next wait)─► try ...
//! file op:    submit ─► in pool ─result─► completed
//! ```
//!
//! # Cancellation
//!
//! Identical in effect to io_uring's: dropping an op's future cancels it,
//! and its buffer (the keep-alive) is freed once nothing can touch it any
//! more. A waiting or deferred socket op has no kernel call in flight, so
//! it is removed from its queue and freed at once. A file op on the pool
//! cannot be stopped: its slot and keep-alive are freed when the pool
//! reports it, and a descriptor it opened meanwhile is closed.
//!
//! # Fairness
//!
//! A socket op that completes at once makes its future ready on the first
//! poll. So that a task whose ops always complete at once cannot starve
//! the others, at most [`EAGER_BUDGET`] ops complete inside `submit`
//! between two waits; later ones are deferred to the next `wait` (as
//! every op is on io_uring), which runs them without blocking.
//!
//! # Panics in wakers
//!
//! Completing an op wakes its task, and completing a cancelled one runs its
//! hook: foreign code that may panic. Each such call is caught on its own
//! (`settle`), so a panic never leaves the rest of an event batch, of a
//! socket's waiters or of the pool's results unprocessed (a waiter left
//! behind on an edge-triggered socket would wait for an edge that never
//! comes). The first panic is kept and resumed once `wait` (timers
//! included) or `process_completions` has finished its work.
//!
//! # Drop
//!
//! Dropping the driver frees every socket op at once and waits for the
//! pool to report every file op it was handed; should that take longer
//! than [`DRAIN_LIMIT`], the memory those ops may still write is leaked
//! rather than freed.

mod blocking;
mod drain;
mod fd_table;
mod op;
mod poller;
mod socket;

#[cfg(test)]
mod tests;

use std::io;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::deferred_panic::DeferredPanic;
use super::op_registry::{CancelAction, OpRegistry};
use super::{Driver, DriverConfig, DriverStats, KeepAlive, OpKey, TimerWheel, WakeHandle};
use crate::io::buf::pool;
use crate::io::op::{self as desc, OpOutput};
use crate::sys::RawFd;

use super::eventfd::EventFdWaker;
use blocking::{BlockingPool, Done, Job};
use fd_table::{Dir, FdTable};
use op::Attempt;
pub(crate) use op::EpollOp;
use poller::{Event, Poller, WAKE_TOKEN};

/// Socket ops that may complete inside `submit` between two waits (see
/// the module docs). Well above what a busy server's turn submits (the
/// executor polls at most 128 tasks per turn, an echo task completes about
/// two ops per poll): a deferred op costs an extra wake and poll, so the
/// budget should only ever stop a task that loops on ready ops.
pub(crate) const EAGER_BUDGET: usize = 512;

/// How long a dropping driver waits for the pool to report the file ops it
/// was handed before it leaks their memory instead.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// `epoll_wait` calls one blocking `wait` makes at most while only
/// events that complete nothing arrive.
const NOISE_RETRIES: usize = 8;

/// Events that make a descriptor's read side worth trying.
const READ_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// Events after which no further edge need come (see `FdState::closed`).
const CLOSE_EVENTS: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// Events that make a descriptor's write side worth trying.
const WRITE_EVENTS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// The epoll driver; see the module docs.
///
/// `!Send`: the registry holds `!Send` keep-alives; the driver stays on
/// the thread that created it.
pub(crate) struct EpollDriver {
    poller: Poller,
    fds: FdTable,
    registry: OpRegistry<EpollOp>,
    timers: TimerWheel,
    waker: Arc<EventFdWaker>,
    pool: BlockingPool,
    /// Results taken from the pool (kept for its capacity).
    done: Vec<Done>,
    /// The first panic caught while completing ops, resumed at the end of
    /// the current (or next) `wait` / `process_completions`.
    panic: DeferredPanic,
    /// Socket ops whose first try waits for the next `wait`.
    deferred: Vec<OpKey>,
    /// Ops that may still complete inside `submit` before the next wait.
    eager_left: usize,
    /// File ops handed to the pool and not yet reported.
    in_pool: usize,
    /// Completions that are news for the executor (op results, wakes).
    signals: u64,
    completions: u64,
    wait_calls: u64,
    in_flight: usize,
}

impl EpollDriver {
    /// Tries a socket op that sits in its slot under `key` for the first
    /// time, or queues it (see the module docs for the budget).
    fn first_try(&mut self, key: OpKey, fd: RawFd, dir: Dir) {
        if self.eager_left == 0 {
            self.deferred.push(key);
            return;
        }
        let side = self.fds.get(fd).side(dir);
        if !side.can_try() {
            side.park(key);
            return;
        }
        let Some(EpollOp::Net(op)) = self.registry.get_mut(key).and_then(|s| s.op.as_mut()) else {
            return;
        };
        match op.attempt() {
            Attempt::Done(out) => {
                let drained = matches!(out.res, Ok(n) if op.drains(n));
                self.eager_left -= 1;
                self.complete(key, out);
                let st = self.fds.get(fd);
                if drained && st.stream && !st.closed {
                    st.side(dir).set_ready(false);
                }
            }
            Attempt::WouldBlock => {
                let side = self.fds.get(fd).side(dir);
                side.set_ready(false);
                side.park(key);
            }
        }
    }

    /// Stores a socket op's output and wakes its task.
    fn complete(&mut self, key: OpKey, out: OpOutput) {
        self.in_flight -= 1;
        self.completions += 1;
        self.signals += 1;
        self.settle(key, out);
    }

    /// Hands `out` to the registry, which wakes the op's task (or, for a
    /// cancelled op, runs its hook). A panic in there is caught and kept
    /// for `DeferredPanic::resume`: the caller goes on with
    /// the rest of its batch.
    fn settle(&mut self, key: OpKey, out: OpOutput) {
        let registry = &mut self.registry;
        self.panic.catch(|| registry.complete(key, out));
    }

    /// `fd`'s `dir` side may be ready: retries its waiters in order until
    /// one would block again.
    fn run_side(&mut self, fd: RawFd, dir: Dir) {
        self.fds.get(fd).side(dir).set_ready(true);
        while let Some(key) = self.fds.get(fd).side(dir).front() {
            let (attempt, drained) = match self.registry.get_mut(key).and_then(|s| s.op.as_mut()) {
                Some(EpollOp::Net(op)) => {
                    let attempt = op.attempt();
                    let drained = matches!(&attempt, Attempt::Done(out)
                        if matches!(out.res, Ok(n) if op.drains(n)));
                    (attempt, drained)
                }
                // Never queued (cancelled ops leave their queue); be safe.
                _ => {
                    self.fds.get(fd).side(dir).pop_front();
                    continue;
                }
            };
            match attempt {
                Attempt::Done(out) => {
                    self.fds.get(fd).side(dir).pop_front();
                    self.complete(key, out);
                    let st = self.fds.get(fd);
                    if drained && st.stream && !st.closed {
                        // Later waiters wait for the next edge.
                        st.side(dir).set_ready(false);
                        break;
                    }
                }
                Attempt::WouldBlock => {
                    self.fds.get(fd).side(dir).set_ready(false);
                    break;
                }
            }
        }
    }

    /// Handles one epoll event.
    fn on_event(&mut self, ev: Event) {
        if ev.token == WAKE_TOKEN {
            self.waker.drain();
            self.completions += 1;
            self.signals += 1;
            return;
        }
        let fd = ev.token as RawFd;
        let Some(st) = self.fds.existing(fd).filter(|s| s.registered) else {
            return;
        };
        if ev.events & CLOSE_EVENTS != 0 {
            st.closed = true;
        }
        if ev.events & READ_EVENTS != 0 {
            self.run_side(fd, Dir::Read);
        }
        if ev.events & WRITE_EVENTS != 0 {
            self.run_side(fd, Dir::Write);
        }
    }

    /// Runs the deferred first tries.
    fn run_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let mut keys = mem::take(&mut self.deferred);
        for &key in &keys {
            // A cancelled op's key is stale by now (its slot was freed).
            let Some(EpollOp::Net(op)) = self.registry.get_mut(key).and_then(|s| s.op.as_ref())
            else {
                continue;
            };
            let (fd, dir) = (op.fd(), op.dir());
            self.first_try(key, fd, dir);
        }
        keys.clear();
        if self.deferred.is_empty() {
            // Keep the capacity for next time.
            self.deferred = keys;
        }
    }

    /// Completes the file ops the pool has finished.
    fn reap_pool(&mut self) {
        if self.in_pool == 0 {
            return;
        }
        let mut done = mem::take(&mut self.done);
        self.pool.take_done(&mut done);
        for d in done.drain(..) {
            self.in_pool -= 1;
            self.in_flight -= 1;
            self.completions += 1;
            if !self.registry.is_cancelled(d.key) {
                self.signals += 1;
            }
            // A cancelled op's output (an opened descriptor included) goes
            // to its hook.
            let out = OpOutput {
                res: d.res,
                addr: None,
            };
            self.settle(d.key, out);
        }
        self.done = done;
    }

    /// One `epoll_wait` (bounded by `timeout`) and everything it and the
    /// pool reported. Should the wait fail, the pool's results are still
    /// taken.
    fn poll_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let res = self.poller.wait(timeout);
        let n = res.as_ref().map_or(0, |&n| n);
        for i in 0..n {
            let ev = self.poller.event(i);
            self.on_event(ev);
        }
        self.reap_pool();
        res.map(|_| ())
    }

    /// Unregisters and frees buffer pools that died during `call` (pools
    /// of other drivers: this one registers none).
    fn release_deferred_pools(&mut self, call: pool::DriverCall) {
        // Almost every call has none: skip the handle clone then.
        if pool::any_deferred() {
            let me: WakeHandle = self.waker.clone();
            pool::release_deferred(&me, |_, _| {});
        }
        drop(call);
    }

    /// Cancels a socket op that is waiting or deferred: no kernel call is
    /// in flight, so its slot and keep-alive are freed at once.
    fn cancel_net(&mut self, key: OpKey, fd: RawFd, dir: Dir, keep_alive: Option<KeepAlive>) {
        if self.registry.cancel(key, keep_alive) != CancelAction::CancelInKernel {
            return;
        }
        // Deferred ops are not in a queue; their key just goes stale.
        self.fds.get(fd).side(dir).remove(key);
        self.in_flight -= 1;
        // A cancelled slot is freed by its completion.
        self.registry.complete(
            key,
            OpOutput {
                res: Err(desc::cancelled()),
                addr: None,
            },
        );
    }

    /// Socket ops waiting on `fd`'s `dir` side (tests).
    #[cfg(test)]
    pub(crate) fn waiting(&mut self, fd: RawFd, dir: Dir) -> usize {
        self.fds.get(fd).side(dir).waiting()
    }

    /// Threads of the blocking pool (tests).
    #[cfg(test)]
    pub(crate) fn pool_threads(&self) -> usize {
        self.pool.threads()
    }
}

impl Driver for EpollDriver {
    type Op = EpollOp;

    fn new(config: &DriverConfig) -> io::Result<Self> {
        let poller = Poller::new(config.entries.clamp(64, 4096) as usize)?;
        let waker = EventFdWaker::new(true)?;
        poller.add_waker(waker.fd())?;
        let pool = BlockingPool::new(
            config.max_blocking_threads,
            config.blocking_keep_alive,
            waker.clone(),
        );
        Ok(EpollDriver {
            poller,
            fds: FdTable::default(),
            registry: OpRegistry::new(),
            timers: TimerWheel::new(Instant::now()),
            waker,
            pool,
            done: Vec::new(),
            panic: DeferredPanic::default(),
            deferred: Vec::new(),
            eager_left: EAGER_BUDGET,
            in_pool: 0,
            signals: 0,
            completions: 0,
            wait_calls: 0,
            in_flight: 0,
        })
    }

    #[inline]
    fn reserve(&mut self) -> io::Result<OpKey> {
        Ok(self.registry.reserve())
    }

    fn submit(&mut self, key: OpKey, op: EpollOp) -> io::Result<()> {
        if self.registry.get_mut(key).is_none() {
            return Err(io::Error::other("veloq: submit with a stale op key"));
        }
        match op {
            EpollOp::Net(net) => {
                let (fd, dir) = (net.fd(), net.dir());
                // --- process ops (procwait) ---
                if net.is_poll() {
                    // A pidfd or pipe: (re)joins the set each time, as
                    // its number may name a new descriptor by now.
                    if let Err(e) = self.prepare_pollable(fd) {
                        self.registry.release(key);
                        return Err(e);
                    }
                }
                if !self.fds.get(fd).registered {
                    // Not seen through `register_handle` (or not a
                    // socket): make it non-blocking before any try.
                    let ok = self.prepare_fd(fd).map(|()| self.fds.get(fd).registered);
                    let err = match ok {
                        Ok(true) => None,
                        Ok(false) => Some(io::Error::from_raw_os_error(libc::ENOTSOCK)),
                        Err(e) => Some(e),
                    };
                    if let Some(e) = err {
                        self.registry.release(key);
                        return Err(e);
                    }
                }
                let slot = self.registry.get_mut(key).expect("checked above");
                slot.op = Some(EpollOp::Net(net));
                self.in_flight += 1;
                self.first_try(key, fd, dir);
            }
            EpollOp::Blocking(b) => {
                let slot = self.registry.get_mut(key).expect("checked above");
                slot.op = Some(EpollOp::InPool);
                self.in_flight += 1;
                self.in_pool += 1;
                self.pool.execute(Job::new(key, b));
            }
            EpollOp::InPool => {
                self.registry.release(key);
                return Err(io::Error::other(
                    "veloq: submit of an op already in the pool",
                ));
            }
            EpollOp::Unsupported(what) => {
                self.registry.release(key);
                return Err(io::Error::new(io::ErrorKind::Unsupported, what));
            }
        }
        Ok(())
    }

    #[inline]
    fn poll_op(&mut self, key: OpKey, cx: &mut Context<'_>) -> Poll<OpOutput> {
        self.registry.poll(key, cx)
    }

    fn cancel(&mut self, key: OpKey, keep_alive: Option<KeepAlive>) {
        // Keep-alives are dropped in here.
        let call = pool::driver_call();
        let net = match self.registry.get_mut(key).map(|s| s.op.as_ref()) {
            None => None,
            Some(None) => {
                // Reserved, never submitted.
                self.registry.release(key);
                None
            }
            Some(Some(EpollOp::Net(op))) => Some((op.fd(), op.dir())),
            Some(Some(_)) => {
                // On the pool: freed when the pool reports it.
                self.registry.cancel(key, keep_alive);
                self.release_deferred_pools(call);
                return;
            }
        };
        if let Some((fd, dir)) = net {
            self.cancel_net(key, fd, dir, keep_alive);
        }
        self.release_deferred_pools(call);
    }

    fn flush(&mut self) -> io::Result<()> {
        self.run_deferred();
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // Cancelled ops' keep-alives may be dropped in here.
        let call = pool::driver_call();
        self.eager_left = EAGER_BUDGET;
        let signals = self.signals;
        self.run_deferred();
        let (due, deadline) = self.timers.turn_deadline(timeout);
        let busy = self.signals != signals || !self.deferred.is_empty();
        let res = if busy || due {
            self.poll_once(Some(Duration::ZERO))
        } else {
            // Bounded: an early return is allowed, a spin is not.
            let mut res = Ok(());
            for _ in 0..NOISE_RETRIES {
                self.wait_calls += 1;
                let signals = self.signals;
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                res = self.poll_once(left);
                let due = deadline.is_some_and(|d| Instant::now() >= d);
                if res.is_err() || self.signals != signals || due {
                    break;
                }
            }
            res
        };
        if !self.timers.is_idle() {
            self.panic.expire_timers(&mut self.timers, Instant::now());
        }
        self.release_deferred_pools(call);
        self.panic.resume();
        res
    }

    fn process_completions(&mut self) -> usize {
        let call = pool::driver_call();
        let before = self.completions;
        self.run_deferred();
        // A failed wait leaves the events for the next call.
        let _ = self.poll_once(Some(Duration::ZERO));
        self.release_deferred_pools(call);
        self.panic.resume();
        (self.completions - before) as usize
    }

    fn wake_handle(&self) -> WakeHandle {
        self.waker.clone()
    }

    fn register_handle(&mut self, fd: RawFd) -> io::Result<()> {
        self.prepare_fd(fd)
    }

    unsafe fn register_buffers(&mut self, _bufs: &[(*mut u8, usize)]) -> io::Result<Option<u16>> {
        // Plain syscalls have no registered buffers.
        Ok(None)
    }

    fn unregister_buffers(&mut self, _first: u16, _count: u16) {}

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
            zero_copy_sends: 0,
        }
    }
}
