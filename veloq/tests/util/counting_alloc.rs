//! A global allocator that counts every allocation in the process, for the
//! tests that prove a steady state allocates nothing (`alloc.rs`,
//! `compat_alloc.rs`). Included by path (not through `util`), so only those
//! test binaries install it:
//!
//! ```ignore
//! #[path = "util/counting_alloc.rs"]
//! mod counting_alloc;
//! #[global_allocator]
//! static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Forwards to the system allocator and counts allocations (including
/// zeroed ones and reallocations; frees are not counted).
pub struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is a lock-free atomic, so counting cannot allocate or recurse.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations so far, on every thread.
pub fn allocations() -> u64 {
    ALLOCS.load(Ordering::SeqCst)
}

/// Panics unless this allocator is the one in use (so that a count of
/// zero means something).
pub fn assert_counting() {
    let probe = allocations();
    drop(std::hint::black_box(vec![1u8; 16]));
    assert!(
        allocations() > probe,
        "the counting allocator is not in use"
    );
}
