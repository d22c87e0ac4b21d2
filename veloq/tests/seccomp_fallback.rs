//! The fallback where it matters: a veloq program under a seccomp filter
//! that refuses the io_uring syscalls (as Docker's and containerd's default
//! profiles do) starts on the epoll driver by itself, says so in one line
//! on stderr, and serves a TCP echo and a file round trip.
//!
//! The test re-runs this test binary as a child process with only the
//! (otherwise ignored) `child_under_seccomp` test selected; that test
//! installs the filter on its thread before it starts any runtime (the
//! filter and `no_new_privs` are inherited by every thread it starts,
//! such as the blocking pool's). A child process keeps the filter, and the
//! runtime's process-wide memory of the refusal, away from the other tests.
//!
//! The filter is a hand-written classic BPF program: load the audit arch
//! (anything but the expected one is allowed through untouched), load the
//! syscall number, return `ERRNO(errno)` for `io_uring_setup`,
//! `io_uring_enter` and `io_uring_register`, allow everything else.
#![cfg(target_os = "linux")]

mod util;

use std::process::Command;
use std::time::Duration;

use util::{pattern, spawn_echo_server, within, TempPath};
use veloq::fs::OpenOptions;
use veloq::net::{TcpListener, TcpStream};
use veloq::runtime::DriverKind;
use veloq::Runtime;

/// Set (to an errno name) in the child: install the filter and run.
const CHILD_ENV: &str = "VELOQ_SECCOMP_CHILD";

/// What the child prints when everything passed.
const CHILD_OK: &str = "seccomp child: driver=epoll echo=ok file=ok";

/// The audit architecture of this target, if the test knows it.
fn audit_arch() -> Option<u32> {
    if cfg!(target_arch = "x86_64") {
        Some(0xC000_003E) // AUDIT_ARCH_X86_64
    } else if cfg!(target_arch = "aarch64") {
        Some(0xC000_00B7) // AUDIT_ARCH_AARCH64
    } else {
        None
    }
}

/// Runs this test binary's `child_under_seccomp` with `errno` denied.
fn run_child(errno: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_under_seccomp",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, errno)
        // The child must choose by itself (`Auto`).
        .env_remove("VELOQ_DRIVER")
        .output()
        .expect("start the child")
}

fn check_child(errno: &str) {
    if audit_arch().is_none() {
        eprintln!("skipping the seccomp fallback test: no BPF filter for this architecture");
        return;
    }
    let out = run_child(errno);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(CHILD_OK),
        "child did not finish its checks:\n{stdout}\n{stderr}"
    );
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("io_uring unavailable"))
        .collect();
    assert_eq!(
        notes.len(),
        1,
        "exactly one line says why (for three runtimes):\n{stderr}"
    );
    assert!(notes[0].contains("epoll"), "{}", notes[0]);
    println!("child said: {}", notes[0]);
}

#[test]
fn io_uring_denied_with_eperm_runs_on_epoll() {
    check_child("EPERM");
}

#[test]
fn io_uring_missing_with_enosys_runs_on_epoll() {
    check_child("ENOSYS");
}

/// Installs the filter on this thread (inherited by threads it starts).
fn install_filter(errno: u32) {
    let arch = audit_arch().expect("checked by the parent");
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let nr = |n: libc::c_long| n as u32;
    // Offsets into `struct seccomp_data`: nr at 0, arch at 4.
    let program = [
        /* 0 */ op(ld, 0, 0, 4),
        /* 1 */ op(jeq, 1, 0, arch),
        /* 2 */ op(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
        /* 3 */ op(ld, 0, 0, 0),
        /* 4 */ op(jeq, 3, 0, nr(libc::SYS_io_uring_setup)),
        /* 5 */ op(jeq, 2, 0, nr(libc::SYS_io_uring_enter)),
        /* 6 */ op(jeq, 1, 0, nr(libc::SYS_io_uring_register)),
        /* 7 */ op(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
        /* 8 */
        op(
            ret,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA),
        ),
    ];
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(
        r,
        0,
        "PR_SET_NO_NEW_PRIVS: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `prog` points at `program`, both live for the call; the
    // kernel copies the filter.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    assert_eq!(r, 0, "seccomp: {}", std::io::Error::last_os_error());
}

/// An echo through the runtime: 64 KiB out and back on one connection.
async fn echo_round_trip() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    spawn_echo_server(listener);
    let client = TcpStream::connect(addr).await.unwrap();
    let data = pattern(64 * 1024, 7);
    let (res, _) = client.write_all(data.clone()).await;
    res.unwrap();
    let (res, back) = client.read_exact(vec![0u8; data.len()]).await;
    res.unwrap();
    assert!(back == data, "echo came back different");
}

/// A file written, flushed, read back and closed through the runtime.
async fn file_round_trip() {
    let path = TempPath::new("seccomp");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path.0)
        .await
        .unwrap();
    let data = pattern(10_000, 3);
    let (res, _) = file.write_all_at(data.clone(), 4096).await;
    res.unwrap();
    file.sync_all().await.unwrap();
    let (res, back) = file.read_exact_at(vec![0u8; data.len()], 4096).await;
    res.unwrap();
    assert!(back == data, "file read back different");
    file.close().await.unwrap();
    let on_disk = std::fs::read(&path.0).unwrap();
    assert_eq!(on_disk.len(), 4096 + data.len());
    assert!(on_disk[4096..] == data[..]);
}

#[test]
#[ignore = "the child half of the seccomp tests; run by them in a child process"]
fn child_under_seccomp() {
    let errno = match std::env::var(CHILD_ENV).as_deref() {
        Ok("EPERM") => libc::EPERM,
        Ok("ENOSYS") => libc::ENOSYS,
        other => panic!("run by the seccomp tests with {CHILD_ENV}=EPERM|ENOSYS, got {other:?}"),
    };
    install_filter(errno as u32);

    // The filter is in force.
    let mut params = [0u8; 120]; // struct io_uring_params
                                 // SAFETY: io_uring_setup with a zeroed params struct of the right size;
                                 // with the filter in place the kernel never reads it.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
    assert_eq!(r, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(errno));

    // Asking for io_uring by name does not fall back.
    let err = Runtime::builder()
        .driver(DriverKind::IoUring)
        .build()
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(errno), "{err}");

    within(60, || {
        // Three runtimes: the first finds io_uring refused and says so; the
        // others remember it.
        for _ in 0..2 {
            let rt = Runtime::builder().build().expect("Auto falls back");
            rt.block_on(async {
                assert_eq!(veloq::runtime::driver_kind(), DriverKind::Epoll);
                echo_round_trip().await;
                file_round_trip().await;
                veloq::time::sleep(Duration::from_millis(2)).await;
            });
        }
        veloq::block_on(async {
            assert_eq!(veloq::runtime::driver_kind(), DriverKind::Epoll);
            echo_round_trip().await;
        });
    });
    println!("{CHILD_OK}");
}
