//! A child's standard streams as veloq streams: [`ChildStdin`],
//! [`ChildStdout`] and [`ChildStderr`]: the public handles, the same on
//! every system, around a shared `Pipe` that does the I/O.
//!
//! - **Linux** (`pipe_fd`): the parent's pipe end is non-blocking; each
//!   read or write is one system call on it straight into (or from) the
//!   caller's buffer, and when the pipe is not ready the driver says when
//!   it is (io_uring `POLL_ADD`, epoll readiness; see `ready`). No pool
//!   thread is used inside a runtime.
//! - **Elsewhere** (`pipe_pool`): each read or write is one blocking call
//!   on the blocking pool.
//!
//! Either way the handles and their futures are `Send` (the futures when
//! the buffer is) and work under no veloq runtime too.

use std::fmt;
use std::future::poll_fn;
use std::io;

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::{AsyncRead, AsyncWrite};

#[cfg(target_os = "linux")]
use super::pipe_fd::Pipe;
use super::pipe_io::{PipeRead, PipeWrite};
#[cfg(not(target_os = "linux"))]
use super::pipe_pool::Pipe;

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
/// travels into pool jobs off Linux). A `usize` on Windows, so the handle types stay
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
/// Dropping it closes the pipe, so the child reads end of file — once
/// nothing waits on it any more (see the [module docs](super)).
/// [`Child::wait`](super::Child::wait) drops it first, as tokio does.
///
/// On Linux each write is one non-blocking system call, and the driver
/// says when a full pipe has room again; elsewhere each write is one
/// blocking call on the blocking pool. The handle and its futures are
/// `Send` (the futures when the buffer is) and need no runtime of their
/// own (the pool waits without one).
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
    /// On Linux, what `fcntl` reports when the pipe cannot be made
    /// non-blocking.
    pub fn from_std(inner: std::process::ChildStdin) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            raw: raw_of(&inner),
            pipe: Pipe::new(inner)?,
        })
    }

    /// Writes once from `buf[..bytes_init]`; returns how many bytes the
    /// pipe took (at most what it has room for, 64 KiB by default; possibly
    /// fewer than offered).
    ///
    /// On Linux cancel-safe: a write whose future is dropped before it
    /// returned wrote nothing. Elsewhere not: a dropped write's bytes are
    /// still written (its error, if any, is reported by the next write),
    /// and writes run one at a time, in the order they reach the pipe.
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

    /// Closes the pipe (the child reads end of file) once nothing waits on
    /// it any more (a write still in flight off Linux, a readiness wait on
    /// Linux); later writes fail with `BrokenPipe`. Dropping
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
/// On Linux each read is one non-blocking system call, and the driver says
/// when an empty pipe has data again; elsewhere each read is one blocking
/// call on the blocking pool. The handle and its futures are `Send` (the
/// futures when the buffer is) and need no runtime of their own. Reads are
/// cancel-safe (see [`read`](Self::read)).
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
            /// On Linux, what `fcntl` reports when the pipe cannot be
            /// made non-blocking.
            pub fn from_std(inner: $std) -> io::Result<$ty> {
                Ok($ty {
                    raw: raw_of(&inner),
                    pipe: Pipe::new(inner)?,
                })
            }

            /// Reads once into `buf[..bytes_total]` (at most what the pipe
            /// holds; off Linux at most 64 KiB per call); returns how many bytes came (`0`: the child closed
            /// its end) and marks them initialised. A buffer with no
            /// capacity reads nothing and returns `0`.
            ///
            /// Cancel-safe: on Linux a read whose future is dropped took
            /// nothing from the pipe; elsewhere the bytes its pool job got
            /// go to the next read on this handle, in order.
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
