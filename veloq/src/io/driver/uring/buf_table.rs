//! Index ranges of the ring's sparse fixed-buffer table.
//!
//! At setup the driver registers an empty ("sparse") table of
//! [`TABLE_SLOTS`] buffers; each `register_buffers` call takes a run of
//! consecutive free indices from here and fills it with
//! `IORING_REGISTER_BUFFERS_UPDATE`; `unregister_buffers` clears the run
//! and gives it back.
//!
//! # Invariants
//!
//! - `free` holds disjoint, non-adjacent `(start, len)` runs, sorted by
//!   start; every index in `0..TABLE_SLOTS` is either in exactly one free
//!   run or in exactly one range handed out and not yet released.
//! - A range is released only with the exact `(start, len)` it was handed
//!   out as; anything else is refused (returns `false`).

use std::io;

use super::UringDriver;

/// Slots in the sparse table registered at setup.
pub(crate) const TABLE_SLOTS: u16 = 1024;

/// First-fit allocator of index runs; see the module docs.
#[derive(Debug)]
pub(crate) struct BufTable {
    free: Vec<(u16, u16)>,
    taken: Vec<(u16, u16)>,
}

impl BufTable {
    /// A table of `slots` free indices.
    pub(crate) fn new(slots: u16) -> BufTable {
        BufTable {
            free: if slots > 0 {
                vec![(0, slots)]
            } else {
                Vec::new()
            },
            taken: Vec::new(),
        }
    }

    /// Takes `count` consecutive indices; `None` when no run is long
    /// enough (or `count` is 0).
    pub(crate) fn alloc(&mut self, count: u16) -> Option<u16> {
        if count == 0 {
            return None;
        }
        let pos = self.free.iter().position(|&(_, len)| len >= count)?;
        let (start, len) = self.free[pos];
        if len == count {
            self.free.remove(pos);
        } else {
            self.free[pos] = (start + count, len - count);
        }
        self.taken.push((start, count));
        Some(start)
    }

    /// Gives back a range handed out by `alloc`; `false` (and no change)
    /// for anything else.
    pub(crate) fn release(&mut self, start: u16, count: u16) -> bool {
        let Some(pos) = self.taken.iter().position(|&r| r == (start, count)) else {
            return false;
        };
        self.taken.swap_remove(pos);
        let at = self.free.partition_point(|&(s, _)| s < start);
        self.free.insert(at, (start, count));
        // Merge with the next run, then with the previous one.
        if at + 1 < self.free.len() && start + count == self.free[at + 1].0 {
            self.free[at].1 += self.free[at + 1].1;
            self.free.remove(at + 1);
        }
        if at > 0 && self.free[at - 1].0 + self.free[at - 1].1 == start {
            self.free[at - 1].1 += self.free[at].1;
            self.free.remove(at);
        }
        true
    }

    /// Indices currently free.
    #[cfg(test)]
    pub(crate) fn free_slots(&self) -> usize {
        self.free.iter().map(|&(_, len)| len as usize).sum()
    }
}

impl UringDriver {
    /// `Driver::register_buffers`: takes a run of table slots and fills
    /// it; `Ok(None)` where the table is missing or full, or the kernel
    /// refuses the memory (`RLIMIT_MEMLOCK`).
    ///
    /// # Safety
    ///
    /// Each `(ptr, len)` must stay valid until it is unregistered or the
    /// driver is dropped.
    pub(super) unsafe fn register_fixed(
        &mut self,
        bufs: &[(*mut u8, usize)],
    ) -> io::Result<Option<u16>> {
        let Some(table) = self.buf_table.as_mut() else {
            return Ok(None);
        };
        let Ok(count) = u16::try_from(bufs.len()) else {
            return Ok(None);
        };
        let Some(first) = table.alloc(count) else {
            return Ok(None);
        };
        let iovecs: Vec<libc::iovec> = bufs
            .iter()
            .map(|&(ptr, len)| libc::iovec {
                iov_base: ptr.cast(),
                iov_len: len,
            })
            .collect();
        // SAFETY: the caller guarantees each buffer stays valid until the
        // driver is dropped (or until it unregisters them).
        let res = unsafe {
            self.ring
                .submitter()
                .register_buffers_update(first as u32, &iovecs, None)
        };
        match res {
            Ok(()) => Ok(Some(first)),
            Err(e) => {
                table.release(first, count);
                match e.raw_os_error() {
                    // Over RLIMIT_MEMLOCK, not permitted, or not supported:
                    // the buffers work as plain memory.
                    Some(libc::ENOMEM | libc::EPERM | libc::EOPNOTSUPP | libc::EINVAL) => Ok(None),
                    _ => Err(e),
                }
            }
        }
    }

    /// `Driver::unregister_buffers`: clears a run handed out by
    /// `register_fixed` and frees it; anything else is ignored.
    pub(super) fn unregister_fixed(&mut self, first: u16, count: u16) {
        let Some(table) = self.buf_table.as_mut() else {
            return;
        };
        if !table.release(first, count) {
            return;
        }
        let empty = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            count as usize
        ];
        // SAFETY: empty iovecs clear the slots; in-flight fixed ops keep
        // their own reference to the pages in the kernel.
        let res = unsafe {
            self.ring
                .submitter()
                .register_buffers_update(first as u32, &empty, None)
        };
        debug_assert!(res.is_ok(), "veloq: clearing fixed buffers failed: {res:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_release_merges_runs() {
        let mut t = BufTable::new(16);
        let a = t.alloc(4).unwrap();
        let b = t.alloc(4).unwrap();
        let c = t.alloc(8).unwrap();
        assert_eq!((a, b, c), (0, 4, 8));
        assert_eq!(t.alloc(1), None, "table is full");
        assert!(t.release(b, 4));
        assert_eq!(t.alloc(5), None, "a 4-slot hole fits no 5");
        assert!(t.release(a, 4));
        assert!(t.release(c, 8));
        assert_eq!(t.free, vec![(0, 16)], "all runs merged back");
        assert_eq!(t.alloc(16), Some(0));
    }

    #[test]
    fn foreign_ranges_are_refused() {
        let mut t = BufTable::new(8);
        let a = t.alloc(4).unwrap();
        assert!(!t.release(a, 3), "wrong length");
        assert!(!t.release(4, 4), "never handed out");
        assert!(t.release(a, 4));
        assert!(!t.release(a, 4), "double release");
        assert_eq!(t.free_slots(), 8);
        assert_eq!(t.alloc(0), None);
    }
}
