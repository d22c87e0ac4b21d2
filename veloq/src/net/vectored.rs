//! Vectored (scatter/gather) receives on sockets: the part every platform
//! shares. The platform modules (`msg` on Unix, `msg_windows` on Windows)
//! build the kernel's view of the buffers (a `msghdr` with iovecs, an
//! array of `WSABUF`s) and submit the op; this module owns what happens to
//! the bytes around it:
//!
//! - data that cancelled receives stashed goes first, scattered over the
//!   buffers in order ([`Socket::take_stashed_vec`]);
//! - the bytes a completed receive reported are marked initialised buffer
//!   by buffer ([`mark_filled`]);
//! - a receive whose future was dropped hands what it took to the
//!   socket's stash ([`orphan_recv_vec`]): stream bytes in order, or one
//!   whole datagram with its source address, so the next receive of any
//!   kind gets it, as for a plain `recv` (see `io::stash`).
//!
//! # Invariants
//!
//! - A vectored receive points the kernel at a prefix of its buffers, each
//!   buffer from its start, in order, and the kernel fills each to the
//!   room it was given before the next. So `n` bytes received are the
//!   first `n` bytes of that prefix, and each buffer got
//!   `min(remaining, bytes_total)` of them (a buffer given less room than
//!   its `bytes_total` is the prefix's last, so nothing follows it).
//! - The platform memory (`P`) lives in the op's keep, and in the orphan
//!   hook after a cancel, until the completion has been processed.

use std::rc::Rc;

use socket2::SockAddr;

use super::socket::{Socket, SocketInner};
use crate::buf::IoBufMut;
use crate::io::driver::op_registry::CancelHook;
use crate::io::op::OpOutput;
use crate::io::stash::{OrphanGuard, StashKind};

/// The platform memory of one vectored receive, kept alive with its
/// buffers (see the module docs).
pub(crate) trait VecParts: 'static {
    /// Releases what the receive got besides bytes that no caller will
    /// take (descriptors passed with `SCM_RIGHTS`: closed).
    fn discard(&mut self);

    /// The source address of the datagram the completed op (output `out`)
    /// received, if the op asked for it.
    fn source(&self, out: &OpOutput) -> Option<SockAddr>;
}

/// The keep of a vectored receive.
pub(crate) struct RecvVecKeep<B, P> {
    pub(crate) bufs: Vec<B>,
    pub(crate) parts: P,
    pub(crate) sock: Rc<SocketInner>,
}

/// After a receive of `n` bytes into `bufs`: marks what each buffer got
/// initialised.
///
/// # Safety
///
/// The kernel wrote `n` bytes into the buffers' memory as the module's
/// invariants say (in order, each from its start, each filled before the
/// next).
pub(crate) unsafe fn mark_filled<B: IoBufMut>(bufs: &mut [B], mut n: usize) {
    for b in bufs {
        let k = n.min(b.bytes_total());
        // SAFETY: the caller's contract: `b[..k]` was written.
        unsafe { b.set_init(k) };
        n -= k;
    }
}

/// The hook of a vectored receive whose future was dropped; see the
/// module docs.
struct OrphanRecvVec<B, P> {
    bufs: Vec<B>,
    parts: P,
    guard: OrphanGuard<SocketInner>,
}

/// [`Orphan`](crate::io::op::Orphan) of a vectored receive.
pub(crate) fn orphan_recv_vec<B: IoBufMut, P: VecParts>(
    keep: RecvVecKeep<B, P>,
) -> Box<dyn CancelHook> {
    Box::new(OrphanRecvVec {
        bufs: keep.bufs,
        parts: keep.parts,
        guard: OrphanGuard::new(keep.sock),
    })
}

impl<B: IoBufMut, P: VecParts> CancelHook for OrphanRecvVec<B, P> {
    fn completed(mut self: Box<Self>, out: OpOutput) {
        self.parts.discard();
        let Ok(mut n) = out.res else { return };
        let datagram = self.guard.kind() == StashKind::Datagrams;
        // End of stream is not data; an empty datagram is one.
        if n == 0 && !datagram {
            return;
        }
        let mut whole = Vec::new();
        let mut stash = self.guard.stash();
        for b in &mut self.bufs {
            let k = n.min(b.bytes_total());
            // SAFETY: the kernel wrote `k` bytes at the start of this
            // buffer (module invariants) and has let go of it: its
            // completion is being processed.
            let data = unsafe { std::slice::from_raw_parts(b.stable_mut_ptr(), k) };
            if datagram {
                whole.extend_from_slice(data);
            } else {
                stash.push_bytes(data);
            }
            n -= k;
        }
        if datagram {
            stash.push_datagram(whole, self.parts.source(&out));
        }
    }
}

impl Socket {
    /// Waits while a cancelled receive of this socket is still in the
    /// kernel, then moves what cancelled receives left into `bufs` (one
    /// datagram, or as many stream bytes as fit); returns the bytes placed
    /// and, for a datagram, its source. `None`: nothing was stashed.
    pub(crate) async fn take_stashed_vec<B: IoBufMut>(
        &self,
        bufs: &mut [B],
    ) -> Option<(usize, Option<SockAddr>)> {
        let datagram = self.is_datagram();
        self.take_stashed(|stash| {
            if datagram {
                stash.take_datagram_vec(bufs)
            } else {
                stash.take_bytes_vec(bufs).map(|n| (n, None))
            }
        })
        .await
    }
}
