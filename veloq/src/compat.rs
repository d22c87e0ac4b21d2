//! Poll-based I/O traits for veloq streams: [`Compat`] implements
//! `futures_io::{AsyncRead, AsyncBufRead, AsyncWrite}` (feature
//! `futures-io`) and `tokio::io::{AsyncRead, AsyncBufRead, AsyncWrite}`
//! (feature `tokio`), so protocol crates written against those traits run
//! on veloq.
//!
//! ```no_run
//! # #[cfg(feature = "futures-io")]
//! # fn main() {
//! use futures_util::io::{AsyncReadExt, AsyncWriteExt};
//! use veloq::compat::Compat;
//! use veloq::net::TcpStream;
//!
//! veloq::block_on(async {
//!     let stream = TcpStream::connect("127.0.0.1:8080").await?;
//!     let mut io = Compat::new(stream);
//!     io.write_all(b"ping").await?;
//!     io.flush().await?; // written data is buffered until flushed
//!     let mut reply = [0u8; 4];
//!     io.read_exact(&mut reply).await?;
//!     Ok::<(), std::io::Error>(())
//! })
//! .unwrap();
//! # }
//! # #[cfg(not(feature = "futures-io"))]
//! # fn main() {}
//! ```
//!
//! # Design: buffered, over the owned-buffer ops
//!
//! The poll traits lend the caller's memory for the length of one `poll_*`
//! call, while a completion-based op needs memory that outlives the call
//! (the kernel fills it later). `Compat` therefore owns its buffers and
//! copies between them and the caller's slices, using the same ops (and
//! the same cancel-safe reads) as the rest of veloq, so it behaves the
//! same on io_uring, epoll and IOCP.
//!
//! One exception, on Linux: a write of 8 KiB or more (hyper's response
//! head plus a large body, say) to a `TcpStream` or `UnixStream`, made
//! while nothing is staged and no write op is in flight, is first tried
//! as one non-blocking `sendmsg` straight from the caller's slices (see
//! `compat/direct.rs`): no copy, no op, no allocation. What the socket
//! takes is accepted; if it would block, the write takes the buffered
//! path below, whose op waits for the socket. The call never leaves
//! anything in flight, so the guarantees below hold unchanged.
//!
//! - **Reads.** One read op at a time fills a 64 KiB read buffer; the op's
//!   future (which owns the buffer) is kept inside the `Compat`, so a
//!   `poll_read` that returned `Pending` is resumed by the next one: the op
//!   is never dropped mid-flight except with the `Compat` itself, and even
//!   then veloq's reads are cancel-safe (what the op took goes to the
//!   stream's next read). No byte is lost. Reads are served from the
//!   buffer until it is empty, then the next op is started.
//! - **Writes.** `poll_write` copies into a write buffer and returns
//!   `Ok(n)` only for bytes it copied; when no write op is in flight it
//!   starts one for the buffer at once (so data does not sit waiting for
//!   a flush), and while one is in flight further writes collect in a
//!   second buffer that becomes the next op. A `Pending` poll_write has
//!   accepted nothing, so a caller may retry with different data (as h2
//!   does) and only the data of the accepted calls goes out, in order.
//!   When both buffers are full `poll_write` returns `Pending` until the
//!   op completes: memory per stream is bounded (64 KiB read, two 64 KiB
//!   write buffers, the second allocated only when writes overlap an op).
//! - **Errors.** A write op's error is stored and returned by the next
//!   `poll_write`, `poll_flush` or `poll_close` (never swallowed, never
//!   held back until a flush); the stream is then broken: bytes accepted
//!   after the failed ones are discarded, and every later write or flush
//!   fails with the same error kind.
//! - **Flush and close.** `poll_flush` drives the buffers empty, then the
//!   stream's own `flush`. Data accepted while an op was in flight is sent
//!   by the next `poll_write` or `poll_flush`: as with any buffered writer,
//!   flush before waiting on the peer. `poll_close` (futures) /
//!   `poll_shutdown` (tokio) flushes, then shuts down the write side;
//!   writes after it fail with `BrokenPipe`.
//!
//! Sizes: 64 KiB per buffer. An op has a fixed cost (a submission, a
//! completion, a task wake-up) whatever its size, so the buffer size
//! bounds the ops per megabyte. Measured with `throughput_by_buffer_size`
//! in `tests/compat.rs` (256 MiB over loopback between two `Compat`s,
//! written and read in 16 KiB pieces, one worker, io_uring, on a shared
//! 2-core VM), in MiB/s:
//!
//! | buffers | 4 KiB | 8 KiB | 16 KiB | 32 KiB | 64 KiB | 128 KiB | 256 KiB |
//! |---------|------:|------:|-------:|-------:|-------:|--------:|--------:|
//! | MiB/s   |   420 |   860 |  1540  |  2730  |  3510  |   4720  |   5180  |
//!
//! (the owned-buffer ops themselves, 64 KiB per op: 4490 MiB/s). 64 KiB
//! runs at four times the throughput of 8 KiB and at about 70% of 256 KiB
//! for a quarter of the memory per connection; on epoll the curve is flat
//! beyond 16–64 KiB. [`Compat::with_capacity`] chooses other sizes.
//!
//! The op futures' types cannot be named (the owned-buffer traits return
//! `impl Future`), so they live behind trait objects; each kind of op
//! (read, write, flush) gets one allocation on first use, reused by every
//! later op of that kind (`compat/slot.rs`), not one allocation per op.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use crate::buf::BufResult;
use crate::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

mod direct;
mod slot;

use slot::BoxSlot;

/// Default read buffer size; see the module docs ("Sizes").
const DEFAULT_READ_CAPACITY: usize = 64 * 1024;
/// Default size of each of the two write buffers.
const DEFAULT_WRITE_CAPACITY: usize = 64 * 1024;

type ReadSlot = BoxSlot<Vec<u8>, BufResult<usize, Vec<u8>>>;
type WriteSlot = BoxSlot<Vec<u8>, BufResult<(), Vec<u8>>>;
type FlushSlot = BoxSlot<(), io::Result<()>>;
type UnitOp = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// A veloq stream seen through the poll-based `futures-io` and `tokio`
/// I/O traits; see the [module docs](self) for the design.
///
/// `S` is a stream whose owned-buffer reads and writes work through a
/// shared reference (`&S: AsyncRead` for reading, `&S: AsyncWrite` for
/// writing), as [`TcpStream`](crate::net::TcpStream)'s do: the read op and
/// the write op are in flight at the same time. The split halves work too
/// (a read half gives a reader, a write half a writer).
///
/// Call `flush` (or `close` / `shutdown`) before dropping a `Compat` that
/// was written to: dropping it cancels a write in flight and discards the
/// buffered bytes.
pub struct Compat<S> {
    stream: Rc<S>,
    read: ReadSide,
    write: WriteSide,
}

/// The read buffer and the op filling it.
struct ReadSide {
    /// `buf[pos..]` holds bytes read and not yet handed out. Empty while
    /// an op is in flight (the op owns the `Vec` then).
    buf: Vec<u8>,
    pos: usize,
    cap: usize,
    /// Where the read ops run (made on first use, reused).
    op: Option<ReadSlot>,
}

impl ReadSide {
    /// Whether a read op is in flight.
    fn reading(&self) -> bool {
        self.op.as_ref().is_some_and(|s| s.running())
    }
}

/// The write buffers, the ops, and the error state.
struct WriteSide {
    /// Bytes accepted and not yet handed to an op (at most `cap`).
    stage: Vec<u8>,
    /// The `Vec` of the last completed op, kept for reuse.
    spare: Vec<u8>,
    cap: usize,
    /// Where the write ops run (made on first use, reused); one in flight
    /// writes all of its buffer.
    op: Option<WriteSlot>,
    /// Where the stream's `flush` runs (after the buffers drained).
    flush: Option<FlushSlot>,
    /// The stream's `shutdown` in progress.
    shutdown: Option<UnitOp>,
    /// Shut down successfully: no more writes.
    closed: bool,
    /// An op's error not yet returned to the caller.
    error: Option<io::Error>,
    /// Set when an op failed: the stream is broken for writing.
    broken: Option<io::ErrorKind>,
}

impl WriteSide {
    /// Whether a write op is in flight.
    fn writing(&self) -> bool {
        self.op.as_ref().is_some_and(|s| s.running())
    }

    /// The error the next write-side call must return, if any.
    fn take_error(&mut self) -> Option<io::Error> {
        if let Some(e) = self.error.take() {
            return Some(e);
        }
        self.broken
            .map(|kind| io::Error::new(kind, "an earlier write to this stream failed"))
    }
}

impl<S: 'static> Compat<S> {
    /// Wraps `stream` with 64 KiB read and write buffers (allocated on
    /// first use).
    pub fn new(stream: S) -> Compat<S> {
        Compat::with_capacity(DEFAULT_READ_CAPACITY, DEFAULT_WRITE_CAPACITY, stream)
    }

    /// Wraps `stream` with a read buffer of `read_capacity` bytes and two
    /// write buffers of `write_capacity` bytes each (each at least 1).
    pub fn with_capacity(read_capacity: usize, write_capacity: usize, stream: S) -> Compat<S> {
        Compat {
            stream: Rc::new(stream),
            read: ReadSide {
                buf: Vec::new(),
                pos: 0,
                cap: read_capacity.max(1),
                op: None,
            },
            write: WriteSide {
                stage: Vec::new(),
                spare: Vec::new(),
                cap: write_capacity.max(1),
                op: None,
                flush: None,
                shutdown: None,
                closed: false,
                error: None,
                broken: None,
            },
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The bytes read from the stream and not yet handed out.
    pub fn read_buffer(&self) -> &[u8] {
        &self.read.buf[self.read.pos..]
    }

    /// The stream back. Ops in flight are cancelled (a cancelled read's
    /// bytes go to the stream's next read); bytes in the read buffer
    /// ([`read_buffer`](Self::read_buffer)) and unflushed written bytes
    /// are discarded.
    pub fn into_inner(self) -> S {
        let Compat {
            stream,
            read,
            write,
        } = self;
        // The op futures hold the only other references to the stream.
        drop(read);
        drop(write);
        Rc::try_unwrap(stream).unwrap_or_else(|_| unreachable!("only the ops share the stream"))
    }
}

impl<S: 'static> Compat<S>
where
    for<'a> &'a S: AsyncRead,
{
    /// The buffered bytes, after one read op if there were none; empty at
    /// end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let r = &mut self.read;
        if r.pos < r.buf.len() {
            return Poll::Ready(Ok(&r.buf[r.pos..]));
        }
        let op = r.op.get_or_insert_with(|| {
            let stream = self.stream.clone();
            slot::boxed(move |buf: Vec<u8>| {
                let stream = stream.clone();
                async move {
                    let mut reader: &S = &stream;
                    AsyncRead::read(&mut reader, buf).await
                }
            })
        });
        if !op.running() {
            let mut buf = mem::take(&mut r.buf);
            buf.clear();
            r.pos = 0;
            if buf.capacity() < r.cap {
                buf.reserve_exact(r.cap);
            }
            op.as_mut().start(buf);
        }
        let (res, mut buf) = ready!(op.as_mut().poll_op(cx));
        match res {
            Ok(n) => {
                buf.truncate(n);
                r.buf = buf;
                Poll::Ready(Ok(&r.buf[..]))
            }
            Err(e) => {
                buf.clear();
                r.buf = buf;
                Poll::Ready(Err(e))
            }
        }
    }

    fn consume(&mut self, amt: usize) {
        let r = &mut self.read;
        r.pos = (r.pos + amt).min(r.buf.len());
    }

    /// Copies buffered bytes (after a read op if there were none) into
    /// `dst`; `Ok(0)` at end of stream or for an empty `dst`.
    #[cfg(feature = "futures-io")]
    fn poll_read_into(&mut self, cx: &mut Context<'_>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
        if dst.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let avail = ready!(self.poll_fill(cx))?;
        let n = avail.len().min(dst.len());
        dst[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }
}

impl<S: 'static> Compat<S>
where
    for<'a> &'a S: AsyncWrite,
{
    /// Drives the write op; when it completes, starts the next one with
    /// the staged bytes. `Ready(Ok)` once both buffers are empty,
    /// `Pending` while an op is in flight (its waker registered),
    /// `Ready(Err)` when an op failed (the stream is then broken).
    fn drive_writes(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let w = &mut self.write;
        loop {
            if let Some(op) = w.op.as_mut().filter(|op| op.running()) {
                let (res, mut buf) = ready!(op.as_mut().poll_op(cx));
                buf.clear();
                w.spare = buf;
                if let Err(e) = res {
                    w.broken = Some(e.kind());
                    // What was accepted after the failed bytes cannot go
                    // out in order any more.
                    w.stage.clear();
                    return Poll::Ready(Err(e));
                }
            }
            if w.stage.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let buf = mem::replace(&mut w.stage, mem::take(&mut w.spare));
            let op = w.op.get_or_insert_with(|| {
                let stream = self.stream.clone();
                slot::boxed(move |buf: Vec<u8>| {
                    let stream = stream.clone();
                    async move {
                        let mut writer: &S = &stream;
                        writer.write_all(buf).await
                    }
                })
            });
            op.as_mut().start(buf);
        }
    }

    /// Accepts as many bytes of `bufs` as the stage has room for; see the
    /// module docs ("Writes").
    fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.write.take_error() {
            return Poll::Ready(Err(e));
        }
        if self.write.closed || self.write.shutdown.is_some() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after the stream was shut down",
            )));
        }
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        if let Poll::Ready(Err(e)) = self.drive_writes(cx) {
            return Poll::Ready(Err(e));
        }
        if !self.write.writing() && self.write.stage.is_empty() && direct::worth_it(bufs) {
            // Nothing buffered can be overtaken: send from the caller's
            // slices (see `direct`); if the socket would block, buffer.
            match direct::try_write(&*self.stream, bufs) {
                Some(Ok(n)) => return Poll::Ready(Ok(n)),
                Some(Err(e)) => {
                    self.write.broken = Some(e.kind());
                    return Poll::Ready(Err(e));
                }
                None => {}
            }
        }
        let w = &mut self.write;
        let room = w.cap - w.stage.len();
        if room == 0 {
            // `drive_writes` starts an op whenever none is in flight and
            // bytes are staged, so a full stage means an op is pending
            // and has our waker.
            return Poll::Pending;
        }
        if w.stage.capacity() == 0 {
            w.stage = mem::take(&mut w.spare);
            if w.stage.capacity() < w.cap {
                w.stage.reserve_exact(w.cap);
            }
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(room - n);
            w.stage.extend_from_slice(&b[..take]);
            n += take;
            if n == room {
                break;
            }
        }
        if !w.writing() {
            // Start sending now. The bytes are accepted whatever happens,
            // so an immediate failure is reported by the next call.
            if let Poll::Ready(Err(e)) = self.drive_writes(cx) {
                self.write.error = Some(e);
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write.closed {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = self.write.take_error() {
            return Poll::Ready(Err(e));
        }
        ready!(self.drive_writes(cx))?;
        let w = &mut self.write;
        let op = w.flush.get_or_insert_with(|| {
            let stream = self.stream.clone();
            slot::boxed(move |()| {
                let stream = stream.clone();
                async move {
                    let mut writer: &S = &stream;
                    AsyncWrite::flush(&mut writer).await
                }
            })
        });
        if !op.running() {
            op.as_mut().start(());
        }
        op.as_mut().poll_op(cx)
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write.closed {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = self.write.take_error() {
            return Poll::Ready(Err(e));
        }
        ready!(self.drive_writes(cx))?;
        let w = &mut self.write;
        // Shutting down flushes the stream itself.
        w.flush = None;
        let op = w.shutdown.get_or_insert_with(|| {
            let stream = self.stream.clone();
            Box::pin(async move {
                let mut writer: &S = &stream;
                AsyncWrite::shutdown(&mut writer).await
            })
        });
        let res = ready!(op.as_mut().poll(cx));
        w.shutdown = None;
        w.closed = res.is_ok();
        Poll::Ready(res)
    }
}

impl<S: fmt::Debug> fmt::Debug for Compat<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compat")
            .field("stream", &self.stream)
            .field("read_buffered", &(self.read.buf.len() - self.read.pos))
            .field("reading", &self.read.reading())
            .field("write_staged", &self.write.stage.len())
            .field("writing", &self.write.writing())
            .field("closed", &self.write.closed)
            .finish()
    }
}

#[cfg(feature = "futures-io")]
mod futures_impls {
    use super::*;

    impl<S: 'static> futures_io::AsyncRead for Compat<S>
    where
        for<'a> &'a S: AsyncRead,
    {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_read_into(cx, buf)
        }
    }

    impl<S: 'static> futures_io::AsyncBufRead for Compat<S>
    where
        for<'a> &'a S: AsyncRead,
    {
        fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
            self.get_mut().poll_fill(cx)
        }

        fn consume(self: Pin<&mut Self>, amt: usize) {
            self.get_mut().consume(amt);
        }
    }

    impl<S: 'static> futures_io::AsyncWrite for Compat<S>
    where
        for<'a> &'a S: AsyncWrite,
    {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_slices(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_slices(cx, bufs)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_flush_inner(cx)
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_close_inner(cx)
        }
    }
}

#[cfg(feature = "tokio")]
mod tokio_impls {
    use super::*;
    use tokio::io::ReadBuf;

    impl<S: 'static> tokio::io::AsyncRead for Compat<S>
    where
        for<'a> &'a S: AsyncRead,
    {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let avail = ready!(this.poll_fill(cx))?;
            let n = avail.len().min(buf.remaining());
            buf.put_slice(&avail[..n]);
            this.consume(n);
            Poll::Ready(Ok(()))
        }
    }

    impl<S: 'static> tokio::io::AsyncBufRead for Compat<S>
    where
        for<'a> &'a S: AsyncRead,
    {
        fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
            self.get_mut().poll_fill(cx)
        }

        fn consume(self: Pin<&mut Self>, amt: usize) {
            self.get_mut().consume(amt);
        }
    }

    impl<S: 'static> tokio::io::AsyncWrite for Compat<S>
    where
        for<'a> &'a S: AsyncWrite,
    {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_slices(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_slices(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_flush_inner(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_close_inner(cx)
        }
    }
}
