//! Zero-copy sends (`Builder::zero_copy_send`): large TCP writes go out as
//! io_uring `SEND_ZC` from the threshold up, and the buffer comes back only
//! once the kernel has let go of its pages (the notification CQE). Every
//! case runs on every driver; on epoll and IOCP (and with the switch off)
//! the same writes are plain copying sends, and `zero_copy_sends` proves
//! which path ran.
//!
//! The ignored `measure_copy_against_zero_copy` produced the threshold
//! table in the io_uring driver's `send_zc` module docs:
//! `cargo test --release -p veloq --test send_zero_copy -- --ignored --nocapture`.

mod util;

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use util::guarded_buf::GuardPool;
use util::{pattern, poll_once, tcp_pair, within};
use veloq::net::TcpStream;
use veloq::runtime::{driver_kind, driver_stats, DriverKind};
use veloq::time::{sleep, timeout};

/// The threshold the tests set (zero-copy is off by default).
const MIN: usize = 64 * 1024;

/// Whether this runtime's driver can send zero-copy: io_uring on a kernel
/// with `SEND_ZC` (Linux 6.0).
fn zero_copy_possible() -> bool {
    if driver_kind() != DriverKind::IoUring {
        return false;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    major >= 6
}

fn runtime(min: Option<usize>) -> veloq::Runtime {
    veloq::Runtime::builder()
        .zero_copy_send(min)
        .build()
        .expect("runtime")
}

/// Writes chunks of the sizes in `sizes` (each its own pattern) through
/// the write half of one end and checks the other end reads them all, in
/// order. Returns the bytes sent.
async fn send_mixed_sizes(sizes: &[usize]) -> usize {
    let (client, server) = tcp_pair().await;
    let expected: Vec<u8> = sizes
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| pattern(n, i as u64))
        .collect();
    let total = expected.len();
    let reader = veloq::spawn(async move {
        let mut got = Vec::with_capacity(total);
        while got.len() < total {
            let (res, buf) = server.read(Vec::with_capacity(256 * 1024)).await;
            match res.expect("read") {
                0 => break,
                _ => got.extend_from_slice(&buf),
            }
        }
        got
    });
    let (_read, write) = client.into_split();
    for (i, &n) in sizes.iter().enumerate() {
        let buf = pattern(n, i as u64);
        if i % 2 == 0 {
            let (res, back) = write.write_all(buf).await;
            res.expect("write_all");
            assert_eq!(back.len(), n, "the buffer comes back whole");
        } else {
            // `write` may send part: loop on the rest.
            let mut off = 0;
            while off < n {
                let (res, _) = write.write(buf[off..].to_vec()).await;
                off += res.expect("write");
            }
        }
    }
    let got = reader.await.expect("reader task");
    assert_eq!(got.len(), total, "every byte arrives");
    if let Some(at) = got.iter().zip(&expected).position(|(a, b)| a != b) {
        panic!("the stream differs at byte {at} of {total}");
    }
    total
}

/// Sizes around the threshold, small to 1 MiB, about 24 MiB in all.
fn mixed_sizes() -> Vec<usize> {
    let around = [
        1,
        4096,
        MIN - 1,
        MIN,
        MIN + 1,
        3 * MIN,
        1 << 20,
        17,
        MIN + 4095,
    ];
    around.iter().cycle().take(9 * 16).copied().collect()
}

#[test]
fn large_writes_arrive_intact_and_in_order() {
    within(120, || {
        let rt = runtime(Some(MIN));
        rt.block_on(async {
            let before = driver_stats().zero_copy_sends;
            let total = send_mixed_sizes(&mixed_sizes()).await;
            assert!(total > 20 << 20);
            let zc = driver_stats().zero_copy_sends - before;
            if zero_copy_possible() {
                assert!(zc > 0, "io_uring sends large writes zero-copy");
            } else {
                assert_eq!(zc, 0, "{} copies", driver_kind());
            }
            let stats = driver_stats();
            assert_eq!(stats.stale_completions, 0);
            assert_eq!(stats.fault_completions, 0);
        });
    });
}

#[test]
fn small_writes_stay_copying_sends() {
    within(60, || {
        let rt = runtime(Some(MIN));
        rt.block_on(async {
            let before = driver_stats().zero_copy_sends;
            send_mixed_sizes(&[1, MIN - 1, 4096, 100, MIN - 1]).await;
            assert_eq!(
                driver_stats().zero_copy_sends,
                before,
                "below the threshold every driver copies"
            );
        });
    });
}

#[test]
fn by_default_large_writes_are_copied() {
    within(120, || {
        let rt = veloq::Runtime::new().expect("runtime");
        rt.block_on(async {
            send_mixed_sizes(&mixed_sizes()[..9]).await;
            assert_eq!(driver_stats().zero_copy_sends, 0, "off by default");
        });
    });
}

#[test]
fn with_the_switch_off_large_writes_are_copied() {
    within(120, || {
        let rt = runtime(None);
        rt.block_on(async {
            send_mixed_sizes(&mixed_sizes()).await;
            assert_eq!(driver_stats().zero_copy_sends, 0, "the fallback ran");
        });
    });
}

#[test]
fn every_size_goes_zero_copy_with_a_threshold_of_one() {
    within(60, || {
        let rt = runtime(Some(1));
        rt.block_on(async {
            let sizes = [1, 2, 4096, 17, 100_000];
            send_mixed_sizes(&sizes).await;
            let zc = driver_stats().zero_copy_sends;
            if zero_copy_possible() {
                assert!(zc >= sizes.len() as u64, "{zc} zero-copy sends");
            } else {
                assert_eq!(zc, 0);
            }
        });
    });
}

#[test]
fn write_to_a_reset_peer_reports_the_error() {
    within(60, || {
        let rt = runtime(Some(MIN));
        rt.block_on(async {
            let (client, server) = tcp_pair().await;
            // Unread data in the peer's receive queue makes its close a
            // reset.
            let (res, _) = client.write_all(vec![7u8; 4096]).await;
            res.unwrap();
            sleep(Duration::from_millis(20)).await;
            drop(server);
            sleep(Duration::from_millis(20)).await;
            let mut err = None;
            for _ in 0..64 {
                let (res, buf) = client.write_all(vec![1u8; 4 * MIN]).await;
                assert_eq!(buf.len(), 4 * MIN, "the buffer comes back with the error");
                if let Err(e) = res {
                    err = Some(e);
                    break;
                }
            }
            let err = err.expect("writes to a reset connection fail");
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::BrokenPipe
                        | ErrorKind::ConnectionAborted
                ),
                "{err}"
            );
            assert_eq!(driver_stats().stale_completions, 0);
        });
    });
}

/// A blocking peer that reads everything until end of stream; returns
/// what it read.
fn drain_thread(mut peer: std::net::TcpStream) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = peer.read_to_end(&mut all);
        all
    })
}

/// Joins `thread` while the runtime keeps running (a cancelled op's
/// notification may be what the thread waits for).
async fn join<T>(thread: std::thread::JoinHandle<T>) -> T {
    while !thread.is_finished() {
        sleep(Duration::from_millis(2)).await;
    }
    thread.join().expect("thread")
}

#[test]
fn dropped_write_keeps_its_buffer_until_the_kernel_lets_go() {
    within(60, || {
        const BIG: usize = 16 << 20;
        let pool = GuardPool::new(BIG / 4096 + 16);
        let data = pattern(BIG, 5);
        let rt = runtime(Some(MIN));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (client, peer) = rt.block_on(async {
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (peer, _) = listener.accept().unwrap();
            (TcpStream::from_std(client).unwrap(), peer)
        });
        let held = rt.block_on(async {
            {
                let mut write = Box::pin(client.write_all(pool.with_bytes(&data)));
                assert!(
                    poll_once(write.as_mut()).await.is_pending(),
                    "16 MiB cannot be sent to a peer that does not read"
                );
                // Let the send reach the kernel and take what fits.
                sleep(Duration::from_millis(50)).await;
                assert!(poll_once(write.as_mut()).await.is_pending());
            }
            drop(client);
            sleep(Duration::from_millis(50)).await;
            // Under SEND_ZC the socket's queue still holds the buffer's
            // pages: the driver must still hold the buffer.
            pool.dropped() == 0
        });
        if rt.block_on(async { zero_copy_possible() }) {
            assert!(
                held,
                "a zero-copy send's buffer outlives its dropped future until the notification"
            );
        }
        // The peer reads: the queue drains, the kernel lets go, the buffer
        // is dropped and the socket closes (end of stream).
        let reader = drain_thread(peer);
        let done = rt.block_on(async {
            util::eventually(|| pool.dropped() == 1, Duration::from_secs(20)).await
        });
        assert!(done, "the buffer is dropped once the kernel let go");
        let got = reader.join().unwrap();
        assert!(!got.is_empty() && got.len() <= BIG);
        assert!(
            got == data[..got.len()],
            "the peer reads a prefix of what was written"
        );
        let stats = rt.block_on(async { driver_stats() });
        assert_eq!(stats.stale_completions, 0);
        assert_eq!(stats.fault_completions, 0);
        assert_eq!(stats.in_flight, 0);
        drop(rt);
        pool.assert_each_dropped_once("dropped zero-copy writes");
    });
}

#[test]
fn buffer_reused_after_each_write_never_changes_the_sent_bytes() {
    within(120, || {
        let rt = runtime(Some(MIN));
        let (client, mut peer) = util::std_tcp_pair();
        // A slow reader: the send queue stays full, so (under SEND_ZC) sent
        // pages wait in it until the kernel copies or transmits them.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match peer.read(&mut chunk) {
                    Ok(0) | Err(_) => return all,
                    Ok(n) => all.extend_from_slice(&chunk[..n]),
                }
                if all.len() % (1 << 20) < 64 * 1024 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        const ROUNDS: u64 = 24;
        const LEN: usize = 1 << 20;
        rt.block_on(async {
            let client = TcpStream::from_std(client).unwrap();
            let mut buf = pattern(LEN, 0);
            for round in 0..ROUNDS {
                let (res, back) = client.write_all(buf).await;
                res.unwrap();
                buf = back;
                // Overwrite at once with the next round's bytes: a kernel
                // still reading these pages would send the new bytes.
                buf.copy_from_slice(&pattern(LEN, round + 1));
            }
        });
        drop(rt);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), ROUNDS as usize * LEN);
        for (round, chunk) in got.chunks(LEN).enumerate() {
            assert!(
                chunk == pattern(LEN, round as u64),
                "round {round}'s bytes changed after its write returned"
            );
        }
    });
}

#[test]
fn cancelled_zero_copy_write_never_reaches_a_new_connection_on_the_reused_descriptor() {
    within(60, || {
        const ROUNDS: usize = if cfg!(windows) { 5 } else { 20 };
        let rt = runtime(Some(MIN));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let big = pattern(4 << 20, 9);
        rt.block_on(async {
            for round in 0..ROUNDS {
                let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (old_peer, _) = listener.accept().unwrap();
                let old = TcpStream::from_std(client).unwrap();
                {
                    let mut write = Box::pin(old.write_all(big.clone()));
                    assert!(poll_once(write.as_mut()).await.is_pending());
                }
                drop(old);
                let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (new_peer, _) = listener.accept().unwrap();
                let new = TcpStream::from_std(client).unwrap();
                let reader = drain_thread(new_peer);
                let old_reader = drain_thread(old_peer);
                let msg = pattern(MIN * 2, 1000 + round as u64);
                let (res, _) = timeout(Duration::from_secs(10), new.write_all(msg.clone()))
                    .await
                    .expect("the new connection's write completes");
                res.unwrap();
                drop(new);
                let got = join(reader).await;
                assert!(
                    got == msg,
                    "round {round}: the new connection got {} bytes, sent {}",
                    got.len(),
                    msg.len()
                );
                let old_got = join(old_reader).await;
                assert!(old_got.len() <= big.len() && old_got == big[..old_got.len()]);
            }
            let stats = driver_stats();
            assert_eq!(stats.stale_completions, 0);
            assert_eq!(stats.fault_completions, 0);
        });
    });
}

/// CPU time this thread has run so far (`/proc/thread-self/schedstat`).
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns: u64 = s
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// Sends `total` bytes in writes of `size` over loopback to a blocking
/// reader thread; returns (MiB/s, sender CPU µs per MiB, zero-copy sends).
fn measure(min: Option<usize>, size: usize, total: usize) -> (f64, f64, u64) {
    let rt = runtime(min);
    let (client, mut peer) = util::std_tcp_pair();
    let reader = std::thread::spawn(move || {
        let mut chunk = vec![0u8; 1 << 20];
        let mut n = 0usize;
        while let Ok(k) = peer.read(&mut chunk) {
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    });
    let (elapsed, cpu, zc) = rt.block_on(async {
        let client = TcpStream::from_std(client).unwrap();
        let mut buf = vec![0x5au8; size];
        let (start, cpu0) = (Instant::now(), thread_cpu());
        let mut sent = 0;
        while sent < total {
            let (res, back) = client.write_all(buf).await;
            res.unwrap();
            buf = back;
            sent += size;
        }
        let out = (
            start.elapsed(),
            thread_cpu() - cpu0,
            driver_stats().zero_copy_sends,
        );
        drop(client);
        out
    });
    drop(rt);
    let read = reader.join().unwrap();
    assert!(read >= total);
    let mib = total as f64 / (1 << 20) as f64;
    (
        mib / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / mib,
        zc,
    )
}

#[test]
#[ignore = "a measurement (prints a table), not a check; run with --release"]
fn measure_copy_against_zero_copy() {
    const TOTAL: usize = 256 << 20;
    println!("driver: {}", veloq::block_on(async { driver_kind() }));
    println!("| write size | copy MiB/s | SEND_ZC MiB/s | ratio | copy CPU µs/MiB | SEND_ZC CPU µs/MiB | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for size in [
        4 << 10,
        16 << 10,
        32 << 10,
        64 << 10,
        128 << 10,
        256 << 10,
        1 << 20,
    ] {
        let median = |min| {
            let mut runs: Vec<(f64, f64, u64)> =
                (0..3).map(|_| measure(min, size, TOTAL)).collect();
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let cpu = {
                let mut c: Vec<f64> = runs.iter().map(|r| r.1).collect();
                c.sort_by(f64::total_cmp);
                c[1]
            };
            (runs[1].0, cpu, runs[1].2)
        };
        let copy = median(None);
        let zc = median(Some(1));
        assert_eq!(copy.2, 0);
        println!(
            "| {} KiB | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} |{}",
            size >> 10,
            copy.0,
            zc.0,
            zc.0 / copy.0,
            copy.1,
            zc.1,
            zc.1 / copy.1,
            if zc.2 == 0 { " (no SEND_ZC ran)" } else { "" }
        );
    }
}
