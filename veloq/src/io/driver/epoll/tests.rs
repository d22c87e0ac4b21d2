//! Driver-level tests of the epoll driver against the live kernel: ops are
//! submitted straight to an `EpollDriver`, no executor involved. Shared
//! helpers live here; the tests are grouped by concern (`net`: socket ops,
//! readiness and cancellation; `lifecycle`: the blocking pool, wakes,
//! timers and drop).

mod faults;
mod lifecycle;
mod net;

pub(super) use std::io::{Read, Write};
pub(super) use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
pub(super) use std::os::fd::AsRawFd;
pub(super) use std::os::unix::fs::OpenOptionsExt;
pub(super) use std::rc::Rc;
pub(super) use std::sync::atomic::Ordering;
pub(super) use std::task::{Context, Poll, Waker};
pub(super) use std::time::{Duration, Instant};

pub(super) use super::*;
pub(super) use crate::io::driver::IntoPlatformOp;
pub(super) use crate::io::op::{self, OpenFlags};

pub(super) use crate::io::driver::test_util::counting_waker;

pub(super) fn driver() -> EpollDriver {
    EpollDriver::new(&DriverConfig::default()).expect("epoll setup")
}

pub(super) fn submit(d: &mut EpollDriver, desc: impl IntoPlatformOp<EpollDriver>) -> OpKey {
    let key = d.reserve().unwrap();
    d.submit(key, desc.into_platform_op()).expect("submit");
    key
}

/// Polls `key` once with `waker`.
pub(super) fn poll(d: &mut EpollDriver, key: OpKey, waker: &Waker) -> Poll<OpOutput> {
    d.poll_op(key, &mut Context::from_waker(waker))
}

/// Drives `d` until `key` completes (or panics after 10 s).
pub(super) fn run(d: &mut EpollDriver, key: OpKey) -> OpOutput {
    let (_, waker) = counting_waker();
    let start = Instant::now();
    loop {
        if let Poll::Ready(out) = poll(d, key, &waker) {
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "op never completed"
        );
        d.wait(Some(Duration::from_millis(100))).unwrap();
    }
}

/// A connected loopback pair, both registered with `d`.
pub(super) fn tcp_pair(d: &mut EpollDriver) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (b, _) = listener.accept().unwrap();
    d.register_handle(a.as_raw_fd()).unwrap();
    d.register_handle(b.as_raw_fd()).unwrap();
    (a, b)
}

pub(super) fn recv(fd: RawFd, buf: &mut [u8]) -> op::Recv {
    op::Recv {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.len() as u32,
    }
}

pub(super) fn send(fd: RawFd, data: &[u8]) -> op::Send {
    op::Send {
        fd,
        buf: data.as_ptr(),
        len: data.len() as u32,
        zero_copy: false,
    }
}
