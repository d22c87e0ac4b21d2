//! Loom models of the one-value channel: the send racing the receiver's
//! poll, its drop, and the sender's drop, each on its own thread.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};

use super::{channel, RecvError};
use crate::loom::model_util::{block_on, Signal};
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::Arc;
use crate::loom::thread;

/// A value whose drops are counted.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn loom_send_racing_the_receivers_poll() {
    loom::model(|| {
        let (tx, rx) = channel();
        let sender = thread::spawn(move || tx.send(5u8).unwrap());
        assert_eq!(block_on(rx), Ok(5));
        sender.join().unwrap();
    });
}

#[test]
fn loom_sender_dropped_on_another_thread_wakes_the_receiver() {
    loom::model(|| {
        let (tx, rx) = channel::<u8>();
        let sender = thread::spawn(move || drop(tx));
        assert_eq!(block_on(rx), Err(RecvError));
        sender.join().unwrap();
    });
}

#[test]
fn loom_close_racing_send_drops_the_value_once() {
    // The receiver is dropped on another thread while the value is sent:
    // the send fails and hands the value back, or succeeds and the
    // receiver's drop drops it. Never both, never neither.
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = channel();
        let receiver = thread::spawn(move || drop(rx));
        let sent = tx.send(Counted(drops.clone())).is_ok();
        receiver.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1, "sent: {sent}");
    });
}

#[test]
fn loom_receiver_dropped_on_another_thread_wakes_closed() {
    // The receiver is polled here (its waker stored), then moved to and
    // dropped on another thread, while the sender waits in `closed()`.
    loom::model(|| {
        let (mut tx, mut rx) = channel::<u8>();
        let waker = Waker::from(Signal::new());
        let polled = Pin::new(&mut rx).poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending());
        drop(waker);
        let receiver = thread::spawn(move || drop(rx));
        block_on(tx.closed());
        assert!(tx.is_closed());
        assert_eq!(tx.send(1), Err(1));
        receiver.join().unwrap();
    });
}
