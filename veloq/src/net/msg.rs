//! Scatter/gather, addresses and ancillary data on Unix sockets: one
//! `sendmsg` / `recvmsg` op over several owned buffers, optionally to or
//! from a named peer (datagram sockets) and with descriptors passed as
//! `SCM_RIGHTS`. What happens to the bytes around the op (stash, marking,
//! a cancelled receive) is shared with Windows, in `vectored`.
//!
//! # Invariants
//!
//! - A [`MsgParts`] is boxed before its header is pointed at its iovecs,
//!   name and control buffer, and it lives in the op's `keep` until the
//!   completion: the kernel reads and writes it through those pointers.
//! - The iovecs point into the owned buffers of the same `keep`.
//! - Descriptors to send are duplicated into the `keep` (`OwnedFd`), so the
//!   numbers the kernel reads stay open and unreused until the op is done,
//!   even if the caller closes its own copies after cancelling.
//! - Descriptors received are owned by whoever gets the output: the caller,
//!   or, for a cancelled receive, its hook, which closes them.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use socket2::SockAddr;

use super::socket::Socket;
use super::vectored::{mark_filled, orphan_recv_vec, RecvVecKeep, VecParts};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::op::{self, Op, OpOutput, SockName};

/// What one `recvmsg` got.
pub(crate) struct Received {
    /// Bytes, across the buffers in order.
    pub(crate) n: usize,
    /// Descriptors passed with `SCM_RIGHTS`, now the caller's.
    pub(crate) fds: Vec<OwnedFd>,
    /// The source address, when asked for (datagram sockets) and the kernel
    /// gave one.
    pub(crate) from: Option<SockAddr>,
}

/// The header of one `sendmsg`/`recvmsg` and what it points to; see the
/// module docs.
pub(crate) struct MsgParts {
    iov: Vec<libc::iovec>,
    control: Vec<u8>,
    /// Where a receive's source address goes (`msg_name`), when asked for.
    name: SockName,
    /// A send's destination (`msg_name`), if any.
    dest: Option<SockAddr>,
    msg: libc::msghdr,
    /// Duplicates of the descriptors being sent.
    fds: Vec<OwnedFd>,
}

impl MsgParts {
    /// A header over `iov` with `control` as its control buffer (room for
    /// a receive's control data, or a send's filled in later), sending to
    /// `dest` or, if `want_name`, receiving the source address.
    fn new(
        iov: Vec<libc::iovec>,
        control: Vec<u8>,
        dest: Option<SockAddr>,
        want_name: bool,
    ) -> Box<MsgParts> {
        let mut parts = Box::new(MsgParts {
            iov,
            control,
            name: SockName::new(),
            dest,
            // SAFETY: all-zero is a valid `msghdr` (null pointers, zero
            // lengths).
            msg: unsafe { mem::zeroed() },
            fds: Vec::new(),
        });
        parts.msg.msg_iov = parts.iov.as_mut_ptr();
        parts.msg.msg_iovlen = parts.iov.len() as _;
        if !parts.control.is_empty() {
            parts.msg.msg_control = parts.control.as_mut_ptr().cast();
            parts.msg.msg_controllen = parts.control.len() as _;
        }
        if let Some(dest) = &parts.dest {
            // The kernel only reads a send's name.
            parts.msg.msg_name = dest.as_ptr().cast_mut().cast();
            parts.msg.msg_namelen = dest.len();
        } else if want_name {
            parts.msg.msg_name = (&mut parts.name.storage as *mut socket2::SockAddrStorage).cast();
            parts.msg.msg_namelen = parts.name.storage.size_of();
        }
        parts
    }

    /// The descriptors an `SCM_RIGHTS` message in the received control
    /// data carries, now owned by the caller.
    fn take_fds(&mut self) -> Vec<OwnedFd> {
        let mut fds = Vec::new();
        if self.msg.msg_control.is_null() {
            return fds;
        }
        // SAFETY: `msg` describes `control`, whose first `msg_controllen`
        // bytes the kernel filled with well-formed cmsgs; the CMSG macros
        // stay within that length.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&self.msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg);
                    let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                    for i in 0..len / mem::size_of::<RawFd>() {
                        let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                        // The kernel installed `fd` for this receive.
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&self.msg, cmsg);
            }
            // Taken: parsing again finds nothing.
            self.msg.msg_controllen = 0;
        }
        fds
    }

    /// The source address a completed receive stored, if it asked for one
    /// and the kernel gave one (an unnamed sender may give none).
    fn received_name(&self) -> Option<SockAddr> {
        if self.dest.is_some() || self.msg.msg_name.is_null() {
            return None;
        }
        let name = SockName {
            // SAFETY: `SockAddrStorage` is plain old data; a bytewise copy
            // is a valid value.
            storage: unsafe { std::ptr::read(&self.name.storage) },
            len: self.msg.msg_namelen,
        };
        name.get()
    }
}

impl VecParts for Box<MsgParts> {
    fn discard(&mut self) {
        drop(self.take_fds());
    }

    fn source(&self, _out: &OpOutput) -> Option<SockAddr> {
        self.received_name()
    }
}

/// iovecs over the initialised bytes of `bufs` (what a send sends).
fn send_iovecs<B: IoBuf>(bufs: &[B]) -> Vec<libc::iovec> {
    bufs.iter()
        .filter(|b| b.bytes_init() > 0)
        .map(|b| libc::iovec {
            iov_base: b.stable_ptr().cast_mut().cast(),
            iov_len: b.bytes_init(),
        })
        .collect()
}

/// iovecs over the whole capacity of `bufs` (what a receive fills).
fn recv_iovecs<B: IoBufMut>(bufs: &mut [B]) -> Vec<libc::iovec> {
    bufs.iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.stable_mut_ptr().cast(),
            iov_len: b.bytes_total(),
        })
        .collect()
}

/// Control-buffer bytes that hold `count` descriptors.
fn rights_space(count: usize) -> usize {
    // SAFETY: pure arithmetic macro.
    unsafe { libc::CMSG_SPACE((count * mem::size_of::<RawFd>()) as u32) as usize }
}

impl Socket {
    /// Receives into `bufs` in order (see `TcpStream::read_vectored`): one
    /// `recvmsg` over all of them.
    pub(crate) async fn recv_vectored<B: IoBufMut>(
        &self,
        bufs: Vec<B>,
    ) -> BufResult<usize, Vec<B>> {
        let (res, bufs) = self.recv_msg_from(bufs, 0, false).await;
        (res.map(|r| r.n), bufs)
    }

    /// Sends `bufs` in order (see `TcpStream::write_vectored`): one
    /// `sendmsg` over all of them.
    pub(crate) async fn send_vectored<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        self.send_msg_to(bufs, &[], None).await
    }

    /// One datagram (or stream bytes) received into `bufs` in order, and
    /// its source address if `want_name`; the same call on every platform
    /// (`UdpSocket::recv_msg`).
    pub(crate) async fn recv_scatter<B: IoBufMut>(
        &self,
        bufs: Vec<B>,
        want_name: bool,
    ) -> (io::Result<(usize, Option<SockAddr>)>, Vec<B>) {
        let (res, bufs) = self.recv_msg_from(bufs, 0, want_name).await;
        (res.map(|r| (r.n, r.from)), bufs)
    }

    /// `bufs` sent in order as one datagram (or stream write) to `dest`, or
    /// to the connected peer if `None`; the same call on every platform
    /// (`UdpSocket::send_msg`).
    pub(crate) async fn send_gather<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        dest: Option<SockAddr>,
    ) -> BufResult<usize, Vec<B>> {
        self.send_msg_to(bufs, &[], dest).await
    }

    /// One `recvmsg` into `bufs` in order, with room for `max_fds`
    /// received descriptors (see `UnixStream::recv_msg`).
    pub(crate) async fn recv_msg<B: IoBufMut>(
        &self,
        bufs: Vec<B>,
        max_fds: usize,
    ) -> (io::Result<(usize, Vec<OwnedFd>)>, Vec<B>) {
        let (res, bufs) = self.recv_msg_from(bufs, max_fds, false).await;
        (res.map(|r| (r.n, r.fds)), bufs)
    }

    /// One `sendmsg` of `bufs` in order, passing duplicates of `fds`.
    pub(crate) async fn send_msg<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        fds: &[BorrowedFd<'_>],
    ) -> BufResult<usize, Vec<B>> {
        self.send_msg_to(bufs, fds, None).await
    }

    /// One `recvmsg` into `bufs` in order, with room for `max_fds`
    /// received descriptors, storing the source address if `want_name`.
    /// Cancel-safe like `recv` (bytes, or the datagram with its source, go
    /// to the next read; descriptors of a dropped receive are closed).
    pub(crate) async fn recv_msg_from<B: IoBufMut>(
        &self,
        mut bufs: Vec<B>,
        max_fds: usize,
        want_name: bool,
    ) -> (io::Result<Received>, Vec<B>) {
        // What a cancelled receive left goes first.
        if let Some((n, from)) = self.take_stashed_vec(&mut bufs).await {
            let got = Received {
                n,
                fds: Vec::new(),
                from,
            };
            return (Ok(got), bufs);
        }
        if !self.is_datagram() && bufs.iter().all(|b| b.bytes_total() == 0) {
            // No room: nothing to read (as `read` of an empty buffer); a
            // datagram receive, though, must consume one.
            let got = Received {
                n: 0,
                fds: Vec::new(),
                from: None,
            };
            return (Ok(got), bufs);
        }
        let iov = recv_iovecs(&mut bufs);
        let control = vec![
            0u8;
            if max_fds > 0 {
                rights_space(max_fds)
            } else {
                0
            }
        ];
        let mut parts = MsgParts::new(iov, control, None, want_name);
        let desc = op::RecvMsg {
            fd: self.fd(),
            msg: &mut parts.msg,
        };
        let keep = RecvVecKeep {
            bufs,
            parts,
            sock: self.shared(),
        };
        let (out, keep) = Op::submit_with(desc, keep, orphan_recv_vec::<B, Box<MsgParts>>).await;
        let (mut bufs, mut parts) = (keep.bufs, keep.parts);
        let fds = parts.take_fds();
        match out.res {
            Ok(n) => {
                // SAFETY: `recvmsg` wrote `n` bytes across the iovecs in
                // order; the iovecs cover each buffer's whole capacity.
                unsafe { mark_filled(&mut bufs, n) };
                let from = parts.received_name();
                (Ok(Received { n, fds, from }), bufs)
            }
            Err(e) => (Err(e), bufs),
        }
    }

    /// One `sendmsg` of `bufs` in order to `dest` (the connected peer if
    /// `None`), passing duplicates of `fds`.
    pub(crate) async fn send_msg_to<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        fds: &[BorrowedFd<'_>],
        dest: Option<SockAddr>,
    ) -> BufResult<usize, Vec<B>> {
        let iov = send_iovecs(&bufs);
        // A stream sends nothing for no bytes; a datagram socket sends an
        // empty datagram.
        if iov.is_empty() && fds.is_empty() && !self.is_datagram() {
            return (Ok(0), bufs);
        }
        let owned: Vec<OwnedFd> = match fds.iter().map(|fd| fd.try_clone_to_owned()).collect() {
            Ok(v) => v,
            Err(e) => return (Err(e), bufs),
        };
        let mut control = Vec::new();
        if !owned.is_empty() {
            control = vec![0u8; rights_space(owned.len())];
        }
        let mut parts = MsgParts::new(iov, control, dest, false);
        if !owned.is_empty() {
            // SAFETY: the control buffer has room for one cmsg of
            // `owned.len()` descriptors (`rights_space`); the header
            // describes it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&parts.msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len =
                    libc::CMSG_LEN((owned.len() * mem::size_of::<RawFd>()) as u32) as _;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for (i, fd) in owned.iter().enumerate() {
                    std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
                }
            }
        }
        parts.fds = owned;
        let desc = op::SendMsg {
            fd: self.fd(),
            msg: &parts.msg,
        };
        let (out, (bufs, _, _)) = Op::submit(desc, (bufs, parts, self.shared())).await;
        (out.res, bufs)
    }
}
