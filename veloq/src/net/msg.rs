//! Scatter/gather and ancillary data on Unix sockets: one `sendmsg` /
//! `recvmsg` op over several owned buffers, optionally with descriptors
//! passed as `SCM_RIGHTS`.
//!
//! # Invariants
//!
//! - A [`MsgParts`] is boxed before its header is pointed at its iovecs and
//!   control buffer, and it lives in the op's `keep` until the completion:
//!   the kernel reads and writes it through those pointers.
//! - The iovecs point into the owned buffers of the same `keep`.
//! - Descriptors to send are duplicated into the `keep` (`OwnedFd`), so the
//!   numbers the kernel reads stay open and unreused until the op is done,
//!   even if the caller closes its own copies after cancelling.
//! - Descriptors received are owned by whoever gets the output: the caller,
//!   or, for a cancelled receive, its hook, which closes them.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use super::socket::{Socket, SocketInner};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::driver::op_registry::CancelHook;
use crate::io::op::{self, Op, OpOutput};
use crate::io::stash::OrphanGuard;

/// The header of one `sendmsg`/`recvmsg` and what it points to; see the
/// module docs.
pub(crate) struct MsgParts {
    iov: Vec<libc::iovec>,
    control: Vec<u8>,
    msg: libc::msghdr,
    /// Duplicates of the descriptors being sent.
    _fds: Vec<OwnedFd>,
}

impl MsgParts {
    /// A header over `iov` with room for `control_len` bytes of control
    /// data (filled with `control` when sending).
    fn new(iov: Vec<libc::iovec>, control: Vec<u8>, fds: Vec<OwnedFd>) -> Box<MsgParts> {
        let mut parts = Box::new(MsgParts {
            iov,
            control,
            // SAFETY: all-zero is a valid `msghdr` (null pointers, zero
            // lengths).
            msg: unsafe { mem::zeroed() },
            _fds: fds,
        });
        parts.msg.msg_iov = parts.iov.as_mut_ptr();
        parts.msg.msg_iovlen = parts.iov.len() as _;
        if !parts.control.is_empty() {
            parts.msg.msg_control = parts.control.as_mut_ptr().cast();
            parts.msg.msg_controllen = parts.control.len() as _;
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

/// After a receive of `n` bytes into `bufs` in order: marks what each
/// buffer got initialised.
///
/// # Safety
///
/// The kernel wrote `n` bytes into the buffers' memory in order, filling
/// each to `bytes_total` before the next.
unsafe fn mark_filled<B: IoBufMut>(bufs: &mut [B], mut n: usize) {
    for b in bufs {
        let k = n.min(b.bytes_total());
        // SAFETY: the caller's contract: `b[..k]` was written.
        unsafe { b.set_init(k) };
        n -= k;
    }
}

/// Control-buffer bytes that hold `count` descriptors.
fn rights_space(count: usize) -> usize {
    // SAFETY: pure arithmetic macro.
    unsafe { libc::CMSG_SPACE((count * mem::size_of::<RawFd>()) as u32) as usize }
}

/// The keep of a vectored receive.
struct RecvVecKeep<B> {
    bufs: Vec<B>,
    parts: Box<MsgParts>,
    sock: Rc<SocketInner>,
}

/// The hook of a vectored receive whose future was dropped: its bytes go to
/// the socket's next read (see `stash`), its descriptors are closed.
struct OrphanRecvVec<B> {
    bufs: Vec<B>,
    parts: Box<MsgParts>,
    guard: OrphanGuard<SocketInner>,
}

fn orphan_recv_vec<B: IoBufMut>(keep: RecvVecKeep<B>) -> Box<dyn CancelHook> {
    Box::new(OrphanRecvVec {
        bufs: keep.bufs,
        parts: keep.parts,
        guard: OrphanGuard::new(keep.sock),
    })
}

impl<B: IoBufMut> CancelHook for OrphanRecvVec<B> {
    fn completed(mut self: Box<Self>, out: OpOutput) {
        // Descriptors nobody will take are closed here.
        drop(self.parts.take_fds());
        let Ok(mut n) = out.res else { return };
        let mut stash = self.guard.stash();
        for b in &mut self.bufs {
            let k = n.min(b.bytes_total());
            // SAFETY: the kernel wrote `k` bytes at the start of this
            // buffer (buffers fill in order) and has let go of it.
            let data = unsafe { std::slice::from_raw_parts(b.stable_mut_ptr(), k) };
            stash.push_bytes(data);
            n -= k;
        }
    }
}

impl Socket {
    /// One `recvmsg` into `bufs` in order, with room for `max_fds`
    /// received descriptors. Cancel-safe like `recv` (bytes go to the next
    /// read; descriptors of a dropped receive are closed).
    pub(crate) async fn recv_msg<B: IoBufMut>(
        &self,
        mut bufs: Vec<B>,
        max_fds: usize,
    ) -> (io::Result<(usize, Vec<OwnedFd>)>, Vec<B>) {
        // Bytes a cancelled read left go first, into the first buffer with
        // room (the plain receive path takes them).
        if self.stash_busy() || bufs.iter().all(|b| b.bytes_total() == 0) {
            let (res, bufs) = self.recv_vectored_one(bufs).await;
            return (res.map(|n| (n, Vec::new())), bufs);
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
        let mut parts = MsgParts::new(iov, control, Vec::new());
        let desc = op::RecvMsg {
            fd: self.fd(),
            msg: &mut parts.msg,
        };
        let keep = RecvVecKeep {
            bufs,
            parts,
            sock: self.shared(),
        };
        let (out, keep) = Op::submit_with(desc, keep, orphan_recv_vec::<B>).await;
        let (mut bufs, mut parts) = (keep.bufs, keep.parts);
        let fds = parts.take_fds();
        match out.res {
            Ok(n) => {
                // SAFETY: `recvmsg` wrote `n` bytes across the iovecs in
                // order; the iovecs cover each buffer's whole capacity.
                unsafe { mark_filled(&mut bufs, n) };
                (Ok((n, fds)), bufs)
            }
            Err(e) => (Err(e), bufs),
        }
    }

    /// One `sendmsg` of `bufs` in order, passing duplicates of `fds`.
    pub(crate) async fn send_msg<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        fds: &[BorrowedFd<'_>],
    ) -> BufResult<usize, Vec<B>> {
        let iov = send_iovecs(&bufs);
        if iov.is_empty() && fds.is_empty() {
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
        let mut parts = MsgParts::new(iov, control, Vec::new());
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
        parts._fds = owned;
        let desc = op::SendMsg {
            fd: self.fd(),
            msg: &parts.msg,
        };
        let (out, (bufs, _, _)) = Op::submit(desc, (bufs, parts, self.shared())).await;
        (out.res, bufs)
    }
}
