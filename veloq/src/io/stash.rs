//! Cancel-safe reads: what a cancelled read-like op had already taken from
//! a socket or pipe, kept for the next read on the same handle.
//!
//! The handle's shared state (a socket's `SocketInner`, a named pipe's
//! `PipeInner`) holds one [`Stash`] and says, as a [`StashOwner`], what
//! kind of data its reads take: a byte stream, whole datagrams (a short
//! buffer cuts one), or messages (a short buffer leaves the rest for the
//! next read).
//!
//! A receive whose future is dropped may still complete with data: the
//! kernel had filled the buffer before the cancel reached it (io_uring,
//! IOCP), or the completion was processed but never polled (every driver).
//! Those bytes are gone from the socket, so dropping them would lose them.
//! Instead the op's hook ([`OrphanRecv`], [`OrphanAccept`], and the
//! vectored receive's in `net::vectored`) puts what it took here, and the
//! socket's next `read`/`recv`/`recv_from`/`recv_msg`/`accept` takes it
//! before asking the kernel again. A datagram is kept with its source
//! address, of any family (a [`DatagramSource`] says where a hook finds
//! it), so the next `recv_from` reports the right sender.
//!
//! # Order
//!
//! While a cancelled ("orphaned") read-like op is still in the kernel, a
//! new read of the same kind waits at the gate ([`Stash::poll_gate`])
//! until the orphan has completed and its data is stashed, so data is
//! handed out in the order the socket received it. With no orphan and an
//! empty stash, the gate costs one `RefCell` check.
//!
//! # Invariants
//!
//! - `orphans` counts live orphan hooks of this socket: each increments it
//!   when made and decrements it when dropped (after stashing, or without,
//!   when the driver drained or failed the op), then wakes the gate.
//! - Stashed accepted sockets are owned here: dropping the stash closes
//!   them.

use std::cell::RefMut;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use socket2::SockAddr;

use crate::buf::IoBufMut;
use crate::io::driver::op_registry::CancelHook;
use crate::io::op::OpOutput;
use crate::sys::{self, RawFd};

/// How a handle's reads divide what they take (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StashKind {
    /// A byte stream (stream sockets, byte-mode pipes).
    Bytes,
    /// Datagrams: one per read, cut to the buffer.
    Datagrams,
    /// Messages: one per read, the rest left for the next read
    /// (message-mode pipes).
    #[cfg_attr(not(windows), allow(dead_code))]
    Messages,
}

/// A handle's shared state that holds a [`Stash`].
pub(crate) trait StashOwner: 'static {
    /// The handle's stash.
    fn stash(&self) -> RefMut<'_, Stash>;

    /// How its reads divide what they take.
    fn stash_kind(&self) -> StashKind;
}

/// What one handle's cancelled reads left behind; see the module docs.
#[derive(Default)]
pub(crate) struct Stash {
    /// Orphaned read-like ops still in the kernel.
    orphans: usize,
    /// Stream bytes, oldest first.
    bytes: VecDeque<u8>,
    /// Whole datagrams (datagram sockets) with their source address, of
    /// any family (IP or Unix-domain), oldest first.
    datagrams: VecDeque<(Vec<u8>, Option<SockAddr>)>,
    /// Messages, oldest first; the front one may be partly taken.
    messages: VecDeque<Vec<u8>>,
    /// Accepted connections (listeners), oldest first; owned.
    accepted: VecDeque<(RawFd, Option<SocketAddr>)>,
    /// Reads waiting at the gate.
    waiters: Vec<Waker>,
}

impl Stash {
    /// Whether a new read must go through the gate (or take stashed data).
    #[inline]
    pub(crate) fn busy(&self) -> bool {
        self.orphans > 0 || !self.bytes.is_empty() || self.has_data()
    }

    fn has_data(&self) -> bool {
        !self.bytes.is_empty()
            || !self.datagrams.is_empty()
            || !self.messages.is_empty()
            || !self.accepted.is_empty()
    }

    /// Ready once no orphan is in the kernel or data is stashed.
    pub(crate) fn poll_gate(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.orphans == 0 || self.has_data() {
            return Poll::Ready(());
        }
        if !self.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            self.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Moves stashed stream bytes into `buf[off..bytes_total]`; returns
    /// how many, or `None` when nothing is stashed.
    pub(crate) fn take_bytes<B: IoBufMut>(&mut self, buf: &mut B, off: usize) -> Option<usize> {
        if self.bytes.is_empty() {
            return None;
        }
        let room = buf.bytes_total() - off;
        let n = room.min(self.bytes.len());
        let dst = buf.stable_mut_ptr().wrapping_add(off);
        for (i, b) in self.bytes.drain(..n).enumerate() {
            // SAFETY: `off + i < off + n <= bytes_total`, inside the
            // buffer's allocation, which `buf` borrows mutably.
            unsafe { dst.add(i).write(b) };
        }
        // SAFETY: `buf[..off]` was initialised (the caller's contract) and
        // `buf[off..off + n]` was just written.
        unsafe { buf.set_init(off + n) };
        Some(n)
    }

    /// Moves the oldest stashed datagram into `buf` (cut to its size, as
    /// the kernel does); returns its length and source.
    pub(crate) fn take_datagram<B: IoBufMut>(
        &mut self,
        buf: &mut B,
    ) -> Option<(usize, Option<SockAddr>)> {
        self.take_datagram_vec(std::slice::from_mut(buf))
    }

    /// Moves the oldest stashed datagram into `bufs`, filling each to its
    /// `bytes_total` before the next (cut to their room, as the kernel
    /// does); returns the bytes placed and the source.
    pub(crate) fn take_datagram_vec<B: IoBufMut>(
        &mut self,
        bufs: &mut [B],
    ) -> Option<(usize, Option<SockAddr>)> {
        let (data, addr) = self.datagrams.pop_front()?;
        Some((scatter(&data, bufs), addr))
    }

    /// Moves stashed stream bytes into `bufs`, filling each (from its
    /// start) to its `bytes_total` before the next; returns how many, or
    /// `None` when nothing is stashed.
    pub(crate) fn take_bytes_vec<B: IoBufMut>(&mut self, bufs: &mut [B]) -> Option<usize> {
        if self.bytes.is_empty() {
            return None;
        }
        let room: usize = bufs.iter().map(|b| b.bytes_total()).sum();
        let n = room.min(self.bytes.len());
        let data: Vec<u8> = self.bytes.drain(..n).collect();
        Some(scatter(&data, bufs))
    }

    /// Appends a whole datagram a cancelled receive took.
    pub(crate) fn push_datagram(&mut self, data: Vec<u8>, from: Option<SockAddr>) {
        self.datagrams.push_back((data, from));
    }

    /// Moves (as much as fits of) the oldest stashed message into
    /// `buf[off..bytes_total]`; the rest stays for the next read. `None`
    /// when nothing is stashed. `buf[..off]` must be initialised.
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) fn take_message<B: IoBufMut>(&mut self, buf: &mut B, off: usize) -> Option<usize> {
        let message = self.messages.front_mut()?;
        let n = message.len().min(buf.bytes_total() - off);
        // SAFETY: `off + n <= bytes_total`, inside the buffer, which `buf`
        // borrows mutably; the source is a separate allocation. Then
        // `buf[..off]` was initialised (the caller's contract) and
        // `buf[off..off + n]` just written.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), buf.stable_mut_ptr().add(off), n);
            buf.set_init(off + n);
        }
        message.drain(..n);
        if message.is_empty() {
            self.messages.pop_front();
        }
        Some(n)
    }

    /// The oldest stashed connection, now owned by the caller.
    pub(crate) fn take_accepted(&mut self) -> Option<(RawFd, Option<SocketAddr>)> {
        self.accepted.pop_front()
    }

    /// Appends stream bytes a cancelled read took.
    pub(crate) fn push_bytes(&mut self, data: &[u8]) {
        self.bytes.extend(data);
    }

    fn wake_all(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }
}

impl Drop for Stash {
    fn drop(&mut self) {
        for (fd, _) in self.accepted.drain(..) {
            // SAFETY: a stashed connection is owned by the stash alone
            // (module invariants); this closes it once.
            drop(unsafe { sys::socket_from_raw(fd) });
        }
    }
}

/// Copies `data` into `bufs` in order, each from its start up to its
/// `bytes_total`, and marks what each got initialised; returns the bytes
/// placed (fewer than `data.len()` when the buffers are too small).
fn scatter<B: IoBufMut>(mut data: &[u8], bufs: &mut [B]) -> usize {
    let mut placed = 0;
    for b in bufs {
        let k = data.len().min(b.bytes_total());
        // SAFETY: `k <= bytes_total`, inside the buffer's allocation, which
        // `b` borrows mutably; `data` is a separate allocation. Then
        // `b[..k]` has just been written.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), b.stable_mut_ptr(), k);
            b.set_init(k);
        }
        data = &data[k..];
        placed += k;
    }
    placed
}

/// Where a cancelled datagram receive finds the source address of what it
/// took, to stash with the datagram.
pub(crate) trait DatagramSource: 'static {
    /// The source of the datagram the op with output `out` received. Called
    /// once the op has completed (the driver no longer writes its memory).
    fn source(&self, out: &OpOutput) -> Option<SockAddr>;
}

/// The source the driver reported in the op's output (IP sockets).
pub(crate) struct FromOutput;

impl DatagramSource for FromOutput {
    fn source(&self, out: &OpOutput) -> Option<SockAddr> {
        out.addr.map(SockAddr::from)
    }
}

/// Counts one orphan of its handle for as long as it lives.
pub(crate) struct OrphanGuard<S: StashOwner>(Rc<S>);

impl<S: StashOwner> OrphanGuard<S> {
    pub(crate) fn new(owner: Rc<S>) -> OrphanGuard<S> {
        owner.stash().orphans += 1;
        OrphanGuard(owner)
    }

    pub(crate) fn stash(&self) -> RefMut<'_, Stash> {
        self.0.stash()
    }

    /// How the handle's reads divide what they take.
    pub(crate) fn kind(&self) -> StashKind {
        self.0.stash_kind()
    }
}

impl<S: StashOwner> Drop for OrphanGuard<S> {
    fn drop(&mut self) {
        let mut stash = self.0.stash();
        stash.orphans -= 1;
        stash.wake_all();
    }
}

/// The keep-alive of a receive (`Recv`, `RecvFrom`, a pipe's read): the
/// buffer, where the kernel writes into it, and the handle.
pub(crate) struct RecvKeep<B, S> {
    pub(crate) buf: B,
    pub(crate) off: usize,
    pub(crate) sock: Rc<S>,
}

/// The hook of a receive whose future was dropped; see the module docs.
/// `N` says where a datagram's source address is.
pub(crate) struct OrphanRecv<B, S: StashOwner, N = FromOutput> {
    buf: B,
    off: usize,
    guard: OrphanGuard<S>,
    source: N,
}

impl<B: IoBufMut, S: StashOwner> OrphanRecv<B, S> {
    /// [`Orphan`](crate::io::op::Orphan) of a receive.
    pub(crate) fn orphan(keep: RecvKeep<B, S>) -> Box<dyn CancelHook> {
        OrphanRecv::orphan_with(keep, FromOutput)
    }
}

impl<B: IoBufMut, S: StashOwner, N: DatagramSource> OrphanRecv<B, S, N> {
    /// The hook of a receive whose datagram source is found through
    /// `source` (which must stay valid until the completion: it is kept
    /// alive by the hook).
    pub(crate) fn orphan_with(keep: RecvKeep<B, S>, source: N) -> Box<dyn CancelHook> {
        Box::new(OrphanRecv {
            buf: keep.buf,
            off: keep.off,
            guard: OrphanGuard::new(keep.sock),
            source,
        })
    }
}

impl<B: IoBufMut, S: StashOwner, N: DatagramSource> CancelHook for OrphanRecv<B, S, N> {
    fn completed(mut self: Box<Self>, out: OpOutput) {
        let Ok(n) = out.res else { return };
        let kind = self.guard.0.stash_kind();
        // End of stream is not data: the next read sees it again. (An
        // empty datagram is one.)
        if n == 0 && kind != StashKind::Datagrams {
            return;
        }
        let room = self.buf.bytes_total().saturating_sub(self.off);
        let n = n.min(room);
        // SAFETY: the kernel wrote `n` bytes at `buf[off..]` (a receive
        // never reports more than it was given room for) and has let go of
        // the buffer: its completion is being processed.
        let data =
            unsafe { std::slice::from_raw_parts(self.buf.stable_mut_ptr().add(self.off), n) };
        let mut stash = self.guard.stash();
        match kind {
            StashKind::Bytes => stash.bytes.extend(data),
            StashKind::Datagrams => {
                let from = self.source.source(&out);
                stash.datagrams.push_back((data.to_vec(), from));
            }
            StashKind::Messages => stash.messages.push_back(data.to_vec()),
        }
    }
}

/// The hook of an accept whose future was dropped: a connection it took
/// goes to the listener's next accept.
pub(crate) struct OrphanAccept<S: StashOwner> {
    guard: OrphanGuard<S>,
}

impl<S: StashOwner> OrphanAccept<S> {
    /// [`Orphan`](crate::io::op::Orphan) of an accept.
    pub(crate) fn orphan(listener: Rc<S>) -> Box<dyn CancelHook> {
        Box::new(OrphanAccept {
            guard: OrphanGuard::new(listener),
        })
    }
}

impl<S: StashOwner> CancelHook for OrphanAccept<S> {
    fn completed(self: Box<Self>, out: OpOutput) {
        if let Ok(fd) = out.res {
            self.guard
                .stash()
                .accepted
                .push_back((fd as RawFd, out.addr));
        }
    }
}
