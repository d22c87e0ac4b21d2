//! Helpers the loom models share: a wake-up that a model thread can block
//! on, standing in for a driver's `wait` (as an `Unpark`) and for a task's
//! waker (as a `Wake`).
//!
//! Blocking is a loom `Condvar` wait, so a wake that never comes is not a
//! hang: when every model thread is blocked, loom fails the model with a
//! deadlock, which is how the models detect a lost wake-up.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};

use super::lock;
use super::sync::{Condvar, Mutex};
use crate::io::driver::Unpark;

/// A counter of wake-ups that a thread can wait on.
#[derive(Default)]
pub(crate) struct Signal {
    /// Wake-ups not yet taken by [`wait`](Signal::wait), and all of them.
    counts: Mutex<(usize, usize)>,
    cv: Condvar,
}

impl Signal {
    /// A signal in a `std::sync::Arc` (as `WakeHandle` and `Waker` need).
    pub(crate) fn new() -> std::sync::Arc<Signal> {
        std::sync::Arc::new(Signal::default())
    }

    /// Records a wake-up and wakes a waiting thread.
    pub(crate) fn notify(&self) {
        let mut c = lock(&self.counts);
        c.0 += 1;
        c.1 += 1;
        drop(c);
        self.cv.notify_all();
    }

    /// Blocks until a wake-up is pending, then takes every pending one (a
    /// driver's `wait` returns once for any number of wakes).
    pub(crate) fn wait(&self) {
        let mut c = lock(&self.counts);
        while c.0 == 0 {
            c = self.cv.wait(c).unwrap_or_else(|e| e.into_inner());
        }
        c.0 = 0;
    }

    /// Takes every pending wake-up without blocking (a driver's
    /// `wait(Some(ZERO))` consumes its wakes too).
    pub(crate) fn take(&self) {
        lock(&self.counts).0 = 0;
    }

    /// Every wake-up so far.
    pub(crate) fn total(&self) -> usize {
        lock(&self.counts).1
    }
}

impl Unpark for Signal {
    fn unpark(&self) {
        self.notify();
    }
}

impl Wake for Signal {
    fn wake(self: std::sync::Arc<Self>) {
        self.notify();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.notify();
    }
}

/// Polls `fut` to completion on this model thread, waiting on a [`Signal`]
/// waker between polls: a lost wake is a loom deadlock.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let signal = Signal::new();
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        signal.wait();
    }
}
