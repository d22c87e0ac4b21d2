//! Timers through the public API: sleeps never end early (and not very
//! late), timeouts, intervals, many concurrent timers, cancellation.
//!
//! Lateness bounds are generous (`SLACK`): the test machines are small and
//! shared, so a wake-up can be delayed by the scheduler. Earliness is
//! never tolerated.

mod util;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use veloq::time::{interval, interval_at, sleep, sleep_until, timeout, Elapsed, Instant};

/// How late a timer may be before a test fails.
const SLACK: Duration = Duration::from_millis(250);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[veloq::test]
async fn sleep_is_never_early_nor_far_late() {
    for d in [0, 1, 2, 5, 13, 40, 100] {
        let d = ms(d);
        let start = Instant::now();
        sleep(d).await;
        let took = start.elapsed();
        assert!(took >= d, "sleep({d:?}) returned after {took:?}");
        assert!(took < d + SLACK, "sleep({d:?}) returned after {took:?}");
    }
}

#[veloq::test]
async fn sub_millisecond_sleeps_are_not_early() {
    for us in [1, 250, 999, 1001, 1500] {
        let d = Duration::from_micros(us);
        let start = Instant::now();
        sleep(d).await;
        assert!(start.elapsed() >= d);
    }
}

#[veloq::test]
async fn sleep_until_a_past_instant_completes_at_once() {
    let past = Instant::now() - ms(10);
    let start = Instant::now();
    sleep_until(past).await;
    assert!(start.elapsed() < SLACK);
    let s = sleep_until(past);
    assert!(s.is_elapsed());
}

#[veloq::test]
async fn sleeps_fire_in_deadline_order() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let tasks: Vec<_> = [50u64, 10, 30, 20, 40]
        .into_iter()
        .map(|d| {
            let log = log.clone();
            veloq::spawn(async move {
                sleep(ms(d)).await;
                log.borrow_mut().push(d);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*log.borrow(), [10, 20, 30, 40, 50]);
}

#[veloq::test]
async fn timeout_elapses() {
    let start = Instant::now();
    let res = timeout(ms(20), sleep(Duration::from_secs(10))).await;
    let took = start.elapsed();
    let err: Elapsed = res.unwrap_err();
    assert_eq!(err.to_string(), "deadline has elapsed");
    assert!(took >= ms(20), "timeout fired early: {took:?}");
    assert!(took < ms(20) + SLACK, "timeout fired late: {took:?}");
}

#[veloq::test]
async fn timeout_does_not_elapse_when_the_future_is_quick() {
    let start = Instant::now();
    let res = timeout(Duration::from_secs(5), async {
        sleep(ms(10)).await;
        "quick"
    })
    .await;
    assert_eq!(res, Ok("quick"));
    assert!(start.elapsed() < SLACK + ms(10));
}

#[veloq::test]
async fn elapsed_converts_to_io_timed_out() -> io::Result<()> {
    async fn fetch() -> io::Result<u32> {
        let v = timeout(ms(5), std::future::pending::<u32>()).await?;
        Ok(v)
    }
    let err = fetch().await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    // And a successful one passes `?` through.
    let v = timeout(ms(100), async { 1 })
        .await
        .map_err(io::Error::from)?;
    assert_eq!(v, 1);
    Ok(())
}

#[veloq::test]
async fn timeout_drops_the_inner_future() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let flag = Flag(dropped.clone());
    let res = timeout(ms(5), async move {
        let _flag = flag;
        sleep(Duration::from_secs(30)).await;
    })
    .await;
    assert!(res.is_err());
    assert!(dropped.get());
}

#[veloq::test]
async fn interval_ticks_on_its_grid() {
    let period = ms(15);
    let start = Instant::now();
    let mut every = interval_at(start, period);
    let first = every.tick().await;
    assert_eq!(first, start);
    assert!(start.elapsed() < SLACK, "first tick was not immediate");
    for k in 1..=4u32 {
        let tick = every.tick().await;
        assert_eq!(tick, start + period * k);
        assert!(Instant::now() >= tick, "tick {k} completed early");
    }
    assert!(start.elapsed() >= period * 4);
    assert!(start.elapsed() < period * 4 + SLACK);
}

#[veloq::test]
async fn interval_skips_missed_ticks() {
    let period = ms(10);
    let mut every = interval(period);
    let t0 = every.tick().await;
    // Block the thread for several periods.
    std::thread::sleep(ms(35));
    let late = every.tick().await;
    assert_eq!(late, t0 + period, "a late tick completes at once");
    let next = every.tick().await;
    // Ticks 2 and 3 were missed; the next is on the grid after "now".
    assert!(next >= t0 + period * 4, "{:?}", next - t0);
    assert_eq!((next - t0).as_nanos() % period.as_nanos(), 0);
}

#[test]
#[should_panic(expected = "`period` must be non-zero.")]
fn zero_interval_panics() {
    veloq::block_on(async {
        interval(Duration::ZERO);
    });
}

#[test]
fn ten_thousand_concurrent_timers_all_fire() {
    util::within(60, || {
        veloq::block_on(async {
            let start = Instant::now();
            let fired = Rc::new(Cell::new(0usize));
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let handles: Vec<_> = (0..10_000)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let d = Duration::from_micros(seed % 300_000);
                    let fired = fired.clone();
                    veloq::spawn(async move {
                        let deadline = start + d;
                        sleep_until(deadline).await;
                        let now = Instant::now();
                        assert!(now >= deadline, "timer fired {:?} early", deadline - now);
                        fired.set(fired.get() + 1);
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
            assert_eq!(fired.get(), 10_000);
            let took = start.elapsed();
            assert!(took < ms(300) + Duration::from_secs(3), "took {took:?}");
        })
    });
}

#[veloq::test]
async fn dropping_a_sleep_cancels_its_timer() {
    // A task polls a 20 ms sleep once, then drops it and stays pending.
    // Had the timer stayed in the wheel, it would wake the task again.
    let polls = Rc::new(Cell::new(0));
    let p = polls.clone();
    let mut first = true;
    let task = veloq::spawn(poll_fn(move |cx| {
        p.set(p.get() + 1);
        if first {
            first = false;
            let mut s = sleep(ms(20));
            assert!(Pin::new(&mut s).poll(cx).is_pending());
            drop(s);
        }
        Poll::<()>::Pending
    }));
    sleep(ms(80)).await;
    assert_eq!(polls.get(), 1, "a dropped sleep woke its task");
    task.abort();
}

#[veloq::test]
async fn reset_moves_a_pending_sleep() {
    let start = Instant::now();
    let mut s = sleep(Duration::from_secs(30));
    // Register the long timer, then pull it in.
    poll_fn(|cx| {
        assert!(Pin::new(&mut s).poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    s.reset(start + ms(15));
    s.await;
    let took = start.elapsed();
    assert!(took >= ms(15) && took < ms(15) + SLACK, "{took:?}");
}

#[test]
#[should_panic(expected = "no runtime on this thread")]
fn sleeping_outside_a_runtime_panics() {
    let mut s = sleep(ms(50));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let _ = Pin::new(&mut s).poll(&mut cx);
}
