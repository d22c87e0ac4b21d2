//! An op future belongs to the runtime it was submitted on (DESIGN.md,
//! "Contract, part 2"): dropped anywhere — outside any `block_on`, inside
//! another runtime, after its runtime is gone — it cancels through its own
//! driver and its buffer stays alive until the kernel lets go; polled under
//! another runtime it panics saying so, and it never touches another
//! runtime's ops.
//!
//! Read buffers here are windows of a leaked arena (`util::GuardArena`)
//! that are poisoned when dropped, so a kernel write after the drop is seen
//! (and lands in memory that is never freed) instead of corrupting the
//! heap. The peers are blocking `std` sockets, usable with no runtime
//! running.

mod util;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use util::{
    expect_wrong_runtime_panic, pending_on, poll_once, std_tcp_pair, within, CountedBuf, GuardArena,
};
use veloq::net::TcpStream;
use veloq::time::{sleep, timeout};
use veloq::Runtime;

/// Bytes per read buffer.
const SLOT: usize = 4096;

/// Connections per test (fewer under Wine, where each costs more).
const CONNS: usize = if cfg!(windows) { 4 } else { 16 };

/// `n` connected pairs: the client side adopted by `rt`, the server side a
/// blocking std stream.
fn pairs(rt: &Runtime, n: usize) -> (Vec<TcpStream>, Vec<std::net::TcpStream>) {
    let (clients, peers): (Vec<_>, Vec<_>) = (0..n).map(|_| std_tcp_pair()).unzip();
    let streams = rt.block_on(async {
        clients
            .into_iter()
            .map(|c| TcpStream::from_std(c).expect("from_std"))
            .collect()
    });
    (streams, peers)
}

/// Lets the driver run a few turns, so submitted ops reach the kernel (or
/// the readiness loop) and completions are processed.
async fn turns() {
    sleep(Duration::from_millis(5)).await;
}

/// Writes `SLOT` bytes of `byte` into every peer (ignoring peers whose
/// connection is gone).
fn peers_write(peers: &mut [std::net::TcpStream], byte: u8) {
    for p in peers {
        let _ = p.write_all(&[byte; SLOT]);
    }
}

#[test]
fn read_dropped_outside_block_on_is_not_written_after_its_buffer_is_freed() {
    within(30, || {
        let arena = GuardArena::new(CONNS, SLOT);
        let rt = Runtime::new().expect("runtime");
        let (streams, mut peers) = pairs(&rt, CONNS);
        let reads = rt.block_on(async {
            let mut reads = Vec::new();
            for (i, s) in streams.iter().enumerate() {
                let mut read = Box::pin(s.read(arena.buf(i)));
                assert!(
                    poll_once(read.as_mut()).await.is_pending(),
                    "no data yet: the read is pending"
                );
                reads.push(read);
            }
            turns().await;
            reads
        });
        // Outside any block_on: no runtime is current on this thread.
        drop(reads);
        peers_write(&mut peers, 0xAB);
        std::thread::sleep(Duration::from_millis(50));
        arena.assert_no_write_after_drop("after the peers wrote");
        // The runtime runs again (a readiness driver performs reads here).
        rt.block_on(sleep(Duration::from_millis(50)));
        arena.assert_no_write_after_drop("after the runtime ran again");
        drop(streams);
        drop(rt);
        peers_write(&mut peers, 0xCD);
        std::thread::sleep(Duration::from_millis(20));
        arena.assert_no_write_after_drop("after the runtime was dropped");
        arena.assert_each_dropped_once("after the runtime was dropped");
    });
}

#[test]
fn read_dropped_after_its_runtime_was_dropped() {
    within(30, || {
        let arena = GuardArena::new(CONNS, SLOT);
        let rt = Runtime::new().expect("runtime");
        let (streams, mut peers) = pairs(&rt, CONNS);
        let reads = rt.block_on(async {
            let mut reads = Vec::new();
            for (i, s) in streams.iter().enumerate() {
                let mut read = Box::pin(s.read(arena.buf(i)));
                assert!(poll_once(read.as_mut()).await.is_pending());
                reads.push(read);
            }
            turns().await;
            reads
        });
        drop(rt);
        // The runtime is gone; its driver drained (or leaked) the reads.
        drop(reads);
        peers_write(&mut peers, 0xAB);
        std::thread::sleep(Duration::from_millis(50));
        arena.assert_no_write_after_drop("runtime dropped, then the reads");
        drop(streams);
        arena.assert_each_dropped_once("runtime dropped, then the reads");
    });
}

#[test]
fn read_dropped_then_its_runtime_dropped() {
    within(30, || {
        let arena = GuardArena::new(CONNS, SLOT);
        let rt = Runtime::new().expect("runtime");
        let (streams, mut peers) = pairs(&rt, CONNS);
        let reads = rt.block_on(async {
            let mut reads = Vec::new();
            for (i, s) in streams.iter().enumerate() {
                let mut read = Box::pin(s.read(arena.buf(i)));
                assert!(poll_once(read.as_mut()).await.is_pending());
                reads.push(read);
            }
            turns().await;
            reads
        });
        drop(reads);
        peers_write(&mut peers, 0xAB);
        std::thread::sleep(Duration::from_millis(50));
        drop(streams);
        drop(rt);
        peers_write(&mut peers, 0xCD);
        std::thread::sleep(Duration::from_millis(20));
        arena.assert_no_write_after_drop("the reads dropped, then the runtime");
        arena.assert_each_dropped_once("the reads dropped, then the runtime");
    });
}

/// Runtime B has a read of its own in flight when a read future of runtime
/// A is dropped inside B's `block_on` (A still alive, or already dropped):
/// B's read must be untouched — it still completes with its peer's bytes —
/// and A's buffer is never written after it was freed.
fn foreign_read_dropped_inside_another_runtime(drop_a_first: bool) {
    let arena = GuardArena::new(1, SLOT);
    let rt_a = Runtime::new().expect("runtime A");
    let rt_b = Runtime::new().expect("runtime B");
    // Both runtimes go through the same steps, so A's read and B's read
    // sit at the same place in their drivers' tables.
    let (streams_a, mut peers_a) = pairs(&rt_a, 1);
    let (streams_b, mut peers_b) = pairs(&rt_b, 1);
    let read_a = pending_on(&rt_a, || streams_a[0].read(arena.buf(0)));
    let rt_a = if drop_a_first {
        drop(rt_a);
        None
    } else {
        Some(rt_a)
    };
    let got = rt_b.block_on(async {
        let mut read_b = Box::pin(streams_b[0].read(vec![0u8; 64]));
        assert!(poll_once(read_b.as_mut()).await.is_pending());
        turns().await;
        // A's op, dropped while B is current.
        drop(read_a);
        turns().await;
        peers_b[0].write_all(b"for B").unwrap();
        match timeout(Duration::from_secs(3), read_b).await {
            Ok((res, buf)) => res.map(|n| buf[..n].to_vec()),
            Err(_) => Err(std::io::Error::other(
                "B's read never completed: dropping A's op cancelled it",
            )),
        }
    });
    assert_eq!(
        got.expect("B's own read").as_slice(),
        b"for B",
        "B's read got its peer's bytes"
    );
    peers_write(&mut peers_a, 0xAB);
    std::thread::sleep(Duration::from_millis(50));
    arena.assert_no_write_after_drop("A's read dropped inside B");
    if let Some(rt_a) = rt_a {
        rt_a.block_on(sleep(Duration::from_millis(20)));
        arena.assert_no_write_after_drop("A's read dropped inside B, A ran again");
        drop(streams_a);
        drop(rt_a);
    } else {
        drop(streams_a);
    }
    drop(streams_b);
    drop(rt_b);
    arena.assert_no_write_after_drop("both runtimes dropped");
    arena.assert_each_dropped_once("both runtimes dropped");
}

#[test]
fn read_of_a_live_runtime_dropped_inside_another_leaves_its_ops_alone() {
    within(30, || foreign_read_dropped_inside_another_runtime(false));
}

#[test]
fn read_of_a_dropped_runtime_dropped_inside_another_leaves_its_ops_alone() {
    within(30, || foreign_read_dropped_inside_another_runtime(true));
}

#[test]
fn read_polled_under_another_runtime_panics() {
    within(30, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let rt_a = Runtime::new().expect("runtime A");
        let rt_b = Runtime::new().expect("runtime B");
        let (streams_a, mut peers_a) = pairs(&rt_a, 1);
        let (streams_b, mut peers_b) = pairs(&rt_b, 1);
        let mut read_a = pending_on(&rt_a, || streams_a[0].read(CountedBuf::new(64, &drops)));
        // B has an op of its own at the same place in its table.
        let mut read_b = pending_on(&rt_b, || streams_b[0].read(vec![0u8; 64]));
        peers_a[0].write_all(b"for A").unwrap();
        peers_b[0].write_all(b"for B").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        expect_wrong_runtime_panic("A's read polled under B", || {
            rt_b.block_on(async {
                let _ = poll_once(read_a.as_mut()).await;
            })
        });
        drop(read_a);
        // B is unharmed: its own read still gets its own bytes.
        let (res, buf) = rt_b.block_on(async {
            timeout(Duration::from_secs(3), read_b.as_mut())
                .await
                .expect("B's read completes")
        });
        let n = res.expect("B's read");
        assert_eq!(&buf[..n], b"for B");
        drop(streams_a);
        drop(rt_a);
        drop(rt_b);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "A's buffer dropped once");
    });
}
