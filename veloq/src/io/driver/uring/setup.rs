//! Creating the ring: the setup flags we ask for and the fallback when the
//! kernel is older than they are.
//!
//! We ask for the most helpful set first and drop flags one group at a time
//! while the kernel answers `EINVAL` (a flag it does not know):
//!
//! | level          | flags                                                     | kernel |
//! |----------------|-----------------------------------------------------------|--------|
//! | `DeferTaskrun` | SINGLE_ISSUER, DEFER_TASKRUN, COOP_TASKRUN, TASKRUN_FLAG, SUBMIT_ALL | 6.1 |
//! | `SingleIssuer` | SINGLE_ISSUER, COOP_TASKRUN, TASKRUN_FLAG, SUBMIT_ALL      | 6.0    |
//! | `CoopTaskrun`  | COOP_TASKRUN, TASKRUN_FLAG, SUBMIT_ALL                    | 5.19   |
//! | `SubmitAll`    | SUBMIT_ALL                                                | 5.18   |
//! | `Plain`        | none                                                      | any    |
//!
//! All but `Plain` also set CLAMP, so an oversized `entries` is clamped
//! rather than refused, and CQSIZE for a CQ of four times the SQ.
//!
//! What the flags change for the driver:
//!
//! - With DEFER_TASKRUN, completions are only posted to the CQ while this
//!   thread is inside `io_uring_enter` with `GETEVENTS`; reaping without
//!   a syscall finds only what an earlier enter posted.
//! - With TASKRUN_FLAG, the kernel raises `IORING_SQ_TASKRUN` when
//!   completion work is waiting for such an enter, which lets a
//!   non-blocking `wait` skip the syscall when nothing is pending.
//! - SINGLE_ISSUER (and so DEFER_TASKRUN) ties the ring to the thread that
//!   created it: only that thread may submit or register. The driver is
//!   `!Send`, which keeps it there.
//!
//! Whatever the level, the ring must have `IORING_FEAT_NODROP` (Linux
//! 5.5): without it the kernel drops the completions that do not fit in
//! the CQ, and an op whose completion is dropped never lets go of its
//! buffer. Every kernel with the ops the driver uses (5.6) has it, so a
//! ring without it is refused as unsupported.

use std::io;

use io_uring::IoUring;

/// CQ entries per SQ entry (the kernel's default is 2).
const CQ_FACTOR: u32 = 4;

/// How much of the modern flag set the kernel accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SetupLevel {
    /// No setup flags.
    Plain,
    /// SUBMIT_ALL.
    SubmitAll,
    /// + COOP_TASKRUN and TASKRUN_FLAG.
    CoopTaskrun,
    /// + SINGLE_ISSUER.
    SingleIssuer,
    /// + DEFER_TASKRUN: the full set.
    DeferTaskrun,
}

impl SetupLevel {
    /// Every level, best first.
    pub(crate) const ALL: [SetupLevel; 5] = [
        SetupLevel::DeferTaskrun,
        SetupLevel::SingleIssuer,
        SetupLevel::CoopTaskrun,
        SetupLevel::SubmitAll,
        SetupLevel::Plain,
    ];

    /// Whether the kernel raises `IORING_SQ_TASKRUN` for pending
    /// completion work (so a non-blocking reap can tell whether it needs a
    /// syscall).
    pub(crate) fn has_taskrun_flag(self) -> bool {
        self >= SetupLevel::CoopTaskrun
    }

    fn build(self, entries: u32) -> io::Result<IoUring> {
        let mut b = IoUring::builder();
        if self >= SetupLevel::SubmitAll {
            b.setup_clamp();
            b.setup_submit_all();
            // Room for many more completions than one SQ's worth: network
            // servers keep far more ops in flight than they submit per
            // turn, and an overflowing CQ is slow (the kernel buffers the
            // excess until the next enter).
            b.setup_cqsize(entries.saturating_mul(CQ_FACTOR));
        }
        if self >= SetupLevel::CoopTaskrun {
            b.setup_coop_taskrun();
            b.setup_taskrun_flag();
        }
        if self >= SetupLevel::SingleIssuer {
            b.setup_single_issuer();
        }
        if self >= SetupLevel::DeferTaskrun {
            b.setup_defer_taskrun();
        }
        b.build(entries)
    }
}

/// Builds a ring of `entries` SQ entries with the best level the kernel
/// accepts, starting at `best`.
pub(crate) fn build_ring(entries: u32, best: SetupLevel) -> io::Result<(IoUring, SetupLevel)> {
    let entries = entries.max(1);
    let mut last_err = None;
    for level in SetupLevel::ALL.into_iter().filter(|l| *l <= best) {
        match level.build(entries) {
            Ok(ring) if !ring.params().is_feature_nodrop() => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "veloq: this kernel's io_uring drops completions when the CQ is full \
                     (no IORING_FEAT_NODROP, Linux < 5.5)",
                ));
            }
            Ok(ring) => return Ok((ring, level)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)))
}
