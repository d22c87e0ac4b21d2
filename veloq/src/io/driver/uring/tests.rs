//! Driver-level tests against the live kernel: ops are submitted straight
//! to a `UringDriver` with a counting waker, no executor involved. Shared
//! helpers live here; the tests are grouped by concern.

mod faults;
mod lifecycle;
mod multishot;
mod ops;
mod send_zc;
mod wait;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub(super) use super::*;
use crate::io::driver::IntoPlatformOp;
use crate::io::op::{self, OpenFlags};

pub(super) use crate::io::driver::test_util::counting_waker;

pub(super) fn driver() -> UringDriver {
    UringDriver::new(&DriverConfig::default()).expect("io_uring setup")
}

pub(super) fn submit(d: &mut UringDriver, desc: impl IntoPlatformOp<UringDriver>) -> OpKey {
    let key = d.reserve().unwrap();
    d.submit(key, desc.into_platform_op()).expect("submit");
    key
}

/// Drives `d` until `key` completes (or panics after 10 s).
pub(super) fn run(d: &mut UringDriver, key: OpKey) -> OpOutput {
    let (_, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let start = Instant::now();
    loop {
        if let Poll::Ready(out) = d.poll_op(key, &mut cx) {
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "op never completed"
        );
        d.wait(Some(Duration::from_millis(100))).unwrap();
    }
}

/// Waits until `cond` holds (or panics after 10 s).
pub(super) fn wait_until(d: &mut UringDriver, mut cond: impl FnMut(&mut UringDriver) -> bool) {
    let start = Instant::now();
    while !cond(d) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "condition never held"
        );
        d.wait(Some(Duration::from_millis(50))).unwrap();
    }
}

pub(super) fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("veloq-uring-{}-{n}-{name}", std::process::id()))
}

/// A temp file, removed on drop.
pub(super) struct TempFile {
    path: PathBuf,
    file: File,
}

impl TempFile {
    fn new(name: &str) -> TempFile {
        let path = temp_path(name);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        TempFile { path, file }
    }
    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub(super) fn write_at(fd: RawFd, data: &[u8], offset: u64, fixed: Option<u16>) -> op::WriteFixed {
    op::WriteFixed {
        fd,
        buf: data.as_ptr(),
        len: data.len() as u32,
        offset,
        fixed,
    }
}

pub(super) fn read_at(fd: RawFd, buf: &mut [u8], offset: u64, fixed: Option<u16>) -> op::ReadFixed {
    op::ReadFixed {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.len() as u32,
        offset,
        fixed,
    }
}
