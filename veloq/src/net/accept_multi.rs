//! Multishot accept (io_uring): the Linux [`AcceptQueue`].
//!
//! # Invariants
//!
//! - At most one multishot accept is armed per listener. Its sink
//!   ([`AcceptSink`]) lives in the op's slot and in the queue; the kernel's
//!   descriptors go into the sink's FIFO and are owned there until `accept`
//!   returns one (so a dropped `accept` loses nothing).
//! - The sink holds the listening socket: its descriptor stays open while
//!   the op may run. Dropping the listener cancels the op synchronously
//!   (`Op::cancel_now`); once the kernel confirms it no longer runs, the
//!   socket is released at once, so the address is free again when the
//!   drop returns (a server can rebind it). Where that cannot be
//!   confirmed the socket stays in the sink until the op's final CQE
//!   frees its slot.
//! - When the kernel ends the op (a final CQE: an error, or a full CQ), the
//!   next `accept` that finds the FIFO empty arms a new one; an error is
//!   returned to the caller that finds it at the head of the FIFO.
//! - Dropping the listener closes the queued descriptors and cancels the
//!   op; descriptors the kernel accepted before the cancel took effect
//!   are closed as they arrive (the sink is marked closed).
//! - The mode is picked on the first `accept` from the driver's probe
//!   (`supports_multishot_accept`); where it says no, every call is a
//!   single-shot accept ([`accept_once`]).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::accept_queue::accept_once;
use super::socket::{Socket, SocketInner};
use crate::io::op::{AcceptMulti, MultishotEvent, MultishotSink, Op};
use crate::io::stash::Stash;
use crate::runtime::context;
use crate::sys::{self, RawFd};

/// A listener's accepts; see the module docs.
#[derive(Default)]
pub(crate) struct AcceptQueue {
    /// Whether this listener uses multishot accept (`None` until the first
    /// `accept` asks the driver).
    multishot: Cell<Option<bool>>,
    armed: RefCell<Option<Armed>>,
}

/// The multishot accept of a listener and where its connections go.
struct Armed {
    sink: Rc<AcceptSink>,
    /// The op, while armed (or ended but not yet replaced).
    op: Option<Op<()>>,
}

/// Where the kernel's accepted descriptors wait for `accept`.
#[derive(Default)]
struct AcceptSink {
    state: RefCell<SinkState>,
    /// The listening socket, while an op may name its descriptor.
    socket: RefCell<Option<Rc<SocketInner>>>,
}

#[derive(Default)]
struct SinkState {
    /// Accepted descriptors (owned) and errors, oldest first.
    ready: VecDeque<io::Result<RawFd>>,
    /// Whether a multishot accept is armed (no final CQE yet).
    armed: bool,
    /// The listener is gone: descriptors are closed on arrival.
    closed: bool,
    /// Tasks waiting in `accept`.
    waiters: Vec<Waker>,
}

/// Closes an accepted descriptor nobody will take.
fn close(fd: RawFd) {
    // SAFETY: `fd` is a descriptor the kernel accepted for this sink,
    // owned by it alone (module invariants); this closes it once.
    drop(unsafe { sys::socket_from_raw(fd) });
}

impl MultishotSink for AcceptSink {
    fn deliver(&self, event: MultishotEvent) {
        let waiters = {
            let mut st = self.state.borrow_mut();
            if !event.more {
                st.armed = false;
            }
            match event.res {
                Ok(fd) if st.closed => close(fd as RawFd),
                Ok(fd) => st.ready.push_back(Ok(fd as RawFd)),
                // The cancel of a closing listener (or a dropping driver)
                // is no news; a new `accept` re-arms.
                Err(e) if st.closed || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => st.ready.push_back(Err(e)),
            }
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }
}

impl Drop for SinkState {
    fn drop(&mut self) {
        for fd in self.ready.drain(..).flatten() {
            close(fd);
        }
    }
}

impl AcceptQueue {
    /// One accepted connection, owned by the caller, and its peer address
    /// when the driver reported it (multishot accept reports none: the
    /// caller asks the socket).
    pub(crate) async fn accept(
        &self,
        socket: &Socket,
        ipv6: bool,
    ) -> io::Result<(RawFd, Option<SocketAddr>)> {
        if !self.multishot() {
            return accept_once(socket, ipv6).await;
        }
        // A single-shot accept cancelled before this listener turned
        // multishot (never, today) would have stashed its connection.
        if let Some(conn) = socket.take_stashed(Stash::take_accepted).await {
            return Ok(conn);
        }
        let fd = poll_fn(|cx| self.poll_accept(socket, cx)).await?;
        Ok((fd, None))
    }

    fn multishot(&self) -> bool {
        match self.multishot.get() {
            Some(m) => m,
            None => {
                let m = context::with_driver(|d| d.supports_multishot_accept());
                self.multishot.set(Some(m));
                m
            }
        }
    }

    /// The oldest queued connection (or error); arms the multishot accept
    /// when none is armed.
    fn poll_accept(&self, socket: &Socket, cx: &mut Context<'_>) -> Poll<io::Result<RawFd>> {
        let mut armed = self.armed.borrow_mut();
        let armed = armed.get_or_insert_with(|| Armed {
            sink: Rc::default(),
            op: None,
        });
        loop {
            {
                let mut st = armed.sink.state.borrow_mut();
                if let Some(res) = st.ready.pop_front() {
                    return Poll::Ready(res);
                }
                if st.armed {
                    if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        st.waiters.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                st.armed = true;
            }
            // The ended op's slot is freed before the new one is taken.
            armed.op = None;
            let desc = AcceptMulti {
                fd: socket.fd(),
                sink: armed.sink.clone(),
            };
            armed.sink.socket.replace(Some(socket.shared()));
            let mut op = Op::submit(desc, ());
            if let Some(e) = op.take_submit_error() {
                armed.sink.state.borrow_mut().armed = false;
                return Poll::Ready(Err(e));
            }
            armed.op = Some(op);
            // A completion processed during the submit is picked up above.
        }
    }

    /// Whether this listener uses multishot accept (`None` before its
    /// first `accept`).
    #[cfg(test)]
    pub(crate) fn is_multishot(&self) -> Option<bool> {
        self.multishot.get()
    }
}

impl Drop for AcceptQueue {
    fn drop(&mut self) {
        let Some(armed) = self.armed.get_mut().take() else {
            return;
        };
        {
            let mut st = armed.sink.state.borrow_mut();
            st.closed = true;
            for fd in st.ready.drain(..).flatten() {
                close(fd);
            }
        }
        if armed.op.as_ref().is_none_or(Op::cancel_now) {
            // The kernel no longer runs the op: the descriptor may close.
            armed.sink.socket.take();
        }
        // The slot goes at the final CQE (with the socket, if still held).
        drop(armed.op);
    }
}

#[cfg(test)]
mod tests {
    use crate::net::{TcpListener, TcpStream};
    use crate::runtime::context;

    use crate::io::driver::test_util::uring_runtime as uring;

    /// Accepts three connections; returns whether the listener used
    /// multishot accept and what was left in flight.
    async fn accept_three() -> (Option<bool>, usize) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for _ in 0..3 {
            let client = TcpStream::connect(addr).await.unwrap();
            let (_, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
        }
        let multishot = listener.accepts.is_multishot();
        (multishot, crate::runtime::driver_stats().in_flight)
    }

    #[test]
    fn io_uring_keeps_one_multishot_accept_armed() {
        let Some(rt) = uring() else { return };
        rt.block_on(async {
            if !context::with_driver(|d| d.supports_multishot_accept()) {
                eprintln!("skipping: no multishot accept in this kernel");
                return;
            }
            assert_eq!(accept_three().await, (Some(true), 1));
        });
    }

    #[test]
    fn without_multishot_accept_each_accept_is_one_op() {
        let Some(rt) = uring() else { return };
        rt.block_on(async {
            // As if the probe had found no multishot accept.
            context::with_driver(|d| d.forget_multishot());
            assert_eq!(accept_three().await, (Some(false), 0));
        });
    }
}
