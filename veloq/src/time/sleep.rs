//! [`Sleep`]: a future that completes at a deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::io::driver::timer::TimerKey;
use crate::io::driver::Driver;
use crate::runtime::context;
use crate::runtime::executor::Core;

/// Waits until `duration` has passed.
///
/// The future completes no earlier than `duration` after this call (rounded
/// up to the timer wheel's 1 ms tick). A duration too long to represent
/// sleeps for about 30 years.
///
/// ```
/// use std::time::Duration;
/// veloq::block_on(async {
///     veloq::time::sleep(Duration::from_millis(10)).await;
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    let now = Instant::now();
    sleep_until(now.checked_add(duration).unwrap_or_else(|| far_future(now)))
}

/// Waits until `deadline`; completes at once if it has passed.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        state: State::Idle,
        core: None,
    }
}

/// About 30 years after `now` (or as far as `Instant` reaches): "never".
pub(crate) fn far_future(now: Instant) -> Instant {
    const YEAR: u64 = 365 * 24 * 60 * 60;
    [30 * YEAR, YEAR, 24 * 60 * 60]
        .into_iter()
        .find_map(|secs| now.checked_add(Duration::from_secs(secs)))
        .unwrap_or(now)
}

enum State {
    /// No timer in the wheel yet (not polled since created or reset).
    Idle,
    /// Waiting on this timer, in the wheel of `Sleep::core`.
    Waiting(TimerKey),
    /// Completed.
    Done,
}

/// Future returned by [`sleep`] and [`sleep_until`].
///
/// The timer is put in the runtime's wheel on the first poll that has to
/// wait, and taken out again when the `Sleep` is dropped or reset.
///
/// From then on the sleep belongs to that runtime (worker): it is `!Send`,
/// polling it under another runtime on the same thread panics, and
/// dropping it anywhere removes its timer from its own runtime's wheel,
/// never another's.
///
/// ```compile_fail
/// // `Sleep` (and so `Timeout` and `Interval`) cannot move to another thread:
/// fn assert_send<T: Send>(_: T) {}
/// assert_send(veloq::time::sleep(std::time::Duration::from_millis(1)));
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    state: State,
    /// The runtime whose wheel holds the timer; set on the first wait.
    core: Option<Rc<Core>>,
}

impl Sleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed (the future completed, or would
    /// complete if polled now).
    pub fn is_elapsed(&self) -> bool {
        matches!(self.state, State::Done) || Instant::now() >= self.deadline
    }

    /// Moves the deadline (also after completion: the sleep then waits
    /// again).
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel_timer();
        self.deadline = deadline;
        self.state = State::Idle;
    }

    /// Takes this sleep's timer (if any) out of the wheel.
    fn cancel_timer(&mut self) {
        if let State::Waiting(key) = std::mem::replace(&mut self.state, State::Idle) {
            // After its runtime is gone there is no wheel left to clean.
            if let Some(core) = &self.core {
                core.with_driver_if_free(|d| d.timers().remove(key));
            }
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match this.state {
            State::Done => Poll::Ready(()),
            State::Idle => {
                if Instant::now() >= this.deadline {
                    this.state = State::Done;
                    return Poll::Ready(());
                }
                let deadline = this.deadline;
                let core = match &this.core {
                    Some(core) => {
                        context::assert_current(core);
                        core
                    }
                    None => this
                        .core
                        .insert(context::current().unwrap_or_else(|| context::no_runtime())),
                };
                let key = core
                    .with_driver(|d| d.timers().insert(deadline, cx.waker()))
                    .unwrap_or_else(|| context::driver_gone());
                this.state = State::Waiting(key);
                Poll::Pending
            }
            State::Waiting(key) => match this.poll_timer(key, cx) {
                Poll::Ready(()) => {
                    this.state = State::Done;
                    Poll::Ready(())
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Sleep {
    /// Polls the timer in the wheel of the runtime it belongs to.
    fn poll_timer(&self, key: TimerKey, cx: &mut Context<'_>) -> Poll<()> {
        let core = self.core.as_ref().expect("a waiting sleep has its runtime");
        context::assert_current(core);
        core.with_driver(|d| d.timers().poll(key, cx))
            .unwrap_or_else(|| context::driver_gone())
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel_timer();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("elapsed", &matches!(self.state, State::Done))
            .finish()
    }
}
