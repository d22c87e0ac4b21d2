//! [`timeout`]: bound how long a future may take.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::sleep::{sleep, sleep_until, Sleep};

/// Runs `fut` for at most `duration`.
///
/// Resolves to `Ok(output)` if `fut` completes first, or `Err(Elapsed)`
/// once `duration` has passed; `fut` is then dropped with the `Timeout`
/// (cancelling any I/O it had in flight). `fut` is polled before the
/// deadline is checked, so a future that is ready at once always wins.
///
/// ```
/// use std::time::Duration;
/// use veloq::time::{sleep, timeout};
///
/// veloq::block_on(async {
///     let res = timeout(Duration::from_millis(10), sleep(Duration::from_secs(5))).await;
///     assert!(res.is_err());
///     let res = timeout(Duration::from_secs(5), async { 3 }).await;
///     assert_eq!(res, Ok(3));
/// });
/// ```
pub fn timeout<F: Future>(duration: Duration, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        sleep: sleep(duration),
    }
}

/// Runs `fut` until `deadline` at the latest; see [`timeout`].
pub fn timeout_at<F: Future>(deadline: Instant, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        sleep: sleep_until(deadline),
    }
}

/// Future returned by [`timeout`] and [`timeout_at`].
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<F> {
    /// Structurally pinned.
    fut: F,
    /// Not pinned (`Sleep` is `Unpin`).
    sleep: Sleep,
}

impl<F> Timeout<F> {
    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.fut
    }

    /// Takes the wrapped future back, removing the timer.
    pub fn into_inner(self) -> F {
        self.fut
    }

    /// When the timeout elapses.
    pub fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: pin projection. `fut` is structurally pinned: it is never
        // moved out of a pinned `Timeout` (`into_inner` takes `self` by
        // value, which requires `Timeout: Unpin` once pinned, i.e. `F:
        // Unpin`), `Timeout` has no `Drop` impl, and it is `Unpin` only when
        // `F` is. `sleep` is not treated as pinned.
        let (fut, sleep) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.fut), &mut this.sleep)
        };
        if let Poll::Ready(out) = fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match Pin::new(sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("deadline", &self.sleep.deadline())
            .finish_non_exhaustive()
    }
}

/// The error of a [`timeout`] whose deadline passed first.
///
/// Converts into an [`io::Error`] of kind [`io::ErrorKind::TimedOut`], so
/// `?` works in functions returning `io::Result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(e: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_converts_to_timed_out() {
        let e = Elapsed(());
        assert_eq!(e.to_string(), "deadline has elapsed");
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert_eq!(io.to_string(), "deadline has elapsed");
    }

    #[test]
    fn ready_future_wins_without_a_runtime_wait() {
        // The inner future is polled first; no timer is needed.
        let mut t = std::pin::pin!(timeout(Duration::ZERO, async { 5 }));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert_eq!(t.as_mut().poll(&mut cx), Poll::Ready(Ok(5)));
    }

    #[test]
    fn past_deadline_elapses_without_a_runtime_wait() {
        let mut t = std::pin::pin!(timeout(Duration::ZERO, std::future::pending::<()>()));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert_eq!(t.as_mut().poll(&mut cx), Poll::Ready(Err(Elapsed(()))));
    }
}
