//! Driver-level tests of the IOCP driver: no executor, just an
//! `IocpDriver`, ops submitted by hand, a counting waker and `wait`.
//!
//! They run under Wine in the Windows leg (`scripts/test-windows.sh`).
//! Files and sockets (with cancellation) are in `tests/files.rs` and
//! `tests/net.rs`.

use std::any::Any;
use std::cell::RefCell;
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
use crate::io::driver::op_registry::{CancelHook, KeepOnly};
use crate::io::driver::{Driver, DriverConfig, IntoPlatformOp, KeepAlive, OpKey};
use crate::io::op::{self, OpOutput, OpenFlags};
use crate::sys::{socket_fd, RawFd};

mod early;
mod files;
mod net;

// ---- helpers ----------------------------------------------------------------

use crate::io::driver::test_util::counting_waker;

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
    // The header is the op's first field: same address.
    op.as_ptr().cast()
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
        zero_copy: false,
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

/// A keep-alive whose drops are counted.
fn keep_alive(counter: &Rc<()>) -> Option<KeepAlive> {
    Some(Box::new(KeepOnly(counter.clone())))
}

/// Where a [`Record`] hook puts the output it was handed.
type Recorded = Rc<RefCell<Option<OpOutput>>>;

/// A cancel hook that keeps `_keep` alive and records the output.
struct Record {
    out: Recorded,
    _keep: Box<dyn Any>,
}

impl CancelHook for Record {
    fn completed(self: Box<Self>, out: OpOutput) {
        *self.out.borrow_mut() = Some(out);
    }
}

/// A recording hook keeping `keep` alive, and where it records.
fn record(keep: impl Any) -> (Recorded, Option<KeepAlive>) {
    let out = Recorded::default();
    let hook = Record {
        out: out.clone(),
        _keep: Box::new(keep),
    };
    (out, Some(Box::new(hook)))
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

/// A waker whose `wake` panics.
struct PanicWake;

impl Wake for PanicWake {
    fn wake(self: Arc<Self>) {
        panic!("veloq test: this waker panics on purpose");
    }
}

#[test]
fn a_panicking_waker_loses_no_other_completion_of_its_batch() {
    const N: usize = 8;
    let mut d = driver();
    let (rx, rx_addr) = udp(&mut d);
    let (tx, _) = udp(&mut d);
    let mut bufs = vec![[0u8; 8]; N];
    let keys: Vec<OpKey> = bufs
        .iter_mut()
        .map(|b| submit(&mut d, recv_desc(socket_fd(&rx), b)).unwrap())
        .collect();
    let (count, waker) = counting_waker();
    let panicky = Waker::from(Arc::new(PanicWake));
    // Two panicking wakers, neither at the end of the batch.
    let panics = |i: usize| i == 1 || i == N / 2;
    for (i, key) in keys.iter().enumerate() {
        let w = if panics(i) { &panicky } else { &waker };
        assert!(d.poll_op(*key, &mut Context::from_waker(w)).is_pending());
    }
    for i in 0..N {
        tx.send_to(&[i as u8], &rx_addr.into()).unwrap();
    }
    // Let every packet reach the port, so that one dequeue returns them all.
    std::thread::sleep(Duration::from_millis(200));
    let calls = d.stats().wait_calls;
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        d.wait(Some(Duration::from_secs(5)))
    }));
    let payload = res.expect_err("the waker's panic is re-raised after the batch");
    assert_eq!(
        payload.downcast_ref::<&str>().copied(),
        Some("veloq test: this waker panics on purpose")
    );
    assert_eq!(d.stats().wait_calls, calls + 1, "one dequeue");
    assert_eq!(d.max_batch(), N, "all packets came in one batch");
    // Every op completed, the panicking ones included; every other waker
    // was woken.
    assert_eq!(d.stats().in_flight, 0);
    assert_eq!(count.0.load(Ordering::SeqCst), N - 2);
    let mut seen = [false; N];
    for key in keys {
        match d.poll_op(key, &mut Context::from_waker(&waker)) {
            Poll::Ready(out) => assert_eq!(out.res.unwrap(), 1),
            Poll::Pending => panic!("an op of the panicking batch was lost"),
        }
    }
    for b in &bufs {
        seen[b[0] as usize] = true;
    }
    assert!(seen.iter().all(|s| *s), "every datagram was received once");
    assert!(d.ops.is_empty());
    // The driver keeps working.
    let key = submit(&mut d, recv_desc(socket_fd(&rx), &mut bufs[0])).unwrap();
    tx.send_to(b"after", &rx_addr.into()).unwrap();
    assert_eq!(run(&mut d, key).res.unwrap(), 5);
}

/// An offloaded op that holds its pool thread for `time`.
fn sleep_op(time: Duration) -> IocpOp {
    use super::blocking::BlockingTask;
    use super::op::{HandlePayload, IocpOpPayload, OpVTable};
    use super::submit::SubmissionResult;

    /// The time, in milliseconds, is the payload's `offset`.
    unsafe fn submit_sleep(op: *mut IocpOp) -> io::Result<SubmissionResult> {
        // SAFETY: built by `sleep_op` with the `close` variant; read by
        // value before the op is offloaded.
        let ms =
            unsafe { (*std::ptr::addr_of!((*op).payload.close).cast::<HandlePayload>()).offset };
        Ok(SubmissionResult::Offload(BlockingTask::Sleep(
            Duration::from_millis(ms),
        )))
    }
    unsafe fn complete_sleep(_op: &mut IocpOp, res: Result<usize, u32>) -> OpOutput {
        OpOutput {
            res: res.map_err(error_from_code),
            addr: None,
        }
    }
    unsafe fn drop_nothing(_op: &mut IocpOp) {}
    static SLEEP: OpVTable = OpVTable {
        name: "Sleep",
        submit: submit_sleep,
        on_complete: complete_sleep,
        drop: drop_nothing,
    };
    let offset = time.as_millis() as u64;
    IocpOp {
        header: OverlappedEntry::new(0, false),
        vtable: &SLEEP,
        payload: IocpOpPayload {
            close: std::mem::ManuallyDrop::new(HandlePayload { offset, len: 0 }),
        },
    }
}

#[test]
fn drop_waits_for_an_offloaded_op_within_the_limit() {
    let counter = Rc::new(());
    let mut d = driver();
    let key = d.reserve().unwrap();
    d.submit(key, sleep_op(Duration::from_millis(300))).unwrap();
    d.cancel(key, keep_alive(&counter));
    let start = Instant::now();
    drop(d);
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "did not wait"
    );
    assert_eq!(Rc::strong_count(&counter), 1, "keep-alive freed once");
}

#[test]
fn drop_gives_up_after_the_drain_limit_and_leaks() {
    let counter = Rc::new(());
    let mut d = driver();
    d.drain_limit = Duration::from_millis(200);
    let key = d.reserve().unwrap();
    d.submit(key, sleep_op(Duration::from_secs(3))).unwrap();
    d.cancel(key, keep_alive(&counter));
    let leaks = crate::io::driver::leaked_drains();
    let start = Instant::now();
    drop(d);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(150),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "not bounded: {took:?}");
    // The pool thread will still write the op: its memory and the
    // keep-alive were leaked, not freed.
    assert_eq!(Rc::strong_count(&counter), 2);
    assert!(crate::io::driver::leaked_drains() > leaks);
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
