//! Loom models of the eventfd's wake coalescing: an `unpark` on another
//! thread racing the driver's consumption of the previous wake.
//!
//! The eventfd is a real (non-blocking) one; loom does not see its
//! counter, only the `pending` flag, whose protocol is what is checked:
//! after any interleaving, a wake published after the driver last looked
//! is still in the counter, and `pending` is never left set over an empty
//! counter (no later `unpark` would ever write again).

use super::EventFdWaker;
use crate::io::driver::Unpark;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::sync::Arc;
use crate::loom::thread;

/// Reads (and so empties) the counter; `None` if it was zero.
fn take_counter(w: &EventFdWaker) -> Option<u64> {
    let mut value: u64 = 0;
    // SAFETY: reads 8 bytes into a live local from the waker's own
    // descriptor, which lives as long as `w`.
    let n = unsafe { libc::read(w.fd(), (&mut value as *mut u64).cast(), 8) };
    (n == 8).then_some(value)
}

#[test]
fn loom_unpark_racing_the_drivers_drain_is_never_lost() {
    loom::model(|| {
        let waker = EventFdWaker::new(true).unwrap();
        // A wake is already pending when the race starts.
        waker.unpark();
        let work = Arc::new(AtomicBool::new(false));
        let notifier = {
            let (waker, work) = (waker.clone(), work.clone());
            thread::spawn(move || {
                work.store(true, Ordering::Relaxed);
                waker.unpark();
            })
        };
        // The driver: consume the wake, then look for work.
        waker.drain();
        let saw_work = work.load(Ordering::Relaxed);
        notifier.join().unwrap();
        let pending = waker.pending.load(Ordering::Relaxed);
        let in_counter = take_counter(&waker).is_some();
        assert!(saw_work || in_counter, "the notifier's wake was lost");
        assert!(
            !pending || in_counter,
            "pending left set over an empty counter"
        );
    });
}

#[test]
fn loom_two_unparks_write_once_until_consumed() {
    loom::model(|| {
        let waker = EventFdWaker::new(true).unwrap();
        let other = {
            let waker = waker.clone();
            thread::spawn(move || waker.unpark())
        };
        waker.unpark();
        other.join().unwrap();
        assert_eq!(take_counter(&waker), Some(1), "coalesced into one write");
        waker.consumed();
        waker.unpark();
        assert_eq!(take_counter(&waker), Some(1), "writes again once consumed");
    });
}
