//! [`BufReader`] and [`BufWriter`]: buffering over the owned-buffer traits.
//!
//! Both own one `Vec<u8>` that they hand to the inner reader or writer by
//! value for each op and get back with the result. Should such an op's
//! future be dropped (cancelled), the `Vec` goes with it and the next op
//! allocates a fresh one; see each type's "Cancellation" section for what
//! happens to the bytes.

use std::fmt;
use std::io;
use std::mem;

use super::traits::{init_bytes, AsyncRead, AsyncWrite, Tail};
use crate::buf::{BufResult, IoBuf, IoBufMut};

/// The default buffer capacity of both types (as std's and tokio's).
const DEFAULT_CAPACITY: usize = 8 * 1024;

/// Copies as much of `src` as fits into `buf[..bytes_total]` and marks it
/// initialised; returns the count.
fn copy_into<B: IoBufMut>(src: &[u8], buf: &mut B) -> usize {
    let n = src.len().min(buf.bytes_total());
    if n > 0 {
        // SAFETY: `stable_mut_ptr` is valid for writes of `bytes_total`
        // bytes (`IoBufMut`) and `n <= bytes_total`; `src` is a different
        // allocation (a shared borrow, while `buf` is borrowed mutably).
        // The first `n` bytes are then initialised, so `set_init(n)` is
        // sound.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), buf.stable_mut_ptr(), n);
            buf.set_init(n);
        }
    }
    n
}

/// Adds a buffer to a reader: small reads are served from one large read
/// of the inner reader.
///
/// A read at least as large as the buffer, made while the buffer is
/// empty, goes straight to the inner reader. [`fill_buf`](Self::fill_buf)
/// and [`consume`](Self::consume) give access to the buffered bytes
/// without copying; [`read_until`](Self::read_until) and
/// [`read_line`](Self::read_line) split on a delimiter.
///
/// # Cancellation
///
/// `fill_buf` and `read` are cancel-safe when the inner reader's `read`
/// is (as veloq's sockets are): a fill is only started with an empty
/// buffer, and bytes of a dropped inner read go to its next read.
/// `read_until` and `read_line` are not: what they had appended goes with
/// their buffer.
///
/// ```no_run
/// use veloq::io::BufReader;
/// use veloq::net::TcpStream;
///
/// # veloq::block_on(async {
/// let stream = TcpStream::connect("127.0.0.1:8080").await?;
/// let mut reader = BufReader::new(stream);
/// let (res, line) = reader.read_line(String::new()).await;
/// res?;
/// println!("first line: {line:?}");
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct BufReader<R> {
    inner: R,
    /// `buf[pos..]` is buffered, unread data; empty (capacity 0) after a
    /// cancelled fill.
    buf: Vec<u8>,
    pos: usize,
    cap: usize,
}

impl<R> BufReader<R> {
    /// Wraps `inner` with an 8 KiB buffer (allocated on the first fill).
    pub fn new(inner: R) -> BufReader<R> {
        BufReader::with_capacity(DEFAULT_CAPACITY, inner)
    }

    /// Wraps `inner` with a buffer of `capacity` bytes (at least 1).
    pub fn with_capacity(capacity: usize, inner: R) -> BufReader<R> {
        BufReader {
            inner,
            buf: Vec::new(),
            pos: 0,
            cap: capacity.max(1),
        }
    }

    /// The buffered bytes not read yet.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// The buffer's capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Marks the first `amt` buffered bytes read (at most all of them).
    pub fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.buf.len());
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The inner reader, mutably. Reading from it directly skips the
    /// buffered bytes.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The inner reader back; buffered bytes not read yet are lost (see
    /// [`buffer`](Self::buffer)).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn discard_buffer(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }
}

impl<R: AsyncRead> BufReader<R> {
    /// The buffered bytes, after one read of the inner reader if there
    /// were none. Empty at end of stream. Mark what you used with
    /// [`consume`](Self::consume).
    pub async fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.buf.len() {
            // Take the Vec out for the op; should this future be dropped
            // mid-read, the reader is left empty and consistent.
            let mut buf = mem::take(&mut self.buf);
            self.pos = 0;
            buf.clear();
            if buf.capacity() < self.cap {
                buf.reserve_exact(self.cap);
            }
            let (res, mut buf) = self.inner.read(buf).await;
            match &res {
                Ok(n) => buf.truncate(*n),
                Err(_) => buf.clear(),
            }
            self.buf = buf;
            res?;
        }
        Ok(&self.buf[self.pos..])
    }

    /// Reads until `byte` (included) or end of stream, appending to `buf`;
    /// returns how many bytes were appended (0 at end of stream).
    pub async fn read_until(&mut self, byte: u8, mut buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        let start = buf.len();
        loop {
            let avail = match self.fill_buf().await {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return (Err(e), buf),
            };
            if avail.is_empty() {
                return (Ok(buf.len() - start), buf);
            }
            let (used, done) = match avail.iter().position(|&b| b == byte) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            buf.extend_from_slice(&avail[..used]);
            self.consume(used);
            if done {
                return (Ok(buf.len() - start), buf);
            }
        }
    }

    /// Reads one line (up to and including `\n`, or to end of stream),
    /// appending it to `line`; returns how many bytes were appended (0 at
    /// end of stream).
    ///
    /// # Errors
    ///
    /// `InvalidData` if the new bytes are not UTF-8; `line` is then handed
    /// back as it was (the bytes are consumed).
    pub async fn read_line(&mut self, line: String) -> BufResult<usize, String> {
        let start = line.len();
        let (res, bytes) = self.read_until(b'\n', line.into_bytes()).await;
        match String::from_utf8(bytes) {
            Ok(s) => (res, s),
            Err(e) => {
                let mut bytes = e.into_bytes();
                bytes.truncate(start);
                // The first `start` bytes came from a `String`, and
                // truncating there keeps them whole.
                let line = String::from_utf8(bytes).unwrap_or_default();
                let err = res.err().unwrap_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "stream did not contain valid UTF-8",
                    )
                });
                (Err(err), line)
            }
        }
    }
}

impl<R: AsyncRead> AsyncRead for BufReader<R> {
    async fn read<B: IoBufMut>(&mut self, mut buf: B) -> BufResult<usize, B> {
        if buf.bytes_total() == 0 {
            return (Ok(0), buf);
        }
        if self.pos >= self.buf.len() && buf.bytes_total() >= self.cap {
            // Nothing buffered and a large read: no point copying.
            self.discard_buffer();
            return self.inner.read(buf).await;
        }
        let n = match self.fill_buf().await {
            Ok(avail) => copy_into(avail, &mut buf),
            Err(e) => return (Err(e), buf),
        };
        self.consume(n);
        (Ok(n), buf)
    }
}

/// Writes go to the inner writer unbuffered.
impl<R: AsyncWrite> AsyncWrite for BufReader<R> {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        self.inner.write(buf).await
    }
    async fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().await
    }
    async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

impl<R: fmt::Debug> fmt::Debug for BufReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufReader")
            .field("inner", &self.inner)
            .field("buffered", &(self.buf.len() - self.pos))
            .field("capacity", &self.cap)
            .finish()
    }
}

/// Adds a buffer to a writer: small writes are collected and go to the
/// inner writer in one write when the buffer is full or on
/// [`flush`](AsyncWrite::flush).
///
/// A write at least as large as the buffer goes straight to the inner
/// writer (after the buffered bytes). Call `flush` (or `shutdown`) before
/// dropping the writer: dropping it loses what is buffered.
///
/// # Cancellation
///
/// Not cancel-safe: a dropped `write`, `flush` or `shutdown` that was
/// writing the buffer loses the buffered bytes, and some of them may
/// already have been written.
///
/// ```no_run
/// use veloq::io::{AsyncWrite, AsyncWriteExt, BufWriter};
/// use veloq::net::TcpStream;
///
/// # veloq::block_on(async {
/// let stream = TcpStream::connect("127.0.0.1:8080").await?;
/// let mut writer = BufWriter::new(stream);
/// for i in 0..100 {
///     let (res, _) = writer.write_all(format!("line {i}\n").into_bytes()).await;
///     res?;
/// }
/// writer.flush().await?; // one write for all 100 lines
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct BufWriter<W> {
    inner: W,
    /// Buffered bytes not written yet; empty (capacity 0) after a
    /// cancelled write of the buffer.
    buf: Vec<u8>,
    cap: usize,
}

impl<W> BufWriter<W> {
    /// Wraps `inner` with an 8 KiB buffer (allocated on the first write).
    pub fn new(inner: W) -> BufWriter<W> {
        BufWriter::with_capacity(DEFAULT_CAPACITY, inner)
    }

    /// Wraps `inner` with a buffer of `capacity` bytes (at least 1).
    pub fn with_capacity(capacity: usize, inner: W) -> BufWriter<W> {
        BufWriter {
            inner,
            buf: Vec::new(),
            cap: capacity.max(1),
        }
    }

    /// The buffered bytes not written yet.
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// The buffer's capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, mutably. Writing to it directly overtakes the
    /// buffered bytes.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The inner writer back; buffered bytes not written yet are lost
    /// (flush first).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: AsyncWrite> BufWriter<W> {
    /// Writes the whole buffer to the inner writer. On an error the bytes
    /// not written stay buffered.
    async fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut buf = mem::take(&mut self.buf);
        let mut written = 0;
        let res = loop {
            if written >= buf.len() {
                break Ok(());
            }
            let (res, tail) = self.inner.write(Tail::new(buf, written)).await;
            buf = tail.into_inner();
            match res {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.drain(..written);
        self.buf = buf;
        res
    }
}

impl<W: AsyncWrite> AsyncWrite for BufWriter<W> {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        let len = buf.bytes_init();
        if len == 0 {
            return (Ok(0), buf);
        }
        if self.buf.len() + len > self.cap {
            if let Err(e) = self.flush_buf().await {
                return (Err(e), buf);
            }
        }
        if len >= self.cap {
            // The buffer is empty now, and this would fill it: skip it.
            return self.inner.write(buf).await;
        }
        if self.buf.capacity() < self.cap {
            self.buf.reserve_exact(self.cap - self.buf.len());
        }
        self.buf.extend_from_slice(init_bytes(&buf));
        (Ok(len), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_buf().await?;
        self.inner.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.flush_buf().await?;
        self.inner.shutdown().await
    }
}

/// Reads come from the inner reader unbuffered.
impl<W: AsyncRead> AsyncRead for BufWriter<W> {
    async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        self.inner.read(buf).await
    }
}

impl<W: fmt::Debug> fmt::Debug for BufWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufWriter")
            .field("inner", &self.inner)
            .field("buffered", &self.buf.len())
            .field("capacity", &self.cap)
            .finish()
    }
}
