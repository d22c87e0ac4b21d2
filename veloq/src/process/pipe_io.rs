//! The calls on a child's pipe that are the same however the pipe is
//! driven (`pipe_fd` on Linux, `pipe_pool` elsewhere): each backend says
//! how to read or write *once*, and these traits build `read`,
//! `read_exact`, `write` and `write_all` on top.
//!
//! # Invariants
//!
//! - What a dropped future loses is the backend's business (see its
//!   module docs): across an await the loops here hold only the buffer
//!   and a count, so their futures are `Send` whenever the buffer is.
//! - `read_exact` and `write_all` report `UnexpectedEof` and `WriteZero`
//!   when a call makes no progress, never loop on it.

use std::io;

use crate::buf::{BufResult, IoBuf, IoBufMut};

/// A pipe end that can be read once at an offset of a buffer.
pub(super) trait PipeRead {
    /// Reads once into `buf[off..bytes_total]` and marks what came
    /// initialised; `Ok(0)` is end of file.
    ///
    /// # Safety
    ///
    /// `off <= buf.bytes_init()` and `off < buf.bytes_total()`.
    async unsafe fn read_at<B: IoBufMut>(&self, buf: &mut B, off: usize) -> io::Result<usize>;

    /// One read into `buf` from its start; `Ok(0)` at end of file or for
    /// a buffer with no room.
    async fn read<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
        if buf.bytes_total() == 0 {
            return (Ok(0), buf);
        }
        // SAFETY: a read starts at 0 of a buffer with room.
        let res = unsafe { self.read_at(&mut buf, 0).await };
        (res, buf)
    }

    /// Reads until `buf` is full; `UnexpectedEof` if the pipe ends first.
    async fn read_exact<B: IoBufMut>(&self, mut buf: B) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let mut filled = 0;
        while filled < total {
            // SAFETY: `buf[..filled]` was filled by earlier rounds, and
            // `filled < total`.
            match unsafe { self.read_at(&mut buf, filled).await } {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, "the pipe closed early");
                    return (Err(e), buf);
                }
                Ok(n) => filled += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }
}

/// A pipe end that can be written once from a byte slice.
pub(super) trait PipeWrite {
    /// Writes once from `bytes` (`bytes` is not empty); returns how many
    /// bytes the pipe took.
    async fn write_bytes(&self, bytes: &[u8]) -> io::Result<usize>;

    /// One write from `buf[..bytes_init]`; `Ok(0)` for an empty buffer.
    async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        if buf.bytes_init() == 0 {
            return (Ok(0), buf);
        }
        let res = self.write_bytes(init_bytes(&buf)).await;
        (res, buf)
    }

    /// Writes all of `buf[..bytes_init]`; `WriteZero` if the pipe takes
    /// nothing.
    async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let bytes = init_bytes(&buf);
        let mut done = 0;
        while done < bytes.len() {
            match self.write_bytes(&bytes[done..]).await {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "the pipe took no bytes");
                    return (Err(e), buf);
                }
                Ok(n) => done += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }
}

/// `buf[..bytes_init]`.
fn init_bytes<B: IoBuf>(buf: &B) -> &[u8] {
    if buf.bytes_init() == 0 {
        return &[]; // an empty buffer's pointer may be anything, even null
    }
    // SAFETY: `IoBuf` promises `bytes_init` initialised bytes at
    // `stable_ptr`, valid while `buf` is borrowed.
    unsafe { std::slice::from_raw_parts(buf.stable_ptr(), buf.bytes_init()) }
}
