//! Owned I/O buffers.
//!
//! A completion-based kernel writes into (or reads from) a buffer *after*
//! the call that started the operation has returned, so an operation takes
//! its buffer by value and gives it back with the result:
//! [`BufResult<T, B>`] is `(io::Result<T>, B)`.
//!
//! [`IoBuf`] is memory the kernel may read, [`IoBufMut`] memory it may write.
//! Both are implemented for `Vec<u8>`, `Box<[u8]>` (`IoBuf` also for
//! `&'static [u8]` and `&'static str`) and [`FixedBuf`], a buffer from a
//! [`BufPool`] whose memory is registered with the driver so reads and
//! writes skip the per-op page pinning (io_uring fixed buffers).
//!
//! [`BufRing`] is a pool of receive buffers for receive streams
//! ([`TcpStream::recv_stream`](crate::net::TcpStream::recv_stream)): each
//! received chunk comes as a [`PooledBuf`] that returns to the ring when
//! dropped. On io_uring the ring is a kernel provided-buffer ring served by
//! one multishot receive per stream; elsewhere a user-space pool served by
//! ordinary receives, behind the same API.

mod fixed;
mod io_buf;
pub(crate) mod pool;
mod ring;
#[cfg(target_os = "linux")]
mod ring_kernel;
#[cfg(not(target_os = "linux"))]
mod ring_kernel_none;
mod slice;

pub use fixed::FixedBuf;
pub use io_buf::{IoBuf, IoBufMut};
pub use pool::BufPool;
pub(crate) use ring::RingShared;
pub use ring::{BufRing, PooledBuf, MAX_BUFFERS};
pub use slice::Slice;

/// The result of an operation on an owned buffer: the outcome and the
/// buffer, handed back whatever happened.
pub type BufResult<T, B> = (std::io::Result<T>, B);
