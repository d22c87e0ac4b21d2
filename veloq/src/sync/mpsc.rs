//! A multi-producer, single-consumer channel, bounded ([`channel`]) or
//! unbounded ([`unbounded`]).
//!
//! Values arrive in the order each sender sent them. A bounded channel
//! holds at most `capacity` values; [`Sender::send`] waits for room.
//!
//! # Closing
//!
//! - When every [`Sender`] is dropped, [`Receiver::recv`] returns the
//!   values still queued, then `None`.
//! - When the [`Receiver`] is dropped (or [`closed`](Receiver::close)),
//!   sends fail with the value handed back; values still queued are dropped
//!   with the receiver (a closed one still receives them, then `None`).
//!
//! # State
//!
//! One `Mutex<State>`: the queue, the receiver's waker, the wakers of
//! senders waiting for room, the sender count and whether the receiver is
//! gone. Every waiting sender is woken when room appears (a sender that was
//! woken and then dropped cannot swallow the wake); each retries and the
//! losers wait again.
//!
//! Unit tests in `mpsc/tests.rs`; loom models of the cross-thread races
//! (`scripts/test-loom.sh`) in `mpsc/loom_tests.rs`.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use crate::loom::lock;
use crate::loom::sync::{Arc, Mutex};

/// Creates a channel that holds at most `capacity` values.
///
/// # Panics
///
/// If `capacity` is 0.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "veloq::sync::mpsc::channel: capacity must be at least 1"
    );
    new(capacity)
}

/// Creates a channel without a bound: [`Sender::send`] never waits.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new(usize::MAX)
}

fn new<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        capacity,
        state: Mutex::new(State {
            queue: VecDeque::new(),
            rx_waker: None,
            tx_wakers: Vec::new(),
            senders: 1,
            rx_closed: false,
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

struct Chan<T> {
    capacity: usize,
    state: Mutex<State<T>>,
}

struct State<T> {
    queue: VecDeque<T>,
    /// The receiver waiting for a value or for the last sender to go.
    rx_waker: Option<Waker>,
    /// Senders waiting for room (bounded channels).
    tx_wakers: Vec<Waker>,
    senders: usize,
    /// The receiver is dropped or closed: sends fail.
    rx_closed: bool,
}

/// The sending half; clone it for more senders.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// The receiver is gone; the value is handed back.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why [`Sender::try_send`] did not send; the value is handed back.
#[derive(PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is full.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// Why [`Receiver::try_recv`] returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No value is queued, and a sender remains.
    Empty,
    /// No value is queued, and none can arrive: every sender is gone, or
    /// the receiver was [closed](Receiver::close).
    Disconnected,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for room in a bounded channel.
    ///
    /// # Errors
    ///
    /// The receiver is gone (or closed); the value comes back.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = Some(value);
        poll_fn(|cx| {
            let v = value.take().expect("polled after completion");
            match self.push(v, Some(cx)) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(TrySendError::Closed(v)) => Poll::Ready(Err(SendError(v))),
                Err(TrySendError::Full(v)) => {
                    value = Some(v);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Sends `value` if there is room now (always, unbounded), without
    /// waiting; usable outside any runtime.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the value.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.push(value, None)
    }

    /// Whether the receiver is gone (or closed).
    pub fn is_closed(&self) -> bool {
        lock(&self.chan.state).rx_closed
    }

    /// Queues `value` if possible; when full and `cx` is given, registers
    /// its waker for room.
    fn push(&self, value: T, cx: Option<&mut Context<'_>>) -> Result<(), TrySendError<T>> {
        let waker = {
            let mut st = lock(&self.chan.state);
            if st.rx_closed {
                return Err(TrySendError::Closed(value));
            }
            if st.queue.len() >= self.chan.capacity {
                if let Some(cx) = cx {
                    if !st.tx_wakers.iter().any(|w| w.will_wake(cx.waker())) {
                        st.tx_wakers.push(cx.waker().clone());
                    }
                }
                return Err(TrySendError::Full(value));
            }
            st.queue.push_back(value);
            st.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        lock(&self.chan.state).senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut st = lock(&self.chan.state);
            st.senders -= 1;
            if st.senders == 0 {
                st.rx_waker.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// Receives the next value; `None` once the queue is empty and every
    /// sender is gone (or the receiver was [closed](Receiver::close)).
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`recv`](Receiver::recv) as a poll function.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.pop(Some(cx)) {
            Ok(v) => Poll::Ready(Some(v)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// Receives a value if one is queued, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], or [`TryRecvError::Disconnected`] once
    /// the queue is empty and every sender is gone (or the receiver was
    /// closed).
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.pop(None)
    }

    /// Closes the channel for senders: their sends fail from now on; values
    /// already queued can still be received, then `recv` returns `None`.
    pub fn close(&mut self) {
        let wakers = {
            let mut st = lock(&self.chan.state);
            st.rx_closed = true;
            std::mem::take(&mut st.tx_wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Values queued now.
    pub fn len(&self) -> usize {
        lock(&self.chan.state).queue.len()
    }

    /// Whether no value is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop(&mut self, cx: Option<&mut Context<'_>>) -> Result<T, TryRecvError> {
        let (value, wakers) = {
            let mut st = lock(&self.chan.state);
            match st.queue.pop_front() {
                Some(v) => (v, std::mem::take(&mut st.tx_wakers)),
                // Closed: no value can arrive any more, even while senders
                // live (waiting would never end).
                None if st.senders == 0 || st.rx_closed => return Err(TryRecvError::Disconnected),
                None => {
                    if let Some(cx) = cx {
                        match &mut st.rx_waker {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            w => *w = Some(cx.waker().clone()),
                        }
                    }
                    return Err(TryRecvError::Empty);
                }
            }
        };
        wakers.into_iter().for_each(Waker::wake);
        Ok(value)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (queued, wakers) = {
            let mut st = lock(&self.chan.state);
            st.rx_closed = true;
            (
                std::mem::take(&mut st.queue),
                std::mem::take(&mut st.tx_wakers),
            )
        };
        // User code (the values' and wakers' drops) runs outside the lock.
        drop(queued);
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .finish()
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed channel")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Closed(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => f.write_str("receiving on a closed channel"),
        }
    }
}

impl std::error::Error for TryRecvError {}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests;
