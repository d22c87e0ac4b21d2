//! [`BufPool`]: a fixed set of equal-sized buffers in one allocation,
//! registered with the driver for fixed reads and writes.
//!
//! # Ownership
//!
//! The pool's memory (`PoolInner`) is shared through an `Rc` by the
//! [`BufPool`] handle and every [`FixedBuf`] it lent, so it stays alive
//! while any of them lives — including a buffer the driver keeps alive for
//! a cancelled op. When the last owner goes, the registration is released
//! (`Driver::unregister_buffers`) and only then is the memory freed.
//!
//! # Releasing from inside the driver
//!
//! The last owner can be a cancelled op's keep-alive that the driver drops
//! while it processes completions, i.e. while the runtime's driver is
//! borrowed; calling back into it then would be re-entrant. A driver marks
//! such stretches with [`driver_call`]; a pool that dies inside one parks
//! its memory in a thread-local list instead, and the driver unregisters
//! and frees it ([`release_deferred`]) before the call returns.
//!
//! # Which driver
//!
//! A pool is registered with the driver of the runtime it was created in,
//! identified by that driver's wake handle (kept alive by the pool, so the
//! identity cannot be reused). The registration is only ever released on
//! that driver; if it is not reachable when the pool dies (another runtime
//! is current, or the driver is gone), the memory is freed without
//! unregistering: no op can name those indices any more, and the driver
//! either died with its table or keeps the range reserved until it drops.

use std::alloc::{self, Layout};
use std::cell::{Cell, RefCell};
use std::io;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;

use super::FixedBuf;
use crate::io::driver::{Driver, WakeHandle};
use crate::runtime::context;

/// Alignment of the pool's region (a page, so buffers whose size is a
/// multiple of 4096 suit `O_DIRECT`).
const REGION_ALIGN: usize = 4096;

thread_local! {
    /// Nesting depth of driver calls on this thread ([`driver_call`]).
    static DRIVER_CALLS: Cell<u32> = const { Cell::new(0) };
    /// Registered regions whose pools died inside a driver call.
    static DEFERRED: RefCell<Vec<Deferred>> = const { RefCell::new(Vec::new()) };
}

/// One zeroed, page-aligned allocation; freed on drop.
pub(crate) struct Region {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Region {
    /// Allocates `len` (non-zero) zeroed bytes, page-aligned.
    pub(crate) fn new(len: usize) -> io::Result<Region> {
        let layout = Layout::from_size_align(len, REGION_ALIGN).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "BufPool: region too large")
        })?;
        // SAFETY: `layout` has a non-zero size (checked by `BufPool::new`).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(Region { ptr, layout })
    }
}

impl Region {
    /// The start of the allocation.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `Region::new` with this layout; dropped
        // once, when neither a buffer nor the kernel can reach it.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// The driver registration of a pool.
struct Registration {
    first: u16,
    count: u16,
    /// Identifies the driver the buffers are registered with.
    owner: WakeHandle,
}

/// A registered region waiting for its driver call to end.
// Used by backends that register buffers (io_uring); IOCP has none.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct Deferred {
    region: Region,
    first: u16,
    count: u16,
    owner: WakeHandle,
}

/// The identity of a driver: the address of its wake handle.
fn identity(handle: &WakeHandle) -> *const () {
    Arc::as_ptr(handle) as *const ()
}

/// Marks a stretch in which the current driver is in use (and so cannot
/// be called) and keep-alives may be dropped.
// Used by backends that register buffers (io_uring); IOCP has none.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct DriverCall(());

/// Starts a [`DriverCall`]; see the module docs.
// Used by backends that register buffers (io_uring); IOCP has none.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn driver_call() -> DriverCall {
    DRIVER_CALLS.with(|d| d.set(d.get() + 1));
    DriverCall(())
}

impl Drop for DriverCall {
    fn drop(&mut self) {
        DRIVER_CALLS.with(|d| d.set(d.get() - 1));
    }
}

fn in_driver_call() -> bool {
    DRIVER_CALLS.try_with(|d| d.get() > 0).unwrap_or(false)
}

/// Whether a pool died inside a driver call and waits for
/// [`release_deferred`]: the cheap check a driver makes first.
// Used by backends that register buffers (io_uring); IOCP has none.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn any_deferred() -> bool {
    DEFERRED
        .try_with(|d| !d.borrow().is_empty())
        .unwrap_or(false)
}

/// Frees the regions of pools that died inside a driver call, calling
/// `unregister(first, count)` for those registered with the driver whose
/// wake handle is `owner` (the driver calling this).
// Used by backends that register buffers (io_uring); IOCP has none.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn release_deferred(owner: &WakeHandle, mut unregister: impl FnMut(u16, u16)) {
    let deferred = DEFERRED
        .try_with(|d| std::mem::take(&mut *d.borrow_mut()))
        .unwrap_or_default();
    for d in deferred {
        if identity(&d.owner) == identity(owner) {
            unregister(d.first, d.count);
        }
        drop(d.region);
    }
}

/// The memory and bookkeeping shared by a pool and its buffers.
pub(crate) struct PoolInner {
    region: Option<Region>,
    size: usize,
    count: usize,
    /// Numbers of the buffers not lent out.
    free: RefCell<Vec<u32>>,
    registration: Option<Registration>,
}

impl PoolInner {
    /// Start of buffer `n`.
    pub(crate) fn buf_ptr(&self, n: u32) -> *mut u8 {
        let region = self
            .region
            .as_ref()
            .expect("pool region present while owned");
        // SAFETY: `n < count`, so the offset lies within the region.
        unsafe { region.ptr.as_ptr().add(n as usize * self.size) }
    }

    /// Bytes per buffer.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The registered index of buffer `n`, if the pool is registered.
    pub(crate) fn fixed_index(&self, n: u32) -> Option<u16> {
        self.registration.as_ref().map(|r| r.first + n as u16)
    }

    /// Takes buffer `n` back.
    pub(crate) fn give_back(&self, n: u32) {
        self.free.borrow_mut().push(n);
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let Some(region) = self.region.take() else {
            return;
        };
        let Some(reg) = self.registration.take() else {
            return; // never registered: just free
        };
        if in_driver_call() {
            let deferred = Deferred {
                region,
                first: reg.first,
                count: reg.count,
                owner: reg.owner,
            };
            // Should the thread's locals be gone (thread exit, and its
            // driver with them), the closure is dropped unrun and frees
            // the region.
            let _ = DEFERRED.try_with(|d| d.borrow_mut().push(deferred));
            return;
        }
        let _ = context::try_with_driver(|driver| {
            if identity(&driver.wake_handle()) == identity(&reg.owner) {
                driver.unregister_buffers(reg.first, reg.count);
            }
        });
        drop(region);
    }
}

/// A pool of `count` buffers of `size` bytes each, in one page-aligned
/// allocation registered with the runtime's driver.
///
/// Where the driver registers them (io_uring with a sparse buffer table),
/// file reads and writes through a [`FixedBuf`] use `READ_FIXED` /
/// `WRITE_FIXED` and skip the per-op page pinning; elsewhere (IOCP, an old
/// kernel, `RLIMIT_MEMLOCK` exhausted) they are plain memory and work the
/// same, only without that saving.
///
/// `BufPool` and its buffers are `!Send`: they belong to the runtime (and
/// thread) that created them.
///
/// ```no_run
/// use veloq::buf::BufPool;
///
/// veloq::block_on(async {
///     let pool = BufPool::new(8, 4096).unwrap();
///     let mut buf = pool.get().expect("a free buffer");
///     buf.extend_from_slice(b"hello");
///     assert_eq!(&buf[..], b"hello");
///     assert_eq!(pool.available(), 7);
///     drop(buf); // back to the pool
///     assert_eq!(pool.available(), 8);
/// });
/// ```
#[derive(Clone)]
pub struct BufPool {
    inner: Rc<PoolInner>,
}

impl BufPool {
    /// Allocates `count` zeroed buffers of `size` bytes and registers them
    /// with the current runtime's driver.
    ///
    /// Fails with `InvalidInput` for a zero `count` or `size` or a region
    /// too large to allocate; registration being unavailable is not an
    /// error (see the type docs).
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn new(count: usize, size: usize) -> io::Result<BufPool> {
        if count == 0 || size == 0 || count > u32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "BufPool: count and size must be non-zero",
            ));
        }
        let len = count
            .checked_mul(size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "BufPool: too large"))?;
        let region = Region::new(len)?;
        let bufs: Vec<(*mut u8, usize)> = (0..count)
            // SAFETY: `i * size < len`: within the region.
            .map(|i| (unsafe { region.ptr.as_ptr().add(i * size) }, size))
            .collect();
        let registration = context::with_driver(|driver| -> io::Result<_> {
            let Ok(count) = u16::try_from(count) else {
                return Ok(None); // more than any buffer table holds
            };
            // SAFETY: the region stays allocated until `PoolInner` drops,
            // which unregisters it first (or, where the driver is gone,
            // frees it when the kernel can no longer reach it).
            let first = unsafe { driver.register_buffers(&bufs) }?;
            Ok(first.map(|first| Registration {
                first,
                count,
                owner: driver.wake_handle(),
            }))
        })?;
        Ok(BufPool {
            inner: Rc::new(PoolInner {
                region: Some(region),
                size,
                count,
                free: RefCell::new((0..count as u32).rev().collect()),
                registration,
            }),
        })
    }

    /// Lends a free buffer (empty: length 0), or `None` when all are lent.
    pub fn get(&self) -> Option<FixedBuf> {
        let n = self.inner.free.borrow_mut().pop()?;
        Some(FixedBuf::new(self.inner.clone(), n))
    }

    /// Buffers not lent out.
    pub fn available(&self) -> usize {
        self.inner.free.borrow().len()
    }

    /// Buffers in the pool.
    pub fn count(&self) -> usize {
        self.inner.count
    }

    /// Bytes per buffer.
    pub fn buf_size(&self) -> usize {
        self.inner.size
    }

    /// Whether the buffers are registered with the driver (fixed I/O).
    pub fn is_registered(&self) -> bool {
        self.inner.registration.is_some()
    }
}

impl std::fmt::Debug for BufPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufPool")
            .field("count", &self.inner.count)
            .field("buf_size", &self.inner.size)
            .field("available", &self.available())
            .field("registered", &self.is_registered())
            .finish()
    }
}

#[cfg(test)]
mod tests;
