//! Unit tests of the one-value channel: every order of send, receive and
//! drop, on one thread and across threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::thread;

use super::{channel, RecvError, TryRecvError};
use crate::sync::test_util::{block_on, poll_once, CountWaker, Counted};

#[test]
fn value_sent_before_the_await_is_received() {
    let (tx, rx) = channel();
    tx.send(3).unwrap();
    assert_eq!(block_on(rx), Ok(3));
}

#[test]
fn send_wakes_a_waiting_receiver_once() {
    let (tx, mut rx) = channel();
    let (count, waker) = CountWaker::new();
    assert!(poll_once(&mut rx, &waker).is_pending());
    assert!(poll_once(&mut rx, &waker).is_pending());
    tx.send("x").unwrap();
    assert_eq!(count.count(), 1);
    assert_eq!(poll_once(&mut rx, &waker), Poll::Ready(Ok("x")));
}

#[test]
fn try_recv_empty_then_value_then_closed() {
    let (tx, mut rx) = channel();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(1).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed), "taken already");
}

#[test]
fn sender_dropped_without_sending_fails_the_receiver_and_wakes_it() {
    let (tx, mut rx) = channel::<u8>();
    let (count, waker) = CountWaker::new();
    assert!(poll_once(&mut rx, &waker).is_pending());
    drop(tx);
    assert_eq!(count.count(), 1);
    assert_eq!(poll_once(&mut rx, &waker), Poll::Ready(Err(RecvError)));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn send_to_a_dropped_receiver_hands_the_value_back() {
    let (tx, rx) = channel();
    assert!(!tx.is_closed());
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send(9), Err(9));
}

#[test]
fn a_sent_value_nobody_takes_is_dropped_once_with_the_receiver() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel();
    assert!(tx.send(Counted(drops.clone())).is_ok());
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn closed_resolves_when_the_receiver_is_dropped() {
    let (mut tx, rx) = channel::<u8>();
    let (count, waker) = CountWaker::new();
    {
        let mut closed = Box::pin(tx.closed());
        assert!(poll_once(&mut closed, &waker).is_pending());
        drop(rx);
        assert_eq!(count.count(), 1);
        assert!(poll_once(&mut closed, &waker).is_ready());
    }
    assert!(tx.is_closed());
}

#[test]
fn across_threads_in_both_directions() {
    for _ in 0..200 {
        let (tx, rx) = channel();
        let sender = thread::spawn(move || tx.send(thread::current().id()).unwrap());
        let id = block_on(rx).unwrap();
        assert_eq!(id, sender.thread().id());
        sender.join().unwrap();

        let (mut tx, rx) = channel::<u8>();
        let receiver = thread::spawn(move || drop(rx));
        block_on(tx.closed());
        receiver.join().unwrap();
    }
}
