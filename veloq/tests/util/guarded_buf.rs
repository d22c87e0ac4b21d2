//! Buffers whose memory is never reused and, on Unix, becomes inaccessible
//! the moment the buffer is dropped: a detector for late kernel writes that
//! AddressSanitizer cannot see (io_uring writes from the kernel side).
//!
//! A [`GuardPool`] maps one region up front and cuts each [`GuardBuf`] from
//! fresh whole pages of it; pages are handed out once and never again. On
//! drop a buffer's pages are made `PROT_NONE` and their memory given back
//! (`MADV_DONTNEED`), but the addresses stay reserved until the process
//! ends. So if the runtime released a buffer while the kernel still held
//! it, the kernel's late copy into it fails with `EFAULT` instead of
//! landing in memory someone else now owns; and a late write from user
//! space (a pool thread, Wine) faults at once.
//!
//! Under Windows (Wine) the pages are plain leaked memory, filled with
//! [`POISON`] on drop instead of protected: Wine performs overlapped I/O
//! from user space, where a write to a `PAGE_NOACCESS` page would kill
//! the process rather than fail the op.
//!
//! Every pool counts the buffers it made and dropped, and catches a second
//! drop of the same pages, so a test can assert each buffer was dropped
//! exactly once.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use veloq::buf::{IoBuf, IoBufMut};

/// What a dropped buffer's pages are filled with where they cannot be
/// protected (Windows).
pub const POISON: u8 = 0xEE;

/// The pool's shared state; buffers keep it alive.
struct PoolInner {
    /// Start of the reserved region (never unmapped).
    base: usize,
    page: usize,
    pages: usize,
    /// Next page not yet handed out.
    next: AtomicUsize,
    made: AtomicUsize,
    dropped: AtomicUsize,
    /// Drops of pages that were already dropped (must stay 0).
    double: AtomicUsize,
    /// Per first page of a buffer: 1 once that buffer was dropped.
    dropped_flag: Box<[AtomicU8]>,
}

/// A region of `pages` pages from which [`GuardBuf`]s are cut; see the
/// module docs.
#[derive(Clone)]
pub struct GuardPool {
    inner: Arc<PoolInner>,
}

impl GuardPool {
    /// Reserves room for buffers totalling at most `pages` pages (each
    /// buffer takes whole pages, at least one).
    pub fn new(pages: usize) -> GuardPool {
        let page = sys::page_size();
        let base = sys::reserve(pages * page);
        GuardPool {
            inner: Arc::new(PoolInner {
                base,
                page,
                pages,
                next: AtomicUsize::new(0),
                made: AtomicUsize::new(0),
                dropped: AtomicUsize::new(0),
                double: AtomicUsize::new(0),
                dropped_flag: (0..pages).map(|_| AtomicU8::new(0)).collect(),
            }),
        }
    }

    /// An empty buffer with room for `cap` bytes (a read buffer).
    pub fn buf(&self, cap: usize) -> GuardBuf {
        let p = &self.inner;
        let pages = cap.max(1).div_ceil(p.page);
        let first = p.next.fetch_add(pages, Ordering::Relaxed);
        assert!(
            first + pages <= p.pages,
            "guard pool exhausted ({} pages): size it for the test",
            p.pages
        );
        p.made.fetch_add(1, Ordering::SeqCst);
        GuardBuf {
            ptr: (p.base + first * p.page) as *mut u8,
            cap,
            init: 0,
            first,
            pages,
            pool: self.inner.clone(),
        }
    }

    /// A buffer holding a copy of `data` (a write buffer).
    pub fn with_bytes(&self, data: &[u8]) -> GuardBuf {
        let mut buf = self.buf(data.len());
        // SAFETY: the buffer's pages are mapped, writable and only ours;
        // `data.len()` fits its capacity.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.ptr, data.len()) };
        buf.init = data.len();
        buf
    }

    /// A buffer whose pages are already retired, as a dropped buffer's
    /// are (inaccessible on Unix): stands in for memory a runtime released
    /// too early, to check that the kernel's access is caught.
    pub fn retired_buf(&self, cap: usize) -> GuardBuf {
        let buf = self.buf(cap);
        sys::retire(buf.ptr, buf.pages * self.inner.page);
        buf
    }

    /// Buffers made so far.
    pub fn made(&self) -> usize {
        self.inner.made.load(Ordering::SeqCst)
    }

    /// Buffers dropped so far (a second drop of one buffer is not counted
    /// here but in [`assert_each_dropped_once`](Self::assert_each_dropped_once)).
    pub fn dropped(&self) -> usize {
        self.inner.dropped.load(Ordering::SeqCst)
    }

    /// Panics unless every buffer made was dropped, and none twice.
    pub fn assert_each_dropped_once(&self, what: &str) {
        let double = self.inner.double.load(Ordering::SeqCst);
        assert_eq!(double, 0, "{what}: buffers dropped twice");
        assert_eq!(
            self.dropped(),
            self.made(),
            "{what}: buffers dropped vs made (the rest are still held somewhere)"
        );
    }
}

/// A buffer cut from a [`GuardPool`]: fresh pages, never reused, guarded
/// once dropped.
pub struct GuardBuf {
    ptr: *mut u8,
    cap: usize,
    init: usize,
    first: usize,
    pages: usize,
    pool: Arc<PoolInner>,
}

impl GuardBuf {
    /// The initialised bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the pages are mapped and accessible until this buffer is
        // dropped; the first `init` bytes were written (mapped pages start
        // zeroed, so every byte is initialised anyway).
        unsafe { std::slice::from_raw_parts(self.ptr, self.init) }
    }
}

impl Drop for GuardBuf {
    fn drop(&mut self) {
        let p = &self.pool;
        if p.dropped_flag[self.first].swap(1, Ordering::SeqCst) != 0 {
            // A second drop (a bitwise copy dropped again): count it and
            // leave the pages alone.
            p.double.fetch_add(1, Ordering::SeqCst);
            return;
        }
        sys::retire(self.ptr, self.pages * p.page);
        p.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: `ptr` points to `cap` bytes of pages reserved for this buffer
// alone, which stay mapped and in place wherever the value moves, until
// the buffer is dropped; mapped pages start zeroed, so all are initialised.
unsafe impl IoBuf for GuardBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr
    }
    fn bytes_init(&self) -> usize {
        self.init
    }
    fn bytes_total(&self) -> usize {
        self.cap
    }
}

// SAFETY: as above; the pages are writable until the buffer is dropped.
unsafe impl IoBufMut for GuardBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    unsafe fn set_init(&mut self, pos: usize) {
        self.init = self.init.max(pos.min(self.cap));
    }
}

#[cfg(unix)]
mod sys {
    /// The system page size.
    pub fn page_size() -> usize {
        // SAFETY: sysconf reads a constant; no memory is passed.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 {
            n as usize
        } else {
            4096
        }
    }

    /// Maps `len` bytes of fresh, zeroed, writable memory, never unmapped.
    pub fn reserve(len: usize) -> usize {
        // SAFETY: an anonymous private mapping at an address the kernel
        // picks touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of the guard pool failed");
        p as usize
    }

    /// Makes a dropped buffer's pages inaccessible and gives their memory
    /// back; the addresses stay reserved (never handed out again).
    pub fn retire(ptr: *mut u8, len: usize) {
        // SAFETY: `ptr..ptr + len` are whole pages of our own mapping that
        // belonged to the buffer being dropped; nothing in this process
        // may touch them any more.
        let rc = unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_NONE) };
        assert_eq!(rc, 0, "mprotect(PROT_NONE) failed");
        // SAFETY: as above; discarding the contents of pages nobody may
        // read is harmless.
        unsafe { libc::madvise(ptr.cast(), len, libc::MADV_DONTNEED) };
    }
}

#[cfg(windows)]
mod sys {
    /// The page size the pool cuts buffers in.
    pub fn page_size() -> usize {
        4096
    }

    /// `len` bytes of zeroed memory, leaked (never freed or reused).
    pub fn reserve(len: usize) -> usize {
        let region: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
        region.as_mut_ptr() as usize
    }

    /// Fills a dropped buffer's pages with [`super::POISON`].
    pub fn retire(ptr: *mut u8, len: usize) {
        // SAFETY: `ptr..ptr + len` lies in the leaked region, valid for the
        // whole run, and belonged to the buffer being dropped.
        unsafe { std::ptr::write_bytes(ptr, super::POISON, len) };
    }
}
