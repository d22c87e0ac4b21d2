//! A `Sleep` or `Interval` belongs to the runtime whose wheel holds its
//! timer (DESIGN.md, "Contract, part 2"): polled under another runtime it
//! panics saying so; dropped under another runtime (or after its own is
//! gone) it never removes that other runtime's timers.
//!
//! Both runtimes live on one thread here (a `Sleep` is `!Send`), each
//! going through the same steps so that their timers sit at the same
//! place in their wheels: a timer key taken for the wrong wheel would hit
//! the other runtime's timer.

mod util;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use util::{expect_wrong_runtime_panic, pending_on, poll_once, within};
use veloq::time::{interval, sleep, timeout, Interval, Sleep};
use veloq::Runtime;

/// A 10 s sleep, polled once under `rt` (so its timer is in `rt`'s wheel).
fn long_sleep_polled_on(rt: &Runtime) -> Pin<Box<Sleep>> {
    pending_on(rt, || sleep(Duration::from_secs(10)))
}

/// Under `rt`: starts a 150 ms sleep, runs `meddle` (which drops or polls
/// a foreign timer), then checks the 150 ms sleep still fires, on time.
fn own_sleep_survives(rt: &Runtime, meddle: impl FnOnce()) {
    let result = rt.block_on(async {
        let start = Instant::now();
        let mut own = Box::pin(sleep(Duration::from_millis(150)));
        assert!(poll_once(own.as_mut()).await.is_pending());
        meddle();
        let fired = timeout(Duration::from_secs(3), own).await.is_ok();
        (fired, start.elapsed())
    });
    match result {
        (false, _) => panic!("the runtime's own 150 ms sleep never fired"),
        (true, took) => assert!(
            took >= Duration::from_millis(150),
            "the runtime's own 150 ms sleep fired early, after {took:?}"
        ),
    }
}

#[test]
fn sleep_of_a_live_runtime_dropped_inside_another_leaves_its_timers_alone() {
    within(20, || {
        let rt_a = Runtime::new().expect("runtime A");
        let rt_b = Runtime::new().expect("runtime B");
        let foreign = long_sleep_polled_on(&rt_a);
        own_sleep_survives(&rt_b, move || drop(foreign));
        // A's wheel is still sound too.
        rt_a.block_on(sleep(Duration::from_millis(5)));
    });
}

#[test]
fn sleep_of_a_dropped_runtime_dropped_inside_another_leaves_its_timers_alone() {
    within(20, || {
        let rt_a = Runtime::new().expect("runtime A");
        let foreign = long_sleep_polled_on(&rt_a);
        drop(rt_a);
        let rt_b = Runtime::new().expect("runtime B");
        own_sleep_survives(&rt_b, move || drop(foreign));
    });
}

#[test]
fn interval_of_one_runtime_dropped_inside_another_leaves_its_timers_alone() {
    within(20, || {
        let rt_a = Runtime::new().expect("runtime A");
        let rt_b = Runtime::new().expect("runtime B");
        let foreign: Interval = rt_a.block_on(async {
            let mut iv = interval(Duration::from_secs(10));
            iv.tick().await; // the first tick is at once
            let pending = std::future::poll_fn(|cx| Poll::Ready(iv.poll_tick(cx).is_pending()));
            assert!(pending.await, "the second tick is 10 s away");
            iv
        });
        own_sleep_survives(&rt_b, move || drop(foreign));
    });
}

#[test]
fn sleep_polled_under_another_runtime_panics() {
    within(20, || {
        let rt_a = Runtime::new().expect("runtime A");
        let rt_b = Runtime::new().expect("runtime B");
        let mut foreign = long_sleep_polled_on(&rt_a);
        // B has a timer of its own at the same place in its wheel.
        let mut own = long_sleep_polled_on(&rt_b);
        expect_wrong_runtime_panic("A's sleep polled under B", || {
            rt_b.block_on(async {
                let _ = poll_once(foreign.as_mut()).await;
            })
        });
        drop(foreign);
        // B's own timer is still there: a short timeout around it fires
        // (the 10 s sleep neither completes nor vanishes).
        let still_pending = rt_b.block_on(async {
            std::future::poll_fn(|cx| Poll::Ready(own.as_mut().poll(cx).is_pending())).await
        });
        assert!(still_pending, "B's own 10 s sleep is still pending");
    });
}

#[test]
fn interval_polled_under_another_runtime_panics() {
    within(20, || {
        let rt_a = Runtime::new().expect("runtime A");
        let rt_b = Runtime::new().expect("runtime B");
        let mut foreign: Interval = rt_a.block_on(async {
            let mut iv = interval(Duration::from_secs(10));
            iv.tick().await;
            let pending = std::future::poll_fn(|cx| Poll::Ready(iv.poll_tick(cx).is_pending()));
            assert!(pending.await, "the second tick is 10 s away");
            iv
        });
        let _own = long_sleep_polled_on(&rt_b);
        expect_wrong_runtime_panic("A's interval polled under B", || {
            rt_b.block_on(async {
                let _ = std::future::poll_fn(|cx| Poll::Ready(foreign.poll_tick(cx))).await;
            })
        });
    });
}

#[test]
fn timeout_polled_under_another_runtime_panics() {
    within(20, || {
        let rt_a = Runtime::new().expect("runtime A");
        let rt_b = Runtime::new().expect("runtime B");
        let mut foreign = pending_on(&rt_a, || {
            timeout(Duration::from_secs(10), std::future::pending::<()>())
        });
        let _own = long_sleep_polled_on(&rt_b);
        expect_wrong_runtime_panic("A's timeout polled under B", || {
            rt_b.block_on(async {
                let _ = poll_once(foreign.as_mut()).await;
            })
        });
    });
}
