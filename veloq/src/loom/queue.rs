//! A stand-in for crossbeam's `SegQueue` under loom: the same methods on a
//! loom `Mutex<VecDeque>` plus a length that empty pops read without the
//! lock.
//!
//! crossbeam's queue is built on std atomics, which loom cannot see or
//! interleave. Its contract is a linearizable FIFO in which a `pop` that
//! returns a value synchronises with that value's `push`, and a `pop` or
//! `is_empty` that finds the queue empty only *reads* (it publishes
//! nothing). The stand-in keeps both halves: values move under the lock
//! (so a popped value's push happens before the pop), and an empty queue is
//! seen through an `Acquire` load of `len`, which orders nothing for later
//! pushes. (A plain mutex queue would be stronger than crossbeam's: an
//! empty pop's unlock would synchronise with the next push, hiding any
//! missing fence between a push and a flag, like the one `inject` needs.)

use std::collections::VecDeque;

use super::lock;
use super::sync::atomic::{AtomicUsize, Ordering};
use super::sync::Mutex;

/// A FIFO shared between threads; see the module docs.
pub(crate) struct SegQueue<T> {
    items: Mutex<VecDeque<T>>,
    /// Values in `items`; raised after the push, under the lock.
    len: AtomicUsize,
}

impl<T> SegQueue<T> {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        SegQueue {
            items: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
        }
    }

    /// Appends `value`.
    pub(crate) fn push(&self, value: T) {
        let mut items = lock(&self.items);
        items.push_back(value);
        self.len.fetch_add(1, Ordering::Release);
    }

    /// Takes the oldest value, if any.
    pub(crate) fn pop(&self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        let mut items = lock(&self.items);
        let value = items.pop_front();
        if value.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        value
    }

    /// Whether the queue was empty when looked at.
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }
}
