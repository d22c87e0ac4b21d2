//! STUB (owned by the uring/buffers helper): registered buffer pool.

/// A pool of [`FixedBuf`](crate::buf::FixedBuf)s registered with the driver.
pub struct BufPool {}
