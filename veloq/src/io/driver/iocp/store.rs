//! `OpStore`: the memory IOCP ops live in while the kernel or a pool thread
//! may write them.
//!
//! The registry keeps what the driver thread alone reads and writes (waker,
//! output, cancel flag, keep-alive); the op bytes themselves — the
//! `OVERLAPPED`, the payload the kernel fills in, the pool's result — live
//! here, in cells that Rust code reaches only through raw pointers. No
//! `&mut` (and no `&` outside an `UnsafeCell`) ever covers an op while it
//! is `InKernel` or `Offloaded`: the registry slot holds an [`OpRef`], a
//! pointer, not the op.
//!
//! # Invariants
//!
//! - A page (`PAGE_SIZE` cells) is allocated once, never moved, and freed
//!   only when the store is dropped; a dropping driver that could not drain
//!   leaks the whole store instead (see `IocpDriver`'s `Drop`).
//! - A cell holds a live op exactly while one [`OpRef`] names it. The cell
//!   goes back to the free list only in `OpRef::drop`, after the op was
//!   dropped in place, and `OpRef::drop` refuses (aborts) to drop an op
//!   that is still in flight. So a cell is never reused, nor its op freed,
//!   while the kernel or a pool thread may still write it, whatever order
//!   the registry frees slots and runs hooks in.
//! - Cells are `UnsafeCell<MaybeUninit<IocpOp>>` and are reached through
//!   `UnsafeCell::raw_get` on a raw page pointer: even computing a cell's
//!   address creates no reference to it.
//! - The store itself is heap-allocated once (`Box::into_raw`) so that the
//!   `OpRef`s can point back to it while the driver moves; it is touched
//!   by the driver thread only (`OpStore` and `OpRef` are `!Send`).
//!
//! Steady state allocates nothing: the free list's capacity grows with the
//! pages, never on `alloc`/`release`.

use std::cell::{RefCell, UnsafeCell};
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};

use super::op::{IocpOp, OpState};

/// Cells per page.
const PAGE_SIZE: usize = 64;

type Cell = UnsafeCell<MaybeUninit<IocpOp>>;
type Page = [Cell; PAGE_SIZE];

/// Stable, raw-pointer-only storage for ops; see the module docs.
pub(crate) struct OpStore {
    /// Every page, never freed before the store.
    pages: RefCell<Vec<NonNull<Page>>>,
    /// Indices of cells that hold no op.
    free: RefCell<Vec<u32>>,
}

impl OpStore {
    /// An empty store on the heap; the caller owns it and frees it with
    /// [`OpStore::free_store`] (or leaks it).
    pub(crate) fn new_raw() -> NonNull<OpStore> {
        let store = Box::new(OpStore {
            pages: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
        });
        NonNull::from(Box::leak(store))
    }

    /// Frees a store made by [`new_raw`](Self::new_raw) and its pages.
    ///
    /// # Safety
    ///
    /// No [`OpRef`] into `store` is alive (every op was dropped), and
    /// `store` is not used again.
    pub(crate) unsafe fn free_store(store: NonNull<OpStore>) {
        // SAFETY: the caller guarantees nothing refers to the store any
        // more; it came from `Box::leak` in `new_raw`.
        let store = unsafe { Box::from_raw(store.as_ptr()) };
        for page in store.pages.borrow_mut().drain(..) {
            // SAFETY: each page came from `Box::leak` in `grow` and is
            // freed once, here; its cells hold no live op (the caller's
            // guarantee), and `MaybeUninit` drops nothing.
            drop(unsafe { Box::from_raw(page.as_ptr()) });
        }
    }

    /// Moves `op` into a free cell of `store` and returns the owning
    /// reference to it.
    ///
    /// # Safety
    ///
    /// `store` is a live store from [`new_raw`](Self::new_raw).
    pub(crate) unsafe fn alloc(store: NonNull<OpStore>, op: IocpOp) -> OpRef {
        // SAFETY: the caller guarantees the store is live; only shared
        // references to it are ever made.
        let this = unsafe { store.as_ref() };
        let popped = this.free.borrow_mut().pop();
        let index = match popped {
            Some(i) => i,
            None => this.grow(),
        };
        let cell = this.cell(index);
        // SAFETY: `cell` is free (it was on the free list, or new): no op
        // lives in it and nothing else points at it. Writing creates no
        // reference.
        unsafe { cell.write(op) };
        OpRef {
            // SAFETY: a cell pointer into a live page is never null.
            op: unsafe { NonNull::new_unchecked(cell) },
            index,
            store,
        }
    }

    /// Puts cell `index` back on the free list.
    fn release(&self, index: u32) {
        self.free.borrow_mut().push(index);
    }

    /// The address of cell `index`, without a reference to it.
    fn cell(&self, index: u32) -> *mut IocpOp {
        let index = index as usize;
        let page = self.pages.borrow()[index / PAGE_SIZE];
        // SAFETY: `index % PAGE_SIZE` is inside the page, which lives as
        // long as the store; `raw_get` turns the cell's address into a
        // pointer to its contents without creating a reference.
        unsafe {
            let cell = page.as_ptr().cast::<Cell>().add(index % PAGE_SIZE);
            UnsafeCell::raw_get(cell).cast()
        }
    }

    /// Adds a page; returns one of its cells (the rest go on the free
    /// list, lowest index last so that it is taken first).
    #[cold]
    fn grow(&self) -> u32 {
        let mut pages = self.pages.borrow_mut();
        let base = pages.len() * PAGE_SIZE;
        assert!(
            base + PAGE_SIZE <= u32::MAX as usize,
            "veloq: too many IOCP ops"
        );
        // SAFETY: every cell is an `UnsafeCell<MaybeUninit<_>>`, for which
        // uninitialised memory is a valid value.
        let page: Box<Page> = unsafe { Box::<Page>::new_uninit().assume_init() };
        pages.push(NonNull::from(Box::leak(page)));
        let mut free = self.free.borrow_mut();
        // Room for every cell there is: `release` never allocates.
        let have = free.len();
        free.reserve(pages.len() * PAGE_SIZE - have);
        free.extend((base + 1..base + PAGE_SIZE).rev().map(|i| i as u32));
        base as u32
    }
}

/// The one owner of an op in an [`OpStore`] cell; the registry's op type.
///
/// Dropping it drops the op in place (closing a handle the op still owns)
/// and frees the cell — and aborts instead if the op is still in flight.
pub(crate) struct OpRef {
    op: NonNull<IocpOp>,
    index: u32,
    store: NonNull<OpStore>,
}

impl OpRef {
    /// The op. Dereference it only as the module docs of `iocp` allow: a
    /// reference to the whole op only while it is neither `InKernel` nor
    /// `Offloaded`.
    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut IocpOp {
        self.op.as_ptr()
    }

    /// The op's state. The state is written by the driver thread only, so
    /// reading it is sound in every state.
    #[inline]
    pub(crate) fn state(&self) -> OpState {
        // SAFETY: the op is live while `self` is; the read goes through
        // the raw pointer to this one field, which the kernel and the pool
        // never write.
        unsafe { (*self.as_ptr()).header.state }
    }
}

impl Drop for OpRef {
    fn drop(&mut self) {
        if matches!(
            self.state(),
            OpState::InKernel | OpState::Offloaded | OpState::Finished
        ) {
            // Freeing this cell would let the kernel (or a pool thread)
            // write into whatever reuses it, or (`Finished`) leave a
            // queued packet pointing at it. The driver never does this;
            // if a bug ever makes it, stop before memory is corrupted.
            eprintln!("veloq: IOCP op dropped while in flight; aborting");
            std::process::abort();
        }
        // SAFETY: the op is live and not in flight: nothing but this
        // `OpRef` reaches it. It is dropped once, here.
        unsafe { ptr::drop_in_place(self.as_ptr()) };
        // SAFETY: the store outlives every `OpRef` (the driver drops or
        // leaks its registry before the store).
        unsafe { self.store.as_ref() }.release(self.index);
    }
}
