//! `read_vectored` / `write_vectored` on streams: buffers filled and sent in
//! order, handed back in order, with partial transfers reported by count;
//! one kernel call over all the buffers on every platform (`recvmsg` /
//! `sendmsg` on Unix, `WSARecv` / `WSASend` over `WSABUF` arrays on
//! Windows); cancel-safe vectored reads; `send_msg` / `recv_msg` on UDP and
//! Unix datagram sockets.

mod util;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use util::{poll_once, random_limit, spawn_pattern_writer, std_tcp_pair, stream_byte, within, Rng};
use veloq::net::{TcpStream, UdpSocket};
use veloq::time::{sleep, timeout};

#[test]
fn vectored_writes_and_reads_keep_order() {
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let mut bufs = vec![b"ab".to_vec(), Vec::new(), b"cde".to_vec(), b"f".to_vec()];
        let total: usize = bufs.iter().map(Vec::len).sum();
        let mut sent = 0;
        while sent < total {
            let (res, back) = client.write_vectored(bufs).await;
            let n = res.unwrap();
            assert!(n > 0);
            sent += n;
            // Drop what was sent from the front, keeping the rest in order.
            bufs = back;
            let mut left = n;
            for b in bufs.iter_mut() {
                let k = left.min(b.len());
                b.drain(..k);
                left -= k;
            }
        }
        assert_eq!(sent, 6);

        let mut got = Vec::new();
        let mut bufs = vec![
            Vec::with_capacity(2),
            Vec::with_capacity(0),
            Vec::with_capacity(8),
        ];
        while got.len() < 6 {
            let (res, back) = server.read_vectored(bufs).await;
            let n = res.unwrap();
            assert!(n > 0, "early end of stream");
            assert_eq!(back.len(), 3, "all buffers come back");
            let mut seen = 0;
            for b in &back {
                got.extend_from_slice(b);
                seen += b.len();
            }
            assert_eq!(seen, n);
            bufs = back
                .into_iter()
                .map(|mut b| {
                    b.clear();
                    b
                })
                .collect();
        }
        assert_eq!(got, b"abcdef");

        // No room and nothing to send: zero, without waiting.
        let (res, _) = server.read_vectored(vec![Vec::<u8>::new()]).await;
        assert_eq!(res.unwrap(), 0);
        let (res, _) = client.write_vectored(Vec::<Vec<u8>>::new()).await;
        assert_eq!(res.unwrap(), 0);
    });
}

/// One vectored call moves data across all its buffers at once.
#[test]
fn one_vectored_call_spans_several_buffers() {
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let bufs = vec![b"abc".to_vec(), b"defg".to_vec(), b"hi".to_vec()];
        let (res, back) = client.write_vectored(bufs).await;
        assert_eq!(res.unwrap(), 9, "one sendmsg sends all three");
        assert_eq!(back[1], b"defg");
        // Let all nine bytes arrive, then take them in one call.
        veloq::time::sleep(std::time::Duration::from_millis(20)).await;
        let bufs = vec![
            Vec::with_capacity(2),
            Vec::with_capacity(4),
            Vec::with_capacity(16),
        ];
        let (res, back) = server.read_vectored(bufs).await;
        assert_eq!(res.unwrap(), 9);
        assert_eq!(back[0], b"ab");
        assert_eq!(back[1], b"cdef");
        assert_eq!(back[2], b"ghi");
    });
}

/// A vectored read dropped after it received hands its bytes on.
#[test]
fn a_dropped_vectored_read_loses_nothing() {
    use std::future::Future;
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let mut read =
            Box::pin(server.read_vectored(vec![Vec::with_capacity(2), Vec::with_capacity(8)]));
        std::future::poll_fn(|cx| {
            assert!(read.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        let (res, _) = client.write_all(b"hello".to_vec()).await;
        res.unwrap();
        veloq::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(read);
        let (res, got) = server.read_exact(Vec::with_capacity(5)).await;
        res.unwrap();
        assert_eq!(got, b"hello");
    });
}

/// Checks the two descriptors a test passed with `SCM_RIGHTS`: the
/// first is the sent file, the same open file (its offset is shared, so
/// it is rewound here) holding `text`; the second is the write end of the
/// pipe whose read end is `r1`, and works in the receiver: `byte` written
/// through it comes out of `r1`.
#[cfg(unix)]
fn check_passed_fds(
    fds: Vec<std::os::fd::OwnedFd>,
    text: &str,
    mut r1: impl std::io::Read,
    byte: &[u8],
) {
    use std::io::{Read, Seek, Write};
    assert_eq!(fds.len(), 2);
    let mut fds = fds.into_iter();
    let mut got = std::fs::File::from(fds.next().unwrap());
    got.rewind().unwrap();
    let mut read = String::new();
    got.read_to_string(&mut read).unwrap();
    assert_eq!(read, text);
    let mut w2 = std::fs::File::from(fds.next().unwrap());
    w2.write_all(byte).unwrap();
    drop(w2);
    let mut out = Vec::new();
    r1.read_to_end(&mut out).unwrap();
    assert_eq!(out, byte);
}

/// Descriptors passed over a Unix stream with `SCM_RIGHTS`.
#[cfg(unix)]
#[test]
fn unix_stream_passes_descriptors() {
    use std::io::Write;
    use std::os::fd::AsFd;
    veloq::block_on(async {
        let (a, b) = veloq::net::UnixStream::pair().unwrap();
        let tmp = util::TempPath::new("scm-rights");
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp.0)
            .unwrap();
        file.write_all(b"passed along").unwrap();
        let (r1, w1) = std::io::pipe().unwrap();
        let (res, _) = a
            .send_msg(vec![b"two fds".to_vec()], &[file.as_fd(), w1.as_fd()])
            .await;
        assert_eq!(res.unwrap(), 7);
        // The sender's copies may go at once: the kernel got duplicates.
        drop(w1);
        let (res, bufs) = b.recv_msg(vec![Vec::with_capacity(16)], 4).await;
        let (n, fds) = res.unwrap();
        assert_eq!(n, 7);
        assert_eq!(bufs[0], b"two fds");
        check_passed_fds(fds, "passed along", r1, b"x");
        // Without descriptors, recv_msg returns none.
        let (res, _) = a.send_msg(vec![b"plain".to_vec()], &[]).await;
        res.unwrap();
        let (res, _) = b.recv_msg(vec![Vec::with_capacity(8)], 4).await;
        let (n, fds) = res.unwrap();
        assert_eq!((n, fds.len()), (5, 0));
    });
}

/// The bytes `bufs` hold, concatenated, with each buffer's length.
fn contents(bufs: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    (bufs.concat(), bufs.iter().map(Vec::len).collect())
}

/// Each buffer is filled from its start to its capacity before the next
/// gets a byte; a zero-capacity buffer gets none; a `vec![x; n]` buffer is
/// overwritten from 0 and keeps its length.
#[test]
fn vectored_reads_place_bytes_exactly() {
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let data: Vec<u8> = (0..10u64).map(stream_byte).collect();
        let (res, back) = client
            .write_vectored(vec![data[..4].to_vec(), data[4..10].to_vec()])
            .await;
        assert_eq!(res.unwrap(), 10, "one send takes both buffers");
        assert_eq!(back, vec![data[..4].to_vec(), data[4..].to_vec()]);
        sleep(Duration::from_millis(20)).await;
        let bufs = vec![
            Vec::with_capacity(3),
            Vec::new(),
            vec![0xEEu8; 2],
            Vec::with_capacity(100),
        ];
        let (res, back) = server.read_vectored(bufs).await;
        assert_eq!(res.unwrap(), 10);
        assert_eq!(back[0], data[..3]);
        assert!(back[1].is_empty());
        assert_eq!(back[2], data[3..5]);
        assert_eq!(back[3], data[5..]);

        // A partial fill: four bytes into 3 + 5 + 5 of room.
        let (res, _) = client.write_all(data[..4].to_vec()).await;
        res.unwrap();
        sleep(Duration::from_millis(20)).await;
        let bufs = vec![
            Vec::with_capacity(3),
            Vec::with_capacity(5),
            Vec::with_capacity(5),
        ];
        let (res, back) = server.read_vectored(bufs).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(contents(&back), (data[..4].to_vec(), vec![3, 1, 0]));

        // More data than room: the rest stays for the next read.
        let (res, _) = client.write_all(data.clone()).await;
        res.unwrap();
        sleep(Duration::from_millis(20)).await;
        let bufs = vec![Vec::with_capacity(2), Vec::with_capacity(3)];
        let (res, back) = server.read_vectored(bufs).await;
        assert_eq!(res.unwrap(), 5);
        assert_eq!(contents(&back), (data[..5].to_vec(), vec![2, 3]));
        let (res, rest) = server.read_exact(Vec::with_capacity(5)).await;
        res.unwrap();
        assert_eq!(rest, data[5..]);

        // End of stream: zero, buffers untouched.
        drop(client);
        let (res, back) = server
            .read_vectored(vec![Vec::with_capacity(4), Vec::with_capacity(4)])
            .await;
        assert_eq!(res.unwrap(), 0);
        assert_eq!(contents(&back).1, vec![0, 0]);
    });
}

/// Bytes a cancelled vectored read took, served to a vectored read:
/// scattered in order over its buffers.
#[test]
fn stashed_bytes_are_scattered_over_the_next_vectored_read() {
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let mut read = Box::pin(server.read_vectored(vec![Vec::with_capacity(64)]));
        assert!(poll_once(read.as_mut()).await.is_pending());
        let (res, _) = client.write_all(b"0123456789".to_vec()).await;
        res.unwrap();
        sleep(Duration::from_millis(20)).await;
        drop(read);
        let bufs = vec![Vec::with_capacity(4), Vec::new(), Vec::with_capacity(4)];
        let (res, back) = server.read_vectored(bufs).await;
        assert_eq!(res.unwrap(), 8);
        assert_eq!(back[0], b"0123");
        assert!(back[1].is_empty());
        assert_eq!(back[2], b"4567");
        let (res, back) = server.read_vectored(vec![Vec::with_capacity(8)]).await;
        assert_eq!(res.unwrap(), 2);
        assert_eq!(back[0], b"89");
    });
}

/// Checks `bytes` against the pattern at `*off` and advances it.
fn check_pattern(bytes: &[u8], off: &mut u64, timeouts: usize) {
    for &b in bytes {
        assert_eq!(
            b,
            stream_byte(*off),
            "byte {} is wrong after {timeouts} timed-out vectored reads: bytes were lost or \
             reordered",
            *off
        );
        *off += 1;
    }
}

/// `timeout(random 0-2 ms, read_vectored)` against a peer that keeps
/// sending: no byte is lost, repeated or reordered, whichever point the
/// cancel hits (1,000 iterations; 200 under Wine).
#[test]
fn vectored_reads_under_random_timeouts_lose_no_byte() {
    const ITERATIONS: usize = if cfg!(windows) { 200 } else { 1_000 };
    within(60, || {
        let (client, peer) = std_tcp_pair();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = spawn_pattern_writer(peer, 5, 1024, stop.clone());
        let (got, timeouts) = veloq::block_on(async {
            let client = TcpStream::from_std(client).unwrap();
            let mut rng = Rng::new(9);
            let (mut off, mut timeouts) = (0u64, 0usize);
            for i in 0..ITERATIONS {
                let count = 1 + rng.below(4) as usize;
                let bufs: Vec<Vec<u8>> = (0..count)
                    .map(|_| Vec::with_capacity(rng.below(700) as usize))
                    .collect();
                let limit = random_limit(&mut rng);
                match timeout(limit, client.read_vectored(bufs)).await {
                    Ok((Ok(0), back)) if back.iter().all(|b| b.capacity() == 0) => {}
                    Ok((Ok(0), _)) => panic!("the peer closed early, at byte {off}"),
                    Ok((Ok(n), back)) => {
                        let (bytes, _) = contents(&back);
                        assert_eq!(bytes.len(), n, "iteration {i}: count vs buffers");
                        // Filled in order: only the last non-empty buffer
                        // may be short of its capacity.
                        let last = back.iter().rposition(|b| !b.is_empty()).unwrap();
                        for b in &back[..last] {
                            assert_eq!(b.len(), b.capacity(), "iteration {i}: a gap");
                        }
                        check_pattern(&bytes, &mut off, timeouts);
                    }
                    Ok((Err(e), _)) => panic!("read failed at byte {off}: {e}"),
                    Err(_) => timeouts += 1,
                }
            }
            stop.store(true, Ordering::SeqCst);
            let drained = timeout(Duration::from_secs(10), async {
                loop {
                    let bufs = vec![Vec::with_capacity(3000), Vec::with_capacity(60_000)];
                    let (res, back) = client.read_vectored(bufs).await;
                    match res {
                        Ok(0) => return,
                        Ok(_) => check_pattern(&back.concat(), &mut off, timeouts),
                        Err(e) => panic!("read failed at byte {off}: {e}"),
                    }
                }
            })
            .await;
            assert!(drained.is_ok(), "the rest never came (at byte {off})");
            (off, timeouts)
        });
        let sent = writer.join().unwrap();
        assert_eq!(got, sent, "bytes received vs sent ({timeouts} timeouts)");
        assert!(timeouts > 0, "no read timed out: the test tested nothing");
    });
}

/// UDP: one datagram gathered from three buffers, scattered into three,
/// with its source; truncated to the room; to the connected peer.
#[test]
fn udp_send_msg_and_recv_msg_with_three_buffers() {
    veloq::block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let parts = vec![b"head|".to_vec(), b"body-body|".to_vec(), b"tail".to_vec()];
        let (res, back) = a.send_msg(parts.clone(), Some(b_addr)).await;
        assert_eq!(res.unwrap(), 19);
        assert_eq!(back, parts, "buffers come back in order");
        let bufs = vec![
            Vec::with_capacity(3),
            Vec::with_capacity(7),
            Vec::with_capacity(64),
        ];
        let (res, back) = b.recv_msg(bufs).await;
        let (n, from): (usize, SocketAddr) = res.unwrap();
        assert_eq!((n, from), (19, a_addr));
        assert_eq!(back[0], b"hea");
        assert_eq!(back[1], b"d|body-");
        assert_eq!(back[2], b"body|tail");

        // Longer than the room: cut, the rest of the datagram discarded.
        let (res, _) = a.send_msg(parts.clone(), Some(b_addr)).await;
        res.unwrap();
        let (res, _) = a.send_to(b"next".to_vec(), b_addr).await;
        res.unwrap();
        let (res, back) = b
            .recv_msg(vec![Vec::with_capacity(2), Vec::with_capacity(3)])
            .await;
        assert_eq!(res.unwrap(), (5, a_addr));
        assert_eq!(back.concat(), b"head|");
        let (res, buf) = b.recv_from(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), (4, a_addr));
        assert_eq!(buf, b"next", "the cut datagram's rest is gone");

        // Connected: no target.
        a.connect(b_addr).await.unwrap();
        let (res, _) = a.send_msg(vec![b"x".to_vec(), b"yz".to_vec()], None).await;
        assert_eq!(res.unwrap(), 3);
        let (res, buf) = b.recv_from(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), (3, a_addr));
        assert_eq!(buf, b"xyz");

        // An empty datagram is one.
        let (res, _) = a.send_msg(Vec::<Vec<u8>>::new(), None).await;
        assert_eq!(res.unwrap(), 0);
        let (res, back) = b.recv_msg(vec![Vec::with_capacity(4)]).await;
        assert_eq!(res.unwrap(), (0, a_addr));
        assert!(back[0].is_empty());
    });
}

/// A UDP `recv_msg` dropped after its datagram arrived: the datagram, with
/// its source, goes to the next receive (of either kind), in order.
#[test]
fn a_dropped_udp_recv_msg_hands_its_datagram_on() {
    within(30, || {
        veloq::block_on(async {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = sock.local_addr().unwrap();
            let s1 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let s2 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for round in 0..3 {
                let bufs = vec![Vec::with_capacity(4), Vec::with_capacity(60)];
                let mut recv = Box::pin(sock.recv_msg(bufs));
                assert!(poll_once(recv.as_mut()).await.is_pending());
                sleep(Duration::from_millis(20)).await;
                s1.send_to(format!("first {round}").as_bytes(), to).unwrap();
                sleep(Duration::from_millis(20)).await;
                drop(recv);
                s2.send_to(format!("second {round}").as_bytes(), to)
                    .unwrap();
                let got = timeout(Duration::from_secs(3), async {
                    let bufs = vec![Vec::with_capacity(3), Vec::with_capacity(60)];
                    let (res, back) = sock.recv_msg(bufs).await;
                    (res.unwrap(), back)
                })
                .await;
                let ((n, from), back) = got.expect("the first datagram was lost");
                assert_eq!(back.concat(), format!("first {round}").as_bytes());
                assert_eq!(back[0].len(), 3, "scattered from the first buffer on");
                assert_eq!((n, from), (7, s1.local_addr().unwrap()));
                let got = timeout(Duration::from_secs(3), sock.recv_from(vec![0u8; 64])).await;
                let (res, buf) = got.expect("the second datagram was lost");
                let (n, from) = res.unwrap();
                assert_eq!(&buf[..n], format!("second {round}").as_bytes());
                assert_eq!(from, s2.local_addr().unwrap());
            }
        })
    });
}

/// Unix datagram sockets: gathered sends, scattered receives, descriptors.
#[cfg(unix)]
mod unix_datagram {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;
    use std::time::Duration;

    use super::util::{self, poll_once};
    use veloq::net::UnixDatagram;
    use veloq::time::{sleep, timeout};

    #[test]
    fn send_msg_and_recv_msg_pass_bytes_addresses_and_descriptors() {
        veloq::block_on(async {
            let dir = util::TempPath::new("udg-msg");
            std::fs::create_dir(&dir.0).unwrap();
            let a = UnixDatagram::bind(dir.0.join("a")).unwrap();
            let b = UnixDatagram::bind(dir.0.join("b")).unwrap();
            let b_addr = b.local_addr().unwrap();
            let mut file = tempfile_with(&dir, b"the passed file");
            let (r1, w1) = std::io::pipe().unwrap();
            let parts = vec![b"one ".to_vec(), b"two ".to_vec(), b"three".to_vec()];
            let (res, _) = a
                .send_msg(parts, &[file.as_fd(), w1.as_fd()], Some(&b_addr))
                .await;
            assert_eq!(res.unwrap(), 13);
            drop(w1);
            let bufs = vec![
                Vec::with_capacity(2),
                Vec::with_capacity(5),
                Vec::with_capacity(32),
            ];
            let (res, back) = b.recv_msg(bufs, 4).await;
            let (n, fds, from) = res.unwrap();
            assert_eq!(n, 13);
            assert_eq!(back[0], b"on");
            assert_eq!(back[1], b"e two");
            assert_eq!(back[2], b" three");
            assert_eq!(from.as_pathname(), Some(dir.0.join("a").as_path()));
            super::check_passed_fds(fds, "the passed file", r1, b"z");
            file.rewind().unwrap();

            // Connected, no descriptors: none come.
            a.connect(dir.0.join("b")).unwrap();
            let (res, _) = a.send_msg(vec![b"hi".to_vec()], &[], None).await;
            assert_eq!(res.unwrap(), 2);
            let (res, back) = b.recv_msg(vec![Vec::with_capacity(8)], 4).await;
            let (n, fds, from) = res.unwrap();
            assert_eq!((n, fds.len()), (2, 0));
            assert_eq!(back[0], b"hi");
            assert_eq!(from.as_pathname(), Some(dir.0.join("a").as_path()));

            // From an unbound sender: the unnamed address.
            let c = UnixDatagram::unbound().unwrap();
            let (res, _) = c.send_msg(vec![b"anon".to_vec()], &[], Some(&b_addr)).await;
            res.unwrap();
            let (res, _) = b.recv_msg(vec![Vec::with_capacity(8)], 0).await;
            let (n, _, from) = res.unwrap();
            assert_eq!(n, 4);
            assert!(from.is_unnamed());
        });
    }

    /// A `recv_msg` dropped after its datagram (with a descriptor)
    /// arrived: the datagram and its source go to the next receive, the
    /// descriptor is closed (the pipe's write end is gone everywhere).
    #[test]
    fn a_dropped_recv_msg_keeps_the_datagram_and_closes_its_descriptors() {
        veloq::block_on(async {
            let dir = util::TempPath::new("udg-msg-drop");
            std::fs::create_dir(&dir.0).unwrap();
            let a = UnixDatagram::bind(dir.0.join("a")).unwrap();
            let b = UnixDatagram::bind(dir.0.join("b")).unwrap();
            let b_addr = b.local_addr().unwrap();
            let (mut r1, w1) = std::io::pipe().unwrap();
            let mut recv = Box::pin(b.recv_msg(vec![Vec::with_capacity(16)], 2));
            assert!(poll_once(recv.as_mut()).await.is_pending());
            sleep(Duration::from_millis(20)).await;
            let (res, _) = a
                .send_msg(vec![b"with fd".to_vec()], &[w1.as_fd()], Some(&b_addr))
                .await;
            res.unwrap();
            drop(w1);
            sleep(Duration::from_millis(20)).await;
            drop(recv);
            let got = timeout(Duration::from_secs(3), b.recv_from(vec![0u8; 16])).await;
            let (res, buf) = got.expect("the datagram was lost");
            let (n, from) = res.unwrap();
            assert_eq!(&buf[..n], b"with fd");
            assert_eq!(from.as_pathname(), Some(dir.0.join("a").as_path()));
            // Every write end closed: the read end sees end of file.
            let mut out = Vec::new();
            assert_eq!(r1.read_to_end(&mut out).unwrap(), 0);
        });
    }

    fn tempfile_with(dir: &util::TempPath, data: &[u8]) -> std::fs::File {
        let mut f = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.0.join("file"))
            .unwrap();
        f.write_all(data).unwrap();
        f
    }
}
