//! The owned-buffer I/O traits (`veloq::io::{AsyncRead, AsyncWrite}` and
//! their `Ext` loops), `TcpStream::into_split`, `veloq::io::copy` and the
//! owned `BufReader` / `BufWriter`: over loopback TCP on whatever driver
//! runs the suite, and over in-memory readers and writers that take a few
//! bytes at a time (to exercise every partial-op path).

mod util;

use std::io;
use std::time::Duration;

use util::{pattern, spawn_echo_server, tcp_pair, within};
use veloq::buf::{BufResult, IoBuf, IoBufMut};
use veloq::io::{copy, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use veloq::net::{TcpListener, TcpStream};

// --- in-memory reader and writer -----------------------------------------------

/// Yields `data` at most `chunk` bytes per read, then end of stream.
struct ChunkReader {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
    reads: usize,
}

impl ChunkReader {
    fn new(data: Vec<u8>, chunk: usize) -> ChunkReader {
        ChunkReader {
            data,
            pos: 0,
            chunk,
            reads: 0,
        }
    }
}

impl AsyncRead for ChunkReader {
    async fn read<B: IoBufMut>(&mut self, mut buf: B) -> BufResult<usize, B> {
        self.reads += 1;
        let n = (self.data.len() - self.pos)
            .min(self.chunk)
            .min(buf.bytes_total());
        // SAFETY: `n <= bytes_total`; the bytes are then initialised.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data[self.pos..].as_ptr(), buf.stable_mut_ptr(), n);
            buf.set_init(n);
        }
        self.pos += n;
        (Ok(n), buf)
    }
}

/// Takes at most `chunk` bytes per write; records each write's size, and
/// flushes and shutdowns.
#[derive(Default)]
struct ChunkWriter {
    out: Vec<u8>,
    chunk: usize,
    writes: Vec<usize>,
    flushes: usize,
    shut: bool,
    /// Fail every write after this many bytes.
    fail_after: Option<usize>,
}

impl ChunkWriter {
    fn new(chunk: usize) -> ChunkWriter {
        ChunkWriter {
            chunk,
            ..ChunkWriter::default()
        }
    }
}

impl AsyncWrite for ChunkWriter {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        if self.fail_after.is_some_and(|limit| self.out.len() >= limit) {
            return (Err(io::ErrorKind::BrokenPipe.into()), buf);
        }
        let n = buf.bytes_init().min(self.chunk);
        // SAFETY: `IoBuf` guarantees `bytes_init` initialised bytes.
        let bytes = unsafe { std::slice::from_raw_parts(buf.stable_ptr(), n) };
        self.out.extend_from_slice(bytes);
        self.writes.push(n);
        (Ok(n), buf)
    }
    async fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        Ok(())
    }
    async fn shutdown(&mut self) -> io::Result<()> {
        self.shut = true;
        Ok(())
    }
}

#[test]
fn ext_loops_over_partial_reads_and_writes() {
    veloq::block_on(async {
        let data = pattern(10_000, 1);

        // read_exact into a Vec and into a Box<[u8]>, 7 bytes per read.
        let mut r = ChunkReader::new(data.clone(), 7);
        let (res, v) = r.read_exact(Vec::with_capacity(1000)).await;
        res.unwrap();
        assert_eq!(v, data[..1000]);
        let (res, b) = r.read_exact(vec![0u8; 3000].into_boxed_slice()).await;
        res.unwrap();
        assert_eq!(&b[..], &data[1000..4000]);

        // read_to_end appends after what the Vec holds.
        let (res, v) = r.read_to_end(b"head".to_vec()).await;
        assert_eq!(res.unwrap(), 6000);
        assert_eq!(&v[..4], b"head");
        assert_eq!(v[4..], data[4000..]);

        // At end of stream read_exact fails with UnexpectedEof.
        let (res, _) = r.read_exact(vec![0u8; 1]).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let mut short = ChunkReader::new(b"abc".to_vec(), 2);
        let (res, v) = short.read_exact(Vec::with_capacity(5)).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(v, b"abc", "the bytes that came are kept");

        // write_all over a writer taking 5 bytes per write.
        let mut w = ChunkWriter::new(5);
        let (res, _) = w.write_all(data.clone()).await;
        res.unwrap();
        assert_eq!(w.out, data);
        assert_eq!(w.writes.len(), 2000);

        // Through `&mut`, as generic code passes them.
        let mut r = ChunkReader::new(data.clone(), 999);
        let mut w = ChunkWriter::new(1 << 20);
        let n = copy(&mut r, &mut w).await.unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(w.out, data);
        assert_eq!(w.flushes, 1, "copy flushes at the end");
    });
}

#[test]
fn buf_reader_serves_small_reads_from_one_fill() {
    veloq::block_on(async {
        let data = pattern(100_000, 2);
        let mut r = BufReader::with_capacity(4096, ChunkReader::new(data.clone(), 1 << 20));
        let mut got = Vec::new();
        loop {
            let (res, b) = r.read(Vec::with_capacity(10)).await;
            let n = res.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&b[..n]);
        }
        assert_eq!(got, data);
        let reads = r.get_ref().reads;
        assert!(
            reads <= data.len() / 4096 + 2,
            "{reads} inner reads for 4 KiB fills"
        );

        // A read as large as the buffer skips it when nothing is buffered.
        let mut r = BufReader::with_capacity(64, ChunkReader::new(data.clone(), 1 << 20));
        let (res, b) = r.read(Vec::with_capacity(50_000)).await;
        assert_eq!(res.unwrap(), 50_000);
        assert_eq!(b, data[..50_000]);
        assert_eq!(r.get_ref().reads, 1);
        assert!(r.buffer().is_empty());
    });
}

#[test]
fn buf_reader_lines_and_fill_buf() {
    veloq::block_on(async {
        let text = b"alpha\nbeta\n\ngamma without newline".to_vec();
        let mut r = BufReader::with_capacity(4, ChunkReader::new(text, 3));
        let mut lines = Vec::new();
        loop {
            let (res, line) = r.read_line(String::new()).await;
            if res.unwrap() == 0 {
                break;
            }
            lines.push(line);
        }
        assert_eq!(lines, ["alpha\n", "beta\n", "\n", "gamma without newline"]);

        let mut r = BufReader::new(ChunkReader::new(b"a,bb,ccc".to_vec(), 100));
        assert_eq!(r.fill_buf().await.unwrap(), b"a,bb,ccc");
        r.consume(2);
        let (res, field) = r.read_until(b',', Vec::new()).await;
        assert_eq!(res.unwrap(), 3);
        assert_eq!(field, b"bb,");
        assert_eq!(r.buffer(), b"ccc");

        // Invalid UTF-8: InvalidData, and the line handed back unchanged.
        let mut r = BufReader::new(ChunkReader::new(vec![b'x', 0xff, b'\n'], 100));
        let (res, line) = r.read_line("keep".to_string()).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(line, "keep");
    });
}

#[test]
fn buf_writer_coalesces_and_flushes() {
    veloq::block_on(async {
        let mut w = BufWriter::with_capacity(100, ChunkWriter::new(1 << 20));
        let mut expect = Vec::new();
        for i in 0..50u8 {
            let msg = vec![i; 10];
            expect.extend_from_slice(&msg);
            let (res, _) = w.write_all(msg).await;
            res.unwrap();
        }
        assert!(
            w.get_ref().writes.iter().all(|&n| n == 100),
            "{:?}",
            w.get_ref().writes
        );
        w.flush().await.unwrap();
        assert_eq!(w.get_ref().out, expect);
        assert_eq!(w.get_ref().flushes, 1);

        // A write as large as the buffer goes straight through (after
        // what is buffered).
        let (res, _) = w.write_all(b"small".to_vec()).await;
        res.unwrap();
        let big = pattern(1000, 3);
        let (res, _) = w.write_all(big.clone()).await;
        res.unwrap();
        expect.extend_from_slice(b"small");
        expect.extend_from_slice(&big);
        assert_eq!(w.get_ref().out, expect);
        assert!(w.buffer().is_empty());

        // Shutdown flushes, then shuts the inner writer down.
        let (res, _) = w.write_all(b"tail".to_vec()).await;
        res.unwrap();
        AsyncWrite::shutdown(&mut w).await.unwrap();
        expect.extend_from_slice(b"tail");
        assert_eq!(w.get_ref().out, expect);
        assert!(w.get_ref().shut);
    });
}

#[test]
fn buf_writer_keeps_unwritten_bytes_after_an_error() {
    veloq::block_on(async {
        let mut inner = ChunkWriter::new(3);
        inner.fail_after = Some(6);
        let mut w = BufWriter::with_capacity(100, inner);
        let (res, _) = w.write_all(b"0123456789".to_vec()).await;
        res.unwrap();
        let err = w.flush().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(w.get_ref().out, b"012345");
        assert_eq!(w.buffer(), b"6789", "the bytes not written stay buffered");
        w.get_mut().fail_after = None;
        w.flush().await.unwrap();
        assert_eq!(w.get_ref().out, b"0123456789");
    });
}

// --- TCP --------------------------------------------------------------------

/// Generic code over the traits, as a protocol crate would write it.
async fn request<S: AsyncRead + AsyncWrite>(io: &mut S, msg: &[u8]) -> io::Result<Vec<u8>> {
    let (res, _) = io.write_all(msg.to_vec()).await;
    res?;
    io.flush().await?;
    let (res, reply) = io.read_exact(vec![0u8; msg.len()]).await;
    res?;
    Ok(reply)
}

#[test]
fn tcp_stream_and_its_reference_implement_the_traits() {
    within(30, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            spawn_echo_server(listener);

            let mut stream = TcpStream::connect(addr).await.unwrap();
            for i in 0..10u64 {
                let msg = pattern(100 + i as usize * 1000, i);
                assert_eq!(request(&mut stream, &msg).await.unwrap(), msg);
            }
            let mut by_ref = &stream;
            let msg = pattern(70_000, 99);
            assert_eq!(request(&mut by_ref, &msg).await.unwrap(), msg);

            // Reading and writing at once through two `&TcpStream`s.
            let data = pattern(4 << 20, 5);
            let (mut rd, mut wr) = (&stream, &stream);
            let write = async {
                let (res, _) = AsyncWriteExt::write_all(&mut wr, data.clone()).await;
                res.unwrap();
            };
            let read = async {
                let (res, got) =
                    AsyncReadExt::read_exact(&mut rd, Vec::with_capacity(data.len())).await;
                res.unwrap();
                got
            };
            let ((), got) = join(write, read).await;
            assert!(got == data, "echoed bytes differ");
        })
    });
}

#[test]
fn tcp_shutdown_through_the_trait_ends_the_peers_stream() {
    within(30, || {
        veloq::block_on(async {
            let (mut client, server) = tcp_pair().await;
            let (res, _) = client.write_all(b"last words".to_vec()).await;
            res.unwrap();
            AsyncWrite::shutdown(&mut client).await.unwrap();
            let mut server = server;
            let (res, got) = server.read_to_end(Vec::new()).await;
            assert_eq!(res.unwrap(), 10);
            assert_eq!(got, b"last words");
            // The other direction still works.
            let (res, _) = AsyncWriteExt::write_all(&mut server, b"reply".to_vec()).await;
            res.unwrap();
            let (res, got) = AsyncReadExt::read_exact(&mut client, vec![0u8; 5]).await;
            res.unwrap();
            assert_eq!(got, b"reply");
        })
    });
}

#[test]
fn split_halves_in_two_tasks() {
    within(30, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            spawn_echo_server(listener);

            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut rd, mut wr) = stream.into_split();
            assert_eq!(rd.peer_addr().unwrap(), addr);
            assert_eq!(wr.local_addr().unwrap(), rd.local_addr().unwrap());

            let data = pattern(8 << 20, 6);
            let sent = data.clone();
            let writer = veloq::spawn(async move {
                for chunk in sent.chunks(100_000) {
                    let (res, _) = AsyncWriteExt::write_all(&mut wr, chunk.to_vec()).await;
                    res.unwrap();
                }
                wr
            });
            let reader = veloq::spawn(async move {
                let (res, got) =
                    AsyncReadExt::read_exact(&mut rd, Vec::with_capacity(8 << 20)).await;
                res.unwrap();
                (rd, got)
            });
            let wr = writer.await.unwrap();
            let (rd, got) = reader.await.unwrap();
            assert!(got == data, "echoed bytes differ");

            // Reunited, the stream still works.
            let stream = rd.reunite(wr).unwrap();
            let (res, _) = stream.write_all(b"again".to_vec()).await;
            res.unwrap();
            let (res, got) = stream.read_exact(vec![0u8; 5]).await;
            res.unwrap();
            assert_eq!(got, b"again");
        })
    });
}

#[test]
fn dropping_the_write_half_shuts_down_the_write_side() {
    within(30, || {
        veloq::block_on(async {
            let (client, server) = tcp_pair().await;
            let (rd, wr) = client.into_split();
            let (res, _) = wr.write_all(b"bye".to_vec()).await;
            res.unwrap();
            drop(wr);
            let mut server = server;
            let (res, got) = server.read_to_end(Vec::new()).await;
            assert_eq!(res.unwrap(), 3, "the peer reads end of stream");
            assert_eq!(got, b"bye");
            // The read half still reads.
            let (res, _) = server.write_all(b"still here".to_vec()).await;
            res.unwrap();
            let (res, got) = rd.read_exact(vec![0u8; 10]).await;
            res.unwrap();
            assert_eq!(got, b"still here");

            // `forget` drops the write half without the shutdown.
            let (client, server) = tcp_pair().await;
            let (rd, wr) = client.into_split();
            wr.forget();
            let (res, _) = server.write_all(b"x".to_vec()).await;
            res.unwrap();
            let (res, _) = rd.read_exact(vec![0u8; 1]).await;
            res.unwrap();
            let read =
                veloq::time::timeout(Duration::from_millis(100), server.read(vec![0u8; 1])).await;
            assert!(read.is_err(), "no end of stream after forget");
        })
    });
}

#[test]
fn reunite_rejects_halves_of_different_streams() {
    within(30, || {
        veloq::block_on(async {
            let (a, _a_peer) = tcp_pair().await;
            let (b, _b_peer) = tcp_pair().await;
            let (a_rd, a_wr) = a.into_split();
            let (b_rd, b_wr) = b.into_split();
            let err = a_rd.reunite(b_wr).unwrap_err();
            assert!(err.to_string().contains("not from the same stream"));
            let veloq::net::tcp::ReuniteError(a_rd, b_wr) = err;
            a_rd.reunite(a_wr).unwrap();
            b_wr.reunite(b_rd).unwrap();
        })
    });
}

#[test]
fn copy_echoes_through_split_halves() {
    within(60, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // An echo server built from `copy`: it returns when the client
            // shuts down its write side, and dropping the write half then
            // ends the client's stream.
            let server = veloq::spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                let (mut rd, mut wr) = stream.into_split();
                copy(&mut rd, &mut wr).await.unwrap()
            });

            let client = TcpStream::connect(addr).await.unwrap();
            let (rd, mut wr) = client.into_split();
            let data = pattern(6 << 20, 7);
            let sent = data.clone();
            let writer = veloq::spawn(async move {
                let (res, _) = wr.write_all(sent).await;
                res.unwrap();
                AsyncWrite::shutdown(&mut wr).await.unwrap();
            });
            let mut rd = rd;
            let (res, got) = rd.read_to_end(Vec::new()).await;
            assert_eq!(res.unwrap(), data.len());
            assert!(got == data, "echoed bytes differ");
            writer.await.unwrap();
            assert_eq!(server.await.unwrap(), data.len() as u64);
        })
    });
}

#[test]
fn buffered_reader_and_writer_over_tcp() {
    within(30, || {
        veloq::block_on(async {
            let (client, server) = tcp_pair().await;
            let lines: Vec<String> = (0..500).map(|i| format!("line number {i}\n")).collect();
            let sent = lines.clone();
            let writer = veloq::spawn(async move {
                let mut w = BufWriter::new(client);
                for l in sent {
                    let (res, _) = w.write_all(l.into_bytes()).await;
                    res.unwrap();
                }
                AsyncWrite::shutdown(&mut w).await.unwrap();
            });
            let mut r = BufReader::new(server);
            let mut got = Vec::new();
            loop {
                let (res, line) = r.read_line(String::new()).await;
                if res.unwrap() == 0 {
                    break;
                }
                got.push(line);
            }
            assert_eq!(got, lines);
            writer.await.unwrap();
        })
    });
}

#[test]
fn buf_reader_fill_is_cancel_safe_over_tcp() {
    within(30, || {
        veloq::block_on(async {
            let (client, server) = tcp_pair().await;
            let mut r = BufReader::new(client);
            let mut sent = Vec::new();
            for round in 0..50u64 {
                // A fill cut short by a timeout (before or after data came,
                // depending on the round) may lose nothing.
                let _ = veloq::time::timeout(Duration::from_micros(50 * round), r.fill_buf()).await;
                let msg = pattern(1 + round as usize * 37, round);
                sent.extend_from_slice(&msg);
                let (res, _) = server.write_all(msg).await;
                res.unwrap();
            }
            AsyncWrite::shutdown(&mut &server).await.unwrap();
            let (res, got) = r.read_to_end(Vec::new()).await;
            res.unwrap();
            assert!(
                got == sent,
                "bytes lost or reordered across cancelled fills"
            );
        })
    });
}

/// Runs two futures to completion, interleaved on this task.
async fn join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    (ra.unwrap(), rb.unwrap())
}
