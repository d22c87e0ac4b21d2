//! Multishot ops and provided-buffer rings on io_uring.
//!
//! # Multishot ops
//!
//! A multishot op ([`op::AcceptMulti`], [`op::RecvMulti`]) takes one
//! registry slot and stays armed across CQEs: every CQE that carries
//! `IORING_CQE_F_MORE` goes to the op's sink and leaves the slot as it is;
//! the final CQE (no `F_MORE`) goes to the sink too and then completes the
//! slot like any op's completion. So the slot, and the keep-alive of an
//! op whose future was dropped, are freed only by the final CQE, also
//! after an `ASYNC_CANCEL` (which ends a multishot op with a final
//! `-ECANCELED` CQE). The sink lives in the op, in the slot, so it
//! outlives every CQE addressed to it.
//!
//! # Kernel support
//!
//! Multishot accept and provided-buffer rings came with Linux 5.19,
//! multishot receive with 6.0. The probe cannot see an `ACCEPT` flag, so it
//! asks for an opcode that came with each version: `SOCKET` (5.19) for
//! accept, `SEND_ZC` (6.0) for receive. A pbuf ring the kernel refuses to
//! register leaves the caller on the portable path.
//!
//! # Provided-buffer rings
//!
//! [`UringDriver::register_pbuf_ring`] registers a ring of buffer entries
//! (page-aligned memory owned by the caller) under a fresh group id. The
//! caller owns the memory; when it is done with the ring (no op names the
//! group any more) it hands the memory and the id to the driver's release
//! list, and the driver unregisters the group before it frees the memory
//! (after the next batch of CQEs, or when it is dropped, after the ring is
//! closed).

use std::any::Any;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use std::time::Duration;

use io_uring::{cqueue, opcode, types, IoUring, Probe};

use super::{OpKey, UringDriver, UringOp};
use crate::io::driver::IntoPlatformOp;
use crate::io::op::{self, MultishotEvent, MultishotSink};

/// The longest a synchronous cancel waits for the kernel.
const SYNC_CANCEL_LIMIT: Duration = Duration::from_secs(1);

/// Pbuf rings whose owners are done with them: (group id, ring memory).
pub(crate) type PbufReleases = Rc<RefCell<Vec<(u16, Box<dyn Any>)>>>;

/// Which multishot ops this kernel has (probed once at setup).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MultishotSet {
    pub(crate) accept: bool,
    pub(crate) recv: bool,
}

impl MultishotSet {
    /// Probes the ring's opcodes (see the module docs).
    pub(crate) fn probe(ring: &IoUring) -> MultishotSet {
        let mut probe = Probe::new();
        if ring.submitter().register_probe(&mut probe).is_err() {
            return MultishotSet::default();
        }
        MultishotSet {
            accept: probe.is_supported(opcode::Socket::CODE),
            recv: probe.is_supported(opcode::SendZc::CODE),
        }
    }
}

/// The driver's provided-buffer ring bookkeeping.
#[derive(Default)]
pub(crate) struct PbufRings {
    /// Group ids handed out and released, for reuse.
    free_ids: Vec<u16>,
    /// The next new group id; 0 while no ring was ever registered.
    next_id: u16,
    releases: PbufReleases,
}

impl UringOp {
    /// The sink of a multishot op.
    #[inline]
    pub(super) fn sink(&self) -> Option<&Rc<dyn MultishotSink>> {
        match self {
            UringOp::AcceptMulti { sink, .. } | UringOp::RecvMulti { sink, .. } => Some(sink),
            _ => None,
        }
    }
}

/// The sink's view of one CQE.
pub(super) fn event(res: i32, flags: u32) -> MultishotEvent {
    let res = if res >= 0 {
        Ok(res as usize)
    } else if res == -libc::ECANCELED {
        Err(op::cancelled())
    } else {
        Err(io::Error::from_raw_os_error(-res))
    };
    MultishotEvent {
        res,
        buf: cqueue::buffer_select(flags),
        more: cqueue::more(flags),
    }
}

impl UringDriver {
    /// Whether multishot accept runs here.
    pub(crate) fn supports_multishot_accept(&self) -> bool {
        self.multishot.accept
    }

    /// Forgets the multishot ops, as if the probe had found none (tests of
    /// the fallbacks).
    #[cfg(test)]
    pub(crate) fn forget_multishot(&mut self) {
        self.multishot = MultishotSet::default();
    }

    /// A CQE with `F_MORE` for `key`: goes to the op's sink; the slot
    /// stays. Returns `false` if no live multishot op has that key.
    pub(super) fn on_more(&mut self, key: OpKey, res: i32, flags: u32) -> bool {
        let sink = self
            .registry
            .get_mut(key)
            .and_then(|slot| slot.op.as_ref())
            .and_then(UringOp::sink)
            .cloned();
        match sink {
            Some(sink) => {
                sink.deliver(event(res, flags));
                true
            }
            None => false,
        }
    }

    /// Cancels `key` and waits until the kernel no longer runs it
    /// (`IORING_REGISTER_SYNC_CANCEL`, Linux 6.0, bounded by
    /// [`SYNC_CANCEL_LIMIT`]). `true` when the kernel confirmed it, or the
    /// op never reached it or has completed; its final CQE is still
    /// processed as usual. Queued submissions are handed to the kernel
    /// first: the synchronous cancel only sees submitted requests.
    pub(crate) fn cancel_sync(&mut self, key: OpKey) -> bool {
        let Some(slot) = self.registry.get_mut(key) else {
            return true; // completed and freed
        };
        if slot.op.is_none() {
            return true; // never submitted
        }
        if self.ring.submit().is_err() || !self.ring.submission().is_empty() {
            return false;
        }
        let limit = types::Timespec::from(SYNC_CANCEL_LIMIT);
        let target = types::CancelBuilder::user_data(key.to_user_data());
        let done = match self
            .ring
            .submitter()
            .register_sync_cancel(Some(limit), target)
        {
            Ok(()) => true,
            // Submitted and no longer found: completed.
            Err(e) => e.raw_os_error() == Some(libc::ENOENT),
        };
        // The kernel lets go of the request's file (the descriptor's
        // socket) when it finishes the request, in completion work that a
        // deferred-taskrun ring runs only on an enter: run it now, so the
        // socket really closes with its last descriptor.
        done && self.get_events().is_ok()
    }

    /// Registers the pbuf ring at `ring` (`entries` entries, a power of
    /// two, page-aligned memory) under a new group id; returns the id and
    /// the list to hand the memory back through. `None` where the kernel
    /// has no multishot receive.
    ///
    /// # Safety
    ///
    /// The memory must stay valid until the caller hands it to the release
    /// list (and no op names the group after that).
    pub(crate) unsafe fn register_pbuf_ring(
        &mut self,
        ring: *mut u8,
        entries: u16,
    ) -> io::Result<Option<(u16, PbufReleases)>> {
        if !self.multishot.recv {
            return Ok(None);
        }
        self.release_pbuf_rings();
        let pbuf = &mut self.pbuf;
        let id = match pbuf.free_ids.pop() {
            Some(id) => id,
            None => {
                let id = pbuf.next_id;
                pbuf.next_id = id.checked_add(1).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::OutOfMemory, "veloq: out of pbuf group ids")
                })?;
                id
            }
        };
        // SAFETY: the caller keeps the memory valid until it is released
        // through the list, which unregisters the group first.
        let res = unsafe {
            self.ring
                .submitter()
                .register_buf_ring_with_flags(ring as u64, entries, id, 0)
        };
        match res {
            Ok(()) => Ok(Some((id, self.pbuf.releases.clone()))),
            Err(e) => {
                self.pbuf.free_ids.push(id);
                Err(e)
            }
        }
    }

    /// Unregisters and frees the pbuf rings their owners released. One
    /// branch where no ring was ever registered (every reap calls this).
    #[inline]
    pub(super) fn release_pbuf_rings(&mut self) {
        if self.pbuf.next_id != 0 {
            self.release_pbuf_rings_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn release_pbuf_rings_slow(&mut self) {
        let released = match self.pbuf.releases.try_borrow_mut() {
            Ok(mut list) if !list.is_empty() => std::mem::take(&mut *list),
            _ => return,
        };
        for (id, memory) in released {
            // Should the kernel refuse (it cannot: the group is ours),
            // the id is not reused; the memory is no op's any more.
            if self.ring.submitter().unregister_buf_ring(id).is_ok() {
                self.pbuf.free_ids.push(id);
            }
            drop(memory);
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::AcceptMulti {
    fn into_platform_op(self) -> UringOp {
        UringOp::AcceptMulti {
            fd: self.fd,
            sink: self.sink,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::RecvMulti {
    fn into_platform_op(self) -> UringOp {
        UringOp::RecvMulti {
            fd: self.fd,
            group: self.group,
            sink: self.sink,
        }
    }
}
