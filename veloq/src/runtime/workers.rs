//! A runtime's workers: one driver and one executor per thread.
//!
//! Worker 0 is the thread that builds the [`Runtime`](super::Runtime) and
//! runs its `block_on`; workers `1..n` are threads started by the builder.
//! Each worker owns its driver and its tasks for its whole life — nothing
//! is stolen; work moves only through `spawn_on`/`spawn_balanced` (a new
//! task) and through wakers, channels and join handles (values).
//!
//! # Start
//!
//! Each thread pins itself (if asked), creates its driver and scheduler
//! and sends its [`Shared`] half back; once all have, the builder sends
//! every thread the complete [`WorkerSet`] and they start running. If any
//! fails to start, the others are told to exit and the error is returned.
//!
//! # Stop
//!
//! Dropping the runtime sets [`WorkerSet::stop`] and notifies every worker;
//! each leaves its loop and, with its runtime still current, cancels its
//! tasks (dropping their futures, which cancels their ops) and then drops
//! its driver, which cancels and drains whatever is still in flight. The
//! drop then joins every thread. A worker whose loop panics (a driver
//! failure) still shuts down this way; the panic is passed on by the join.

use std::io;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread;

use super::context;
use super::executor::Core;
use super::scheduler::{Scheduler, Shared};
use super::spawn_on::random;
use crate::io::driver::{Driver, DriverConfig, PlatformDriver};
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::sys;

/// The workers of one runtime, as every worker and task sees them.
pub(crate) struct WorkerSet {
    workers: Box<[Arc<Shared>]>,
    /// Set when the runtime is dropped: workers `1..n` leave their loops.
    stop: AtomicBool,
}

impl WorkerSet {
    /// A set of `workers` (index = worker id).
    pub(crate) fn new(workers: Vec<Arc<Shared>>) -> Self {
        WorkerSet {
            workers: workers.into_boxed_slice(),
            stop: AtomicBool::new(false),
        }
    }

    /// How many workers.
    pub(crate) fn len(&self) -> usize {
        self.workers.len()
    }

    /// Worker `i`'s shared half.
    pub(crate) fn get(&self, i: usize) -> Option<&Arc<Shared>> {
        self.workers.get(i)
    }

    /// The less loaded of two distinct random workers.
    pub(crate) fn pick_balanced(&self) -> usize {
        let n = self.len();
        if n == 1 {
            return 0;
        }
        let a = random(n);
        let b = (a + 1 + random(n - 1)) % n;
        if self.workers[b].load() < self.workers[a].load() {
            b
        } else {
            a
        }
    }

    /// Asks every worker thread to stop.
    fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        for w in self.workers.iter() {
            w.notify();
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// The threads of workers `1..n`, joined on drop.
pub(crate) struct Threads {
    set: Arc<WorkerSet>,
    handles: Vec<thread::JoinHandle<()>>,
}

impl Threads {
    /// Asks every worker thread to stop (they do so concurrently).
    pub(crate) fn request_stop(&self) {
        self.set.request_stop();
    }

    /// Stops and joins every worker thread; passes a worker's panic on
    /// (unless this thread is already panicking).
    pub(crate) fn stop_and_join(&mut self) {
        self.set.request_stop();
        let mut panic = None;
        for h in self.handles.drain(..) {
            if let Err(p) = h.join() {
                panic.get_or_insert(p);
            }
        }
        if let Some(p) = panic {
            if !thread::panicking() {
                std::panic::resume_unwind(p);
            }
        }
    }
}

/// Creates worker 0 (on this thread) and starts workers `1..n`.
pub(crate) fn start(
    config: &DriverConfig,
    workers: usize,
    pin: bool,
) -> io::Result<(Rc<Core>, Option<Threads>)> {
    debug_assert!(workers >= 1);
    if pin {
        sys::pin_current_thread(0)?;
    }
    let driver = PlatformDriver::new(config)?;
    let scheduler = Scheduler::new(driver.wake_handle());
    let mut shared = vec![scheduler.shared().clone()];
    if workers == 1 {
        let set = Arc::new(WorkerSet::new(shared));
        return Ok((Rc::new(Core::new(Some(driver), scheduler, 0, set)), None));
    }

    let (ready_tx, ready_rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(workers - 1);
    let mut go = Vec::with_capacity(workers - 1);
    let mut failure = None;
    for id in 1..workers {
        let (go_tx, go_rx) = mpsc::channel();
        let config = config.clone();
        let ready_tx = ready_tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("veloq-worker-{id}"))
            .spawn(move || worker_main(id, config, pin, ready_tx, go_rx));
        match spawned {
            Ok(h) => {
                handles.push(h);
                go.push(go_tx);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(ready_tx);
    shared.resize(workers, scheduler.shared().clone());
    for _ in 0..handles.len() {
        match ready_rx.recv() {
            Ok((id, Ok(s))) => shared[id] = s,
            Ok((_, Err(e))) => {
                failure.get_or_insert(e);
            }
            Err(_) => {
                failure.get_or_insert_with(|| io::Error::other("veloq: a worker thread died"));
            }
        }
    }
    if let Some(e) = failure {
        // Dropping the senders tells every started thread to exit.
        drop(go);
        for h in handles {
            let _ = h.join();
        }
        return Err(e);
    }
    let set = Arc::new(WorkerSet::new(shared));
    for tx in go {
        // A thread that is gone already reported its failure above.
        let _ = tx.send(set.clone());
    }
    let core = Rc::new(Core::new(Some(driver), scheduler, 0, set.clone()));
    Ok((core, Some(Threads { set, handles })))
}

type Ready = (usize, io::Result<Arc<Shared>>);

/// A worker thread: set up, report, wait for the set, run until stopped.
fn worker_main(
    id: usize,
    config: DriverConfig,
    pin: bool,
    ready: mpsc::Sender<Ready>,
    go: mpsc::Receiver<Arc<WorkerSet>>,
) {
    let setup = (|| {
        if pin {
            sys::pin_current_thread(id)?;
        }
        PlatformDriver::new(&config)
    })();
    let driver = match setup {
        Ok(d) => d,
        Err(e) => {
            let _ = ready.send((id, Err(e)));
            return;
        }
    };
    let scheduler = Scheduler::new(driver.wake_handle());
    if ready.send((id, Ok(scheduler.shared().clone()))).is_err() {
        return;
    }
    drop(ready);
    let Ok(set) = go.recv() else { return };
    let core = Rc::new(Core::new(Some(driver), scheduler, id, set));
    let _enter = context::enter(&core);
    // Shuts the worker down when the loop ends, also by a panic.
    let _shutdown = ShutdownGuard(&core);
    while !core.workers().stopping() {
        core.turn(|| false);
    }
}

/// Cancels a worker's tasks and drops its driver when dropped.
struct ShutdownGuard<'a>(&'a Core);

impl Drop for ShutdownGuard<'_> {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}
