//! The listener registry shared by the Unix and Windows signal sources.
//!
//! An *event* is a small number: a signal number on Unix, a console control
//! type on Windows. Each event has a list of listeners. The platform side
//! calls [`Registry::broadcast`] from its own thread (the Unix dispatcher
//! thread, or the system thread Windows runs console handlers on), never
//! from a signal handler: it takes locks and wakes wakers.
//!
//! A listener is a count of deliveries not yet received plus the waker of
//! the task waiting for the next one. Counting (rather than a flag) is what
//! makes "no delivery is lost between two `recv`s" hold without the listener
//! having to be polled at the moment of delivery.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

/// Locks `m`, ignoring poisoning: nothing panics while these locks are held
/// (a waker is woken only after its listener's lock is released), and the
/// guarded data is plain counters that stay consistent either way.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One listener's state, shared by its [`Listener`] handle and the registry.
#[derive(Debug, Default)]
struct State {
    /// Deliveries seen by the registry and not yet returned by `poll_recv`.
    pending: usize,
    /// The waker of the last `poll_recv` that found nothing pending.
    waker: Option<Waker>,
}

/// The receiving end of one registration: owned by a `Signal`, `CtrlC`, ...
#[derive(Debug)]
pub(crate) struct Listener {
    shared: Arc<Mutex<State>>,
}

impl Listener {
    /// Ready once per counted delivery; otherwise stores the waker.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.shared);
        if state.pending > 0 {
            state.pending -= 1;
            return Poll::Ready(());
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Listeners by event number.
#[derive(Debug)]
pub(crate) struct Registry {
    /// `events[id]` holds the listeners of event `id`. Entries are weak:
    /// dropping a `Listener` unregisters it without taking this lock; dead
    /// entries are pruned by `broadcast` and when a list is about to grow.
    events: Mutex<Vec<Vec<Weak<Mutex<State>>>>>,
}

impl Registry {
    /// An empty registry (usable in a `static`).
    pub(crate) const fn new() -> Self {
        Registry {
            events: Mutex::new(Vec::new()),
        }
    }

    /// Adds a listener for event `id`; it counts deliveries from now on.
    pub(crate) fn register(&self, id: usize) -> Listener {
        let shared = Arc::new(Mutex::new(State::default()));
        let mut events = lock(&self.events);
        if events.len() <= id {
            events.resize_with(id + 1, Vec::new);
        }
        let list = &mut events[id];
        // Prune only when the list would reallocate: registering stays
        // amortised O(1), and the list only grows when live listeners fill
        // it, so dead entries stay bounded by the most listeners ever live
        // at once (many short-lived `ctrl_c()` futures leak nothing).
        if list.len() == list.capacity() {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(&shared));
        Listener { shared }
    }

    /// Counts `n` deliveries of event `id` in every live listener and wakes
    /// those that wait. Returns whether any listener was live.
    pub(crate) fn broadcast(&self, id: usize, n: usize) -> bool {
        let mut wakers = Vec::new();
        let mut any = false;
        {
            let mut events = lock(&self.events);
            let Some(list) = events.get_mut(id) else {
                return false;
            };
            list.retain(|weak| {
                let Some(shared) = weak.upgrade() else {
                    return false;
                };
                any = true;
                let mut state = lock(&shared);
                state.pending = state.pending.saturating_add(n);
                wakers.extend(state.waker.take());
                true
            });
        }
        // Woken outside every lock: a waker may run arbitrary code (even
        // register a new listener). A panicking waker (a foreign executor's
        // bug) must neither keep the others asleep nor unwind out of the
        // dispatcher thread (every later signal would be lost) or the
        // Windows console handler (unwinding out of it aborts): it is
        // contained here and its payload dropped.
        for w in wakers {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake()));
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn counts_wakes_and_prunes() {
        let registry = Registry::new();
        assert!(!registry.broadcast(3, 1), "no listener yet");
        let mut a = registry.register(3);
        let mut b = registry.register(3);
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(a.poll_recv(&mut cx).is_pending());
        assert!(registry.broadcast(3, 2));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "only `a` waited");
        for l in [&mut a, &mut b] {
            assert!(l.poll_recv(&mut cx).is_ready());
            assert!(l.poll_recv(&mut cx).is_ready());
            assert!(l.poll_recv(&mut cx).is_pending());
        }
        drop(a);
        drop(b);
        assert!(!registry.broadcast(3, 1), "dropped listeners are gone");
        assert!(lock(&registry.events)[3].is_empty());
    }

    #[test]
    fn dead_entries_stay_bounded_without_broadcasts() {
        let registry = Registry::new();
        let _live = registry.register(1);
        for _ in 0..10_000 {
            drop(registry.register(1));
        }
        assert!(lock(&registry.events)[1].len() <= 8);
    }
}
