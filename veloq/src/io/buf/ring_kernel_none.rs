//! Where no driver has provided-buffer rings (Windows): a
//! [`BufRing`](super::BufRing) always serves its buffers the portable way.
//! `KernelRing` has no values.

use std::io;

/// No kernel ring exists on this platform.
pub(crate) enum KernelRing {}

impl KernelRing {
    /// Always `None`: the portable path serves the buffers.
    ///
    /// # Safety
    ///
    /// None needed; `unsafe` to match the Linux signature.
    pub(crate) unsafe fn new(
        _base: *mut u8,
        _size: usize,
        _count: u16,
    ) -> io::Result<Option<KernelRing>> {
        Ok(None)
    }

    pub(crate) fn give_back(&self, _id: u16, _addr: *mut u8, _len: usize) {
        match *self {}
    }

    pub(crate) fn available(&self) -> usize {
        match *self {}
    }
}
