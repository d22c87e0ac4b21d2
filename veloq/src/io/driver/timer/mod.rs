//! Hierarchical timer wheel: the driver's timers.
//!
//! Every driver owns one `TimerWheel`. `time::Sleep` inserts a timer and
//! polls it; the driver bounds each `wait` by [`TimerWheel::next_deadline`]
//! and calls [`TimerWheel::expire`] after it, which wakes every timer that
//! is due.
//!
//! # Time
//!
//! The wheel counts *ticks* of 1 ms since the `Instant` it was created
//! with. A deadline is rounded **up** to the next whole tick, and a tick
//! counts as reached only once `now` is at or past it, so a timer never
//! fires before its deadline; it fires at most one tick (plus however long
//! the driver takes to come back from its wait) after it.
//!
//! # Levels
//!
//! Six levels of 64 slots. A slot at level `n` spans `64^n` ticks, so one
//! rotation of level `n` spans `64^(n+1)` ticks:
//!
//! ```text
//! level  slot width        one rotation (64 slots)
//!   0    1 ms              64 ms
//!   1    64 ms             ~4.1 s
//!   2    ~4.1 s            ~4.5 min
//!   3    ~4.5 min          ~4.8 h
//!   4    ~4.8 h            ~12.7 days
//!   5    ~12.7 days        ~2.2 years
//! ```
//!
//! A timer due at tick `t`, while the wheel stands at tick `elapsed`, goes
//! to the level of the highest bit in which `t` and `elapsed` differ
//! (`level_for`), in slot `(t >> 6·level) & 63`. All higher bits are
//! equal, so that slot lies strictly ahead of the wheel's current slot at
//! that level and no slot ever holds timers from two rotations. Timers
//! beyond the top level's current rotation (more than ~2.2 years out) wait
//! in an overflow list that is re-examined when that rotation ends.
//!
//! When the wheel reaches the first tick of an occupied slot, the slot is
//! emptied: timers due at that tick fire, the rest move to a lower level
//! (a *cascade*). Each level keeps an `occupied` bitfield, so finding the
//! next slot with work is one `trailing_zeros` per level.
//!
//! Firing is two-phase: due timers are first moved to a FIFO *due* list
//! with no foreign code running, then their wakers are called one by one,
//! each taken off the list first. A waker that panics thus leaves every
//! other timer linked where it belongs; the next `expire` wakes the rest of
//! the due list (and `next_deadline` says it is due at once).
//!
//! # Invariants
//!
//! - Every pending timer is linked in exactly one list (a slot, the
//!   overflow list or the due list) and its `Location` says which.
//! - At every level, occupied slots are strictly after the wheel's current
//!   slot at that level (in the current rotation).
//! - `elapsed` never moves past the first tick of an occupied slot without
//!   that slot being processed.
//!
//! # Costs
//!
//! `insert` and `remove` are O(1); `next_deadline` is O(levels); `expire`
//! is O(timers fired + timers cascaded). A timer cascades at most once per
//! level. No heap allocation happens once the entry store has grown to the
//! peak number of live timers.

mod entries;
mod level;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use entries::{Entries, Location, State, NIL};
use level::{Level, LEVELS};

/// Due ticks are clamped to this (about 146 million years), so tick
/// arithmetic can never overflow.
const MAX_TICK: u64 = u64::MAX >> 2;

/// Identifies one timer in the wheel.
///
/// ```text
///  63                  32 31                   0
/// +----------------------+----------------------+
/// | generation (32 bit)  | entry index (32 bit) |
/// +----------------------+----------------------+
/// ```
///
/// A key whose generation no longer matches its entry is *stale*: the
/// timer it named has fired and been consumed, or was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey(pub(crate) u64);

impl TimerKey {
    fn new(index: u32, generation: u32) -> Self {
        TimerKey(((generation as u64) << 32) | index as u64)
    }

    fn index(self) -> u32 {
        self.0 as u32
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// Hierarchical timer wheel; see the module docs.
pub(crate) struct TimerWheel {
    /// Tick 0.
    start: Instant,
    /// The tick the wheel has processed up to: every timer due at or
    /// before it has fired.
    elapsed: u64,
    levels: [Level; LEVELS],
    /// Head of the overflow list.
    overflow: u32,
    /// Head and tail of the due list (fired, waker not called yet).
    due_head: u32,
    due_tail: u32,
    entries: Entries,
    /// Timers inserted and neither fired nor removed.
    pending: usize,
}

impl TimerWheel {
    /// A wheel whose tick 0 is `start`.
    pub(crate) fn new(start: Instant) -> Self {
        TimerWheel {
            start,
            elapsed: 0,
            levels: [const { Level::new() }; LEVELS],
            overflow: NIL,
            due_head: NIL,
            due_tail: NIL,
            entries: Entries::new(),
            pending: 0,
        }
    }

    /// Adds a timer that wakes `waker` at `deadline`.
    ///
    /// A deadline the wheel has already passed fires at once: `waker` is
    /// woken before this returns and the next `poll` is `Ready`.
    pub(crate) fn insert(&mut self, deadline: Instant, waker: &Waker) -> TimerKey {
        let tick = self.tick_at_or_after(deadline);
        let (index, generation) = self.entries.alloc(tick, Some(waker.clone()));
        if tick <= self.elapsed {
            self.entries.at(index).state = State::Fired;
            waker.wake_by_ref();
        } else {
            self.pending += 1;
            self.link(index);
        }
        TimerKey::new(index, generation)
    }

    /// `Ready` once the timer has fired, freeing its entry (the key is stale
    /// from then on); otherwise stores `cx`'s waker (unless it would wake
    /// the same task already) and returns `Pending`.
    ///
    /// A stale key is `Ready`: there is nothing left to wait for.
    pub(crate) fn poll(&mut self, key: TimerKey, cx: &mut Context<'_>) -> Poll<()> {
        let Some(entry) = self.entries.live(key.index(), key.generation()) else {
            return Poll::Ready(());
        };
        match entry.state {
            State::Fired => {
                self.entries.free(key.index());
                Poll::Ready(())
            }
            State::Pending(Location::Due) => {
                self.unlink(key.index());
                self.entries.at(key.index()).state = State::Fired;
                self.entries.free(key.index());
                Poll::Ready(())
            }
            State::Pending(_) => {
                match &mut entry.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Vacant => unreachable!("live() never returns a vacant entry"),
        }
    }

    /// Cancels a timer (pending or fired but not yet polled), freeing its
    /// entry. A no-op for a stale key.
    pub(crate) fn remove(&mut self, key: TimerKey) {
        let Some(entry) = self.entries.live(key.index(), key.generation()) else {
            return;
        };
        if let State::Pending(location) = entry.state {
            self.unlink(key.index());
            if location != Location::Due {
                self.pending -= 1;
            }
            self.entries.at(key.index()).state = State::Fired;
        }
        // Dropped here, outside any list: a waker's destructor may run
        // arbitrary code.
        let waker = self.entries.free(key.index());
        drop(waker);
    }

    /// When the wheel next has work: the deadline of the earliest pending
    /// timer, or earlier — the first tick of a higher-level slot that must
    /// be cascaded before that timer can fire. `None` when no timer is
    /// pending.
    ///
    /// A driver that waits until this instant and then calls `expire`
    /// never misses a deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let tick = if self.due_head != NIL {
            // Wakes left over from a waker that panicked: due now.
            self.elapsed
        } else {
            self.next_expiration()?.1
        };
        // A tick too far for `Instant` (centuries) is as good as never.
        self.start.checked_add(Duration::from_millis(tick))
    }

    /// When a driver's `wait(timeout)` starting at `now` must return at the
    /// latest: the earlier of `now + timeout` and [`next_deadline`](Self::next_deadline);
    /// `None` for no limit (a timeout too long for `Instant` is none).
    pub(crate) fn wait_deadline(&self, now: Instant, timeout: Option<Duration>) -> Option<Instant> {
        let timeout = timeout.and_then(|t| now.checked_add(t));
        match (timeout, self.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// For a driver's turn with `timeout` (`Some(ZERO)`: do not block):
    /// whether the turn must not block (a zero timeout, or the earliest
    /// deadline has passed), and the instant a blocking wait must end by
    /// (`None`: no limit). The clock is read only when a timer is pending
    /// or the timeout is a real bound, not on the busy and idle turns of a
    /// server with no timers.
    #[cfg_attr(windows, allow(dead_code))] // the Linux drivers' turns
    pub(crate) fn turn_deadline(&self, timeout: Option<Duration>) -> (bool, Option<Instant>) {
        match timeout {
            Some(t) if t.is_zero() => (true, None),
            None if self.is_idle() => (false, None),
            _ => {
                let now = Instant::now();
                let deadline = self.wait_deadline(now, timeout);
                (deadline.is_some_and(|d| d <= now), deadline)
            }
        }
    }

    /// Fires every timer due at `now` (cascading higher-level slots on the
    /// way), waking their wakers; returns how many fired.
    ///
    /// If a waker panics, the panic propagates; the wheel stays consistent
    /// and the next call wakes the timers that were left.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let now_tick = self.tick_reached_by(now);
        let mut fired = 0;
        while let Some((location, tick)) = self.next_expiration() {
            if tick > now_tick {
                break;
            }
            debug_assert!(tick >= self.elapsed, "wheel time went backwards");
            self.elapsed = tick;
            let mut index = match location {
                Location::Slot { level, slot } => self.levels[level as usize].take(slot as usize),
                Location::Overflow => std::mem::replace(&mut self.overflow, NIL),
                Location::Due => unreachable!("the due list is not a wheel position"),
            };
            // Phase 1: no foreign code runs until every entry of the taken
            // list is linked somewhere again.
            while index != NIL {
                let entry = self.entries.at(index);
                let next = entry.next;
                entry.prev = NIL;
                entry.next = NIL;
                if entry.tick <= tick {
                    self.pending -= 1;
                    fired += 1;
                    self.push_due(index);
                } else {
                    self.link(index);
                }
                index = next;
            }
        }
        self.elapsed = self.elapsed.max(now_tick);
        // Phase 2.
        self.wake_due();
        fired
    }

    /// Calls the wakers of the due list, front to back, taking each entry
    /// off the list (state `Fired`) before its waker runs.
    fn wake_due(&mut self) {
        while self.due_head != NIL {
            let index = self.due_head;
            self.unlink(index);
            let entry = self.entries.at(index);
            entry.state = State::Fired;
            if let Some(waker) = entry.waker.take() {
                waker.wake();
            }
        }
    }

    /// Appends entry `index` (linked nowhere) to the due list.
    fn push_due(&mut self, index: u32) {
        let tail = self.due_tail;
        {
            let entry = self.entries.at(index);
            entry.prev = tail;
            entry.next = NIL;
            entry.state = State::Pending(Location::Due);
        }
        if tail == NIL {
            self.due_head = index;
        } else {
            self.entries.at(tail).next = index;
        }
        self.due_tail = index;
    }

    /// Whether the wheel has nothing to do: no timer pending and no wake
    /// left on the due list. Then [`expire`](Self::expire) would fire
    /// nothing and [`next_deadline`](Self::next_deadline) is `None`, so a
    /// driver's turn need not read the clock for the wheel at all (the hot
    /// path of a server with no timers). Skipping `expire` leaves `elapsed`
    /// behind the clock, which is allowed: it only promises that every
    /// timer due by then has fired, and `insert` links a later timer
    /// relative to it.
    #[cfg_attr(windows, allow(dead_code))] // the Linux drivers' turns
    pub(crate) fn is_idle(&self) -> bool {
        self.pending == 0 && self.due_head == NIL
    }

    /// Timers pending (inserted, neither fired nor removed).
    #[cfg_attr(not(test), allow(dead_code))] // for tests, here and in drivers
    pub(crate) fn len(&self) -> usize {
        self.pending
    }

    /// Whether no timer is pending.
    #[cfg_attr(not(test), allow(dead_code))] // for tests, here and in drivers
    pub(crate) fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// The first tick at or after `deadline` (rounding up).
    fn tick_at_or_after(&self, deadline: Instant) -> u64 {
        let since = deadline.saturating_duration_since(self.start);
        let ticks = since.as_nanos().div_ceil(1_000_000);
        u64::try_from(ticks).unwrap_or(MAX_TICK).min(MAX_TICK)
    }

    /// The last tick `now` has reached (rounding down).
    fn tick_reached_by(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start);
        u64::try_from(since.as_millis())
            .unwrap_or(MAX_TICK)
            .min(MAX_TICK)
    }

    /// The earliest list with work and the tick at which it is due.
    fn next_expiration(&self) -> Option<(Location, u64)> {
        for (n, level) in self.levels.iter().enumerate() {
            let digit = level::slot_of(self.elapsed, n);
            debug_assert!(
                !level.occupied_at_or_before(digit),
                "level {n} has an occupied slot at or behind the wheel"
            );
            // Lower levels' slots all lie within the current slot of the
            // level above, so the first level with an occupied slot ahead
            // holds the earliest work.
            if let Some(slot) = level.next_occupied_after(digit) {
                let location = Location::Slot {
                    level: n as u8,
                    slot: slot as u8,
                };
                return Some((location, level::slot_start(self.elapsed, n, slot)));
            }
        }
        (self.overflow != NIL)
            .then(|| (Location::Overflow, level::next_rotation_start(self.elapsed)))
    }

    /// Links pending entry `index` (due after `elapsed`) where it belongs.
    fn link(&mut self, index: u32) {
        let tick = self.entries.at(index).tick;
        debug_assert!(tick > self.elapsed);
        let location = match level::level_for(self.elapsed, tick) {
            Some(n) => {
                let slot = level::slot_of(tick, n);
                let mut head = self.levels[n].head(slot);
                self.entries.push_front(&mut head, index);
                self.levels[n].set_head(slot, head);
                Location::Slot {
                    level: n as u8,
                    slot: slot as u8,
                }
            }
            None => {
                let mut head = self.overflow;
                self.entries.push_front(&mut head, index);
                self.overflow = head;
                Location::Overflow
            }
        };
        self.entries.at(index).state = State::Pending(location);
    }

    /// Unlinks pending entry `index` from its list.
    fn unlink(&mut self, index: u32) {
        let State::Pending(location) = self.entries.at(index).state else {
            unreachable!("unlink of an entry that is not pending");
        };
        match location {
            Location::Slot { level, slot } => {
                let level = &mut self.levels[level as usize];
                let mut head = level.head(slot as usize);
                self.entries.unlink(&mut head, index);
                level.set_head(slot as usize, head);
            }
            Location::Overflow => {
                let mut head = self.overflow;
                self.entries.unlink(&mut head, index);
                self.overflow = head;
            }
            Location::Due => {
                let prev = self.entries.at(index).prev;
                if self.due_tail == index {
                    self.due_tail = prev;
                }
                let mut head = self.due_head;
                self.entries.unlink(&mut head, index);
                self.due_head = head;
            }
        }
    }
}
