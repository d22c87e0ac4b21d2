//! `OpRegistry`: in-flight ops by key, with generations.
//!
//! Every op gets a slot in a [`StableSlab`] (so the kernel's pointers into
//! it stay valid) and a key that the driver hands the kernel as the op's
//! `user_data`.
//!
//! # `user_data` layout
//!
//! ```text
//!  63  62                 32 31                   0
//! +---+---------------------+----------------------+
//! | 0 | generation (31 bit) | slot index (32 bit)  |
//! +---+---------------------+----------------------+
//! ```
//!
//! Bit 63 set marks a driver-internal token (wake, timeout), never an op.
//! A slot's generation (kept by the slab next to the slot) is bumped each
//! time the slot is freed, so a stale or duplicated completion carries an
//! old generation and is ignored: it can never complete whichever op
//! reuses the slot. Such a completion is counted
//! ([`OpRegistry::stale_completions`]): every slot is freed only by its
//! op's final completion (or, for an op that never reached the kernel, by
//! the driver before submission), so a completion for a freed slot means
//! the op's memory (its buffer, its keep-alive) was released while the
//! kernel still held it. The torture tests assert the count stays 0.
//!
//! Completions whose error says the kernel could not reach the op's memory
//! (`EFAULT`; `WSAEFAULT` / `ERROR_NOACCESS` on Windows) are counted too
//! ([`OpRegistry::fault_completions`]): safe code cannot hand the kernel a
//! bad address, so with test buffers that become inaccessible when dropped
//! (never reused) such a completion means a buffer was released while its
//! op still ran.
//!
//! Slots are built in place by `reserve` and dropped in place when freed;
//! a completed op's output is taken out on its own. The ~300-byte slot
//! never moves on the hot path (only [`OpRegistry::release`], which hands
//! the whole slot back, moves it).
//!
//! # Slot states
//!
//! ```text
//! reserve ─► in flight ──complete──► completed ──poll──► freed
//!                │                      │
//!              cancel                 cancel ──────────► freed, hook(output)
//!                ▼
//!            cancelled ──complete──► freed, hook(output)
//! ```
//!
//! A cancelled op's future has handed the registry a [`CancelHook`]: what
//! the kernel may still touch (the buffer, the descriptor) plus what to do
//! with the op's real output once the kernel lets go. The hook runs after
//! the slot is freed, on the driver's thread, inside the driver call: it
//! must not call back into the driver. Read-like hooks hand what the op
//! already took (bytes, a datagram, a connection) to the next read on the
//! same socket; the others just drop the keep-alive.

use std::task::{Context, Poll, Waker};

use super::stable_slab::{StableSlab, GENERATION_MASK};
use crate::io::op::OpOutput;

/// Tag bit of driver-internal `user_data` tokens.
pub(crate) const INTERNAL_TAG: u64 = 1 << 63;

/// Identifies one op: a slot index and the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct OpKey {
    index: u32,
    generation: u32,
}

impl OpKey {
    /// The key as the kernel's `user_data`.
    pub(crate) fn to_user_data(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }

    /// The key packed in `user_data`, or `None` for an internal token.
    pub(crate) fn from_user_data(user_data: u64) -> Option<OpKey> {
        if user_data & INTERNAL_TAG != 0 {
            return None;
        }
        Some(OpKey {
            index: user_data as u32,
            generation: (user_data >> 32) as u32,
        })
    }
}

/// What a dropped op future leaves with the driver: the memory the kernel
/// may still touch, and what to do with the op's output when it comes.
pub(crate) trait CancelHook {
    /// The cancelled op completed with `out` (or had completed before it
    /// was cancelled). Runs on the driver's thread, inside a driver call,
    /// after the op's slot was freed. Dropping `self` releases the
    /// keep-alive.
    fn completed(self: Box<Self>, out: OpOutput);
}

/// A plain keep-alive: dropped, with the output, when the cancelled op
/// completes.
pub(crate) struct KeepOnly<T>(pub(crate) T);

impl<T> CancelHook for KeepOnly<T> {
    fn completed(self: Box<Self>, _out: OpOutput) {}
}

/// The keep-alive type the registry stores for a cancelled op.
pub(crate) type KeepAlive = Box<dyn CancelHook>;

/// One in-flight op and what the driver knows about it.
pub(crate) struct OpSlot<T> {
    /// The platform op, filled by `submit`. Its address is stable while the
    /// slot lives.
    pub(crate) op: Option<T>,
    waker: Option<Waker>,
    output: Option<OpOutput>,
    cancelled: bool,
    /// Memory the kernel may still touch after the future was dropped,
    /// and what to do with the output.
    keep_alive: Option<KeepAlive>,
}

/// What the driver must do after `cancel`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CancelAction {
    /// The op had already completed; its slot is freed.
    Done,
    /// The op is in flight: ask the kernel to cancel it. The slot is freed
    /// when the completion arrives.
    CancelInKernel,
    /// The key was stale; nothing to do.
    Unknown,
}

/// In-flight ops by key; see the module docs.
pub(crate) struct OpRegistry<T> {
    slots: StableSlab<OpSlot<T>>,
    /// Completions that found no live op (see the module docs).
    stale: u64,
    /// Completions that failed on inaccessible memory (see the module docs).
    faults: u64,
}

impl<T> OpRegistry<T> {
    /// Creates an empty registry.
    pub(crate) fn new() -> Self {
        OpRegistry {
            slots: StableSlab::new(),
            stale: 0,
            faults: 0,
        }
    }

    /// Whether no op is in the registry.
    #[cfg_attr(windows, allow(dead_code))] // the IOCP driver tracks this itself
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }

    /// Takes an empty slot.
    #[inline]
    pub(crate) fn reserve(&mut self) -> OpKey {
        let (index, generation) = self.slots.insert_with(|| OpSlot {
            op: None,
            waker: None,
            output: None,
            cancelled: false,
            keep_alive: None,
        });
        debug_assert!(index <= u32::MAX as usize && generation <= GENERATION_MASK);
        OpKey {
            index: index as u32,
            generation,
        }
    }

    /// Takes an empty slot for an op whose future waits on it from the
    /// start: the slot keeps a clone of `waker` (as a first
    /// [`poll`](Self::poll) would). Returns the key and the slot, to be
    /// filled without a second lookup.
    #[cfg_attr(windows, allow(dead_code))] // the io_uring driver's
    #[inline]
    pub(crate) fn reserve_waiting(&mut self, waker: &Waker) -> (OpKey, &mut OpSlot<T>) {
        let (index, generation, slot) = self.slots.insert_with_mut(|| OpSlot {
            op: None,
            waker: Some(waker.clone()),
            output: None,
            cancelled: false,
            keep_alive: None,
        });
        debug_assert!(index <= u32::MAX as usize && generation <= GENERATION_MASK);
        let key = OpKey {
            index: index as u32,
            generation,
        };
        (key, slot)
    }

    /// The live slot for `key`.
    #[inline]
    pub(crate) fn get_mut(&mut self, key: OpKey) -> Option<&mut OpSlot<T>> {
        self.slots.get_mut(key.index as usize, key.generation)
    }

    /// Frees `key`'s slot, dropping the op, its waker and keep-alive in
    /// place. Returns `false` for a stale key.
    #[inline]
    pub(crate) fn free(&mut self, key: OpKey) -> bool {
        self.slots.free(key.index as usize, key.generation)
    }

    /// Frees `key`'s slot (a failed submission, or the end of its life),
    /// handing it back. [`free`](Self::free) drops it in place instead.
    pub(crate) fn release(&mut self, key: OpKey) -> Option<OpSlot<T>> {
        self.slots.remove(key.index as usize, key.generation)
    }

    /// Records the kernel's completion. A cancelled op's slot is freed (its
    /// op and keep-alive dropped); otherwise the output is stored and the
    /// waiting task woken. Returns `false` for a stale key.
    pub(crate) fn complete(&mut self, key: OpKey, output: OpOutput) -> bool {
        // Borrows only `self.slots`, so the counters stay reachable.
        let Some(slot) = self.slots.get_mut(key.index as usize, key.generation) else {
            self.stale += 1;
            return false;
        };
        self.faults += is_fault(&output) as u64;
        if slot.cancelled {
            self.finish_cancelled(key, output);
            return true;
        }
        slot.output = Some(output);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
        true
    }

    /// Frees the cancelled slot `key`, then hands `output` to its hook.
    fn finish_cancelled(&mut self, key: OpKey, output: OpOutput) {
        let hook = self.get_mut(key).and_then(|s| s.keep_alive.take());
        // The slot (and the op in it) goes first: the hook may own memory
        // the op pointed into.
        self.free(key);
        match hook {
            Some(hook) => hook.completed(output),
            None => drop(output),
        }
    }

    /// As [`complete`](Self::complete) with one lookup: the output is made
    /// by `output` from the slot's op and whether the op was cancelled.
    /// Returns `false` (and calls nothing) for a stale key or a slot that
    /// holds no op yet.
    #[cfg_attr(windows, allow(dead_code))] // the io_uring driver's
    #[inline]
    pub(crate) fn complete_with(
        &mut self,
        key: OpKey,
        output: impl FnOnce(&T, bool) -> OpOutput,
    ) -> bool {
        let Some(slot) = self.slots.get_mut(key.index as usize, key.generation) else {
            self.stale += 1;
            return false;
        };
        let Some(op) = slot.op.as_ref() else {
            self.stale += 1;
            return false;
        };
        let output = output(op, slot.cancelled);
        // `slot` borrows only `self.slots`.
        self.faults += is_fault(&output) as u64;
        if slot.cancelled {
            self.finish_cancelled(key, output);
            return true;
        }
        slot.output = Some(output);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
        true
    }

    /// The op's output once completed (freeing the slot); until then keeps
    /// `cx`'s waker.
    #[inline]
    pub(crate) fn poll(&mut self, key: OpKey, cx: &mut Context<'_>) -> Poll<OpOutput> {
        // One slab lookup: the output is taken and the slot freed (its op,
        // waker and keep-alive dropped in place) in the same visit.
        let polled = self
            .slots
            .take_with(key.index as usize, key.generation, |slot| {
                if let Some(output) = slot.output.take() {
                    return Some(output);
                }
                match &slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                None
            });
        match polled {
            Some(Some(output)) => Poll::Ready(output),
            Some(None) => Poll::Pending,
            None => Poll::Ready(OpOutput {
                res: Err(std::io::Error::other("veloq: op polled with a stale key")),
                addr: None,
            }),
        }
    }

    /// The op's future was dropped; see [`CancelAction`].
    /// An op that had already completed hands its output to `keep_alive`
    /// at once.
    pub(crate) fn cancel(&mut self, key: OpKey, keep_alive: Option<KeepAlive>) -> CancelAction {
        let Some(slot) = self.get_mut(key) else {
            return CancelAction::Unknown;
        };
        if let Some(output) = slot.output.take() {
            self.free(key);
            match keep_alive {
                Some(hook) => hook.completed(output),
                None => drop(output),
            }
            return CancelAction::Done;
        }
        slot.cancelled = true;
        slot.waker = None;
        slot.keep_alive = keep_alive;
        CancelAction::CancelInKernel
    }

    /// Records a completion the driver found no live op for, where the
    /// driver looks the op up itself (IOCP) instead of calling
    /// [`complete`](Self::complete).
    pub(crate) fn note_stale(&mut self) {
        self.stale += 1;
    }

    /// Completions so far that arrived for a key whose slot was already
    /// freed or held no op: each is a kernel completion for memory the
    /// driver had already let go (see the module docs). 0 in a sound run.
    pub(crate) fn stale_completions(&self) -> u64 {
        self.stale
    }

    /// Completions so far that failed because the kernel could not reach
    /// the op's memory (see the module docs). 0 in a sound run.
    pub(crate) fn fault_completions(&self) -> u64 {
        self.faults
    }

    /// Whether the op behind `key` was cancelled by its future's drop.
    #[cfg_attr(windows, allow(dead_code))] // the IOCP driver tracks this itself
    pub(crate) fn is_cancelled(&mut self, key: OpKey) -> bool {
        self.get_mut(key).is_some_and(|s| s.cancelled)
    }

    /// Keys of every op in the registry (for cancel-and-drain on drop).
    pub(crate) fn keys(&self) -> Vec<OpKey> {
        self.slots
            .occupied()
            .map(|(index, generation)| OpKey {
                index: index as u32,
                generation,
            })
            .collect()
    }
}

/// Whether `out` failed because the kernel could not reach the op's
/// memory.
#[cfg(unix)]
#[inline]
fn is_fault(out: &OpOutput) -> bool {
    matches!(&out.res, Err(e) if e.raw_os_error() == Some(libc::EFAULT))
}

/// Whether `out` failed because the kernel could not reach the op's
/// memory (`ERROR_NOACCESS`, `WSAEFAULT`).
#[cfg(windows)]
#[inline]
fn is_fault(out: &OpOutput) -> bool {
    const ERROR_NOACCESS: i32 = 998;
    const WSAEFAULT: i32 = 10014;
    matches!(&out.res, Err(e) if matches!(e.raw_os_error(), Some(ERROR_NOACCESS | WSAEFAULT)))
}

impl<T> Default for OpRegistry<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[path = "op_registry_proptests.rs"]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::io::driver::test_util::CountWake;

    fn out(n: usize) -> OpOutput {
        OpOutput {
            res: Ok(n),
            addr: None,
        }
    }

    #[test]
    fn user_data_round_trips() {
        let mut reg: OpRegistry<()> = OpRegistry::new();
        let key = reg.reserve();
        let ud = key.to_user_data();
        assert_eq!(ud & INTERNAL_TAG, 0);
        assert_eq!(OpKey::from_user_data(ud), Some(key));
        assert_eq!(OpKey::from_user_data(INTERNAL_TAG | 7), None);
    }

    #[test]
    fn stale_completion_never_reaches_a_reused_slot() {
        let mut reg: OpRegistry<()> = OpRegistry::new();
        let old = reg.reserve();
        reg.release(old);
        let new = reg.reserve();
        assert_eq!(old.index, new.index, "slot should be reused");
        assert_ne!(old, new);
        assert!(!reg.complete(old, out(1)), "stale key must be ignored");
        assert_eq!(
            reg.stale_completions(),
            1,
            "the stale completion is counted"
        );
        assert!(reg.get_mut(new).unwrap().output.is_none());
        assert!(reg.complete(new, out(2)));
        assert!(!reg.complete(new, out(3)) || reg.get_mut(new).is_some());
    }

    #[test]
    fn duplicate_completion_after_poll_is_ignored() {
        let mut reg: OpRegistry<()> = OpRegistry::new();
        let key = reg.reserve();
        let wake = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(wake.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(reg.poll(key, &mut cx).is_pending());
        assert!(reg.complete(key, out(5)));
        assert_eq!(wake.0.load(Ordering::SeqCst), 1);
        match reg.poll(key, &mut cx) {
            Poll::Ready(o) => assert_eq!(o.res.unwrap(), 5),
            Poll::Pending => panic!("completed op must be ready"),
        }
        assert!(reg.is_empty());
        assert_eq!(reg.stale_completions(), 0);
        assert!(!reg.complete(key, out(6)));
        assert_eq!(reg.stale_completions(), 1, "the duplicate is counted");
    }

    #[test]
    fn cancel_keeps_buffer_until_completion() {
        let mut reg: OpRegistry<()> = OpRegistry::new();
        let key = reg.reserve();
        let buf = std::rc::Rc::new(vec![0u8; 8]);
        let action = reg.cancel(key, Some(Box::new(KeepOnly(buf.clone()))));
        assert_eq!(action, CancelAction::CancelInKernel);
        assert_eq!(std::rc::Rc::strong_count(&buf), 2, "buffer kept alive");
        assert!(reg.complete(key, out(0)));
        assert_eq!(std::rc::Rc::strong_count(&buf), 1, "freed exactly once");
        assert!(reg.is_empty());
        assert_eq!(
            reg.stale_completions(),
            0,
            "a cancelled op's completion is not stale"
        );
    }

    #[test]
    fn cancel_after_completion_frees_at_once() {
        let mut reg: OpRegistry<()> = OpRegistry::new();
        let key = reg.reserve();
        reg.complete(key, out(1));
        assert_eq!(reg.cancel(key, None), CancelAction::Done);
        assert!(reg.is_empty());
        assert_eq!(reg.cancel(key, None), CancelAction::Unknown);
    }

    #[test]
    fn complete_with_makes_the_output_from_the_live_op() {
        let mut reg: OpRegistry<u32> = OpRegistry::new();
        let key = reg.reserve();
        assert!(
            !reg.complete_with(key, |_, _| panic!("no op yet")),
            "a slot without an op is not completed"
        );
        reg.get_mut(key).unwrap().op = Some(7);
        let wake = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(wake.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(reg.poll(key, &mut cx).is_pending());
        assert!(reg.complete_with(key, |op, cancelled| {
            assert!(!cancelled);
            out(*op as usize)
        }));
        assert_eq!(wake.0.load(Ordering::SeqCst), 1);
        match reg.poll(key, &mut cx) {
            Poll::Ready(o) => assert_eq!(o.res.unwrap(), 7),
            Poll::Pending => panic!("completed op must be ready"),
        }
        assert!(reg.is_empty());
        assert!(!reg.complete_with(key, |_, _| panic!("stale key")));
    }

    #[test]
    fn complete_with_frees_a_cancelled_slot() {
        let mut reg: OpRegistry<u32> = OpRegistry::new();
        let key = reg.reserve();
        reg.get_mut(key).unwrap().op = Some(1);
        let buf = std::rc::Rc::new(());
        assert_eq!(
            reg.cancel(key, Some(Box::new(KeepOnly(buf.clone())))),
            CancelAction::CancelInKernel
        );
        assert!(reg.complete_with(key, |_, cancelled| {
            assert!(cancelled);
            out(0)
        }));
        assert_eq!(std::rc::Rc::strong_count(&buf), 1, "keep-alive dropped");
        assert!(reg.is_empty());
        assert!(reg.get_mut(key).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn completions_on_unreachable_memory_are_counted() {
        let mut reg: OpRegistry<u32> = OpRegistry::new();
        let fault = || OpOutput {
            res: Err(std::io::Error::from_raw_os_error(libc::EFAULT)),
            addr: None,
        };
        let a = reg.reserve();
        assert!(reg.complete(a, out(1)));
        let b = reg.reserve();
        assert!(reg.complete(b, fault()));
        let c = reg.reserve();
        reg.get_mut(c).unwrap().op = Some(0);
        assert!(reg.complete_with(c, |_, _| fault()));
        assert_eq!(reg.fault_completions(), 2);
        assert_eq!(reg.stale_completions(), 0);
    }

    #[test]
    fn generations_wrap_within_31_bits() {
        let mut reg: OpRegistry<()> = OpRegistry::new();
        let key = reg.reserve();
        reg.slots
            .set_generation(key.index as usize, GENERATION_MASK);
        let key = OpKey {
            index: key.index,
            generation: GENERATION_MASK,
        };
        assert!(reg.free(key));
        let next = reg.reserve();
        assert_eq!(next.generation, 0);
        assert_eq!(next.to_user_data() & INTERNAL_TAG, 0);
    }
}
