//! The executor through the public API: spawning, joining, aborting,
//! panics, fairness, cross-thread wakes, nesting and runtime settings.

mod util;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use veloq::time::sleep;
use veloq::{JoinError, Runtime};

/// Sets its flag when dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

fn poll_now<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

#[veloq::test]
async fn spawn_and_join() {
    let a = veloq::spawn(async { 20 });
    let b = veloq::spawn(async move { a.await.unwrap() + 22 });
    assert_eq!(b.await.unwrap(), 42);
}

#[veloq::test]
async fn tasks_need_not_be_send() {
    let shared = Rc::new(RefCell::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..10 {
        let shared = shared.clone();
        handles.push(veloq::spawn(async move {
            veloq::yield_now().await;
            shared.borrow_mut().push(i);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mut got = shared.borrow().clone();
    got.sort();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[veloq::test]
async fn many_tasks() {
    let handles: Vec<_> = (0..20_000u64)
        .map(|i| {
            veloq::spawn(async move {
                if i % 3 == 0 {
                    veloq::yield_now().await;
                }
                i
            })
        })
        .collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    assert_eq!(sum, (0..20_000u64).sum());
}

#[veloq::test]
async fn abort_cancels_a_sleeping_task() {
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let handle = veloq::spawn(async move {
        let _flag = flag;
        sleep(Duration::from_secs(30)).await;
        unreachable!("aborted task woke up");
    });
    // Let it start and park on its timer.
    veloq::yield_now().await;
    assert!(!handle.is_finished());
    handle.abort();
    assert!(handle.is_finished());
    let start = Instant::now();
    let err = handle.await.unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(!err.is_panic());
    assert_eq!(err.to_string(), "task was cancelled");
    // The future is dropped at the runtime's next turn.
    veloq::yield_now().await;
    assert!(dropped.get(), "aborted task's future was not dropped");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[veloq::test]
async fn abort_after_completion_keeps_the_output() {
    let handle = veloq::spawn(async { "done" });
    while !handle.is_finished() {
        veloq::yield_now().await;
    }
    handle.abort();
    assert_eq!(handle.await.unwrap(), "done");
}

#[veloq::test]
async fn panicking_task_is_reported_and_the_runtime_keeps_working() {
    let bad = veloq::spawn(async {
        veloq::yield_now().await;
        panic!("deliberate task panic");
    });
    let err: JoinError = bad.await.unwrap_err();
    assert!(err.is_panic());
    assert!(!err.is_cancelled());
    assert!(err.to_string().contains("deliberate task panic"), "{err}");
    // Everything still works afterwards: tasks, timers.
    let good = veloq::spawn(async {
        sleep(Duration::from_millis(5)).await;
        7
    });
    assert_eq!(good.await.unwrap(), 7);
}

#[veloq::test]
async fn dropped_handle_detaches_the_task() {
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    drop(veloq::spawn(async move {
        sleep(Duration::from_millis(5)).await;
        d.set(true);
    }));
    sleep(Duration::from_millis(50)).await;
    assert!(done.get(), "a detached task must keep running");
}

#[veloq::test]
async fn yield_now_is_fair() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let tasks: Vec<_> = (0..3)
        .map(|id| {
            let log = log.clone();
            veloq::spawn(async move {
                for _ in 0..4 {
                    log.borrow_mut().push(id);
                    veloq::yield_now().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Round robin: every task runs once before any runs twice.
    let log = log.borrow();
    for round in log.chunks(3) {
        let mut r = round.to_vec();
        r.sort();
        assert_eq!(r, [0, 1, 2], "unfair order {log:?}");
    }
}

#[veloq::test]
async fn busy_task_does_not_starve_timers() {
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let spins = Rc::new(Cell::new(0u64));
    let sp = spins.clone();
    let busy = veloq::spawn(async move {
        while !s.get() {
            sp.set(sp.get() + 1);
            veloq::yield_now().await;
        }
    });
    let start = Instant::now();
    sleep(Duration::from_millis(20)).await;
    let took = start.elapsed();
    stop.set(true);
    busy.await.unwrap();
    assert!(took >= Duration::from_millis(20));
    assert!(took < Duration::from_millis(500), "timer starved: {took:?}");
    assert!(spins.get() > 0);
}

/// A one-shot flag set from another thread.
#[derive(Default)]
struct Signal {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Signal {
    fn set(&self) {
        let waker = {
            let mut s = self.state.lock().unwrap();
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            let mut s = self.state.lock().unwrap();
            if s.0 {
                Poll::Ready(())
            } else {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

#[test]
fn wake_from_another_thread_unblocks_an_idle_runtime() {
    util::within(10, || {
        veloq::block_on(async {
            // The main future, and a task, each wait on a signal set by a
            // plain thread while the runtime is blocked in the driver.
            let main_signal = Arc::new(Signal::default());
            let task_signal = Arc::new(Signal::default());
            let ts = task_signal.clone();
            let task = veloq::spawn(async move {
                ts.wait().await;
                1
            });
            let (m, t) = (main_signal.clone(), task_signal.clone());
            let thread = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                t.set();
                std::thread::sleep(Duration::from_millis(30));
                m.set();
            });
            main_signal.wait().await;
            assert_eq!(task.await.unwrap(), 1);
            thread.join().unwrap();
        })
    });
}

#[test]
fn join_handle_can_be_awaited_from_another_runtime() {
    // JoinHandle<T: Send> is Send: the result crosses threads.
    let (tx, rx) = std::sync::mpsc::channel();
    let producer = std::thread::spawn(move || {
        veloq::block_on(async move {
            let handle = veloq::spawn(async {
                sleep(Duration::from_millis(20)).await;
                String::from("from the other side")
            });
            tx.send(handle).unwrap();
            // Keep this runtime alive until the task is done.
            sleep(Duration::from_millis(200)).await;
        })
    });
    let handle = rx.recv().unwrap();
    let got = util::within(10, move || veloq::block_on(handle));
    assert_eq!(got.unwrap(), "from the other side");
    producer.join().unwrap();
}

#[test]
#[should_panic(expected = "no runtime on this thread")]
fn spawn_outside_a_runtime_panics() {
    drop(veloq::spawn(async {}));
}

#[test]
#[should_panic(expected = "no runtime on this thread")]
fn driver_stats_outside_a_runtime_panics() {
    veloq::runtime::driver_stats();
}

#[test]
#[should_panic(expected = "a runtime is already running on this thread")]
fn nested_block_on_panics() {
    veloq::block_on(async {
        veloq::block_on(async {});
    });
}

#[test]
#[should_panic(expected = "a runtime is already running on this thread")]
fn runtime_block_on_inside_block_on_panics() {
    let rt = Runtime::new().unwrap();
    veloq::block_on(async move {
        rt.block_on(async {});
    });
}

#[test]
fn main_future_panic_leaves_the_thread_usable() {
    let res = std::panic::catch_unwind(|| veloq::block_on(async { panic!("main future panic") }));
    assert!(res.is_err());
    // The context was restored while unwinding.
    assert_eq!(veloq::block_on(async { 5 }), 5);
}

#[test]
fn builder_runtime_runs_futures_and_keeps_tasks() -> io::Result<()> {
    let rt = Runtime::builder().entries(64).build()?;
    let early = rt.spawn(async { 1 });
    assert_eq!(rt.block_on(async { early.await.unwrap() + 1 }), 2);
    // Tasks outlive one block_on and run in the next.
    let counter = Rc::new(Cell::new(0));
    let c = counter.clone();
    // The handle is returned out of the first block_on (not awaited there).
    let handle = rt.block_on(async move {
        let handle = veloq::spawn(async move {
            for _ in 0..3 {
                sleep(Duration::from_millis(2)).await;
                c.set(c.get() + 1);
            }
        });
        Some(handle)
    });
    let handle = handle.expect("spawned");
    rt.block_on(handle).unwrap();
    assert_eq!(counter.get(), 3);
    assert_eq!(rt.active_tasks(), 0);
    Ok(())
}

#[test]
fn builder_rejects_unsupported_settings() {
    // (More than one worker is supported: see tests/workers.rs.)
    let err = Runtime::builder().workers(0).build().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = Runtime::builder().entries(0).build().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = Runtime::builder()
        .max_blocking_threads(0)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(Runtime::builder()
        .workers(1)
        .max_blocking_threads(2)
        .build()
        .is_ok());
}

#[test]
fn dropping_the_runtime_cancels_its_tasks() {
    let rt = Runtime::new().unwrap();
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let mut sleeper = rt.spawn(async move {
        let _flag = flag;
        sleep(Duration::from_secs(60)).await;
    });
    // One that finishes before the runtime goes.
    let mut quick = rt.spawn(async { 9 });
    rt.block_on(async { sleep(Duration::from_millis(5)).await });
    assert_eq!(rt.active_tasks(), 1);
    drop(rt);
    assert!(
        dropped.get(),
        "the sleeping task's future outlived its runtime"
    );
    match poll_now(&mut sleeper) {
        Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
        other => panic!("expected cancellation, got {:?}", other.map(|r| r.is_ok())),
    }
    // A finished task's output survives its runtime.
    assert!(matches!(poll_now(&mut quick), Poll::Ready(Ok(9))));
}

#[test]
fn dropping_the_runtime_with_io_in_flight_frees_the_buffer() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    util::within(20, move || {
        let rt = Runtime::new().unwrap();
        let (client, server) = rt.block_on(util::tcp_pair());
        let reading = Rc::new(Cell::new(false));
        let r = reading.clone();
        let buf = util::CountedBuf::new(1024, &d);
        let _task = rt.spawn(async move {
            r.set(true);
            // Nothing is ever sent: this read stays in flight.
            let (res, _buf) = server.read(buf).await;
            drop(res);
            unreachable!("the read must not complete");
        });
        rt.block_on(async {
            while !reading.get() {
                veloq::yield_now().await;
            }
            sleep(Duration::from_millis(10)).await;
        });
        drop(rt);
        drop(client);
    });
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the in-flight read's buffer leaked"
    );
}

#[veloq::test]
async fn driver_stats_count_waits() {
    let before = veloq::runtime::driver_stats();
    sleep(Duration::from_millis(5)).await;
    let after = veloq::runtime::driver_stats();
    assert!(
        after.wait_calls > before.wait_calls,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.in_flight, 0);
}

#[veloq::test]
async fn test_macro_supports_results() -> Result<(), JoinError> {
    let v = veloq::spawn(async { 3 }).await?;
    if v != 3 {
        return Err(veloq::spawn(async { panic!("unreachable") })
            .await
            .unwrap_err());
    }
    Ok(())
}

#[veloq::test]
#[should_panic(expected = "inside a veloq test")]
async fn test_macro_keeps_other_attributes() {
    panic!("inside a veloq test");
}

#[test]
fn sequential_runtimes_on_one_thread() {
    for i in 0..5 {
        assert_eq!(
            veloq::block_on(async move { veloq::spawn(async move { i * 2 }).await.unwrap() }),
            i * 2
        );
    }
}

/// A waker that uses the driver when woken, which happens inside the
/// driver's own timer processing.
struct ReentrantWaker;

impl std::task::Wake for ReentrantWaker {
    fn wake(self: Arc<Self>) {
        let mut s = sleep(Duration::from_secs(1));
        let mut cx = Context::from_waker(Waker::noop());
        let _ = Pin::new(&mut s).poll(&mut cx);
    }
}

#[test]
#[should_panic(expected = "re-entrant use of the I/O driver")]
fn reentrant_driver_use_panics_with_a_message() {
    veloq::block_on(async {
        let waker = Waker::from(Arc::new(ReentrantWaker));
        let mut s = sleep(Duration::from_millis(1));
        assert!(Pin::new(&mut s)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        // The timer fires inside the driver's wait and calls the waker.
        sleep(Duration::from_millis(20)).await;
    });
}
