//! Timer wheel tests: firing times, cancellation, cascades, stale keys.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::{TimerKey, TimerWheel};

use crate::io::driver::test_util::counting_waker as counter;

/// Records its id into a shared log when woken.
struct LogWaker {
    id: usize,
    log: Arc<Mutex<Vec<usize>>>,
}

impl Wake for LogWaker {
    fn wake(self: Arc<Self>) {
        self.log.lock().unwrap().push(self.id);
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn poll(wheel: &mut TimerWheel, key: TimerKey, waker: &Waker) -> Poll<()> {
    wheel.poll(key, &mut Context::from_waker(waker))
}

#[test]
fn fires_at_deadline_not_before() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (count, waker) = counter();
    let key = wheel.insert(t0 + ms(5), &waker);
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.expire(t0 + ms(4)), 0);
    assert_eq!(wheel.expire(t0 + ms(5) - Duration::from_nanos(1)), 0);
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    assert!(poll(&mut wheel, key, &waker).is_pending());
    assert_eq!(wheel.expire(t0 + ms(5)), 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(wheel.len(), 0);
    assert!(poll(&mut wheel, key, &waker).is_ready());
}

#[test]
fn sub_tick_deadline_rounds_up() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (count, waker) = counter();
    let deadline = t0 + Duration::from_micros(5_300);
    wheel.insert(deadline, &waker);
    assert_eq!(wheel.next_deadline(), Some(t0 + ms(6)));
    // Past the deadline but not yet at the rounded-up tick: no fire yet.
    assert_eq!(wheel.expire(t0 + Duration::from_micros(5_900)), 0);
    assert_eq!(wheel.expire(t0 + ms(6)), 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
}

#[test]
fn remove_cancels_and_is_idempotent() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (count, waker) = counter();
    let key = wheel.insert(t0 + ms(10), &waker);
    let other = wheel.insert(t0 + ms(10), &waker);
    wheel.remove(key);
    wheel.remove(key);
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.expire(t0 + ms(20)), 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(poll(&mut wheel, other, &waker).is_ready());
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn remove_of_fired_unpolled_timer_frees_it() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (_, waker) = counter();
    let key = wheel.insert(t0 + ms(1), &waker);
    assert_eq!(wheel.expire(t0 + ms(1)), 1);
    wheel.remove(key);
    // The entry is reused by the next insert under a new generation.
    let next = wheel.insert(t0 + ms(3), &waker);
    assert_eq!(next.index(), key.index());
    assert_ne!(next.generation(), key.generation());
}

#[test]
fn stale_key_does_not_touch_reused_entry() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (count, waker) = counter();
    let a = wheel.insert(t0 + ms(2), &waker);
    wheel.expire(t0 + ms(2));
    assert!(poll(&mut wheel, a, &waker).is_ready());
    let b = wheel.insert(t0 + ms(4), &waker);
    assert_eq!(a.index(), b.index());
    // Stale operations on `a` leave `b` alone.
    wheel.remove(a);
    assert!(poll(&mut wheel, a, &waker).is_ready());
    assert_eq!(wheel.len(), 1);
    assert!(poll(&mut wheel, b, &waker).is_pending());
    assert_eq!(wheel.expire(t0 + ms(4)), 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
}

#[test]
fn past_deadline_fires_on_insert() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    wheel.expire(t0 + ms(100));
    let (count, waker) = counter();
    let key = wheel.insert(t0 + ms(50), &waker);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(wheel.len(), 0);
    assert_eq!(wheel.next_deadline(), None);
    assert!(poll(&mut wheel, key, &waker).is_ready());
}

#[test]
fn poll_replaces_waker() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (first, w1) = counter();
    let (second, w2) = counter();
    let key = wheel.insert(t0 + ms(3), &w1);
    assert!(poll(&mut wheel, key, &w2).is_pending());
    wheel.expire(t0 + ms(3));
    assert_eq!(first.0.load(Ordering::SeqCst), 0);
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
}

#[test]
fn expires_in_deadline_order() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let log = Arc::new(Mutex::new(Vec::new()));
    let deadlines = [70u64, 3, 64, 65, 1, 4095, 4096, 200, 63, 5000];
    for (id, &d) in deadlines.iter().enumerate() {
        let waker = Waker::from(Arc::new(LogWaker {
            id,
            log: log.clone(),
        }));
        wheel.insert(t0 + ms(d), &waker);
    }
    // Step one tick at a time: each timer fires exactly at its tick.
    for now in 0..=5000u64 {
        let before = log.lock().unwrap().len();
        wheel.expire(t0 + ms(now));
        let log = log.lock().unwrap();
        for &id in &log[before..] {
            assert_eq!(deadlines[id], now, "timer {id} fired at {now}");
        }
    }
    let mut sorted: Vec<_> = (0..deadlines.len()).collect();
    sorted.sort_by_key(|&i| deadlines[i]);
    assert_eq!(*log.lock().unwrap(), sorted);
}

#[test]
fn far_deadlines_cascade_exactly() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let day = 86_400_000u64;
    // One deadline per level, and two past the top level (overflow).
    let deadlines = [
        37u64,
        1_234,
        123_456,
        9_876_543,
        5 * day + 17,
        400 * day + 3,
        900 * day + 11,
        3_000 * day + 5,
    ];
    let mut keys = Vec::new();
    let mut counts = Vec::new();
    for &d in &deadlines {
        let (c, w) = counter();
        keys.push(wheel.insert(t0 + ms(d), &w));
        counts.push(c);
    }
    for (i, &d) in deadlines.iter().enumerate() {
        // Walk there through the wheel's own next deadlines, as a driver
        // would; none of them may lie past the timer's deadline.
        loop {
            let next = wheel.next_deadline().expect("timers pending");
            assert!(next <= t0 + ms(d), "next_deadline skipped timer {i}");
            if next == t0 + ms(d) {
                break;
            }
            wheel.expire(next);
            assert_eq!(
                counts[i].0.load(Ordering::SeqCst),
                0,
                "timer {i} fired early"
            );
        }
        assert_eq!(wheel.expire(t0 + ms(d) - Duration::from_nanos(1)), 0);
        assert_eq!(wheel.expire(t0 + ms(d)), 1, "timer {i} at {d} ms");
        assert_eq!(counts[i].0.load(Ordering::SeqCst), 1);
        assert_eq!(wheel.len(), deadlines.len() - i - 1);
    }
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn far_deadline_fires_after_one_big_jump() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (c, w) = counter();
    let d = ms(3 * 86_400_000 + 1);
    wheel.insert(t0 + d, &w);
    assert_eq!(wheel.expire(t0 + d - ms(1)), 0);
    assert_eq!(c.0.load(Ordering::SeqCst), 0);
    assert_eq!(wheel.next_deadline(), Some(t0 + d));
    assert_eq!(wheel.expire(t0 + d + ms(500)), 1);
}

#[test]
fn next_deadline_tracks_earliest() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (_, w) = counter();
    assert_eq!(wheel.next_deadline(), None);
    let a = wheel.insert(t0 + ms(40), &w);
    let b = wheel.insert(t0 + ms(20), &w);
    assert_eq!(wheel.next_deadline(), Some(t0 + ms(20)));
    wheel.remove(b);
    assert_eq!(wheel.next_deadline(), Some(t0 + ms(40)));
    wheel.remove(a);
    assert_eq!(wheel.next_deadline(), None);
    // A far timer: the first answer is a cascade point before it.
    let far = wheel.insert(t0 + ms(10_000), &w);
    let next = wheel.next_deadline().unwrap();
    assert!(next > t0 && next <= t0 + ms(10_000));
    wheel.remove(far);
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn crossing_the_top_rotation() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let rotation = 1u64 << 36;
    wheel.expire(t0 + ms(rotation - 10));
    let (c, w) = counter();
    // Due 20 ms later, in the next top-level rotation.
    wheel.insert(t0 + ms(rotation + 10), &w);
    let next = wheel.next_deadline().unwrap();
    assert!(next <= t0 + ms(rotation + 10));
    assert_eq!(wheel.expire(t0 + ms(rotation + 9)), 0);
    assert_eq!(c.0.load(Ordering::SeqCst), 0);
    assert_eq!(wheel.expire(t0 + ms(rotation + 10)), 1);
}

#[test]
fn ten_thousand_timers_fire_on_time() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    // Deterministic pseudo-random deadlines up to 20 s.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut timers = Vec::new();
    for _ in 0..10_000 {
        let d = Duration::from_micros(rand() % 20_000_000);
        let (c, w) = counter();
        let key = wheel.insert(t0 + d, &w);
        timers.push((d, key, c, w));
    }
    // Cancel every tenth.
    for (_, key, _, _) in timers.iter().step_by(10) {
        wheel.remove(*key);
    }
    assert_eq!(wheel.len(), 9_000);
    let mut now = Duration::ZERO;
    let mut total = 0;
    while now < Duration::from_secs(21) {
        now += Duration::from_micros(rand() % 300_000);
        total += wheel.expire(t0 + now);
        for (i, (d, _, c, _)) in timers.iter().enumerate() {
            let fired = c.0.load(Ordering::SeqCst);
            if i % 10 == 0 {
                assert_eq!(fired, 0, "cancelled timer fired");
            } else if *d > now {
                assert_eq!(fired, 0, "timer at {d:?} fired early at {now:?}");
            } else if d.as_nanos().div_ceil(1_000_000) <= now.as_millis() {
                assert_eq!(fired, 1, "timer at {d:?} not fired at {now:?}");
            }
        }
    }
    assert_eq!(total, 9_000);
    assert!(wheel.is_empty());
    for (_, key, _, w) in &timers {
        assert!(poll(&mut wheel, *key, w).is_ready());
    }
}

/// Panics when woken.
struct PanicWaker;

impl Wake for PanicWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker panic");
    }
}

#[test]
fn panicking_waker_loses_no_timer() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (count, waker) = counter();
    let bad = Waker::from(Arc::new(PanicWaker));
    // Same tick, and via a cascade from level 1, to exercise both lists.
    for d in [5u64, 100] {
        wheel.insert(t0 + ms(d), &waker);
        wheel.insert(t0 + ms(d), &bad);
        wheel.insert(t0 + ms(d), &waker);
    }
    let later = wheel.insert(t0 + ms(300), &waker);
    for d in [5u64, 100] {
        let res =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wheel.expire(t0 + ms(d))));
        assert!(res.is_err(), "the waker's panic propagates");
        // The next call wakes the rest of the due timers.
        wheel.expire(t0 + ms(d));
    }
    assert_eq!(count.0.load(Ordering::SeqCst), 4);
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.next_deadline().map(|d| d <= t0 + ms(300)), Some(true));
    assert_eq!(wheel.expire(t0 + ms(300)), 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 5);
    assert!(poll(&mut wheel, later, &waker).is_ready());
}

#[test]
fn due_timer_polled_before_its_wake_is_ready() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (count, waker) = counter();
    let bad = Waker::from(Arc::new(PanicWaker));
    // `bad` is woken first (inserted last: slot lists are LIFO), so `key`
    // is left due but not yet woken.
    let key = wheel.insert(t0 + ms(2), &waker);
    let gone = wheel.insert(t0 + ms(2), &waker);
    wheel.insert(t0 + ms(2), &bad);
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wheel.expire(t0 + ms(2))));
    assert!(res.is_err());
    // The unwoken timers make the wheel due at once.
    assert_eq!(wheel.next_deadline(), Some(t0 + ms(2)));
    assert!(poll(&mut wheel, key, &waker).is_ready());
    wheel.remove(gone);
    wheel.expire(t0 + ms(3));
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        0,
        "freed timers must not be woken"
    );
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn idle_wheel_needs_no_clock_and_a_stale_wheel_still_fires_on_time() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    assert!(wheel.is_idle());
    // No timer: a blocking turn has no limit, a zero timeout never blocks.
    assert_eq!(wheel.turn_deadline(None), (false, None));
    assert_eq!(wheel.turn_deadline(Some(Duration::ZERO)), (true, None));
    // Drivers skip `expire` while idle, so `elapsed` stays at 0 while the
    // clock runs on (here: three hours and then some).
    let later = t0 + Duration::from_secs(3 * 3600) + ms(7);
    let (count, waker) = counter();
    let key = wheel.insert(later + ms(5), &waker);
    assert!(!wheel.is_idle());
    // From a stale wheel the first deadline may be a coarse slot start
    // (one early turn, which cascades), never later than the timer.
    assert!(wheel.next_deadline().is_some_and(|d| d <= later + ms(5)));
    assert_eq!(wheel.expire(later + ms(4)), 0);
    assert_eq!(wheel.next_deadline(), Some(later + ms(5)));
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    assert_eq!(wheel.expire(later + ms(5)), 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(poll(&mut wheel, key, &waker).is_ready());
    assert!(wheel.is_idle());
}

#[test]
fn turn_deadline_with_timers_and_timeouts() {
    let t0 = Instant::now();
    let mut wheel = TimerWheel::new(t0);
    let (_, waker) = counter();
    // Already due (at t0, the wheel's own tick 0 is past): must not block.
    wheel.insert(t0 + ms(1), &waker);
    let (due, deadline) = wheel.turn_deadline(Some(Duration::from_secs(60)));
    assert_eq!(deadline, Some(t0 + ms(1)));
    assert_eq!(due, Instant::now() >= t0 + ms(1));
    // A far timer and a short timeout: the timeout bounds the wait.
    let mut wheel = TimerWheel::new(Instant::now());
    wheel.insert(Instant::now() + Duration::from_secs(3600), &waker);
    let before = Instant::now();
    let (due, deadline) = wheel.turn_deadline(Some(ms(50)));
    assert!(!due);
    let d = deadline.expect("bounded");
    assert!(d >= before + ms(50) && d <= Instant::now() + ms(50));
    // Idle wheel, real timeout: bounded by it alone.
    let wheel = TimerWheel::new(Instant::now());
    let (due, deadline) = wheel.turn_deadline(Some(ms(50)));
    assert!(!due && deadline.is_some());
}
