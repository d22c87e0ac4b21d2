//! The owned-buffer I/O traits ([`AsyncRead`], [`AsyncWrite`]) and their
//! extension traits ([`AsyncReadExt`], [`AsyncWriteExt`]).
//!
//! The shape follows the completion model: a read or write takes its
//! buffer by value and hands it back with the result
//! ([`BufResult`](crate::BufResult)), because the kernel works on the
//! memory after the call that started the operation has returned.

use std::future::Future;
use std::io;

use crate::buf::{BufResult, IoBuf, IoBufMut};

/// A source of bytes read into owned buffers.
///
/// Implemented by [`TcpStream`](crate::net::TcpStream) (and `&TcpStream`,
/// so one task may read while another writes), its
/// [`OwnedReadHalf`](crate::net::tcp::OwnedReadHalf),
/// [`BufReader`](super::BufReader) and `&mut R` for any reader `R`.
///
/// The trait is not object safe (its method is generic over the buffer);
/// take readers as generic parameters.
pub trait AsyncRead {
    /// Reads once into `buf[..bytes_total]`, from the start of the buffer;
    /// returns how many bytes came, `n`, and marks `buf[..n]` initialised.
    /// `Ok(0)` means end of stream (or a buffer with no capacity).
    ///
    /// Whether a dropped read loses bytes depends on the implementation;
    /// veloq's sockets are cancel-safe (the bytes go to the next read).
    fn read<B: IoBufMut>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>>;
}

/// A sink of bytes written from owned buffers.
///
/// Implemented by [`TcpStream`](crate::net::TcpStream) (and `&TcpStream`),
/// its [`OwnedWriteHalf`](crate::net::tcp::OwnedWriteHalf),
/// [`BufWriter`](super::BufWriter) and `&mut W` for any writer `W`.
pub trait AsyncWrite {
    /// Writes once from `buf[..bytes_init]`; returns how many bytes were
    /// taken, possibly fewer than offered.
    fn write<B: IoBuf>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>>;

    /// Sends whatever the writer buffers itself (a no-op for sockets,
    /// which buffer nothing above the kernel).
    fn flush(&mut self) -> impl Future<Output = io::Result<()>>;

    /// Flushes, then shuts down the write side: the peer reads end of
    /// stream. Reading may go on.
    ///
    /// On a [`TcpStream`](crate::net::TcpStream), call it as
    /// `AsyncWrite::shutdown(&mut stream)`: the stream's inherent
    /// `shutdown(how)` takes precedence in method-call syntax.
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>>;
}

impl<R: AsyncRead + ?Sized> AsyncRead for &mut R {
    fn read<B: IoBufMut>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>> {
        (**self).read(buf)
    }
}

impl<R: AsyncRead + ?Sized> AsyncRead for Box<R> {
    fn read<B: IoBufMut>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>> {
        (**self).read(buf)
    }
}

impl<W: AsyncWrite + ?Sized> AsyncWrite for &mut W {
    fn write<B: IoBuf>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>> {
        (**self).write(buf)
    }
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        (**self).flush()
    }
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        (**self).shutdown()
    }
}

impl<W: AsyncWrite + ?Sized> AsyncWrite for Box<W> {
    fn write<B: IoBuf>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>> {
        (**self).write(buf)
    }
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        (**self).flush()
    }
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        (**self).shutdown()
    }
}

/// Loops built on [`AsyncRead::read`]; implemented for every reader.
pub trait AsyncReadExt: AsyncRead {
    /// Reads until `buf[..bytes_total]` is full.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the stream ends first (the bytes that came are
    /// marked initialised in the buffer handed back), or the first read
    /// error.
    ///
    /// Not cancel-safe: a dropped `read_exact` loses what it had filled
    /// in with its buffer.
    fn read_exact<B: IoBufMut>(&mut self, buf: B) -> impl Future<Output = BufResult<(), B>> {
        async move {
            let total = buf.bytes_total();
            let mut filled = 0;
            let mut buf = buf;
            while filled < total {
                let (res, tail) = self.read(Tail::new(buf, filled)).await;
                buf = tail.into_inner();
                match res {
                    Ok(0) => return (Err(unexpected_eof()), buf),
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return (Err(e), buf),
                }
            }
            (Ok(()), buf)
        }
    }

    /// Reads until end of stream, appending to `buf` (growing it as
    /// needed); returns how many bytes were appended.
    ///
    /// On an error the bytes appended so far stay in the buffer handed
    /// back. Not cancel-safe (the buffer goes with a dropped future).
    fn read_to_end(&mut self, buf: Vec<u8>) -> impl Future<Output = BufResult<usize, Vec<u8>>> {
        async move {
            let start = buf.len();
            let mut buf = buf;
            loop {
                if buf.capacity() - buf.len() < MIN_READ_SPARE {
                    // At least doubles the buffer, so a long stream costs
                    // O(log n) reallocations, and each read may fill a
                    // large spare region.
                    buf.reserve(buf.len().max(READ_TO_END_FIRST));
                }
                let off = buf.len();
                let (res, tail) = self.read(Tail::new(buf, off)).await;
                buf = tail.into_inner();
                match res {
                    Ok(0) => return (Ok(buf.len() - start), buf),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return (Err(e), buf),
                }
            }
        }
    }
}

impl<R: AsyncRead + ?Sized> AsyncReadExt for R {}

/// Loops built on [`AsyncWrite::write`]; implemented for every writer.
pub trait AsyncWriteExt: AsyncWrite {
    /// Writes all of `buf[..bytes_init]`, issuing further writes of the
    /// rest after a partial one.
    ///
    /// # Errors
    ///
    /// `WriteZero` if the writer takes no bytes, or the first write error.
    /// Not cancel-safe: a dropped `write_all` may have written part of the
    /// buffer.
    fn write_all<B: IoBuf>(&mut self, buf: B) -> impl Future<Output = BufResult<(), B>> {
        async move {
            let total = buf.bytes_init();
            let mut sent = 0;
            let mut buf = buf;
            while sent < total {
                let (res, tail) = self.write(Tail::new(buf, sent)).await;
                buf = tail.into_inner();
                match res {
                    Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return (Err(e), buf),
                }
            }
            (Ok(()), buf)
        }
    }
}

impl<W: AsyncWrite + ?Sized> AsyncWriteExt for W {}

/// Spare capacity below which `read_to_end` grows its buffer.
const MIN_READ_SPARE: usize = 4 * 1024;
/// What `read_to_end` reserves first for an empty buffer.
const READ_TO_END_FIRST: usize = 16 * 1024;

fn unexpected_eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "stream ended before the buffer was full",
    )
}

/// The bytes of `buf[..bytes_init]` as a slice.
pub(crate) fn init_bytes<B: IoBuf>(buf: &B) -> &[u8] {
    let len = buf.bytes_init();
    if len == 0 {
        // The pointer of an empty buffer may be anything (even null).
        return &[];
    }
    // SAFETY: `IoBuf` guarantees `stable_ptr` points to `bytes_init`
    // initialised bytes that stay valid while `buf` is borrowed.
    unsafe { std::slice::from_raw_parts(buf.stable_ptr(), len) }
}

/// A view of `buf` from byte `off` on: what the loops above hand to one
/// `read`/`write` after a partial one, so the next op continues where the
/// last one stopped. Marking bytes of the view initialised marks the same
/// bytes (plus the `off` before them) in the whole buffer.
pub(crate) struct Tail<B> {
    buf: B,
    off: usize,
}

impl<B: IoBuf> Tail<B> {
    /// The view of `buf[off..]`.
    ///
    /// # Panics
    ///
    /// If `off > buf.bytes_total()`.
    pub(crate) fn new(buf: B, off: usize) -> Tail<B> {
        assert!(
            off <= buf.bytes_total(),
            "offset past the end of the buffer"
        );
        Tail { buf, off }
    }

    /// The whole buffer back.
    pub(crate) fn into_inner(self) -> B {
        self.buf
    }
}

// SAFETY: the view's memory is the buffer's from `off` on, which stays
// put with the buffer (`IoBuf`'s own guarantee). `off <= bytes_total`
// (checked in `new`), so the pointer stays inside the buffer, and the
// view's initialised bytes are the buffer's initialised bytes past `off`.
unsafe impl<B: IoBuf> IoBuf for Tail<B> {
    fn stable_ptr(&self) -> *const u8 {
        // In bounds: `off <= bytes_total` (see `new`).
        self.buf.stable_ptr().wrapping_add(self.off)
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().saturating_sub(self.off)
    }
    fn bytes_total(&self) -> usize {
        self.buf.bytes_total() - self.off
    }
    fn fixed_index(&self) -> Option<u16> {
        // A pointer inside a registered buffer is valid for a fixed op.
        self.buf.fixed_index()
    }
}

// SAFETY: as for `IoBuf`; the buffer's memory past `off` is writable for
// `bytes_total - off` bytes.
unsafe impl<B: IoBufMut> IoBufMut for Tail<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr().wrapping_add(self.off)
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: the caller guarantees `view[..pos]` is initialised and
        // `pos <= bytes_total - off`; the loops that make a `Tail` only
        // use offsets whose prefix `buf[..off]` is initialised (bytes a
        // previous read filled and marked), so `buf[..off + pos]` is.
        unsafe { self.buf.set_init(self.off + pos) };
    }
}
