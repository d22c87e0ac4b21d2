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
//! Everything here works the same on every driver (io_uring, epoll, IOCP)
//! because none of it goes through the driver: the blocking parts run on
//! the runtime's blocking pool (the one behind
//! [`spawn_blocking`](crate::task::spawn_blocking)), and results come back
//! through thread-safe wakers. So the handles and their futures are `Send`
//! and work on any worker, or under no veloq runtime at all.
//!
//! - **Spawning** is std's `Command::spawn`, on the calling thread: it is
//!   a quick system call (`posix_spawn`/`fork`+`exec`, `CreateProcess`),
//!   and std gets every detail (path search, `NotFound`, error reporting
//!   from the child before `exec`) right.
//! - **Waiting** is one pool job per child that blocks until the process
//!   has exited *without reaping it* — on Linux `poll` on a pidfd opened at
//!   spawn (falling back to `waitid(WNOWAIT)` on kernels without pidfds),
//!   on other Unix systems `waitid(WNOWAIT)`, on Windows
//!   `WaitForSingleObject` on the process handle — and then reaps it with
//!   std's `try_wait` under the child's mutex. [`Child::start_kill`] takes
//!   the same mutex and uses std's `kill`, which does nothing once the
//!   child is reaped; so a kill while a wait is in flight always reaches
//!   the right process, never a reused pid.
//! - **Pipes**: each read or write is one blocking call on the std pipe on
//!   the pool. The caller's buffer stays on its thread (no `Send` bound on
//!   buffers): writes copy into the job, and reads land in the pipe's own
//!   buffer and are copied out by the future, which also makes reads
//!   cancel-safe: what a dropped read's job got goes to the next read.
//!
//! # Why not the driver
//!
//! A completion-based wait (io_uring `WAITID` or `POLL_ADD` on a pidfd,
//! `RegisterWaitForSingleObject` posting to the completion port) and
//! overlapped pipes would save the pool threads, but need new driver ops
//! on all three drivers, and the epoll driver has no readiness op for
//! arbitrary descriptors. The cost of the pool instead: one pool thread
//! per child being waited for (including children dropped while running,
//! which are reaped in the background) and per pipe read or write in
//! flight. The pool holds up to 512 threads (more jobs queue), so this
//! suits programs that run tens of children at once, not thousands.
//!
//! A pipe handle converts into [`Stdio`] (`Stdio::try_from(stdout)`) to
//! feed one child's output to the next (a pipeline).
//!
//! # Dropping
//!
//! - A [`Child`] dropped while the process runs leaves it running (killed
//!   first with [`Command::kill_on_drop`]); a pool job reaps it when it
//!   exits.
//! - A [`ChildStdin`] dropped closes the pipe (end of file for the child)
//!   once a write still in flight has returned.
//! - A dropped `wait`, `read` or `write` future leaves its pool job
//!   running; the next call on the same handle takes its result (see each
//!   method for what that means).

mod child;
mod command;
mod offload;
mod pipe;
#[cfg(target_os = "linux")]
mod pipe_fd;
#[cfg(not(target_os = "linux"))]
mod pipe_pool;
#[cfg(target_os = "linux")]
mod ready;
mod wait;

#[cfg(all(test, target_os = "linux"))]
mod tests;

pub use child::Child;
pub use command::Command;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};
