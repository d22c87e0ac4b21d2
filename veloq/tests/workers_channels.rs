//! `veloq::sync` channels between workers: a million messages from several
//! senders arrive complete and in order per sender; closing, back-pressure
//! and oneshot semantics.

mod util;

use std::time::{Duration, Instant};

use util::within;
use veloq::sync::{mpsc, oneshot};
use veloq::time::{sleep, timeout};
use veloq::Runtime;

/// Messages in the big test (on both legs, Wine included).
const MESSAGES: u64 = 1_000_000;

fn runtime() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

/// `senders` tasks, spread over both workers, each send their share of
/// `MESSAGES` (sender, seq) pairs to one receiver on worker 0.
fn million(capacity: Option<usize>) {
    let rt = runtime();
    let start = Instant::now();
    let senders = 4u64;
    rt.block_on(async move {
        let (tx, mut rx) = match capacity {
            Some(c) => mpsc::channel::<(u64, u64)>(c),
            None => mpsc::unbounded(),
        };
        let per = MESSAGES / senders;
        let mut handles = Vec::new();
        for s in 0..senders {
            let tx = tx.clone();
            // Senders 0 and 2 share worker 0 with the receiver, 1 and 3 run
            // on worker 1.
            handles.push(veloq::spawn_on((s % 2) as usize, move || async move {
                for seq in 0..per {
                    tx.send((s, seq)).await.unwrap();
                }
            }));
        }
        drop(tx);
        let mut next = vec![0u64; senders as usize];
        let mut total = 0u64;
        while let Some((s, seq)) = rx.recv().await {
            assert_eq!(seq, next[s as usize], "sender {s} out of order");
            next[s as usize] += 1;
            total += 1;
        }
        assert_eq!(total, per * senders, "messages lost");
        assert!(next.iter().all(|&n| n == per));
        for h in handles {
            h.await.unwrap();
        }
    });
    eprintln!(
        "{MESSAGES} messages ({}) in {:?}",
        capacity.map_or("unbounded".to_string(), |c| format!("capacity {c}")),
        start.elapsed()
    );
}

#[test]
fn a_million_messages_across_workers_bounded() {
    within(300, || million(Some(1024)));
}

#[test]
fn a_million_messages_across_workers_unbounded() {
    within(300, || million(None));
}

#[test]
fn bounded_channel_applies_back_pressure() {
    within(60, || {
        let rt = runtime();
        rt.block_on(async {
            let (tx, mut rx) = mpsc::channel::<u32>(2);
            tx.try_send(1).unwrap();
            tx.try_send(2).unwrap();
            assert!(matches!(tx.try_send(3), Err(mpsc::TrySendError::Full(3))));
            // A sender on worker 1 waits for room.
            let tx2 = tx.clone();
            let h = veloq::spawn_on(1, move || async move {
                tx2.send(3).await.unwrap();
                veloq::worker_id()
            });
            sleep(Duration::from_millis(20)).await;
            assert!(!h.is_finished(), "send on a full channel did not wait");
            assert_eq!(rx.recv().await, Some(1));
            assert_eq!(h.await.unwrap(), 1);
            assert_eq!(rx.recv().await, Some(2));
            assert_eq!(rx.recv().await, Some(3));
            assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
            drop(tx);
            assert_eq!(rx.recv().await, None);
            assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
        });
    });
}

#[test]
fn dropping_the_receiver_fails_senders_and_wakes_waiting_ones() {
    within(60, || {
        let rt = runtime();
        rt.block_on(async {
            let (tx, rx) = mpsc::channel::<u32>(1);
            tx.send(1).await.unwrap();
            let tx2 = tx.clone();
            let waiting = veloq::spawn_on(1, move || async move { tx2.send(2).await });
            sleep(Duration::from_millis(20)).await;
            assert!(!tx.is_closed());
            drop(rx);
            let err = timeout(Duration::from_secs(10), waiting)
                .await
                .expect("a sender waiting for room was not woken")
                .unwrap()
                .unwrap_err();
            assert_eq!(err.0, 2);
            assert!(tx.is_closed());
            assert_eq!(tx.send(3).await.unwrap_err().0, 3);
        });
    });
}

#[test]
fn receiver_close_keeps_queued_values() {
    veloq::block_on(async {
        let (tx, mut rx) = mpsc::unbounded::<&str>();
        tx.send("a").await.unwrap();
        rx.close();
        assert!(matches!(
            tx.try_send("b"),
            Err(mpsc::TrySendError::Closed("b"))
        ));
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.recv().await, Some("a"));
        drop(tx);
        assert_eq!(rx.recv().await, None);
    });
}

#[test]
fn oneshot_across_workers() {
    within(60, || {
        let rt = runtime();
        rt.block_on(async {
            // Value from worker 1 to worker 0.
            let (tx, rx) = oneshot::channel();
            veloq::spawn_on(1, move || async move {
                sleep(Duration::from_millis(5)).await;
                tx.send(veloq::worker_id()).unwrap();
            });
            assert_eq!(rx.await, Ok(1));

            // Sender dropped unsent on worker 1: the receiver learns it.
            let (tx, rx) = oneshot::channel::<u8>();
            veloq::spawn_on(1, move || async move {
                sleep(Duration::from_millis(5)).await;
                drop(tx);
            });
            assert_eq!(rx.await, Err(oneshot::RecvError));

            // Receiver dropped: `closed` wakes the sender on worker 1, and
            // sending hands the value back.
            let (mut tx, rx) = oneshot::channel::<String>();
            let h = veloq::spawn_on(1, move || async move {
                tx.closed().await;
                assert!(tx.is_closed());
                tx.send("late".into()).unwrap_err()
            });
            sleep(Duration::from_millis(10)).await;
            drop(rx);
            assert_eq!(h.await.unwrap(), "late");
        });
    });
}

#[test]
fn oneshot_try_recv() {
    let (tx, mut rx) = oneshot::channel::<u8>();
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Empty));
    tx.send(9).unwrap();
    assert_eq!(rx.try_recv(), Ok(9));
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Closed));
}
