//! [`Child`]: a spawned process, waited for without blocking a worker.
//!
//! The std `Child` lives in a shared [`Proc`] behind a mutex; how a wait
//! learns of the exit and reaps it under that mutex is `wait.rs`'s part.
//! Killing takes the same mutex and uses std's `kill`, so a signal is
//! never sent to a reaped (possibly reused) pid, even while a wait is in
//! flight.
//!
//! # Invariants
//!
//! - A wait starts only when none runs (`ProcState::waiting`), and every
//!   waiter is woken when it ends.
//! - `status` is set once the process has been reaped (by a wait,
//!   `try_wait` or `Drop`), and never changes afterwards.
//! - No waker runs while the mutex is held.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::process::{ExitStatus, Output};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::wait::{self, Proc};
use super::{ChildStderr, ChildStdin, ChildStdout};
use crate::sync::lock;

/// A spawned child process, from [`Command::spawn`](super::Command::spawn).
///
/// Its piped standard streams are the public `stdin`, `stdout` and
/// `stderr` fields (`take()` them to use them apart from the child).
///
/// # Waiting and dropping
///
/// [`wait`](Self::wait) does not block the worker: on Linux the driver
/// reports the exit (a pidfd), on Windows a wait registration; see the
/// [module docs](super) for the fallbacks. Dropping a `Child` that has not
/// exited leaves the process running (unless [`kill_on_drop`] was set,
/// which kills it) and its wait reaps it once it exits, so it does not
/// stay a zombie.
///
/// `Child` is `Send` and `Sync`, and its futures are `Send` and need no
/// veloq runtime of their own (without one, the wait runs on the blocking
/// pool).
///
/// [`kill_on_drop`]: super::Command::kill_on_drop
///
/// ```ignore-windows
/// use veloq::process::Command;
///
/// veloq::block_on(async {
///     let mut child = Command::new("sleep").arg("10").spawn()?;
///     child.kill().await?;
///     # #[cfg(unix)] {
///     use std::os::unix::process::ExitStatusExt;
///     assert_eq!(child.wait().await?.signal(), Some(9));
///     # }
///     Ok::<(), std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct Child {
    /// The child's standard input, if it was piped.
    pub stdin: Option<ChildStdin>,
    /// The child's standard output, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The child's standard error, if it was piped.
    pub stderr: Option<ChildStderr>,
    proc: Arc<Proc>,
    kill_on_drop: bool,
}

impl Child {
    /// Wraps a freshly spawned std child, taking its pipes.
    pub(super) fn new(mut child: std::process::Child, kill_on_drop: bool) -> io::Result<Child> {
        let stdin = child.stdin.take().map(ChildStdin::from_std).transpose()?;
        let stdout = child.stdout.take().map(ChildStdout::from_std).transpose()?;
        let stderr = child.stderr.take().map(ChildStderr::from_std).transpose()?;
        Ok(Child {
            stdin,
            stdout,
            stderr,
            proc: Arc::new(Proc::new(child)),
            kill_on_drop,
        })
    }

    /// The process id, or `None` once the child has been reaped (its pid
    /// may then belong to another process).
    pub fn id(&self) -> Option<u32> {
        let st = lock(&self.proc.state);
        st.status.is_none().then(|| st.child.id())
    }

    /// Waits for the child to exit and returns its status; once it has,
    /// every later call returns the same status at once.
    ///
    /// Drops [`stdin`](Self::stdin) first (as tokio does), so a child that
    /// reads its input to the end can finish.
    ///
    /// Cancel-safe: a dropped `wait` leaves the wait running, and the next
    /// `wait` (or `try_wait`) picks up its result.
    ///
    /// # Errors
    ///
    /// What the system reports when waiting fails (rare; e.g. `ECHILD` if
    /// something else in the process reaped the child).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        poll_fn(|cx| self.poll_wait(cx)).await
    }

    fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        let mut st = lock(&self.proc.state);
        if let Some(status) = st.status {
            return Poll::Ready(Ok(status));
        }
        if let Some(e) = st.error.take() {
            return Poll::Ready(Err(e));
        }
        if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.waiters.push(cx.waker().clone());
        }
        if !st.waiting {
            st.waiting = true;
            drop(st);
            wait::start(self.proc.clone());
        }
        Poll::Pending
    }

    /// Returns the exit status if the child has exited (reaping it), or
    /// `None` if it is still running. Never blocks.
    ///
    /// # Errors
    ///
    /// What the system reports (as std's `try_wait`).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let mut st = lock(&self.proc.state);
        if st.status.is_none() {
            st.status = st.child.try_wait()?;
        }
        Ok(st.status)
    }

    /// Asks the system to kill the child (`SIGKILL` on Unix,
    /// `TerminateProcess` on Windows) and returns without waiting; follow
    /// with [`wait`](Self::wait) to reap it.
    ///
    /// # Errors
    ///
    /// None for a child that has already exited (as std); otherwise what
    /// the system reports.
    pub fn start_kill(&mut self) -> io::Result<()> {
        lock(&self.proc.state).child.kill()
    }

    /// Kills the child and waits for it to exit
    /// ([`start_kill`](Self::start_kill), then [`wait`](Self::wait)).
    ///
    /// # Errors
    ///
    /// As `start_kill` and `wait`.
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await?;
        Ok(())
    }

    /// Waits for the child to exit while collecting all of its piped
    /// standard output and error (concurrently, so a child filling one
    /// pipe cannot stall on it). Drops `stdin` first. A stream that was not
    /// piped comes back empty.
    ///
    /// ```ignore-windows
    /// use veloq::process::{Command, Stdio};
    ///
    /// veloq::block_on(async {
    ///     let child = Command::new("echo").arg("hi").stdout(Stdio::piped()).spawn()?;
    ///     let out = child.wait_with_output().await?;
    ///     assert!(out.status.success());
    ///     assert_eq!(out.stdout, b"hi\n");
    ///     Ok::<(), std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The first error of the reads and the wait.
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = (self.stdout.take(), self.stderr.take());
        let out = async {
            match &stdout {
                Some(pipe) => pipe.read_to_end(Vec::new()).await,
                None => (Ok(0), Vec::new()),
            }
        };
        let err = async {
            match &stderr {
                Some(pipe) => pipe.read_to_end(Vec::new()).await,
                None => (Ok(0), Vec::new()),
            }
        };
        let ((out_res, stdout), (err_res, stderr), status) = join3(out, err, self.wait()).await;
        out_res?;
        err_res?;
        Ok(Output {
            status: status?,
            stdout,
            stderr,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let mut st = lock(&self.proc.state);
        if st.status.is_some() {
            return;
        }
        if let Ok(Some(status)) = st.child.try_wait() {
            st.status = Some(status);
            return;
        }
        if self.kill_on_drop {
            let _ = st.child.kill();
        }
        // Reap it once it exits, so it does not stay a zombie.
        if !st.waiting {
            st.waiting = true;
            drop(st);
            wait::start(self.proc.clone());
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.proc.state);
        f.debug_struct("Child")
            .field("pid", &st.child.id())
            .field("status", &st.status)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

/// Polls three futures together until all are done.
pub(super) async fn join3<A: Future, B: Future, C: Future>(
    a: A,
    b: B,
    c: C,
) -> (A::Output, B::Output, C::Output) {
    let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if rc.is_none() {
            if let Poll::Ready(v) = c.as_mut().poll(cx) {
                rc = Some(v);
            }
        }
        match (ra.take(), rb.take(), rc.take()) {
            (Some(a), Some(b), Some(c)) => Poll::Ready((a, b, c)),
            (a, b, c) => {
                (ra, rb, rc) = (a, b, c);
                Poll::Pending
            }
        }
    })
    .await
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::time::Duration;

    /// Spawns `sh -c script`, waiting through a pidfd or, without one,
    /// through `waitid(WNOWAIT)` (the path for kernels before 5.3).
    fn spawn_sh(script: &str, pidfd: bool) -> Child {
        let std_child = std::process::Command::new("sh")
            .args(["-c", script])
            .spawn()
            .unwrap();
        let mut child = Child::new(std_child, false).unwrap();
        let proc = Arc::get_mut(&mut child.proc).expect("not shared yet");
        assert!(proc.pidfd.is_some() || !pidfd, "this kernel has pidfds");
        if !pidfd {
            proc.pidfd = None;
        }
        child
    }

    #[test]
    fn waits_with_and_without_a_pidfd() {
        for pidfd in [true, false] {
            let jobs = super::super::offload::pool_jobs();
            crate::block_on(async {
                let mut child = spawn_sh("exit 4", pidfd);
                assert_eq!(child.wait().await.unwrap().code(), Some(4));

                // A kill while a dropped wait's job still blocks.
                let mut child = spawn_sh("exec sleep 100", pidfd);
                let res = crate::time::timeout(Duration::from_millis(30), child.wait()).await;
                assert!(res.is_err());
                child.start_kill().unwrap();
                let status = child.wait().await.unwrap();
                assert_eq!(status.signal(), Some(libc::SIGKILL), "pidfd: {pidfd}");

                // `try_wait` reaps under a blocked job's feet: the job
                // (ECHILD from `waitid`, or the pidfd turning readable)
                // still ends with the status.
                let mut child = spawn_sh("sleep 0.1; exit 2", pidfd);
                let res = crate::time::timeout(Duration::from_millis(10), child.wait()).await;
                assert!(res.is_err());
                let status = loop {
                    if let Some(s) = child.try_wait().unwrap() {
                        break s;
                    }
                    crate::time::sleep(Duration::from_millis(5)).await;
                };
                assert_eq!(status.code(), Some(2));
                assert_eq!(child.wait().await.unwrap(), status);
            });
            // Without a pidfd (`pidfd_open` refused: ENOSYS, or EPERM under
            // seccomp) the pool waits; with one, the driver.
            let pool_used = super::super::offload::pool_jobs() > jobs;
            assert_eq!(pool_used, !pidfd, "pidfd: {pidfd}");
        }
    }
}
