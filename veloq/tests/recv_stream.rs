//! Receive streams over a `BufRing` (issue 13, item 3), on every driver:
//! io_uring serves them with one multishot receive per stream over a
//! kernel provided-buffer ring, epoll and IOCP with the portable
//! user-space pool (`BufRing::is_kernel_ring` and
//! `RecvStream::receives` tell which path ran).

mod util;

use std::io::Write;
use std::time::Duration;

use util::{pattern, std_tcp_pair, within};
use veloq::buf::{BufRing, PooledBuf};
use veloq::net::TcpStream;
use veloq::runtime::DriverKind;
use veloq::time::{sleep, timeout};

/// A veloq stream whose peer is a blocking std stream (for a writer
/// thread).
fn pair() -> (TcpStream, std::net::TcpStream) {
    let (client, server) = std_tcp_pair();
    (TcpStream::from_std(server).unwrap(), client)
}

/// Writes `data` into `peer` from a thread, in chunks of `chunk`, then
/// closes it.
fn write_from_thread(
    mut peer: std::net::TcpStream,
    data: Vec<u8>,
    chunk: usize,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for part in data.chunks(chunk) {
            peer.write_all(part).unwrap();
        }
    })
}

fn expect_kernel_ring(ring: &BufRing) {
    let uring = veloq::runtime::driver_kind() == DriverKind::IoUring;
    // Linux 6.0+ (the test machines): the kernel ring on io_uring only.
    assert_eq!(ring.is_kernel_ring(), uring);
}

#[test]
fn many_mebibytes_arrive_in_order() {
    within(60, || {
        veloq::block_on(async {
            let ring = BufRing::new(16, 16 * 1024).unwrap();
            expect_kernel_ring(&ring);
            let (stream, peer) = pair();
            let data = pattern(8 << 20, 7);
            let writer = write_from_thread(peer, data.clone(), 100_000);
            let mut got = Vec::with_capacity(data.len());
            let mut chunks = stream.recv_stream(&ring);
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.unwrap();
                assert!(!chunk.is_empty() && chunk.len() <= 16 * 1024);
                got.extend_from_slice(&chunk);
            }
            assert!(chunks.next().await.is_none(), "end of stream stays");
            writer.join().unwrap();
            assert_eq!(got.len(), data.len());
            assert!(got == data, "bytes differ");
            drop(chunks);
            assert_eq!(ring.available(), 16, "every buffer came back");
        })
    });
}

#[test]
fn one_armed_receive_serves_many_messages_on_a_kernel_ring() {
    within(60, || {
        veloq::block_on(async {
            let ring = BufRing::new(8, 4096).unwrap();
            let (client, server) = util::tcp_pair().await;
            let mut chunks = server.recv_stream(&ring);
            for i in 0..500u32 {
                let (res, _) = client.write_all(i.to_le_bytes().to_vec()).await;
                res.unwrap();
                let chunk = chunks.next().await.unwrap().unwrap();
                assert_eq!(&chunk[..], &i.to_le_bytes()[..], "message {i}");
                // Echo it back through the pooled buffer itself.
                let (res, _) = server.write_all(chunk).await;
                res.unwrap();
                let (res, buf) = client.read_exact(vec![0u8; 4]).await;
                res.unwrap();
                assert_eq!(buf, i.to_le_bytes());
            }
            if ring.is_kernel_ring() {
                assert_eq!(chunks.receives(), 1, "one multishot receive");
            } else {
                assert!(chunks.receives() >= 500, "{}", chunks.receives());
            }
        })
    });
}

#[test]
fn held_buffers_stall_the_stream_without_losing_data() {
    within(60, || {
        veloq::block_on(async {
            let ring = BufRing::new(4, 1024).unwrap();
            let (stream, peer) = pair();
            let data = pattern(256 * 1024, 3);
            let writer = write_from_thread(peer, data.clone(), 4096);
            let mut chunks = stream.recv_stream(&ring);
            let mut got = Vec::new();
            let mut held: Vec<PooledBuf> = Vec::new();
            for _ in 0..4 {
                held.push(chunks.next().await.unwrap().unwrap());
            }
            assert_eq!(ring.available(), 0);
            // Every buffer is held: the stream waits (and the wait is
            // cancel-safe).
            for _ in 0..3 {
                let next = timeout(Duration::from_millis(30), chunks.next()).await;
                assert!(next.is_err(), "no buffer, no chunk");
            }
            for b in held.drain(..) {
                got.extend_from_slice(&b);
            }
            while let Some(chunk) = chunks.next().await {
                got.extend_from_slice(&chunk.unwrap());
            }
            writer.join().unwrap();
            assert!(
                got == data,
                "{} of {} bytes, or out of order",
                got.len(),
                data.len()
            );
        })
    });
}

#[test]
fn a_dropped_stream_leaves_the_rest_to_plain_reads() {
    within(60, || {
        veloq::block_on(async {
            for round in 0..5 {
                let ring = BufRing::new(8, 2048).unwrap();
                let (stream, peer) = pair();
                let data = pattern(512 * 1024, round);
                let writer = write_from_thread(peer, data.clone(), 8192);
                let mut got = Vec::new();
                {
                    let mut chunks = stream.recv_stream(&ring);
                    for _ in 0..3 + round {
                        got.extend_from_slice(&chunks.next().await.unwrap().unwrap());
                    }
                    // A next() dropped mid-wait, then the whole stream.
                    let mut fut = Box::pin(chunks.next());
                    if let std::task::Poll::Ready(Some(Ok(c))) = util::poll_once(fut.as_mut()).await
                    {
                        got.extend_from_slice(&c);
                    }
                }
                sleep(Duration::from_millis(5)).await;
                loop {
                    let (res, buf) = stream.read(Vec::with_capacity(64 * 1024)).await;
                    match res.unwrap() {
                        0 => break,
                        _ => got.extend_from_slice(&buf),
                    }
                }
                writer.join().unwrap();
                assert_eq!(got.len(), data.len(), "round {round}");
                assert!(got == data, "round {round}: bytes differ");
                assert_eq!(ring.available(), 8, "round {round}: buffers back");
            }
        })
    });
}

#[test]
fn a_new_stream_takes_over_where_the_last_one_stopped() {
    within(60, || {
        veloq::block_on(async {
            let ring = BufRing::new(8, 1500).unwrap();
            let (stream, peer) = pair();
            let data = pattern(1 << 20, 9);
            let writer = write_from_thread(peer, data.clone(), 10_000);
            let mut got = Vec::new();
            'outer: for _ in 0.. {
                let mut chunks = stream.recv_stream(&ring);
                for _ in 0..7 {
                    match chunks.next().await {
                        Some(c) => got.extend_from_slice(&c.unwrap()),
                        None => break 'outer,
                    }
                }
            }
            writer.join().unwrap();
            assert!(got == data, "{} of {} bytes", got.len(), data.len());
        })
    });
}

#[test]
fn peer_close_ends_the_stream_and_a_reset_is_an_error() {
    within(30, || {
        veloq::block_on(async {
            let ring = BufRing::new(2, 512).unwrap();
            let (stream, peer) = pair();
            drop(peer);
            let mut chunks = stream.recv_stream(&ring);
            assert!(chunks.next().await.is_none());
            assert!(chunks.next().await.is_none());

            let (stream, peer) = pair();
            socket2::SockRef::from(&peer)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(peer);
            let mut chunks = stream.recv_stream(&ring);
            check_reset(chunks.next().await);
        })
    });
}

/// What a receive reports after the peer reset the connection: the error.
#[cfg(unix)]
fn check_reset(next: Option<std::io::Result<PooledBuf>>) {
    let err = next.expect("an error").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

/// What a receive reports after the peer reset the connection: the error
/// on Windows; Wine (where the IOCP leg runs) reports end of stream.
#[cfg(windows)]
fn check_reset(next: Option<std::io::Result<PooledBuf>>) {
    match next {
        None => {}
        Some(Err(e)) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
            "{e}"
        ),
        Some(Ok(c)) => panic!("{} bytes from a reset connection", c.len()),
    }
}

#[test]
fn read_halves_have_streams_too() {
    within(30, || {
        veloq::block_on(async {
            let ring = BufRing::new(4, 4096).unwrap();
            let (client, server) = util::tcp_pair().await;
            let (read, write) = server.into_split();
            let (res, _) = client.write_all(b"through the half".to_vec()).await;
            res.unwrap();
            drop(client);
            let mut chunks = read.recv_stream(&ring);
            let mut got = Vec::new();
            while let Some(c) = chunks.next().await {
                got.extend_from_slice(&c.unwrap());
            }
            assert_eq!(got, b"through the half");
            drop(write);
        })
    });
}

#[test]
fn bad_ring_sizes_are_invalid_input() {
    veloq::block_on(async {
        for (count, size) in [(0, 10), (10, 0), (40_000, 10)] {
            let err = BufRing::new(count, size).unwrap_err();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidInput,
                "{count}x{size}"
            );
        }
        let ring = BufRing::new(3, 100).unwrap();
        assert_eq!(
            (ring.count(), ring.buf_size(), ring.available()),
            (3, 100, 3)
        );
    });
}

#[test]
fn rings_come_and_go_without_running_out() {
    within(60, || {
        veloq::block_on(async {
            let (client, server) = util::tcp_pair().await;
            for i in 0..2000u32 {
                let ring = BufRing::new(2, 64).unwrap();
                expect_kernel_ring(&ring);
                if i % 100 == 0 {
                    // Now and then one serves a stream before it goes.
                    let (res, _) = client.write_all(i.to_le_bytes().to_vec()).await;
                    res.unwrap();
                    let mut chunks = server.recv_stream(&ring);
                    let mut got = Vec::new();
                    while got.len() < 4 {
                        got.extend_from_slice(&chunks.next().await.unwrap().unwrap());
                    }
                    assert_eq!(got, i.to_le_bytes());
                }
            }
            let stats = veloq::runtime::driver_stats();
            assert_eq!(stats.stale_completions, 0);
            assert_eq!(stats.fault_completions, 0);
        })
    });
}

#[test]
fn a_runtime_drops_cleanly_with_streams_and_accepts_armed() {
    within(30, || {
        let rt = veloq::Runtime::new().unwrap();
        let ring = rt.block_on(async {
            let listener = veloq::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let ring = BufRing::new(4, 256).unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let task_ring = ring.clone();
            veloq::spawn(async move {
                let mut chunks = server.recv_stream(&task_ring);
                while let Some(c) = chunks.next().await {
                    drop(c);
                }
            });
            veloq::spawn(async move {
                let _ = listener.accept().await;
            });
            let (res, _) = client.write_all(vec![1u8; 100]).await;
            res.unwrap();
            sleep(Duration::from_millis(20)).await;
            ring
        });
        // The tasks, their armed ops and the ring's registration go with
        // the runtime; the ring itself outlives it.
        drop(rt);
        assert_eq!(ring.count(), 4);
        drop(ring);
    });
}

/// Checks `data` against the writer's pattern at `*off`, then advances.
fn check_pattern(data: &[u8], off: &mut u64) {
    for (i, &b) in data.iter().enumerate() {
        let at = *off + i as u64;
        assert_eq!(
            b,
            util::stream_byte(at),
            "byte {at} lost, repeated or moved"
        );
    }
    *off += data.len() as u64;
}

#[test]
fn cancelled_nexts_dropped_streams_and_plain_reads_keep_the_byte_order() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    within(120, || {
        veloq::block_on(async {
            let (client, server) = std_tcp_pair();
            let stream = TcpStream::from_std(server).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let writer = util::spawn_pattern_writer(client, 11, 3000, stop.clone());
            let ring = BufRing::new(6, 700).unwrap();
            let mut rng = util::Rng::new(5);
            let mut off = 0u64;
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                if rng.below(3) == 0 {
                    // A plain read, maybe cancelled.
                    let limit = util::random_limit(&mut rng);
                    if let Ok((res, buf)) =
                        timeout(limit, stream.read(Vec::with_capacity(900))).await
                    {
                        res.unwrap();
                        check_pattern(&buf, &mut off);
                    }
                    continue;
                }
                let mut chunks = stream.recv_stream(&ring);
                let mut held = Vec::new();
                for _ in 0..rng.below(12) {
                    let limit = util::random_limit(&mut rng);
                    if let Ok(next) = timeout(limit, chunks.next()).await {
                        let chunk = next.expect("the writer is still writing").unwrap();
                        check_pattern(&chunk, &mut off);
                        // Hold some a while: the ring runs dry now and then.
                        if rng.below(2) == 0 && held.len() < 5 {
                            held.push(chunk);
                        }
                    }
                }
                drop(chunks);
                drop(held);
            }
            stop.store(true, Ordering::SeqCst);
            // Drain what is left, then compare the totals.
            loop {
                let (res, buf) = stream.read(Vec::with_capacity(64 * 1024)).await;
                match res.unwrap() {
                    0 => break,
                    _ => check_pattern(&buf, &mut off),
                }
            }
            let written = writer.join().unwrap();
            assert_eq!(off, written, "every byte read once");
            assert!(off > 0);
            assert_eq!(ring.available(), 6);
            assert_eq!(veloq::runtime::driver_stats().stale_completions, 0);
        })
    });
}

#[test]
fn a_kernel_ring_refuses_streams_of_another_runtime() {
    within(30, || {
        let first = veloq::Runtime::new().unwrap();
        let ring = first.block_on(async { BufRing::new(2, 256).unwrap() });
        let second = veloq::Runtime::new().unwrap();
        second.block_on(async {
            let (client, server) = util::tcp_pair().await;
            let (res, _) = client.write_all(b"hi".to_vec()).await;
            res.unwrap();
            let mut chunks = server.recv_stream(&ring);
            let next = chunks.next().await.expect("an item");
            if ring.is_kernel_ring() {
                // Its group belongs to the first runtime's ring.
                let err = next.unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
            } else {
                // A portable pool is plain memory: any runtime may use it.
                assert_eq!(&next.unwrap()[..], b"hi");
            }
        });
        drop(second);
        drop(first);
        drop(ring);
    });
}

#[cfg(unix)]
mod unix {
    use super::*;

    #[test]
    fn unix_streams_and_their_halves_have_streams_too() {
        within(30, || {
            veloq::block_on(async {
                let ring = BufRing::new(4, 1024).unwrap();
                let (a, b) = veloq::net::UnixStream::pair().unwrap();
                let data = pattern(256 * 1024, 21);
                let writer = veloq::spawn({
                    let data = data.clone();
                    async move {
                        let (res, _) = a.write_all(data).await;
                        res.unwrap();
                    }
                });
                let (read, _write) = b.into_split();
                let mut chunks = read.recv_stream(&ring);
                let mut got = Vec::new();
                while let Some(c) = chunks.next().await {
                    got.extend_from_slice(&c.unwrap());
                }
                writer.await.unwrap();
                assert!(got == data, "{} of {} bytes", got.len(), data.len());
            })
        });
    }
}
