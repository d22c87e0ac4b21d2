//! [`RecvStream`]: a stream socket's received bytes as a sequence of
//! [`PooledBuf`]s from a [`BufRing`].
//!
//! Two paths behind one API (see `io::buf::ring`): with a kernel ring
//! (io_uring) the stream keeps one multishot receive armed (`recv_multi`);
//! otherwise each `next()` takes a free buffer of the ring's user-space
//! pool (waiting while all are lent) and runs one ordinary receive into
//! it, through the socket's cancel-safe read path. The portable path is
//! written once, over the `Driver` trait, for every backend.
//!
//! # Invariants
//!
//! - `next()` is cancel-safe on both paths: a chunk is only taken from the
//!   kernel-ring queue when `next()` returns it, and a portable receive
//!   dropped mid-flight hands what it took to the socket's stash.
//! - Dropping the stream loses nothing: queued chunks and whatever the
//!   multishot receive takes before its cancel lands go to the socket's
//!   stash, in order, and the socket's next read (or stream) takes them
//!   first.
//! - Bytes stashed by a cancelled read come before anything newer: the
//!   kernel path hands them out first (as a heap-backed `PooledBuf`).

use std::future::poll_fn;
use std::io;

use super::socket::Socket;
use crate::buf::{BufRing, PooledBuf};

#[cfg(target_os = "linux")]
use super::recv_multi::MultiRecv;
#[cfg(not(target_os = "linux"))]
use super::recv_multi_none::MultiRecv;

/// The received bytes of a stream socket, one [`PooledBuf`] per receive;
/// from [`TcpStream::recv_stream`](crate::net::TcpStream::recv_stream) (or
/// a Unix stream's, or a read half's).
///
/// ```no_run
/// # veloq::block_on(async {
/// use veloq::buf::BufRing;
///
/// let ring = BufRing::new(16, 16 * 1024)?;
/// let stream = veloq::net::TcpStream::connect("127.0.0.1:7").await?;
/// let mut chunks = stream.recv_stream(&ring);
/// while let Some(chunk) = chunks.next().await {
///     let (res, _) = stream.write_all(chunk?).await; // echo the chunk back
///     res?;
/// }
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct RecvStream<'a> {
    socket: &'a Socket,
    ring: BufRing,
    kernel: Option<MultiRecv>,
    /// End of stream seen on the kernel path.
    done: bool,
    /// Receive ops handed to the driver.
    portable_receives: u64,
}

impl<'a> RecvStream<'a> {
    pub(crate) fn new(socket: &'a Socket, ring: &BufRing) -> RecvStream<'a> {
        RecvStream {
            socket,
            ring: ring.clone(),
            kernel: MultiRecv::new(socket, ring.shared()),
            done: false,
            portable_receives: 0,
        }
    }

    /// The next received chunk, in order; `None` at end of stream (the
    /// peer shut its side down), then again on every call.
    ///
    /// Waits while every buffer of the ring is held (by the caller or
    /// other streams): the data waits in the socket meanwhile, and comes
    /// intact once a buffer is dropped.
    ///
    /// Cancel-safe: dropping the future loses nothing (see the type docs).
    ///
    /// # Errors
    ///
    /// The receive's error (e.g. `ConnectionReset`), once; a later call
    /// receives again. `InvalidInput` if the ring is a kernel ring of
    /// another runtime.
    pub async fn next(&mut self) -> Option<io::Result<PooledBuf>> {
        match &mut self.kernel {
            Some(multi) => {
                if self.done {
                    return None;
                }
                let size = self.ring.buf_size();
                let stashed = self
                    .socket
                    .take_stashed(|stash| {
                        let mut data = Vec::with_capacity(size);
                        stash.take_bytes(&mut data, 0).map(|_| data)
                    })
                    .await;
                if let Some(data) = stashed {
                    return Some(Ok(PooledBuf::heap(data)));
                }
                let next = poll_fn(|cx| multi.poll_next(cx)).await;
                self.done = next.is_none();
                next
            }
            None => {
                let buf = self.ring.shared().acquire().await;
                self.portable_receives += 1;
                let (res, buf) = self.socket.recv(buf).await;
                match res {
                    Ok(0) => None,
                    Ok(_) => Some(Ok(buf)),
                    Err(e) => Some(Err(e)),
                }
            }
        }
    }

    /// How many receive operations this stream has handed to the driver:
    /// on a kernel ring the multishot receives it armed (one for as long
    /// as buffers stay available), elsewhere one per `next()`.
    pub fn receives(&self) -> u64 {
        match &self.kernel {
            Some(multi) => multi.arms(),
            None => self.portable_receives,
        }
    }
}

impl std::fmt::Debug for RecvStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvStream")
            .field("fd", &self.socket.fd())
            .field("ring", &self.ring)
            .field("receives", &self.receives())
            .finish()
    }
}
