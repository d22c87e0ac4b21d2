//! The [`IoBuf`] / [`IoBufMut`] traits and their impls for std types.

use std::ops::RangeBounds;

use super::Slice;

/// Memory the kernel may read during an operation.
///
/// # Safety
///
/// `stable_ptr` must point to `bytes_init` initialised bytes, and that
/// pointer must stay valid — unchanged — while the value is moved around,
/// until it is dropped or mutably accessed through its own API. (The memory
/// lives on the heap or in static storage, never inline in the value.)
pub unsafe trait IoBuf: Unpin + 'static {
    /// Start of the buffer's memory.
    fn stable_ptr(&self) -> *const u8;

    /// Bytes that hold data (what a write sends).
    fn bytes_init(&self) -> usize;

    /// Bytes of capacity (what a read may fill).
    fn bytes_total(&self) -> usize;

    /// The driver's registered-buffer index when the memory is registered
    /// with the kernel (a [`FixedBuf`](crate::buf::FixedBuf)); `None` for
    /// plain memory.
    #[doc(hidden)]
    fn fixed_index(&self) -> Option<u16> {
        None
    }

    /// The bytes `range` of this buffer's capacity as a buffer of its own:
    /// a write sends `slice[..bytes_init]`, a read fills `slice[..]` from
    /// its start. [`Slice::into_inner`] hands the whole buffer back.
    ///
    /// ```
    /// use veloq::buf::IoBuf;
    ///
    /// // The rest of a partial write, without a copy:
    /// let buf = b"hello world".to_vec();
    /// let sent = 6;
    /// let rest = buf.slice(sent..);
    /// assert_eq!(&rest[..], b"world");
    /// ```
    ///
    /// # Panics
    ///
    /// If the range ends past [`bytes_total`](IoBuf::bytes_total) or
    /// starts after its end.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        Slice::new(self, range)
    }
}

/// Memory the kernel may write during an operation.
///
/// # How a read fills a buffer
///
/// Every read (`read`, `recv`, `recv_from`, `read_at`, …) writes from the
/// **start** of the buffer, up to [`bytes_total`](IoBuf::bytes_total) bytes
/// (a `Vec`'s *capacity*, not its length), and returns how many bytes it
/// wrote, `n`. Afterwards the initialised length is `max(old length, n)`:
///
/// | buffer before a read of `n` bytes | after |
/// |---|---|
/// | `Vec::with_capacity(cap)` | `len == n`: exactly the bytes read |
/// | `vec![0; len]`, `n < len` | `len` unchanged: `buf[..n]` is new, `buf[n..]` still holds the old bytes — use `n` |
/// | `Vec::new()` (capacity 0) | nothing is read: `Ok(0)`, as std's `read` of an empty buffer — not end of stream; give the buffer capacity first |
///
/// To append after the bytes already held, read into
/// `buf.slice(buf.len()..buf.capacity())` (see [`IoBuf::slice`]) and take
/// the whole buffer back with `into_inner`. `read_exact` (and
/// `read_exact_at`) fill the whole `bytes_total`: for a `Vec`, its
/// capacity.
///
/// # Safety
///
/// As for [`IoBuf`], and `stable_mut_ptr` must be valid for writes of
/// `bytes_total` bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the buffer's memory, writable.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Marks the first `pos` bytes as initialised (after the kernel filled
    /// them). Never shrinks the initialised length.
    ///
    /// # Safety
    ///
    /// The first `pos` bytes must really be initialised, and
    /// `pos <= bytes_total()`.
    unsafe fn set_init(&mut self, pos: usize);
}

// SAFETY: a Vec's data lives on the heap; moving the Vec moves only its
// (pointer, len, capacity) header.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for `IoBuf`; the spare capacity is writable heap memory.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if self.len() < pos {
            // SAFETY: the caller guarantees `pos <= capacity` and that the
            // first `pos` bytes are initialised.
            unsafe { self.set_len(pos) };
        }
    }
}

// SAFETY: a boxed slice's data lives on the heap; it is always fully
// initialised.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for `IoBuf`; every byte is initialised and writable.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

// SAFETY: static memory never moves or goes away.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: static memory never moves or goes away.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_reports_len_and_capacity() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"abc");
        assert_eq!(v.bytes_init(), 3);
        assert!(v.bytes_total() >= 16);
        let p = v.stable_ptr();
        let moved = v;
        assert_eq!(moved.stable_ptr(), p, "moving a Vec must not move its data");
    }

    #[test]
    fn vec_set_init_never_shrinks() {
        let mut v = vec![1u8, 2, 3, 4];
        // SAFETY: 2 <= len; the bytes are initialised.
        unsafe { v.set_init(2) };
        assert_eq!(v.len(), 4);
    }
}
