//! Multi-worker runtimes: where tasks run, cross-thread wakes, join and
//! abort across workers, panics, and shutdown with ops in flight on every
//! worker. Two workers throughout (the test machines have two cores).

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::{tcp_pair, within, CountedBuf};
use veloq::net::TcpListener;
use veloq::sync::{mpsc, oneshot};
use veloq::time::{sleep, timeout};
use veloq::Runtime;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("multi-worker runtime")
}

#[test]
fn send_future_spawned_on_each_worker_sees_its_worker_id() {
    within(60, || {
        let rt = runtime(2);
        assert_eq!(rt.workers(), 2);
        rt.block_on(async {
            assert_eq!(veloq::worker_id(), 0);
            assert_eq!(veloq::worker_count(), 2);
            let mut threads = Vec::new();
            for w in 0..veloq::worker_count() {
                let (id, thread) = veloq::spawn_on(w, || async {
                    // A !Send value lives across an await: the future is
                    // created on, and never leaves, the worker.
                    let local = Rc::new(Cell::new(veloq::worker_id()));
                    veloq::yield_now().await;
                    sleep(Duration::from_millis(1)).await;
                    (local.get(), std::thread::current().id())
                })
                .await
                .unwrap();
                assert_eq!(id, w, "spawn_on({w}) ran on worker {id}");
                threads.push(thread);
            }
            assert_eq!(threads[0], std::thread::current().id());
            assert_ne!(threads[0], threads[1]);
            // Tasks that a worker spawns stay on it.
            let nested = veloq::spawn_on(1, || async {
                veloq::spawn(async { veloq::worker_id() }).await.unwrap()
            });
            assert_eq!(nested.await.unwrap(), 1);
            // spawn_balanced lands on some worker, and reports where.
            let mut seen = [0usize; 2];
            for _ in 0..64 {
                let id = veloq::spawn_balanced(|| async { veloq::worker_id() })
                    .await
                    .unwrap();
                seen[id] += 1;
            }
            assert_eq!(seen[0] + seen[1], 64);
        });
    });
}

#[test]
fn spawn_balanced_prefers_the_less_loaded_worker() {
    within(60, || {
        let rt = runtime(2);
        rt.block_on(async {
            // Load worker 0 with 100 idle tasks; balanced spawns then pick
            // worker 1 whenever their two random choices differ (always,
            // with two workers).
            let mut idle = Vec::new();
            for _ in 0..100 {
                idle.push(veloq::spawn(std::future::pending::<()>()));
            }
            let mut ids = Vec::new();
            for _ in 0..20 {
                ids.push(
                    veloq::spawn_balanced(|| async { veloq::worker_id() })
                        .await
                        .unwrap(),
                );
            }
            assert!(ids.iter().all(|&id| id == 1), "picked {ids:?}");
            for h in idle {
                h.abort();
            }
        });
    });
}

#[test]
fn wake_from_another_thread_reaches_a_parked_worker_promptly() {
    within(120, || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut worst = Duration::ZERO;
            for round in 0..20 {
                let (tx, rx) = oneshot::channel::<Instant>();
                let (back_tx, back_rx) = oneshot::channel::<Duration>();
                veloq::spawn_on(1, move || async move {
                    let sent = rx.await.unwrap();
                    back_tx.send(sent.elapsed()).unwrap();
                });
                // Let worker 1 run out of work and park in its driver.
                sleep(Duration::from_millis(20)).await;
                // Wake it from a thread that is no worker at all.
                std::thread::spawn(move || tx.send(Instant::now()).unwrap())
                    .join()
                    .unwrap();
                let latency = timeout(Duration::from_secs(10), back_rx)
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: the parked worker never woke"))
                    .unwrap();
                worst = worst.max(latency);
            }
            eprintln!("worst wake latency of a parked worker: {worst:?}");
            assert!(worst < Duration::from_secs(2), "worst latency {worst:?}");
        });
    });
}

#[test]
fn wakes_aimed_at_a_busy_worker_cost_no_kernel_round_trip() {
    within(120, || {
        let rt = runtime(2);
        let delta = rt.block_on(async {
            let (tx, mut rx) = mpsc::unbounded::<u32>();
            let messages = 20_000u32;
            let on_worker = veloq::spawn_on(1, move || async move {
                let busy = Rc::new(Cell::new(true));
                let b = busy.clone();
                // Keeps the worker runnable: it never parks meanwhile.
                let spinner = veloq::spawn(async move {
                    while b.get() {
                        veloq::yield_now().await;
                    }
                });
                veloq::yield_now().await;
                let before = veloq::runtime::driver_stats().completions;
                let mut got = 0;
                while let Some(i) = rx.recv().await {
                    assert_eq!(i, got);
                    got += 1;
                }
                let after = veloq::runtime::driver_stats().completions;
                busy.set(false);
                spinner.await.unwrap();
                assert_eq!(got, messages);
                after - before
            });
            // Another thread sends; every message may wake the receiver.
            std::thread::spawn(move || {
                for i in 0..messages {
                    tx.try_send(i).unwrap();
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
            .join()
            .unwrap();
            on_worker.await.unwrap()
        });
        // Each wake that reached the driver would be one completion (the
        // eventfd read / the posted wake packet).
        assert!(
            delta < 20,
            "{delta} driver completions on a busy worker receiving cross-thread wakes"
        );
    });
}

#[test]
fn join_and_abort_across_workers() {
    within(60, || {
        let rt = runtime(2);
        rt.block_on(async {
            // Join a worker-1 task from worker 0.
            let h = veloq::spawn_on(1, || async {
                sleep(Duration::from_millis(5)).await;
                String::from("from worker 1")
            });
            assert_eq!(h.await.unwrap(), "from worker 1");

            // Join a worker-0 task from worker 1.
            let local = veloq::spawn(async {
                sleep(Duration::from_millis(5)).await;
                veloq::worker_id() * 10 + 7
            });
            let remote = veloq::spawn_on(1, move || async move {
                (veloq::worker_id(), local.await.unwrap())
            });
            assert_eq!(remote.await.unwrap(), (1, 7));

            // Abort a worker-1 task from worker 0: its future is dropped on
            // worker 1.
            let dropped_on = Arc::new(AtomicUsize::new(usize::MAX));
            struct Marker(Arc<AtomicUsize>);
            impl Drop for Marker {
                fn drop(&mut self) {
                    self.0.store(veloq::worker_id(), Ordering::SeqCst);
                }
            }
            let (started_tx, started_rx) = oneshot::channel();
            let d = dropped_on.clone();
            let h = veloq::spawn_on(1, move || async move {
                let _m = Marker(d);
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await;
            });
            started_rx.await.unwrap();
            h.abort();
            let err = h.await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
            let start = Instant::now();
            while dropped_on.load(Ordering::SeqCst) == usize::MAX {
                assert!(start.elapsed() < Duration::from_secs(10), "not dropped");
                sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(dropped_on.load(Ordering::SeqCst), 1);

            // Abort a worker-0 task from worker 1.
            let d = Arc::new(AtomicUsize::new(usize::MAX));
            let d2 = d.clone();
            let victim = veloq::spawn(async move {
                let _m = Marker(d2);
                std::future::pending::<()>().await;
            });
            veloq::yield_now().await;
            let aborter = veloq::spawn_on(1, move || async move {
                victim.abort();
                victim.await.unwrap_err().is_cancelled()
            });
            assert!(aborter.await.unwrap());
            veloq::yield_now().await;
            assert_eq!(d.load(Ordering::SeqCst), 0, "dropped on worker 0");

            // Aborting before the task reached its worker: it never runs.
            // Worker 1's thread is held in a blocking wait meanwhile, so the
            // task cannot run before the abort.
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let (held_tx, held_rx) = oneshot::channel();
            veloq::spawn_on(1, move || async move {
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            });
            held_rx.await.unwrap();
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let h = veloq::spawn_on(1, move || async move { r.store(true, Ordering::SeqCst) });
            h.abort();
            release_tx.send(()).unwrap();
            assert!(h.await.unwrap_err().is_cancelled());
            sleep(Duration::from_millis(20)).await;
            assert!(!ran.load(Ordering::SeqCst), "an aborted spawn_on task ran");
        });
    });
}

#[test]
fn panic_in_a_task_does_not_take_down_its_worker() {
    within(60, || {
        let rt = runtime(2);
        rt.block_on(async {
            // A long-lived task on worker 1 that must survive its neighbour.
            let (tx, mut rx) = mpsc::unbounded::<u32>();
            let survivor = veloq::spawn_on(1, move || async move {
                let mut sum = 0;
                while let Some(v) = rx.recv().await {
                    sum += v;
                }
                sum
            });
            tx.send(1).await.unwrap();
            let err = veloq::spawn_on(1, || async {
                veloq::yield_now().await;
                panic!("boom on worker {}", veloq::worker_id());
            })
            .await
            .unwrap_err();
            assert!(err.is_panic());
            assert_eq!(err.to_string(), "task panicked: boom on worker 1");
            // The closure itself panicking is caught the same way.
            let err = veloq::spawn_on(1, || -> std::future::Ready<()> { panic!("in the closure") })
                .await
                .unwrap_err();
            assert!(err.is_panic());
            // Worker 1 goes on: new tasks run, old ones keep running.
            let id = veloq::spawn_on(1, || async { veloq::worker_id() })
                .await
                .unwrap();
            assert_eq!(id, 1);
            tx.send(2).await.unwrap();
            drop(tx);
            assert_eq!(survivor.await.unwrap(), 3);
        });
    });
}

/// Counts worker threads whose thread-locals were destroyed: they ended.
static THREADS_ENDED: AtomicUsize = AtomicUsize::new(0);

struct EndOfThread;

impl Drop for EndOfThread {
    fn drop(&mut self) {
        THREADS_ENDED.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local! {
    static END_OF_THREAD: EndOfThread = const { EndOfThread };
}

#[test]
fn shutdown_with_ops_in_flight_on_every_worker() {
    within(120, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let ended_before = THREADS_ENDED.load(Ordering::SeqCst);
        let per_worker = 3;
        let rt = runtime(2);
        let started = {
            let drops = drops.clone();
            rt.block_on(async move {
                let mut ready = Vec::new();
                for w in 0..veloq::worker_count() {
                    let (tx, rx) = oneshot::channel::<()>();
                    ready.push(rx);
                    let drops = drops.clone();
                    // Each worker: an accept, reads on connected pairs and a
                    // long sleep, all pending when the runtime is dropped.
                    veloq::spawn_on(w, move || async move {
                        if veloq::worker_id() != 0 {
                            END_OF_THREAD.with(|_| {});
                        }
                        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                        veloq::spawn(async move {
                            let _ = listener.accept().await;
                            unreachable!("nobody connects");
                        });
                        let mut pairs = Vec::new();
                        for _ in 0..per_worker {
                            let (client, server) = tcp_pair().await;
                            let drops = drops.clone();
                            veloq::spawn(async move {
                                let buf = CountedBuf::new(4096, &drops);
                                let _ = server.read(buf).await;
                                unreachable!("nobody writes");
                            });
                            pairs.push(client);
                        }
                        veloq::spawn(sleep(Duration::from_secs(3600)));
                        // Give the reads a turn to be submitted.
                        veloq::yield_now().await;
                        veloq::yield_now().await;
                        tx.send(()).unwrap();
                        // Keep the clients open (the reads stay pending).
                        std::future::pending::<()>().await;
                        drop(pairs);
                    });
                }
                for rx in ready {
                    rx.await.unwrap();
                }
                // Each worker has its ops in the kernel now.
                veloq::runtime::driver_stats().in_flight
            })
        };
        assert!(
            started >= per_worker,
            "worker 0 had {started} ops in flight"
        );
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        let t = Instant::now();
        drop(rt);
        eprintln!("multi-worker runtime dropped in {:?}", t.elapsed());
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2 * per_worker,
            "every in-flight read's buffer is freed once the runtime is dropped"
        );
        assert_eq!(
            THREADS_ENDED.load(Ordering::SeqCst) - ended_before,
            1,
            "worker 1's thread ended before drop returned"
        );
    });
}

#[test]
fn other_workers_keep_running_between_block_on_calls() {
    within(60, || {
        let rt = runtime(2);
        let (tx, mut rx) = mpsc::unbounded::<usize>();
        // Spawned from outside the runtime, on worker 1: it runs now,
        // without any block_on.
        let h = rt.spawn_on(1, move || async move {
            for i in 0..5 {
                sleep(Duration::from_millis(1)).await;
                tx.try_send(i).unwrap();
            }
            veloq::worker_id()
        });
        let start = Instant::now();
        let mut got = Vec::new();
        while got.len() < 5 {
            match rx.try_recv() {
                Ok(i) => got.push(i),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
            assert!(start.elapsed() < Duration::from_secs(10), "worker 1 idle");
        }
        assert_eq!(got, [0, 1, 2, 3, 4]);
        // A worker-0 task spawned from outside waits for block_on.
        let zero = rt.spawn_on(0, || async { veloq::worker_id() });
        assert_eq!(
            rt.block_on(async { (h.await.unwrap(), zero.await.unwrap()) }),
            (1, 0)
        );
    });
}

#[test]
fn pinned_workers_run_on_one_cpu_each() {
    within(60, || {
        let rt = Runtime::builder().workers(2).pin(true).build().unwrap();
        let cpus = rt.block_on(async {
            let mut cpus = Vec::new();
            for w in 0..2 {
                cpus.push(
                    veloq::spawn_on(w, || async { allowed_cpus() })
                        .await
                        .unwrap(),
                );
            }
            cpus
        });
        drop(rt);
        if cfg!(target_os = "linux") {
            for (w, c) in cpus.iter().enumerate() {
                let c = c.as_deref().expect("Cpus_allowed_list");
                assert!(
                    !c.contains(',') && !c.contains('-'),
                    "worker {w} may run on CPUs {c}"
                );
            }
        }
    });
}

/// The CPUs the calling thread may run on, as Linux lists them.
fn allowed_cpus() -> Option<String> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|s| s.trim().to_string())
}

#[test]
fn zero_workers_is_invalid_input() {
    let err = Runtime::builder().workers(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
#[should_panic(expected = "no worker 2: the runtime has 2 worker(s)")]
fn spawn_on_a_missing_worker_panics() {
    let rt = runtime(2);
    rt.block_on(async {
        drop(veloq::spawn_on(2, || async {}));
    });
}

#[test]
fn single_worker_runtime_has_worker_zero() {
    veloq::block_on(async {
        assert_eq!(veloq::worker_count(), 1);
        assert_eq!(veloq::worker_id(), 0);
        let id = veloq::spawn_on(0, || async { veloq::worker_id() })
            .await
            .unwrap();
        assert_eq!(id, 0);
        assert_eq!(veloq::spawn_balanced(|| async { 5 }).await.unwrap(), 5);
    });
}

#[test]
#[should_panic(expected = "no runtime on this thread")]
fn worker_id_outside_a_runtime_panics() {
    veloq::worker_id();
}
