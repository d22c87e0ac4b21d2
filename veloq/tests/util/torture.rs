//! The harness of the cancellation torture tests (`tests/cancel_torture.rs`):
//! how long a future lives before it is dropped, how many iterations run,
//! the printed seed, and the checks every torture run ends with.
//!
//! Each run holds a process-wide lock, so the descriptor count of the
//! process (`/proc/self/fd`) is only changed by the run being checked.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::guarded_buf::GuardPool;
use super::{eventually, poll_once, within, Rng};

/// Iterations per op kind: `VELOQ_TORTURE_ITERS`, else 10,000 (1,000 under
/// Windows, where Wine runs every op through several threads).
pub fn iterations() -> usize {
    std::env::var("VELOQ_TORTURE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(windows) { 1_000 } else { 10_000 })
}

/// The run's seed: `VELOQ_TORTURE_SEED` (to replay a failure's choices),
/// else one from the clock. Printed either way.
pub fn seed(name: &str) -> u64 {
    let seed = std::env::var("VELOQ_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{name}: VELOQ_TORTURE_SEED={seed}");
    seed
}

/// When a future under test is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropAt {
    /// After this many polls (0: never polled, so never submitted), with
    /// one executor turn (which runs the driver) between polls.
    Polls(u32),
    /// After this long (zero: submitted and cancelled in one poll).
    After(Duration),
}

impl DropAt {
    /// Half the time 0 to 3 polls, half the time a timeout of 0 to 2 ms
    /// (a third of those exactly zero).
    pub fn pick(rng: &mut Rng) -> DropAt {
        if rng.below(2) == 0 {
            DropAt::Polls(rng.below(4) as u32)
        } else if rng.below(3) == 0 {
            DropAt::After(Duration::ZERO)
        } else {
            DropAt::After(Duration::from_micros(rng.below(2001)))
        }
    }

    /// Whether the future is never polled (its op never exists).
    pub fn never_polled(self) -> bool {
        self == DropAt::Polls(0)
    }
}

/// Runs `fut` until `at`; its output if it finished first, else `None`
/// (the future was dropped, cancelling whatever it had started).
pub async fn race<F: Future>(fut: F, at: DropAt) -> Option<F::Output> {
    match at {
        DropAt::Polls(n) => {
            let mut fut = std::pin::pin!(fut);
            for i in 0..n {
                if i > 0 {
                    veloq::runtime::yield_now().await;
                }
                if let std::task::Poll::Ready(out) = poll_once(fut.as_mut()).await {
                    return Some(out);
                }
            }
            None
        }
        DropAt::After(d) => veloq::time::timeout(d, fut).await.ok(),
    }
}

/// What a torture body saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Futures that resolved before their drop point.
    pub completed: usize,
    /// Futures dropped after at least one poll, unresolved.
    pub cancelled: usize,
    /// Set where the driver completes this op within its first poll
    /// whenever the kernel can (epoll's eager UDP `send_to`, which a
    /// loopback socket never refuses), so no future can be cancelled.
    pub cancel_optional: bool,
}

impl Tally {
    /// Counts one outcome of [`race`].
    pub fn note<T>(&mut self, out: &Option<T>, at: DropAt) {
        match out {
            Some(_) => self.completed += 1,
            None if !at.never_polled() => self.cancelled += 1,
            None => {}
        }
    }
}

/// What a torture body gets.
pub struct Ctx {
    /// Its random choices.
    pub rng: Rng,
    /// How many futures to make.
    pub iters: usize,
    /// Where its buffers come from.
    pub pool: GuardPool,
}

/// Descriptors open in this process (`/proc/self/fd`) and what each
/// names, where that can be read.
#[cfg(target_os = "linux")]
pub fn open_fds() -> Option<Vec<String>> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    let mut fds: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            )
        })
        .collect();
    fds.sort();
    Some(fds)
}

/// Descriptors open in this process: not counted on this system.
#[cfg(not(target_os = "linux"))]
pub fn open_fds() -> Option<Vec<String>> {
    None
}

/// Serialises the torture runs of one test binary; every other test in a
/// binary that runs tortures must hold it too while it opens descriptors.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits (driving the runtime) until the driver has no op in flight, then
/// checks that no completion ever arrived for an op it had already freed,
/// and that no op failed on memory it could not reach (a guarded buffer
/// dropped while its op still ran).
pub async fn settle(name: &str) {
    let idle = super::eventually(
        || veloq::runtime::driver_stats().in_flight == 0,
        Duration::from_secs(20),
    )
    .await;
    let stats = veloq::runtime::driver_stats();
    assert!(idle, "{name}: ops still in flight after 20 s: {stats:?}");
    assert_eq!(
        stats.stale_completions, 0,
        "{name}: completions arrived for ops whose memory was already released"
    );
    assert_eq!(
        stats.fault_completions, 0,
        "{name}: ops failed with EFAULT: the kernel reached a buffer after it was dropped"
    );
}

/// Runs one torture: `body` on a fresh runtime with `pool_pages` pages of
/// guarded buffers, within `limit_secs`; then checks that the driver went
/// idle with no stale completion, that every buffer was dropped exactly
/// once, that the process holds as many descriptors as before, and that
/// the run both completed and cancelled futures. Prints its time.
pub fn torture<F, Fut>(name: &'static str, pool_pages: usize, limit_secs: u64, body: F) -> Tally
where
    F: FnOnce(Ctx) -> Fut + Send + 'static,
    Fut: Future<Output = Tally>,
{
    let _serial = serial();
    let ctx_seed = seed(name);
    let iters = iterations();
    let fds_before = open_fds();
    let start = Instant::now();
    let tally = within(limit_secs, move || {
        let pool = GuardPool::new(pool_pages);
        let check = pool.clone();
        let ctx = Ctx {
            rng: Rng::new(ctx_seed),
            iters,
            pool,
        };
        veloq::block_on(async move {
            let tally = body(ctx).await;
            settle(name).await;
            check.assert_each_dropped_once(name);
            tally
        })
    });
    // The epoll driver's pool threads exit just after their runtime is
    // dropped and close its eventfd as they go: give them a moment.
    let mut fds_after = open_fds();
    let waited = Instant::now();
    while fds_after.as_ref().map(Vec::len) != fds_before.as_ref().map(Vec::len)
        && waited.elapsed() < Duration::from_secs(2)
    {
        std::thread::sleep(Duration::from_millis(5));
        fds_after = open_fds();
    }
    if let (Some(after), Some(before)) = (&fds_after, &fds_before) {
        // The one naming the directory listing itself differs each time.
        let left: Vec<_> = after.iter().filter(|f| !before.contains(f)).collect();
        let closed: Vec<_> = before.iter().filter(|f| !after.contains(f)).collect();
        assert_eq!(
            after.len(),
            before.len(),
            "{name}: descriptors open after the run vs before; new: {left:?}, gone: {closed:?}"
        );
    }
    eprintln!(
        "{name}: {iters} iterations in {:.2?}: {tally:?}",
        start.elapsed()
    );
    assert!(
        tally.completed > 0,
        "{name}: no future completed: {tally:?}"
    );
    assert!(
        tally.cancelled > 0 || tally.cancel_optional,
        "{name}: no future was cancelled: {tally:?}"
    );
    tally
}

/// Waits, driving the runtime, until the std thread `t` has returned.
pub async fn join<T>(t: std::thread::JoinHandle<T>, what: &str) -> T {
    let done = eventually(|| t.is_finished(), Duration::from_secs(30)).await;
    assert!(done, "{what}: the peer thread did not finish");
    t.join().unwrap()
}

/// A peer's rhythm: busy for 20 ms, then idle for 10 ms, so that the ops
/// under test both find their data (or room) at once and wait for it,
/// however fast the peer is (under Wine a busy peer would never let an op
/// wait, so none could be cancelled in the kernel).
pub struct Duty(Instant);

impl Duty {
    /// A rhythm whose busy stretch starts now.
    pub fn start() -> Duty {
        Duty(Instant::now())
    }

    /// Sleeps 10 ms once every 20 ms of work.
    pub fn pause_now_and_then(&mut self) {
        if self.0.elapsed() >= Duration::from_millis(20) {
            std::thread::sleep(Duration::from_millis(10));
            self.0 = Instant::now();
        }
    }
}
