//! Zero-copy sends: `IORING_OP_SEND_ZC` for large sends on TCP streams.
//!
//! With `SEND_ZC` the kernel transmits from the caller's pages instead of
//! copying them into socket buffers, and posts two CQEs for one SQE:
//!
//! 1. the send's result (bytes or an error), with `IORING_CQE_F_MORE` when
//!    a notification follows;
//! 2. the notification (`IORING_CQE_F_NOTIF`, same `user_data`), once the
//!    kernel no longer reads the pages (the data was acknowledged, or
//!    copied on its way to a local socket).
//!
//! # Invariants
//!
//! - The op completes, for the registry, only at its last CQE: the
//!   notification, or a result without `F_MORE` (no notification follows,
//!   e.g. an error before any page was taken). The first CQE of two only
//!   stores the result in the op ([`UringOp::SendZc`]'s `result`). So the
//!   slot stays allocated (never freed or reused in between), the future
//!   resolves and hands the buffer back only after the notification, and a
//!   future dropped mid-flight leaves its buffer (and its socket's owner)
//!   with the registry until then, as for every op (`io::op`). The socket
//!   therefore closes only after the notification.
//! - Cancelling cannot hurry the notification: pages already queued on
//!   the socket stay pinned until the data is sent (and, leaving the host,
//!   acknowledged). A dropped write to a peer that never reads therefore
//!   holds its buffer and its socket open until the peer reads or the
//!   connection dies; a driver dropped meanwhile waits up to
//!   `DRAIN_LIMIT` and then leaks them, as for any op the kernel keeps.
//! - A CQE with `F_MORE` or `F_NOTIF` for any other op passes through
//!   unchanged.
//! - `SEND_ZC` is used only where the probe at setup found the opcode, for
//!   descriptions that allow it (`op::Send::zero_copy`: TCP streams, where
//!   the kernel supports it; Unix-domain sockets refuse it with
//!   `EOPNOTSUPP`) and from the configured size up; everything else is a
//!   plain `SEND`. [`DriverStats::zero_copy_sends`] counts the `SEND_ZC`s.
//!
//! # Threshold: off by default
//!
//! Measured with `tests/send_zero_copy.rs`'s ignored
//! `measure_copy_against_zero_copy` (release build; 256 MiB per case over
//! loopback in `write_all`s of the size shown, one buffer reused, to a
//! blocking reader thread; median of 3; this VM: 2 shared vCPUs at load
//! 3–4, Linux 6.18). CPU is the sending thread's
//! (`/proc/thread-self/schedstat`, which includes the loopback's softirq
//! work done on it) per MiB sent. Two runs:
//!
//! | write | copy MiB/s | `SEND_ZC` MiB/s | ratio | copy CPU µs/MiB | `SEND_ZC` CPU µs/MiB | ratio |
//! |---:|---:|---:|---:|---:|---:|---:|
//! | 4 KiB | 572 / 438 | 165 / 148 | 0.29 / 0.34 | 1,184 / 1,056 | 3,063 / 2,930 | 2.59 / 2.77 |
//! | 16 KiB | 1,617 / 1,964 | 530 / 691 | 0.33 / 0.35 | 335 / 281 | 916 / 727 | 2.73 / 2.59 |
//! | 32 KiB | 2,500 / 2,774 | 1,057 / 1,137 | 0.42 / 0.41 | 198 / 183 | 468 / 427 | 2.37 / 2.34 |
//! | 64 KiB | 2,889 / 3,094 | 1,428 / 1,615 | 0.49 / 0.52 | 171 / 152 | 354 / 333 | 2.08 / 2.20 |
//! | 128 KiB | 3,073 / 3,067 | 1,460 / 2,115 | 0.47 / 0.69 | 162 / 152 | 305 / 240 | 1.88 / 1.58 |
//! | 256 KiB | 1,335 / 2,525 | 2,226 / 1,298 | 1.67 / 0.51 | 358 / 186 | 229 / 330 | 0.64 / 1.77 |
//! | 1 MiB | 4,502 / 2,472 | 2,943 / 1,748 | 0.65 / 0.71 | 122 / 159 | 156 / 210 | 1.28 / 1.32 |
//!
//! `SEND_ZC` loses at every size here (the one 256 KiB win is a noisy
//! copy run; the second run reverses it). Data bound for a local socket
//! is copied by the kernel anyway (a deferred copy when it is looped
//! back), so zero-copy only adds the page pinning, the notification CQE
//! and a write that waits for it. The gap narrows with size (0.3× at
//! 4 KiB, 0.7× at 1 MiB). So the default is off: no threshold measured
//! on this machine makes it a win. Where data leaves through a network
//! card with scatter-gather, the copy it saves is real; the kernel's
//! MSG_ZEROCOPY notes put the break-even around 10 KiB, and 64 KiB
//! (`Builder::zero_copy_send(Some(64 * 1024))`) is a conservative start,
//! to be measured there; no such card was available here.
//!
//! [`DriverStats::zero_copy_sends`]: crate::io::driver::DriverStats::zero_copy_sends

use io_uring::{cqueue, opcode, IoUring, Probe};

use super::{UringDriver, UringOp};
use crate::io::driver::OpKey;

/// Whether `ring`'s kernel has `IORING_OP_SEND_ZC` (Linux 6.0).
pub(super) fn probe(ring: &IoUring) -> bool {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok() && probe.is_supported(opcode::SendZc::CODE)
}

/// The smallest send length that goes out as `SEND_ZC`: the configured
/// minimum where the kernel has the opcode, else `None` (never).
pub(super) fn min_len(configured: Option<usize>, supported: bool) -> Option<u32> {
    let min = configured.filter(|_| supported)?;
    // A minimum beyond what one op carries is never reached.
    Some(u32::try_from(min).unwrap_or(u32::MAX).max(1))
}

/// Whether a CQE with these flags may belong to a two-CQE op.
#[inline]
pub(super) fn may_split(flags: u32) -> bool {
    cqueue::more(flags) || cqueue::notif(flags)
}

impl UringDriver {
    /// Turns a `SEND` the description allowed to go zero-copy into a
    /// `SEND_ZC` when it is long enough and the kernel has it (see the
    /// module docs); returns whether it did.
    #[inline]
    pub(super) fn choose_send_zc(op: &mut UringOp, min: Option<u32>) -> bool {
        let UringOp::Send {
            fd,
            buf,
            len,
            zero_copy: true,
        } = *op
        else {
            return false;
        };
        if min.is_none_or(|min| len < min) {
            return false;
        }
        *op = UringOp::SendZc {
            fd,
            buf,
            len,
            result: None,
        };
        true
    }

    /// A CQE with `F_MORE` or `F_NOTIF` (see [`may_split`]) for op `key`:
    /// `None` when it is a `SEND_ZC`'s result with a notification still to
    /// come (stored in the op; the op goes on), else the result the op
    /// completes with now.
    pub(super) fn send_zc_cqe(&mut self, key: OpKey, res: i32, flags: u32) -> Option<i32> {
        let Some(UringOp::SendZc { result, .. }) =
            self.registry.get_mut(key).and_then(|s| s.op.as_mut())
        else {
            // Not a two-CQE op of ours (or a stale key): as before.
            return Some(res);
        };
        if cqueue::notif(flags) {
            // The kernel let go of the pages: the op ends with the send's
            // result, which always comes first.
            debug_assert!(result.is_some(), "SEND_ZC notification before its result");
            return Some(result.take().unwrap_or(-libc::EIO));
        }
        // The result; the notification follows (`F_MORE`).
        *result = Some(res);
        None
    }
}
