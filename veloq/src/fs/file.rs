//! [`File`]: an open file whose reads, writes and flushes are driver ops.
//!
//! # Invariants
//!
//! - `fd` is `inner`'s raw handle and was passed to `register_handle`
//!   exactly once, in [`File::from_opened`].
//! - An op's description points into the buffer its `Op` future owns, so
//!   that memory stays put and alive while the kernel may touch it.
//! - The handle is closed exactly once: by [`File::close`] (which takes it
//!   out of `inner` first) or, without it, by `inner`'s drop.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::path::Path;

use super::OpenOptions;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::driver::Driver;
use crate::io::op::{self, Close, Fallocate, Fsync, Op, ReadFixed, SyncFileRange, WriteFixed};
use crate::runtime::context;
use crate::sys::{self, RawFd};

/// An open file.
///
/// All I/O is positional: `read_at` and `write_at` name the file offset,
/// and many may be in flight at once. Close it with [`close`](Self::close)
/// to learn about errors on close; dropping it closes the handle
/// synchronously and ignores them.
///
/// ```no_run
/// use veloq::fs::File;
///
/// async fn roundtrip() -> std::io::Result<()> {
///     let file = File::create("data.bin").await?;
///     let (res, _) = file.write_all_at(b"hello".to_vec(), 0).await;
///     res?;
///     file.sync_all().await?;
///     let (res, buf) = file.read_exact_at(vec![0u8; 5], 0).await;
///     res?;
///     assert_eq!(buf, b"hello");
///     file.close().await
/// }
///
/// veloq::block_on(roundtrip()).unwrap();
/// ```
pub struct File {
    inner: std::fs::File,
    fd: RawFd,
    _not_send: PhantomData<*const ()>,
}

/// Clamps a buffer length to what one op can carry.
fn op_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl File {
    /// Opens `path` read-only.
    ///
    /// # Errors
    ///
    /// `NotFound` if it does not exist, and the system's other errors.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` write-only, creating it if missing and truncating it if
    /// present.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Wraps a handle an `Open` op returned and registers it.
    ///
    /// # Safety
    ///
    /// `fd` must be an open file handle that nothing else owns.
    pub(crate) unsafe fn from_opened(fd: RawFd) -> io::Result<File> {
        // SAFETY: the caller passes sole ownership; `inner` closes it once.
        let inner = unsafe { sys::file_from_raw(fd) };
        // On failure `inner` is dropped here, closing the handle.
        context::with_driver(|d| d.register_handle(fd))?;
        Ok(File {
            inner,
            fd,
            _not_send: PhantomData,
        })
    }

    /// Reads once at `pos` into `buf[..bytes_total]`; returns the bytes
    /// read (`0` at or past the end of the file) and marks them
    /// initialised. A registered [`FixedBuf`](crate::buf::FixedBuf) is read
    /// into without per-op page pinning.
    pub async fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        self.read_into(buf, 0, pos).await
    }

    /// Writes once from `buf[..bytes_init]` at `pos`; returns the bytes
    /// written (possibly fewer than offered).
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        self.write_from(buf, 0, pos).await
    }

    /// Reads at `pos` until `buf[..bytes_total]` is full.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the file ends first (the bytes read so far are
    /// marked initialised).
    pub async fn read_exact_at<B: IoBufMut>(&self, mut buf: B, pos: u64) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let mut filled = 0;
        while filled < total {
            let (res, b) = self.read_into(buf, filled, pos + filled as u64).await;
            buf = b;
            match res {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ended before the buffer was full",
                    );
                    return (Err(e), buf);
                }
                Ok(n) => filled += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Writes all of `buf[..bytes_init]` at `pos`, issuing further writes
    /// from the same buffer after a partial one.
    ///
    /// # Errors
    ///
    /// `WriteZero` if the system accepts no bytes.
    pub async fn write_all_at<B: IoBuf>(&self, mut buf: B, pos: u64) -> BufResult<(), B> {
        let total = buf.bytes_init();
        let mut written = 0;
        while written < total {
            let (res, b) = self.write_from(buf, written, pos + written as u64).await;
            buf = b;
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => written += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Flushes data and metadata to the device (`fsync`).
    pub async fn sync_all(&self) -> io::Result<()> {
        self.fsync(false).await
    }

    /// Flushes data, and only the metadata needed to read it back, to the
    /// device (`fdatasync`).
    pub async fn sync_data(&self) -> io::Result<()> {
        self.fsync(true).await
    }

    /// Starts writeback of `len` bytes at `offset` and waits for it
    /// (Linux `sync_file_range`; it does not flush metadata or the device
    /// cache, so it is not a durability guarantee on its own).
    ///
    /// **On Windows this is a whole-file `FlushFileBuffers`**: Windows has
    /// no ranged flush, so the cost is that of [`sync_all`](Self::sync_all).
    pub async fn sync_range(&self, offset: u64, len: u64) -> io::Result<()> {
        let desc = SyncFileRange {
            fd: self.fd,
            offset,
            len,
        };
        let (out, ()) = Op::submit(desc, ()).await;
        out.res.map(drop)
    }

    /// Reserves disk space for `len` bytes at `offset`, growing the file if
    /// the range ends past its end (`fallocate` mode 0 on Linux).
    pub async fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        let desc = Fallocate {
            fd: self.fd,
            offset,
            len,
        };
        let (out, ()) = Op::submit(desc, ()).await;
        out.res.map(drop)
    }

    /// Closes the file and reports the error closing it found, if any.
    ///
    /// If this future is dropped before it completes, the handle is still
    /// closed (by the in-flight close).
    pub async fn close(self) -> io::Result<()> {
        let fd = sys::file_into_raw(self.inner);
        let (out, ()) = Op::submit(Close { fd }, ()).await;
        out.res.map(drop)
    }

    async fn fsync(&self, data_only: bool) -> io::Result<()> {
        let desc = Fsync {
            fd: self.fd,
            data_only,
        };
        let (out, ()) = Op::submit(desc, ()).await;
        out.res.map(drop)
    }

    /// Reads at `pos` into `buf[off..bytes_total]` and marks
    /// `buf[..off + n]` initialised. `off <= bytes_total`, and `buf[..off]`
    /// is initialised.
    async fn read_into<B: IoBufMut>(
        &self,
        mut buf: B,
        off: usize,
        pos: u64,
    ) -> BufResult<usize, B> {
        let total = buf.bytes_total();
        debug_assert!(off <= total);
        // `wrapping_add` stays inside the buffer because `off <= total`.
        let ptr = buf.stable_mut_ptr().wrapping_add(off);
        let len = op_len(total - off);
        let desc = ReadFixed {
            fd: self.fd,
            buf: ptr,
            len,
            offset: pos,
            fixed: buf.fixed_index(),
        };
        let (out, mut buf) = Op::submit(desc, buf).await;
        // SAFETY: the op read at most `len` bytes into `buf[off..]`, with
        // `off + len <= total`; the caller guarantees `buf[..off]` was
        // initialised.
        unsafe { op::mark_read(&out, &mut buf, off, len) };
        (out.res, buf)
    }

    /// Writes `buf[off..bytes_init]` at `pos`. `off <= bytes_init`.
    async fn write_from<B: IoBuf>(&self, buf: B, off: usize, pos: u64) -> BufResult<usize, B> {
        let init = buf.bytes_init();
        debug_assert!(off <= init);
        // `wrapping_add` stays inside the buffer because `off <= init`.
        let ptr = buf.stable_ptr().wrapping_add(off);
        let desc = WriteFixed {
            fd: self.fd,
            buf: ptr,
            len: op_len(init - off),
            offset: pos,
            fixed: buf.fixed_index(),
        };
        let (out, buf) = Op::submit(desc, buf).await;
        (out.res, buf)
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File").field("fd", &self.fd).finish()
    }
}
