//! [`Interval`]: ticks at a fixed period.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::sleep::{far_future, sleep_until, Sleep};

/// Ticks every `period`, the first tick completing at once.
///
/// # Panics
///
/// If `period` is zero.
///
/// ```
/// use std::time::Duration;
/// veloq::block_on(async {
///     let mut every = veloq::time::interval(Duration::from_millis(10));
///     every.tick().await; // at once
///     every.tick().await; // 10 ms later
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks at `start`, `start + period`, `start + 2·period`, …
///
/// # Panics
///
/// If `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "`period` must be non-zero.");
    Interval {
        period,
        sleep: sleep_until(start),
    }
}

/// A stream of instants `period` apart; see [`interval`].
///
/// Ticks stay on the `start + k·period` grid. A tick that comes late (the
/// thread was busy) completes at once; ticks missed entirely while late are
/// skipped, not delivered in a burst.
pub struct Interval {
    period: Duration,
    /// Waits for the next tick; its deadline is that tick's instant.
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    ///
    /// Cancel-safe: dropping the future before it completes loses no tick.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick; see [`tick`](Interval::tick).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let tick = self.sleep.deadline();
        let next = next_tick(tick, self.period, Instant::now());
        self.sleep.reset(next);
        Poll::Ready(tick)
    }

    /// Restarts the grid: the next tick is one period from now.
    pub fn reset(&mut self) {
        let now = Instant::now();
        self.sleep.reset(
            now.checked_add(self.period)
                .unwrap_or_else(|| far_future(now)),
        );
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// The first grid instant `tick + k·period` (k ≥ 1) that is after `now`,
/// or simply `tick + period` when that is not yet past.
fn next_tick(tick: Instant, period: Duration, now: Instant) -> Instant {
    let Some(next) = tick.checked_add(period) else {
        return far_future(now);
    };
    if next > now {
        return next;
    }
    // Late by at least one whole period: skip the missed ticks.
    let periods = (now - tick).as_nanos() / period.as_nanos() + 1;
    let skip = period
        .as_nanos()
        .checked_mul(periods)
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_nanos);
    skip.and_then(|d| tick.checked_add(d))
        .unwrap_or_else(|| far_future(now))
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("next", &self.sleep.deadline())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tick_stays_on_grid() {
        let t0 = Instant::now();
        let p = Duration::from_millis(10);
        assert_eq!(next_tick(t0, p, t0 + Duration::from_millis(3)), t0 + p);
        // Exactly on the next tick: that tick is already due, skip to the
        // one after.
        assert_eq!(next_tick(t0, p, t0 + p), t0 + 2 * p);
        assert_eq!(next_tick(t0, p, t0 + Duration::from_millis(35)), t0 + 4 * p);
    }

    #[test]
    #[should_panic(expected = "`period` must be non-zero.")]
    fn zero_period_panics() {
        let _ = interval(Duration::ZERO);
    }

    #[test]
    fn first_tick_is_immediate() {
        let mut i = interval(Duration::from_secs(1));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let before = Instant::now();
        match i.poll_tick(&mut cx) {
            Poll::Ready(t) => assert!(t <= before),
            Poll::Pending => panic!("first tick did not complete at once"),
        }
    }
}
