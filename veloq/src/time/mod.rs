//! Timers: [`sleep`], [`sleep_until`], [`timeout`], [`interval`].
//!
//! Timers live in the current runtime's timer wheel (one per driver, 1 ms
//! ticks): the driver bounds each wait by the wheel's next deadline and
//! fires due timers after it. A timer never fires before its deadline —
//! deadlines are rounded *up* to the next millisecond — and fires about as
//! soon after it as the thread gets back to the driver.
//!
//! Dropping a [`Sleep`] (or a [`Timeout`], or an [`Interval`]) removes its
//! timer from the wheel.
//!
//! These futures need a veloq runtime to wait: polling one that has to wait
//! outside a runtime panics with a message saying so.
//!
//! ```
//! use std::time::Duration;
//! use veloq::time::{sleep, timeout, Instant};
//!
//! veloq::block_on(async {
//!     let start = Instant::now();
//!     sleep(Duration::from_millis(20)).await;
//!     assert!(start.elapsed() >= Duration::from_millis(20));
//!
//!     let slow = sleep(Duration::from_secs(10));
//!     assert!(timeout(Duration::from_millis(5), slow).await.is_err());
//! });
//! ```

mod interval;
mod sleep;
mod timeout;

pub use interval::{interval, interval_at, Interval};
pub use sleep::{sleep, sleep_until, Sleep};
pub use std::time::Instant;
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};
