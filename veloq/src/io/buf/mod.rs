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

mod fixed;
mod io_buf;
pub(crate) mod pool;
mod slice;

pub use fixed::FixedBuf;
pub use io_buf::{IoBuf, IoBufMut};
pub use pool::BufPool;
pub use slice::Slice;

/// The result of an operation on an owned buffer: the outcome and the
/// buffer, handed back whatever happened.
pub type BufResult<T, B> = (std::io::Result<T>, B);
