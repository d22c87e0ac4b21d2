//! How a runtime's driver is chosen: `Builder::driver`, the
//! `VELOQ_DRIVER` environment variable, and asking a running runtime which
//! driver it is on.
//!
//! Tests that need a different environment re-run this binary as a child
//! process with only the (otherwise ignored) `child_reports_driver` test
//! selected, which prints what it found.
#![cfg(target_os = "linux")]

mod util;

use std::process::Command;

use util::tcp_pair;
use veloq::runtime::{driver_kind, DriverKind};
use veloq::Runtime;

/// Starts the child's report line.
const MARK: &str = "child driver: ";

/// Whether this machine lets a process set up io_uring.
fn io_uring_works() -> bool {
    Runtime::builder()
        .driver(DriverKind::IoUring)
        .build()
        .is_ok()
}

/// What the child printed after [`MARK`], run with `VELOQ_DRIVER`
/// set to `value` (removed for `None`).
fn child_with(value: Option<&str>) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_reports_driver",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    match value {
        Some(v) => cmd.env("VELOQ_DRIVER", v),
        None => cmd.env_remove("VELOQ_DRIVER"),
    };
    let out = cmd.output().expect("start the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        // libtest may print its own "test ... " prefix on the same line.
        .find_map(|l| l.split_once(MARK).map(|(_, v)| v))
        .unwrap_or_else(|| panic!("child printed no driver line:\n{stdout}"))
        .to_string()
}

#[test]
#[ignore = "the child half of the driver selection tests; run by them in a child process"]
fn child_reports_driver() {
    match Runtime::new() {
        Ok(rt) => {
            let kind = rt.block_on(async {
                // The driver does real I/O, not just start.
                let (a, b) = tcp_pair().await;
                let (res, _) = a.write_all(b"ok".to_vec()).await;
                res.unwrap();
                let (res, got) = b.read_exact(vec![0u8; 2]).await;
                res.unwrap();
                assert_eq!(&got, b"ok");
                driver_kind()
            });
            println!("{MARK}{kind}");
        }
        Err(e) => println!("{MARK}error {:?}", e.kind()),
    }
}

#[test]
fn env_var_forces_epoll() {
    assert_eq!(child_with(Some("epoll")), "epoll");
    assert_eq!(
        child_with(Some("EPOLL")),
        "epoll",
        "names are case-insensitive"
    );
}

#[test]
fn env_var_forces_io_uring_without_fallback() {
    let got = child_with(Some("io_uring"));
    if io_uring_works() {
        assert_eq!(got, "io_uring");
    } else {
        // Forced and refused: an error, never a silent fallback.
        assert!(got.starts_with("error"), "{got}");
        eprintln!("io_uring refused here: checked that forcing it fails ({got})");
    }
}

#[test]
fn auto_prefers_io_uring() {
    let expect = if io_uring_works() {
        "io_uring"
    } else {
        "epoll"
    };
    assert_eq!(child_with(None), expect);
    assert_eq!(child_with(Some("auto")), expect);
    assert_eq!(child_with(Some("")), expect);
}

#[test]
fn unknown_env_value_is_an_error() {
    assert_eq!(child_with(Some("kqueue")), "error InvalidInput");
}

#[test]
fn explicit_choice_beats_the_environment() {
    let rt = Runtime::builder()
        .driver(DriverKind::Epoll)
        .build()
        .unwrap();
    assert_eq!(rt.driver_kind(), DriverKind::Epoll);
    assert_eq!(rt.block_on(async { driver_kind() }), DriverKind::Epoll);
    if io_uring_works() {
        let rt = Runtime::builder()
            .driver(DriverKind::IoUring)
            .build()
            .unwrap();
        assert_eq!(rt.driver_kind(), DriverKind::IoUring);
        assert_eq!(rt.block_on(async { driver_kind() }), DriverKind::IoUring);
    } else {
        eprintln!("skipping the io_uring half: io_uring is refused here");
    }
}

#[test]
fn iocp_is_refused_on_linux() {
    let err = Runtime::builder()
        .driver(DriverKind::Iocp)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
}

/// `scripts/test.sh` runs the suite once per driver through
/// `VELOQ_DRIVER`; this checks that each pass really is on its driver.
#[test]
fn suite_runs_on_the_driver_the_environment_asks_for() {
    let kind = veloq::block_on(async { driver_kind() });
    match std::env::var("VELOQ_DRIVER").as_deref() {
        Ok("epoll") => assert_eq!(kind, DriverKind::Epoll),
        Ok("io_uring") => assert_eq!(kind, DriverKind::IoUring),
        _ => assert!(matches!(kind, DriverKind::IoUring | DriverKind::Epoll)),
    }
    println!("this pass runs on {kind}");
}
