//! The timer wheel's entry store: a slab of timers addressed by index, with
//! a generation per entry so a key outliving its timer is recognised.
//!
//! Each pending entry sits in exactly one list (a wheel slot or the
//! overflow list), doubly linked through `prev`/`next` indices, so it can
//! be unlinked in O(1) without searching. Vacant entries form a singly
//! linked free list through the same `next` field.
//!
//! # Entry states
//!
//! ```text
//! alloc ─► Pending(slot) ──expire──► Pending(Due) ──woken──► Fired
//!             │                          │                     │
//!           remove                  poll/remove           poll/remove
//!             ▼                          ▼                     ▼
//!           Vacant                     Vacant                Vacant
//! ```
//!
//! A `Due` entry has reached its tick but its waker has not been called
//! yet; it counts as fired (`poll` is `Ready`).
//!
//! The generation is bumped every time an entry becomes vacant.

use std::task::Waker;

/// "No entry" in list links and list heads.
pub(super) const NIL: u32 = u32::MAX;

/// Where a pending entry is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Location {
    /// In slot `slot` of level `level`.
    Slot { level: u8, slot: u8 },
    /// In the overflow list (beyond the top level's rotation).
    Overflow,
    /// Due: in the list of timers whose wakers `expire` is about to call.
    Due,
}

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Free; `next` links the free list.
    Vacant,
    /// Waiting in a list at this location.
    Pending(Location),
    /// Fired; waits for its owner to poll or remove it.
    Fired,
}

/// One timer.
pub(super) struct Entry {
    /// Bumped each time the entry is freed.
    pub(super) generation: u32,
    /// Due tick (whole milliseconds since the wheel's start, rounded up).
    pub(super) tick: u64,
    /// Woken when the timer fires.
    pub(super) waker: Option<Waker>,
    /// Previous entry in the same list, or `NIL`.
    pub(super) prev: u32,
    /// Next entry in the same list (or in the free list), or `NIL`.
    pub(super) next: u32,
    /// See the module docs.
    pub(super) state: State,
}

/// The slab of entries.
pub(super) struct Entries {
    slots: Vec<Entry>,
    free_head: u32,
}

impl Entries {
    /// An empty store.
    pub(super) const fn new() -> Self {
        Entries {
            slots: Vec::new(),
            free_head: NIL,
        }
    }

    /// Takes a vacant entry (reusing the most recently freed one), fills it
    /// and returns its index and generation. The entry is not yet linked
    /// anywhere; the caller sets its state.
    pub(super) fn alloc(&mut self, tick: u64, waker: Option<Waker>) -> (u32, u32) {
        let index = if self.free_head != NIL {
            let index = self.free_head;
            self.free_head = self.slots[index as usize].next;
            index
        } else {
            let index = u32::try_from(self.slots.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("veloq: more than 4 billion live timers");
            self.slots.push(Entry {
                generation: 0,
                tick: 0,
                waker: None,
                prev: NIL,
                next: NIL,
                state: State::Vacant,
            });
            index
        };
        let entry = &mut self.slots[index as usize];
        entry.tick = tick;
        entry.waker = waker;
        entry.prev = NIL;
        entry.next = NIL;
        (index, entry.generation)
    }

    /// Frees entry `index` (which must not be linked in a slot list),
    /// bumping its generation; returns its waker.
    pub(super) fn free(&mut self, index: u32) -> Option<Waker> {
        let entry = &mut self.slots[index as usize];
        debug_assert!(!matches!(entry.state, State::Pending(_) | State::Vacant));
        entry.generation = entry.generation.wrapping_add(1);
        entry.state = State::Vacant;
        entry.prev = NIL;
        entry.next = self.free_head;
        self.free_head = index;
        entry.waker.take()
    }

    /// The live (pending or fired) entry `index` if its generation matches.
    pub(super) fn live(&mut self, index: u32, generation: u32) -> Option<&mut Entry> {
        let entry = self.slots.get_mut(index as usize)?;
        (entry.generation == generation && entry.state != State::Vacant).then_some(entry)
    }

    /// Entry `index`, whatever its state.
    pub(super) fn at(&mut self, index: u32) -> &mut Entry {
        &mut self.slots[index as usize]
    }

    /// Links entry `index` at the front of the list whose head is `head`.
    pub(super) fn push_front(&mut self, head: &mut u32, index: u32) {
        let old = *head;
        {
            let entry = self.at(index);
            entry.prev = NIL;
            entry.next = old;
        }
        if old != NIL {
            self.at(old).prev = index;
        }
        *head = index;
    }

    /// Unlinks entry `index` from the list whose head is `head`.
    pub(super) fn unlink(&mut self, head: &mut u32, index: u32) {
        let (prev, next) = {
            let entry = self.at(index);
            let links = (entry.prev, entry.next);
            entry.prev = NIL;
            entry.next = NIL;
            links
        };
        if prev == NIL {
            debug_assert_eq!(*head, index, "unlinked entry is not its list's head");
            *head = next;
        } else {
            self.at(prev).next = next;
        }
        if next != NIL {
            self.at(next).prev = prev;
        }
    }
}
