//! Fault-injection scenarios: each `#[ignore]`d test here is run by
//! `scripts/test-faults.sh` under `strace -e inject=...`, which makes one
//! system call fail with a chosen errno, and asserts what the caller then
//! sees: the error itself (`io::Error` with that errno) from the op or the
//! constructor that met it, never a panic, never a hang (the script runs
//! every scenario under `timeout`), and no descriptor left behind.
//!
//! Run without strace the scenarios fail (nothing fails the calls they
//! expect to fail), which is why they are ignored in the ordinary suite.
//! Each one checks that the driver the script chose is running, so a
//! scenario that strace cannot reach on the wrong driver fails loudly
//! instead of passing for nothing.
//!
//! Where strace cannot reach the call (io_uring's accept and open are
//! SQEs, not system calls of the process), the script says so; the
//! io_uring accept path meets a real `EMFILE` in `tests/load_churn.rs`
//! (an accept loop under `RLIMIT_NOFILE` 64).
#![cfg(target_os = "linux")]

#[path = "util/process.rs"]
mod process;
mod util;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use process::fd_count;
use veloq::net::{TcpListener, TcpStream};
use veloq::runtime::DriverKind;
use veloq::Runtime;

/// Panics unless the runtime runs `want` (the script sets `VELOQ_DRIVER`).
fn expect_driver(rt: &Runtime, want: DriverKind) {
    assert_eq!(
        rt.driver_kind(),
        want,
        "this scenario injects into a system call only the {want:?} driver makes"
    );
}

/// The error of `r`; panics (naming `what`) if it succeeded.
fn failure<T>(what: &str, r: io::Result<T>) -> io::Error {
    match r {
        Ok(_) => panic!("{what}: succeeded"),
        Err(e) => e,
    }
}

/// Panics unless `e` carries `errno`.
fn expect_errno(what: &str, e: &io::Error, errno: i32) {
    assert_eq!(
        e.raw_os_error(),
        Some(errno),
        "{what}: expected errno {errno}, got {e:?}"
    );
}

/// `io_uring_enter` fails with `ENOMEM` on every call (the script injects
/// `when=1+`): no SQE reaches the kernel. An 8-entry ring overflows after
/// a handful of ops; the op whose push finds the SQ full and the kernel
/// refusing gets `ENOMEM` back at once. Ops stuck in the SQ stay pending
/// (the kernel may yet take them), and a timeout around them still fires,
/// because the timer wheel runs in the process.
#[test]
#[ignore = "run by scripts/test-faults.sh under strace (io_uring_enter ENOMEM)"]
fn enter_enomem_reaches_the_op() {
    let rt = Runtime::builder().entries(8).build().unwrap();
    expect_driver(&rt, DriverKind::IoUring);
    let pairs: Vec<_> = (0..24).map(|_| util::std_tcp_pair()).collect();
    let errors = rt.block_on(async {
        let mut tasks = Vec::new();
        for (_client, server) in &pairs {
            let s = TcpStream::from_std(server.try_clone().unwrap()).unwrap();
            tasks.push(veloq::spawn(async move {
                let read = s.read(vec![0u8; 16]);
                match veloq::time::timeout(Duration::from_millis(300), read).await {
                    Ok((Err(e), _)) => Some(e),
                    Ok((Ok(n), _)) => panic!("read {n} bytes though nothing was sent"),
                    Err(_) => None, // pending in the SQ: timed out
                }
            }));
        }
        let mut errors = Vec::new();
        for t in tasks {
            if let Some(e) = t.await.unwrap() {
                errors.push(e);
            }
        }
        errors
    });
    assert!(
        !errors.is_empty(),
        "no op saw ENOMEM though no enter ever succeeded"
    );
    for e in &errors {
        expect_errno("read on a refused ring", e, libc::ENOMEM);
    }
    eprintln!(
        "enter ENOMEM: {} of {} reads failed with ENOMEM",
        errors.len(),
        pairs.len()
    );
}

/// `accept4` fails once with `EMFILE` (epoll driver; `when=1`): the accept
/// returns that error, the pending connection stays queued, and the next
/// accept takes it.
#[test]
#[ignore = "run by scripts/test-faults.sh under strace (accept4 EMFILE, epoll)"]
fn accept_emfile_is_returned_and_the_next_accept_works() {
    let before = fd_count();
    let rt = Runtime::new().unwrap();
    expect_driver(&rt, DriverKind::Epoll);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let e = failure("accept under EMFILE", listener.accept().await);
        expect_errno("accept", &e, libc::EMFILE);
        let (stream, _) = veloq::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("second accept hung")
            .expect("second accept");
        use std::io::{Read, Write};
        client.write_all(b"ping").unwrap();
        let (res, buf) = stream.read_exact(vec![0u8; 4]).await;
        res.unwrap();
        assert_eq!(&buf, b"ping");
        let (res, _) = stream.write_all(b"pong".to_vec()).await;
        res.unwrap();
        let mut reply = [0u8; 4];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"pong");
    });
    drop(rt);
    assert_eq!(fd_count(), before, "descriptors after the scenario");
}

/// `epoll_ctl` fails with `ENOSPC` on every call after the runtime's own
/// registrations (epoll driver; the script skips those with `when=N+`):
/// every socket veloq creates or adopts then fails to register, and the
/// constructor returns `ENOSPC` and closes what it made.
#[test]
#[ignore = "run by scripts/test-faults.sh under strace (epoll_ctl ENOSPC, epoll)"]
fn epoll_ctl_enospc_fails_the_socket_with_that_error() {
    let rt = Runtime::new().unwrap();
    expect_driver(&rt, DriverKind::Epoll);
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let before = fd_count();
    rt.block_on(async {
        let e = failure("bind under ENOSPC", TcpListener::bind("127.0.0.1:0"));
        expect_errno("TcpListener::bind", &e, libc::ENOSPC);
        let e = failure("connect under ENOSPC", TcpStream::connect(addr).await);
        expect_errno("TcpStream::connect", &e, libc::ENOSPC);
        let e = failure(
            "udp bind under ENOSPC",
            veloq::net::UdpSocket::bind("127.0.0.1:0"),
        );
        expect_errno("UdpSocket::bind", &e, libc::ENOSPC);
        let (client, _server) = util::std_tcp_pair();
        let e = failure("from_std under ENOSPC", TcpStream::from_std(client));
        expect_errno("TcpStream::from_std", &e, libc::ENOSPC);
    });
    // The refused connect's socket and the adopted one are closed (the
    // pair's server half and the listener's queued peer went with `_server`
    // and `std_listener` is still open: count only what veloq made).
    let after = fd_count();
    assert!(
        after <= before,
        "descriptors leaked by refused registrations: {before} before, {after} after"
    );
    drop(std_listener);
}

/// `clone3` and `clone` fail with `EAGAIN` from each thread's second
/// call on (the script's `when=2+`; strace counts per thread, so libtest
/// starts its test thread and the test thread starts one more): the shared
/// blocking pool gets its first thread and no other, and the epoll
/// driver's file pool gets none. `spawn_blocking` jobs then queue for the
/// one running thread, the driver's file ops run where they were
/// submitted, and all of them complete with the right results.
#[test]
#[ignore = "run by scripts/test-faults.sh under strace (clone3/clone EAGAIN)"]
fn blocking_pool_without_new_threads_still_completes() {
    let rt = Runtime::new().unwrap();
    let path = util::TempPath::new("fault-clone");
    let done = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let mut jobs = Vec::new();
        for i in 0..16u64 {
            let done = done.clone();
            jobs.push(veloq::task::spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(2));
                done.fetch_add(1, Ordering::SeqCst);
                i * i
            }));
        }
        // Proof that no further thread can start (else the scenario is
        // void): the pool took this thread's one allowed start.
        assert!(
            std::thread::Builder::new().spawn(|| ()).is_err(),
            "a thread started: the injection is not active"
        );
        for (i, j) in jobs.into_iter().enumerate() {
            assert_eq!(j.await.unwrap(), (i * i) as u64);
        }
        // File ops (the epoll driver's own pool; SQEs on io_uring) and a
        // metadata call (the shared pool on every driver).
        let f = veloq::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&path.0)
            .await
            .unwrap();
        let (res, _) = f.write_all_at(b"hello".to_vec(), 0).await;
        res.unwrap();
        f.sync_all().await.unwrap();
        let (res, buf) = f.read_exact_at(vec![0u8; 5], 0).await;
        res.unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(f.metadata().await.unwrap().len(), 5);
        f.close().await.unwrap();
        assert_eq!(veloq::fs::read(&path.0).await.unwrap(), b"hello");
    });
    assert_eq!(done.load(Ordering::SeqCst), 16);
}

/// The file the `openat` scenario opens; the script injects `EIO` into
/// `openat` calls on this path only (`-P`).
const EIO_PATH: &str = "/tmp/veloq-fault-openat-eio";

/// `openat` on [`EIO_PATH`] fails with `EIO` (epoll driver, whose opens run
/// on the blocking pool; io_uring's open is an SQE strace cannot reach):
/// `File::open`, `File::create` and `fs::read` return `EIO`, not a panic
/// and not `NotFound`.
#[test]
#[ignore = "run by scripts/test-faults.sh under strace (openat EIO, epoll)"]
fn openat_eio_reaches_the_caller() {
    let before = fd_count();
    let rt = Runtime::new().unwrap();
    expect_driver(&rt, DriverKind::Epoll);
    let start = Instant::now();
    rt.block_on(async {
        let e = failure("open under EIO", veloq::fs::File::open(EIO_PATH).await);
        expect_errno("File::open", &e, libc::EIO);
        let e = failure("create under EIO", veloq::fs::File::create(EIO_PATH).await);
        expect_errno("File::create", &e, libc::EIO);
        let e = failure("read under EIO", veloq::fs::read(EIO_PATH).await);
        expect_errno("fs::read", &e, libc::EIO);
    });
    assert!(start.elapsed() < Duration::from_secs(10));
    drop(rt);
    assert_eq!(fd_count(), before);
    assert!(
        !std::path::Path::new(EIO_PATH).exists(),
        "the refused create made the file"
    );
}
