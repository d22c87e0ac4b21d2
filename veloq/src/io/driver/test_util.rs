//! Test helpers shared by the driver, registry and timer tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

/// A waker that counts its wakes (read them with `.0.load(..)`).
pub(crate) struct CountWake(pub(crate) AtomicUsize);

impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A fresh counting waker and the counter behind it.
pub(crate) fn counting_waker() -> (Arc<CountWake>, Waker) {
    let count = Arc::new(CountWake(AtomicUsize::new(0)));
    (count.clone(), Waker::from(count))
}

/// A runtime on the io_uring driver, or `None` (with a line on stderr)
/// where the kernel refuses io_uring, so a test of an io_uring-only path
/// can skip.
#[cfg(target_os = "linux")]
pub(crate) fn uring_runtime() -> Option<crate::runtime::Runtime> {
    use crate::runtime::{DriverKind, Runtime};
    match Runtime::builder().driver(DriverKind::IoUring).build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("skipping: io_uring refused here ({e})");
            None
        }
    }
}
