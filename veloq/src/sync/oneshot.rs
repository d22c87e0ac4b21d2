//! A channel for one value, sent once: [`channel`] makes a [`Sender`] and
//! a [`Receiver`], which is a future of the value.
//!
//! # States
//!
//! ```text
//! value: None, sender alive    -- Sender::send --> value: Some, sender gone
//!                              -- Sender drop  --> value: None, sender gone  (Err(RecvError))
//! receiver alive               -- Receiver drop --> receiver gone (send fails, value handed back)
//! ```
//!
//! Both wakers (the receiver's, waiting for the value; the sender's,
//! waiting in [`Sender::closed`]) sit in the one `Mutex` with the value.
//!
//! Unit tests in `oneshot/tests.rs`; loom models of the cross-thread races
//! (`scripts/test-loom.sh`) in `oneshot/loom_tests.rs`.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::loom::lock;
use crate::loom::sync::{Arc, Mutex};

/// Creates a one-value channel.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Mutex::new(State {
        value: None,
        rx_waker: None,
        tx_waker: None,
        tx_gone: false,
        rx_gone: false,
    }));
    (
        Sender {
            inner: inner.clone(),
        },
        Receiver { inner },
    )
}

struct State<T> {
    value: Option<T>,
    rx_waker: Option<Waker>,
    tx_waker: Option<Waker>,
    /// The sender sent or was dropped.
    tx_gone: bool,
    /// The receiver was dropped.
    rx_gone: bool,
}

/// Sends the one value.
pub struct Sender<T> {
    inner: Arc<Mutex<State<T>>>,
}

/// Receives the one value: await it.
pub struct Receiver<T> {
    inner: Arc<Mutex<State<T>>>,
}

/// The sender was dropped without sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

/// Why [`Receiver::try_recv`] returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Not sent yet.
    Empty,
    /// The sender was dropped without sending (or the value was taken).
    Closed,
}

impl<T> Sender<T> {
    /// Sends `value`, waking the receiver.
    ///
    /// # Errors
    ///
    /// The receiver is gone; the value comes back.
    pub fn send(self, value: T) -> Result<(), T> {
        let waker = {
            let mut st = lock(&self.inner);
            if st.rx_gone {
                return Err(value);
            }
            st.value = Some(value);
            st.tx_gone = true;
            st.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        lock(&self.inner).rx_gone
    }

    /// Waits until the receiver is gone (to stop work nobody will collect).
    pub async fn closed(&mut self) {
        poll_fn(|cx| {
            let mut st = lock(&self.inner);
            if st.rx_gone {
                return Poll::Ready(());
            }
            match &mut st.tx_waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                w => *w = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut st = lock(&self.inner);
            if st.tx_gone {
                return;
            }
            st.tx_gone = true;
            st.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// Takes the value if it has been sent, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] before the send; [`TryRecvError::Closed`]
    /// if the sender was dropped without sending or the value was taken.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut st = lock(&self.inner);
        match st.value.take() {
            Some(v) => Ok(v),
            None if st.tx_gone => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = lock(&self.inner);
        if let Some(v) = st.value.take() {
            return Poll::Ready(Ok(v));
        }
        if st.tx_gone {
            return Poll::Ready(Err(RecvError));
        }
        match &mut st.rx_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (value, waker) = {
            let mut st = lock(&self.inner);
            st.rx_gone = true;
            (st.value.take(), st.tx_waker.take())
        };
        // User code (the value's and the waker's drops) runs outside the lock.
        drop(value);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot::Receiver")
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sender was dropped without sending")
    }
}

impl std::error::Error for RecvError {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no value sent yet"),
            TryRecvError::Closed => f.write_str("the sender is gone"),
        }
    }
}

impl std::error::Error for TryRecvError {}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests;
