//! Unit tests of the multi-producer channel: order, capacity, closing, and
//! senders on other threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use super::{channel, unbounded, SendError, TryRecvError, TrySendError};
use crate::sync::test_util::{block_on, poll_once, CountWaker, Counted};

#[test]
fn values_arrive_in_send_order() {
    let (tx, mut rx) = unbounded();
    for i in 0..100 {
        tx.try_send(i).unwrap();
    }
    assert_eq!(rx.len(), 100);
    for i in 0..100 {
        assert_eq!(rx.try_recv(), Ok(i));
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert!(rx.is_empty());
}

#[test]
fn bounded_channel_is_full_at_capacity_and_hands_the_value_back() {
    let (tx, mut rx) = channel(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(rx.try_recv(), Ok(1));
    tx.try_send(3).unwrap();
    assert_eq!(rx.len(), 2);
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Ok(3));
}

#[test]
fn a_waiting_send_is_woken_by_a_receive_and_then_sends() {
    let (tx, mut rx) = channel(1);
    tx.try_send(1).unwrap();
    let (count, waker) = CountWaker::new();
    let mut send = Box::pin(tx.send(2));
    assert!(poll_once(&mut send, &waker).is_pending(), "full: must wait");
    assert!(poll_once(&mut send, &waker).is_pending());
    assert_eq!(count.count(), 0);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(count.count(), 1, "room appeared: the sender is woken once");
    assert!(poll_once(&mut send, &waker).is_ready());
    assert_eq!(rx.try_recv(), Ok(2));
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn zero_capacity_is_refused() {
    let _ = channel::<u8>(0);
}

#[test]
fn dropping_the_last_sender_ends_recv_after_the_queued_values() {
    let (tx, mut rx) = unbounded();
    let tx2 = tx.clone();
    tx.try_send(1).unwrap();
    tx2.try_send(2).unwrap();
    drop(tx);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "tx2 still lives");
    drop(tx2);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(block_on(rx.recv()), None);
}

#[test]
fn dropping_the_last_sender_wakes_a_waiting_receiver() {
    let (tx, mut rx) = unbounded::<u8>();
    let (count, waker) = CountWaker::new();
    let mut recv = Box::pin(rx.recv());
    assert!(poll_once(&mut recv, &waker).is_pending());
    let tx2 = tx.clone();
    drop(tx);
    assert_eq!(count.count(), 0, "a sender remains");
    drop(tx2);
    assert_eq!(count.count(), 1);
    assert!(matches!(
        poll_once(&mut recv, &waker),
        std::task::Poll::Ready(None)
    ));
}

#[test]
fn dropping_the_receiver_fails_sends_and_drops_queued_values() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel(4);
    tx.try_send(Counted(drops.clone())).unwrap();
    tx.try_send(Counted(drops.clone())).unwrap();
    assert!(!tx.is_closed());
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 2, "queued values dropped");
    assert!(tx.is_closed());
    match tx.try_send(Counted(drops.clone())) {
        Err(TrySendError::Closed(v)) => drop(v),
        other => panic!("expected Closed, got {:?}", other.map(|_| ())),
    }
    let SendError(v) = block_on(tx.send(Counted(drops.clone()))).unwrap_err();
    drop(v);
    assert_eq!(drops.load(Ordering::SeqCst), 4, "each value dropped once");
}

#[test]
fn dropping_the_receiver_wakes_senders_waiting_for_room() {
    let (tx, rx) = channel(1);
    tx.try_send(0).unwrap();
    let (count, waker) = CountWaker::new();
    let mut send = Box::pin(tx.send(1));
    assert!(poll_once(&mut send, &waker).is_pending());
    drop(rx);
    assert_eq!(count.count(), 1);
    assert!(matches!(
        poll_once(&mut send, &waker),
        std::task::Poll::Ready(Err(SendError(1)))
    ));
}

#[test]
fn close_fails_later_sends_keeps_queued_values_then_ends() {
    let (tx, mut rx) = channel(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    let (count, waker) = CountWaker::new();
    let mut send = Box::pin(tx.send(3));
    assert!(poll_once(&mut send, &waker).is_pending());
    rx.close();
    assert_eq!(count.count(), 1, "close wakes senders waiting for room");
    assert!(matches!(
        poll_once(&mut send, &waker),
        std::task::Poll::Ready(Err(SendError(3)))
    ));
    assert!(tx.is_closed());
    assert_eq!(tx.try_send(4), Err(TrySendError::Closed(4)));
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(block_on(rx.recv()), Some(2));
    // Nothing can arrive any more, though a sender lives: recv ends
    // instead of waiting forever.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(block_on(rx.recv()), None);
}

#[test]
fn senders_on_other_threads_keep_their_own_order_under_backpressure() {
    const SENDERS: usize = 4;
    const EACH: usize = 2_000;
    let (tx, mut rx) = channel(8);
    let threads: Vec<_> = (0..SENDERS)
        .map(|s| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    block_on(tx.send((s, i))).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut next = [0usize; SENDERS];
    let mut total = 0;
    while let Some((s, i)) = block_on(rx.recv()) {
        assert_eq!(i, next[s], "sender {s}'s values out of order");
        next[s] += 1;
        total += 1;
        assert!(rx.len() <= 8, "more than the capacity queued");
    }
    assert_eq!(total, SENDERS * EACH);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_receiver_on_another_thread_gets_everything() {
    let (tx, mut rx) = channel(1);
    let receiver = thread::spawn(move || {
        let mut got = Vec::new();
        while let Some(v) = block_on(rx.recv()) {
            got.push(v);
        }
        got
    });
    for i in 0..1_000 {
        block_on(tx.send(i)).unwrap();
    }
    drop(tx);
    assert_eq!(receiver.join().unwrap(), (0..1_000).collect::<Vec<_>>());
}
