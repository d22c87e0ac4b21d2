//! Child processes: [`Command`] spawns, [`Child`] waits and kills, and a
//! child's piped standard streams are veloq streams ([`ChildStdin`],
//! [`ChildStdout`], [`ChildStderr`]). tokio's names and shapes.
//!
//! (The examples run Unix programs, so they are not run on Windows; there
//! `cmd /c ...` plays the part of `sh -c ...`.)
//!
//! ```ignore-windows
//! use veloq::process::{Command, Stdio};
//!
//! veloq::block_on(async {
//!     // Run to the end and collect the output.
//!     let out = Command::new("echo").arg("hello").output().await?;
//!     assert_eq!(out.stdout, b"hello\n");
//!
//!     // Feed a child and read it back concurrently.
//!     let mut child = Command::new("cat")
//!         .stdin(Stdio::piped())
//!         .stdout(Stdio::piped())
//!         .spawn()?;
//!     let stdin = child.stdin.take().unwrap();
//!     let writer = veloq::spawn(async move {
//!         let (res, _) = stdin.write_all(vec![b'x'; 1 << 20]).await;
//!         res
//!     });
//!     let stdout = child.stdout.take().unwrap();
//!     let (res, echoed) = stdout.read_to_end(Vec::new()).await;
//!     res?;
//!     writer.await.unwrap()?;
//!     assert_eq!(echoed.len(), 1 << 20);
//!     assert!(child.wait().await?.success());
//!     Ok::<(), std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # Design
//!
//! - **Spawning** is std's `Command::spawn`, on the calling thread: it is
//!   a quick system call (`posix_spawn`/`fork`+`exec`, `CreateProcess`),
//!   and std gets every detail (path search, `NotFound`, error reporting
//!   from the child before `exec`) right.
//! - **Waiting** first learns that the process has exited *without
//!   reaping it*, then reaps it with std's `try_wait` under the child's
//!   mutex. [`Child::start_kill`] takes the same mutex and uses std's
//!   `kill`, which does nothing once the child is reaped; so a kill while
//!   a wait is in flight always reaches the right process, never a reused
//!   pid. How the exit is learnt:
//!   - Linux: a pidfd (opened at spawn) turns readable, seen through the
//!     driver: io_uring `POLL_ADD`, or readiness in the epoll set.
//!     (io_uring's `WAITID` would reap outside the mutex.)
//!   - Windows: a `RegisterWaitForSingleObject` registration on the
//!     process handle (the system's wait threads watch up to 63 handles
//!     each); its callback reaps and wakes.
//!   - Linux without pidfds (before 5.3, or `pidfd_open` refused by a
//!     seccomp filter) and other Unix systems: `waitid(WNOWAIT)` blocking
//!     on the runtime's blocking pool (the one behind
//!     [`spawn_blocking`](crate::task::spawn_blocking)).
//! - **Pipes**: on Linux the parent's end is non-blocking; a read or write
//!   is one system call straight into (from) the caller's buffer, and when
//!   the pipe is not ready the driver says when it is (`POLL_ADD`, epoll
//!   readiness). Elsewhere each read or write is one blocking call on the
//!   pool, through a buffer of the pipe's own.
//!
//! # Send, and which runtime
//!
//! [`Child`], the pipe handles and their futures are `Send` (and the
//! handles `Sync`), as tokio's are, and need no veloq runtime: a driver op
//! is `!Send` and belongs to one runtime, so it never lives in them.
//! Instead a wait for readiness is one op in a small task spawned on the
//! runtime that polls the future first, which wakes the future (through a
//! thread-safe waker) when the op completes. Where no veloq runtime is
//! current (a future polled by another executor), the same wait is a
//! blocking `poll` on the pool, as it is when a runtime shuts down while
//! the wait is pending (a dropped, still-running child is then still
//! reaped).
//!
//! # Not done through the driver
//!
//! - The Windows pipes. std already opens the parent's end overlapped, but
//!   a handle joins one completion port for good, while a `Send`
//!   `ChildStdout` may be read from several runtimes in turn; the reads
//!   and writes stay blocking calls on the pool (one pool thread per read
//!   or write in flight).
//! - Waits without pidfds, as listed above (one pool thread per child).
//!
//! A pipe handle converts into [`Stdio`] (`Stdio::try_from(stdout)`) to
//! feed one child's output to the next (a pipeline).
//!
//! # Dropping
//!
//! - A [`Child`] dropped while the process runs leaves it running (killed
//!   first with [`Command::kill_on_drop`]); its wait goes on in the
//!   background and reaps it when it exits.
//! - A [`ChildStdin`] dropped closes the pipe (end of file for the child)
//!   once nothing waits on it any more (on Linux a readiness wait in
//!   flight, elsewhere a write still running).
//! - A dropped `wait` future leaves the wait running; the next `wait` (or
//!   `try_wait`) takes its result. A dropped `read` loses no bytes (on
//!   Linux they stay in the pipe; elsewhere the next read takes what its
//!   pool job got). See each method for the details.

mod child;
mod command;
mod offload;
mod pipe;
#[cfg(target_os = "linux")]
mod pipe_fd;
mod pipe_io;
#[cfg(not(target_os = "linux"))]
mod pipe_pool;
#[cfg(target_os = "linux")]
mod ready;
mod wait;

#[cfg(test)]
mod test_util;
#[cfg(all(test, target_os = "linux"))]
mod tests;

pub use child::Child;
pub use command::Command;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};
