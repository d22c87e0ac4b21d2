//! Scatter/gather on Windows sockets: one `WSASend`/`WSASendTo` or
//! `WSARecv`/`WSARecvFrom` over an array of `WSABUF`s, one per owned
//! buffer. What happens to the bytes around the op (stash, marking, a
//! cancelled receive) is shared with Unix, in `vectored`.
//!
//! # Invariants
//!
//! - The `WSABUF` array is a `Vec` the op's keep owns ([`WsaBufs`]); the op
//!   gets a pointer to its heap memory, which moving the `Vec` into the
//!   keep does not move, and which lives until the completion (Winsock
//!   documents that it captures the array at the call; keeping it costs
//!   nothing and does not rely on that).
//! - Each `WSABUF` points into an owned buffer of the same keep.
//! - A `WSABUF` carries a `u32` length and the op reports a `u32` count:
//!   a receive's array is the longest prefix of the buffers whose room
//!   fits in `u32::MAX` bytes (the last one possibly shortened), so the
//!   buffers still fill in order, each to its room before the next (see
//!   `vectored`); a send stops the same way and reports the bytes it took.

use std::io;
use std::ptr::NonNull;

use socket2::SockAddr;
use windows_sys::Win32::Networking::WinSock::WSABUF;

use super::socket::Socket;
use super::vectored::{mark_filled, orphan_recv_vec, RecvVecKeep, VecParts};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::op::{self, Op, OpOutput};

/// The `WSABUF` array of one vectored op; see the module docs.
pub(crate) struct WsaBufs(Vec<WSABUF>);

impl WsaBufs {
    /// `WSABUF`s over `(pointer, length)` pieces, in order, stopping once
    /// `u32::MAX` bytes are covered. Never empty: with no piece it holds
    /// one empty `WSABUF` (an empty datagram, or one received into no
    /// room).
    fn new(pieces: impl Iterator<Item = (*mut u8, usize)>) -> WsaBufs {
        let mut left = u32::MAX as usize;
        let mut bufs = Vec::new();
        for (buf, len) in pieces {
            if left == 0 || bufs.len() == u32::MAX as usize {
                break;
            }
            let len = len.min(left);
            left -= len;
            bufs.push(WSABUF {
                len: len as u32,
                buf,
            });
        }
        if bufs.is_empty() {
            // Never written or read: its length is 0.
            bufs.push(WSABUF {
                len: 0,
                buf: NonNull::dangling().as_ptr(),
            });
        }
        WsaBufs(bufs)
    }

    fn count(&self) -> u32 {
        self.0.len() as u32
    }
}

impl VecParts for WsaBufs {
    fn discard(&mut self) {}

    fn source(&self, out: &OpOutput) -> Option<SockAddr> {
        out.addr.map(SockAddr::from)
    }
}

impl Socket {
    /// Receives into `bufs` in order (see `TcpStream::read_vectored`): one
    /// `WSARecv` over all of them.
    pub(crate) async fn recv_vectored<B: IoBufMut>(
        &self,
        bufs: Vec<B>,
    ) -> BufResult<usize, Vec<B>> {
        let (res, bufs) = self.recv_scatter(bufs, false).await;
        (res.map(|(n, _)| n), bufs)
    }

    /// Sends `bufs` in order (see `TcpStream::write_vectored`): one
    /// `WSASend` over all of them.
    pub(crate) async fn send_vectored<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        self.send_gather(bufs, None).await
    }

    /// One datagram (or stream bytes) received into `bufs` in order, and
    /// its source address if `want_name`: one `WSARecv` or `WSARecvFrom`.
    /// Cancel-safe like `recv` (bytes, or the datagram with its source, go
    /// to the next read).
    pub(crate) async fn recv_scatter<B: IoBufMut>(
        &self,
        mut bufs: Vec<B>,
        want_name: bool,
    ) -> (io::Result<(usize, Option<SockAddr>)>, Vec<B>) {
        // What a cancelled receive left goes first.
        if let Some(got) = self.take_stashed_vec(&mut bufs).await {
            return (Ok(got), bufs);
        }
        if !self.is_datagram() && bufs.iter().all(|b| b.bytes_total() == 0) {
            // No room: nothing to read (as `read` of an empty buffer); a
            // datagram receive, though, must consume one.
            return (Ok((0, None)), bufs);
        }
        let mut wsa = WsaBufs::new(
            bufs.iter_mut()
                .map(|b| (b.stable_mut_ptr(), b.bytes_total())),
        );
        let desc = op::RecvVec {
            fd: self.fd(),
            bufs: wsa.0.as_mut_ptr(),
            count: wsa.count(),
            from: want_name,
        };
        let keep = RecvVecKeep {
            bufs,
            parts: wsa,
            sock: self.shared(),
        };
        let (out, keep) = Op::submit_with(desc, keep, orphan_recv_vec::<B, WsaBufs>).await;
        let mut bufs = keep.bufs;
        match out.res {
            Ok(n) => {
                // SAFETY: Winsock wrote `n` bytes across the array in
                // order; the array is a prefix of the buffers, each from
                // its start (module invariants).
                unsafe { mark_filled(&mut bufs, n) };
                let from = keep.parts.source(&out);
                (Ok((n, from)), bufs)
            }
            Err(e) => (Err(e), bufs),
        }
    }

    /// `bufs` sent in order as one datagram (or stream write) to `dest`, or
    /// to the connected peer if `None`: one `WSASend` or `WSASendTo`.
    pub(crate) async fn send_gather<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        dest: Option<SockAddr>,
    ) -> BufResult<usize, Vec<B>> {
        let addr = match dest.map(|d| d.as_socket()) {
            None => None,
            Some(Some(a)) => Some(a),
            Some(None) => {
                let e = io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "veloq: destination is not an IP address",
                );
                return (Err(e), bufs);
            }
        };
        let with_data = bufs.iter().filter(|b| b.bytes_init() > 0);
        // A stream sends nothing for no bytes; a datagram socket sends an
        // empty datagram.
        if with_data.clone().next().is_none() && !self.is_datagram() {
            return (Ok(0), bufs);
        }
        let wsa = WsaBufs::new(with_data.map(|b| (b.stable_ptr().cast_mut(), b.bytes_init())));
        let desc = op::SendVec {
            fd: self.fd(),
            bufs: wsa.0.as_ptr(),
            count: wsa.count(),
            addr,
        };
        let (out, (bufs, _, _)) = Op::submit(desc, (bufs, wsa, self.shared())).await;
        (out.res, bufs)
    }
}
