//! [hyper](https://docs.rs/hyper/1) 1.x on veloq (feature `hyper`).
//!
//! - I/O: [`Compat`] implements `hyper::rt::Read` and `hyper::rt::Write`,
//!   so a wrapped [`TcpStream`](crate::net::TcpStream) (or any stream
//!   `Compat` accepts) is handed to hyper's connection builders as it is.
//! - [`LocalExec`]: a `hyper::rt::Executor` that spawns on the current
//!   worker with [`spawn`](crate::spawn); the futures need not be `Send`.
//!   HTTP/2 connections (server and client) spawn their streams with it.
//! - [`VeloqTimer`]: a `hyper::rt::Timer` on veloq's timers, for hyper's
//!   timeouts (`header_read_timeout`, HTTP/2 keep-alive pings).
//!
//! A server: each connection is a task on the worker that accepted it.
//!
//! ```no_run
//! // With hyper's `server` and `http1` features, and http-body-util.
//! use http_body_util::Full;
//! use hyper::body::Bytes;
//! use hyper::server::conn::http1;
//! use hyper::service::service_fn;
//! use veloq::compat::Compat;
//! use veloq::hyper::VeloqTimer;
//! use veloq::net::TcpListener;
//!
//! veloq::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:8080").unwrap();
//!     loop {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         veloq::spawn(async move {
//!             let service = service_fn(|_req| async {
//!                 let body = Full::new(Bytes::from_static(b"Hello, world!\n"));
//!                 Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
//!             });
//!             let _ = http1::Builder::new()
//!                 .timer(VeloqTimer)
//!                 .serve_connection(Compat::new(stream), service)
//!                 .await;
//!         });
//!     }
//! });
//! ```
//!
//! For HTTP/2, `hyper::server::conn::http2::Builder::new(LocalExec)`
//! (and `.timer(VeloqTimer)` for keep-alive pings); `examples/hyper_server.rs`
//! serves both protocols on one port with hyper-util's `auto` builder.
//!
//! # Design notes
//!
//! - The byte path is [`Compat`]'s (a 64 KiB read buffer, two bounded
//!   write buffers; see the [`compat`](crate::compat) module docs): hyper
//!   reads through the read buffer and copies straight into its own
//!   buffer, and hyper's writes are accepted into the write buffer and go
//!   out while hyper goes on. A `Pending` write has accepted nothing, which
//!   h2 (it may write a different frame after `Pending`) relies on.
//!   hyper flushes the stream after each message it writes, and shuts it
//!   down on a clean close.
//! - hyper's `Sleep` must be `Send + Sync`, and veloq's
//!   [`Sleep`](crate::time::Sleep) belongs to its worker (`!Send`). A
//!   [`VeloqSleep`] therefore keeps its state behind a mutex and, on its
//!   first poll, spawns a small task on the current worker that waits on a
//!   veloq timer and then wakes the sleep. Moving the deadline
//!   (`Timer::reset`, which hyper uses for HTTP/2 keep-alive pings) reuses
//!   the task; dropping the sleep aborts it. A sleep dropped before it had
//!   to wait spawns nothing. The cost is one task per sleep that waits:
//!   with a timer set, hyper's HTTP/1 server makes one for each request
//!   whose head it has to wait for (`header_read_timeout`, 30 s by
//!   default; `header_read_timeout(None)` turns it off).

use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use ::hyper::rt::{Executor, ReadBufCursor, Sleep as HyperSleep, Timer};
use tokio::io::{AsyncBufRead as _, AsyncWrite as TokioWrite};

use crate::compat::Compat;
use crate::io::{AsyncRead, AsyncWrite};
use crate::runtime::JoinHandle;

impl<S: 'static> ::hyper::rt::Read for Compat<S>
where
    for<'a> &'a S: AsyncRead,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut this = self;
        let avail = ready!(this.as_mut().poll_fill_buf(cx))?;
        // An empty `avail` is end of stream: nothing put is hyper's EOF.
        let n = avail.len().min(buf.remaining());
        buf.put_slice(&avail[..n]);
        this.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: 'static> ::hyper::rt::Write for Compat<S>
where
    for<'a> &'a S: AsyncWrite,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        TokioWrite::poll_write(self, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TokioWrite::poll_flush(self, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TokioWrite::poll_shutdown(self, cx)
    }

    fn is_write_vectored(&self) -> bool {
        TokioWrite::is_write_vectored(self)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        TokioWrite::poll_write_vectored(self, cx, bufs)
    }
}

/// A `hyper::rt::Executor` that runs each future as a task on the current
/// worker ([`spawn`](crate::spawn)); the futures need not be `Send`.
///
/// Pass it to `hyper::server::conn::http2::Builder::new`,
/// `hyper::client::conn::http2::Builder::new` (or hyper-util's `auto`
/// builder). The tasks are detached: they end with their connection.
///
/// # Panics
///
/// `execute` panics outside a veloq runtime, as `spawn` does.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExec;

impl<F> Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        // The output (`()` for hyper's futures) is dropped in the task, so
        // it need not be `'static`.
        drop(crate::spawn(async move {
            fut.await;
        }));
    }
}

/// A `hyper::rt::Timer` on veloq's timer wheel: its sleeps are
/// [`VeloqSleep`]s.
///
/// Give it to hyper's builders (`.timer(VeloqTimer)`) to enable hyper's
/// timeouts. A sleep must be polled inside a veloq runtime (hyper polls
/// it from the connection's task); the timer itself is a unit value,
/// `Send` and `Sync`.
#[derive(Clone, Copy, Debug, Default)]
pub struct VeloqTimer;

impl Timer for VeloqTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn HyperSleep>> {
        Box::pin(VeloqSleep::new(deadline_after(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn HyperSleep>> {
        Box::pin(VeloqSleep::new(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn HyperSleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<VeloqSleep>() {
            Some(s) => s.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// `now + duration`, or as far as `Instant` reaches (up to about 30
/// years: "never") if that overflows.
fn deadline_after(duration: Duration) -> Instant {
    const YEAR: u64 = 365 * 24 * 60 * 60;
    let now = Instant::now();
    now.checked_add(duration).unwrap_or_else(|| {
        [30 * YEAR, YEAR, 24 * 60 * 60]
            .into_iter()
            .find_map(|secs| now.checked_add(Duration::from_secs(secs)))
            .unwrap_or(now)
    })
}

/// The future of [`VeloqTimer`]'s sleeps: completes at its deadline.
///
/// `Send + Sync` (as hyper requires), unlike [`veloq::time::Sleep`]:
/// its first poll that has to wait spawns a task on the current worker,
/// which waits on a veloq timer and wakes this future. Dropping the sleep
/// aborts that task.
///
/// # Panics
///
/// A poll that has to wait panics outside a veloq runtime.
///
/// [`veloq::time::Sleep`]: crate::time::Sleep
pub struct VeloqSleep {
    shared: Arc<Shared>,
    /// The timer task, once spawned; finished once the sleep fired. A
    /// mutex only to make the sleep `Sync` (`JoinHandle` is not): it is
    /// reached through `&mut self` alone, without locking.
    task: Mutex<Option<JoinHandle<()>>>,
}

/// What the sleep and its timer task share.
struct Shared {
    state: Mutex<State>,
}

struct State {
    deadline: Instant,
    /// The deadline passed (set by the timer task, or by a poll).
    fired: bool,
    /// Who polled the sleep last.
    waiter: Option<Waker>,
    /// The timer task, to wake when the deadline moves.
    timer: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; recover anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl VeloqSleep {
    /// A sleep until `deadline`; nothing is spawned before it is polled.
    pub fn new(deadline: Instant) -> VeloqSleep {
        VeloqSleep {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    deadline,
                    fired: false,
                    waiter: None,
                    timer: None,
                }),
            }),
            task: Mutex::new(None),
        }
    }

    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.shared.lock().deadline
    }

    /// Moves the deadline (also after completion: the sleep then waits
    /// again). The timer task, if running, follows the new deadline.
    pub fn reset(&mut self, deadline: Instant) {
        let mut st = self.shared.lock();
        st.deadline = deadline;
        if st.fired {
            // The next poll that has to wait starts a new timer task. The
            // old one has ended, or (when a poll saw the deadline pass
            // first) would only wake this sleep once more: abort it.
            st.fired = false;
            drop(st);
            if let Some(task) = self.task_slot().take() {
                task.abort();
            }
        } else if let Some(timer) = st.timer.take() {
            drop(st);
            timer.wake();
        }
    }

    fn task_slot(&mut self) -> &mut Option<JoinHandle<()>> {
        self.task.get_mut().unwrap_or_else(|e| e.into_inner())
    }
}

impl Future for VeloqSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        {
            let mut st = this.shared.lock();
            if st.fired {
                return Poll::Ready(());
            }
            if Instant::now() >= st.deadline {
                st.fired = true;
                return Poll::Ready(());
            }
            match &mut st.waiter {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        if this.task_slot().is_none() {
            let shared = this.shared.clone();
            *this.task_slot() = Some(crate::spawn(run_timer(shared)));
        }
        Poll::Pending
    }
}

/// The timer task of one sleep: waits on a veloq timer for the shared
/// deadline (following its moves), then marks the sleep fired and wakes it.
async fn run_timer(shared: Arc<Shared>) {
    let mut timer = crate::time::sleep_until(shared.lock().deadline);
    poll_fn(|cx| {
        let deadline = {
            let mut st = shared.lock();
            st.timer = Some(cx.waker().clone());
            st.deadline
        };
        if timer.deadline() != deadline {
            timer.reset(deadline);
        }
        ready!(Pin::new(&mut timer).poll(cx));
        let waiter = {
            let mut st = shared.lock();
            if st.deadline != deadline {
                // Moved while the timer fired: wait for the new deadline.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            st.fired = true;
            st.timer = None;
            st.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
        Poll::Ready(())
    })
    .await
}

impl HyperSleep for VeloqSleep {}

impl Drop for VeloqSleep {
    fn drop(&mut self) {
        if let Some(task) = self.task_slot().take() {
            task.abort();
        }
    }
}

impl fmt::Debug for VeloqSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("VeloqSleep")
            .field("deadline", &st.deadline)
            .field("fired", &st.fired)
            .finish()
    }
}
