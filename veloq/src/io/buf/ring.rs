//! [`BufRing`]: a pool of equal-sized receive buffers that receive streams
//! ([`RecvStream`](crate::net::RecvStream)) fill, and [`PooledBuf`], one
//! filled buffer lent to the caller until it is dropped.
//!
//! # Two ways to serve buffers
//!
//! - **Kernel ring** (io_uring, Linux 6.0+): the buffers are registered
//!   as a provided-buffer ring (`IORING_REGISTER_PBUF_RING`) and every
//!   free buffer sits in it. A receive stream keeps one multishot receive
//!   armed; the kernel picks a buffer from the ring for each receive, and
//!   the buffer comes back into the ring when its [`PooledBuf`] is
//!   dropped (`ring_kernel`).
//! - **Portable** (epoll, IOCP, io_uring kernels without pbuf rings): the
//!   free buffers are a user-space list; each `next()` of a receive
//!   stream takes one (waiting while none is free) and runs one ordinary,
//!   cancel-safe receive into it.
//!
//! # Invariants
//!
//! - The buffer memory (`RingShared`) is shared through an `Rc` by the
//!   [`BufRing`] handle, every lent [`PooledBuf`], and every op that may
//!   write into it (a multishot receive's sink, a portable receive's
//!   keep-alive): it outlives every kernel write into it.
//! - Buffer `id` is either free (in the user list or in the kernel ring)
//!   or owned by exactly one holder: a `PooledBuf`, or the op the kernel
//!   writes it with. Only its owner touches its bytes.
//! - A kernel ring belongs to the driver it was registered with; a stream
//!   on another runtime refuses it (its ids would name another group).

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::ops::Deref;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::pool::Region;
use super::{IoBuf, IoBufMut};

#[cfg(target_os = "linux")]
use super::ring_kernel::KernelRing;
#[cfg(not(target_os = "linux"))]
use super::ring_kernel_none::KernelRing;

/// Most buffers one ring holds (the kernel's limit for a pbuf ring).
pub const MAX_BUFFERS: usize = 32768;

/// The memory and bookkeeping shared by a ring and its buffers.
pub(crate) struct RingShared {
    region: Region,
    size: usize,
    count: u16,
    /// Free buffers, portable mode (the kernel ring holds them otherwise).
    free: RefCell<Vec<u16>>,
    /// Tasks waiting for a buffer to come back.
    waiters: RefCell<Vec<Waker>>,
    /// The kernel's provided-buffer ring, where registered. Declared after
    /// `region`'s users and dropped before nothing the kernel reads: its
    /// own entries go to the driver's release list on drop.
    kernel: Option<KernelRing>,
}

impl RingShared {
    /// Start of buffer `id` (`id < count`).
    pub(crate) fn buf_ptr(&self, id: u16) -> *mut u8 {
        debug_assert!(id < self.count);
        // SAFETY: `id < count`, so the offset lies within the region.
        unsafe { self.region.ptr().add(id as usize * self.size) }
    }

    /// Bytes per buffer.
    // The kernel path's (Linux).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Buffers in the ring.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    /// The kernel ring, where the buffers are served through one.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn kernel(&self) -> Option<&KernelRing> {
        self.kernel.as_ref()
    }

    /// Takes buffer `id` back: into the kernel ring or the free list; then
    /// wakes the tasks waiting for one.
    fn give_back(&self, id: u16) {
        match &self.kernel {
            Some(k) => k.give_back(id, self.buf_ptr(id), self.size),
            None => self.free.borrow_mut().push(id),
        }
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// Registers `waker` to be woken when a buffer comes back.
    pub(crate) fn wait_for_buffer(&self, waker: &Waker) {
        let mut waiters = self.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    /// A free buffer of the portable pool, waiting while none is free.
    pub(crate) async fn acquire(self: &Rc<Self>) -> PooledBuf {
        poll_fn(|cx| match self.free.borrow_mut().pop() {
            Some(id) => Poll::Ready(PooledBuf::lent(self.clone(), id, 0)),
            None => {
                self.wait_for_buffer(cx.waker());
                Poll::Pending
            }
        })
        .await
    }
}

/// A pool of `count` receive buffers of `size` bytes each, for
/// [`TcpStream::recv_stream`](crate::net::TcpStream::recv_stream) (and
/// Unix streams and read halves): the stream yields each received chunk
/// as a [`PooledBuf`] that goes back to the ring when dropped.
///
/// On io_uring (Linux 6.0+) the buffers are registered with the kernel as
/// a provided-buffer ring: a stream keeps one multishot receive armed and
/// the kernel fills whichever buffer is free, with no op per receive.
/// Elsewhere the same API runs one ordinary receive per `next()`
/// ([`is_kernel_ring`](Self::is_kernel_ring) tells which). One ring can
/// serve many streams of its runtime; while every buffer is held by the
/// caller, streams wait (no data is lost: it stays in the socket).
///
/// `BufRing` and its buffers are `!Send`: they belong to the runtime (and
/// thread) that created them.
///
/// ```no_run
/// use veloq::buf::BufRing;
/// use veloq::net::TcpStream;
///
/// veloq::block_on(async {
///     let ring = BufRing::new(64, 4096)?;
///     let stream = TcpStream::connect("127.0.0.1:8080").await?;
///     let mut chunks = stream.recv_stream(&ring);
///     while let Some(chunk) = chunks.next().await {
///         let chunk = chunk?;
///         println!("{} bytes", chunk.len());
///     } // each chunk goes back to the ring when dropped
///     Ok::<(), std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct BufRing {
    shared: Rc<RingShared>,
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes; registers them with the
    /// current runtime's driver as a provided-buffer ring where it has
    /// one (see the type docs).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a `count` of 0 or above [`MAX_BUFFERS`], a `size`
    /// of 0 or above `u32::MAX`, or a total too large to allocate; the
    /// kernel's error if it refuses a registration it should support.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn new(count: usize, size: usize) -> io::Result<BufRing> {
        let invalid = |msg| io::Error::new(io::ErrorKind::InvalidInput, msg);
        if count == 0 || count > MAX_BUFFERS {
            return Err(invalid("BufRing: count must be 1 to 32768"));
        }
        if size == 0 || size > u32::MAX as usize {
            return Err(invalid("BufRing: size must be 1 to u32::MAX"));
        }
        let len = count
            .checked_mul(size)
            .ok_or_else(|| invalid("BufRing: too large"))?;
        let region = Region::new(len)?;
        let count = count as u16;
        // SAFETY: the region holds `count` buffers of `size` bytes and
        // outlives the kernel ring (`RingShared` drops `kernel`, which
        // hands its group to the driver for unregistering, and no op can
        // use the group by then: every op holds this `RingShared`).
        let kernel = unsafe { KernelRing::new(region.ptr(), size, count) }?;
        let free = match kernel {
            Some(_) => Vec::new(),
            None => (0..count).rev().collect(),
        };
        Ok(BufRing {
            shared: Rc::new(RingShared {
                region,
                size,
                count,
                free: RefCell::new(free),
                waiters: RefCell::new(Vec::new()),
                kernel,
            }),
        })
    }

    /// Whether the buffers are served through a kernel provided-buffer
    /// ring (io_uring multishot receive); `false` on the portable path.
    pub fn is_kernel_ring(&self) -> bool {
        self.shared.kernel.is_some()
    }

    /// Buffers free for the next receive (not held by a [`PooledBuf`] or
    /// a stream's queue).
    pub fn available(&self) -> usize {
        match &self.shared.kernel {
            Some(k) => k.available(),
            None => self.shared.free.borrow().len(),
        }
    }

    /// Buffers in the ring.
    pub fn count(&self) -> usize {
        self.shared.count as usize
    }

    /// Bytes per buffer.
    pub fn buf_size(&self) -> usize {
        self.shared.size
    }

    pub(crate) fn shared(&self) -> &Rc<RingShared> {
        &self.shared
    }
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("count", &self.count())
            .field("buf_size", &self.buf_size())
            .field("available", &self.available())
            .field("kernel_ring", &self.is_kernel_ring())
            .finish()
    }
}

/// Where a [`PooledBuf`]'s bytes live.
enum Backing {
    /// Buffer `id` of a ring; given back on drop.
    Ring(Rc<RingShared>, u16),
    /// Bytes a cancelled read had taken, handed out before the ring's
    /// next chunk (kernel-ring streams only).
    Heap(Vec<u8>),
}

/// One received chunk from a [`RecvStream`](crate::net::RecvStream): a
/// buffer of a [`BufRing`], lent until dropped (then it goes back to the
/// ring for the next receive). Dereferences to the received bytes.
///
/// It is an [`IoBuf`] (so it can be written out as it is, e.g. echoed)
/// and an [`IoBufMut`].
pub struct PooledBuf {
    backing: Backing,
    len: usize,
}

impl PooledBuf {
    /// Buffer `id` of `ring`, holding `len` received bytes.
    pub(crate) fn lent(ring: Rc<RingShared>, id: u16, len: usize) -> PooledBuf {
        debug_assert!(id < ring.count && len <= ring.size);
        PooledBuf {
            backing: Backing::Ring(ring, id),
            len,
        }
    }

    /// Bytes that came from elsewhere than the ring (a cancelled read).
    pub(crate) fn heap(data: Vec<u8>) -> PooledBuf {
        PooledBuf {
            len: data.len(),
            backing: Backing::Heap(data),
        }
    }

    /// The received bytes.
    pub fn as_slice(&self) -> &[u8] {
        self
    }

    /// Bytes the buffer can hold (the ring's buffer size).
    pub fn capacity(&self) -> usize {
        match &self.backing {
            Backing::Ring(ring, _) => ring.size,
            Backing::Heap(v) => v.capacity(),
        }
    }

    fn base(&self) -> *mut u8 {
        match &self.backing {
            Backing::Ring(ring, id) => ring.buf_ptr(*id),
            Backing::Heap(v) => v.as_ptr().cast_mut(),
        }
    }
}

impl Deref for PooledBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: this buffer owns its bytes (module invariants), of which
        // the first `len` are initialised (received); nothing writes them
        // while it is lent.
        unsafe { std::slice::from_raw_parts(self.base(), self.len) }
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Backing::Ring(ring, id) = &self.backing {
            ring.give_back(*id);
        }
    }
}

// SAFETY: the memory is a ring buffer (or a `Vec`) this value owns; it does
// not move while the value lives (the ring's region is one allocation that
// outlives every buffer), and `len <= capacity` bytes are initialised.
unsafe impl IoBuf for PooledBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.base()
    }

    fn bytes_init(&self) -> usize {
        self.len
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for `IoBuf`; `set_init` is only called with a position whose
// bytes are initialised (the trait's contract).
unsafe impl IoBufMut for PooledBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.base()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        if let Backing::Heap(v) = &mut self.backing {
            // SAFETY: the caller initialised `v[..pos]`, within capacity.
            unsafe { v.set_len(pos.max(v.len())) };
        }
        self.len = self.len.max(pos);
    }
}
