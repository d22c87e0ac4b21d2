//! Dropping the driver: cancel everything, wait for every CQE, and only
//! then free what the kernel could write.
//!
//! # Invariants
//!
//! - Memory the kernel may still touch (op slots, keep-alives, the wake
//!   buffer, timeout timespecs) is freed only after the request's CQE has
//!   been processed.
//! - If the kernel has not reported everything within [`DRAIN_LIMIT`],
//!   that memory and the ring are leaked, never freed.

use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

use super::{pool, token, UringDriver, DRAIN_LIMIT};
use crate::io::driver::op_registry::CancelAction;

impl UringDriver {
    /// Cancels everything in flight and waits until the kernel has
    /// reported all of it; `false` if it did not within [`DRAIN_LIMIT`].
    fn drain(&mut self) -> bool {
        self.closing = true;
        let started = Instant::now();
        let mut round = 0u32;
        loop {
            if round % 16 == 0 {
                // Again now and then: a cancel may find an op between
                // states and miss it.
                self.cancel_all();
            }
            round += 1;
            let ops_done = self.registry.is_empty() && !self.wake_armed;
            if ops_done && self.deadlines.in_kernel() == 0 {
                return true;
            }
            if started.elapsed() >= DRAIN_LIMIT {
                return false;
            }
            let res = if ops_done {
                // Only `IORING_OP_TIMEOUT`s left: remove the armed one and
                // wait for the CQEs, arming nothing new.
                if let Some(entry) = self.deadlines.remove_armed(self.ack_flags) {
                    // SAFETY: TIMEOUT_REMOVE points at no memory.
                    let _ = unsafe { self.push(&entry) };
                }
                self.enter(1)
            } else {
                // Bounded, so that cancels are retried.
                self.enter_until(Instant::now() + Duration::from_millis(50))
            };
            if res.is_err() {
                // A refused submission skips the completion work: run it
                // alone, and do not spin on an enter that keeps failing.
                self.after_refusal();
                std::thread::sleep(Duration::from_millis(1));
            }
            // A hook's panic caught in here (the panic hook has reported
            // it) is dropped with the driver rather than resumed: a panic
            // out of the drop would skip the rest of the runtime's
            // shutdown.
            self.reap();
        }
    }

    /// Asks the kernel to cancel every op, the wake read and the armed
    /// timeout (drop).
    fn cancel_all(&mut self) {
        for key in self.registry.keys() {
            let Some(slot) = self.registry.get_mut(key) else {
                continue;
            };
            if slot.op.is_none() {
                // Reserved, never submitted: nothing in the kernel.
                self.registry.release(key);
                continue;
            }
            if !self.registry.is_cancelled(key)
                && self.registry.cancel(key, None) == CancelAction::Done
            {
                continue;
            }
            self.push_cancel(key.to_user_data());
        }
        if self.wake_armed {
            // An eventfd read may sit in an io-wq worker where cancel
            // cannot reach it; a write completes it either way.
            self.waker.force_write();
            self.push_cancel(token::WAKE);
        }
        if let Some(entry) = self.deadlines.remove_armed(self.ack_flags) {
            // SAFETY: TIMEOUT_REMOVE points at no memory.
            let _ = unsafe { self.push(&entry) };
        }
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        let call = pool::driver_call();
        let drained = self.drain();
        self.release_deferred_pools(call);
        if drained {
            // SAFETY: the kernel has reported every request that pointed at
            // driver memory; the ring and the wake buffer are dropped once,
            // here, and never used again.
            unsafe {
                ManuallyDrop::drop(&mut self.ring);
                ManuallyDrop::drop(&mut self.wake_buf);
            }
        } else {
            // The kernel may still write into slots, keep-alives, the wake
            // buffer or timespecs: leak all of it (and the ring) rather
            // than free memory it can reach.
            crate::io::driver::note_leaked_drain();
            std::mem::forget(std::mem::take(&mut self.registry));
            self.deadlines.leak();
        }
    }
}
