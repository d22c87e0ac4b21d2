//! Cancellation torture of the socket ops (TCP send, recv, connect,
//! accept; UDP send_to, recv_from): for each, thousands of futures dropped
//! at random points (after 0 to 3 polls, or after a 0 to 2 ms timeout)
//! while a peer keeps the other end busy. See `util/torture.rs` for the
//! harness; `cancel_torture_fs.rs` holds the file and timer ops.
//!
//! Every run checks (besides its own stream checks) that each guarded
//! buffer was dropped exactly once, that the driver went idle with no
//! completion for an already-freed op (`DriverStats::stale_completions`)
//! and no op failing on unreachable memory (`fault_completions`), and, on
//! Linux, that the process holds as many descriptors as before. Buffers
//! come from `util/guarded_buf.rs`: on Unix a late kernel write into a
//! dropped one fails with `EFAULT` instead of corrupting memory.
//!
//! Byte streams must have no gap and no reordering: a cancelled read's
//! bytes go to the next read (cancel-safe), and a cancelled write may have
//! sent a prefix of its bytes, never bytes after a later write's
//! (`util/stream_check.rs`).
//!
//! `VELOQ_TORTURE_ITERS` sets the iterations per op kind (10,000; 1,000
//! under Windows), `VELOQ_TORTURE_SEED` replays a printed seed.

mod util;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use util::stream_check::{check_sent, check_stream, send_byte, Sent};
use util::torture::{join, race, torture, Ctx, DropAt, Duty, Tally};
use util::{eventually, std_tcp_pair, stream_byte, Rng};
use veloq::net::{TcpListener, TcpStream, UdpSocket};
use veloq::time::timeout;

/// Time limit of one op kind's run (a hang fails instead of stalling).
const LIMIT_SECS: u64 = 120;

// ---------------------------------------------------------------------------
// TCP

#[test]
fn recv_torture() {
    torture(
        "tcp recv",
        util::torture::iterations() + 16,
        LIMIT_SECS,
        recv_body,
    );
}

async fn recv_body(mut cx: Ctx) -> Tally {
    let (client, mut peer) = std_tcp_pair();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut rng = Rng::new(cx.rng.below(u64::MAX));
        std::thread::spawn(move || {
            use std::io::Write;
            let (mut off, mut buf, mut duty) = (0u64, Vec::new(), Duty::start());
            while !stop.load(Ordering::SeqCst) {
                duty.pause_now_and_then();
                let n = 1 + rng.below(3000);
                buf.clear();
                buf.extend((off..off + n).map(stream_byte));
                peer.write_all(&buf).unwrap();
                off += n;
                if rng.below(4) == 0 {
                    std::thread::sleep(Duration::from_micros(rng.below(1500)));
                }
            }
            off
        })
    };
    let client = TcpStream::from_std(client).unwrap();
    let (mut tally, mut off) = (Tally::default(), 0u64);
    for _ in 0..cx.iters {
        let cap = 1 + cx.rng.below(4096) as usize;
        let at = DropAt::pick(&mut cx.rng);
        let out = race(client.read(cx.pool.buf(cap)), at).await;
        tally.note(&out, at);
        match out {
            Some((Ok(0), _)) => panic!("end of stream at byte {off}"),
            Some((Ok(_), buf)) => check_stream(buf.bytes(), &mut off),
            Some((Err(e), _)) => panic!("read failed at byte {off}: {e}"),
            None => {}
        }
    }
    // The writer stops and closes; all it sent must come, in order.
    stop.store(true, Ordering::SeqCst);
    let drained = timeout(Duration::from_secs(20), async {
        loop {
            let (res, buf) = client.read(Vec::with_capacity(64 * 1024)).await;
            match res {
                Ok(0) => return,
                Ok(_) => check_stream(&buf, &mut off),
                Err(e) => panic!("read failed at byte {off}: {e}"),
            }
        }
    })
    .await;
    let sent = join(writer, "tcp recv").await;
    assert!(
        drained.is_ok(),
        "the rest of the stream never came (byte {off})"
    );
    assert_eq!(off, sent, "bytes received vs sent");
    tally
}

#[test]
fn send_torture() {
    torture(
        "tcp send",
        util::torture::iterations() + 16,
        LIMIT_SECS,
        send_body,
    );
}

async fn send_body(mut cx: Ctx) -> Tally {
    let (client, mut peer) = std_tcp_pair();
    // Small socket buffers, and a reader that pauses: writes often wait
    // for room, so cancellations hit sends the kernel holds.
    socket2::SockRef::from(&client)
        .set_send_buffer_size(16 * 1024)
        .unwrap();
    socket2::SockRef::from(&peer)
        .set_recv_buffer_size(16 * 1024)
        .unwrap();
    let reader = {
        let mut rng = Rng::new(cx.rng.below(u64::MAX));
        std::thread::spawn(move || {
            use std::io::Read;
            let (mut got, mut buf, mut duty) = (Vec::new(), vec![0u8; 8192], Duty::start());
            loop {
                duty.pause_now_and_then();
                match peer.read(&mut buf).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
                if rng.below(8) == 0 {
                    std::thread::sleep(Duration::from_micros(rng.below(2000)));
                }
            }
        })
    };
    let client = TcpStream::from_std(client).unwrap();
    let mut tally = Tally::default();
    let mut sent = Vec::with_capacity(cx.iters);
    let mut chunk = Vec::new();
    for j in 0..cx.iters as u64 {
        let len = 2 + cx.rng.below(2047) as usize;
        chunk.clear();
        chunk.extend((0..len as u64).map(|i| send_byte(j, i)));
        let at = DropAt::pick(&mut cx.rng);
        let out = race(client.write(cx.pool.with_bytes(&chunk)), at).await;
        tally.note(&out, at);
        sent.push(match out {
            Some((Ok(n), _)) => Sent::Done(n),
            Some((Err(e), _)) => panic!("write {j} failed: {e}"),
            None if at.never_polled() => Sent::Never,
            None => Sent::Cancelled(len),
        });
    }
    // Closes once the cancelled writes still in flight are done.
    drop(client);
    let got = join(reader, "tcp send").await;
    check_sent(&got, &sent);
    tally
}

#[test]
fn connect_torture() {
    torture("tcp connect", 1, LIMIT_SECS, connect_body);
}

async fn connect_body(mut cx: Ctx) -> Tally {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    // The peer accepts every connection and, 64 connections later, resets
    // it (no TIME_WAIT; late enough that the connect has long resolved).
    let acceptor = {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            let mut open = std::collections::VecDeque::new();
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                        open.push_back(s);
                        if open.len() > 64 {
                            open.pop_front();
                        }
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_micros(100)),
                }
            }
        })
    };
    let mut tally = Tally::default();
    for i in 0..cx.iters {
        let at = DropAt::pick(&mut cx.rng);
        let out = race(TcpStream::connect(addr), at).await;
        tally.note(&out, at);
        if let Some(Err(e)) = out {
            panic!("connect {i} failed: {e}");
        }
    }
    // Every connect that resolved reached the peer (cancelled ones may
    // have too).
    let all = eventually(
        || accepted.load(Ordering::SeqCst) >= tally.completed,
        Duration::from_secs(10),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    join(acceptor, "tcp connect").await;
    assert!(
        all,
        "{} connects resolved, {} connections accepted",
        tally.completed,
        accepted.load(Ordering::SeqCst)
    );
    tally
}

#[test]
fn accept_torture() {
    torture("tcp accept", 1, LIMIT_SECS, accept_body);
}

async fn accept_body(mut cx: Ctx) -> Tally {
    const AHEAD: u64 = 16;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    // The peer connects, at most AHEAD connections ahead of the accepts,
    // and keeps each open a while (so it is accepted before it closes).
    let clients = {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        let mut rng = Rng::new(cx.rng.below(u64::MAX));
        std::thread::spawn(move || {
            let (mut n, mut open) = (0u64, std::collections::VecDeque::new());
            while !stop.load(Ordering::SeqCst) {
                if n >= accepted.load(Ordering::SeqCst) + AHEAD {
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                open.push_back(std::net::TcpStream::connect(addr).unwrap());
                n += 1;
                if open.len() > 4 * AHEAD as usize {
                    open.pop_front();
                }
                if rng.below(4) == 0 {
                    std::thread::sleep(Duration::from_micros(rng.below(1500)));
                }
            }
            (n, open)
        })
    };
    let mut tally = Tally::default();
    for i in 0..cx.iters {
        let at = DropAt::pick(&mut cx.rng);
        let out = race(listener.accept(), at).await;
        tally.note(&out, at);
        match out {
            Some(Ok(_)) => {
                accepted.fetch_add(1, Ordering::SeqCst);
            }
            Some(Err(e)) => panic!("accept {i} failed: {e}"),
            None => {}
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (connected, open) = join(clients, "tcp accept").await;
    // Every connection made is accepted once: none lost with a cancelled
    // accept, none handed out twice.
    while accepted.load(Ordering::SeqCst) < connected {
        let n = accepted.load(Ordering::SeqCst);
        match timeout(Duration::from_secs(5), listener.accept()).await {
            Ok(Ok(_)) => accepted.fetch_add(1, Ordering::SeqCst),
            Ok(Err(e)) => panic!("accept failed: {e}"),
            Err(_) => panic!("connection {n} of {connected} lost (never accepted)"),
        };
    }
    let extra = timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(extra.is_err(), "a connection was accepted twice");
    drop(open);
    tally
}

// ---------------------------------------------------------------------------
// UDP

/// Datagram number `id`: its id, then bytes that depend on id and position;
/// its length depends on the id.
fn datagram(id: u32) -> Vec<u8> {
    let len = 4 + (stream_byte(id as u64) as usize) * 4;
    let mut d = id.to_le_bytes().to_vec();
    d.extend((4..len as u64).map(|i| stream_byte(((id as u64) << 20) | i)));
    d
}

/// The id of a received datagram, if it is one [`datagram`] made, whole.
fn datagram_id(got: &[u8]) -> Option<u32> {
    let id = u32::from_le_bytes(got.get(..4)?.try_into().ok()?);
    (datagram(id) == got).then_some(id)
}

#[test]
fn send_to_torture() {
    torture(
        "udp send_to",
        util::torture::iterations() + 16,
        LIMIT_SECS,
        send_to_body,
    );
}

async fn send_to_body(mut cx: Ctx) -> Tally {
    const AHEAD: u32 = 32;
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = peer.local_addr().unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let _ = socket2::SockRef::from(&peer).set_recv_buffer_size(1 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let next_wanted = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (stop, next_wanted) = (stop.clone(), next_wanted.clone());
        std::thread::spawn(move || {
            let (mut ids, mut buf) = (Vec::new(), vec![0u8; 2048]);
            loop {
                match peer.recv(&mut buf) {
                    Ok(n) => {
                        let id = datagram_id(&buf[..n])
                            .unwrap_or_else(|| panic!("a torn datagram: {:?}", &buf[..n.min(8)]));
                        ids.push(id);
                        next_wanted.store(id as u64 + 1, Ordering::SeqCst);
                    }
                    Err(_) if stop.load(Ordering::SeqCst) => return ids,
                    Err(_) => {}
                }
            }
        })
    };
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut tally = Tally {
        // epoll sends at the first poll, and loopback never says EAGAIN.
        cancel_optional: veloq::runtime::driver_kind() == veloq::runtime::DriverKind::Epoll,
        ..Tally::default()
    };
    let (mut done, mut unsent) = (BTreeSet::new(), BTreeSet::new());
    for id in 0..cx.iters as u32 {
        // Stay a few datagrams ahead of the receiver, so none overflows
        // its buffer (a lost one would then be the runtime's fault).
        let _ = eventually(
            || (id as u64) < next_wanted.load(Ordering::SeqCst) + AHEAD as u64,
            Duration::from_millis(50),
        )
        .await;
        let d = datagram(id);
        let at = DropAt::pick(&mut cx.rng);
        let out = race(sock.send_to(cx.pool.with_bytes(&d), to), at).await;
        tally.note(&out, at);
        match out {
            Some((Ok(n), _)) => {
                assert_eq!(n, d.len(), "datagram {id} sent in part");
                done.insert(id);
            }
            Some((Err(e), _)) => panic!("send_to {id} failed: {e}"),
            None if at.never_polled() => {
                unsent.insert(id);
            }
            None => {}
        }
    }
    // Let the last ones arrive.
    let last = done.last().copied().unwrap_or(0) as u64;
    let _ = eventually(
        || next_wanted.load(Ordering::SeqCst) > last,
        Duration::from_secs(5),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let ids = join(receiver, "udp send_to").await;
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "datagrams duplicated or reordered"
    );
    let got: BTreeSet<u32> = ids.iter().copied().collect();
    let lost: Vec<_> = done.difference(&got).take(10).collect();
    assert!(
        lost.is_empty(),
        "sent datagrams that never arrived: {lost:?}…"
    );
    let ghost: Vec<_> = unsent.intersection(&got).take(10).collect();
    assert!(
        ghost.is_empty(),
        "datagrams of never-polled futures arrived: {ghost:?}"
    );
    tally
}

#[test]
fn recv_from_torture() {
    torture(
        "udp recv_from",
        util::torture::iterations() + 16,
        LIMIT_SECS,
        recv_from_body,
    );
}

async fn recv_from_body(mut cx: Ctx) -> Tally {
    const AHEAD: u64 = 32;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let from = peer.local_addr().unwrap();
    // The peer sends numbered datagrams, a few ahead of what was received
    // (never enough to overflow the socket), pausing now and then.
    let sender = {
        let (stop, received) = (stop.clone(), received.clone());
        let mut rng = Rng::new(cx.rng.below(u64::MAX));
        std::thread::spawn(move || {
            let mut id = 0u32;
            while !stop.load(Ordering::SeqCst) {
                if id as u64 >= received.load(Ordering::SeqCst) + AHEAD {
                    std::thread::sleep(Duration::from_micros(50));
                    continue;
                }
                peer.send_to(&datagram(id), to).unwrap();
                id += 1;
                if rng.below(4) == 0 {
                    std::thread::sleep(Duration::from_micros(rng.below(1500)));
                }
            }
            id
        })
    };
    let mut tally = Tally::default();
    let mut next = 0u32;
    let check = |got: &[u8], addr: SocketAddr, next: &mut u32| {
        assert_eq!(addr, from);
        let id = datagram_id(got).unwrap_or_else(|| panic!("datagram {next}: torn"));
        assert_eq!(id, *next, "datagrams lost or reordered");
        *next += 1;
        received.store(*next as u64, Ordering::SeqCst);
    };
    for _ in 0..cx.iters {
        let at = DropAt::pick(&mut cx.rng);
        let out = race(sock.recv_from(cx.pool.buf(2048)), at).await;
        tally.note(&out, at);
        match out {
            Some((Ok((n, addr)), buf)) => check(&buf.bytes()[..n], addr, &mut next),
            Some((Err(e), _)) => panic!("recv_from failed at datagram {next}: {e}"),
            None => {}
        }
    }
    stop.store(true, Ordering::SeqCst);
    let sent = join(sender, "udp recv_from").await;
    // All the peer sent comes, in order, and nothing more.
    while next < sent {
        match timeout(Duration::from_secs(5), sock.recv_from(vec![0u8; 2048])).await {
            Ok((Ok((n, addr)), buf)) => check(&buf[..n], addr, &mut next),
            Ok((Err(e), _)) => panic!("recv_from failed at datagram {next}: {e}"),
            Err(_) => panic!("datagram {next} of {sent} never came"),
        }
    }
    let extra = timeout(Duration::from_millis(50), sock.recv_from(vec![0u8; 2048])).await;
    assert!(extra.is_err(), "a datagram came twice");
    tally
}

// ---------------------------------------------------------------------------
// The stream check itself can fail

/// The bytes `check_sent` expects from writes `j` that sent `n` bytes each.
fn sent_bytes(writes: &[(u64, usize)]) -> Vec<u8> {
    writes
        .iter()
        .flat_map(|&(j, n)| (0..n as u64).map(move |i| send_byte(j, i)))
        .collect()
}

#[test]
fn check_sent_accepts_prefixes_of_cancelled_writes() {
    let got = sent_bytes(&[(0, 10), (1, 1), (3, 4)]);
    check_sent(
        &got,
        &[
            Sent::Done(10),
            Sent::Cancelled(20),
            Sent::Cancelled(9),
            Sent::Done(4),
        ],
    );
}

#[test]
#[should_panic(expected = "reordered or sent by a write that never ran")]
fn check_sent_catches_a_lost_byte() {
    let mut got = sent_bytes(&[(0, 10), (1, 10)]);
    got.remove(14);
    check_sent(&got, &[Sent::Done(10), Sent::Done(10)]);
}

#[test]
#[should_panic(expected = "reordered or sent by a write that never ran")]
fn check_sent_catches_a_cancelled_write_landing_after_a_later_one() {
    let got = sent_bytes(&[(0, 10), (2, 5), (1, 3)]);
    check_sent(&got, &[Sent::Done(10), Sent::Cancelled(8), Sent::Done(5)]);
}

#[test]
#[should_panic(expected = "reordered or sent by a write that never ran")]
fn check_sent_catches_bytes_of_a_never_polled_write() {
    let got = sent_bytes(&[(0, 10), (1, 3)]);
    check_sent(&got, &[Sent::Done(10), Sent::Never]);
}
