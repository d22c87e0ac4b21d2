//! [`Slice`]: a sub-range of an owned buffer that operations read from or
//! write into, handing the whole buffer back afterwards.
//!
//! A partial write's rest (`buf.slice(n..)`) and a read appended after the
//! bytes already held (`buf.slice(buf.len()..buf.capacity())`) need no
//! copy: the operation takes the slice, the caller gets the whole buffer
//! back with [`Slice::into_inner`].
//!
//! # Invariants
//!
//! - `begin <= end <= buf.bytes_total()`, checked when the slice is made;
//!   the buffer is never resized through a slice, so it keeps holding.
//! - A slice starting inside or at the end of the initialised bytes
//!   (`begin <= bytes_init`) marks what a read wrote initialised in the
//!   whole buffer. A slice starting past them cannot (the gap before it is
//!   uninitialised), so there a read's bytes are returned by count only.

use std::ops::{Bound, Deref, DerefMut, RangeBounds};

use super::{IoBuf, IoBufMut};

/// A sub-range `begin..end` of the buffer `T`; see the module docs.
///
/// ```
/// use veloq::buf::IoBuf;
///
/// let buf = b"hello world".to_vec();
/// let tail = buf.slice(6..);
/// assert_eq!(&tail[..], b"world");
/// assert_eq!(tail.into_inner(), b"hello world");
/// ```
#[derive(Debug)]
pub struct Slice<T> {
    buf: T,
    begin: usize,
    end: usize,
}

impl<T: IoBuf> Slice<T> {
    /// `buf[range]`; see [`IoBuf::slice`].
    pub(crate) fn new(buf: T, range: impl RangeBounds<usize>) -> Slice<T> {
        let total = buf.bytes_total();
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.checked_add(1).expect("slice start overflows"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.checked_add(1).expect("slice end overflows"),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => total,
        };
        assert!(
            begin <= end && end <= total,
            "slice range {begin}..{end} out of the buffer's {total} bytes"
        );
        Slice { buf, begin, end }
    }

    /// Where the slice starts in the buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// Where the slice ends in the buffer (exclusive).
    pub fn end(&self) -> usize {
        self.end
    }

    /// The whole buffer.
    pub fn get_ref(&self) -> &T {
        &self.buf
    }

    /// The whole buffer, mutably.
    ///
    /// (It cannot be resized through this in a way that breaks the slice:
    /// `IoBuf` has no method that shrinks the memory.)
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.buf
    }

    /// Gives the whole buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: IoBuf> Deref for Slice<T> {
    type Target = [u8];

    /// The initialised bytes of the slice.
    fn deref(&self) -> &[u8] {
        let len = self.bytes_init();
        // SAFETY: `stable_ptr()` points `begin` bytes into the buffer, and
        // the next `bytes_init()` bytes are initialised (IoBuf contract of
        // `T`: `begin + len <= T::bytes_init`).
        unsafe { std::slice::from_raw_parts(self.stable_ptr(), len) }
    }
}

impl<T: IoBufMut> DerefMut for Slice<T> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.bytes_init();
        // SAFETY: as for `deref`; `&mut self` makes the access unique and
        // the memory is writable (IoBufMut contract).
        unsafe { std::slice::from_raw_parts_mut(self.stable_mut_ptr(), len) }
    }
}

// SAFETY: the pointer is `begin` bytes into `T`'s stable memory, which
// moves with nothing; `bytes_init` counts only bytes initialised in `T`
// and `bytes_total` stays within `T`'s capacity (`end <= T::bytes_total`).
unsafe impl<T: IoBuf> IoBuf for Slice<T> {
    fn stable_ptr(&self) -> *const u8 {
        self.buf.stable_ptr().wrapping_add(self.begin)
    }

    fn bytes_init(&self) -> usize {
        self.buf
            .bytes_init()
            .min(self.end)
            .saturating_sub(self.begin)
    }

    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }

    fn fixed_index(&self) -> Option<u16> {
        self.buf.fixed_index()
    }
}

// SAFETY: as above; the range is writable memory of `T`.
unsafe impl<T: IoBufMut> IoBufMut for Slice<T> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr().wrapping_add(self.begin)
    }

    unsafe fn set_init(&mut self, pos: usize) {
        // Only where no uninitialised gap lies before the slice (module
        // docs): then `buf[..begin]` is initialised and the caller vouches
        // for `buf[begin..begin + pos]`.
        if self.begin <= self.buf.bytes_init() {
            // SAFETY: see above; `begin + pos <= end <= bytes_total`.
            unsafe { self.buf.set_init(self.begin + pos) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_map_onto_the_buffer() {
        let buf = b"0123456789".to_vec();
        let s = buf.slice(2..5);
        assert_eq!((s.begin(), s.end()), (2, 5));
        assert_eq!(&s[..], b"234");
        assert_eq!(s.bytes_total(), 3);
        let s = s.into_inner().slice(..=1);
        assert_eq!(&s[..], b"01");
        let s = s.into_inner().slice(8..);
        assert_eq!(&s[..], b"89");
    }

    #[test]
    fn a_slice_of_spare_capacity_reads_onto_the_end() {
        let mut buf = Vec::with_capacity(8);
        buf.extend_from_slice(b"ab");
        let len = buf.len();
        let mut tail = buf.slice(len..8);
        assert_eq!(tail.bytes_init(), 0);
        assert_eq!(tail.bytes_total(), 6);
        // Pretend the kernel wrote 3 bytes.
        // SAFETY: 3 <= 6 bytes of spare capacity, written here first.
        unsafe {
            std::ptr::copy_nonoverlapping(b"cde".as_ptr(), tail.stable_mut_ptr(), 3);
            tail.set_init(3);
        }
        assert_eq!(tail.into_inner(), b"abcde");
    }

    #[test]
    fn a_slice_past_the_initialised_bytes_marks_nothing() {
        let buf: Vec<u8> = Vec::with_capacity(8);
        let mut s = buf.slice(4..8);
        // SAFETY: the bytes claimed are written first.
        unsafe {
            std::ptr::write_bytes(s.stable_mut_ptr(), 1, 2);
            s.set_init(2);
        }
        assert!(
            s.into_inner().is_empty(),
            "the gap 0..4 stays uninitialised"
        );
    }

    #[test]
    #[should_panic(expected = "out of the buffer")]
    fn a_range_past_the_capacity_panics() {
        let buf = Box::<[u8]>::from(&b"abc"[..]);
        let _ = buf.slice(1..4);
    }
}
