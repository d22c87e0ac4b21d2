//! STUB (owned by the uring/buffers helper): a buffer from a `BufPool`.

/// A buffer lent by a [`BufPool`](crate::buf::BufPool), in memory
/// registered with the driver.
pub struct FixedBuf {}
