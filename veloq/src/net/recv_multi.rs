//! Multishot receive over a kernel provided-buffer ring (io_uring): the
//! kernel path of a [`RecvStream`](super::RecvStream).
//!
//! # Invariants
//!
//! - At most one multishot receive is armed per stream. Its sink
//!   ([`RecvSink`]) lives in the op's slot and in the stream; it holds the
//!   ring (whose buffers the kernel writes until the final CQE) and the
//!   socket (whose descriptor the op names), so both outlive the op.
//! - Each CQE's buffer becomes a [`PooledBuf`] at once (owned, returned to
//!   the ring when dropped) and is queued in arrival order; `poll_next`
//!   takes from the queue only when it returns.
//! - The kernel ends the op with a final CQE: end of stream (0 bytes), an
//!   error (queued for the caller), or `ENOBUFS` (the ring was empty: no
//!   data was taken, it waits in the socket). After `ENOBUFS` the next
//!   poll re-arms once the ring has a buffer again, or waits for a
//!   give-back.
//! - Dropping the stream moves the queued chunks' bytes to the socket's
//!   stash, cancels the op and marks the sink orphaned: chunks the op
//!   still takes go to the stash too, and an orphan guard holds the
//!   socket's next reads at the stash gate until the final CQE (so they
//!   come in order).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::socket::{Socket, SocketInner};
use crate::buf::PooledBuf;
use crate::io::buf::RingShared;
use crate::io::op::{MultishotEvent, MultishotSink, Op, RecvMulti};
use crate::io::stash::{OrphanGuard, StashOwner};

/// A stream's multishot receive; see the module docs.
pub(crate) struct MultiRecv {
    sink: Rc<RecvSink>,
    fd: crate::sys::RawFd,
    /// The op, while armed (or ended but not yet replaced).
    op: Option<Op<()>>,
    arms: u64,
}

/// Where the kernel's filled buffers wait for `next()`.
struct RecvSink {
    ring: Rc<RingShared>,
    socket: Rc<SocketInner>,
    state: RefCell<RecvState>,
}

#[derive(Default)]
struct RecvState {
    /// Chunks, end of stream (`Ok(None)`) and errors, oldest first.
    queue: VecDeque<io::Result<Option<PooledBuf>>>,
    armed: bool,
    /// The last op ended for want of a buffer (`ENOBUFS`).
    starved: bool,
    waker: Option<Waker>,
    /// Set when the stream was dropped with the op armed.
    orphan: Option<OrphanGuard<SocketInner>>,
}

impl MultishotSink for RecvSink {
    fn deliver(&self, event: MultishotEvent) {
        let mut st = self.state.borrow_mut();
        if !event.more {
            st.armed = false;
        }
        let item = match (event.res, event.buf) {
            (Ok(n), Some(id)) if id < self.ring.count() && n <= self.ring.size() => {
                if let Some(k) = self.ring.kernel() {
                    k.taken();
                }
                let buf = PooledBuf::lent(self.ring.clone(), id, n);
                // A buffer with nothing in it only goes back.
                (n > 0).then_some(Ok(Some(buf)))
            }
            (Ok(_), Some(id)) => Some(Err(io::Error::other(format!(
                "veloq: the kernel reported buffer {id}, outside this ring"
            )))),
            (Ok(0), None) => Some(Ok(None)),
            (Ok(_), None) => None,
            (Err(e), _) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                st.starved = true;
                None
            }
            // The stream's own cancel (or a dropping driver).
            (Err(e), _) if e.kind() == io::ErrorKind::Interrupted => None,
            (Err(e), _) => Some(Err(e)),
        };
        match item {
            Some(Ok(Some(buf))) if st.orphan.is_some() => {
                self.socket.stash().push_bytes(&buf);
            }
            Some(_) if st.orphan.is_some() => {}
            Some(item) => st.queue.push_back(item),
            None => {}
        }
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl MultiRecv {
    /// The kernel path for `socket` with `ring`, where the ring is a
    /// kernel ring.
    pub(crate) fn new(socket: &Socket, ring: &Rc<RingShared>) -> Option<MultiRecv> {
        ring.kernel()?;
        Some(MultiRecv {
            sink: Rc::new(RecvSink {
                ring: ring.clone(),
                socket: socket.shared(),
                state: RefCell::default(),
            }),
            fd: socket.fd(),
            op: None,
            arms: 0,
        })
    }

    /// How many multishot receives this stream armed.
    pub(crate) fn arms(&self) -> u64 {
        self.arms
    }

    /// The oldest queued chunk (`None`: end of stream); arms the receive
    /// when none is armed and the ring has a buffer.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<PooledBuf>>> {
        loop {
            {
                let mut st = self.sink.state.borrow_mut();
                if let Some(item) = st.queue.pop_front() {
                    return Poll::Ready(item.transpose());
                }
                if st.armed {
                    st.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                let kernel = self.sink.ring.kernel().expect("a kernel ring");
                if st.starved && kernel.available() == 0 {
                    self.sink.ring.wait_for_buffer(cx.waker());
                    return Poll::Pending;
                }
                if !kernel.on_current_driver() {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "veloq: this BufRing is registered with another runtime's driver",
                    ))));
                }
                st.starved = false;
                st.armed = true;
            }
            // The ended op's slot is freed before the new one is taken.
            self.op = None;
            let desc = RecvMulti {
                fd: self.fd,
                group: self.sink.ring.kernel().expect("a kernel ring").group(),
                sink: self.sink.clone(),
            };
            let mut op = Op::submit(desc, ());
            self.arms += 1;
            if let Some(e) = op.take_submit_error() {
                self.sink.state.borrow_mut().armed = false;
                return Poll::Ready(Some(Err(e)));
            }
            self.op = Some(op);
            // A completion processed during the submit is picked up above.
        }
    }
}

impl Drop for MultiRecv {
    fn drop(&mut self) {
        {
            let mut st = self.sink.state.borrow_mut();
            let mut stash = self.sink.socket.stash();
            for item in st.queue.drain(..) {
                if let Ok(Some(buf)) = item {
                    stash.push_bytes(&buf);
                }
            }
            drop(stash);
            if st.armed {
                st.orphan = Some(OrphanGuard::new(self.sink.socket.clone()));
            }
        }
        // Cancels the op; the sink (and with it the ring, the socket and
        // the orphan guard) goes with its slot at the final CQE.
        drop(self.op.take());
    }
}

#[cfg(test)]
mod tests {
    use crate::buf::BufRing;
    use crate::net::TcpStream;
    use crate::runtime::context;

    use crate::io::driver::test_util::uring_runtime as uring;

    /// Ping-pongs 50 messages through a recv stream on `ring`; returns the
    /// receives it took and the ops in flight at the end.
    async fn ping_pong(ring: &BufRing) -> (u64, usize) {
        let listener = crate::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop(listener);
        let mut chunks = server.recv_stream(ring);
        for i in 0..50u8 {
            let (res, _) = client.write_all(vec![i; 100]).await;
            res.unwrap();
            let mut got = 0;
            while got < 100 {
                let chunk = chunks.next().await.unwrap().unwrap();
                assert!(chunk.iter().all(|&b| b == i));
                got += chunk.len();
            }
        }
        (chunks.receives(), crate::runtime::driver_stats().in_flight)
    }

    #[test]
    fn a_kernel_ring_keeps_one_multishot_receive_armed() {
        let Some(rt) = uring() else { return };
        rt.block_on(async {
            let ring = BufRing::new(4, 4096).unwrap();
            if !ring.is_kernel_ring() {
                eprintln!("skipping: no pbuf rings in this kernel");
                return;
            }
            assert_eq!(ping_pong(&ring).await, (1, 1));
        });
    }

    #[test]
    fn without_multishot_receive_the_portable_path_serves_the_ring() {
        let Some(rt) = uring() else { return };
        rt.block_on(async {
            // As if the probe had found no multishot receive.
            context::with_driver(|d| d.forget_multishot());
            let ring = BufRing::new(4, 4096).unwrap();
            assert!(!ring.is_kernel_ring());
            let (receives, in_flight) = ping_pong(&ring).await;
            assert!(receives >= 50, "{receives}");
            assert_eq!(in_flight, 0);
            assert_eq!(ring.available(), 4);
        });
    }
}
