//! A child's standard streams as veloq streams: [`ChildStdin`],
//! [`ChildStdout`] and [`ChildStderr`].
//!
//! Each wraps the `std` pipe end in a shared [`Pipe`], and every read or
//! write runs as one blocking call on the blocking pool. The std pipe
//! itself moves into the pool job and back, so exactly one job uses it at
//! a time and the handle needs no lock around the system call.
//!
//! # Buffers
//!
//! The caller's buffer never leaves the caller's thread (buffers need not
//! be `Send`): a write copies up to [`CHUNK`] bytes into the job, and a
//! read job reads up to [`CHUNK`] bytes into the pipe's own buffer, which
//! the future then copies from.
//!
//! # Cancellation
//!
//! A read job's bytes go into the pipe's buffer, not into the future, so a
//! read whose future is dropped loses nothing: the next read takes those
//! bytes first (and its end of file or error). A dropped write's job still
//! writes its bytes; an error it met is reported by the next write.
//!
//! # Invariants
//!
//! - `State::pipe` is `None` exactly while one job holds the pipe; a new
//!   job starts only by taking it, and the job gives it back (or drops it,
//!   once the handle is gone) before waking the waiters.
//! - `data[pos..]`, `eof` and `error` hold what finished read jobs got and
//!   no read has handed out yet; a read job starts only when all three are
//!   empty, so they never hold more than one job's outcome.
//! - No waker runs and no pipe closes while the state lock is held.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::mem;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::{AsyncRead, AsyncWrite};
use crate::runtime::blocking;
use crate::sync::{lock, oneshot};

/// Most bytes one pool job reads or writes (a Linux pipe holds 64 KiB by
/// default).
const CHUNK: usize = 64 * 1024;

/// One std pipe end shared with the pool job using it; see the module
/// docs. Dropping the `Pipe` (the owner's handle) closes the pipe, at once
/// or when the job holding it returns.
struct Pipe<P> {
    shared: Arc<Mutex<State<P>>>,
}

struct State<P> {
    /// The std pipe; `None` while a job holds it.
    pipe: Option<P>,
    /// The handle was dropped (or `ChildStdin` shut down): a job drops the
    /// pipe instead of giving it back.
    closed: bool,
    /// Bytes a read job got, handed out from `pos`.
    data: Vec<u8>,
    pos: usize,
    /// A read job reached end of file; the next read reports it.
    eof: bool,
    /// A job's error not yet reported.
    error: Option<io::Error>,
    /// Futures waiting for a job to finish.
    waiters: Vec<Waker>,
}

impl<P: Send + 'static> Pipe<P> {
    fn new(pipe: P) -> Pipe<P> {
        Pipe {
            shared: Arc::new(Mutex::new(State {
                pipe: Some(pipe),
                closed: false,
                data: Vec::new(),
                pos: 0,
                eof: false,
                error: None,
                waiters: Vec::new(),
            })),
        }
    }

    /// A job's end: records its outcome, gives the pipe back (or closes it
    /// if the handle is gone) and wakes the waiters, outside the lock.
    fn finish(shared: &Mutex<State<P>>, pipe: P, record: impl FnOnce(&mut State<P>)) {
        let (waiters, closed_pipe) = {
            let mut st = lock(shared);
            record(&mut st);
            let closed_pipe = if st.closed {
                Some(pipe)
            } else {
                st.pipe = Some(pipe);
                None
            };
            (mem::take(&mut st.waiters), closed_pipe)
        };
        drop(closed_pipe);
        for w in waiters {
            w.wake();
        }
    }
}

fn add_waiter(waiters: &mut Vec<Waker>, cx: &Context<'_>) {
    if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
        waiters.push(cx.waker().clone());
    }
}

/// Retries `f` after `Interrupted`.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

impl<P> Pipe<P> {
    /// Takes the std pipe back out, for another child's `Stdio`: only
    /// while no job holds it and no bytes a read job got wait unread
    /// (they would be lost).
    fn into_std(self) -> io::Result<P> {
        let mut st = lock(&self.shared);
        if st.pos < st.data.len() || st.error.is_some() || st.eof {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the pipe holds read results not yet handed out",
            ));
        }
        st.pipe.take().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::ResourceBusy,
                "a read or write on the pipe is still in flight",
            )
        })
        // `self` drops here and marks the pipe closed for a job still
        // holding it.
    }
}

impl<P> Drop for Pipe<P> {
    fn drop(&mut self) {
        let pipe = {
            let mut st = lock(&self.shared);
            st.closed = true;
            st.pipe.take()
        };
        drop(pipe); // closes it now, unless a job holds it
    }
}

impl<P: Read + Send + 'static> Pipe<P> {
    /// The read core: hands the bytes a job got to `take` (which returns
    /// how many it used), or reports the job's end of file (`Ok(0)`) or
    /// error; with nothing there, starts a job for up to `want` bytes
    /// (`want > 0`) or waits for the running one.
    fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        want: usize,
        take: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Poll<io::Result<usize>> {
        let mut st = lock(&self.shared);
        if st.pos < st.data.len() {
            let pos = st.pos;
            let n = take(&st.data[pos..]);
            st.pos += n;
            return Poll::Ready(Ok(n));
        }
        if let Some(e) = st.error.take() {
            return Poll::Ready(Err(e));
        }
        if mem::take(&mut st.eof) {
            return Poll::Ready(Ok(0));
        }
        add_waiter(&mut st.waiters, cx);
        let Some(mut pipe) = st.pipe.take() else {
            return Poll::Pending; // a job is running; it wakes us
        };
        // Reuse the handed-out buffer's memory for the job.
        let mut spare = mem::take(&mut st.data);
        st.pos = 0;
        drop(st);
        let shared = self.shared.clone();
        blocking::pool().execute(Box::new(move || {
            spare.clear();
            spare.resize(want.min(CHUNK), 0);
            let res = retry(|| pipe.read(&mut spare));
            Self::finish(&shared, pipe, |st| match res {
                Ok(0) => st.eof = true,
                Ok(n) => {
                    spare.truncate(n);
                    st.data = spare;
                    st.pos = 0;
                }
                Err(e) => st.error = Some(e),
            });
        }));
        Poll::Pending
    }

    async fn read<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
        let total = buf.bytes_total();
        if total == 0 {
            return (Ok(0), buf);
        }
        let res = poll_fn(|cx| {
            self.poll_read_with(cx, total, &mut |src| {
                // SAFETY: a read starts at 0 of `buf`.
                unsafe { copy_into(&mut buf, 0, src) }
            })
        })
        .await;
        (res, buf)
    }

    async fn read_exact<B: IoBufMut>(&self, mut buf: B) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let mut filled = 0;
        while filled < total {
            let res = poll_fn(|cx| {
                self.poll_read_with(cx, total - filled, &mut |src| {
                    // SAFETY: `buf[..filled]` was filled by earlier rounds,
                    // so `filled` is within the initialised prefix.
                    unsafe { copy_into(&mut buf, filled, src) }
                })
            })
            .await;
            match res {
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

    async fn read_to_end(&self, mut buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        let start = buf.len();
        loop {
            let res = poll_fn(|cx| {
                self.poll_read_with(cx, CHUNK, &mut |src| {
                    buf.extend_from_slice(src);
                    src.len()
                })
            })
            .await;
            match res {
                Ok(0) => return (Ok(buf.len() - start), buf),
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
        }
    }
}

/// Copies as much of `src` as fits into `buf[off..bytes_total]` and marks
/// it initialised; returns how many bytes.
///
/// # Safety
///
/// `off <= buf.bytes_init()`, so that marking `off + n` initialised covers
/// only bytes that are.
unsafe fn copy_into<B: IoBufMut>(buf: &mut B, off: usize, src: &[u8]) -> usize {
    let n = src.len().min(buf.bytes_total() - off);
    // SAFETY: `IoBufMut` makes `stable_mut_ptr` valid for `bytes_total`
    // bytes and `off + n <= bytes_total`; `src` is our own memory, so the
    // two cannot overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), buf.stable_mut_ptr().add(off), n);
        // SAFETY: bytes `..off` were initialised (the caller's promise) and
        // `off..off + n` just now; `off + n <= bytes_total`.
        buf.set_init(off + n);
    }
    n
}

impl<P: Write + Send + 'static> Pipe<P> {
    /// Waits until no job holds the pipe and takes it, or reports the
    /// error a dropped write met.
    fn poll_acquire(&self, cx: &mut Context<'_>) -> Poll<io::Result<P>> {
        let mut st = lock(&self.shared);
        if let Some(e) = st.error.take() {
            return Poll::Ready(Err(e));
        }
        if st.closed {
            let e = io::Error::new(io::ErrorKind::BrokenPipe, "the pipe was shut down");
            return Poll::Ready(Err(e));
        }
        match st.pipe.take() {
            Some(pipe) => Poll::Ready(Ok(pipe)),
            None => {
                add_waiter(&mut st.waiters, cx);
                Poll::Pending
            }
        }
    }

    /// Writes `bytes` (at most [`CHUNK`]) with one blocking call.
    async fn write_bytes(&self, bytes: &[u8]) -> io::Result<usize> {
        let mut pipe = poll_fn(|cx| self.poll_acquire(cx)).await?;
        // From here to the job's start nothing awaits: the pipe cannot be
        // lost with a dropped future.
        let data = bytes[..bytes.len().min(CHUNK)].to_vec();
        let (tx, rx) = oneshot::channel();
        let shared = self.shared.clone();
        blocking::pool().execute(Box::new(move || {
            let res = retry(|| pipe.write(&data));
            // The result goes to the waiting future first; one nobody
            // waits for any more keeps its error for the next write.
            let unsent = tx.send(res).err();
            Self::finish(&shared, pipe, |st| {
                if let Some(Err(e)) = unsent {
                    st.error = Some(e);
                }
            });
        }));
        rx.await
            .unwrap_or_else(|_| unreachable!("a write job always sends its result"))
    }

    /// Closes the pipe once no write runs any more.
    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<()> {
        let pipe = {
            let mut st = lock(&self.shared);
            match st.pipe.take() {
                Some(pipe) => {
                    st.closed = true;
                    pipe
                }
                None if st.closed => return Poll::Ready(()),
                None => {
                    add_waiter(&mut st.waiters, cx);
                    return Poll::Pending;
                }
            }
        };
        drop(pipe);
        Poll::Ready(())
    }

    async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        if buf.bytes_init() == 0 {
            return (Ok(0), buf);
        }
        let res = self.write_bytes(init_bytes(&buf)).await;
        (res, buf)
    }

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

macro_rules! raw_descriptor {
    ($ty:ident) => {
        /// Hands the pipe to another child, e.g. one child's
        /// [`ChildStdout`] as the next one's standard input (a pipeline).
        ///
        /// # Errors
        ///
        /// `ResourceBusy` while a read or write whose future was dropped
        /// still runs; `InvalidInput` when what such a read got (bytes,
        /// end of file, an error) has not been handed out yet (it would be
        /// lost).
        /// The handle is gone either way.
        impl TryFrom<$ty> for std::process::Stdio {
            type Error = io::Error;

            fn try_from(handle: $ty) -> io::Result<std::process::Stdio> {
                Ok(handle.pipe.into_std()?.into())
            }
        }

        #[cfg(unix)]
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.raw
            }
        }

        #[cfg(unix)]
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                // SAFETY: the pipe closes only when this handle is dropped
                // (or later, when a job it left running returns), so the
                // descriptor stays open while `self` is borrowed.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(self.raw) }
            }
        }

        #[cfg(windows)]
        impl std::os::windows::io::AsRawHandle for $ty {
            fn as_raw_handle(&self) -> std::os::windows::io::RawHandle {
                self.raw as std::os::windows::io::RawHandle
            }
        }

        #[cfg(windows)]
        impl std::os::windows::io::AsHandle for $ty {
            fn as_handle(&self) -> std::os::windows::io::BorrowedHandle<'_> {
                // SAFETY: as for `AsFd`: the handle stays open while `self`
                // is borrowed.
                unsafe {
                    std::os::windows::io::BorrowedHandle::borrow_raw(
                        self.raw as std::os::windows::io::RawHandle,
                    )
                }
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("raw", &self.raw)
                    .finish()
            }
        }
    };
}

/// The raw descriptor of a std pipe end, kept beside the pipe (which
/// travels into pool jobs). A `usize` on Windows, so the handle types stay
/// `Send` and `Sync`.
#[cfg(unix)]
type Raw = std::os::fd::RawFd;
#[cfg(windows)]
type Raw = usize;

#[cfg(unix)]
fn raw_of<P: std::os::fd::AsRawFd>(p: &P) -> Raw {
    p.as_raw_fd()
}
#[cfg(windows)]
fn raw_of<P: std::os::windows::io::AsRawHandle>(p: &P) -> Raw {
    p.as_raw_handle() as usize
}

/// The child's standard input, when it was
/// [`piped`](std::process::Stdio::piped): a stream the parent writes.
///
/// Dropping it closes the pipe, so the child reads end of file — once a
/// write still running (one whose future was dropped) has returned.
/// [`Child::wait`](super::Child::wait) drops it first, as tokio does.
///
/// Each write is one blocking call on the blocking pool; the handle and
/// its futures are `Send` (the futures when the buffer is) and need no
/// runtime of their own.
///
/// ```ignore-windows
/// use veloq::process::{Command, Stdio};
///
/// veloq::block_on(async {
///     let mut child = Command::new("cat").stdin(Stdio::piped()).spawn()?;
///     let stdin = child.stdin.take().unwrap();
///     let (res, _) = stdin.write_all(b"hello\n".to_vec()).await;
///     res?;
///     drop(stdin); // end of file for `cat`
///     child.wait().await?;
///     Ok::<(), std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct ChildStdin {
    pipe: Pipe<std::process::ChildStdin>,
    raw: Raw,
}

impl ChildStdin {
    /// Adopts a std pipe end (e.g. from a child spawned by
    /// `std::process::Command`).
    ///
    /// # Errors
    ///
    /// None today; the `Result` matches tokio's signature.
    pub fn from_std(inner: std::process::ChildStdin) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            raw: raw_of(&inner),
            pipe: Pipe::new(inner),
        })
    }

    /// Writes once from `buf[..bytes_init]`; returns how many bytes the
    /// pipe took (at most 64 KiB per call; possibly fewer than offered).
    ///
    /// Not cancel-safe: a dropped write's bytes are still written (its
    /// error, if any, is reported by the next write). Writes run one at a
    /// time, in the order they reach the pipe.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` once the child has closed its end (e.g. exited).
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.pipe.write(buf).await
    }

    /// Writes all of `buf[..bytes_init]`, in further writes after a
    /// partial one.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write); `WriteZero` if the pipe takes no bytes.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.pipe.write_all(buf).await
    }

    /// Closes the pipe (the child reads end of file) once a write still in
    /// flight has returned; later writes fail with `BrokenPipe`. Dropping
    /// the handle does the same without waiting.
    ///
    /// # Errors
    ///
    /// None today; the `Result` matches [`AsyncWrite::shutdown`].
    pub async fn shutdown(&self) -> io::Result<()> {
        poll_fn(|cx| self.pipe.poll_shutdown(cx)).await;
        Ok(())
    }
}

/// The child's standard output, when it was
/// [`piped`](std::process::Stdio::piped): a stream the parent reads.
///
/// Each read is one blocking call on the blocking pool; the handle and its
/// futures are `Send` (the futures when the buffer is) and need no runtime
/// of their own. Reads are cancel-safe (see [`read`](Self::read)).
///
/// ```ignore-windows
/// use veloq::process::{Command, Stdio};
///
/// veloq::block_on(async {
///     let mut child = Command::new("echo").arg("hi").stdout(Stdio::piped()).spawn()?;
///     let stdout = child.stdout.take().unwrap();
///     let (res, out) = stdout.read_to_end(Vec::new()).await;
///     res?;
///     assert_eq!(out, b"hi\n");
///     child.wait().await?;
///     Ok::<(), std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct ChildStdout {
    pipe: Pipe<std::process::ChildStdout>,
    raw: Raw,
}

/// The child's standard error, when it was
/// [`piped`](std::process::Stdio::piped); reads as
/// [`ChildStdout`] does.
///
/// ```ignore-windows
/// use veloq::process::{Command, Stdio};
///
/// veloq::block_on(async {
///     let mut child = Command::new("sh")
///         .args(["-c", "echo oops >&2"])
///         .stderr(Stdio::piped())
///         .spawn()?;
///     let stderr = child.stderr.take().unwrap();
///     let (res, err) = stderr.read_to_end(Vec::new()).await;
///     res?;
///     assert_eq!(err, b"oops\n");
///     child.wait().await?;
///     Ok::<(), std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct ChildStderr {
    pipe: Pipe<std::process::ChildStderr>,
    raw: Raw,
}

macro_rules! reader_methods {
    ($ty:ident, $std:ty) => {
        impl $ty {
            /// Adopts a std pipe end (e.g. from a child spawned by
            /// `std::process::Command`).
            ///
            /// # Errors
            ///
            /// None today; the `Result` matches tokio's signature.
            pub fn from_std(inner: $std) -> io::Result<$ty> {
                Ok($ty {
                    raw: raw_of(&inner),
                    pipe: Pipe::new(inner),
                })
            }

            /// Reads once into `buf[..bytes_total]` (at most 64 KiB per
            /// call); returns how many bytes came (`0`: the child closed
            /// its end) and marks them initialised. A buffer with no
            /// capacity reads nothing and returns `0`.
            ///
            /// Cancel-safe: the bytes a dropped read's job got go to the
            /// next read on this handle, in order.
            pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
                self.pipe.read(buf).await
            }

            /// Reads until `buf[..bytes_total]` is full.
            ///
            /// # Errors
            ///
            /// `UnexpectedEof` if the child closes its end first (the bytes
            /// read so far stay in `buf`).
            pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
                self.pipe.read_exact(buf).await
            }

            /// Reads until end of file, appending to `buf`; returns how
            /// many bytes were appended.
            ///
            /// # Errors
            ///
            /// A read's error; the bytes read before it stay in `buf`.
            pub async fn read_to_end(&self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
                self.pipe.read_to_end(buf).await
            }
        }
    };
}

reader_methods!(ChildStdout, std::process::ChildStdout);
reader_methods!(ChildStderr, std::process::ChildStderr);
raw_descriptor!(ChildStdin);
raw_descriptor!(ChildStdout);
raw_descriptor!(ChildStderr);

// --- the owned-buffer traits -------------------------------------------------
//
// The impls call the shared `Pipe`'s methods (or the inherent ones by
// path): in method-call syntax on the handle itself the trait method could
// be found first and recurse.

macro_rules! async_read {
    ($ty:ty) => {
        impl AsyncRead for $ty {
            async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
                self.pipe.read(buf).await
            }
        }
    };
}

async_read!(ChildStdout);
async_read!(&ChildStdout);
async_read!(ChildStderr);
async_read!(&ChildStderr);

macro_rules! async_write {
    ($ty:ty) => {
        impl AsyncWrite for $ty {
            async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
                self.pipe.write(buf).await
            }
            async fn flush(&mut self) -> io::Result<()> {
                Ok(()) // nothing is buffered above the pipe
            }
            async fn shutdown(&mut self) -> io::Result<()> {
                ChildStdin::shutdown(self).await
            }
        }
    };
}

async_write!(ChildStdin);
async_write!(&ChildStdin);
