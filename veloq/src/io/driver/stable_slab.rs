//! `StableSlab`: a slab whose elements never move.
//!
//! The kernel holds raw pointers into in-flight ops (an `OVERLAPPED`, a
//! `sockaddr`, an `iovec`) until it reports their completion, so the memory
//! that holds an op must not move while the op lives — not even when the
//! slab grows. A `Vec<T>` reallocates on growth; this slab instead allocates
//! fixed-size pages and never frees or moves one while the slab lives.
//!
//! # Invariants
//!
//! - Index `i` lives in page `i / PAGE_SIZE` at offset `i % PAGE_SIZE`.
//! - A page, once allocated, stays at the same heap address until the slab
//!   is dropped; growing pushes a new page (moving only the `Box` pointers
//!   in `pages`, never the entries they point to).
//! - Vacant entries form a singly linked free list through `next_free`;
//!   `insert` pops its head, `remove` pushes onto it, both O(1).

use std::mem;

/// Entries per page.
pub(crate) const PAGE_SIZE: usize = 64;

/// Marks the end of the free list.
const NONE: usize = usize::MAX;

enum Entry<T> {
    Occupied(T),
    Vacant { next_free: usize },
}

/// A slab of `T` with stable element addresses; see the module docs.
pub(crate) struct StableSlab<T> {
    pages: Vec<Box<[Entry<T>]>>,
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
    #[cfg_attr(windows, allow(dead_code))] // read by the Linux drivers
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Number of entries the allocated pages hold.
    pub(crate) fn capacity(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }

    /// Stores `value` and returns its index. Reuses the most recently freed
    /// entry; allocates a new page only when every entry is occupied.
    pub(crate) fn insert(&mut self, value: T) -> usize {
        if self.free_head == NONE {
            self.grow();
        }
        let index = self.free_head;
        let entry = self
            .entry_mut(index)
            .expect("free list points past the pages");
        let next_free = match entry {
            Entry::Vacant { next_free } => *next_free,
            Entry::Occupied(_) => unreachable!("free list points at an occupied entry"),
        };
        *entry = Entry::Occupied(value);
        self.free_head = next_free;
        self.len += 1;
        index
    }

    /// The value at `index`, if occupied.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        let page = self.pages.get(index / PAGE_SIZE)?;
        match &page[index % PAGE_SIZE] {
            Entry::Occupied(v) => Some(v),
            Entry::Vacant { .. } => None,
        }
    }

    /// The value at `index`, mutably, if occupied. Its address is the same
    /// on every call until it is removed.
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        match self.entry_mut(index)? {
            Entry::Occupied(v) => Some(v),
            Entry::Vacant { .. } => None,
        }
    }

    /// Takes the value at `index` out, freeing the entry for reuse.
    pub(crate) fn remove(&mut self, index: usize) -> Option<T> {
        let free_head = self.free_head;
        let entry = self.entry_mut(index)?;
        if let Entry::Vacant { .. } = entry {
            return None;
        }
        let old = mem::replace(
            entry,
            Entry::Vacant {
                next_free: free_head,
            },
        );
        self.free_head = index;
        self.len -= 1;
        match old {
            Entry::Occupied(v) => Some(v),
            Entry::Vacant { .. } => unreachable!(),
        }
    }

    /// Indices of all occupied entries, in index order.
    pub(crate) fn occupied(&self) -> impl Iterator<Item = usize> + '_ {
        self.pages.iter().enumerate().flat_map(|(p, page)| {
            page.iter().enumerate().filter_map(move |(i, e)| match e {
                Entry::Occupied(_) => Some(p * PAGE_SIZE + i),
                Entry::Vacant { .. } => None,
            })
        })
    }

    fn entry_mut(&mut self, index: usize) -> Option<&mut Entry<T>> {
        self.pages
            .get_mut(index / PAGE_SIZE)
            .map(|page| &mut page[index % PAGE_SIZE])
    }

    /// Appends one page and threads its entries onto the free list, lowest
    /// index first.
    fn grow(&mut self) {
        let base = self.capacity();
        let head = self.free_head;
        let page: Box<[Entry<T>]> = (0..PAGE_SIZE)
            .map(|i| Entry::Vacant {
                next_free: if i + 1 < PAGE_SIZE {
                    base + i + 1
                } else {
                    head
                },
            })
            .collect();
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
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.get(a), Some(&"a"));
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None, "double remove must not succeed");
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn freed_entries_are_reused() {
        let mut slab = StableSlab::new();
        let a = slab.insert(1);
        slab.insert(2);
        slab.remove(a);
        assert_eq!(slab.insert(3), a);
        assert_eq!(slab.capacity(), PAGE_SIZE);
    }

    #[test]
    fn addresses_stay_put_across_growth() {
        let mut slab = StableSlab::new();
        let first = slab.insert(0u64);
        let addr = slab.get(first).unwrap() as *const u64;
        for i in 1..(PAGE_SIZE as u64 * 10) {
            slab.insert(i);
        }
        assert_eq!(slab.capacity(), PAGE_SIZE * 10);
        assert_eq!(slab.get(first).unwrap() as *const u64, addr);
        // Every element is where its index says, with its own value.
        for i in 0..PAGE_SIZE * 10 {
            assert_eq!(*slab.get(i).unwrap(), i as u64);
        }
    }

    #[test]
    fn occupied_lists_live_indices() {
        let mut slab = StableSlab::new();
        for i in 0..PAGE_SIZE + 3 {
            slab.insert(i);
        }
        slab.remove(1);
        slab.remove(PAGE_SIZE);
        let live: Vec<usize> = slab.occupied().collect();
        assert_eq!(live.len(), PAGE_SIZE + 1);
        assert!(!live.contains(&1) && !live.contains(&PAGE_SIZE));
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
            slab.remove(5);
            assert_eq!(Rc::strong_count(&counter), 100);
        }
        assert_eq!(Rc::strong_count(&counter), 1);
    }
}
