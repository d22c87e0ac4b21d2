//! Executor tests that need no I/O driver: a `Core` without a driver is
//! made current and its scheduler driven by hand.

use std::cell::{Cell, RefCell};
use std::future::{pending, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::context::{self, EnterGuard};
use super::executor::{Core, TASK_BUDGET};
use super::scheduler::Scheduler;
use super::workers::WorkerSet;
use super::{spawn, yield_now, JoinError};
use crate::io::driver::Unpark;

/// Counts driver wakes.
#[derive(Default)]
struct CountUnpark(AtomicUsize);

impl Unpark for CountUnpark {
    fn unpark(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct TestRuntime {
    core: Rc<Core>,
    unparks: Arc<CountUnpark>,
    _enter: EnterGuard,
}

impl TestRuntime {
    fn new() -> Self {
        let unparks = Arc::new(CountUnpark::default());
        let scheduler = Scheduler::new(unparks.clone());
        let set = Arc::new(WorkerSet::new(vec![scheduler.shared().clone()]));
        let core = Rc::new(Core::new(None, scheduler, 0, set));
        let enter = context::enter(&core);
        TestRuntime {
            core,
            unparks,
            _enter: enter,
        }
    }

    fn run(&self) -> usize {
        self.core.scheduler.run_batch(TASK_BUDGET)
    }

    /// Runs tasks until none is queued.
    fn run_until_idle(&self) {
        while self.core.scheduler.has_work() {
            self.run();
        }
    }

    fn unparks(&self) -> usize {
        self.unparks.0.load(Ordering::SeqCst)
    }
}

impl Drop for TestRuntime {
    fn drop(&mut self) {
        self.core.scheduler.shutdown();
    }
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

/// Sets its flag when dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A future that parks its waker where a test can reach it.
fn parked(slot: Arc<Mutex<Option<Waker>>>) -> impl Future<Output = ()> {
    let mut first = true;
    std::future::poll_fn(move |cx| {
        if first {
            first = false;
            *slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
}

#[test]
fn spawned_task_runs_and_joins() {
    let rt = TestRuntime::new();
    let mut handle = spawn(async { 40 + 2 });
    assert!(!handle.is_finished());
    assert_eq!(rt.core.scheduler.active_tasks(), 1);
    assert_eq!(rt.run(), 1);
    assert!(handle.is_finished());
    assert_eq!(rt.core.scheduler.active_tasks(), 0);
    match poll_once(&mut handle) {
        Poll::Ready(Ok(v)) => assert_eq!(v, 42),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn panicking_task_is_reported_and_others_run() {
    let rt = TestRuntime::new();
    let mut bad = spawn(async {
        panic!("boom in a task");
    });
    let mut good = spawn(async { "fine" });
    rt.run_until_idle();
    let err = match poll_once(&mut bad) {
        Poll::Ready(Err(e)) => e,
        _ => panic!("panicking task did not report an error"),
    };
    assert!(err.is_panic());
    assert!(!err.is_cancelled());
    assert_eq!(err.to_string(), "task panicked: boom in a task");
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in a task"));
    assert!(matches!(poll_once(&mut good), Poll::Ready(Ok("fine"))));
    assert_eq!(rt.core.scheduler.active_tasks(), 0);
}

#[test]
fn abort_before_first_poll_drops_future() {
    let rt = TestRuntime::new();
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let polled = Rc::new(Cell::new(false));
    let p = polled.clone();
    let mut handle = spawn(async move {
        let _flag = flag;
        p.set(true);
    });
    handle.abort();
    assert!(handle.is_finished());
    rt.run_until_idle();
    assert!(dropped.get(), "aborted task's future was not dropped");
    assert!(!polled.get(), "aborted task ran");
    match poll_once(&mut handle) {
        Poll::Ready(Err(e)) => assert!(e.is_cancelled(), "{e:?}"),
        _ => panic!("aborted task did not report cancellation"),
    }
    assert_eq!(rt.core.scheduler.active_tasks(), 0);
}

#[test]
fn abort_idle_task_drops_its_future() {
    let rt = TestRuntime::new();
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let mut handle = spawn(async move {
        let _flag = flag;
        pending::<()>().await;
    });
    rt.run_until_idle();
    assert!(!dropped.get());
    assert!(poll_once(&mut handle).is_pending());
    handle.abort();
    rt.run_until_idle();
    assert!(dropped.get());
    assert!(matches!(poll_once(&mut handle), Poll::Ready(Err(ref e)) if e.is_cancelled()));
    assert_eq!(rt.core.scheduler.active_tasks(), 0);
}

#[test]
fn abort_after_finish_keeps_output() {
    let rt = TestRuntime::new();
    let mut handle = spawn(async { 7 });
    rt.run_until_idle();
    handle.abort();
    assert!(matches!(poll_once(&mut handle), Poll::Ready(Ok(7))));
}

#[test]
fn dropped_handle_detaches() {
    let rt = TestRuntime::new();
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    drop(spawn(async move {
        yield_now().await;
        yield_now().await;
        d.set(true);
    }));
    rt.run_until_idle();
    assert!(done.get(), "detached task did not run to completion");
}

#[test]
fn remote_wake_of_busy_worker_is_queued_without_unpark() {
    let rt = TestRuntime::new();
    let slot = Arc::new(Mutex::new(None));
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    let fut = parked(slot.clone());
    let _h = spawn(async move {
        fut.await;
        d.set(true);
    });
    rt.run_until_idle();
    assert!(!rt.core.scheduler.has_work());
    let waker = slot.lock().unwrap().take().expect("task parked its waker");
    std::thread::spawn(move || waker.wake()).join().unwrap();
    assert_eq!(
        rt.unparks(),
        0,
        "a wake aimed at a worker that is not parked must not wake its driver"
    );
    assert!(rt.core.scheduler.has_work());
    // The notification keeps the worker from parking before it looked.
    assert!(!rt.core.scheduler.shared().parker().park_begin());
    rt.run_until_idle();
    assert!(done.get());
}

#[test]
fn remote_wakes_of_parked_worker_unpark_once() {
    let rt = TestRuntime::new();
    let mut wakers = Vec::new();
    for _ in 0..2 {
        let slot = Arc::new(Mutex::new(None));
        drop(spawn(parked(slot.clone())));
        rt.run_until_idle();
        wakers.push(slot.lock().unwrap().take().expect("task parked its waker"));
    }
    let parker = rt.core.scheduler.shared().parker();
    assert!(parker.park_begin());
    std::thread::spawn(move || {
        for w in wakers {
            w.wake();
        }
    })
    .join()
    .unwrap();
    assert_eq!(rt.unparks(), 1, "two wakes of a parked worker: one unpark");
    parker.park_end();
    assert!(rt.core.scheduler.has_work());
    rt.run_until_idle();
    assert_eq!(rt.core.scheduler.active_tasks(), 0);
}

#[test]
fn local_wake_does_not_unpark() {
    let rt = TestRuntime::new();
    let slot = Arc::new(Mutex::new(None));
    let fut = parked(slot.clone());
    let _h = spawn(fut);
    rt.run_until_idle();
    let waker = slot.lock().unwrap().take().unwrap();
    waker.wake();
    assert!(rt.core.scheduler.has_work());
    assert_eq!(
        rt.unparks(),
        0,
        "a same-thread wake must not touch the driver"
    );
    rt.run_until_idle();
    assert_eq!(rt.core.scheduler.active_tasks(), 0);
}

#[test]
fn batch_respects_budget() {
    let rt = TestRuntime::new();
    let polls = Rc::new(Cell::new(0usize));
    for _ in 0..3 {
        let polls = polls.clone();
        drop(spawn(async move {
            loop {
                polls.set(polls.get() + 1);
                yield_now().await;
            }
        }));
    }
    assert_eq!(rt.run(), TASK_BUDGET);
    assert_eq!(polls.get(), TASK_BUDGET);
    assert!(rt.core.scheduler.has_work());
}

#[test]
fn yield_now_lets_others_run() {
    let rt = TestRuntime::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    for id in 0..2 {
        let log = log.clone();
        drop(spawn(async move {
            for _ in 0..3 {
                log.borrow_mut().push(id);
                yield_now().await;
            }
        }));
    }
    rt.run_until_idle();
    assert_eq!(*log.borrow(), [0, 1, 0, 1, 0, 1]);
}

#[test]
fn shutdown_drops_every_task() {
    let rt = TestRuntime::new();
    let mut flags = Vec::new();
    let mut handles = Vec::new();
    for i in 0..10 {
        let dropped = Rc::new(Cell::new(false));
        let flag = DropFlag(dropped.clone());
        flags.push(dropped);
        let h = spawn(async move {
            let _flag = flag;
            pending::<()>().await;
        });
        if i % 2 == 0 {
            handles.push(h);
        }
        // Half are never polled before shutdown.
        if i == 4 {
            rt.run_until_idle();
        }
    }
    // A task that spawns another while being dropped.
    struct SpawnOnDrop(Rc<Cell<bool>>);
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            let flag = DropFlag(self.0.clone());
            drop(spawn(async move {
                let _flag = flag;
                pending::<()>().await;
            }));
        }
    }
    let late = Rc::new(Cell::new(false));
    let sod = SpawnOnDrop(late.clone());
    drop(spawn(async move {
        let _s = sod;
        pending::<()>().await;
    }));
    rt.core.scheduler.shutdown();
    assert!(flags.iter().all(|f| f.get()), "a task survived shutdown");
    assert!(late.get(), "a task spawned during shutdown survived it");
    for mut h in handles {
        assert!(matches!(poll_once(&mut h), Poll::Ready(Err(ref e)) if e.is_cancelled()));
    }
}

#[test]
fn join_error_formats_and_converts() {
    let e = JoinError::cancelled();
    assert_eq!(e.to_string(), "task was cancelled");
    assert_eq!(format!("{e:?}"), "JoinError::Cancelled");
    let e = e.try_into_panic().unwrap_err();
    let io: std::io::Error = e.into();
    assert_eq!(io.kind(), std::io::ErrorKind::Other);
    let e = JoinError::panic(Box::new(String::from("bad")));
    assert_eq!(format!("{e:?}"), "JoinError::Panic(\"bad\")");
    let e = JoinError::panic(Box::new(17u32));
    assert_eq!(e.to_string(), "task panicked");
    fn assert_send_sync<T: Send + Sync + std::error::Error + 'static>() {}
    assert_send_sync::<JoinError>();
}

#[test]
#[should_panic(expected = "no runtime on this thread")]
fn spawn_outside_runtime_panics() {
    drop(spawn(async {}));
}

#[test]
#[should_panic(expected = "no runtime on this thread")]
fn driver_outside_runtime_panics() {
    context::with_driver(|_| ());
}

#[test]
fn try_with_driver_outside_runtime_is_none() {
    assert!(context::try_with_driver(|_| ()).is_none());
    // A runtime without a driver (shut down) is `None` too.
    let _rt = TestRuntime::new();
    assert!(context::try_with_driver(|_| ()).is_none());
}

#[test]
#[should_panic(expected = "runtime is already running on this thread")]
fn nested_enter_panics() {
    let rt = TestRuntime::new();
    let _again = context::enter(&rt.core);
}

#[test]
fn context_is_restored_after_leaving() {
    {
        let _rt = TestRuntime::new();
        assert!(context::is_running());
    }
    assert!(!context::is_running());
}

#[test]
fn ops_after_a_hard_driver_fault_fail_with_it_and_the_runtime_lives_on() {
    let rt = crate::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = crate::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = crate::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        rt.core
            .inject_fault(std::io::Error::from_raw_os_error(libc_eio()));
        let (res, _) = server.read(vec![0u8; 8]).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc_eio()));
        // Timers (no op) still run.
        crate::time::sleep(std::time::Duration::from_millis(5)).await;
        drop(client);
    });
}

/// `EIO`'s number on this platform.
fn libc_eio() -> i32 {
    #[cfg(unix)]
    return libc::EIO;
    #[cfg(windows)]
    return 1117; // ERROR_IO_DEVICE
}
