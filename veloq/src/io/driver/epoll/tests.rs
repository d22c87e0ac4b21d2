//! Driver-level tests of the epoll driver against the live kernel: ops are
//! submitted straight to an `EpollDriver`, no executor involved.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::*;
use crate::io::driver::IntoPlatformOp;
use crate::io::op::{self, OpenFlags};

struct CountWake(AtomicUsize);

impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountWake>, Waker) {
    let count = Arc::new(CountWake(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    (count, waker)
}

fn driver() -> EpollDriver {
    EpollDriver::new(&DriverConfig::default()).expect("epoll setup")
}

fn submit(d: &mut EpollDriver, desc: impl IntoPlatformOp<EpollDriver>) -> OpKey {
    let key = d.reserve().unwrap();
    d.submit(key, desc.into_platform_op()).expect("submit");
    key
}

/// Polls `key` once with `waker`.
fn poll(d: &mut EpollDriver, key: OpKey, waker: &Waker) -> Poll<OpOutput> {
    d.poll_op(key, &mut Context::from_waker(waker))
}

/// Drives `d` until `key` completes (or panics after 10 s).
fn run(d: &mut EpollDriver, key: OpKey) -> OpOutput {
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
fn tcp_pair(d: &mut EpollDriver) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (b, _) = listener.accept().unwrap();
    d.register_handle(a.as_raw_fd()).unwrap();
    d.register_handle(b.as_raw_fd()).unwrap();
    (a, b)
}

fn recv(fd: RawFd, buf: &mut [u8]) -> op::Recv {
    op::Recv {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.len() as u32,
    }
}

fn send(fd: RawFd, data: &[u8]) -> op::Send {
    op::Send {
        fd,
        buf: data.as_ptr(),
        len: data.len() as u32,
    }
}

#[test]
fn registered_sockets_become_non_blocking() {
    let mut d = driver();
    let (a, _b) = tcp_pair(&mut d);
    // SAFETY: plain `fcntl` on a live descriptor.
    let flags = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_GETFL) };
    assert_ne!(flags & libc::O_NONBLOCK, 0);
    // A regular file is left alone.
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    d.register_handle(file.as_raw_fd()).unwrap();
    // SAFETY: as above.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    assert_eq!(flags & libc::O_NONBLOCK, 0);
}

#[test]
fn ready_send_completes_inside_submit() {
    let mut d = driver();
    let (a, mut b) = tcp_pair(&mut d);
    let data = b"hello".to_vec();
    let key = submit(&mut d, send(a.as_raw_fd(), &data));
    let (_, waker) = counting_waker();
    match poll(&mut d, key, &waker) {
        Poll::Ready(out) => assert_eq!(out.res.unwrap(), 5),
        Poll::Pending => panic!("a send into an empty socket buffer completes at once"),
    }
    let mut got = [0u8; 5];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello");
    assert_eq!(d.stats().in_flight, 0);
}

#[test]
fn recv_waits_for_data_and_wakes_its_task() {
    let mut d = driver();
    let (a, mut b) = tcp_pair(&mut d);
    let mut buf = vec![0u8; 16];
    let key = submit(&mut d, recv(a.as_raw_fd(), &mut buf));
    let (count, waker) = counting_waker();
    assert!(poll(&mut d, key, &waker).is_pending());
    assert_eq!(d.waiting(a.as_raw_fd(), Dir::Read), 1);
    assert_eq!(d.stats().in_flight, 1);
    d.wait(Some(Duration::ZERO)).unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 0, "no data, no wake");

    b.write_all(b"ping").unwrap();
    let start = Instant::now();
    while count.0.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(10));
        d.wait(Some(Duration::from_millis(100))).unwrap();
    }
    match poll(&mut d, key, &waker) {
        Poll::Ready(out) => assert_eq!(out.res.unwrap(), 4),
        Poll::Pending => panic!("woken op must be ready"),
    }
    assert_eq!(&buf[..4], b"ping");
    assert_eq!(d.waiting(a.as_raw_fd(), Dir::Read), 0);
}

#[test]
fn waiters_on_one_side_complete_in_submission_order() {
    let mut d = driver();
    let (a, mut b) = tcp_pair(&mut d);
    let (mut first, mut second) = (vec![0u8; 3], vec![0u8; 3]);
    let k1 = submit(&mut d, recv(a.as_raw_fd(), &mut first));
    let k2 = submit(&mut d, recv(a.as_raw_fd(), &mut second));
    assert_eq!(d.waiting(a.as_raw_fd(), Dir::Read), 2);
    b.write_all(b"abcdef").unwrap();
    assert_eq!(run(&mut d, k1).res.unwrap(), 3);
    assert_eq!(run(&mut d, k2).res.unwrap(), 3);
    assert_eq!((&first[..], &second[..]), (&b"abc"[..], &b"def"[..]));
}

#[test]
fn peer_close_completes_recv_with_zero() {
    let mut d = driver();
    let (a, b) = tcp_pair(&mut d);
    let mut buf = vec![0u8; 8];
    let key = submit(&mut d, recv(a.as_raw_fd(), &mut buf));
    drop(b);
    assert_eq!(run(&mut d, key).res.unwrap(), 0);
}

#[test]
fn cancelled_recv_frees_its_buffer_at_once_and_consumes_nothing() {
    let mut d = driver();
    let (a, mut b) = tcp_pair(&mut d);
    let buf = Rc::new(vec![0u8; 8]);
    let key = submit(
        &mut d,
        op::Recv {
            fd: a.as_raw_fd(),
            buf: buf.as_ptr().cast_mut(),
            len: 8,
        },
    );
    d.cancel(key, Some(Box::new(buf.clone())));
    assert_eq!(
        Rc::strong_count(&buf),
        1,
        "freed without waiting for an event"
    );
    assert_eq!(d.waiting(a.as_raw_fd(), Dir::Read), 0);
    assert_eq!(d.stats().in_flight, 0);
    let (_, waker) = counting_waker();
    assert!(
        poll(&mut d, key, &waker).is_ready(),
        "a stale key is answered, never reaches another op"
    );

    b.write_all(b"after").unwrap();
    let mut got = vec![0u8; 5];
    let key = submit(&mut d, recv(a.as_raw_fd(), &mut got));
    assert_eq!(run(&mut d, key).res.unwrap(), 5);
    assert_eq!(&got, b"after");
}

#[test]
fn accept_and_connect_through_the_driver() {
    let mut d = driver();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    d.register_handle(listener.as_raw_fd()).unwrap();
    let accept = submit(
        &mut d,
        op::Accept {
            fd: listener.as_raw_fd(),
            ipv6: false,
        },
    );
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    d.register_handle(client.as_raw_fd()).unwrap();
    let connect = submit(
        &mut d,
        op::Connect {
            fd: client.as_raw_fd(),
            addr,
        },
    );
    run(&mut d, connect).res.unwrap();
    let out = run(&mut d, accept);
    let fd = out.res.unwrap() as RawFd;
    // SAFETY: plain `fcntl` on the new descriptor.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert_eq!(
        flags & libc::O_NONBLOCK,
        0,
        "accepted sockets are blocking, as on io_uring"
    );
    // SAFETY: the accept op handed us this new descriptor.
    let server = unsafe { crate::sys::socket_from_raw(fd) };
    assert_eq!(
        out.addr.unwrap(),
        client.local_addr().unwrap().as_socket().unwrap()
    );
    assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let mut d = driver();
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    d.register_handle(s.as_raw_fd()).unwrap();
    let key = submit(
        &mut d,
        op::Connect {
            fd: s.as_raw_fd(),
            addr,
        },
    );
    let err = run(&mut d, key).res.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn udp_send_to_and_recv_from_carry_addresses() {
    let mut d = driver();
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    d.register_handle(a.as_raw_fd()).unwrap();
    d.register_handle(b.as_raw_fd()).unwrap();
    let mut buf = vec![0u8; 32];
    let rx = submit(
        &mut d,
        op::RecvFrom {
            fd: b.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: 32,
        },
    );
    let data = b"dgram";
    let tx = submit(
        &mut d,
        op::SendTo {
            fd: a.as_raw_fd(),
            buf: data.as_ptr(),
            len: 5,
            addr: b.local_addr().unwrap(),
        },
    );
    assert_eq!(run(&mut d, tx).res.unwrap(), 5);
    let out = run(&mut d, rx);
    assert_eq!(out.res.unwrap(), 5);
    assert_eq!(out.addr, Some(a.local_addr().unwrap()));
    assert_eq!(&buf[..5], data);
}

#[test]
fn over_budget_ops_are_deferred_to_the_next_wait() {
    let mut d = driver();
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink: SocketAddr = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    d.register_handle(a.as_raw_fd()).unwrap();
    let data = [7u8; 1];
    let (_, waker) = counting_waker();
    d.wait(Some(Duration::ZERO)).unwrap();
    for i in 0..EAGER_BUDGET {
        let key = submit(
            &mut d,
            op::SendTo {
                fd: a.as_raw_fd(),
                buf: data.as_ptr(),
                len: 1,
                addr: sink,
            },
        );
        assert!(poll(&mut d, key, &waker).is_ready(), "op {i} within budget");
    }
    let key = submit(
        &mut d,
        op::SendTo {
            fd: a.as_raw_fd(),
            buf: data.as_ptr(),
            len: 1,
            addr: sink,
        },
    );
    assert!(
        poll(&mut d, key, &waker).is_pending(),
        "budget spent: deferred"
    );
    d.wait(None).unwrap();
    match poll(&mut d, key, &waker) {
        Poll::Ready(out) => assert_eq!(out.res.unwrap(), 1),
        Poll::Pending => panic!("the next wait runs deferred ops without blocking"),
    }
}

#[test]
fn cancelled_deferred_op_is_never_run() {
    let mut d = driver();
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    d.register_handle(a.as_raw_fd()).unwrap();
    b.set_nonblocking(true).unwrap();
    let data = [1u8; 1];
    d.wait(Some(Duration::ZERO)).unwrap();
    let send_to = |d: &mut EpollDriver| {
        submit(
            d,
            op::SendTo {
                fd: a.as_raw_fd(),
                buf: data.as_ptr(),
                len: 1,
                addr: b.local_addr().unwrap(),
            },
        )
    };
    let mut drain = [0u8; 4];
    let mut received = 0;
    for _ in 0..EAGER_BUDGET {
        let key = send_to(&mut d);
        run(&mut d, key).res.unwrap();
        // Loopback delivers at once; reading as we go keeps the receive
        // buffer from dropping datagrams.
        while b.recv(&mut drain).is_ok() {
            received += 1;
        }
    }
    assert_eq!(received, EAGER_BUDGET);
    let key = send_to(&mut d);
    let keep = Rc::new(());
    d.cancel(key, Some(Box::new(keep.clone())));
    assert_eq!(Rc::strong_count(&keep), 1, "freed at once");
    d.wait(Some(Duration::from_millis(20))).unwrap();
    assert!(b.recv(&mut drain).is_err(), "the cancelled send never ran");
}

#[test]
fn file_ops_run_on_the_pool() {
    let mut d = driver();
    let path = std::env::temp_dir().join(format!("veloq-epoll-{}-file", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let open = submit(
        &mut d,
        op::Open {
            path: path.clone(),
            flags: OpenFlags {
                read: true,
                write: true,
                create: true,
                truncate: true,
                mode: 0o600,
                ..OpenFlags::default()
            },
        },
    );
    let fd = run(&mut d, open).res.unwrap() as RawFd;
    d.register_handle(fd).unwrap();
    let data = b"0123456789";
    let w = submit(
        &mut d,
        op::WriteFixed {
            fd,
            buf: data.as_ptr(),
            len: 10,
            offset: 100,
            fixed: None,
        },
    );
    assert_eq!(run(&mut d, w).res.unwrap(), 10);
    for desc in [
        submit(
            &mut d,
            op::Fsync {
                fd,
                data_only: true,
            },
        ),
        submit(
            &mut d,
            op::SyncFileRange {
                fd,
                offset: 0,
                len: 110,
            },
        ),
        submit(
            &mut d,
            op::Fallocate {
                fd,
                offset: 0,
                len: 4096,
            },
        ),
    ] {
        run(&mut d, desc).res.unwrap();
    }
    let mut buf = vec![0u8; 10];
    let r = submit(
        &mut d,
        op::ReadFixed {
            fd,
            buf: buf.as_mut_ptr(),
            len: 10,
            offset: 100,
            fixed: None,
        },
    );
    assert_eq!(run(&mut d, r).res.unwrap(), 10);
    assert_eq!(&buf, data);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    let c = submit(&mut d, op::Close { fd });
    run(&mut d, c).res.unwrap();
    assert!(d.pool_threads() >= 1);
    std::fs::remove_file(&path).unwrap();

    let missing = submit(
        &mut d,
        op::Open {
            path,
            flags: OpenFlags {
                read: true,
                ..OpenFlags::default()
            },
        },
    );
    let err = run(&mut d, missing).res.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn cancelled_pool_op_is_freed_when_the_pool_reports_it() {
    let mut d = driver();
    // Opening a FIFO for reading blocks the pool thread until a writer
    // opens it.
    let path = std::env::temp_dir().join(format!("veloq-epoll-{}-fifo", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c_path` is a live NUL-terminated string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let key = submit(
        &mut d,
        op::Open {
            path: path.clone(),
            flags: OpenFlags {
                read: true,
                ..OpenFlags::default()
            },
        },
    );
    d.wait(Some(Duration::from_millis(20))).unwrap();
    let keep = Rc::new(());
    d.cancel(key, Some(Box::new(keep.clone())));
    d.wait(Some(Duration::from_millis(20))).unwrap();
    assert_eq!(Rc::strong_count(&keep), 2, "the pool still runs the op");
    assert_eq!(d.stats().in_flight, 1);

    // A writer lets the open finish; the driver then frees the slot and
    // closes the descriptor nobody will take.
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let start = Instant::now();
    while Rc::strong_count(&keep) != 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "never freed");
        d.wait(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(d.stats().in_flight, 0);
    // The reader was closed: writing now finds no reader.
    let mut writer = writer;
    let err = writer.write_all(b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn wake_from_another_thread_ends_a_blocking_wait() {
    let mut d = driver();
    let handle = d.wake_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        handle.unpark();
        handle.unpark(); // coalesced
    });
    let start = Instant::now();
    d.wait(None).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
    // Both unparks were consumed by that one wake (or one more turn):
    // a later zero wait does not block and a later wake still works.
    d.wait(Some(Duration::ZERO)).unwrap();
    d.wake_handle().unpark();
    let start = Instant::now();
    d.wait(Some(Duration::from_secs(5))).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "a fresh wake is seen"
    );
}

#[test]
fn wait_returns_at_the_next_timer() {
    let mut d = driver();
    let (count, waker) = counting_waker();
    let at = Instant::now() + Duration::from_millis(30);
    let _key = d.timers().insert(at, &waker);
    let start = Instant::now();
    while count.0.load(Ordering::SeqCst) == 0 {
        d.wait(None).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    assert!(Instant::now() >= at, "never early");
    assert!(d.stats().wait_calls >= 1);
}

#[test]
fn drop_waits_for_pool_ops_and_frees_socket_ops() {
    let mut d = driver();
    let (a, _b) = tcp_pair(&mut d);
    let net_buf = Rc::new(vec![0u8; 8]);
    let key = submit(
        &mut d,
        op::Recv {
            fd: a.as_raw_fd(),
            buf: net_buf.as_ptr().cast_mut(),
            len: 8,
        },
    );
    d.cancel(key, Some(Box::new(net_buf.clone())));
    let file_buf = Rc::new(vec![0u8; 8]);
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let key = submit(
        &mut d,
        op::ReadFixed {
            fd: file.as_raw_fd(),
            buf: file_buf.as_ptr().cast_mut(),
            len: 8,
            offset: 0,
            fixed: None,
        },
    );
    d.cancel(key, Some(Box::new(file_buf.clone())));
    let mut waiting = vec![0u8; 8];
    let _pending = submit(&mut d, recv(a.as_raw_fd(), &mut waiting));
    drop(d);
    assert_eq!(Rc::strong_count(&net_buf), 1);
    assert_eq!(Rc::strong_count(&file_buf), 1);
}

#[test]
fn short_stream_read_waits_for_the_next_edge() {
    let mut d = driver();
    let (a, mut b) = tcp_pair(&mut d);
    b.write_all(b"abc").unwrap();
    let mut buf = vec![0u8; 16];
    let key = submit(&mut d, recv(a.as_raw_fd(), &mut buf));
    assert_eq!(run(&mut d, key).res.unwrap(), 3);
    // The queue was drained: the next read parks without trying and
    // completes on the edge that new data raises.
    let key = submit(&mut d, recv(a.as_raw_fd(), &mut buf));
    assert_eq!(d.waiting(a.as_raw_fd(), Dir::Read), 1);
    b.write_all(b"defg").unwrap();
    assert_eq!(run(&mut d, key).res.unwrap(), 4);
    assert_eq!(&buf[..4], b"defg");
}

#[test]
fn short_datagram_reads_do_not_wait_for_an_edge() {
    let mut d = driver();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    d.register_handle(rx.as_raw_fd()).unwrap();
    tx.send_to(b"one", rx.local_addr().unwrap()).unwrap();
    tx.send_to(b"two", rx.local_addr().unwrap()).unwrap();
    // Both datagrams are queued before the first read; a short datagram
    // says nothing about the queue, so the second read must not wait.
    std::thread::sleep(Duration::from_millis(20));
    let (_, waker) = counting_waker();
    for want in [b"one", b"two"] {
        let mut buf = vec![0u8; 32];
        let key = submit(&mut d, recv(rx.as_raw_fd(), &mut buf));
        match poll(&mut d, key, &waker) {
            Poll::Ready(out) => assert_eq!(out.res.unwrap(), 3),
            Poll::Pending => panic!("a queued datagram is read at once"),
        }
        assert_eq!(&buf[..3], want);
    }
}
