//! Driver-level tests against the live kernel: ops are submitted straight
//! to a `UringDriver` with a counting waker, no executor involved.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::*;
use crate::io::driver::IntoPlatformOp;
use crate::io::op::{self, OpenFlags};

/// A waker that counts its wakes.
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

fn driver() -> UringDriver {
    UringDriver::new(&DriverConfig::default()).expect("io_uring setup")
}

fn submit(d: &mut UringDriver, desc: impl IntoPlatformOp<UringDriver>) -> OpKey {
    let key = d.reserve().unwrap();
    d.submit(key, desc.into_platform_op()).expect("submit");
    key
}

/// Drives `d` until `key` completes (or panics after 10 s).
fn run(d: &mut UringDriver, key: OpKey) -> OpOutput {
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
fn wait_until(d: &mut UringDriver, mut cond: impl FnMut(&mut UringDriver) -> bool) {
    let start = Instant::now();
    while !cond(d) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "condition never held"
        );
        d.wait(Some(Duration::from_millis(50))).unwrap();
    }
}

fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("veloq-uring-{}-{n}-{name}", std::process::id()))
}

/// A temp file, removed on drop.
struct TempFile {
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

fn write_at(fd: RawFd, data: &[u8], offset: u64, fixed: Option<u16>) -> op::WriteFixed {
    op::WriteFixed {
        fd,
        buf: data.as_ptr(),
        len: data.len() as u32,
        offset,
        fixed,
    }
}

fn read_at(fd: RawFd, buf: &mut [u8], offset: u64, fixed: Option<u16>) -> op::ReadFixed {
    op::ReadFixed {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.len() as u32,
        offset,
        fixed,
    }
}

#[test]
fn file_write_then_read_at_offsets() {
    let mut d = driver();
    let f = TempFile::new("rw");
    let data = b"hello, ring".to_vec();
    let key = submit(&mut d, write_at(f.fd(), &data, 4, None));
    assert_eq!(run(&mut d, key).res.unwrap(), data.len());

    let mut buf = vec![0xffu8; 15];
    let key = submit(&mut d, read_at(f.fd(), &mut buf, 0, None));
    assert_eq!(run(&mut d, key).res.unwrap(), 15);
    assert_eq!(
        &buf[..4],
        &[0, 0, 0, 0],
        "hole before the write reads as zeros"
    );
    assert_eq!(&buf[4..], &data[..]);

    let mut tail = vec![0u8; 8];
    let key = submit(&mut d, read_at(f.fd(), &mut tail, 10, None));
    assert_eq!(
        run(&mut d, key).res.unwrap(),
        5,
        "short read at end of file"
    );
    assert_eq!(&tail[..5], b", ring"[1..].as_ref());
    assert_eq!(d.stats().in_flight, 0);
}

#[test]
fn send_and_recv_over_a_socketpair() {
    let mut d = driver();
    let (a, b) = UnixStream::pair().unwrap();
    let mut buf = vec![0u8; 16];
    // Receive first: it waits in the kernel until the send arrives.
    let recv = submit(
        &mut d,
        op::Recv {
            fd: b.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: buf.len() as u32,
        },
    );
    let msg = b"ping".to_vec();
    let send = submit(
        &mut d,
        op::Send {
            fd: a.as_raw_fd(),
            buf: msg.as_ptr(),
            len: msg.len() as u32,
        },
    );
    assert_eq!(run(&mut d, send).res.unwrap(), 4);
    assert_eq!(run(&mut d, recv).res.unwrap(), 4);
    assert_eq!(&buf[..4], b"ping");
}

#[test]
fn recv_from_reports_the_source_address() {
    let mut d = driver();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut buf = vec![0u8; 32];
    let recv = submit(
        &mut d,
        op::RecvFrom {
            fd: rx.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: buf.len() as u32,
        },
    );
    let msg = b"datagram".to_vec();
    let send = submit(
        &mut d,
        op::SendTo {
            fd: tx.as_raw_fd(),
            buf: msg.as_ptr(),
            len: msg.len() as u32,
            addr: rx.local_addr().unwrap(),
        },
    );
    assert_eq!(run(&mut d, send).res.unwrap(), msg.len());
    let out = run(&mut d, recv);
    assert_eq!(out.res.unwrap(), msg.len());
    assert_eq!(&buf[..msg.len()], &msg[..]);
    assert_eq!(out.addr, Some(tx.local_addr().unwrap()));
}

#[test]
fn send_to_ipv6_loopback() {
    let Ok(rx) = UdpSocket::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    };
    let mut d = driver();
    let tx = UdpSocket::bind("[::1]:0").unwrap();
    let msg = b"six".to_vec();
    let send = submit(
        &mut d,
        op::SendTo {
            fd: tx.as_raw_fd(),
            buf: msg.as_ptr(),
            len: 3,
            addr: rx.local_addr().unwrap(),
        },
    );
    assert_eq!(run(&mut d, send).res.unwrap(), 3);
    let mut buf = vec![0u8; 8];
    let recv = submit(
        &mut d,
        op::RecvFrom {
            fd: rx.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: 8,
        },
    );
    let out = run(&mut d, recv);
    assert_eq!(out.res.unwrap(), 3);
    assert_eq!(out.addr, Some(tx.local_addr().unwrap()));
}

#[test]
fn accept_and_connect_over_loopback() {
    let mut d = driver();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = submit(
        &mut d,
        op::Accept {
            fd: listener.as_raw_fd(),
            ipv6: false,
        },
    );
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let connect = submit(
        &mut d,
        op::Connect {
            fd: client.as_raw_fd(),
            addr,
        },
    );
    assert_eq!(run(&mut d, connect).res.unwrap(), 0);
    let out = run(&mut d, accept);
    let fd = out.res.unwrap() as RawFd;
    let client_addr: SocketAddr = client.local_addr().unwrap().as_socket().unwrap();
    assert_eq!(out.addr, Some(client_addr));
    // SAFETY: the accept op created `fd`; this test owns it from here.
    let mut server = unsafe { <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: `fd` is a valid descriptor; F_GETFD has no pointers.
    let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_ne!(
        fd_flags & libc::FD_CLOEXEC,
        0,
        "accepted socket must be CLOEXEC"
    );
    let mut client: std::net::TcpStream = client.into();
    client.write_all(b"hi").unwrap();
    let mut got = [0u8; 2];
    server.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hi");
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let mut d = driver();
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let key = submit(
        &mut d,
        op::Connect {
            fd: client.as_raw_fd(),
            addr,
        },
    );
    let err = run(&mut d, key).res.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn open_missing_file_is_not_found() {
    let mut d = driver();
    let key = submit(
        &mut d,
        op::Open {
            path: temp_path("does-not-exist"),
            flags: OpenFlags {
                read: true,
                ..OpenFlags::default()
            },
        },
    );
    let err = run(&mut d, key).res.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn open_create_write_fsync_close() {
    let mut d = driver();
    let path = temp_path("created");
    let key = submit(
        &mut d,
        op::Open {
            path: path.clone(),
            flags: OpenFlags {
                write: true,
                create_new: true,
                mode: 0o600,
                ..OpenFlags::default()
            },
        },
    );
    let fd = run(&mut d, key).res.unwrap() as RawFd;
    // SAFETY: `fd` is the descriptor the open op created; F_GETFD has no
    // pointers.
    let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_ne!(
        fd_flags & libc::FD_CLOEXEC,
        0,
        "opened file must be CLOEXEC"
    );
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );

    let data = vec![7u8; 100];
    let key = submit(&mut d, write_at(fd, &data, 0, None));
    assert_eq!(run(&mut d, key).res.unwrap(), 100);
    let key = submit(
        &mut d,
        op::Fallocate {
            fd,
            offset: 0,
            len: 8192,
        },
    );
    run(&mut d, key).res.unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        8192,
        "fallocate extends"
    );
    let key = submit(
        &mut d,
        op::SyncFileRange {
            fd,
            offset: 0,
            len: 4096,
        },
    );
    run(&mut d, key).res.unwrap();
    for data_only in [false, true] {
        let key = submit(&mut d, op::Fsync { fd, data_only });
        run(&mut d, key).res.unwrap();
    }
    let key = submit(&mut d, op::Close { fd });
    run(&mut d, key).res.unwrap();
    // (Whether `fd` is closed cannot be checked here: a parallel test may
    // already have been given the same number.)

    let create_again = submit(
        &mut d,
        op::Open {
            path: path.clone(),
            flags: OpenFlags {
                write: true,
                create_new: true,
                ..OpenFlags::default()
            },
        },
    );
    let err = run(&mut d, create_again).res.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn invalid_open_fails_at_submit_and_frees_the_slot() {
    let mut d = driver();
    let key = d.reserve().unwrap();
    let desc = op::Open {
        path: PathBuf::from("nul\0byte"),
        flags: OpenFlags {
            read: true,
            ..OpenFlags::default()
        },
    };
    let err = d.submit(key, desc.into_platform_op()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(d.registry.is_empty());
    assert_eq!(d.stats().in_flight, 0);
}

#[test]
fn cancel_of_a_pending_recv_frees_the_keep_alive_once() {
    let mut d = driver();
    let (_a, b) = UnixStream::pair().unwrap();
    let buf = Rc::new(std::cell::RefCell::new(vec![0u8; 64]));
    let ptr = buf.borrow_mut().as_mut_ptr();
    let key = submit(
        &mut d,
        op::Recv {
            fd: b.as_raw_fd(),
            buf: ptr,
            len: 64,
        },
    );
    d.wait(Some(Duration::ZERO)).unwrap();
    assert_eq!(d.stats().in_flight, 1);
    d.cancel(key, Some(Box::new(buf.clone())));
    assert_eq!(
        Rc::strong_count(&buf),
        2,
        "kept alive while the kernel has it"
    );
    wait_until(&mut d, |d| d.registry.is_empty());
    assert_eq!(Rc::strong_count(&buf), 1, "released exactly once");
    assert_eq!(d.stats().in_flight, 0);
    // A late second cancel of the same key is a no-op.
    d.cancel(key, None);
    assert_eq!(Rc::strong_count(&buf), 1);
}

#[test]
fn cancel_after_completion_frees_at_once() {
    let mut d = driver();
    let f = TempFile::new("cancel-done");
    let data = vec![1u8; 8];
    let key = submit(&mut d, write_at(f.fd(), &data, 0, None));
    wait_until(&mut d, |d| d.stats().in_flight == 0);
    let keep = Rc::new(());
    d.cancel(key, Some(Box::new(keep.clone())));
    assert_eq!(Rc::strong_count(&keep), 1);
    assert!(d.registry.is_empty());
}

#[test]
fn wake_from_another_thread_unblocks_wait() {
    let mut d = driver();
    let handle = d.wake_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        handle.unpark();
    });
    let start = Instant::now();
    d.wait(None).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
    // The wake read was re-armed: a second wake works too.
    let handle = d.wake_handle();
    let t = std::thread::spawn(move || handle.unpark());
    d.wait(None).unwrap();
    t.join().unwrap();
}

#[test]
fn wakes_coalesce() {
    let mut d = driver();
    let handle = d.wake_handle();
    let before = d.stats().completions;
    for _ in 0..10 {
        handle.unpark();
    }
    d.wait(None).unwrap();
    assert_eq!(d.stats().completions - before, 1, "ten unparks, one wake");
    // Nothing is pending any more: a bounded wait runs to its timeout.
    let start = Instant::now();
    d.wait(Some(Duration::from_millis(40))).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(35),
        "no stale wake left"
    );
}

#[test]
fn timer_deadline_bounds_wait() {
    let mut d = driver();
    let (count, waker) = counting_waker();
    let start = Instant::now();
    d.timers().insert(start + Duration::from_millis(30), &waker);
    d.wait(None).unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(30),
        "woke early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "woke late: {waited:?}");
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "timer fired");
    assert_eq!(d.timers().len(), 0);
}

#[test]
fn earlier_deadline_replaces_armed_timeout() {
    let mut d = driver();
    // Arm a long timeout first (a wait that a wake cuts short)...
    d.wake_handle().unpark();
    d.wait(Some(Duration::from_secs(30))).unwrap();
    // ...then a much earlier one must still bound the next wait.
    let start = Instant::now();
    d.wait(Some(Duration::from_millis(20))).unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(15),
        "woke early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(2),
        "old timeout was used: {waited:?}"
    );
}

#[test]
fn zero_timeout_never_blocks() {
    let mut d = driver();
    let start = Instant::now();
    for _ in 0..100 {
        d.wait(Some(Duration::ZERO)).unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(d.stats().wait_calls, 0, "no blocking enter");
}

#[test]
fn many_ops_in_flight_grow_the_slab() {
    // A small SQ also exercises "SQ full: submit and retry".
    let config = DriverConfig {
        entries: 8,
        ..DriverConfig::default()
    };
    let mut d = UringDriver::new(&config).unwrap();
    const N: usize = 150;
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..N).map(|_| UnixStream::pair().unwrap()).collect();
    let mut bufs: Vec<Vec<u8>> = (0..N).map(|_| vec![0u8; 8]).collect();
    let keys: Vec<OpKey> = pairs
        .iter()
        .zip(bufs.iter_mut())
        .map(|((_, b), buf)| {
            submit(
                &mut d,
                op::Recv {
                    fd: b.as_raw_fd(),
                    buf: buf.as_mut_ptr(),
                    len: 8,
                },
            )
        })
        .collect();
    d.wait(Some(Duration::ZERO)).unwrap();
    assert_eq!(d.stats().in_flight, N);
    for (i, (a, _)) in pairs.iter().enumerate() {
        (&*a).write_all(&(i as u64).to_le_bytes()).unwrap();
    }
    for (i, key) in keys.into_iter().enumerate() {
        assert_eq!(run(&mut d, key).res.unwrap(), 8);
        assert_eq!(
            u64::from_le_bytes(bufs[i][..].try_into().unwrap()),
            i as u64
        );
    }
    assert_eq!(d.stats().in_flight, 0);
}

#[test]
fn drop_with_reads_in_flight_drains() {
    let mut d = driver();
    const N: usize = 80;
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..N).map(|_| UnixStream::pair().unwrap()).collect();
    let keep = Rc::new(());
    let mut bufs: Vec<Vec<u8>> = (0..N).map(|_| vec![0u8; 16]).collect();
    let keys: Vec<OpKey> = pairs
        .iter()
        .zip(bufs.iter_mut())
        .map(|((_, b), buf)| {
            submit(
                &mut d,
                op::Recv {
                    fd: b.as_raw_fd(),
                    buf: buf.as_mut_ptr(),
                    len: 16,
                },
            )
        })
        .collect();
    // One more whose buffer stays with the test (its future "still lives").
    let mut own = vec![0u8; 16];
    let (own_tx, own_rx) = UnixStream::pair().unwrap();
    submit(
        &mut d,
        op::Recv {
            fd: own_rx.as_raw_fd(),
            buf: own.as_mut_ptr(),
            len: 16,
        },
    );
    // A long timeout armed in the kernel too (fallback path), and every
    // recv really in the kernel.
    d.use_timeout_op();
    d.wake_handle().unpark();
    d.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(d.stats().in_flight, N + 1);
    // Cancel the first N (their futures "dropped"): the cancels are only
    // queued when the driver goes away.
    for (key, buf) in keys.into_iter().zip(bufs.iter_mut()) {
        d.cancel(key, Some(Box::new((keep.clone(), std::mem::take(buf)))));
    }
    assert_eq!(Rc::strong_count(&keep), N + 1);
    let start = Instant::now();
    drop(d);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "drain took {:?}",
        start.elapsed()
    );
    assert_eq!(Rc::strong_count(&keep), 1, "every keep-alive freed");
    // Nothing reads the socket any more: data sent now stays queued.
    (&own_tx).write_all(b"late").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(own, vec![0u8; 16], "no write after the drop");
    own_rx.set_nonblocking(true).unwrap();
    let mut got = [0u8; 4];
    (&own_rx).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"late");
}

#[test]
fn timeout_op_fallback_bounds_waits() {
    let mut d = driver();
    d.use_timeout_op();
    let (count, waker) = counting_waker();
    let start = Instant::now();
    d.timers().insert(start + Duration::from_millis(30), &waker);
    d.wait(None).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    // An armed long timeout is replaced by an earlier one; the removal's
    // CQEs must not end the wait early.
    d.wake_handle().unpark();
    d.wait(Some(Duration::from_secs(30))).unwrap();
    let start = Instant::now();
    d.wait(Some(Duration::from_millis(20))).unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(15),
        "woke early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(2),
        "old timeout was used: {waited:?}"
    );
}

#[test]
fn fixed_buffers_read_and_write() {
    let mut d = driver();
    if !d.has_fixed_buffers() {
        eprintln!("skipped: kernel has no sparse fixed-buffer table");
        return;
    }
    let mut wbuf = vec![0u8; 4096];
    let mut rbuf = vec![0u8; 4096];
    wbuf[..5].copy_from_slice(b"fixed");
    // SAFETY: both buffers outlive the driver's use of them: they are
    // unregistered below before they drop.
    let first =
        unsafe { d.register_buffers(&[(wbuf.as_mut_ptr(), 4096), (rbuf.as_mut_ptr(), 4096)]) }
            .unwrap();
    let Some(first) = first else {
        eprintln!("skipped: buffer registration refused (RLIMIT_MEMLOCK?)");
        return;
    };
    let f = TempFile::new("fixed");
    let key = submit(&mut d, write_at(f.fd(), &wbuf[..5], 100, Some(first)));
    assert_eq!(run(&mut d, key).res.unwrap(), 5);
    let key = submit(
        &mut d,
        read_at(f.fd(), &mut rbuf[..105], 0, Some(first + 1)),
    );
    assert_eq!(run(&mut d, key).res.unwrap(), 105);
    assert_eq!(&rbuf[100..105], b"fixed");

    d.unregister_buffers(first, 2);
    // A cleared slot no longer accepts fixed I/O.
    let key = submit(&mut d, read_at(f.fd(), &mut rbuf[..10], 0, Some(first + 1)));
    assert!(
        run(&mut d, key).res.is_err(),
        "unregistered index must fail"
    );
    // The range is free again.
    // SAFETY: as above.
    let again = unsafe { d.register_buffers(&[(rbuf.as_mut_ptr(), 4096)]) }.unwrap();
    assert_eq!(again, Some(first));
    d.unregister_buffers(first, 1);
}

#[test]
fn every_setup_level_works() {
    for level in SetupLevel::ALL {
        let mut d = UringDriver::with_level(&DriverConfig::default(), level).unwrap();
        assert!(d.setup_level() <= level);
        if d.setup_level() != level {
            eprintln!("kernel refused {level:?}, runs {:?}", d.setup_level());
        }
        let f = TempFile::new("level");
        let data = b"level".to_vec();
        let key = submit(&mut d, write_at(f.fd(), &data, 0, None));
        assert_eq!(run(&mut d, key).res.unwrap(), 5, "{level:?}");
        let handle = d.wake_handle();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            handle.unpark();
        });
        d.wait(None).unwrap();
        t.join().unwrap();
        let start = Instant::now();
        d.wait(Some(Duration::from_millis(20))).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(15), "{level:?}");
    }
}

#[test]
fn stats_count_completions_and_waits() {
    let mut d = driver();
    let f = TempFile::new("stats");
    let data = vec![0u8; 4];
    let before = d.stats();
    let key = submit(&mut d, write_at(f.fd(), &data, 0, None));
    assert_eq!(d.stats().in_flight, 1);
    d.wait(None).unwrap();
    let after = d.stats();
    assert_eq!(after.wait_calls, before.wait_calls + 1);
    assert!(after.completions > before.completions);
    assert_eq!(after.in_flight, 0);
    run(&mut d, key).res.unwrap();
}

#[test]
fn stale_completions_are_ignored() {
    let mut d = driver();
    let f = TempFile::new("stale");
    let data = vec![3u8; 4];
    let old = submit(&mut d, write_at(f.fd(), &data, 0, None));
    run(&mut d, old).res.unwrap();
    // The slot is reused by the next op, under a new generation.
    let mut buf = vec![0u8; 4];
    let (_a, b) = UnixStream::pair().unwrap();
    let new = submit(
        &mut d,
        op::Recv {
            fd: b.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: 4,
        },
    );
    d.wait(Some(Duration::ZERO)).unwrap();
    let in_flight = d.stats().in_flight;
    // A late duplicate of the old op's CQE must not complete the new op.
    d.on_cqe(old.to_user_data(), 4);
    assert_eq!(d.stats().in_flight, in_flight);
    let (_, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(d.poll_op(new, &mut cx).is_pending(), "new op untouched");
    d.cancel(new, Some(Box::new(buf)));
    wait_until(&mut d, |d| d.registry.is_empty());
}

#[allow(dead_code)]
trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
#[allow(dead_code)]
struct Invalid;
impl<T: ?Sized + Send> AmbiguousIfSend<Invalid> for T {}

#[test]
fn the_driver_stays_on_its_thread() {
    // Fails to compile ("type annotations needed") if `UringDriver` were
    // `Send`: the ring may be SINGLE_ISSUER, tied to its creating thread.
    let _ = <UringDriver as AmbiguousIfSend<_>>::some_item;
}
