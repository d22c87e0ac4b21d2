//! `StableSlab`: a generational slab whose elements never move.
//!
//! The kernel holds raw pointers into in-flight ops (an `OVERLAPPED`, a
//! `sockaddr`, an `iovec`) until it reports their completion, so the memory
//! that holds an op must not move while the op lives — not even when the
//! slab grows. A `Vec<T>` reallocates on growth; this slab instead allocates
//! fixed-size pages and never frees or moves one while the slab lives.
//!
//! Every entry carries a *generation*, bumped each time the entry is freed,
//! so a handle (`index`, `generation`) to a freed entry never reaches the
//! value that later reuses it. Lookups check index and generation in one
//! go, next to the value.
//!
//! # Invariants
//!
//! - Index `i` lives in page `i / PAGE_SIZE` at offset `i % PAGE_SIZE`.
//! - A page, once allocated, stays at the same heap address until the slab
//!   is dropped; growing pushes a new page (moving only the `Box` pointers
//!   in `pages`, never the entries they point to).
//! - Vacant entries form a singly linked free list through `next_free`;
//!   `insert` pops its head, `remove`/`free` push onto it, both O(1).
//! - Generations wrap within [`GENERATION_MASK`] (31 bits), so a handle
//!   packs with a 32-bit index into 63 bits.
//! - Values are built and dropped in place ([`insert_with`](StableSlab::insert_with),
//!   [`free`](StableSlab::free)): the hot path never moves a whole value.
//!   Bookkeeping (free list, length, generation) is updated *before* a
//!   value's destructor runs, so a panicking destructor leaves the slab
//!   consistent (the entry is vacant either way).

use std::mem;

/// Entries per page.
pub(crate) const PAGE_SIZE: usize = 64;

/// Generations wrap within 31 bits (see the module docs).
pub(crate) const GENERATION_MASK: u32 = (1 << 31) - 1;

/// Marks the end of the free list.
const NONE: usize = usize::MAX;

enum Slot<T> {
    Occupied(T),
    Vacant { next_free: usize },
}

struct Entry<T> {
    generation: u32,
    slot: Slot<T>,
}

/// A slab of `T` with stable element addresses and generation-checked
/// handles; see the module docs.
pub(crate) struct StableSlab<T> {
    pages: Vec<Box<[Entry<T>; PAGE_SIZE]>>,
    free_head: usize,
    len: usize,
}

impl<T> StableSlab<T> {
    /// Creates an empty slab; no page is allocated until the first insert.
    pub(crate) const fn new() -> Self {
        StableSlab {
            pages: Vec::new(),
            free_head: NONE,
            len: 0,
        }
    }

    /// Number of occupied entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Number of entries the allocated pages hold.
    pub(crate) fn capacity(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }

    /// Stores `value`; returns its index and generation.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, value: T) -> (usize, u32) {
        self.insert_with(|| value)
    }

    /// Stores the value `make` builds, written straight into its entry;
    /// returns its index and generation. Reuses the most recently freed
    /// entry; allocates a new page only when every entry is occupied.
    #[inline]
    pub(crate) fn insert_with(&mut self, make: impl FnOnce() -> T) -> (usize, u32) {
        let (index, generation, _) = self.insert_with_mut(make);
        (index, generation)
    }

    /// As [`insert_with`](Self::insert_with), also handing back the stored
    /// value (so a caller that fills it further needs no second lookup).
    #[inline]
    pub(crate) fn insert_with_mut(&mut self, make: impl FnOnce() -> T) -> (usize, u32, &mut T) {
        if self.free_head == NONE {
            self.grow();
        }
        let index = self.free_head;
        // Borrows only `pages`, so the free list stays writable below.
        let entry = self
            .pages
            .get_mut(index / PAGE_SIZE)
            .map(|page| &mut page[index % PAGE_SIZE])
            .expect("free list points past the pages");
        let Slot::Vacant { next_free } = entry.slot else {
            unreachable!("free list points at an occupied entry")
        };
        let generation = entry.generation;
        // A vacant slot has nothing to drop.
        // The entry is vacant (nothing to drop): forgetting what it held
        // spares the out-of-line drop glue an assignment would call.
        mem::forget(mem::replace(&mut entry.slot, Slot::Occupied(make())));
        let Slot::Occupied(value) = &mut entry.slot else {
            unreachable!("occupied just above")
        };
        self.free_head = next_free;
        self.len += 1;
        (index, generation, value)
    }

    /// The value at `index`, if occupied under `generation`.
    #[cfg(test)]
    pub(crate) fn get(&self, index: usize, generation: u32) -> Option<&T> {
        let entry = &self.pages.get(index / PAGE_SIZE)?[index % PAGE_SIZE];
        match &entry.slot {
            Slot::Occupied(v) if entry.generation == generation => Some(v),
            _ => None,
        }
    }

    /// The value at `index`, mutably, if occupied under `generation`. Its
    /// address is the same on every call until it is removed.
    #[inline]
    pub(crate) fn get_mut(&mut self, index: usize, generation: u32) -> Option<&mut T> {
        let entry = self.entry_mut(index)?;
        match &mut entry.slot {
            Slot::Occupied(v) if entry.generation == generation => Some(v),
            _ => None,
        }
    }

    /// Takes the value at `index` out (if occupied under `generation`),
    /// freeing the entry for reuse under the next generation.
    pub(crate) fn remove(&mut self, index: usize, generation: u32) -> Option<T> {
        let next_free = self.free_head;
        let entry = self.vacate(index, generation)?;
        match mem::replace(&mut entry.slot, Slot::Vacant { next_free }) {
            Slot::Occupied(v) => Some(v),
            Slot::Vacant { .. } => unreachable!("checked by vacate"),
        }
    }

    /// Drops the value at `index` in place (if occupied under
    /// `generation`), freeing the entry for reuse under the next
    /// generation. Returns whether there was such a value.
    #[inline]
    pub(crate) fn free(&mut self, index: usize, generation: u32) -> bool {
        let next_free = self.free_head;
        let Some(entry) = self.vacate(index, generation) else {
            return false;
        };
        // Drops the value where it lies; should its destructor panic, the
        // entry is still made vacant (assignment semantics) and `vacate`
        // already counted it free.
        entry.slot = Slot::Vacant { next_free };
        true
    }

    /// If `index` is occupied under `generation`: bumps its generation,
    /// makes it the free list's head and returns it. The caller must then
    /// make it vacant, linked to the previous head.
    /// Runs `take` on the value at `index` if it is occupied under
    /// `generation`; when `take` returns `Some`, frees the entry as
    /// [`free`](Self::free) does (the value dropped in place), all in one
    /// lookup. `None` for a stale handle; `Some(None)` when `take` kept
    /// the value.
    #[inline]
    pub(crate) fn take_with<R>(
        &mut self,
        index: usize,
        generation: u32,
        take: impl FnOnce(&mut T) -> Option<R>,
    ) -> Option<Option<R>> {
        let next_free = self.free_head;
        // Borrows only `pages`, so the free list stays writable below.
        let entry = self
            .pages
            .get_mut(index / PAGE_SIZE)
            .map(|page| &mut page[index % PAGE_SIZE])?;
        let Slot::Occupied(value) = &mut entry.slot else {
            return None;
        };
        if entry.generation != generation {
            return None;
        }
        let Some(taken) = take(value) else {
            return Some(None);
        };
        entry.generation = generation.wrapping_add(1) & GENERATION_MASK;
        entry.slot = Slot::Vacant { next_free };
        self.free_head = index;
        self.len -= 1;
        Some(Some(taken))
    }

    #[inline]
    fn vacate(&mut self, index: usize, generation: u32) -> Option<&mut Entry<T>> {
        let entry = &mut self.pages.get_mut(index / PAGE_SIZE)?[index % PAGE_SIZE];
        if entry.generation != generation || matches!(entry.slot, Slot::Vacant { .. }) {
            return None;
        }
        entry.generation = generation.wrapping_add(1) & GENERATION_MASK;
        self.free_head = index;
        self.len -= 1;
        Some(entry)
    }

    /// Index and generation of every occupied entry, in index order.
    pub(crate) fn occupied(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.pages.iter().enumerate().flat_map(|(p, page)| {
            page.iter()
                .enumerate()
                .filter_map(move |(i, e)| match e.slot {
                    Slot::Occupied(_) => Some((p * PAGE_SIZE + i, e.generation)),
                    Slot::Vacant { .. } => None,
                })
        })
    }

    /// Sets the generation of the (occupied) entry at `index` (tests of
    /// the wrap-around).
    #[cfg(test)]
    pub(crate) fn set_generation(&mut self, index: usize, generation: u32) {
        self.entry_mut(index).expect("index in range").generation = generation;
    }

    #[inline]
    fn entry_mut(&mut self, index: usize) -> Option<&mut Entry<T>> {
        // A page is an array, so the offset needs no bounds check.
        self.pages
            .get_mut(index / PAGE_SIZE)
            .map(|page| &mut page[index % PAGE_SIZE])
    }

    /// Appends one page and threads its entries onto the free list, lowest
    /// index first.
    #[cold]
    fn grow(&mut self) {
        let base = self.capacity();
        let head = self.free_head;
        let page: Box<[Entry<T>]> = (0..PAGE_SIZE)
            .map(|i| Entry {
                generation: 0,
                slot: Slot::Vacant {
                    next_free: if i + 1 < PAGE_SIZE {
                        base + i + 1
                    } else {
                        head
                    },
                },
            })
            .collect();
        let page: Box<[Entry<T>; PAGE_SIZE]> = match page.try_into() {
            Ok(page) => page,
            Err(_) => unreachable!("a page has PAGE_SIZE entries"),
        };
        self.pages.push(page);
        self.free_head = base;
    }
}

impl<T> Default for StableSlab<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove() {
        let mut slab = StableSlab::new();
        let (a, ga) = slab.insert("a");
        let (b, gb) = slab.insert("b");
        assert_eq!(slab.get(a, ga), Some(&"a"));
        assert_eq!(slab.get(b, gb), Some(&"b"));
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.remove(a, ga), Some("a"));
        assert_eq!(slab.remove(a, ga), None, "double remove must not succeed");
        assert_eq!(slab.get(a, ga), None);
        assert_eq!(slab.len(), 1);
        assert!(slab.free(b, gb));
        assert!(!slab.free(b, gb), "double free must not succeed");
        assert_eq!(slab.len(), 0);
    }

    #[test]
    fn freed_entries_are_reused_under_a_new_generation() {
        let mut slab = StableSlab::new();
        let (a, ga) = slab.insert(1);
        slab.insert(2);
        assert!(slab.free(a, ga));
        let (again, g2) = slab.insert(3);
        assert_eq!(again, a);
        assert_ne!(g2, ga);
        assert_eq!(slab.get(a, ga), None, "stale handle must miss");
        assert_eq!(slab.get_mut(a, ga), None);
        assert!(!slab.free(a, ga));
        assert_eq!(slab.remove(a, ga), None);
        assert_eq!(slab.get(a, g2), Some(&3));
        assert_eq!(slab.capacity(), PAGE_SIZE);
    }

    #[test]
    fn take_with_frees_only_when_taken_and_only_live_handles() {
        let mut slab = StableSlab::new();
        let (a, ga) = slab.insert(vec![1u8]);
        let (b, _) = slab.insert(vec![2u8]);
        // Kept: the value stays, and may be changed in place.
        assert_eq!(
            slab.take_with(a, ga, |v| {
                v.push(9);
                None::<()>
            }),
            Some(None)
        );
        assert_eq!(slab.get(a, ga), Some(&vec![1, 9]));
        assert_eq!(slab.len(), 2);
        // Taken: the entry is freed under a new generation and reused next.
        assert_eq!(slab.take_with(a, ga, |v| Some(v.len())), Some(Some(2)));
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.get(a, ga), None);
        assert_eq!(slab.take_with(a, ga, |_| Some(())), None, "stale handle");
        let (again, g2) = slab.insert(vec![3]);
        assert_eq!(again, a);
        assert_ne!(g2, ga);
        assert_eq!(
            slab.get(b, 0),
            Some(&vec![2]),
            "the other entry is untouched"
        );
        assert_eq!(slab.take_with(99, 0, |_| Some(())), None, "out of range");
    }

    #[test]
    fn generations_wrap_within_the_mask() {
        let mut slab = StableSlab::new();
        let (a, _) = slab.insert(1);
        slab.set_generation(a, GENERATION_MASK);
        assert!(slab.free(a, GENERATION_MASK));
        assert_eq!(slab.insert(2), (a, 0));
    }

    #[test]
    fn addresses_stay_put_across_growth() {
        let mut slab = StableSlab::new();
        let (first, g) = slab.insert(0u64);
        let addr = slab.get(first, g).unwrap() as *const u64;
        for i in 1..(PAGE_SIZE as u64 * 10) {
            slab.insert(i);
        }
        assert_eq!(slab.capacity(), PAGE_SIZE * 10);
        assert_eq!(slab.get(first, g).unwrap() as *const u64, addr);
        // Every element is where its index says, with its own value.
        for i in 0..PAGE_SIZE * 10 {
            assert_eq!(*slab.get(i, 0).unwrap(), i as u64);
        }
    }

    #[test]
    fn occupied_lists_live_entries() {
        let mut slab = StableSlab::new();
        for i in 0..PAGE_SIZE + 3 {
            slab.insert(i);
        }
        slab.remove(1, 0);
        slab.free(PAGE_SIZE, 0);
        let (again, g) = slab.insert(7);
        let live: Vec<(usize, u32)> = slab.occupied().collect();
        assert_eq!((again, g), (PAGE_SIZE, 1), "the last freed entry is reused");
        assert_eq!(live.len(), PAGE_SIZE + 2);
        assert!(!live.iter().any(|&(i, _)| i == 1));
        assert!(live.contains(&(PAGE_SIZE, 1)) && live.contains(&(2, 0)));
    }

    #[test]
    fn drop_runs_destructors_of_live_values() {
        use std::rc::Rc;
        let counter = Rc::new(());
        {
            let mut slab = StableSlab::new();
            for _ in 0..100 {
                slab.insert(counter.clone());
            }
            slab.remove(5, 0);
            assert_eq!(Rc::strong_count(&counter), 100);
            assert!(slab.free(6, 0));
            assert_eq!(Rc::strong_count(&counter), 99, "free drops in place");
        }
        assert_eq!(Rc::strong_count(&counter), 1);
    }

    #[test]
    fn a_panicking_destructor_leaves_the_entry_free() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("boom");
            }
        }
        let mut slab = StableSlab::new();
        let (a, g) = slab.insert(Bomb);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slab.free(a, g)));
        assert!(caught.is_err());
        assert_eq!(slab.len(), 0);
        assert!(slab.get(a, g).is_none());
        let (again, _) = slab.insert_with(|| Bomb);
        assert_eq!(again, a, "the entry went back on the free list");
        std::mem::forget(slab);
    }
}
