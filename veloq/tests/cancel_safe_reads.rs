//! `read`, `recv_from` and `accept` are cancel-safe (DESIGN.md, "Contract,
//! part 2"): a future dropped before it resolved loses nothing; what its op
//! had already taken (bytes, a datagram, a connection) goes to the next
//! call on the same socket, in order.
//!
//! Two kinds of tests: deterministic ones, where the op has completed in
//! the driver (its completion processed) but its future is dropped without
//! being polled again; and loops of `timeout` around the op against a peer
//! that keeps sending, which hit the cancel-versus-completion race at
//! random points.

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::{
    poll_once, random_limit, spawn_pattern_writer, std_tcp_pair, stream_byte, within, CountedBuf,
    Rng,
};
use veloq::net::{TcpListener, TcpStream, UdpSocket};
use veloq::time::{sleep, timeout};

/// Runs the driver for a while without polling the caller's op futures:
/// their completions arrive and are stored, unclaimed.
async fn turns() {
    sleep(Duration::from_millis(20)).await;
}

/// Reads from `stream` until `want` bytes came (in reads of at most
/// `chunk` bytes), within 3 s; what came, even if short.
async fn read_n(stream: &TcpStream, want: usize, chunk: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = timeout(Duration::from_secs(3), async {
        while got.len() < want {
            let (res, buf) = stream.read(Vec::with_capacity(chunk)).await;
            match res {
                Ok(0) | Err(_) => return,
                Ok(_) => got.extend_from_slice(&buf),
            }
        }
    })
    .await;
    got
}

#[test]
fn read_completed_but_dropped_unpolled_hands_its_bytes_to_the_next_read() {
    within(30, || {
        let drops = Arc::new(AtomicUsize::new(0));
        veloq::block_on(async {
            let (client, mut peer) = {
                let (c, s) = std_tcp_pair();
                (TcpStream::from_std(c).unwrap(), s)
            };
            for round in 0..5 {
                let mut read = Box::pin(client.read(CountedBuf::new(64, &drops)));
                assert!(poll_once(read.as_mut()).await.is_pending());
                turns().await;
                peer.write_all(format!("hello {round}").as_bytes()).unwrap();
                // The read completes in the driver; nobody polls it.
                turns().await;
                drop(read);
                peer.write_all(b" world").unwrap();
                // Small reads: what the cancelled read took is handed out
                // in pieces, in order, then what came after.
                let want = format!("hello {round} world");
                let got = read_n(&client, want.len(), 3).await;
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    want,
                    "round {round}: the bytes of the dropped read come first, then the rest"
                );
            }
        });
        assert_eq!(drops.load(Ordering::SeqCst), 5, "each buffer dropped once");
    });
}

#[test]
fn recv_from_completed_but_dropped_unpolled_hands_its_datagram_to_the_next_recv_from() {
    within(30, || {
        let drops = Arc::new(AtomicUsize::new(0));
        veloq::block_on(async {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = sock.local_addr().unwrap();
            let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let from = sender.local_addr().unwrap();
            for round in 0..5 {
                let mut recv = Box::pin(sock.recv_from(CountedBuf::new(64, &drops)));
                assert!(poll_once(recv.as_mut()).await.is_pending());
                turns().await;
                sender
                    .send_to(format!("first {round}").as_bytes(), to)
                    .unwrap();
                turns().await;
                drop(recv);
                sender
                    .send_to(format!("second {round}").as_bytes(), to)
                    .unwrap();
                for want in [format!("first {round}"), format!("second {round}")] {
                    let got = timeout(Duration::from_secs(3), sock.recv_from(vec![0u8; 64])).await;
                    let (res, buf) = got.unwrap_or_else(|_| {
                        panic!("round {round}: datagram {want:?} never came: it was lost")
                    });
                    let (n, addr): (usize, SocketAddr) = res.unwrap();
                    assert_eq!(String::from_utf8_lossy(&buf[..n]), want, "round {round}");
                    assert_eq!(addr, from);
                }
            }
        });
        assert_eq!(drops.load(Ordering::SeqCst), 5, "each buffer dropped once");
    });
}

#[test]
fn accept_completed_but_dropped_unpolled_hands_its_connection_to_the_next_accept() {
    within(30, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            for round in 0..5 {
                let mut accept = Box::pin(listener.accept());
                assert!(poll_once(accept.as_mut()).await.is_pending());
                turns().await;
                let mut client = std::net::TcpStream::connect(addr).unwrap();
                turns().await;
                drop(accept);
                let (server, peer) = timeout(Duration::from_secs(3), listener.accept())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("round {round}: the connection was lost with the dropped accept")
                    })
                    .expect("accept");
                assert_eq!(peer, client.local_addr().unwrap(), "round {round}");
                // The client's connection is alive: bytes flow both ways.
                let (res, _) = server.write_all(b"hi".to_vec()).await;
                res.unwrap();
                client
                    .set_read_timeout(Some(Duration::from_secs(3)))
                    .unwrap();
                let mut got = [0u8; 2];
                client
                    .read_exact(&mut got)
                    .unwrap_or_else(|e| panic!("round {round}: client read: {e}"));
                assert_eq!(&got, b"hi");
                client.write_all(b"yo").unwrap();
                let (res, got) = server.read_exact(vec![0u8; 2]).await;
                res.unwrap();
                assert_eq!(&got, b"yo");
            }
        });
    });
}

/// Writes `total` bytes of the `stream_byte` pattern into `peer` in chunks
/// of `chunk` bytes, pausing a random 0 to `max_pause` between them (so
/// that a reader's short timeouts sometimes fire), then closes.
fn stream_pattern(
    mut peer: std::net::TcpStream,
    total: u64,
    chunk: usize,
    max_pause: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = Rng::new(1);
        let mut off = 0u64;
        let mut buf = Vec::with_capacity(chunk);
        while off < total {
            let n = chunk.min((total - off) as usize);
            buf.clear();
            buf.extend((off..off + n as u64).map(stream_byte));
            if peer.write_all(&buf).is_err() {
                return;
            }
            off += n as u64;
            let pause = rng.below(max_pause.as_micros() as u64 + 1);
            std::thread::sleep(Duration::from_micros(pause));
        }
    })
}

/// Checks `bytes` against the pattern at `*off` and advances it.
fn check_pattern(bytes: &[u8], off: &mut u64, timeouts: usize) {
    for &b in bytes {
        assert_eq!(
            b,
            stream_byte(*off),
            "byte {} of the stream is wrong (after {timeouts} timed-out reads): bytes were \
             lost or reordered",
            *off
        );
        *off += 1;
    }
}

#[test]
fn reads_timed_out_after_1ms_lose_no_byte_of_a_200k_stream() {
    const TOTAL: u64 = 200 * 1024;
    within(30, || {
        let (client, peer) = std_tcp_pair();
        let writer = stream_pattern(peer, TOTAL, 1000, Duration::from_millis(4));
        let drops = Arc::new(AtomicUsize::new(0));
        let (timeouts, made) = veloq::block_on(async {
            let client = TcpStream::from_std(client).unwrap();
            let (mut off, mut timeouts, mut made) = (0u64, 0usize, 0usize);
            let start = Instant::now();
            loop {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "stalled at byte {off} of {TOTAL} after {timeouts} timeouts"
                );
                made += 1;
                let read = client.read(CountedBuf::new(4096, &drops));
                match timeout(Duration::from_millis(1), read).await {
                    Ok((Ok(0), _)) => break,
                    Ok((Ok(_), buf)) => check_pattern(buf.bytes(), &mut off, timeouts),
                    Ok((Err(e), _)) => panic!("read failed at byte {off}: {e}"),
                    Err(_) => timeouts += 1,
                }
            }
            assert_eq!(off, TOTAL, "every byte arrived (after {timeouts} timeouts)");
            (timeouts, made)
        });
        writer.join().unwrap();
        assert!(timeouts > 0, "no read timed out: the test tested nothing");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            made,
            "each buffer dropped once"
        );
    });
}

#[test]
fn reads_under_random_timeouts_lose_or_reorder_no_byte() {
    const ITERATIONS: usize = if cfg!(windows) { 1_000 } else { 10_000 };
    within(60, || {
        let (client, peer) = std_tcp_pair();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = spawn_pattern_writer(peer, 7, 2048, stop.clone());
        let drops = Arc::new(AtomicUsize::new(0));
        let (got, timeouts, made) = veloq::block_on(async {
            let client = TcpStream::from_std(client).unwrap();
            let mut rng = Rng::new(11);
            let (mut off, mut timeouts, mut made) = (0u64, 0usize, 0usize);
            for _ in 0..ITERATIONS {
                made += 1;
                let cap = 1 + rng.below(4096) as usize;
                let read = client.read(CountedBuf::new(cap, &drops));
                let limit = random_limit(&mut rng);
                match timeout(limit, read).await {
                    Ok((Ok(0), _)) => panic!("the peer closed early, at byte {off}"),
                    Ok((Ok(_), buf)) => check_pattern(buf.bytes(), &mut off, timeouts),
                    Ok((Err(e), _)) => panic!("read failed at byte {off}: {e}"),
                    Err(_) => timeouts += 1,
                }
            }
            // The peer stops; everything it sent must still come, in order.
            stop.store(true, Ordering::SeqCst);
            let drained = timeout(Duration::from_secs(10), async {
                loop {
                    made += 1;
                    let (res, buf) = client.read(CountedBuf::new(64 * 1024, &drops)).await;
                    match res {
                        Ok(0) => return,
                        Ok(_) => check_pattern(buf.bytes(), &mut off, timeouts),
                        Err(e) => panic!("read failed at byte {off}: {e}"),
                    }
                }
            })
            .await;
            assert!(
                drained.is_ok(),
                "the rest of the stream never came (at byte {off})"
            );
            (off, timeouts, made)
        });
        let sent = writer.join().unwrap();
        assert_eq!(
            got, sent,
            "bytes received vs sent ({timeouts} of {ITERATIONS} reads timed out)"
        );
        assert!(timeouts > 0, "no read timed out: the test tested nothing");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            made,
            "each buffer dropped once"
        );
    });
}

#[test]
fn recv_from_under_random_timeouts_loses_no_datagram() {
    const N: u32 = if cfg!(windows) { 200 } else { 500 };
    within(60, || {
        veloq::block_on(async {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = sock.local_addr().unwrap();
            let sender = std::thread::spawn(move || {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut rng = Rng::new(5);
                for i in 0..N {
                    s.send_to(&i.to_le_bytes(), to).unwrap();
                    std::thread::sleep(Duration::from_micros(200 + rng.below(2500)));
                }
            });
            let mut seen = vec![0u32; N as usize];
            let (mut count, mut timeouts) = (0u32, 0usize);
            let mut rng = Rng::new(13);
            let start = Instant::now();
            // Every datagram is small and the sender slow: none is dropped
            // by the socket, so all N must arrive.
            while count < N && start.elapsed() < Duration::from_secs(20) {
                let limit = random_limit(&mut rng);
                match timeout(limit, sock.recv_from(vec![0u8; 16])).await {
                    Ok((Ok((4, _)), buf)) => {
                        let i = u32::from_le_bytes(buf[..4].try_into().unwrap());
                        seen[i as usize] += 1;
                        count += 1;
                    }
                    Ok((res, _)) => panic!("unexpected recv_from result: {res:?}"),
                    Err(_) => timeouts += 1,
                }
                if sender.is_finished() && count < N {
                    // The last ones are in the socket or nowhere.
                    if let Ok((Ok((4, _)), buf)) =
                        timeout(Duration::from_millis(300), sock.recv_from(vec![0u8; 16])).await
                    {
                        let i = u32::from_le_bytes(buf[..4].try_into().unwrap());
                        seen[i as usize] += 1;
                        count += 1;
                    } else {
                        break;
                    }
                }
            }
            sender.join().unwrap();
            let lost: Vec<usize> = (0..N as usize).filter(|&i| seen[i] == 0).collect();
            let twice: Vec<usize> = (0..N as usize).filter(|&i| seen[i] > 1).collect();
            assert!(
                lost.is_empty() && twice.is_empty(),
                "datagrams lost: {lost:?}; received twice: {twice:?} ({timeouts} timeouts)"
            );
            assert!(
                timeouts > 0,
                "no recv_from timed out: the test tested nothing"
            );
        });
    });
}

#[test]
fn accepts_under_random_timeouts_lose_no_connection() {
    const CLIENTS: usize = if cfg!(windows) { 30 } else { 150 };
    within(60, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // Each client waits for one byte from the server: a connection
            // closed by a cancelled accept shows as end of stream or reset.
            let connected = Arc::new(AtomicUsize::new(0));
            let clients = {
                let connected = connected.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng::new(3);
                    let mut failed = Vec::new();
                    let mut conns = Vec::new();
                    for i in 0..CLIENTS {
                        let c = std::net::TcpStream::connect(addr).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        conns.push((i, c));
                        connected.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(rng.below(1500)));
                    }
                    for (i, mut c) in conns {
                        let mut b = [0u8; 1];
                        match c.read(&mut b) {
                            Ok(1) if b[0] == b'k' => {}
                            other => failed.push((i, format!("{other:?}"))),
                        }
                    }
                    failed
                })
            };
            let mut accepted = Vec::new();
            let mut timeouts = 0usize;
            let mut rng = Rng::new(17);
            let mut last = Instant::now();
            // Until all are accepted, or all have connected and none more
            // came for a second (some were lost).
            while accepted.len() < CLIENTS
                && (connected.load(Ordering::SeqCst) < CLIENTS
                    || last.elapsed() < Duration::from_secs(1))
            {
                let limit = random_limit(&mut rng);
                match timeout(limit, listener.accept()).await {
                    Ok(Ok((s, _))) => {
                        let (res, _) = s.write_all(b"k".to_vec()).await;
                        res.unwrap();
                        accepted.push(s);
                        last = Instant::now();
                    }
                    Ok(Err(e)) => panic!("accept failed: {e}"),
                    Err(_) => timeouts += 1,
                }
            }
            // Connections still queued (never accepted) are reset.
            drop(listener);
            let n = accepted.len();
            // Keep the accepted streams open while the clients read.
            let failed = loop {
                if clients.is_finished() {
                    break clients.join().unwrap();
                }
                sleep(Duration::from_millis(5)).await;
            };
            assert!(
                failed.is_empty(),
                "clients whose connection was closed under them: {failed:?} ({n} of \
                 {CLIENTS} accepted, {timeouts} accepts timed out)"
            );
            assert_eq!(
                n, CLIENTS,
                "every client accepted ({timeouts} accepts timed out)"
            );
            assert!(timeouts > 0, "no accept timed out: the test tested nothing");
            drop(accepted);
        });
    });
}
