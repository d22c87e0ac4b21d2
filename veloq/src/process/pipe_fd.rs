//! The pipe behind the child stream handles on Linux: the parent's pipe
//! end, non-blocking, read and written with plain system calls, waited for
//! through the driver.
//!
//! A read or write is tried at once, straight into (or from) the caller's
//! buffer. When the pipe is not ready (`EAGAIN`), one [`ready::watch`]
//! (io_uring `POLL_ADD`, epoll readiness; the pool only outside a runtime)
//! wakes every future waiting on the pipe once it is, and they try again.
//!
//! # Buffers and cancellation
//!
//! No system call outlives the `poll` that makes it, so the kernel never
//! holds a pointer into the caller's buffer after the future returns
//! `Pending`: buffers need not be `Send`, nothing is copied, and a read
//! whose future is dropped loses no bytes (they stay in the pipe for the
//! next read). A write's bytes are in the pipe once it returns, and not
//! before: a dropped write wrote nothing it did not report.
//!
//! # Invariants
//!
//! - The descriptor is an `Arc<OwnedFd>`: the state holds one count until
//!   the handle is dropped or shut down, and a watch in flight holds
//!   another (its op's keep), so the pipe closes only once no watch can
//!   touch it; the child sees end of file (or `EPIPE`) from then on.
//! - `watching` is true exactly while one watch runs; its end clears it,
//!   records its error and wakes every waiter.
//! - No waker runs and no descriptor closes while the state lock is held.
//! - The descriptor is `O_NONBLOCK` while the handle owns it, and blocking
//!   again once handed to another child (`into_std`).

use std::future::poll_fn;
use std::io;
use std::marker::PhantomData;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::pipe_io::{PipeRead, PipeWrite};
use super::ready;
use crate::buf::{BufResult, IoBufMut};
use crate::sync::lock;

/// Most bytes one read of [`Pipe::read_to_end`] asks for (a Linux pipe
/// holds 64 KiB by default).
const CHUNK: usize = 64 * 1024;

/// One pipe end of a child; see the module docs. `P` is the std type it
/// came from (and goes back to in [`into_std`](Pipe::into_std)).
pub(super) struct Pipe<P> {
    shared: Arc<Mutex<State>>,
    _std: PhantomData<fn() -> P>,
}

struct State {
    /// The pipe; `None` once shut down.
    fd: Option<Arc<OwnedFd>>,
    /// A watch runs.
    watching: bool,
    /// A watch's error not yet reported.
    error: Option<io::Error>,
    /// Futures waiting for the watch.
    waiters: Vec<Waker>,
}

impl<P: Into<OwnedFd> + From<OwnedFd>> Pipe<P> {
    /// Adopts a std pipe end, making it non-blocking.
    pub(super) fn new(pipe: P) -> io::Result<Pipe<P>> {
        let fd: OwnedFd = pipe.into();
        set_nonblocking(fd.as_raw_fd(), true)?;
        Ok(Pipe {
            shared: Arc::new(Mutex::new(State {
                fd: Some(Arc::new(fd)),
                watching: false,
                error: None,
                waiters: Vec::new(),
            })),
            _std: PhantomData,
        })
    }

    /// Takes the std pipe back out (blocking again), for another child's
    /// `Stdio`: only while no watch holds it.
    pub(super) fn into_std(self) -> io::Result<P> {
        let fd = lock(&self.shared).fd.take();
        let Some(fd) = fd else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the pipe was shut down",
            ));
        };
        match Arc::try_unwrap(fd) {
            Ok(fd) => {
                set_nonblocking(fd.as_raw_fd(), false)?;
                Ok(P::from(fd))
            }
            // The watch closes it when it ends.
            Err(_) => Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "a read or write on the pipe is still waiting for it",
            )),
        }
    }
}

impl<P> Drop for Pipe<P> {
    fn drop(&mut self) {
        let fd = lock(&self.shared).fd.take();
        drop(fd); // closes it now, unless a watch holds it
    }
}

impl<P> Pipe<P> {
    /// Runs `call` (one `read` or `write` on the descriptor, returning
    /// what the system call did) until it does not say `EINTR`; on
    /// `EAGAIN` waits for the pipe to be ready (`write`: writable) and
    /// returns `Pending`.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        write: bool,
        call: &mut dyn FnMut(RawFd) -> isize,
    ) -> Poll<io::Result<usize>> {
        let mut st = lock(&self.shared);
        if let Some(e) = st.error.take() {
            return Poll::Ready(Err(e));
        }
        let Some(fd) = st.fd.clone() else {
            let e = io::Error::new(io::ErrorKind::BrokenPipe, "the pipe was shut down");
            return Poll::Ready(Err(e));
        };
        let raw = fd.as_raw_fd();
        loop {
            let r = call(raw);
            if r >= 0 {
                return Poll::Ready(Ok(r as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => break,
                _ => return Poll::Ready(Err(e)),
            }
        }
        if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.waiters.push(cx.waker().clone());
        }
        if st.watching {
            return Poll::Pending; // its end wakes us
        }
        st.watching = true;
        drop(st);
        let shared = self.shared.clone();
        ready::watch(fd, raw, write, move |_, res| {
            let waiters = {
                let mut st = lock(&shared);
                st.watching = false;
                if let Err(e) = res {
                    st.error = Some(e);
                }
                mem::take(&mut st.waiters)
            };
            for w in waiters {
                w.wake();
            }
        });
        Poll::Pending
    }

    pub(super) async fn read_to_end(&self, mut buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        let start = buf.len();
        loop {
            buf.reserve(CHUNK);
            let res = poll_fn(|cx| {
                let spare = buf.spare_capacity_mut();
                let (ptr, want) = (spare.as_mut_ptr(), spare.len());
                self.poll_io(cx, false, &mut |fd| {
                    // SAFETY: `ptr[..want]` is `buf`'s spare capacity,
                    // which nothing else touches during the call.
                    unsafe { libc::read(fd, ptr.cast(), want) }
                })
            })
            .await;
            match res {
                Ok(0) => return (Ok(buf.len() - start), buf),
                // SAFETY: the kernel initialised `n <= want` bytes of the
                // spare capacity, right after `len`.
                Ok(n) => unsafe { buf.set_len(buf.len() + n) },
                Err(e) => return (Err(e), buf),
            }
        }
    }

    /// Closes the pipe (once a watch in flight lets go of it).
    pub(super) fn poll_shutdown(&self, _cx: &mut Context<'_>) -> Poll<()> {
        let fd = lock(&self.shared).fd.take();
        drop(fd);
        Poll::Ready(())
    }
}

impl<P> PipeRead for Pipe<P> {
    /// Reads once into `buf[off..bytes_total]`; marks what came
    /// initialised.
    ///
    /// # Safety
    ///
    /// `off <= buf.bytes_init()` and `off < buf.bytes_total()`.
    async unsafe fn read_at<B: IoBufMut>(&self, buf: &mut B, off: usize) -> io::Result<usize> {
        let want = buf.bytes_total() - off;
        // The pointer is taken anew in each poll (a raw pointer held
        // across the await would make the future `!Send`).
        let n = poll_fn(|cx| {
            // SAFETY: `off < bytes_total` (the caller's promise), and
            // `IoBufMut` makes `stable_mut_ptr` valid for `bytes_total`
            // bytes.
            let ptr = unsafe { buf.stable_mut_ptr().add(off) };
            self.poll_io(cx, false, &mut |fd| {
                // SAFETY: `ptr[..want]` lies in `buf`, borrowed for this
                // whole call; the read returns before the poll does.
                unsafe { libc::read(fd, ptr.cast(), want) }
            })
        })
        .await?;
        // SAFETY: bytes `..off` were initialised (the caller's promise)
        // and the kernel wrote `off..off + n`, `n <= want`.
        unsafe { buf.set_init(off + n) };
        Ok(n)
    }
}

impl<P> PipeWrite for Pipe<P> {
    /// Writes once from `bytes`.
    async fn write_bytes(&self, bytes: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| {
            self.poll_io(cx, true, &mut |fd| {
                // SAFETY: `bytes` is borrowed for this whole call.
                unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) }
            })
        })
        .await
    }
}

/// Sets or clears `O_NONBLOCK` on `fd`'s open file description (the
/// parent's end only: the child's end is a description of its own).
fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: `F_GETFL` reads the flags of a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: `F_SETFL` sets the status flags of a descriptor we own.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
