//! STUB (owned by the runtime/timer helper): hierarchical timer wheel.

use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Identifies one timer in the wheel (index + generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey(pub(crate) u64);

/// Hierarchical timer wheel: O(1) insert and cancel.
pub(crate) struct TimerWheel {}

impl TimerWheel {
    /// A wheel whose time starts at `start`.
    pub(crate) fn new(_start: Instant) -> Self {
        todo!()
    }
    /// Adds a timer that wakes `waker` at `deadline`.
    pub(crate) fn insert(&mut self, _deadline: Instant, _waker: &Waker) -> TimerKey {
        todo!()
    }
    /// `Ready` once the timer fired (the entry is then freed); otherwise
    /// updates the waker.
    pub(crate) fn poll(&mut self, _key: TimerKey, _cx: &mut Context<'_>) -> Poll<()> {
        todo!()
    }
    /// Cancels a timer; a no-op for a fired or stale key.
    pub(crate) fn remove(&mut self, _key: TimerKey) {
        todo!()
    }
    /// The earliest deadline of any live timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        todo!()
    }
    /// Fires every timer due at `now`, waking its waker; returns how many.
    pub(crate) fn expire(&mut self, _now: Instant) -> usize {
        todo!()
    }
    /// Live timers.
    pub(crate) fn len(&self) -> usize {
        todo!()
    }
}
