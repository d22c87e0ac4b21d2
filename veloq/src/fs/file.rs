//! [`File`]: an open file whose reads, writes and flushes are driver ops.
//!
//! # Invariants
//!
//! - The handle is owned by a [`FileInner`] behind an `Rc`. The `File`
//!   holds one reference, and every op naming the handle holds another (a
//!   [`FileRef`] in its `keep`), so the handle closes only after the `File`
//!   is gone *and* every op on it has completed — a cancelled write still
//!   waiting in a blocking pool included. No op ever runs on a handle
//!   number that was closed and reused.
//! - `fd` is the raw handle and was passed to `register_handle` exactly
//!   once, in [`File::from_opened`].
//! - An op's description points into the buffer its `Op` future owns, so
//!   that memory stays put and alive while the kernel may touch it.
//! - The handle is closed exactly once: by [`File::close`] (which waits to
//!   be its only owner, then takes it out) or by the last reference's drop.

use std::cell::Cell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::task::{Poll, Waker};

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
/// to learn about errors on close; dropping it closes the handle and
/// ignores them: at once if no operation is in flight, else as soon as the
/// last cancelled operation on it completes.
///
/// Reads and writes are not cancel-safe in the sense of sockets (a
/// positional read has no stream position to keep): a dropped `write_at`
/// may already have written some or all of its bytes.
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
    inner: Rc<FileInner>,
}

/// The handle a `File` and its in-flight ops share; see the module docs.
struct FileInner {
    file: std::fs::File,
    fd: RawFd,
    /// A `close` waiting for the ops still naming the handle.
    closer: Cell<Option<Waker>>,
}

/// An op's reference to its file's handle: keeps it open, and wakes a
/// waiting `close` when dropped.
struct FileRef(Rc<FileInner>);

impl Drop for FileRef {
    fn drop(&mut self) {
        if let Some(w) = self.0.closer.take() {
            w.wake();
        }
    }
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
        let file = unsafe { sys::file_from_raw(fd) };
        // On failure `file` is dropped here, closing the handle.
        context::with_driver(|d| d.register_handle(fd))?;
        Ok(File {
            inner: Rc::new(FileInner {
                file,
                fd,
                closer: Cell::new(None),
            }),
        })
    }

    /// The raw handle the ops name.
    fn fd(&self) -> RawFd {
        self.inner.fd
    }

    /// A reference for an op's `keep`.
    fn shared(&self) -> FileRef {
        FileRef(self.inner.clone())
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
            fd: self.fd(),
            offset,
            len,
        };
        let (out, _) = Op::submit(desc, self.shared()).await;
        out.res.map(drop)
    }

    /// Reserves disk space for `len` bytes at `offset`, growing the file if
    /// the range ends past its end (`fallocate` mode 0 on Linux).
    pub async fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        let desc = Fallocate {
            fd: self.fd(),
            offset,
            len,
        };
        let (out, _) = Op::submit(desc, self.shared()).await;
        out.res.map(drop)
    }

    /// Closes the file and reports the error closing it found, if any.
    ///
    /// Waits first until no cancelled operation names the handle any more,
    /// so when this returns the handle is closed. If this future is dropped
    /// before it completes, the handle is still closed (by the in-flight
    /// close, or by the last operation that held it).
    pub async fn close(self) -> io::Result<()> {
        let mut shared = Some(self.inner);
        let inner = poll_fn(move |cx| {
            let rc = shared.take().expect("close polled after completion");
            match Rc::try_unwrap(rc) {
                Ok(owned) => Poll::Ready(owned),
                Err(rc) => {
                    // The last op's `FileRef` wakes us when it lets go.
                    rc.closer.set(Some(cx.waker().clone()));
                    shared = Some(rc);
                    Poll::Pending
                }
            }
        })
        .await;
        let fd = sys::file_into_raw(inner.file);
        let (out, ()) = Op::submit(Close { fd }, ()).await;
        out.res.map(drop)
    }

    async fn fsync(&self, data_only: bool) -> io::Result<()> {
        let desc = Fsync {
            fd: self.fd(),
            data_only,
        };
        let (out, _) = Op::submit(desc, self.shared()).await;
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
            fd: self.fd(),
            buf: ptr,
            len,
            offset: pos,
            fixed: buf.fixed_index(),
        };
        let (out, (mut buf, _)) = Op::submit(desc, (buf, self.shared())).await;
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
            fd: self.fd(),
            buf: ptr,
            len: op_len(init - off),
            offset: pos,
            fixed: buf.fixed_index(),
        };
        let (out, (buf, _)) = Op::submit(desc, (buf, self.shared())).await;
        (out.res, buf)
    }

    /// Returns the file's metadata: io_uring `STATX` on the handle
    /// (`AT_EMPTY_PATH`) where the kernel has it, else `fstat` (on Windows
    /// `GetFileInformationByHandle`) on the blocking pool.
    ///
    /// Sound even if this future is dropped and the file closed early: the
    /// op keeps the handle open until the kernel is done with it, and the
    /// pool's call runs on a duplicate of the handle.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let path = std::env::temp_dir().join(format!("veloq-doc-file-metadata-{}", std::process::id()));
    /// veloq::block_on(async {
    ///     let file = veloq::fs::File::create(&path).await?;
    ///     let (res, _) = file.write_all_at(b"hello".to_vec(), 0).await;
    ///     res?;
    ///     let meta = file.metadata().await?;
    ///     assert!(meta.is_file());
    ///     assert_eq!(meta.len(), 5);
    ///     file.close().await?;
    ///     veloq::fs::remove_file(&path).await
    /// })
    /// # }
    /// ```
    pub async fn metadata(&self) -> io::Result<super::Metadata> {
        if let Some(res) = super::native::file_metadata(self.fd(), self.shared()).await {
            return res;
        }
        let file = self.inner.file.try_clone()?;
        crate::runtime::blocking::run(move || file.metadata().map(super::Metadata::from)).await
    }

    /// Truncates or extends the file to `size` bytes (extending fills with
    /// zeros), on the blocking pool. The file must be open for writing.
    ///
    /// Runs on a duplicate of the handle, as [`metadata`](Self::metadata).
    ///
    /// # Errors
    ///
    /// The system's error if the file is not open for writing
    /// (`InvalidInput` on Linux; an access error on Windows) or `size` is
    /// too large.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let path = std::env::temp_dir().join(format!("veloq-doc-file-set-len-{}", std::process::id()));
    /// veloq::block_on(async {
    ///     let file = veloq::fs::File::create(&path).await?;
    ///     file.set_len(4096).await?;
    ///     assert_eq!(file.metadata().await?.len(), 4096);
    ///     file.set_len(10).await?;
    ///     assert_eq!(file.metadata().await?.len(), 10);
    ///     file.close().await?;
    ///     veloq::fs::remove_file(&path).await
    /// })
    /// # }
    /// ```
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        let file = self.inner.file.try_clone()?;
        crate::runtime::blocking::run(move || file.set_len(size)).await
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File").field("fd", &self.fd()).finish()
    }
}
