//! Cancellation torture: for every op kind, thousands of futures dropped at
//! random points (after 0 to 3 polls, or after a 0 to 2 ms timeout) while a
//! peer keeps the other end busy. See `util/torture.rs` for the harness.
//!
//! Every run checks (besides its own stream checks) that each guarded
//! buffer was dropped exactly once, that the driver went idle with no
//! completion for an already-freed op (`DriverStats::stale_completions`),
//! and, on Linux, that the process holds as many descriptors as before.
//! Buffers come from `util/guarded_buf.rs`: on Unix a late kernel write
//! into a dropped one fails with `EFAULT` instead of corrupting memory.
//!
//! Byte streams must have no gap and no reordering: a cancelled read's
//! bytes go to the next read (cancel-safe), and a cancelled write may have
//! sent a prefix of its bytes, never bytes after a later write's.
//!
//! `VELOQ_TORTURE_ITERS` sets the iterations per op kind (10,000; 1,000
//! under Windows), `VELOQ_TORTURE_SEED` replays a printed seed.

mod util;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::torture::{race, torture, Ctx, DropAt, Tally};
use util::{eventually, std_tcp_pair, stream_byte, Rng, TempPath};
use veloq::fs::{File, OpenOptions};
use veloq::net::{TcpListener, TcpStream, UdpSocket};
use veloq::time::{sleep, timeout};

/// Time limit of one op kind's run (a hang fails instead of stalling).
const LIMIT_SECS: u64 = 120;

/// Waits, driving the runtime, until the std thread `t` has returned.
async fn join<T>(t: std::thread::JoinHandle<T>, what: &str) -> T {
    let done = eventually(|| t.is_finished(), Duration::from_secs(30)).await;
    assert!(done, "{what}: the peer thread did not finish");
    t.join().unwrap()
}

/// A peer's rhythm: busy for 20 ms, then idle for 10 ms, so that the ops
/// under test both find their data (or room) at once and wait for it,
/// however fast the peer is (under Wine a busy peer would never let an op
/// wait, so none could be cancelled in the kernel).
struct Duty(Instant);

impl Duty {
    fn new() -> Duty {
        Duty(Instant::now())
    }

    /// Sleeps 10 ms once every 20 ms of work.
    fn pause_now_and_then(&mut self) {
        if self.0.elapsed() >= Duration::from_millis(20) {
            std::thread::sleep(Duration::from_millis(10));
            self.0 = Instant::now();
        }
    }
}

/// Checks `bytes` against the `stream_byte` pattern from `*off`, advancing it.
fn check_stream(bytes: &[u8], off: &mut u64) {
    for &b in bytes {
        assert_eq!(
            b,
            stream_byte(*off),
            "byte {} of the stream is wrong: bytes were lost or reordered",
            *off
        );
        *off += 1;
    }
}

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
            let (mut off, mut buf, mut duty) = (0u64, Vec::new(), Duty::new());
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

/// Byte `i` of write number `j` in the send torture: `0xFF` starts each
/// write, and no other byte is `0xFF`, so the reader can split the stream
/// into the writes' prefixes.
fn send_byte(j: u64, i: u64) -> u8 {
    if i == 0 {
        0xFF
    } else {
        stream_byte((j << 24) | i) % 255
    }
}

/// What became of one write in the send torture.
#[derive(Debug, Clone, Copy)]
enum Sent {
    /// Resolved: exactly this many bytes went.
    Done(usize),
    /// Dropped after a poll: some prefix of its `len` bytes may have gone.
    Cancelled(usize),
    /// Never polled: nothing went.
    Never,
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
            let (mut got, mut buf, mut duty) = (Vec::new(), vec![0u8; 8192], Duty::new());
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

/// Checks that `got` is, write by write, the prefixes `sent` allows: a
/// resolved write's exact byte count, a cancelled write's any prefix
/// (none included), a never-polled write nothing; in order, no gap.
fn check_sent(got: &[u8], sent: &[Sent]) {
    // Split at the 0xFF that starts every write's bytes.
    assert!(
        got.is_empty() || got[0] == 0xFF,
        "the stream does not start with a write's first byte"
    );
    let mut segs: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for i in 1..=got.len() {
        if i == got.len() || got[i] == 0xFF {
            segs.push(&got[start..i]);
            start = i;
        }
    }
    if got.is_empty() {
        segs.clear();
    }
    let is_prefix = |j: usize, seg: &[u8]| {
        seg.iter()
            .enumerate()
            .all(|(i, &b)| b == send_byte(j as u64, i as u64))
    };
    // Which segment each write may start at (a cancelled write that sent
    // one byte looks like one that sent none: track every possibility).
    let mut at: BTreeSet<usize> = BTreeSet::from([0]);
    for (j, s) in sent.iter().enumerate() {
        let mut next = BTreeSet::new();
        for &k in &at {
            let seg = segs.get(k).copied();
            match *s {
                Sent::Never => {
                    next.insert(k);
                }
                Sent::Done(0) => {
                    next.insert(k);
                }
                Sent::Done(n) => {
                    if seg.is_some_and(|g| g.len() == n && is_prefix(j, g)) {
                        next.insert(k + 1);
                    }
                }
                Sent::Cancelled(len) => {
                    next.insert(k);
                    if seg.is_some_and(|g| g.len() <= len && is_prefix(j, g)) {
                        next.insert(k + 1);
                    }
                }
            }
        }
        assert!(
            !next.is_empty(),
            "write {j} ({s:?}) does not match the bytes received at segment(s) {at:?} of {}: \
             bytes were lost, reordered or sent by a write that never ran",
            segs.len()
        );
        at = next;
    }
    assert!(
        at.contains(&segs.len()),
        "bytes received after the last write's (segments {at:?} of {}): bytes were lost, \
         reordered or sent by a write that never ran",
        segs.len()
    );
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
// Files

/// Writes `data` at `pos` of `file` (the peers' blocking file writes).
#[cfg(unix)]
fn pwrite(file: &std::fs::File, data: &[u8], pos: u64) {
    std::os::unix::fs::FileExt::write_all_at(file, data, pos).unwrap();
}

/// Writes `data` at `pos` of `file` (the peers' blocking file writes).
#[cfg(windows)]
fn pwrite(file: &std::fs::File, data: &[u8], pos: u64) {
    let mut done = 0;
    while done < data.len() {
        done += std::os::windows::fs::FileExt::seek_write(file, &data[done..], pos + done as u64)
            .unwrap();
    }
}

/// A peer thread that keeps writing into `[from, from + 64 KiB)` of the
/// file at `path` until `stop`.
fn file_writer(
    path: &std::path::Path,
    from: u64,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let stop = stop.clone();
    std::thread::spawn(move || {
        let mut i = 0u64;
        while !stop.load(Ordering::SeqCst) {
            pwrite(&file, &[i as u8; 512], from + (i % 128) * 512);
            i += 1;
            std::thread::sleep(Duration::from_micros(100));
        }
    })
}

/// Size of the patterned part of the read_at file.
const FILE_LEN: u64 = 1 << 20;

#[test]
fn read_at_torture() {
    torture(
        "file read_at",
        util::torture::iterations() + 16,
        LIMIT_SECS,
        read_at_body,
    );
}

async fn read_at_body(mut cx: Ctx) -> Tally {
    let path = TempPath::new("torture-read-at");
    let data: Vec<u8> = (0..FILE_LEN).map(stream_byte).collect();
    std::fs::write(&path.0, &data).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = file_writer(&path.0, FILE_LEN, &stop);
    let file = File::open(&path.0).await.unwrap();
    let mut tally = Tally::default();
    for _ in 0..cx.iters {
        let len = 1 + cx.rng.below(4096) as usize;
        let pos = cx.rng.below(FILE_LEN - len as u64);
        let at = DropAt::pick(&mut cx.rng);
        let out = race(file.read_at(cx.pool.buf(len), pos), at).await;
        tally.note(&out, at);
        match out {
            Some((Ok(n), buf)) => {
                assert_eq!(n, len, "short read at {pos}");
                assert!(
                    buf.bytes() == &data[pos as usize..pos as usize + n],
                    "read_at {pos} returned the wrong bytes"
                );
            }
            Some((Err(e), _)) => panic!("read_at {pos} failed: {e}"),
            None => {}
        }
    }
    stop.store(true, Ordering::SeqCst);
    join(writer, "file read_at").await;
    drop(file);
    tally
}

/// Byte `i` of write number `j` in the write_at torture (never 0, the
/// byte of a region nothing wrote).
fn file_byte(j: u64, i: u64) -> u8 {
    1 + stream_byte((j << 12) | i) % 255
}

#[test]
fn write_at_torture() {
    torture(
        "file write_at",
        util::torture::iterations() + 16,
        LIMIT_SECS,
        write_at_body,
    );
}

async fn write_at_body(mut cx: Ctx) -> Tally {
    const REGION: u64 = 512;
    let path = TempPath::new("torture-write-at");
    std::fs::write(&path.0, []).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let end = cx.iters as u64 * REGION;
    let writer = file_writer(&path.0, end, &stop);
    let file = OpenOptions::new().write(true).open(&path.0).await.unwrap();
    let mut tally = Tally::default();
    let mut sent = Vec::with_capacity(cx.iters);
    let mut chunk = Vec::new();
    for j in 0..cx.iters as u64 {
        let len = 1 + cx.rng.below(REGION) as usize;
        chunk.clear();
        chunk.extend((0..len as u64).map(|i| file_byte(j, i)));
        let at = DropAt::pick(&mut cx.rng);
        let out = race(file.write_at(cx.pool.with_bytes(&chunk), j * REGION), at).await;
        tally.note(&out, at);
        sent.push(match out {
            Some((Ok(n), _)) => Sent::Done(n),
            Some((Err(e), _)) => panic!("write_at {j} failed: {e}"),
            None if at.never_polled() => Sent::Never,
            None => Sent::Cancelled(len),
        });
    }
    // Every op is done once the driver is idle: look at the file then.
    util::torture::settle("file write_at").await;
    stop.store(true, Ordering::SeqCst);
    join(writer, "file write_at").await;
    drop(file);
    let got = std::fs::read(&path.0).unwrap();
    for (j, s) in sent.iter().enumerate() {
        let start = j * REGION as usize;
        let region = got
            .get(start..(start + REGION as usize).min(got.len()))
            .unwrap_or(&[]);
        // The bytes write j put there: a prefix of its chunk, then zeros.
        let wrote = region
            .iter()
            .enumerate()
            .take_while(|&(i, &b)| b == file_byte(j as u64, i as u64))
            .count();
        assert!(
            region[wrote..].iter().all(|&b| b == 0),
            "write_at {j} ({s:?}): region holds bytes no write put there"
        );
        match *s {
            Sent::Done(n) => assert_eq!(wrote, n, "write_at {j}: bytes written vs reported"),
            Sent::Never => assert_eq!(wrote, 0, "write_at {j} was never polled but wrote"),
            Sent::Cancelled(len) => assert!(wrote <= len),
        }
    }
    tally
}

#[test]
fn fsync_torture() {
    torture("file fsync", 1, LIMIT_SECS, fsync_body);
}

async fn fsync_body(mut cx: Ctx) -> Tally {
    let path = TempPath::new("torture-fsync");
    std::fs::write(&path.0, [0u8; 4096]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = file_writer(&path.0, 0, &stop);
    let file = OpenOptions::new().write(true).open(&path.0).await.unwrap();
    let mut tally = Tally::default();
    for i in 0..cx.iters {
        let at = DropAt::pick(&mut cx.rng);
        let out = if i % 2 == 0 {
            race(file.sync_all(), at).await
        } else {
            race(file.sync_data(), at).await
        };
        tally.note(&out, at);
        if let Some(Err(e)) = out {
            panic!("fsync {i} failed: {e}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    join(writer, "file fsync").await;
    drop(file);
    tally
}

#[test]
fn open_torture() {
    torture("file open", 1, LIMIT_SECS, open_body);
}

async fn open_body(mut cx: Ctx) -> Tally {
    let path = TempPath::new("torture-open");
    std::fs::write(&path.0, [0u8; 4096]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = file_writer(&path.0, 0, &stop);
    let mut tally = Tally::default();
    for i in 0..cx.iters {
        let at = DropAt::pick(&mut cx.rng);
        let out = race(File::open(&path.0), at).await;
        tally.note(&out, at);
        if let Some(Err(e)) = out {
            panic!("open {i} failed: {e}");
        }
    }
    // A cancelled open's descriptor is closed by its hook: the harness's
    // descriptor count shows a leak.
    stop.store(true, Ordering::SeqCst);
    join(writer, "file open").await;
    tally
}

// ---------------------------------------------------------------------------
// Timers

#[test]
fn sleep_torture() {
    torture("sleep", 1, LIMIT_SECS, sleep_body);
}

async fn sleep_body(mut cx: Ctx) -> Tally {
    // The peer: a task ticking every millisecond throughout.
    let ticks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (ticks, stop) = (ticks.clone(), stop.clone());
        veloq::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                sleep(Duration::from_millis(1)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut tally = Tally::default();
    let start = Instant::now();
    for _ in 0..cx.iters {
        let d = Duration::from_micros(cx.rng.below(3000));
        let at = DropAt::pick(&mut cx.rng);
        let out = race(sleep(d), at).await;
        tally.note(&out, at);
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    ticker.await.unwrap();
    let ticks = ticks.load(Ordering::SeqCst);
    assert!(
        ticks as u128 * 20 >= elapsed.as_millis(),
        "the peer's 1 ms sleeps fell behind: {ticks} ticks in {elapsed:?}"
    );
    // The wheel still keeps time after thousands of cancelled entries.
    let t = Instant::now();
    sleep(Duration::from_millis(20)).await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(20) && took < Duration::from_secs(2),
        "a 20 ms sleep took {took:?}"
    );
    tally
}

// ---------------------------------------------------------------------------
// The checks themselves can fail

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

/// A guarded buffer really refuses late kernel writes (Unix). These tests
/// hold the torture lock: their descriptors would upset a torture run's
/// count.
#[cfg(unix)]
mod guard {
    use super::util::guarded_buf::GuardPool;
    use veloq::buf::IoBufMut;

    #[test]
    fn a_kernel_write_into_a_dropped_guarded_buffer_fails_with_efault() {
        let _serial = super::util::torture::serial();
        let pool = GuardPool::new(4);
        let mut buf = pool.buf(64);
        let ptr = buf.stable_mut_ptr();
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let kernel_write = |ptr: *mut u8| {
            // SAFETY: a one-byte write from a live static into the pipe,
            // then a one-byte read by the kernel into `ptr`: if `ptr`'s
            // page is inaccessible the kernel reports EFAULT, it does not
            // fault this process.
            unsafe {
                assert_eq!(libc::write(fds[1], b"x".as_ptr().cast(), 1), 1);
                libc::read(fds[0], ptr.cast(), 1)
            }
        };
        assert_eq!(kernel_write(ptr), 1, "a live buffer takes the write");
        drop(buf);
        assert_eq!(kernel_write(ptr), -1, "a dropped buffer refuses it");
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EFAULT)
        );
        // SAFETY: closes the two descriptors pipe(2) made, once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        pool.assert_each_dropped_once("guard");
    }

    #[test]
    fn an_op_on_released_memory_is_counted_as_a_fault_completion() {
        use std::io::Write;
        let _serial = super::util::torture::serial();
        let pool = GuardPool::new(4);
        let (client, mut peer) = super::std_tcp_pair();
        peer.write_all(b"hello").unwrap();
        veloq::block_on(async {
            let client = veloq::net::TcpStream::from_std(client).unwrap();
            let before = veloq::runtime::driver_stats();
            let (res, _buf) = client.read(pool.retired_buf(64)).await;
            let err = res.expect_err("a read into inaccessible memory");
            assert_eq!(err.raw_os_error(), Some(libc::EFAULT), "{err}");
            let after = veloq::runtime::driver_stats();
            assert_eq!(after.fault_completions - before.fault_completions, 1);
            assert_eq!(after.stale_completions, before.stale_completions);
        });
        pool.assert_each_dropped_once("fault");
    }
}
