//! The pipe behind the child stream handles where the driver does not
//! carry them (every system but Linux): [`Pipe`] wraps the `std` pipe end,
//! and every read or
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

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::mem;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::offload::to_pool;
use super::pipe_io::{PipeRead, PipeWrite};
use crate::buf::{BufResult, IoBufMut};
use crate::sync::{lock, oneshot};

/// Most bytes one pool job reads or writes (a Linux pipe holds 64 KiB by
/// default).
const CHUNK: usize = 64 * 1024;

/// One std pipe end shared with the pool job using it; see the module
/// docs. Dropping the `Pipe` (the owner's handle) closes the pipe, at once
/// or when the job holding it returns.
pub(super) struct Pipe<P> {
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
    pub(super) fn new(pipe: P) -> io::Result<Pipe<P>> {
        Ok(Pipe {
            shared: Arc::new(Mutex::new(State {
                pipe: Some(pipe),
                closed: false,
                data: Vec::new(),
                pos: 0,
                eof: false,
                error: None,
                waiters: Vec::new(),
            })),
        })
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
    pub(super) fn into_std(self) -> io::Result<P> {
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
        to_pool(move || {
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
        });
        Poll::Pending
    }

    pub(super) async fn read_to_end(&self, mut buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
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

impl<P: Read + Send + 'static> PipeRead for Pipe<P> {
    async unsafe fn read_at<B: IoBufMut>(&self, buf: &mut B, off: usize) -> io::Result<usize> {
        let want = buf.bytes_total() - off;
        poll_fn(|cx| {
            self.poll_read_with(cx, want, &mut |src| {
                // SAFETY: `off <= buf.bytes_init()` (the caller's promise).
                unsafe { copy_into(buf, off, src) }
            })
        })
        .await
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

    /// Closes the pipe once no write runs any more.
    pub(super) fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<()> {
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
}

impl<P: Write + Send + 'static> PipeWrite for Pipe<P> {
    /// Writes `bytes` (at most [`CHUNK`]) with one blocking call.
    async fn write_bytes(&self, bytes: &[u8]) -> io::Result<usize> {
        let mut pipe = poll_fn(|cx| self.poll_acquire(cx)).await?;
        // From here to the job's start nothing awaits: the pipe cannot be
        // lost with a dropped future.
        let data = bytes[..bytes.len().min(CHUNK)].to_vec();
        let (tx, rx) = oneshot::channel();
        let shared = self.shared.clone();
        to_pool(move || {
            let res = retry(|| pipe.write(&data));
            // The result goes to the waiting future first; one nobody
            // waits for any more keeps its error for the next write.
            let unsent = tx.send(res).err();
            Self::finish(&shared, pipe, |st| {
                if let Some(Err(e)) = unsent {
                    st.error = Some(e);
                }
            });
        });
        rx.await
            .unwrap_or_else(|_| unreachable!("a write job always sends its result"))
    }
}
