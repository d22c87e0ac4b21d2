//! Dropping the epoll driver: socket ops are freed at once (no kernel
//! call holds their memory), file ops are waited for.
//!
//! # Invariants
//!
//! - A keep-alive of an op on the blocking pool is freed only after the
//!   pool reported the op: a pool thread may write into its buffer until
//!   then.
//! - If the pool has not reported everything within [`DRAIN_LIMIT`], the
//!   registry (slots and keep-alives) is leaked, never freed.

use std::mem;
use std::time::{Duration, Instant};

use super::{pool, EpollDriver, EpollOp, DRAIN_LIMIT};

impl Drop for EpollDriver {
    fn drop(&mut self) {
        let call = pool::driver_call();
        for key in self.registry.keys() {
            let net = match self.registry.get_mut(key).map(|s| s.op.as_ref()) {
                None => continue,
                Some(None) => {
                    self.registry.release(key);
                    continue;
                }
                Some(Some(EpollOp::Net(op))) => (op.fd(), op.dir()),
                Some(Some(_)) => {
                    if !self.registry.is_cancelled(key) {
                        self.registry.cancel(key, None);
                    }
                    continue;
                }
            };
            self.cancel_net(key, net.0, net.1, None);
        }
        self.deferred.clear();
        let started = Instant::now();
        while self.in_pool > 0 && started.elapsed() < DRAIN_LIMIT {
            if self.poll_once(Some(Duration::from_millis(50))).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if self.in_pool > 0 {
            // A pool thread may still write into these slots' buffers:
            // leak them rather than free memory it can reach.
            crate::io::driver::note_leaked_drain();
            mem::forget(mem::take(&mut self.registry));
        }
        self.release_deferred_pools(call);
    }
}
