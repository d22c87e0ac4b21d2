//! The completion port handle, its completion keys, and the cross-thread
//! wake.
//!
//! # Completion keys
//!
//! Every packet on the port carries one of three keys:
//!
//! | key            | posted by                          | `OVERLAPPED*`          |
//! |----------------|------------------------------------|------------------------|
//! | [`KEY_IO`]     | the kernel, for associated handles | the op's header        |
//! | [`KEY_OFFLOAD`]| the blocking pool                  | the op's header        |
//! | [`KEY_WAKE`]   | [`PortWaker::unpark`]              | null                   |
//!
//! The port handle is shared (`Arc<Port>`) by the driver, its wake handles
//! and the blocking pool, and closed when the last of them goes: a wake
//! handle that outlives its driver posts into a port that still exists
//! (and is never read), never into a closed or reused handle.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::IO::{
    CreateIoCompletionPort, PostQueuedCompletionStatus, OVERLAPPED,
};

use crate::io::driver::Unpark;

/// Key of kernel completions for handles associated with the port.
pub(crate) const KEY_IO: usize = 0;
/// Key of packets the blocking pool posts for offloaded ops.
pub(crate) const KEY_OFFLOAD: usize = 1;
/// Key of cross-thread wake packets.
pub(crate) const KEY_WAKE: usize = 2;

/// An I/O completion port; closed on drop.
pub(crate) struct Port {
    handle: HANDLE,
}

// SAFETY: a completion port handle may be used from any thread; the
// kernel object synchronises itself.
unsafe impl Send for Port {}
// SAFETY: as above; `Port` has no interior state besides the handle.
unsafe impl Sync for Port {}

impl Port {
    /// Creates a port; `concurrency` 1 because one thread (the driver's)
    /// dequeues from it.
    pub(crate) fn new() -> io::Result<Port> {
        // SAFETY: creating a new port takes no pointers.
        let handle = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, ptr::null_mut(), 0, 1) };
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Port { handle })
    }

    /// The raw port handle.
    pub(crate) fn handle(&self) -> HANDLE {
        self.handle
    }

    /// Associates `handle` with this port under [`KEY_IO`].
    pub(crate) fn associate(&self, handle: HANDLE) -> io::Result<()> {
        // SAFETY: `handle` is the caller's open handle; the call only links
        // it to the port.
        let rc = unsafe { CreateIoCompletionPort(handle, self.handle, KEY_IO, 0) };
        if rc.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Queues a packet.
    pub(crate) fn post(
        &self,
        bytes: u32,
        key: usize,
        overlapped: *const OVERLAPPED,
    ) -> io::Result<()> {
        // SAFETY: the port is open while `self` lives; the kernel only
        // carries `overlapped` through to the dequeuer, never touches it.
        let ok = unsafe { PostQueuedCompletionStatus(self.handle, bytes, key, overlapped) };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and closed once.
        unsafe { CloseHandle(self.handle) };
    }
}

/// Wakes the driver from any thread with a [`KEY_WAKE`] packet.
///
/// Wakes coalesce through `pending`: only the wake that sets it posts; the
/// driver clears it (with `acknowledge`) when it dequeues the packet.
pub(crate) struct PortWaker {
    port: Arc<Port>,
    pending: AtomicBool,
}

impl PortWaker {
    pub(crate) fn new(port: Arc<Port>) -> Self {
        PortWaker {
            port,
            pending: AtomicBool::new(false),
        }
    }

    /// Called by the driver when it dequeues a wake packet, before it
    /// returns from `wait`. The swap acquires the state of every `unpark`
    /// that coalesced into this packet, so the caller then sees whatever
    /// they published before waking it.
    pub(crate) fn acknowledge(&self) {
        self.pending.swap(false, Ordering::AcqRel);
    }
}

impl Unpark for PortWaker {
    fn unpark(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            // A failed post (out of kernel memory) clears `pending`, so
            // the next wake tries again.
            if self.port.post(0, KEY_WAKE, ptr::null()).is_err() {
                self.pending.store(false, Ordering::Release);
            }
        }
    }
}
