//! Faults: wakers and hooks that panic mid-batch, a thousand receives
//! through a small event buffer, an accept at the descriptor limit.

use std::any::Any;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::Arc;
use std::task::Wake;

use super::*;
use crate::io::driver::op_registry::CancelHook;

/// A waker that panics when woken.
struct PanicWake;

impl Wake for PanicWake {
    fn wake(self: Arc<Self>) {
        panic!("test: a waker panics");
    }
}

/// A cancel hook that panics when its op completes.
struct PanicHook;

impl CancelHook for PanicHook {
    fn completed(self: Box<Self>, _out: OpOutput) {
        panic!("test: a cancel hook panics");
    }
}

/// The message of a caught panic.
fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("")
}

/// Polls `key` with a fresh waker, expecting its output.
fn ready(d: &mut EpollDriver, key: OpKey) -> OpOutput {
    let (_, waker) = counting_waker();
    match poll(d, key, &waker) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("op lost its completion"),
    }
}

#[test]
fn a_panicking_waker_loses_no_completion_of_its_batch() {
    let mut d = driver();
    // One event per stream, each completing one recv ...
    const N: usize = 32;
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..N).map(|_| UnixStream::pair().unwrap()).collect();
    let mut bufs = vec![[0u8; 8]; N];
    let keys: Vec<OpKey> = pairs
        .iter()
        .zip(bufs.iter_mut())
        .map(|((_, b), buf)| submit(&mut d, recv(b.as_raw_fd(), buf)))
        .collect();
    // ... and one event completing four recvs waiting on one socket, the
    // first of which panics: the other three must not be left waiting for
    // an edge that will not come.
    let (tx, rx) = UnixDatagram::pair().unwrap();
    let mut dgrams = [[0u8; 8]; 4];
    let queued: Vec<OpKey> = dgrams
        .iter_mut()
        .map(|buf| submit(&mut d, recv(rx.as_raw_fd(), buf)))
        .collect();
    const PANICS: usize = 5;
    let mut counts = Vec::new();
    for (i, &key) in keys.iter().chain(&queued).enumerate() {
        let (count, waker) = counting_waker();
        let waker = if i == PANICS || i == N {
            Waker::from(Arc::new(PanicWake))
        } else {
            waker
        };
        assert!(poll(&mut d, key, &waker).is_pending());
        counts.push(count);
    }
    for (i, (a, _)) in pairs.iter().enumerate() {
        (&*a).write_all(&(i as u64).to_le_bytes()).unwrap();
    }
    for i in 0..4u64 {
        tx.send(&i.to_le_bytes()).unwrap();
    }

    // One `epoll_wait` returns every event; the first panic is resumed
    // once all of them were handled.
    let payload = catch_unwind(AssertUnwindSafe(|| d.wait(Some(Duration::ZERO))))
        .expect_err("the waker's panic reaches the caller");
    assert_eq!(message(&*payload), "test: a waker panics");
    for (i, &key) in keys.iter().chain(&queued).enumerate() {
        if i != PANICS && i != N {
            assert_eq!(counts[i].0.load(Ordering::SeqCst), 1, "op {i} woken");
        }
        assert_eq!(ready(&mut d, key).res.unwrap(), 8, "op {i}");
    }
    for (i, buf) in bufs.iter().enumerate() {
        assert_eq!(u64::from_le_bytes(*buf), i as u64);
    }
    for (i, buf) in dgrams.iter().enumerate() {
        assert_eq!(u64::from_le_bytes(*buf), i as u64, "in order");
    }
    assert_eq!(d.stats().in_flight, 0);
    d.wait(Some(Duration::ZERO)).unwrap();
}

#[test]
fn a_panicking_hook_of_a_pool_op_loses_nothing() {
    let mut d = driver();
    let path = std::env::temp_dir().join(format!("veloq-epoll-hook-{}", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let data = [1u8; 8];
    let write = |offset| op::WriteFixed {
        fd: file.as_raw_fd(),
        buf: data.as_ptr(),
        len: 8,
        offset,
        fixed: None,
    };
    // One cancelled write whose hook panics, among writes that complete.
    let keys: Vec<OpKey> = (0..8).map(|i| submit(&mut d, write(i * 8))).collect();
    let hooked = keys[3];
    d.cancel(hooked, Some(Box::new(PanicHook)));
    let mut panics = Vec::new();
    let start = Instant::now();
    while d.stats().in_flight > 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "pool ops lost");
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| {
            d.wait(Some(Duration::from_millis(50))).unwrap()
        })) {
            panics.push(message(&*p).to_owned());
        }
    }
    assert_eq!(panics, ["test: a cancel hook panics"]);
    for key in keys.into_iter().filter(|&k| k != hooked) {
        assert_eq!(ready(&mut d, key).res.unwrap(), 8);
    }
    assert_eq!(file.metadata().unwrap().len(), 64);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_thousand_receives_complete_through_a_small_event_buffer() {
    // An 8-entry config gives the smallest event buffer (64): the events
    // of 125 sockets take several `epoll_wait`s.
    const SOCKETS: usize = 125;
    const PER_SOCKET: usize = 8;
    const N: usize = SOCKETS * PER_SOCKET;
    let config = DriverConfig {
        entries: 8,
        ..DriverConfig::default()
    };
    let mut d = EpollDriver::new(&config).unwrap();
    let pairs: Vec<(UnixDatagram, UnixDatagram)> = (0..SOCKETS)
        .map(|_| UnixDatagram::pair().unwrap())
        .collect();
    let mut bufs = vec![[0u8; 8]; N];
    let keys: Vec<OpKey> = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, buf)| submit(&mut d, recv(pairs[i / PER_SOCKET].1.as_raw_fd(), buf)))
        .collect();
    assert_eq!(d.stats().in_flight, N);
    for (s, (tx, _)) in pairs.iter().enumerate() {
        tx.set_nonblocking(true).unwrap();
        for j in 0..PER_SOCKET {
            tx.send(&((s * PER_SOCKET + j) as u64).to_le_bytes())
                .unwrap();
        }
    }
    for (i, &key) in keys.iter().enumerate() {
        assert_eq!(run(&mut d, key).res.unwrap(), 8, "recv {i}");
        assert_eq!(u64::from_le_bytes(bufs[i]), i as u64, "in order per socket");
    }
    assert_eq!(d.stats().in_flight, 0);
}

/// Set in the child process of a test that runs its other half there.
const CHILD_ENV: &str = "VELOQ_EPOLL_FAULTS_CHILD";

/// Runs test `name` of this module in a child process (this test binary,
/// only that ignored test) and checks that it passed.
fn run_in_child(name: &str) {
    // Test names leave out the crate's name.
    let module = module_path!().split_once("::").unwrap().1;
    let out = Command::new(std::env::current_exe().unwrap())
        .args([&format!("{module}::{name}"), "--exact", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("start the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

#[test]
fn accept_at_the_descriptor_limit_fails_without_spinning() {
    run_in_child("accept_at_the_descriptor_limit_child");
}

#[test]
#[ignore = "the child half of accept_at_the_descriptor_limit_fails_without_spinning"]
fn accept_at_the_descriptor_limit_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut d = driver();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    d.register_handle(listener.as_raw_fd()).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    // A low limit, every descriptor below it taken.
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: `limit` is a live local the kernel reads during the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let mut fillers = Vec::new();
    loop {
        // SAFETY: plain syscall; the duplicate is closed below.
        let fd = unsafe { libc::dup(listener.as_raw_fd()) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
            break;
        }
        fillers.push(fd);
    }

    let accept = || op::Accept {
        fd: listener.as_raw_fd(),
        ipv6: false,
    };
    let key = submit(&mut d, accept());
    let err = run(&mut d, key).res.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
    // The listener stays readable, but nothing waits on it: a wait sleeps
    // to its timeout.
    let before = d.stats();
    let start = Instant::now();
    d.wait(Some(Duration::from_millis(100))).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(90));
    assert_eq!(d.stats().completions, before.completions);
    assert!(d.stats().wait_calls - before.wait_calls <= 2);

    // With a descriptor free again, the waiting connection is accepted.
    // SAFETY: a duplicate made above, closed once.
    unsafe { libc::close(fillers.pop().unwrap()) };
    let key = submit(&mut d, accept());
    let out = run(&mut d, key);
    let fd = out.res.unwrap() as RawFd;
    assert_eq!(out.addr, Some(client.local_addr().unwrap()));
    for fd in fillers.into_iter().chain([fd]) {
        // SAFETY: descriptors this test made, closed once.
        unsafe { libc::close(fd) };
    }
}
