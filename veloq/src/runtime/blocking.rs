//! The process-wide pool that runs blocking closures for
//! [`spawn_blocking`](crate::task::spawn_blocking) (and the blocking parts
//! of `fs` and `process`), so that no worker thread ever blocks.
//!
//! # Bounds
//!
//! At most [`MAX_THREADS`] threads run at once; a job that finds every
//! thread busy and the pool full waits in the queue (FIFO). A thread that
//! has been idle for [`KEEP_ALIVE`] exits, so an idle process holds no
//! pool threads. Should the system refuse a new thread (`EAGAIN` from
//! `clone`), the job waits for a running thread; with none running it runs
//! on the caller's thread rather than never.
//!
//! # Invariants
//!
//! - Every job goes into the queue first; threads take jobs only from the
//!   queue and check it before every wait, so a queued job is never lost,
//!   even when starting a thread fails.
//! - `idle` counts threads waiting on the condvar and `notified` the wakes
//!   sent to them and not yet taken: `execute` wakes an idle thread only
//!   while `idle > notified`, and otherwise starts a new one (within
//!   [`MAX_THREADS`]).
//! - Jobs catch their own panics (the pool's threads never unwind).
//!
//! The pool itself uses std's `Mutex` and `Condvar`, not `crate::loom`'s:
//! it lives in a process-wide `static` and waits with a timeout, neither of
//! which loom can model. Its result hand-off ([`hand_off`], a `oneshot`)
//! is model-checked in `blocking/loom_tests.rs`.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use crate::sync::{lock, oneshot};

/// Most pool threads at once (tokio's default).
pub(crate) const MAX_THREADS: usize = 512;

/// How long an idle pool thread waits for work before it exits.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A unit of work; it must not panic out (see the module docs).
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

struct State {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    notified: usize,
}

/// The pool; see the module docs.
pub(crate) struct BlockingPool {
    state: Mutex<State>,
    work: Condvar,
}

/// The process's pool.
pub(crate) fn pool() -> &'static BlockingPool {
    static POOL: OnceLock<BlockingPool> = OnceLock::new();
    POOL.get_or_init(|| BlockingPool {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
            notified: 0,
        }),
        work: Condvar::new(),
    })
}

impl BlockingPool {
    /// Runs `job` on a pool thread (see the module docs for when it runs
    /// elsewhere).
    pub(crate) fn execute(&'static self, job: Job) {
        let mut st = lock(&self.state);
        st.queue.push_back(job);
        if st.idle > st.notified {
            st.notified += 1;
            drop(st);
            self.work.notify_one();
            return;
        }
        if st.threads >= MAX_THREADS {
            return; // a busy thread takes it when done
        }
        st.threads += 1;
        drop(st);
        let spawned = thread::Builder::new()
            .name("veloq-blocking".into())
            .spawn(move || self.run());
        if spawned.is_err() {
            let mut st = lock(&self.state);
            st.threads -= 1;
            if st.threads > 0 {
                return; // a running thread takes it
            }
            // No thread at all: run here rather than never.
            let job = st.queue.pop_front();
            drop(st);
            if let Some(job) = job {
                job();
            }
        }
    }

    /// A pool thread: runs queued jobs until idle for `KEEP_ALIVE`.
    fn run(&self) {
        let mut st = lock(&self.state);
        loop {
            if let Some(job) = st.queue.pop_front() {
                drop(st);
                job();
                st = lock(&self.state);
                continue;
            }
            st.idle += 1;
            let (guard, wait) = self
                .work
                .wait_timeout(st, KEEP_ALIVE)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            st.idle -= 1;
            if st.notified > 0 {
                st.notified -= 1;
            } else if wait.timed_out() && st.queue.is_empty() {
                st.threads -= 1;
                return;
            }
        }
    }
}

/// Runs `f` on the pool and waits for its result without blocking the
/// worker (for the crate's own blocking calls: file-system metadata,
/// directories, process waits). A panic in `f` is re-raised here.
///
/// Needs no runtime: the result arrives through a thread-safe waker.
pub(crate) async fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (job, result) = hand_off(f);
    pool().execute(job);
    result.await
}

/// Splits `f` into a pool [`Job`] and a future of its result: the job runs
/// `f`, catching its panic, and sends the outcome through a `oneshot`
/// channel; the future resolves to the value or re-raises the panic.
///
/// Either side may go first or be dropped on any thread: if the future is
/// dropped, the job's send fails and the job drops the value itself.
pub(crate) fn hand_off<F, T>(f: F) -> (Job, impl Future<Output = T> + Send + 'static)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel::<std::thread::Result<T>>();
    let job: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        // Fails only if the awaiting side is gone; the outcome drops here.
        let _ = tx.send(outcome);
    });
    let result = async move {
        match rx.await {
            Ok(Ok(value)) => value,
            Ok(Err(payload)) => std::panic::resume_unwind(payload),
            Err(_) => unreachable!("a pool job always sends its result"),
        }
    };
    (job, result)
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    #[test]
    fn runs_every_job_once_even_many_at_a_time() {
        let count = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        for _ in 0..200 {
            let count = count.clone();
            let tx = tx.clone();
            pool().execute(Box::new(move || {
                count.fetch_add(1, Ordering::SeqCst);
                tx.send(()).unwrap();
            }));
        }
        for _ in 0..200 {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("a job never ran");
        }
        assert_eq!(count.load(Ordering::SeqCst), 200);
    }

    #[test]
    fn blocked_jobs_do_not_hold_up_others() {
        // Two jobs that wait for each other only finish if they run on
        // two threads at once.
        let (a_tx, a_rx) = mpsc::channel::<()>();
        let (b_tx, b_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let done2 = done_tx.clone();
        pool().execute(Box::new(move || {
            a_tx.send(()).unwrap();
            b_rx.recv().unwrap();
            done_tx.send(()).unwrap();
        }));
        pool().execute(Box::new(move || {
            a_rx.recv().unwrap();
            b_tx.send(()).unwrap();
            done2.send(()).unwrap();
        }));
        for _ in 0..2 {
            done_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("deadlocked");
        }
    }
}
