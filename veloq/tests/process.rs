//! `veloq::process`: spawning real programs, exit statuses, piped standard
//! streams (concurrently, cancel-safely, through the `veloq::io` traits),
//! kills, `kill_on_drop` and waits racing kills, many children at once.
//! Run on every driver: on Linux the waits (pidfd) and pipes go through
//! the driver (io_uring `POLL_ADD`, epoll readiness), on Windows the waits
//! are wait registrations and the pipes pool jobs; all must agree. (That
//! no pool job runs on those paths is proved by the unit tests in
//! `process/tests.rs` and `process/wait.rs`, which can count them.)
//!
//! Unix tests use `sh`, `cat`, `echo` and `sleep`; the Windows ones (run
//! under Wine) use `cmd`, `find` and `ping`.

mod util;

use std::io;
use std::time::Duration;

use util::within;
use veloq::process::{Command, Stdio};

/// Runs `f` on a fresh runtime, failing the test after 60 s.
fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: std::future::Future<Output = T>,
    T: Send + 'static,
{
    within(60, move || veloq::block_on(f()))
}

/// Spawns fifty children with `spawn(code)`, child `i` told to exit with
/// `i % 9`, waits for them all at once (one task each) and checks that
/// each wait reports its own child's code.
async fn wait_for_fifty(spawn: impl Fn(i32) -> veloq::process::Child) {
    let mut handles = Vec::new();
    for i in 0..50 {
        let mut child = spawn(i % 9);
        handles.push(veloq::spawn(async move {
            (i, child.wait().await.unwrap().code())
        }));
    }
    for h in handles {
        let (i, code) = h.await.unwrap();
        assert_eq!(code, Some(i % 9));
    }
}

#[test]
fn a_missing_program_is_not_found() {
    run(|| async {
        let err = Command::new("veloq-no-such-program-here")
            .spawn()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err:?}");
        let err = Command::new("veloq-no-such-program-here")
            .status()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err:?}");
        let err = Command::new("veloq-no-such-program-here")
            .output()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err:?}");
    });
}

#[test]
fn handles_and_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let mut cmd = Command::new("true-ish");
    assert_send(&cmd.status());
    assert_send(&cmd.output());
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<veloq::process::Child>();
    assert_send_sync::<veloq::process::ChildStdin>();
    assert_send_sync::<veloq::process::ChildStdout>();
    assert_send_sync::<veloq::process::ChildStderr>();
}

#[cfg(unix)]
mod unix {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use util::{eventually, pattern};
    use veloq::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// Whether a process with `pid` exists (a zombie counts).
    fn alive(pid: u32) -> bool {
        // SAFETY: signal 0 only checks for the process; no memory involved.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }

    #[test]
    fn status_reports_the_exit_code() {
        run(|| async {
            let status = Command::new("sh")
                .args(["-c", "exit 3"])
                .status()
                .await
                .unwrap();
            assert_eq!(status.code(), Some(3));
            assert!(!status.success());
            let status = Command::new("true").status().await.unwrap();
            assert!(status.success());
        });
    }

    #[test]
    fn output_collects_stdout() {
        run(|| async {
            let out = Command::new("echo").arg("hello").output().await.unwrap();
            assert!(out.status.success());
            assert_eq!(out.stdout, b"hello\n");
            assert!(out.stderr.is_empty());
        });
    }

    #[test]
    fn output_collects_stderr_apart_from_stdout() {
        run(|| async {
            let out = Command::new("sh")
                .args(["-c", "echo out; echo err >&2; exit 1"])
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(1));
            assert_eq!(out.stdout, b"out\n");
            assert_eq!(out.stderr, b"err\n");
        });
    }

    #[test]
    fn output_does_not_stall_when_both_pipes_fill() {
        // 1 MiB on each stream, more than a pipe holds: both must be read
        // at once for the child to finish.
        run(|| async {
            let script = "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2";
            let out = Command::new("sh")
                .args(["-c", script])
                .output()
                .await
                .unwrap();
            assert!(out.status.success());
            assert_eq!(out.stdout.len(), 1 << 20);
            assert_eq!(out.stderr.len(), 1 << 20);
        });
    }

    #[test]
    fn output_gives_the_child_a_null_stdin() {
        run(|| async {
            // `cat` with an inherited stdin would wait on the terminal (or
            // the test harness's input); with a null one it ends at once.
            let out = Command::new("cat").output().await.unwrap();
            assert!(out.status.success());
            assert!(out.stdout.is_empty());
        });
    }

    #[test]
    fn env_and_current_dir_reach_the_child() {
        run(|| async {
            let out = Command::new("sh")
                .args(["-c", "echo \"$VELOQ_GREETING\"; pwd"])
                .env("VELOQ_GREETING", "hi there")
                .current_dir("/")
                .output()
                .await
                .unwrap();
            assert_eq!(out.stdout, b"hi there\n/\n");
            let out = Command::new("/bin/sh")
                .args(["-c", "echo \"${HOME:-unset}\""])
                .env_clear()
                .output()
                .await
                .unwrap();
            assert_eq!(out.stdout, b"unset\n");
        });
    }

    #[test]
    fn cat_echoes_ten_mib_fed_while_reading_concurrently() {
        run(|| async {
            const LEN: usize = 10 << 20;
            let data = pattern(LEN, 7);
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdin = child.stdin.take().unwrap();
            let stdout = child.stdout.take().unwrap();
            let to_send = data.clone();
            let writer = veloq::spawn(async move {
                // Uneven pieces, so writes and reads never line up.
                let mut off = 0;
                let mut piece = 1000;
                while off < to_send.len() {
                    let end = (off + piece).min(to_send.len());
                    let (res, _) = stdin.write_all(to_send[off..end].to_vec()).await;
                    res.unwrap();
                    off = end;
                    piece = piece * 3 % 200_000 + 1;
                }
                // Dropping `stdin` closes the pipe: `cat` ends.
            });
            let reader = veloq::spawn(async move {
                let mut got = Vec::with_capacity(LEN);
                loop {
                    let (res, buf) = stdout.read(Vec::with_capacity(50_000)).await;
                    let n = res.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                got
            });
            writer.await.unwrap();
            let got = reader.await.unwrap();
            assert_eq!(got.len(), LEN);
            assert!(got == data, "the bytes came back out of order or changed");
            assert!(child.wait().await.unwrap().success());
        });
    }

    #[test]
    fn wait_with_output_drops_stdin_first() {
        run(|| async {
            let child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let (res, _) = child
                .stdin
                .as_ref()
                .unwrap()
                .write_all(b"abc".to_vec())
                .await;
            res.unwrap();
            // `stdin` is still in the child: `wait_with_output` must close
            // it or `cat` never ends.
            let out = child.wait_with_output().await.unwrap();
            assert!(out.status.success());
            assert_eq!(out.stdout, b"abc");
        });
    }

    #[test]
    fn the_io_traits_drive_the_pipes() {
        run(|| async {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = child.stdout.take().unwrap();
            let (res, _) =
                AsyncWriteExt::write_all(&mut stdin, b"through the traits".to_vec()).await;
            res.unwrap();
            AsyncWrite::flush(&mut stdin).await.unwrap();
            // Shutdown closes the pipe although the handle lives on.
            AsyncWrite::shutdown(&mut stdin).await.unwrap();
            let (res, out) = AsyncReadExt::read_to_end(&mut stdout, Vec::new()).await;
            res.unwrap();
            assert_eq!(out, b"through the traits");
            let (res, _) = stdin.write(b"late".to_vec()).await;
            assert_eq!(res.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
            assert!(child.wait().await.unwrap().success());
        });
    }

    #[test]
    fn read_exact_fills_and_reports_an_early_end() {
        run(|| async {
            let mut child = Command::new("printf")
                .arg("0123456789")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (res, buf) = stdout.read_exact(vec![0u8; 4]).await;
            res.unwrap();
            assert_eq!(buf, b"0123");
            let (res, buf) = stdout.read_exact(Vec::with_capacity(10)).await;
            assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(buf, b"456789", "what came stays in the buffer");
            // An empty buffer reads nothing.
            let (res, _) = stdout.read(Vec::new()).await;
            assert_eq!(res.unwrap(), 0);
            child.wait().await.unwrap();
        });
    }

    #[test]
    fn a_dropped_read_loses_no_bytes() {
        run(|| async {
            let mut child = Command::new("sh")
                .args(["-c", "sleep 0.3; printf late"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            // This read's pool job is still blocked when its future goes.
            let res =
                veloq::time::timeout(Duration::from_millis(50), stdout.read(vec![0u8; 16])).await;
            assert!(res.is_err(), "the read should still be waiting");
            let (res, out) = stdout.read_to_end(Vec::new()).await;
            res.unwrap();
            assert_eq!(out, b"late");
            child.wait().await.unwrap();
        });
    }

    #[test]
    fn a_childs_stdout_pipes_into_the_next_child() {
        run(|| async {
            let mut first = Command::new("printf")
                .arg("b\\na\\n")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = first.stdout.take().unwrap();
            let out = Command::new("sort")
                .stdin(Stdio::try_from(stdout).unwrap())
                .output()
                .await
                .unwrap();
            assert_eq!(out.stdout, b"a\nb\n");
            assert!(first.wait().await.unwrap().success());
        });
    }

    #[test]
    fn a_pipe_with_a_read_in_flight_cannot_become_stdio() {
        run(|| async {
            let mut child = Command::new("sh")
                .args(["-c", "sleep 0.2; printf x"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let res =
                veloq::time::timeout(Duration::from_millis(20), stdout.read(vec![0u8; 4])).await;
            assert!(res.is_err());
            let err = Stdio::try_from(stdout).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
            child.wait().await.unwrap();
        });
    }

    #[test]
    fn writing_to_an_exited_child_is_a_broken_pipe() {
        run(|| async {
            let mut child = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
            let stdin = child.stdin.take().unwrap();
            child.wait().await.unwrap();
            let (res, _) = stdin.write_all(vec![0u8; 1 << 20]).await;
            assert_eq!(res.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        });
    }

    #[test]
    fn kill_reports_sigkill() {
        run(|| async {
            let mut child = Command::new("sleep").arg("100").spawn().unwrap();
            assert!(child.try_wait().unwrap().is_none());
            let pid = child.id().unwrap();
            child.kill().await.unwrap();
            let status = child.wait().await.unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL));
            assert_eq!(status.code(), None);
            assert_eq!(child.id(), None, "no pid once reaped");
            assert!(!alive(pid), "reaped, so no zombie is left");
            // Killing an exited child is not an error (as std).
            child.start_kill().unwrap();
            assert_eq!(child.try_wait().unwrap(), Some(status));
        });
    }

    #[test]
    fn a_kill_from_another_task_ends_a_wait_in_flight() {
        run(|| async {
            let mut child = Command::new("sleep").arg("100").spawn().unwrap();
            let pid = child.id().unwrap();
            veloq::spawn(async move {
                veloq::time::sleep(Duration::from_millis(50)).await;
                // SAFETY: `pid` is our unreaped child (the wait below has
                // not returned), so it names no other process.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            });
            let status = child.wait().await.unwrap();
            assert_eq!(status.signal(), Some(libc::SIGTERM));
        });
    }

    #[test]
    fn kill_after_a_dropped_wait_then_wait_again() {
        run(|| async {
            let mut child = Command::new("sleep").arg("100").spawn().unwrap();
            // The wait's pool job keeps running after its future is gone.
            let res = veloq::time::timeout(Duration::from_millis(50), child.wait()).await;
            assert!(res.is_err(), "sleep 100 should still run");
            child.start_kill().unwrap();
            let status = child.wait().await.unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL));
        });
    }

    #[test]
    fn a_second_wait_returns_the_same_status_at_once() {
        run(|| async {
            let mut child = Command::new("sh")
                .args(["-c", "sleep 0.1; exit 7"])
                .spawn()
                .unwrap();
            assert!(child.try_wait().unwrap().is_none());
            let a = child.wait().await.unwrap();
            let b = child.wait().await.unwrap();
            assert_eq!(a.code(), Some(7));
            assert_eq!(a, b);
            assert_eq!(child.try_wait().unwrap(), Some(a));
        });
    }

    #[test]
    fn kill_on_drop_kills_and_reaps() {
        run(|| async {
            let child = Command::new("sleep")
                .arg("100")
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let pid = child.id().unwrap();
            drop(child);
            // Killed, then reaped by the background job: the pid is gone.
            assert!(
                eventually(|| !alive(pid), Duration::from_secs(10)).await,
                "the child survived its dropped handle"
            );
        });
    }

    #[test]
    fn kill_on_drop_kills_with_a_wait_in_flight() {
        run(|| async {
            let mut child = Command::new("sleep")
                .arg("100")
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let pid = child.id().unwrap();
            let res = veloq::time::timeout(Duration::from_millis(50), child.wait()).await;
            assert!(res.is_err(), "sleep 100 should still run");
            drop(child);
            assert!(eventually(|| !alive(pid), Duration::from_secs(10)).await);
        });
    }

    #[test]
    fn a_dropped_status_future_with_kill_on_drop_kills() {
        run(|| async {
            let pid_file = util::TempPath::new("process-pid");
            let script = format!("echo $$ > '{}'; exec sleep 100", pid_file.0.display());
            let fut = Command::new("sh")
                .args(["-c", &script])
                .kill_on_drop(true)
                .status();
            let res = veloq::time::timeout(Duration::from_millis(300), fut).await;
            assert!(res.is_err(), "sleep 100 should still run");
            let pid: u32 = std::fs::read_to_string(&pid_file.0)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert!(eventually(|| !alive(pid), Duration::from_secs(10)).await);
        });
    }

    #[test]
    fn without_kill_on_drop_the_child_lives_on_and_is_reaped_later() {
        run(|| async {
            let child = Command::new("sleep").arg("100").spawn().unwrap();
            let pid = child.id().unwrap();
            drop(child);
            veloq::time::sleep(Duration::from_millis(100)).await;
            assert!(alive(pid), "dropping the handle must not kill the child");
            // SAFETY: our child, not reaped yet (it is still running).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            // The background reaper collects it: no zombie stays.
            assert!(eventually(|| !alive(pid), Duration::from_secs(10)).await);
        });
    }

    #[test]
    fn fifty_children_are_waited_for_at_once() {
        run(|| {
            wait_for_fifty(|code| {
                Command::new("sh")
                    .args(["-c", &format!("sleep 0.1; exit {code}")])
                    .spawn()
                    .unwrap()
            })
        });
    }

    #[test]
    fn a_wait_dropped_mid_way_then_waited_again() {
        run(|| async {
            let mut child = Command::new("sh")
                .args(["-c", "sleep 0.2; exit 7"])
                .spawn()
                .unwrap();
            let res = veloq::time::timeout(Duration::from_millis(20), child.wait()).await;
            assert!(res.is_err(), "still running");
            assert_eq!(child.wait().await.unwrap().code(), Some(7));
        });
    }

    #[test]
    fn a_child_is_waited_for_on_another_worker() {
        let rt = veloq::Runtime::builder().workers(2).build().unwrap();
        let ok = Arc::new(AtomicBool::new(false));
        let ok2 = ok.clone();
        rt.block_on(async move {
            let mut child = Command::new("sh").args(["-c", "exit 5"]).spawn().unwrap();
            let h = veloq::spawn_on(1, move || async move {
                assert_eq!(child.wait().await.unwrap().code(), Some(5));
                ok2.store(true, Ordering::SeqCst);
            });
            h.await.unwrap();
        });
        assert!(ok.load(Ordering::SeqCst));
    }
}

/// Waiting where `pidfd_open` is refused (an old kernel: `ENOSYS`; a
/// seccomp profile: `EPERM`): the waits fall back to `waitid` on the
/// blocking pool and must still report every status. The test re-runs this
/// binary as a child process with only `child_without_pidfd` selected,
/// which refuses `pidfd_open` to itself with a seccomp filter (one
/// `ERRNO` rule; inherited by every thread, and by the programs it runs,
/// which do not call it) before it spawns anything.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod pidfd_refused {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    const CHILD_ENV: &str = "VELOQ_PIDFD_REFUSED";
    const CHILD_OK: &str = "pidfd child: all waits reported";

    fn check(errno: &str) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["pidfd_refused::child_without_pidfd", "--exact", "--ignored"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, errno)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains(CHILD_OK),
            "child ({}):\n{stdout}\n{stderr}",
            out.status
        );
    }

    #[test]
    fn waits_without_pidfds_eperm() {
        check("EPERM");
    }

    #[test]
    fn waits_without_pidfds_enosys() {
        check("ENOSYS");
    }

    /// Refuses `pidfd_open` with `errno` on this thread and every thread
    /// and process it starts.
    fn refuse_pidfd_open(errno: i32) {
        let arch: u32 = if cfg!(target_arch = "x86_64") {
            0xC000_003E // AUDIT_ARCH_X86_64
        } else {
            0xC000_00B7 // AUDIT_ARCH_AARCH64
        };
        let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
        let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
        let ret = (libc::BPF_RET | libc::BPF_K) as u16;
        let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
        // `seccomp_data`: the syscall number at offset 0, the arch at 4.
        let program = [
            op(ld, 0, 0, 4),
            op(jeq, 1, 0, arch),
            op(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
            op(ld, 0, 0, 0),
            op(jeq, 0, 1, libc::SYS_pidfd_open as u32),
            op(ret, 0, 0, libc::SECCOMP_RET_ERRNO | errno as u32),
            op(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
        ];
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: plain prctl with integer arguments.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
            0
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
        assert_eq!(r, 0, "seccomp: {}", io::Error::last_os_error());
    }

    #[test]
    #[ignore = "the child half of the pidfd_refused tests; run by them in a child process"]
    fn child_without_pidfd() {
        let errno = match std::env::var(CHILD_ENV).as_deref() {
            Ok("EPERM") => libc::EPERM,
            Ok("ENOSYS") => libc::ENOSYS,
            other => panic!("run by the pidfd_refused tests, got {other:?}"),
        };
        refuse_pidfd_open(errno);
        // SAFETY: pidfd_open of our own pid, to prove the filter works.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
        assert_eq!(
            (r, io::Error::last_os_error().raw_os_error()),
            (-1, Some(errno))
        );
        for kind in [
            veloq::runtime::DriverKind::IoUring,
            veloq::runtime::DriverKind::Epoll,
        ] {
            let rt = match veloq::Runtime::builder().driver(kind).build() {
                Ok(rt) => rt,
                Err(_) if kind == veloq::runtime::DriverKind::IoUring => continue,
                Err(e) => panic!("{e}"),
            };
            rt.block_on(async {
                let status = Command::new("sh").args(["-c", "exit 3"]).status().await;
                assert_eq!(status.unwrap().code(), Some(3));
                let mut child = Command::new("sleep").arg("100").spawn().unwrap();
                let res = veloq::time::timeout(Duration::from_millis(20), child.wait()).await;
                assert!(res.is_err());
                child.kill().await.unwrap();
                assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));
                let out = Command::new("sh")
                    .args(["-c", "head -c 100000 /dev/zero"])
                    .output()
                    .await
                    .unwrap();
                assert_eq!(out.stdout.len(), 100_000);
            });
        }
        println!("{CHILD_OK}");
    }
}

#[cfg(windows)]
mod windows {
    use super::*;

    #[test]
    fn cmd_exit_code() {
        run(|| async {
            let status = Command::new("cmd")
                .args(["/c", "exit 3"])
                .status()
                .await
                .unwrap();
            assert_eq!(status.code(), Some(3));
        });
    }

    #[test]
    fn fifty_children_are_waited_for_at_once() {
        run(|| {
            wait_for_fifty(|code| {
                Command::new("cmd")
                    .args(["/c", &format!("exit {code}")])
                    .spawn()
                    .unwrap()
            })
        });
    }

    #[test]
    fn cmd_echo_output() {
        run(|| async {
            let out = Command::new("cmd")
                .args(["/c", "echo hello"])
                .output()
                .await
                .unwrap();
            assert!(out.status.success());
            assert_eq!(out.stdout, b"hello\r\n");
        });
    }

    #[test]
    fn cmd_stderr_is_captured() {
        run(|| async {
            let out = Command::new("cmd")
                .args(["/c", "echo oops 1>&2"])
                .output()
                .await
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), "oops");
        });
    }

    // Wine 8's `findstr` is a stub that prints nothing; its `find` filters
    // standard input to standard output.
    #[test]
    fn stdin_round_trip_through_find() {
        run(|| async {
            let out = {
                let mut child = Command::new("find")
                    .arg("o")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let stdin = child.stdin.take().unwrap();
                let (res, _) = stdin.write_all(b"one\r\nsix\r\ntwo\r\n".to_vec()).await;
                res.unwrap();
                drop(stdin); // end of file for `find`
                child.wait_with_output().await.unwrap()
            };
            assert!(out.status.success());
            assert_eq!(out.stdout, b"one\r\ntwo\r\n");
        });
    }

    #[test]
    fn find_echoes_lines_fed_while_reading_concurrently() {
        run(|| async {
            // 4096 lines of 64 bytes (256 KiB, more than a pipe holds), all
            // kept by `find o`, and a few lines without an `o` in between,
            // which it drops.
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for i in 0..4096 {
                let line = format!("o{i:061}\r\n");
                input.extend_from_slice(line.as_bytes());
                expected.extend_from_slice(line.as_bytes());
                if i % 512 == 0 {
                    input.extend_from_slice(b"skipped\r\n");
                }
            }
            let mut child = Command::new("find")
                .arg("o")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdin = child.stdin.take().unwrap();
            let stdout = child.stdout.take().unwrap();
            let writer = veloq::spawn(async move {
                for piece in input.chunks(10_000) {
                    let (res, _) = stdin.write_all(piece.to_vec()).await;
                    res.unwrap();
                }
            });
            let (res, got) = stdout.read_to_end(Vec::new()).await;
            res.unwrap();
            writer.await.unwrap();
            assert_eq!(got.len(), expected.len());
            assert!(got == expected, "the lines came back changed");
            assert!(child.wait().await.unwrap().success());
        });
    }

    #[test]
    fn kill_ends_a_wait() {
        run(|| async {
            // `ping` itself, not through `cmd`, so the kill leaves no
            // orphan behind.
            let mut child = Command::new("ping")
                .args(["-n", "100", "127.0.0.1"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            assert!(child.try_wait().unwrap().is_none());
            let res = veloq::time::timeout(Duration::from_millis(50), child.wait()).await;
            assert!(res.is_err(), "the child should still run");
            child.kill().await.unwrap();
            let status = child.wait().await.unwrap();
            // std's `kill` is `TerminateProcess(handle, 1)`.
            assert_eq!(status.code(), Some(1));
            assert_eq!(child.id(), None);
        });
    }

    /// Whether process `pid` exits within `ms` milliseconds (or is gone
    /// already).
    fn exits_within(pid: u32, ms: u32) -> bool {
        use windows_sys::Win32::Foundation::{CloseHandle, WAIT_OBJECT_0};
        use windows_sys::Win32::System::Threading::{
            OpenProcess, WaitForSingleObject, PROCESS_SYNCHRONIZE,
        };
        // SAFETY: plain calls on a handle we open and close here.
        unsafe {
            let h = OpenProcess(PROCESS_SYNCHRONIZE, 0, pid);
            if h.is_null() {
                return true; // no such process any more
            }
            let r = WaitForSingleObject(h, ms);
            CloseHandle(h);
            r == WAIT_OBJECT_0
        }
    }

    #[test]
    fn kill_on_drop_kills() {
        run(|| async {
            let child = Command::new("ping")
                .args(["-n", "100", "127.0.0.1"])
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let pid = child.id().unwrap();
            assert!(!exits_within(pid, 0), "ping should still run");
            drop(child);
            assert!(
                exits_within(pid, 10_000),
                "the child survived its dropped handle"
            );
        });
    }
}
