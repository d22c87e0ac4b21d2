//! Driver-level tests of the IOCP driver: no executor, just an
//! `IocpDriver`, ops submitted by hand, a counting waker and `wait`.
//!
//! They run under Wine in the Windows leg (`scripts/test-windows.sh`).

use std::any::Any;
use std::io;
use std::mem::{align_of, size_of};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::blocking::{BlockingPool, Job};
use super::error::{error_from_code, read_result, KIND_TABLE};
use super::op::{IocpOp, OverlappedEntry, PAYLOAD_LAYOUTS};
use super::IocpDriver;
use crate::io::driver::{Driver, DriverConfig, IntoPlatformOp, OpKey};
use crate::io::op::{self, OpOutput, OpenFlags};
use crate::sys::{socket_fd, RawFd};

// ---- helpers ----------------------------------------------------------------

struct CountWake(AtomicUsize);

impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountWake>, Waker) {
    let count = Arc::new(CountWake(AtomicUsize::new(0)));
    (count.clone(), Waker::from(count))
}

fn driver() -> IocpDriver {
    IocpDriver::new(&DriverConfig::default()).expect("create IOCP driver")
}

fn submit<T: IntoPlatformOp<IocpDriver>>(d: &mut IocpDriver, desc: T) -> io::Result<OpKey> {
    let key = d.reserve()?;
    d.submit(key, desc.into_platform_op())?;
    Ok(key)
}

/// Polls `key` (waiting on the driver in between) until it completes.
fn run(d: &mut IocpDriver, key: OpKey) -> OpOutput {
    let (_, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Poll::Ready(out) = d.poll_op(key, &mut cx) {
            return out;
        }
        assert!(Instant::now() < deadline, "op did not complete in 10 s");
        d.wait(Some(Duration::from_millis(200))).expect("wait");
    }
}

/// Waits until nothing is in flight.
fn drain(d: &mut IocpDriver) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.stats().in_flight > 0 {
        assert!(Instant::now() < deadline, "ops still in flight after 10 s");
        d.wait(Some(Duration::from_millis(200))).expect("wait");
    }
}

fn header_addr(d: &mut IocpDriver, key: OpKey) -> *const OverlappedEntry {
    let op = d
        .ops
        .get_mut(key)
        .and_then(|s| s.op.as_ref())
        .expect("live op");
    &op.header
}

fn udp(d: &mut IocpDriver) -> (Socket, SocketAddr) {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    d.register_handle(socket_fd(&s)).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    (s, addr)
}

fn tcp_listener(d: &mut IocpDriver) -> (Socket, SocketAddr) {
    let l = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    l.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    l.listen(16).unwrap();
    d.register_handle(socket_fd(&l)).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    (l, addr)
}

fn recv_desc(fd: RawFd, buf: &mut [u8]) -> op::Recv {
    op::Recv {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.len() as u32,
    }
}

fn send_desc(fd: RawFd, buf: &[u8]) -> op::Send {
    op::Send {
        fd,
        buf: buf.as_ptr(),
        len: buf.len() as u32,
    }
}

/// A connected pair: (client, server side) sockets, both registered.
fn tcp_pair(d: &mut IocpDriver) -> (Socket, Socket) {
    let (listener, addr) = tcp_listener(d);
    let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    d.register_handle(socket_fd(&client)).unwrap();
    let accept = submit(
        d,
        op::Accept {
            fd: socket_fd(&listener),
            ipv6: false,
        },
    )
    .unwrap();
    let connect = submit(
        d,
        op::Connect {
            fd: socket_fd(&client),
            addr,
        },
    )
    .unwrap();
    run(d, connect).res.expect("connect");
    let accepted = run(d, accept).res.expect("accept");
    // SAFETY: the accept op handed this socket to us; we own it now.
    let server = unsafe { crate::sys::socket_from_raw(accepted) };
    d.register_handle(socket_fd(&server)).unwrap();
    (client, server)
}

fn temp_path(name: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("veloq-iocp-{}-{n}-{name}", std::process::id()))
}

// ---- layout -------------------------------------------------------------------

#[test]
fn op_is_header_vtable_and_largest_payload() {
    let header = size_of::<OverlappedEntry>();
    let (max_size, max_align) = PAYLOAD_LAYOUTS
        .iter()
        .fold((0, 1), |(s, a), &(_, size, align)| {
            (s.max(size), a.max(align))
        });
    let round = |n: usize, a: usize| n.div_ceil(a) * a;
    let payload = round(max_size, max_align);
    let payload_at = round(header + size_of::<usize>(), max_align);
    let expected = round(payload_at + payload, align_of::<IocpOp>());
    assert_eq!(
        size_of::<IocpOp>(),
        expected,
        "payloads: {PAYLOAD_LAYOUTS:?}"
    );
    assert_eq!(size_of::<super::op::IocpOpPayload>(), payload);
    // The OVERLAPPED is at the very start of the op.
    assert_eq!(std::mem::offset_of!(IocpOp, header), 0);
    assert_eq!(std::mem::offset_of!(OverlappedEntry, overlapped), 0);
    // Small enough to keep many in flight: well under the 128-byte
    // SOCKADDR_STORAGE-per-op designs.
    assert!(
        size_of::<IocpOp>() <= 256,
        "IocpOp is {} bytes",
        size_of::<IocpOp>()
    );
    eprintln!(
        "IocpOp: {} bytes (header {header}, largest payload {max_size})",
        size_of::<IocpOp>()
    );
}

// ---- errors -------------------------------------------------------------------

#[test]
fn error_table_maps_every_code() {
    for &(code, kind) in KIND_TABLE {
        assert_eq!(error_from_code(code).kind(), kind, "code {code}");
    }
    use windows_sys::Win32::Foundation::{
        ERROR_BROKEN_PIPE, ERROR_HANDLE_EOF, ERROR_OPERATION_ABORTED,
    };
    let cancelled = error_from_code(ERROR_OPERATION_ABORTED);
    assert_eq!(cancelled.kind(), crate::io::op::cancelled().kind());
    assert_eq!(
        cancelled.to_string(),
        crate::io::op::cancelled().to_string()
    );
    assert_eq!(read_result(ERROR_HANDLE_EOF).unwrap(), 0);
    assert_eq!(read_result(ERROR_BROKEN_PIPE).unwrap(), 0);
    assert_eq!(
        error_from_code(ERROR_BROKEN_PIPE).kind(),
        io::ErrorKind::BrokenPipe
    );
    // A code std already maps keeps its raw OS code.
    assert_eq!(error_from_code(2).raw_os_error(), Some(2));
}

// ---- the blocking pool ----------------------------------------------------------

struct Probe {
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

impl Job for Probe {
    fn run(self) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(2));
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn pool_respects_its_bound_under_100_queued_jobs() {
    let pool = BlockingPool::new(4, Duration::from_secs(5));
    let (running, peak, done) = (
        Arc::default(),
        Arc::<AtomicUsize>::default(),
        Arc::<AtomicUsize>::default(),
    );
    for _ in 0..100 {
        let job = Probe {
            running: Arc::clone(&running),
            peak: Arc::clone(&peak),
            done: Arc::clone(&done),
        };
        assert!(pool.execute(job).is_ok());
        assert!(pool.threads() <= 4);
    }
    wait_for("100 jobs", || done.load(Ordering::SeqCst) == 100);
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 4, "{peak} jobs ran at once with a bound of 4");
    assert!(peak >= 2, "jobs never ran in parallel (peak {peak})");
    assert!(pool.threads() <= 4);
}

#[test]
fn pool_idle_threads_exit_after_keep_alive() {
    let pool = BlockingPool::new(3, Duration::from_millis(50));
    let done = Arc::<AtomicUsize>::default();
    for _ in 0..6 {
        let job = Probe {
            running: Arc::default(),
            peak: Arc::default(),
            done: Arc::clone(&done),
        };
        assert!(pool.execute(job).is_ok());
    }
    wait_for("6 jobs", || done.load(Ordering::SeqCst) == 6);
    assert!(pool.threads() >= 1);
    wait_for("idle threads to exit", || pool.threads() == 0);
    // And it starts threads again afterwards.
    let job = Probe {
        running: Arc::default(),
        peak: Arc::default(),
        done: Arc::clone(&done),
    };
    assert!(pool.execute(job).is_ok());
    wait_for("a job after idle exit", || done.load(Ordering::SeqCst) == 7);
}

// ---- registry -------------------------------------------------------------------

#[test]
fn slab_pages_keep_in_flight_ops_in_place_and_batch_completions() {
    const N: usize = 150; // more than two 64-entry slab pages
    let mut d = driver();
    let (rx, rx_addr) = udp(&mut d);
    let (tx, tx_addr) = udp(&mut d);
    let mut bufs: Vec<Vec<u8>> = (0..N).map(|_| vec![0u8; 16]).collect();
    let mut keys = Vec::new();
    let mut addrs = Vec::new();
    for buf in &mut bufs {
        let desc = op::RecvFrom {
            fd: socket_fd(&rx),
            buf: buf.as_mut_ptr(),
            len: buf.len() as u32,
        };
        let key = submit(&mut d, desc).unwrap();
        addrs.push(header_addr(&mut d, key));
        keys.push(key);
    }
    assert_eq!(d.stats().in_flight, N);
    for (key, addr) in keys.iter().zip(&addrs) {
        assert_eq!(header_addr(&mut d, *key), *addr, "an in-flight op moved");
    }
    for i in 0..N as u32 {
        tx.send_to(&i.to_le_bytes(), &rx_addr.into()).unwrap();
    }
    let before = d.stats();
    let mut seen = [false; N];
    for key in keys {
        let out = run(&mut d, key);
        assert_eq!(out.res.unwrap(), 4);
        assert_eq!(out.addr, Some(tx_addr));
    }
    for buf in &bufs {
        let i = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
        assert!(!seen[i], "datagram {i} received twice");
        seen[i] = true;
    }
    let after = d.stats();
    let (completions, calls) = (
        after.completions - before.completions,
        after.wait_calls - before.wait_calls,
    );
    eprintln!(
        "batching: {completions} completions in {calls} GetQueuedCompletionStatusEx calls, max {} per call",
        d.max_batch()
    );
    assert_eq!(completions, N as u64);
    assert!(
        d.max_batch() > 1,
        "every GQCSEx call returned a single packet"
    );
    assert_eq!(d.stats().in_flight, 0);
    assert!(d.ops.is_empty());
}

#[test]
fn stale_key_never_reaches_the_reused_slot() {
    let mut d = driver();
    let (rx, rx_addr) = udp(&mut d);
    let (tx, _) = udp(&mut d);
    let mut buf = [0u8; 8];
    let first = submit(&mut d, recv_desc(socket_fd(&rx), &mut buf)).unwrap();
    tx.send_to(b"one", &rx_addr.into()).unwrap();
    assert_eq!(run(&mut d, first).res.unwrap(), 3);
    let second = submit(&mut d, recv_desc(socket_fd(&rx), &mut buf)).unwrap();
    assert_ne!(first, second);
    // The old key is stale: polling it does not touch (or finish) the new op.
    let (_, waker) = counting_waker();
    match d.poll_op(first, &mut Context::from_waker(&waker)) {
        Poll::Ready(out) => assert!(out.res.is_err()),
        Poll::Pending => panic!("stale key must not be pending"),
    }
    assert_eq!(d.stats().in_flight, 1);
    d.cancel(first, None); // Stale: a no-op.
    assert_eq!(d.stats().in_flight, 1);
    tx.send_to(b"two!", &rx_addr.into()).unwrap();
    assert_eq!(run(&mut d, second).res.unwrap(), 4);
}

// ---- files ---------------------------------------------------------------------

fn open(d: &mut IocpDriver, path: &std::path::Path, flags: OpenFlags) -> io::Result<RawFd> {
    let key = submit(
        d,
        op::Open {
            path: path.to_path_buf(),
            flags,
        },
    )?;
    let fd = run(d, key).res?;
    d.register_handle(fd)?;
    Ok(fd)
}

fn rw_flags() -> OpenFlags {
    OpenFlags {
        read: true,
        write: true,
        create: true,
        ..OpenFlags::default()
    }
}

#[test]
fn file_write_and_read_at_offsets() {
    let mut d = driver();
    let path = temp_path("rw");
    let fd = open(&mut d, &path, rw_flags()).unwrap();

    for (offset, data) in [(0u64, &b"head"[..]), (4096, b"middle"), (1 << 20, b"far")] {
        let w = op::WriteFixed {
            fd,
            buf: data.as_ptr(),
            len: data.len() as u32,
            offset,
            fixed: None,
        };
        let key = submit(&mut d, w).unwrap();
        assert_eq!(run(&mut d, key).res.unwrap(), data.len());
    }
    for (offset, data) in [(4096u64, &b"middle"[..]), (0, b"head"), (1 << 20, b"far")] {
        let mut buf = vec![0u8; data.len()];
        let r = op::ReadFixed {
            fd,
            buf: buf.as_mut_ptr(),
            len: buf.len() as u32,
            offset,
            fixed: None,
        };
        let key = submit(&mut d, r).unwrap();
        assert_eq!(run(&mut d, key).res.unwrap(), data.len());
        assert_eq!(buf, data);
    }
    // The hole between the writes reads as zeros.
    let mut buf = vec![0xffu8; 16];
    let r = op::ReadFixed {
        fd,
        buf: buf.as_mut_ptr(),
        len: 16,
        offset: 100,
        fixed: None,
    };
    let key = submit(&mut d, r).unwrap();
    assert_eq!(run(&mut d, key).res.unwrap(), 16);
    assert_eq!(buf, vec![0u8; 16]);
    // Past the end: a zero-byte read, not an error.
    let r = op::ReadFixed {
        fd,
        buf: buf.as_mut_ptr(),
        len: 16,
        offset: 2 << 20,
        fixed: None,
    };
    let key = submit(&mut d, r).unwrap();
    assert_eq!(run(&mut d, key).res.unwrap(), 0);

    let key = submit(
        &mut d,
        op::Fsync {
            fd,
            data_only: false,
        },
    )
    .unwrap();
    run(&mut d, key).res.unwrap();
    let key = submit(
        &mut d,
        op::SyncFileRange {
            fd,
            offset: 0,
            len: 4096,
        },
    )
    .unwrap();
    run(&mut d, key).res.unwrap();
    let key = submit(
        &mut d,
        op::Fallocate {
            fd,
            offset: 0,
            len: 3 << 20,
        },
    )
    .unwrap();
    run(&mut d, key).res.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 << 20);
    // Allocating inside the file never shrinks it.
    let key = submit(
        &mut d,
        op::Fallocate {
            fd,
            offset: 0,
            len: 10,
        },
    )
    .unwrap();
    run(&mut d, key).res.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 << 20);

    let key = submit(&mut d, op::Close { fd }).unwrap();
    run(&mut d, key).res.unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[4096..4102], b"middle");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn open_errors_map_to_kinds() {
    let mut d = driver();
    let missing = temp_path("missing");
    let flags = OpenFlags {
        read: true,
        ..OpenFlags::default()
    };
    assert_eq!(
        open(&mut d, &missing, flags).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let in_missing_dir = missing.join("child");
    assert_eq!(
        open(&mut d, &in_missing_dir, flags).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );

    let path = temp_path("exists");
    std::fs::write(&path, b"x").unwrap();
    let create_new = OpenFlags {
        write: true,
        create_new: true,
        ..OpenFlags::default()
    };
    assert_eq!(
        open(&mut d, &path, create_new).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    // Checked before anything is offloaded.
    let none = OpenFlags::default();
    assert_eq!(
        open(&mut d, &path, none).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(d.stats().in_flight, 0);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn opened_file_not_taken_is_closed_with_the_op() {
    let mut d = driver();
    let path = temp_path("untaken");
    let flags = OpenFlags {
        write: true,
        create: true,
        ..OpenFlags::default()
    };
    let key = submit(
        &mut d,
        op::Open {
            path: path.clone(),
            flags,
        },
    )
    .unwrap();
    drain(&mut d);
    // Completed, never polled: cancelling frees the op and closes the
    // handle, so nothing holds the file and it can be deleted... and
    // re-created with create_new.
    d.cancel(key, None);
    assert!(d.ops.is_empty());
    std::fs::remove_file(&path).unwrap();
    let again = OpenFlags {
        write: true,
        create_new: true,
        ..OpenFlags::default()
    };
    let fd = open(&mut d, &path, again).unwrap();
    let key = submit(&mut d, op::Close { fd }).unwrap();
    run(&mut d, key).res.unwrap();
    std::fs::remove_file(&path).unwrap();
}

// ---- sockets --------------------------------------------------------------------

#[test]
fn tcp_accept_connect_send_recv() {
    let mut d = driver();
    let (listener, addr) = tcp_listener(&mut d);
    let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    d.register_handle(socket_fd(&client)).unwrap();
    let accept = submit(
        &mut d,
        op::Accept {
            fd: socket_fd(&listener),
            ipv6: false,
        },
    )
    .unwrap();
    let connect = submit(
        &mut d,
        op::Connect {
            fd: socket_fd(&client),
            addr,
        },
    )
    .unwrap();
    assert_eq!(run(&mut d, connect).res.unwrap(), 0);
    let accepted = run(&mut d, accept);
    // SAFETY: the accept op handed this socket over.
    let server = unsafe { crate::sys::socket_from_raw(accepted.res.unwrap()) };
    d.register_handle(socket_fd(&server)).unwrap();
    let client_addr = client.local_addr().unwrap().as_socket().unwrap();
    assert_eq!(accepted.addr, Some(client_addr));
    // The update-context options make the sockets whole.
    assert_eq!(server.peer_addr().unwrap().as_socket(), Some(client_addr));
    assert_eq!(client.peer_addr().unwrap().as_socket(), Some(addr));

    let mut buf = vec![0u8; 64];
    let recv = submit(&mut d, recv_desc(socket_fd(&server), &mut buf)).unwrap();
    let send = submit(&mut d, send_desc(socket_fd(&client), b"ping")).unwrap();
    assert_eq!(run(&mut d, send).res.unwrap(), 4);
    assert_eq!(run(&mut d, recv).res.unwrap(), 4);
    assert_eq!(&buf[..4], b"ping");

    let send = submit(&mut d, send_desc(socket_fd(&server), b"pong!")).unwrap();
    assert_eq!(run(&mut d, send).res.unwrap(), 5);
    let recv = submit(&mut d, recv_desc(socket_fd(&client), &mut buf)).unwrap();
    assert_eq!(run(&mut d, recv).res.unwrap(), 5);
    assert_eq!(&buf[..5], b"pong!");

    // Orderly shutdown reads as end of stream.
    server.shutdown(std::net::Shutdown::Write).unwrap();
    let recv = submit(&mut d, recv_desc(socket_fd(&client), &mut buf)).unwrap();
    assert_eq!(run(&mut d, recv).res.unwrap(), 0);
}

#[test]
fn connect_refused_maps_to_kind() {
    let mut d = driver();
    // A port nobody listens on: bind one, then close it.
    let addr = {
        let (l, addr) = tcp_listener(&mut d);
        drop(l);
        addr
    };
    let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    d.register_handle(socket_fd(&client)).unwrap();
    let key = submit(
        &mut d,
        op::Connect {
            fd: socket_fd(&client),
            addr,
        },
    )
    .unwrap();
    let err = run(&mut d, key).res.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");
}

#[test]
fn udp_send_to_recv_from() {
    let mut d = driver();
    let (a, a_addr) = udp(&mut d);
    let (b, b_addr) = udp(&mut d);
    let mut buf = vec![0u8; 32];
    let recv = submit(
        &mut d,
        op::RecvFrom {
            fd: socket_fd(&b),
            buf: buf.as_mut_ptr(),
            len: buf.len() as u32,
        },
    )
    .unwrap();
    let data = b"datagram";
    let send = submit(
        &mut d,
        op::SendTo {
            fd: socket_fd(&a),
            buf: data.as_ptr(),
            len: data.len() as u32,
            addr: b_addr,
        },
    )
    .unwrap();
    assert_eq!(run(&mut d, send).res.unwrap(), data.len());
    let out = run(&mut d, recv);
    assert_eq!(out.res.unwrap(), data.len());
    assert_eq!(out.addr, Some(a_addr));
    assert_eq!(&buf[..data.len()], data);
}

// ---- cancellation -----------------------------------------------------------------

/// A keep-alive whose drops are counted.
fn keep_alive(counter: &Rc<()>) -> Option<Box<dyn Any>> {
    Some(Box::new(counter.clone()))
}

#[test]
fn cancel_pending_recv_frees_keep_alive_once() {
    let mut d = driver();
    let (_client, server) = tcp_pair(&mut d);
    let buf = vec![0u8; 64];
    let counter = Rc::new(());
    let mut buf = std::mem::ManuallyDrop::new(buf);
    let key = submit(&mut d, recv_desc(socket_fd(&server), &mut buf)).unwrap();
    // The buffer goes to the driver with the cancel (as `Op::drop` does).
    let buf = std::mem::ManuallyDrop::into_inner(buf);
    let keep: Box<dyn Any> = Box::new((buf, counter.clone()));
    d.cancel(key, Some(keep));
    assert_eq!(
        Rc::strong_count(&counter),
        2,
        "kept alive until the completion"
    );
    drain(&mut d);
    assert_eq!(
        Rc::strong_count(&counter),
        1,
        "freed once the completion came"
    );
    assert!(d.ops.is_empty());
    // Cancelling again is a no-op.
    d.cancel(key, None);
}

#[test]
fn cancel_after_completion_was_queued() {
    let mut d = driver();
    let (rx, rx_addr) = udp(&mut d);
    let (tx, _) = udp(&mut d);
    let mut buf = vec![0u8; 8];
    let key = submit(&mut d, recv_desc(socket_fd(&rx), &mut buf)).unwrap();
    tx.send_to(b"late", &rx_addr.into()).unwrap();
    // Give the kernel time to complete the op and queue its packet, then
    // cancel before it is dequeued: CancelIoEx finds nothing to cancel.
    std::thread::sleep(Duration::from_millis(50));
    let counter = Rc::new(());
    d.cancel(key, keep_alive(&counter));
    drain(&mut d);
    assert_eq!(Rc::strong_count(&counter), 1);
    assert!(d.ops.is_empty());
}

#[test]
fn cancel_partly_sent_send() {
    let mut d = driver();
    let (client, _server) = tcp_pair(&mut d);
    // Far more than the socket buffers hold, to a peer that never reads:
    // the send moves some bytes and then waits.
    let big = vec![7u8; 64 << 20];
    let key = submit(&mut d, send_desc(socket_fd(&client), &big)).unwrap();
    d.wait(Some(Duration::from_millis(100))).unwrap();
    let counter = Rc::new(());
    d.cancel(key, Some(Box::new((big, counter.clone()))));
    drain(&mut d);
    assert_eq!(Rc::strong_count(&counter), 1);
    assert!(d.ops.is_empty());
}

#[test]
fn cancel_pending_accept_closes_its_socket() {
    let mut d = driver();
    let (listener, addr) = tcp_listener(&mut d);
    let key = submit(
        &mut d,
        op::Accept {
            fd: socket_fd(&listener),
            ipv6: false,
        },
    )
    .unwrap();
    d.cancel(key, None);
    drain(&mut d);
    assert!(d.ops.is_empty());
    // The listener still works.
    let accept = submit(
        &mut d,
        op::Accept {
            fd: socket_fd(&listener),
            ipv6: false,
        },
    )
    .unwrap();
    let client = std::net::TcpStream::connect(addr).unwrap();
    let out = run(&mut d, accept);
    // SAFETY: handed over by the accept op.
    drop(unsafe { crate::sys::socket_from_raw(out.res.unwrap()) });
    drop(client);
}

#[test]
fn accepted_but_cancelled_socket_is_closed_not_leaked() {
    let mut d = driver();
    let (listener, addr) = tcp_listener(&mut d);
    let key = submit(
        &mut d,
        op::Accept {
            fd: socket_fd(&listener),
            ipv6: false,
        },
    )
    .unwrap();
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    // The AcceptEx succeeds and its packet is processed; the future then
    // goes away without taking the socket.
    drain(&mut d);
    d.cancel(key, None);
    assert!(d.ops.is_empty());
    // The server side was closed: the client sees end of stream (or a
    // reset), not a read that blocks until the timeout.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4];
    match std::io::Read::read(&mut client, &mut buf) {
        Ok(0) => {}
        Err(e)
            if e.kind() == io::ErrorKind::ConnectionReset
                || e.kind() == io::ErrorKind::ConnectionAborted => {}
        other => panic!("accepted socket leaked: client read gave {other:?}"),
    }
}

// ---- wake and drop --------------------------------------------------------------

#[test]
fn wake_from_another_thread() {
    let mut d = driver();
    let handle = d.wake_handle();
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        handle.unpark();
    });
    d.wait(None).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();

    // Wakes coalesce: two unparks, one packet.
    let handle = d.wake_handle();
    handle.unpark();
    handle.unpark();
    let before = d.stats().completions;
    d.wait(Some(Duration::from_millis(50))).unwrap();
    assert_eq!(d.stats().completions - before, 1);
    // Acknowledged: the next unpark posts again.
    handle.unpark();
    d.wait(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(d.stats().completions - before, 2);
}

#[test]
fn wait_times_out_and_fires_timers() {
    let mut d = driver();
    let start = Instant::now();
    d.wait(Some(Duration::from_millis(30))).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(25));

    let (count, waker) = counting_waker();
    let deadline = Instant::now() + Duration::from_millis(40);
    d.timers().insert(deadline, &waker);
    // No timeout given: the wheel's deadline bounds each wait. (A wait may
    // end early at a wheel cascade point; a few waits fire the timer.)
    let mut waits = 0;
    while count.0.load(Ordering::SeqCst) == 0 {
        assert!(waits < 5, "timer did not fire after {waits} waits");
        d.wait(None).unwrap();
        waits += 1;
    }
    let now = Instant::now();
    assert!(now >= deadline, "timer fired early");
    assert!(now < deadline + Duration::from_secs(1), "timer fired late");
}

#[test]
fn drop_with_ops_in_flight_waits_for_every_completion() {
    let counter = Rc::new(());
    {
        let mut d = driver();
        let (_client, server) = tcp_pair(&mut d);
        let (rx, _) = udp(&mut d);
        let mut a = vec![0u8; 16];
        let mut b = vec![0u8; 16];
        // One op whose future still exists (no keep-alive), one cancelled
        // with a keep-alive, one offloaded file op.
        submit(&mut d, recv_desc(socket_fd(&server), &mut a)).unwrap();
        let key = submit(&mut d, recv_desc(socket_fd(&rx), &mut b)).unwrap();
        d.cancel(key, keep_alive(&counter));
        let path = temp_path("drop");
        let flags = rw_flags();
        submit(
            &mut d,
            op::Open {
                path: path.clone(),
                flags,
            },
        )
        .unwrap();
        assert!(d.stats().in_flight >= 2);
        drop(d);
        let _ = std::fs::remove_file(&path);
        // Buffers are only freed after the driver is gone.
        drop((a, b));
    }
    assert_eq!(Rc::strong_count(&counter), 1);
}

#[test]
fn rio_is_detected_or_reported_missing() {
    let d = driver();
    let ext = super::ext::Extensions::get().expect("AcceptEx/ConnectEx load");
    assert_eq!(d.rio_available(), ext.rio_available());
    match ext.rio {
        Ok(_) => eprintln!("Registered I/O available (not used: WSASend/WSARecv path)"),
        Err(code) => {
            eprintln!("Registered I/O unavailable (Winsock error {code}); WSASend/WSARecv path")
        }
    }
}

/// Completions per `GetQueuedCompletionStatusEx` call on a real workload:
/// 32 connections ping-ponging through the runtime at once.
#[test]
fn concurrent_echo_batches_completions_per_wait() {
    use crate::net::{TcpListener, TcpStream};
    const CONNS: usize = 32;
    const ROUNDS: usize = 50;
    crate::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        crate::spawn(async move {
            for _ in 0..CONNS {
                let (stream, _) = listener.accept().await.unwrap();
                crate::spawn(async move {
                    loop {
                        let (res, buf) = stream.read(vec![0u8; 64]).await;
                        let n = res.unwrap();
                        if n == 0 {
                            break;
                        }
                        let (res, _) = stream.write_all(buf[..n].to_vec()).await;
                        res.unwrap();
                    }
                });
            }
        });
        let clients: Vec<_> = (0..CONNS)
            .map(|_| {
                crate::spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let mut msg = vec![7u8; 64];
                    for _ in 0..ROUNDS {
                        let (res, m) = stream.write_all(msg).await;
                        res.unwrap();
                        let (res, m) = stream.read_exact(m).await;
                        res.unwrap();
                        msg = m;
                    }
                })
            })
            .collect();
        let before = crate::runtime::driver_stats();
        for c in clients {
            c.await.unwrap();
        }
        let after = crate::runtime::driver_stats();
        let completions = after.completions - before.completions;
        let calls = after.wait_calls - before.wait_calls;
        let per_call = completions as f64 / calls.max(1) as f64;
        eprintln!(
            "{CONNS} conns x {ROUNDS} round trips: {completions} completions in {calls} \
             GetQueuedCompletionStatusEx calls = {per_call:.2} per call"
        );
        assert!(
            completions > calls,
            "no batching: {completions} completions in {calls} calls"
        );
    });
}

/// A datagram larger than the buffer: the buffer is filled and the op
/// reports the truncated length (as on Linux), whether the datagram was
/// already queued (synchronous STATUS_BUFFER_OVERFLOW, whose packet still
/// comes) or arrives later.
#[test]
fn truncated_datagram_reports_buffer_length() {
    let mut d = driver();
    let (rx, rx_addr) = udp(&mut d);
    let (tx, tx_addr) = udp(&mut d);
    let big = [9u8; 100];
    for already_queued in [true, false] {
        if already_queued {
            tx.send_to(&big, &rx_addr.into()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut buf = vec![0u8; 10];
        let desc = op::RecvFrom {
            fd: socket_fd(&rx),
            buf: buf.as_mut_ptr(),
            len: buf.len() as u32,
        };
        let key = submit(&mut d, desc).unwrap();
        if !already_queued {
            tx.send_to(&big, &rx_addr.into()).unwrap();
        }
        let out = run(&mut d, key);
        assert_eq!(out.res.unwrap(), 10, "already queued: {already_queued}");
        assert_eq!(out.addr, Some(tx_addr));
        assert_eq!(buf, [9u8; 10]);
        drain(&mut d);
        // No second packet for the same op.
        let before = d.stats().completions;
        d.wait(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(d.stats().completions, before);
    }
}

/// Skip-on-success: an op that succeeds at once (a TCP send into an empty
/// socket buffer) completes inside `submit`, and no packet follows it.
/// Datagram sockets stay out of the mode.
#[test]
fn immediate_success_completes_without_a_packet() {
    let mut d = driver();
    let (client, server) = tcp_pair(&mut d);
    let (udp_sock, _) = udp(&mut d);
    assert!(
        d.no_skip.contains(&socket_fd(&udp_sock)),
        "UDP sockets must not skip"
    );
    let ifs = super::ext::Extensions::get().unwrap().ifs_sockets;
    assert_eq!(!d.no_skip.contains(&socket_fd(&client)), ifs);
    if !ifs {
        eprintln!("Winsock providers are not all IFS: skip-on-success not used for sockets");
        return;
    }
    drain(&mut d);
    let before = (d.stats().completions, d.immediate_completions());
    let key = submit(&mut d, send_desc(socket_fd(&client), b"at once")).unwrap();
    let (_, waker) = counting_waker();
    match d.poll_op(key, &mut Context::from_waker(&waker)) {
        Poll::Ready(out) => assert_eq!(out.res.unwrap(), 7),
        Poll::Pending => {
            panic!("a small send into an empty socket buffer did not complete at once")
        }
    }
    assert_eq!(d.immediate_completions(), before.1 + 1);
    // No packet follows the immediate completion.
    d.wait(Some(Duration::from_millis(50))).unwrap();
    assert_eq!(
        d.stats().completions,
        before.0,
        "a packet followed an immediate completion"
    );
    let mut buf = vec![0u8; 16];
    let key = submit(&mut d, recv_desc(socket_fd(&server), &mut buf)).unwrap();
    assert_eq!(run(&mut d, key).res.unwrap(), 7);
    assert_eq!(&buf[..7], b"at once");
}
