//! [`OpSlot`]: one heap allocation that holds `Compat`'s successive op
//! futures of one kind (reads, writes, flushes), so starting an op does
//! not allocate.
//!
//! The owned-buffer traits' futures cannot be named, so `Compat` keeps
//! them behind a trait object. Boxing each future costs an allocation and
//! a free per op (per response, for hyper); instead a [`Slot`] built once
//! holds the function that makes the op's future and the future in flight,
//! and [`OpSlot::start`] builds the next future in place of the finished
//! one.
//!
//! # Invariants
//!
//! - The slot is only used pinned (`Pin<Box<dyn OpSlot>>`), and `fut` is
//!   structurally pinned: the future is never moved while it exists; it
//!   is replaced or dropped only in place (`Pin::set`), so a future that
//!   relies on its address (an op's state) stays valid until dropped.
//! - `make` is never pinned and only called through `&`.
//! - Dropping the slot drops the future in flight, which cancels its op
//!   exactly as dropping a boxed future did.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// A reusable home for op futures that take `I` and complete with `O`.
pub(super) trait OpSlot<I, O> {
    /// Starts an op with `input`. Only when none is running (the caller
    /// checks [`running`](Self::running)): a running op would be dropped.
    fn start(self: Pin<&mut Self>, input: I);

    /// Whether an op is in flight.
    fn running(&self) -> bool;

    /// Polls the op in flight; when it completes the slot is empty again.
    ///
    /// # Panics
    ///
    /// When no op is running (a `Compat` bug).
    fn poll_op(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O>;
}

/// An [`OpSlot`] whose futures `make` builds.
pub(super) struct Slot<M, F> {
    make: M,
    fut: Option<F>,
}

impl<M, F> Slot<M, F> {
    /// An empty slot whose ops are `make(input)`.
    pub(super) fn new(make: M) -> Slot<M, F> {
        Slot { make, fut: None }
    }
}

impl<I, M, F> OpSlot<I, F::Output> for Slot<M, F>
where
    M: Fn(I) -> F,
    F: Future,
{
    fn start(self: Pin<&mut Self>, input: I) {
        // SAFETY: nothing is moved out of `this`: `make` is only called
        // through `&`, and `fut` is re-pinned at once (see the module's
        // invariants).
        let this = unsafe { self.get_unchecked_mut() };
        let fut = (this.make)(input);
        // SAFETY: `fut` is structurally pinned (the slot is only used
        // pinned); `Pin::set` drops the old value in place.
        unsafe { Pin::new_unchecked(&mut this.fut) }.set(Some(fut));
    }

    fn running(&self) -> bool {
        self.fut.is_some()
    }

    fn poll_op(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned (the module's invariants);
        // it is only polled or replaced in place through this `Pin`.
        let mut fut = unsafe { self.map_unchecked_mut(|s| &mut s.fut) };
        let running = fut.as_mut().as_pin_mut().expect("no op is running");
        let out = ready!(running.poll(cx));
        fut.set(None);
        Poll::Ready(out)
    }
}

/// A boxed [`OpSlot`], as `Compat` stores them.
pub(super) type BoxSlot<I, O> = Pin<Box<dyn OpSlot<I, O>>>;

/// A new empty slot whose ops are `make(input)`, boxed.
pub(super) fn boxed<I, M, F>(make: M) -> BoxSlot<I, F::Output>
where
    M: Fn(I) -> F + 'static,
    F: Future + 'static,
    I: 'static,
{
    Box::pin(Slot::new(make))
}
