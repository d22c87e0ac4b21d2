//! One level of the timer wheel: 64 slot lists and the bitfield that says
//! which of them hold timers.
//!
//! A slot's list is threaded through the wheel's entry store by index (see
//! `entries.rs`); the level keeps only each list's head. Bit `s` of
//! `occupied` is set exactly when slot `s`'s list is non-empty, so the next
//! slot with work is found with one `trailing_zeros`.

use super::entries::NIL;

/// Slots per level.
pub(super) const SLOTS: usize = 64;

/// log2(`SLOTS`): how many tick bits one level covers.
pub(super) const SLOT_BITS: u32 = 6;

/// Levels in the wheel.
pub(super) const LEVELS: usize = 6;

/// One level: slot list heads plus the occupied bitfield.
pub(super) struct Level {
    /// Bit `s` set ⇔ `heads[s] != NIL`.
    occupied: u64,
    /// Head entry index of each slot's list, or `NIL`.
    heads: [u32; SLOTS],
}

impl Level {
    /// An empty level.
    pub(super) const fn new() -> Self {
        Level {
            occupied: 0,
            heads: [NIL; SLOTS],
        }
    }

    /// The head of slot `slot`'s list (`NIL` when empty).
    pub(super) fn head(&self, slot: usize) -> u32 {
        self.heads[slot]
    }

    /// Sets slot `slot`'s head, keeping `occupied` in step.
    pub(super) fn set_head(&mut self, slot: usize, head: u32) {
        self.heads[slot] = head;
        if head == NIL {
            self.occupied &= !(1 << slot);
        } else {
            self.occupied |= 1 << slot;
        }
    }

    /// Empties slot `slot` and returns its former head.
    pub(super) fn take(&mut self, slot: usize) -> u32 {
        let head = self.heads[slot];
        self.set_head(slot, NIL);
        head
    }

    /// The first occupied slot after `digit` (strictly greater), if any.
    pub(super) fn next_occupied_after(&self, digit: usize) -> Option<usize> {
        if digit + 1 >= SLOTS {
            return None;
        }
        let ahead = self.occupied & (u64::MAX << (digit + 1));
        (ahead != 0).then(|| ahead.trailing_zeros() as usize)
    }

    /// Whether any slot at or before `digit` is occupied (an invariant
    /// violation; used by debug assertions).
    pub(super) fn occupied_at_or_before(&self, digit: usize) -> bool {
        let mask = if digit + 1 >= SLOTS {
            u64::MAX
        } else {
            (1u64 << (digit + 1)) - 1
        };
        self.occupied & mask != 0
    }
}

/// Tick bits below level `level` plus the level's own bits: the span of one
/// full rotation of `level`.
pub(super) fn rotation_mask(level: usize) -> u64 {
    let bits = SLOT_BITS * (level as u32 + 1);
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// The slot of tick `tick` at level `level`.
pub(super) fn slot_of(tick: u64, level: usize) -> usize {
    ((tick >> (SLOT_BITS * level as u32)) & (SLOTS as u64 - 1)) as usize
}

/// The level a timer due at `tick` belongs to while the wheel stands at
/// `elapsed` (`tick > elapsed`), or `None` when it lies beyond the top
/// level's current rotation (the overflow list).
///
/// It is the level of the highest tick bit in which the two differ: the
/// bits above it are equal, so the timer's slot at that level is strictly
/// ahead of the wheel's current slot there.
pub(super) fn level_for(elapsed: u64, tick: u64) -> Option<usize> {
    let differ = (elapsed ^ tick) | (SLOTS as u64 - 1);
    let highest = 63 - differ.leading_zeros();
    let level = (highest / SLOT_BITS) as usize;
    (level < LEVELS).then_some(level)
}

/// First tick of slot `slot` at level `level` in the rotation `elapsed`
/// is in.
pub(super) fn slot_start(elapsed: u64, level: usize, slot: usize) -> u64 {
    (elapsed & !rotation_mask(level)) | ((slot as u64) << (SLOT_BITS * level as u32))
}

/// First tick after the top level's current rotation: when the overflow
/// list is next re-examined.
pub(super) fn next_rotation_start(elapsed: u64) -> u64 {
    (elapsed | rotation_mask(LEVELS - 1)).saturating_add(1)
}
