//! [`FixedBuf`]: one buffer lent by a [`BufPool`](crate::buf::BufPool).
//!
//! # Invariants
//!
//! - The buffer is bytes `n * size .. (n + 1) * size` of its pool's region;
//!   the `Rc` it holds keeps that region alive, so the pointer it hands the
//!   kernel stays valid however the `FixedBuf` is moved.
//! - The whole region was zeroed at allocation and is only ever written
//!   with bytes (by us or the kernel), so every byte of the buffer is
//!   initialised; `len` only says how many hold data.
//! - `len <= size` always.
//! - Dropping the `FixedBuf` returns buffer `n` to the pool; no two live
//!   `FixedBuf`s share an `n`.

use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use super::pool::PoolInner;
use super::{IoBuf, IoBufMut};

/// A buffer lent by a [`BufPool`](crate::buf::BufPool), in memory
/// registered with the driver.
///
/// It dereferences to its initialised bytes (`len()` of them; a new one is
/// empty) and has a fixed `capacity()`. A read fills it from the start and
/// sets its length; a write sends its contents. Dropping it gives it back
/// to the pool.
///
/// `FixedBuf` is `!Send`: it belongs to the runtime (and thread) whose
/// pool lent it.
///
/// ```no_run
/// use veloq::buf::BufPool;
/// use veloq::fs::File;
///
/// veloq::block_on(async {
///     let pool = BufPool::new(4, 4096).unwrap();
///     let file = File::create("/tmp/veloq-fixed-example").await.unwrap();
///     let mut buf = pool.get().unwrap();
///     buf.extend_from_slice(b"registered bytes");
///     let (res, buf) = file.write_at(buf, 0).await;
///     res.unwrap();
///     assert_eq!(buf.len(), 16); // handed back, still holding its data
/// });
/// ```
pub struct FixedBuf {
    pool: Rc<PoolInner>,
    n: u32,
    len: usize,
}

impl FixedBuf {
    /// Buffer `n` of `pool`, empty.
    pub(crate) fn new(pool: Rc<PoolInner>, n: u32) -> FixedBuf {
        FixedBuf { pool, n, len: 0 }
    }

    /// Bytes holding data.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes it can hold (the pool's buffer size).
    pub fn capacity(&self) -> usize {
        self.pool.size()
    }

    /// The driver's registered-buffer index, or `None` where the pool is
    /// not registered (the buffer then works as plain memory).
    pub fn fixed_index(&self) -> Option<u16> {
        self.pool.fixed_index(self.n)
    }

    /// Empties it (capacity unchanged).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Shortens it to `len` bytes; no effect if it is not longer.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The data.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len <= size` bytes from the start of this buffer, all
        // initialised (module invariants); `&self` rules out writers.
        unsafe { std::slice::from_raw_parts(self.pool.buf_ptr(self.n), self.len) }
    }

    /// The data, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only access
        // to buffer `n`.
        unsafe { std::slice::from_raw_parts_mut(self.pool.buf_ptr(self.n), self.len) }
    }

    /// Appends `data`.
    ///
    /// # Panics
    ///
    /// If the result would exceed `capacity()`.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let end = self.len.checked_add(data.len()).expect("length overflow");
        assert!(
            end <= self.capacity(),
            "FixedBuf::extend_from_slice: {end} bytes exceed the capacity of {}",
            self.capacity()
        );
        // SAFETY: `len..end` lies within this buffer (`end <= size`), which
        // `&mut self` lets only us touch; `data` is a separate borrow, so
        // the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.pool.buf_ptr(self.n).add(self.len),
                data.len(),
            );
        }
        self.len = end;
    }

    /// Replaces the contents with `data`.
    ///
    /// # Panics
    ///
    /// If `data` is longer than `capacity()`.
    pub fn copy_from_slice(&mut self, data: &[u8]) {
        self.len = 0;
        self.extend_from_slice(data);
    }
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        self.pool.give_back(self.n);
    }
}

impl Deref for FixedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl AsRef<[u8]> for FixedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsMut<[u8]> for FixedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl std::fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .field("fixed_index", &self.fixed_index())
            .finish()
    }
}

// SAFETY: the memory is the pool's region, kept alive by the `Rc` and
// never moved; moving the `FixedBuf` moves only the handle. `len` bytes
// are initialised (all are).
unsafe impl IoBuf for FixedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.pool.buf_ptr(self.n)
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
    fn fixed_index(&self) -> Option<u16> {
        FixedBuf::fixed_index(self)
    }
}

// SAFETY: as for `IoBuf`; all `capacity()` bytes are writable and only
// this `FixedBuf` may touch them.
unsafe impl IoBufMut for FixedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.pool.buf_ptr(self.n)
    }
    unsafe fn set_init(&mut self, pos: usize) {
        debug_assert!(pos <= self.capacity());
        self.len = self.len.max(pos.min(self.capacity()));
    }
}
