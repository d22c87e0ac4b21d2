//! The one door from process code to the blocking pool, counted per
//! thread, so that a test can prove a path starts no pool job (tests
//! running beside it, on other threads, cannot disturb the count).

use std::cell::Cell;

use crate::runtime::blocking;

thread_local! {
    /// Pool jobs process code started from this thread.
    static POOL_JOBS: Cell<u64> = const { Cell::new(0) };
}

/// Pool jobs that process code started from this thread so far.
#[cfg(test)]
pub(super) fn pool_jobs() -> u64 {
    POOL_JOBS.with(Cell::get)
}

/// Runs `job` on the blocking pool, counted.
pub(super) fn to_pool(job: impl FnOnce() + Send + 'static) {
    POOL_JOBS.with(|c| c.set(c.get() + 1));
    blocking::pool().execute(Box::new(job));
}
