//! The wait deadline as an `IORING_OP_TIMEOUT` request (kernels without
//! `IORING_FEAT_EXT_ARG`, i.e. before 5.11).
//!
//! `wait` blocks in `io_uring_enter` until at least one completion arrives.
//! Where the kernel cannot take the timeout as an enter argument, the
//! driver bounds the wait by keeping one *armed* pure timeout (count 0) in
//! the kernel whose expiry posts a CQE (`-ETIME`) and so ends the wait.
//!
//! # Policy
//!
//! - An armed timeout that fires no later than the wanted deadline is kept:
//!   firing early only makes one `wait` return early, which the contract
//!   allows (the caller loops).
//! - Otherwise the armed one is removed (`TIMEOUT_REMOVE`) and a new one is
//!   armed for the wanted deadline, in the same submission batch.
//! - Every timeout whose CQE has not arrived yet is in `live` with the boxed
//!   `Timespec` its SQE points at: the kernel reads it when it consumes the
//!   SQE, and the box is freed only on the CQE (fired, `-ETIME`; removed,
//!   `-ECANCELED`), so no SQE ever points at freed memory however late it
//!   is consumed.

use std::time::Instant;

use io_uring::{opcode, squeue, types};

use super::token;

/// The timeout the driver relies on for its current deadline.
#[derive(Debug, Clone, Copy)]
struct Armed {
    token: u64,
    at: Instant,
}

/// Armed and in-kernel timeouts; see the module docs.
#[derive(Default)]
pub(crate) struct Deadlines {
    armed: Option<Armed>,
    live: Vec<(u64, Box<types::Timespec>)>,
    seq: u64,
}

impl Deadlines {
    /// The SQEs (at most two) that make sure a timeout fires no later than
    /// `at`; empty when the armed one already does.
    ///
    /// The entries point at boxes this struct keeps until their CQEs
    /// arrive ([`Deadlines::on_cqe`]).
    /// `ack` are the SQE flags for the removal (`SKIP_SUCCESS` where the
    /// kernel has it, so a successful removal posts no CQE of its own).
    pub(crate) fn arm(
        &mut self,
        at: Instant,
        now: Instant,
        ack: squeue::Flags,
    ) -> Vec<squeue::Entry> {
        if self.armed.is_some_and(|a| a.at <= at) {
            return Vec::new();
        }
        let mut entries = Vec::with_capacity(2);
        if let Some(old) = self.armed.take() {
            entries.push(
                opcode::TimeoutRemove::new(old.token)
                    .build()
                    .flags(ack)
                    .user_data(token::CANCEL),
            );
        }
        self.seq = self.seq.wrapping_add(1);
        let token = token::timeout(self.seq);
        let ts = Box::new(types::Timespec::from(at.saturating_duration_since(now)));
        entries.push(
            opcode::Timeout::new(&*ts as *const types::Timespec)
                .build()
                .user_data(token),
        );
        self.live.push((token, ts));
        self.armed = Some(Armed { token, at });
        entries
    }

    /// Forgets the SQEs of the last `arm` because they could not be
    /// queued: nothing in the kernel points at their boxes.
    pub(crate) fn disarm_unqueued(&mut self) {
        if let Some(armed) = self.armed.take() {
            self.live.retain(|(t, _)| *t != armed.token);
        }
    }

    /// The SQE that removes the armed timeout (driver shutdown).
    pub(crate) fn remove_armed(&mut self, ack: squeue::Flags) -> Option<squeue::Entry> {
        let old = self.armed.take()?;
        Some(
            opcode::TimeoutRemove::new(old.token)
                .build()
                .flags(ack)
                .user_data(token::CANCEL),
        )
    }

    /// A timeout's CQE arrived: the kernel is done with its `Timespec`.
    /// Returns whether it was the armed timeout firing (the end of a
    /// wait), as opposed to a removed one.
    pub(crate) fn on_cqe(&mut self, token: u64, res: i32) -> bool {
        self.live.retain(|(t, _)| *t != token);
        if self.armed.is_some_and(|a| a.token == token) {
            self.armed = None;
        }
        res == -libc::ETIME
    }

    /// Timeouts the kernel has not reported yet.
    pub(crate) fn in_kernel(&self) -> usize {
        self.live.len()
    }

    /// Leaks the boxes of timeouts the kernel never reported (a drop that
    /// could not drain), so it can never read freed memory.
    pub(crate) fn leak(&mut self) {
        for (_, ts) in self.live.drain(..) {
            std::mem::forget(ts);
        }
    }
}
