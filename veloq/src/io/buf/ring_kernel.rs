//! The io_uring side of a [`BufRing`](super::BufRing): its buffers
//! registered as a provided-buffer ring (`IORING_REGISTER_PBUF_RING`).
//!
//! # Invariants
//!
//! - The ring of entries (`io_uring_buf`, 16 bytes each, a power of two
//!   of them, page-aligned) is this process's memory that the kernel reads
//!   when a receive selects a buffer: it is owned here while registered
//!   and, on drop, handed with its group id to the driver's release list,
//!   which unregisters the group before freeing it.
//! - Only this side writes entries, at `tail`, then publishes the new tail
//!   with a release store (the kernel reads it with an acquire load); the
//!   kernel only advances its own head. Every free buffer is in the ring;
//!   the ring has room for all of them, so a give-back never overwrites an
//!   entry the kernel has not consumed.
//! - `available` counts buffers in the ring as far as processed
//!   completions tell: one less per filled buffer a CQE hands out, one
//!   more per give-back.
//! - The group belongs to the driver that registered it (identified by
//!   its wake handle, kept alive here so the identity is not reused).

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use io_uring::types::BufRingEntry;

use crate::io::buf::pool::Region;
use crate::io::driver::uring::PbufReleases;
use crate::io::driver::{Driver, WakeHandle};
use crate::runtime::context;

/// A registered provided-buffer ring; see the module docs.
pub(crate) struct KernelRing {
    /// The entries; `None` only once handed to the release list.
    entries: Option<Region>,
    mask: u16,
    group: u16,
    /// The next entry to write (the kernel's tail, our copy).
    tail: Cell<u16>,
    available: Cell<usize>,
    releases: PbufReleases,
    owner: WakeHandle,
}

impl KernelRing {
    /// Registers the `count` buffers of `size` bytes at `base` with the
    /// current driver, all free; `None` where the driver has no pbuf
    /// rings (the portable path serves them then).
    ///
    /// # Safety
    ///
    /// The buffers must stay valid until no op can select them: until
    /// this value is dropped and every op of the group has completed.
    pub(crate) unsafe fn new(
        base: *mut u8,
        size: usize,
        count: u16,
    ) -> io::Result<Option<KernelRing>> {
        let entries_len = (count as usize).next_power_of_two();
        let entries = Region::new(entries_len * std::mem::size_of::<BufRingEntry>())?;
        let registered = context::with_driver(|driver| {
            // SAFETY: the entries stay allocated until the driver frees
            // them from its release list, after unregistering the group.
            let reg = unsafe { driver.register_pbuf_ring(entries.ptr(), entries_len as u16) };
            reg.map(|r| r.map(|(group, releases)| (group, releases, driver.wake_handle())))
        });
        let Some((group, releases, owner)) = registered? else {
            return Ok(None);
        };
        let ring = KernelRing {
            entries: Some(entries),
            mask: (entries_len - 1) as u16,
            group,
            tail: Cell::new(0),
            available: Cell::new(0),
            releases,
            owner,
        };
        for id in 0..count {
            // SAFETY: `id < count`: inside the buffer region (the caller's
            // contract).
            ring.give_back(id, unsafe { base.add(id as usize * size) }, size);
        }
        Ok(Some(ring))
    }

    fn base(&self) -> *mut BufRingEntry {
        self.entries
            .as_ref()
            .expect("entries present while registered")
            .ptr()
            .cast()
    }

    /// Puts buffer `id` (at `addr`, `len` bytes) back into the ring.
    pub(crate) fn give_back(&self, id: u16, addr: *mut u8, len: usize) {
        let tail = self.tail.get();
        let slot = (tail & self.mask) as usize;
        // SAFETY: `slot <= mask`, inside the entries; the kernel has
        // consumed this entry (the ring has room for every buffer and
        // this one was not in it), and only this side writes entries.
        unsafe {
            let entry = &mut *self.base().add(slot);
            entry.set_addr(addr as u64);
            entry.set_len(len as u32);
            entry.set_bid(id);
        }
        let tail = tail.wrapping_add(1);
        self.tail.set(tail);
        // SAFETY: the tail field overlays the first entry's reserved field
        // (`io_uring_buf_ring`); it is a naturally aligned u16 that the
        // kernel reads atomically, so it is accessed atomically here.
        let shared = unsafe { AtomicU16::from_ptr(BufRingEntry::tail(self.base()).cast_mut()) };
        // Release: the entry is written before the kernel can see it.
        shared.store(tail, Ordering::Release);
        self.available.set(self.available.get() + 1);
    }

    /// A CQE handed out one of the ring's buffers.
    pub(crate) fn taken(&self) {
        self.available.set(self.available.get().saturating_sub(1));
    }

    /// Buffers in the ring (see the module docs).
    pub(crate) fn available(&self) -> usize {
        self.available.get()
    }

    /// The group id receives select from.
    pub(crate) fn group(&self) -> u16 {
        self.group
    }

    /// Whether the current runtime's driver is the one the ring is
    /// registered with.
    pub(crate) fn on_current_driver(&self) -> bool {
        context::try_with_driver(|d| Arc::ptr_eq(&d.wake_handle(), &self.owner)).unwrap_or(false)
    }
}

impl Drop for KernelRing {
    fn drop(&mut self) {
        if let Some(entries) = self.entries.take() {
            // Should the driver be gone, the list goes with this value and
            // frees the entries: its ring is closed, nothing reads them.
            self.releases
                .borrow_mut()
                .push((self.group, Box::new(entries)));
        }
    }
}
