//! Channels for tasks on different workers (or threads): [`mpsc`] (many
//! senders, one receiver, bounded or unbounded) and [`oneshot`] (one value,
//! once).
//!
//! They are runtime-agnostic: a waiting side stores its task's waker, and
//! the other side wakes it, from whatever thread it runs on. A task on a
//! veloq worker woken from another worker is queued there and its driver
//! woken only if it is parked (see `veloq::spawn_on`), so a busy receiver
//! costs its senders no system call.
//!
//! Both are a `Mutex` around a small state; no user code (`Drop` of a
//! value, a waker) runs while it is held, and a panic elsewhere cannot
//! poison it.
//!
//! ```
//! use veloq::sync::{mpsc, oneshot};
//!
//! let rt = veloq::Runtime::builder().workers(2).build()?;
//! rt.block_on(async {
//!     let (tx, mut rx) = mpsc::channel(16);
//!     let (done_tx, done_rx) = oneshot::channel();
//!     veloq::spawn_on(1, move || async move {
//!         for i in 0..3 {
//!             tx.send(i).await.unwrap();
//!         }
//!         done_tx.send(veloq::worker_id()).unwrap();
//!     });
//!     let mut got = Vec::new();
//!     while let Some(i) = rx.recv().await {
//!         got.push(i);
//!     }
//!     assert_eq!(got, [0, 1, 2]);
//!     assert_eq!(done_rx.await.unwrap(), 1);
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod mpsc;
pub mod oneshot;
#[cfg(all(test, not(loom)))]
mod test_util;

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: the channels never leave their state
/// half-updated across a panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
