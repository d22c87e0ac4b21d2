//! Loom models of the multi-producer channel: senders on other threads
//! racing the receiver's wait, a bounded channel's wait for room, and the
//! receiver's drop racing a send.

use super::{channel, unbounded};
use crate::loom::model_util::block_on;
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
fn loom_two_senders_then_their_drops_reach_the_receiver() {
    loom::model(|| {
        let (tx, mut rx) = unbounded();
        let spawn = |tx: super::Sender<u8>, v: u8| {
            thread::spawn(move || {
                tx.try_send(v).unwrap();
                drop(tx);
            })
        };
        let (a, b) = (spawn(tx.clone(), 1), spawn(tx, 2));
        let mut got = Vec::new();
        while let Some(v) = block_on(rx.recv()) {
            got.push(v);
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        a.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn loom_bounded_sender_waits_for_room() {
    // Capacity 1: the second send waits until the receiver takes the
    // first; a lost wake of the sender (or the receiver) deadlocks.
    loom::model(|| {
        let (tx, mut rx) = channel(1);
        let sender = thread::spawn(move || {
            block_on(tx.send(1u8)).unwrap();
            block_on(tx.send(2u8)).unwrap();
        });
        assert_eq!(block_on(rx.recv()), Some(1));
        assert_eq!(block_on(rx.recv()), Some(2));
        assert_eq!(block_on(rx.recv()), None);
        sender.join().unwrap();
    });
}

#[test]
fn loom_receiver_dropped_on_another_thread_fails_a_waiting_send() {
    // The channel is full, so the send waits for room; the receiver is
    // dropped elsewhere instead. The send must wake and fail, and both
    // values are dropped exactly once.
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = channel(1);
        tx.try_send(Counted(drops.clone())).unwrap();
        let receiver = thread::spawn(move || drop(rx));
        let err = block_on(tx.send(Counted(drops.clone())));
        assert!(err.is_err(), "sent into a dropped receiver");
        drop(err);
        receiver.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn loom_close_racing_send_drops_each_value_once() {
    // `close` on the receiver's thread against a send on another: a value
    // that got in is still received; one that did not comes back.
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = unbounded();
        let sender = {
            let drops = drops.clone();
            thread::spawn(move || tx.try_send(Counted(drops)).is_ok())
        };
        rx.close();
        let received = rx.try_recv().ok();
        let sent = sender.join().unwrap();
        assert_eq!(received.is_some(), sent, "a sent value is received");
        drop(received);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}
