//! `veloq::compat::Compat`: veloq streams through the poll-based
//! `futures-io` and `tokio` I/O traits, driven by those crates' own
//! extension methods (`futures_util::io::*Ext`, `tokio::io::*Ext`) inside
//! `veloq::block_on` (no tokio runtime anywhere).
//!
//! Needs the features: `cargo test -p veloq --features futures-io,tokio
//! --test compat`. Without them the file compiles to nothing.
#![cfg(all(feature = "futures-io", feature = "tokio"))]

mod util;

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use util::{pattern, poll_once, spawn_echo_server, tcp_pair, within};
use veloq::buf::{BufResult, IoBuf};
use veloq::compat::Compat;
use veloq::net::{TcpListener, TcpStream};

/// A client connected to a fresh echo server.
async fn echo_client() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    spawn_echo_server(listener);
    TcpStream::connect(addr).await.unwrap()
}

/// A veloq stream whose peer is a blocking `std` stream (served by a
/// thread in the test).
async fn std_peer() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (peer, _) = listener.accept().unwrap();
    (stream, peer)
}

/// An in-memory writer whose writes wait while its gate is closed and
/// take at most 64 bytes each: deterministic back-pressure (and failures)
/// on every platform.
#[derive(Default)]
struct Gate {
    open: Cell<bool>,
    fail: Cell<bool>,
    out: RefCell<Vec<u8>>,
    waiters: RefCell<Vec<Waker>>,
    shut: Cell<bool>,
    writes: Cell<usize>,
}

impl Gate {
    fn set_open(&self, open: bool) {
        self.open.set(open);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

impl veloq::io::AsyncWrite for &Gate {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        let gate: &Gate = self;
        std::future::poll_fn(|cx| {
            if gate.open.get() {
                Poll::Ready(())
            } else {
                gate.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        if gate.fail.get() {
            return (Err(io::ErrorKind::ConnectionReset.into()), buf);
        }
        gate.writes.set(gate.writes.get() + 1);
        let n = buf.bytes_init().min(64);
        // SAFETY: `IoBuf` guarantees `bytes_init` initialised bytes.
        let bytes = unsafe { std::slice::from_raw_parts(buf.stable_ptr(), n) };
        gate.out.borrow_mut().extend_from_slice(bytes);
        (Ok(n), buf)
    }
    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    async fn shutdown(&mut self) -> io::Result<()> {
        self.shut.set(true);
        Ok(())
    }
}

/// One `poll_write` with a no-op waker.
fn poll_write<W: futures_util::io::AsyncWrite + Unpin>(
    io: &mut W,
    data: &[u8],
) -> Poll<io::Result<usize>> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(io).poll_write(&mut cx, data)
}

/// One `poll_write_vectored` with a no-op waker.
#[cfg(target_os = "linux")]
fn poll_write_vectored<W: futures_util::io::AsyncWrite + Unpin>(
    io: &mut W,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(io).poll_write_vectored(&mut cx, bufs)
}

/// One `poll_flush` with a no-op waker.
fn poll_flush<W: futures_util::io::AsyncWrite + Unpin>(io: &mut W) -> Poll<io::Result<()>> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(io).poll_flush(&mut cx)
}

mod gate {
    use super::*;

    fn ok(p: Poll<io::Result<usize>>) -> usize {
        match p {
            Poll::Ready(Ok(n)) => n,
            other => panic!("expected Ready(Ok), got {other:?}"),
        }
    }

    fn err_kind<T: std::fmt::Debug>(p: Poll<io::Result<T>>) -> io::ErrorKind {
        match p {
            Poll::Ready(Err(e)) => e.kind(),
            other => panic!("expected Ready(Err), got {other:?}"),
        }
    }

    /// The h2 case, step by step: only bytes of calls that returned
    /// `Ok(n)` go out, in order; a `Pending` call accepted nothing.
    #[test]
    fn pending_write_accepts_nothing() {
        let mut io = Compat::with_capacity(16, 100, Gate::default());
        let a = pattern(300, 1);
        let b = pattern(50, 2);
        // The first 100 bytes become the op (waiting at the gate), the
        // next 100 are staged, then both buffers are full.
        assert_eq!(ok(poll_write(&mut io, &a)), 100);
        assert_eq!(ok(poll_write(&mut io, &a[100..])), 100);
        assert!(poll_write(&mut io, &a[200..]).is_pending());
        // The caller moves on to other data.
        assert!(poll_write(&mut io, &b).is_pending());
        assert!(poll_flush(&mut io).is_pending());
        io.get_ref().set_open(true);
        assert_eq!(ok(poll_write(&mut io, &b)), 50);
        assert!(poll_flush(&mut io).is_ready());
        let mut expect = a[..200].to_vec();
        expect.extend_from_slice(&b);
        assert_eq!(*io.get_ref().out.borrow(), expect);
    }

    /// A failed op is reported by the next write-side call, whichever it
    /// is, and the stream stays broken.
    #[test]
    fn errors_reach_the_next_call() {
        // Failing at once: the bytes are accepted, the next call fails.
        let mut io = Compat::with_capacity(16, 100, Gate::default());
        io.get_ref().fail.set(true);
        io.get_ref().set_open(true);
        assert_eq!(ok(poll_write(&mut io, b"abc")), 3);
        assert_eq!(
            err_kind(poll_write(&mut io, b"def")),
            io::ErrorKind::ConnectionReset
        );
        assert_eq!(
            err_kind(poll_write(&mut io, b"def")),
            io::ErrorKind::ConnectionReset
        );
        assert_eq!(
            err_kind(poll_flush(&mut io)),
            io::ErrorKind::ConnectionReset
        );

        // Failing later: reported by the next poll_write, not held back
        // until a flush.
        let mut io = Compat::with_capacity(16, 100, Gate::default());
        assert_eq!(ok(poll_write(&mut io, b"abc")), 3);
        assert_eq!(ok(poll_write(&mut io, b"staged")), 6);
        io.get_ref().fail.set(true);
        io.get_ref().set_open(true);
        assert_eq!(
            err_kind(poll_write(&mut io, b"x")),
            io::ErrorKind::ConnectionReset
        );
        assert_eq!(
            err_kind(poll_flush(&mut io)),
            io::ErrorKind::ConnectionReset
        );
        assert!(io.get_ref().out.borrow().is_empty());
    }

    /// Writes collect while an op is in flight, so many small writes cost
    /// few ops, and they all arrive in order across back-pressure.
    #[test]
    fn small_writes_coalesce_across_back_pressure() {
        let mut io = Compat::with_capacity(16, 1000, Gate::default());
        let mut expect = Vec::new();
        for i in 0..5000u32 {
            let msg = i.to_le_bytes();
            loop {
                match poll_write(&mut io, &msg) {
                    Poll::Ready(Ok(n)) => {
                        assert_eq!(n, 4);
                        break;
                    }
                    Poll::Ready(Err(e)) => panic!("{e}"),
                    Poll::Pending => {
                        // Both buffers are full: let them drain.
                        io.get_ref().set_open(true);
                        assert!(matches!(poll_flush(&mut io), Poll::Ready(Ok(()))));
                        io.get_ref().set_open(false);
                    }
                }
            }
            expect.extend_from_slice(&msg);
        }
        io.get_ref().set_open(true);
        assert!(matches!(poll_flush(&mut io), Poll::Ready(Ok(()))));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            futures_util::io::AsyncWrite::poll_close(Pin::new(&mut io), &mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(*io.get_ref().out.borrow(), expect);
        assert!(io.get_ref().shut.get());
        let writes = io.get_ref().writes.get();
        assert!(
            writes < 1000,
            "{writes} writes for 5000 small ones: no coalescing"
        );
    }
}

// --- futures-io -----------------------------------------------------------------

mod futures {
    use super::*;
    use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    #[test]
    fn round_trips() {
        within(30, || {
            veloq::block_on(async {
                let mut io = Compat::new(echo_client().await);
                for i in 0..20u64 {
                    let msg = pattern(1 + i as usize * 5000, i);
                    io.write_all(&msg).await.unwrap();
                    io.flush().await.unwrap();
                    let mut reply = vec![0u8; msg.len()];
                    io.read_exact(&mut reply).await.unwrap();
                    assert!(reply == msg, "round {i}: wrong echo");
                }
            })
        });
    }

    #[test]
    fn large_transfer_both_ways_through_split_halves() {
        within(60, || {
            veloq::block_on(async {
                let (rd, wr) = echo_client().await.into_split();
                let (mut rd, mut wr) = (Compat::new(rd), Compat::new(wr));
                let data = pattern(16 << 20, 1);
                let sent = data.clone();
                let writer = veloq::spawn(async move {
                    // Uneven chunks, so writes straddle the buffer bounds.
                    for chunk in sent.chunks(12_345) {
                        wr.write_all(chunk).await.unwrap();
                    }
                    wr.close().await.unwrap();
                });
                let mut got = Vec::with_capacity(data.len());
                let mut chunk = vec![0u8; 7_777];
                while got.len() < data.len() {
                    let n = rd.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "early end of stream");
                    got.extend_from_slice(&chunk[..n]);
                }
                writer.await.unwrap();
                assert!(got == data, "echoed bytes differ");
            })
        });
    }

    #[test]
    fn copy_and_lines() {
        within(30, || {
            veloq::block_on(async {
                let (a, b) = tcp_pair().await;
                let (mut a, b) = (Compat::new(a), Compat::new(b));
                let text: String = (0..300).map(|i| format!("line {i}\n")).collect();
                let sent = text.clone();
                let writer = veloq::spawn(async move {
                    let n = futures_util::io::copy(sent.as_bytes(), &mut a)
                        .await
                        .unwrap();
                    a.close().await.unwrap();
                    n
                });
                let mut lines = b.lines();
                let mut got = String::new();
                while let Some(line) = futures_util::StreamExt::next(&mut lines).await {
                    got.push_str(&line.unwrap());
                    got.push('\n');
                }
                assert_eq!(writer.await.unwrap(), text.len() as u64);
                assert_eq!(got, text);
            })
        });
    }

    #[test]
    fn vectored_writes() {
        within(30, || {
            veloq::block_on(async {
                let mut io = Compat::new(echo_client().await);
                let bufs = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")];
                let n = io.write_vectored(&bufs).await.unwrap();
                assert_eq!(n, 5);
                io.flush().await.unwrap();
                let mut reply = [0u8; 5];
                io.read_exact(&mut reply).await.unwrap();
                assert_eq!(&reply, b"abcde");
            })
        });
    }

    #[test]
    fn close_ends_the_peers_stream_and_later_writes_fail() {
        within(30, || {
            veloq::block_on(async {
                let (a, b) = tcp_pair().await;
                let (mut a, mut b) = (Compat::new(a), Compat::new(b));
                a.write_all(b"bye").await.unwrap();
                a.close().await.unwrap();
                a.close().await.unwrap(); // idempotent
                let mut got = Vec::new();
                b.read_to_end(&mut got).await.unwrap();
                assert_eq!(got, b"bye");
                let err = a.write_all(b"more").await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
                // Reading goes on after close.
                b.write_all(b"reply").await.unwrap();
                b.flush().await.unwrap();
                let mut reply = [0u8; 5];
                a.read_exact(&mut reply).await.unwrap();
                assert_eq!(&reply, b"reply");
            })
        });
    }

    /// The h2 case: after a `Pending` poll_write, the caller writes other
    /// data; exactly the accepted bytes must arrive, in order.
    #[test]
    fn write_of_different_data_after_pending() {
        within(60, || {
            veloq::block_on(async {
                let (stream, mut peer) = std_peer().await;
                let go = Arc::new(AtomicBool::new(false));
                let go2 = go.clone();
                let reader = std::thread::spawn(move || {
                    while !go2.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    let mut all = Vec::new();
                    peer.read_to_end(&mut all).unwrap();
                    all
                });

                let mut io = Compat::with_capacity(1024, 16 * 1024, stream);
                let mut expect = Vec::new();
                let mut pendings = 0;
                let mut seed = 0u64;
                let mut msg = pattern(10_000, seed);
                let mut off = 0;
                let mut accepted_after_pending = 0;
                // The peer reads nothing until the first Pending, so the
                // socket buffers fill and poll_write must return Pending.
                // Each time it does, move on to a different message, as h2
                // does with its next frame.
                // Wine's sockets take any amount without pushing back: the
                // test then ends after 64 MiB without a Pending (the
                // `gate` tests below cover the logic on every platform).
                while pendings < 5 && expect.len() < 64 << 20 {
                    let res = {
                        let (io, chunk) = (&mut io, &msg[off..]);
                        std::future::poll_fn(|cx| {
                            Poll::Ready(Pin::new(&mut *io).poll_write(cx, chunk))
                        })
                        .await
                    };
                    match res {
                        Poll::Ready(Ok(n)) => {
                            assert!(n > 0);
                            expect.extend_from_slice(&msg[off..off + n]);
                            off += n;
                            if pendings > 0 {
                                accepted_after_pending += n;
                            }
                            if off < msg.len() {
                                continue;
                            }
                        }
                        Poll::Ready(Err(e)) => panic!("write failed: {e}"),
                        Poll::Pending => {
                            pendings += 1;
                            go.store(true, Ordering::SeqCst);
                            // Let the driver turn: the op completes as the
                            // peer drains.
                            veloq::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    seed += 1;
                    msg = pattern(10_000, seed);
                    off = 0;
                }
                assert!(pendings == 0 || accepted_after_pending > 0);
                io.write_all(b"the end").await.unwrap();
                expect.extend_from_slice(b"the end");
                io.close().await.unwrap();
                drop(io);
                let all = reader.join().unwrap();
                assert_eq!(all.len(), expect.len());
                assert!(all == expect, "the peer got other bytes than were accepted");
            })
        });
    }

    #[test]
    fn write_errors_are_reported_and_stick() {
        within(30, || {
            veloq::block_on(async {
                let (stream, peer) = std_peer().await;
                // Reset the connection: the peer closes with a zero linger.
                socket2::SockRef::from(&peer)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(peer);
                veloq::time::sleep(Duration::from_millis(50)).await;
                let mut io = Compat::new(stream);
                let chunk = vec![7u8; 64 * 1024];
                let mut err = None;
                for _ in 0..1000 {
                    let r = async {
                        io.write_all(&chunk).await?;
                        io.flush().await
                    };
                    if let Err(e) = r.await {
                        err = Some(e);
                        break;
                    }
                }
                let err = err.expect("writes to a reset connection never failed");
                assert!(
                    matches!(
                        err.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::ConnectionAborted
                    ),
                    "unexpected error {err:?}"
                );
                // The stream stays broken: the next write and flush fail
                // with the same kind.
                let again = io.write(b"x").await.unwrap_err();
                assert_eq!(again.kind(), err.kind());
                assert_eq!(io.flush().await.unwrap_err().kind(), err.kind());
            })
        });
    }

    /// A read future dropped while pending loses nothing: the op stays in
    /// the `Compat` and the next read resumes it.
    #[test]
    fn dropped_read_loses_nothing() {
        within(30, || {
            veloq::block_on(async {
                let (stream, mut peer) = std_peer().await;
                let mut io = Compat::new(stream);
                for round in 0..20u64 {
                    let mut buf = [0u8; 100];
                    let r =
                        veloq::time::timeout(Duration::from_millis(round % 3), io.read(&mut buf))
                            .await;
                    assert!(r.is_err(), "no data was sent yet");
                    let msg = pattern(50 + round as usize, round);
                    peer.write_all(&msg).unwrap();
                    let mut got = vec![0u8; msg.len()];
                    io.read_exact(&mut got).await.unwrap();
                    assert!(got == msg, "round {round}: bytes lost");
                }
            })
        });
    }

    /// Dropping the `Compat` (through `into_inner`) with a read op in
    /// flight: the op's bytes go to the stream's next read.
    #[test]
    fn into_inner_with_a_read_in_flight_keeps_the_bytes() {
        within(30, || {
            veloq::block_on(async {
                let (stream, mut peer) = std_peer().await;
                let mut io = Compat::new(stream);
                let mut buf = [0u8; 16];
                {
                    let mut read = io.read(&mut buf);
                    assert!(poll_once(Pin::new(&mut read)).await.is_pending());
                }
                peer.write_all(b"in flight").unwrap();
                // Let the op complete in the driver, unpolled.
                veloq::time::sleep(Duration::from_millis(30)).await;
                let stream = io.into_inner();
                let (res, got) = stream.read_exact(vec![0u8; 9]).await;
                res.unwrap();
                assert_eq!(got, b"in flight");
            })
        });
    }
}

// --- tokio ----------------------------------------------------------------------

mod tokio_io {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    #[test]
    fn round_trips() {
        within(30, || {
            veloq::block_on(async {
                let mut io = Compat::new(echo_client().await);
                for i in 0..20u64 {
                    let msg = pattern(1 + i as usize * 5000, i);
                    io.write_all(&msg).await.unwrap();
                    io.flush().await.unwrap();
                    let mut reply = vec![0u8; msg.len()];
                    io.read_exact(&mut reply).await.unwrap();
                    assert!(reply == msg, "round {i}: wrong echo");
                }
            })
        });
    }

    #[test]
    fn copy_through_an_echo_server() {
        within(60, || {
            veloq::block_on(async {
                let (rd, wr) = echo_client().await.into_split();
                let (mut rd, mut wr) = (Compat::new(rd), Compat::new(wr));
                let data = pattern(16 << 20, 2);
                let sent = data.clone();
                let writer = veloq::spawn(async move {
                    let n = tokio::io::copy(&mut sent.as_slice(), &mut wr)
                        .await
                        .unwrap();
                    wr.shutdown().await.unwrap();
                    n
                });
                let mut got = Vec::new();
                rd.read_to_end(&mut got).await.unwrap();
                assert_eq!(writer.await.unwrap(), data.len() as u64);
                assert!(got == data, "echoed bytes differ");
            })
        });
    }

    #[test]
    fn buffered_lines_and_vectored_writes() {
        within(30, || {
            veloq::block_on(async {
                let (a, b) = tcp_pair().await;
                let (mut a, b) = (Compat::new(a), Compat::new(b));
                assert!(tokio::io::AsyncWrite::is_write_vectored(&a));
                let writer = veloq::spawn(async move {
                    for i in 0..200 {
                        let head = format!("line {i}");
                        let bufs = [IoSlice::new(head.as_bytes()), IoSlice::new(b"\n")];
                        let n = a.write_vectored(&bufs).await.unwrap();
                        assert_eq!(n, head.len() + 1);
                    }
                    a.shutdown().await.unwrap();
                });
                let mut lines = b.lines();
                let mut n = 0;
                while let Some(line) = lines.next_line().await.unwrap() {
                    assert_eq!(line, format!("line {n}"));
                    n += 1;
                }
                assert_eq!(n, 200);
                writer.await.unwrap();
            })
        });
    }

    #[test]
    fn shutdown_then_write_fails() {
        within(30, || {
            veloq::block_on(async {
                let (a, b) = tcp_pair().await;
                let (mut a, mut b) = (Compat::new(a), Compat::new(b));
                a.write_all(b"done").await.unwrap();
                a.shutdown().await.unwrap();
                let mut got = String::new();
                b.read_to_string(&mut got).await.unwrap();
                assert_eq!(got, "done");
                let err = a.write_all(b"late").await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            })
        });
    }

    #[test]
    fn dropped_read_loses_nothing() {
        within(30, || {
            veloq::block_on(async {
                let (stream, mut peer) = std_peer().await;
                let mut io = Compat::new(stream);
                for round in 0..20u64 {
                    let mut buf = [0u8; 100];
                    let r =
                        veloq::time::timeout(Duration::from_millis(round % 3), io.read(&mut buf))
                            .await;
                    assert!(r.is_err(), "no data was sent yet");
                    let msg = pattern(50 + round as usize, round);
                    peer.write_all(&msg).unwrap();
                    let mut got = vec![0u8; msg.len()];
                    io.read_exact(&mut got).await.unwrap();
                    assert!(got == msg, "round {round}: bytes lost");
                }
            })
        });
    }
}

/// Large writes (8 KiB and more, all slices together) go straight from the
/// caller's slices to the socket on Linux; these tests hold that path and
/// its fallback to the stage to `Compat`'s guarantees, on every driver
/// (on Windows the same writes take the buffered path).
mod direct {
    use super::*;
    use futures_util::io::AsyncWriteExt;
    use util::Rng;

    /// Bytes written by `mixed_sizes_and_cancelled_writes_keep_order`:
    /// less under Wine, where every op is slow and its sockets never push
    /// back (so the stage path is all there is to exercise).
    #[cfg(not(windows))]
    const MIXED_TOTAL: usize = 16 << 20;
    #[cfg(windows)]
    const MIXED_TOTAL: usize = 1 << 20;

    /// A veloq stream and a reader thread on its peer that drains it slowly
    /// (a small receive buffer, a 3 ms pause every 128 KiB, so the socket
    /// fills and the writer must fall back to its stage); the thread
    /// returns everything it read.
    ///
    /// The receive buffer is set on the listening socket, before the
    /// handshake, so the window the peer advertises fits the connection's
    /// segment size. Shrinking it on the connected socket instead left a
    /// window (27 KiB) below the loopback MSS (32 KiB): the sender's
    /// silly-window avoidance then sent one window per persist-timer probe,
    /// about 27 KiB every 200 ms (`nstat`: one zero-window advertisement
    /// and one reopening per probe), and 16 MiB took minutes. Which runs
    /// fell into that state depended on timing: most with the io_uring
    /// driver, none of 12 with epoll.
    async fn slow_peer() -> (TcpStream, std::thread::JoinHandle<Vec<u8>>) {
        let listener = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        listener.set_recv_buffer_size(16 * 1024).unwrap();
        listener
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        listener.listen(1).unwrap();
        let listener: std::net::TcpListener = listener.into();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = peer.read(&mut buf).unwrap();
                if n == 0 {
                    return all;
                }
                all.extend_from_slice(&buf[..n]);
                if all.len() % (128 * 1024) < n {
                    // Longer than the 0-2 ms write timeouts below.
                    std::thread::sleep(Duration::from_millis(3));
                }
            }
        });
        (stream, reader)
    }

    /// A head and a 64 KiB body in one vectored call: one `sendmsg` takes
    /// far more than the 1 KiB stage could (Linux), and the peer gets the
    /// bytes in order.
    #[cfg(target_os = "linux")]
    #[test]
    fn head_and_body_skip_the_stage() {
        within(30, || {
            veloq::block_on(async {
                let (stream, reader) = slow_peer().await;
                let mut io = Compat::with_capacity(1024, 1024, stream);
                let head = pattern(120, 1);
                let body = pattern(64 * 1024, 2);
                let n =
                    match poll_write_vectored(&mut io, &[IoSlice::new(&head), IoSlice::new(&body)])
                    {
                        Poll::Ready(Ok(n)) => n,
                        other => panic!("expected Ready(Ok), got {other:?}"),
                    };
                assert!(n > 1024, "only {n} bytes accepted: the stage was used");
                let mut expect = head.clone();
                expect.extend_from_slice(&body);
                io.write_all(&expect[n..]).await.unwrap();
                io.close().await.unwrap();
                drop(io);
                assert!(reader.join().unwrap() == expect);
            })
        });
    }

    /// Random sizes on both sides of the threshold, plain and vectored,
    /// each write under a random 0-2 ms timeout, against a slow reader: the
    /// direct path, the would-block fallback to the stage and back, and
    /// writes dropped while pending. Exactly the bytes of the calls that
    /// returned `Ok(n)` arrive, in order, none twice.
    #[test]
    fn mixed_sizes_and_cancelled_writes_keep_order() {
        within(120, || {
            veloq::block_on(async {
                let (stream, reader) = slow_peer().await;
                let mut io = Compat::with_capacity(1024, 4096, stream);
                let mut rng = Rng::new(7);
                let mut expect = Vec::new();
                let data = pattern(1 << 20, 7);
                let mut cancelled = 0;
                while expect.len() < MIXED_TOTAL {
                    let len = 1 + rng.below(100_000) as usize;
                    let at = rng.below((data.len() - len) as u64) as usize;
                    let msg = &data[at..at + len];
                    let split = rng.below(len as u64) as usize;
                    let limit = Duration::from_micros(rng.below(2000));
                    let vectored = rng.below(2) == 0;
                    let res = veloq::time::timeout(limit, async {
                        if vectored {
                            let bufs = [IoSlice::new(&msg[..split]), IoSlice::new(&msg[split..])];
                            io.write_vectored(&bufs).await
                        } else {
                            io.write(msg).await
                        }
                    })
                    .await;
                    match res {
                        Ok(Ok(n)) => {
                            assert!(n > 0 && n <= len);
                            expect.extend_from_slice(&msg[..n]);
                        }
                        Ok(Err(e)) => panic!("write failed: {e}"),
                        Err(_) => cancelled += 1,
                    }
                }
                io.close().await.unwrap();
                drop(io);
                let all = reader.join().unwrap();
                assert_eq!(all.len(), expect.len());
                assert!(all == expect, "the peer got other bytes than were accepted");
                eprintln!("{cancelled} writes cancelled while pending");
            })
        });
    }

    /// A failed large write is reported by `poll_write` itself (no flush
    /// is ever called), and the stream stays broken.
    #[test]
    fn write_error_surfaces_without_flush() {
        within(30, || {
            veloq::block_on(async {
                let (stream, peer) = std_peer().await;
                socket2::SockRef::from(&peer)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(peer);
                veloq::time::sleep(Duration::from_millis(50)).await;
                let mut io = Compat::new(stream);
                let chunk = vec![7u8; 64 * 1024];
                let mut err = None;
                for _ in 0..100 {
                    match io.write(&chunk).await {
                        Ok(n) => assert!(n > 0),
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                let err = err.expect("poll_write never reported the reset");
                assert!(
                    matches!(
                        err.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::ConnectionAborted
                    ),
                    "unexpected error {err:?}"
                );
                assert_eq!(io.write(&chunk).await.unwrap_err().kind(), err.kind());
            })
        });
    }
}

/// The measurement behind the buffer size (module docs of `compat`, "Sizes"):
/// 256 MiB over loopback between two `Compat`s, written and read in 16 KiB
/// pieces (a TLS record, an h2 frame), for several buffer sizes. Run with
/// `cargo test --release -p veloq --features futures-io,tokio --test compat
/// -- --ignored --nocapture throughput`.
#[test]
#[ignore = "a measurement, not a check"]
fn throughput_by_buffer_size() {
    use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    const TOTAL: usize = 256 << 20;
    const PIECE: usize = 16 * 1024;
    for size in [
        4 << 10,
        8 << 10,
        16 << 10,
        32 << 10,
        64 << 10,
        128 << 10,
        256 << 10,
    ] {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let secs = veloq::block_on(async move {
                let (a, b) = tcp_pair().await;
                let (mut w, mut r) = (
                    Compat::with_capacity(size, size, a),
                    Compat::with_capacity(size, size, b),
                );
                let start = std::time::Instant::now();
                let writer = veloq::spawn(async move {
                    let piece = vec![1u8; PIECE];
                    for _ in 0..TOTAL / PIECE {
                        w.write_all(&piece).await.unwrap();
                    }
                    w.close().await.unwrap();
                });
                let mut piece = vec![0u8; PIECE];
                let mut got = 0;
                loop {
                    let n = r.read(&mut piece).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                writer.await.unwrap();
                assert_eq!(got, TOTAL);
                start.elapsed().as_secs_f64()
            });
            best = best.min(secs);
        }
        eprintln!(
            "buffers of {:>3} KiB: {:>6.0} MiB/s (best of 3)",
            size >> 10,
            (TOTAL >> 20) as f64 / best
        );
    }
    // The baseline: the same transfer on the streams' own owned-buffer
    // ops, 64 KiB per op, no `Compat` and no copies.
    let mut best = f64::MAX;
    for _ in 0..3 {
        let secs = veloq::block_on(async {
            let (a, b) = tcp_pair().await;
            let start = std::time::Instant::now();
            let writer = veloq::spawn(async move {
                let mut piece = vec![1u8; 64 << 10];
                for _ in 0..TOTAL / piece.len() {
                    let (res, p) = a.write_all(piece).await;
                    res.unwrap();
                    piece = p;
                }
            });
            let mut piece = Vec::with_capacity(64 << 10);
            let mut got = 0;
            while got < TOTAL {
                piece.clear();
                let (res, p) = b.read(piece).await;
                piece = p;
                got += res.unwrap();
            }
            writer.await.unwrap();
            start.elapsed().as_secs_f64()
        });
        best = best.min(secs);
    }
    eprintln!(
        "owned ops, 64 KiB, no Compat: {:>6.0} MiB/s (best of 3)",
        (TOTAL >> 20) as f64 / best
    );
}
