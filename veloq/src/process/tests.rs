//! Where process waits and pipe I/O run (Linux): through the driver inside
//! a runtime (no pool job at all), on the blocking pool outside one, and
//! on the pool again when a runtime shuts down under a wait. The pool jobs
//! are counted per thread by `offload::to_pool`, so tests running beside
//! these cannot disturb the counts.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use super::child::join3;
use super::offload::pool_jobs;
use super::test_util::wait_for_many;
use super::{Command, Stdio};
use crate::runtime::DriverKind;

/// Polls `fut` to its end on this thread with no veloq runtime.
fn block_on_plain<F: Future>(fut: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park_timeout(Duration::from_millis(100));
    }
}

/// Whether `pid` names a process (a zombie counts).
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for the process.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Pipes `len` bytes through `cat` and checks they come back.
async fn cat_round_trip(len: usize) {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let writer = async move {
        let (res, _) = stdin.write_all(data).await;
        res.unwrap();
        // `stdin` drops here: end of file for `cat`.
    };
    let reader = async { stdout.read_to_end(Vec::new()).await };
    let ((), (res, echoed), ()) = join3(writer, reader, async {}).await;
    assert_eq!(res.unwrap(), len);
    assert!(echoed
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i % 251) as u8));
    assert!(child.wait().await.unwrap().success());
}

#[test]
fn inside_a_runtime_no_pool_job_runs() {
    for kind in [DriverKind::IoUring, DriverKind::Epoll] {
        let rt = match crate::Runtime::builder().driver(kind).build() {
            Ok(rt) => rt,
            // io_uring refused here (seccomp, sysctl): epoll still runs.
            Err(e) if kind == DriverKind::IoUring => {
                eprintln!("io_uring unavailable ({e}); epoll only");
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(rt.driver_kind(), kind);
        let before = pool_jobs();
        rt.block_on(driver_path());
        assert_eq!(
            pool_jobs(),
            before,
            "{kind:?}: the driver path must not use the pool"
        );
    }
}

/// Waits, kills, pipes and many children: all through the driver.
async fn driver_path() {
    {
        let status = Command::new("sh").args(["-c", "exit 3"]).status().await;
        assert_eq!(status.unwrap().code(), Some(3));

        let mut child = Command::new("sleep").arg("100").spawn().unwrap();
        let res = crate::time::timeout(Duration::from_millis(20), child.wait()).await;
        assert!(res.is_err(), "a dropped wait");
        child.kill().await.unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));

        cat_round_trip(4 << 20).await;

        let out = Command::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .output()
            .await
            .unwrap();
        assert_eq!(
            (&out.stdout[..], &out.stderr[..]),
            (&b"out\n"[..], &b"err\n"[..])
        );

        // Many children waited for at once.
        wait_for_many(50, 7, |code| {
            Command::new("sh")
                .args(["-c", &format!("sleep 0.05; exit {code}")])
                .spawn()
                .unwrap()
        })
        .await;
    }
}

#[test]
fn outside_a_runtime_the_pool_waits_and_reads() {
    let before = pool_jobs();
    block_on_plain(async {
        let status = Command::new("sh").args(["-c", "exit 6"]).status().await;
        assert_eq!(status.unwrap().code(), Some(6));
        cat_round_trip(1 << 20).await;
    });
    assert!(pool_jobs() > before, "outside a runtime the pool waits");
}

#[test]
fn a_wait_outlives_its_runtime_on_the_pool() {
    let before = pool_jobs();
    let pid = crate::block_on(async {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.3"])
            .spawn()
            .unwrap();
        // Starts the wait's task, then leaves it to reap in the background.
        let res = crate::time::timeout(Duration::from_millis(20), child.wait()).await;
        assert!(res.is_err());
        let pid = child.id().unwrap();
        drop(child);
        pid
    });
    // The runtime is gone with the wait's task: the pool took the wait
    // over, and reaps the child once it exits.
    assert_eq!(pool_jobs(), before + 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "the child was never reaped");
        thread::sleep(Duration::from_millis(10));
    }
}
