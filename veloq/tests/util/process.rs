//! Process helpers for tests that measure or limit a whole process, or
//! re-run their own test binary as a child process: descriptor limits and
//! counts, resident memory, and a line protocol with the child.
//!
//! Include with `#[path = "util/process.rs"] mod process;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in a child process; holds the child's role.
pub const CHILD_ENV: &str = "VELOQ_LOAD_CHILD";
/// Lines of the child protocol start with this (libtest prints too).
pub const TAG: &str = "veloq-load:";

/// Raises the soft descriptor limit to `soft` (at most the hard limit);
/// returns the limit now in force.
pub fn set_nofile(soft: Option<u64>) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live local of the type the call fills.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = soft.map_or(lim.rlim_max, |s| s.min(lim.rlim_max));
    // SAFETY: as above; the new soft limit is within the hard one.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    lim.rlim_cur
}

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// This process's resident set, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A child process, killed if still running when dropped (a failed test
/// leaves no orphan behind).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Re-runs this test binary with only `test` selected, as child `role`.
pub fn spawn_child(test: &str, role: &str, env: &[(&str, String)]) -> ChildGuard {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, role)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    ChildGuard(cmd.spawn().unwrap())
}

/// The next protocol line from the child (without the tag); panics if the
/// child ends first.
pub fn next_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "the child ended early");
        // libtest's "test NAME ... " may precede the first line.
        if let Some(at) = line.find(TAG) {
            return line[at + TAG.len()..].trim().to_string();
        }
    }
}

/// Whether this process is the child `role` (else the child test returns
/// at once: run directly with `--ignored`, it has nothing to do).
pub fn is_child(role: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(role)
}

pub fn env_usize(name: &str) -> usize {
    std::env::var(name).unwrap().parse().unwrap()
}

/// Blocks (polling) until `done()` holds, for up to `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
