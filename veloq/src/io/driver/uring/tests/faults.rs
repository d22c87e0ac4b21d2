//! Faults: wakers and hooks that panic mid-batch, a CQ far too small for
//! the completions in flight, an SQ far too small for the submissions, an
//! accept at the descriptor limit.

use std::any::Any;
use std::os::unix::net::UnixDatagram;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::Arc;
use std::task::{Wake, Waker};

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

/// Enters until the CQ holds at least `n` CQEs, reaping none (so that one
/// reap then sees them all in one batch).
fn post_completions(d: &mut UringDriver, n: usize) {
    let start = Instant::now();
    while d.ring.completion().len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "only {} of {n} completions posted",
            d.ring.completion().len()
        );
        // Deferred completion work runs only inside an enter (and a few
        // items per enter on recent kernels).
        d.get_events().unwrap();
    }
}

#[test]
fn a_panicking_waker_loses_no_completion_of_its_batch() {
    for level in SetupLevel::ALL {
        let mut d = UringDriver::with_level(&DriverConfig::default(), level).unwrap();
        if d.setup_level() != level {
            continue; // the kernel lacks this level; tested as a lower one
        }
        const N: usize = 32;
        let pairs: Vec<(UnixStream, UnixStream)> =
            (0..N).map(|_| UnixStream::pair().unwrap()).collect();
        let mut bufs = vec![[0u8; 8]; N];
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
        // Every op's task waits; the one of op `PANICS` panics when woken,
        // and op `HOOKED` is cancelled with a hook that panics.
        const PANICS: usize = 5;
        const HOOKED: usize = 20;
        let counts: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, &key)| {
                let (count, waker) = if i == PANICS {
                    (None, Waker::from(Arc::new(PanicWake)))
                } else {
                    let (count, waker) = counting_waker();
                    (Some(count), waker)
                };
                let mut cx = Context::from_waker(&waker);
                assert!(d.poll_op(key, &mut cx).is_pending());
                count
            })
            .collect();
        d.wait(Some(Duration::ZERO)).unwrap();
        assert_eq!(
            d.stats().in_flight,
            N,
            "{level:?}: every recv in the kernel"
        );
        for (i, (a, _)) in pairs.iter().enumerate() {
            (&*a).write_all(&(i as u64).to_le_bytes()).unwrap();
        }
        post_completions(&mut d, N);
        d.cancel(keys[HOOKED], Some(Box::new(PanicHook)));

        // One turn reaps the whole batch, then resumes the first panic.
        let payload = catch_unwind(AssertUnwindSafe(|| d.wait(Some(Duration::ZERO))))
            .expect_err("the waker's panic reaches the caller");
        assert!(
            message(&*payload).starts_with("test: a "),
            "{level:?}: unexpected panic {:?}",
            message(&*payload)
        );
        // Every other op completed, its task was woken exactly once, and
        // its bytes are there.
        for (i, (&key, count)) in keys.iter().zip(&counts).enumerate() {
            if i == HOOKED {
                continue;
            }
            if let Some(count) = count {
                assert_eq!(count.0.load(Ordering::SeqCst), 1, "{level:?}: op {i} woken");
            }
            let (_, waker) = counting_waker();
            let out = d.poll_op(key, &mut Context::from_waker(&waker));
            let Poll::Ready(out) = out else {
                panic!("{level:?}: op {i} lost its completion");
            };
            assert_eq!(out.res.unwrap(), 8);
            assert_eq!(u64::from_le_bytes(bufs[i]), i as u64);
        }
        assert_eq!(d.stats().in_flight, 0);
        assert!(
            d.registry.is_empty(),
            "{level:?}: the cancelled slot was freed"
        );

        // The panic was resumed once; the driver works on.
        d.wait(Some(Duration::ZERO)).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 4];
        let recv = submit(
            &mut d,
            op::Recv {
                fd: b.as_raw_fd(),
                buf: buf.as_mut_ptr(),
                len: 4,
            },
        );
        (&a).write_all(b"more").unwrap();
        assert_eq!(run(&mut d, recv).res.unwrap(), 4);
        assert_eq!(&buf, b"more");
    }
}

#[test]
fn a_panicking_timer_waker_does_not_stop_the_others() {
    let mut d = driver();
    let start = Instant::now();
    let at = start + Duration::from_millis(5);
    let (first, first_waker) = counting_waker();
    let (last, last_waker) = counting_waker();
    d.timers().insert(at, &first_waker);
    d.timers().insert(at, &Waker::from(Arc::new(PanicWake)));
    d.timers().insert(at, &last_waker);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        while Instant::now() < at + Duration::from_millis(2) {
            d.wait(Some(Duration::from_millis(20))).unwrap();
        }
    }))
    .expect_err("the waker's panic reaches the caller");
    assert_eq!(message(&*payload), "test: a waker panics");
    assert_eq!(first.0.load(Ordering::SeqCst), 1);
    assert_eq!(last.0.load(Ordering::SeqCst), 1, "fired in the same turn");
    assert_eq!(d.timers().len(), 0);
    d.wait(Some(Duration::ZERO)).unwrap();
}

#[test]
fn a_full_cq_loses_no_completion() {
    // 1,000 receives in flight on an 8-entry ring (a CQ of 16 or 32): the
    // SQ is flushed 125 times while they are submitted, and their
    // completions overflow the CQ some thirty times over.
    const SOCKETS: usize = 125;
    const PER_SOCKET: usize = 8; // below the default datagram queue limit
    const N: usize = SOCKETS * PER_SOCKET;
    let config = DriverConfig {
        entries: 8,
        ..DriverConfig::default()
    };
    for level in SetupLevel::ALL {
        let mut d = UringDriver::with_level(&config, level).unwrap();
        if d.setup_level() != level {
            continue;
        }
        assert!(d.has_nodrop(), "setup refuses rings without NODROP");
        let pairs: Vec<(UnixDatagram, UnixDatagram)> = (0..SOCKETS)
            .map(|_| UnixDatagram::pair().unwrap())
            .collect();
        let mut bufs = vec![[0u8; 8]; N];
        let keys: Vec<OpKey> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, buf)| {
                submit(
                    &mut d,
                    op::Recv {
                        fd: pairs[i / PER_SOCKET].1.as_raw_fd(),
                        buf: buf.as_mut_ptr(),
                        len: 8,
                    },
                )
            })
            .collect();
        d.wait(Some(Duration::ZERO)).unwrap();
        assert_eq!(
            d.stats().in_flight,
            N,
            "{level:?}: every recv in the kernel"
        );
        for (s, (tx, _)) in pairs.iter().enumerate() {
            tx.set_nonblocking(true).unwrap();
            for j in 0..PER_SOCKET {
                tx.send(&((s * PER_SOCKET + j) as u64).to_le_bytes())
                    .unwrap();
            }
        }
        // Post what fits, and more: the rest waits on the overflow list.
        let start = Instant::now();
        while !d.ring.submission().cq_overflow() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{level:?}: the CQ never overflowed"
            );
            d.get_events().unwrap();
        }

        let mut seen = vec![false; N];
        for (i, &key) in keys.iter().enumerate() {
            let out = run(&mut d, key);
            assert_eq!(out.res.unwrap(), 8, "{level:?}: recv {i}");
            let v = u64::from_le_bytes(bufs[i]) as usize;
            assert_eq!(v / PER_SOCKET, i / PER_SOCKET, "from its own socket");
            assert!(!seen[v], "{level:?}: datagram {v} received twice");
            seen[v] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(d.stats().in_flight, 0);
        assert_eq!(
            d.dropped_completions(),
            0,
            "{level:?}: the kernel dropped none"
        );
        assert!(!d.ring.submission().cq_overflow());
    }
}

#[test]
fn a_full_sq_is_flushed_not_refused() {
    // Far more submissions in one go than the SQ holds, none waited for.
    let config = DriverConfig {
        entries: 1,
        ..DriverConfig::default()
    };
    let mut d = UringDriver::with_level(&config, SetupLevel::DeferTaskrun).unwrap();
    let f = TempFile::new("full-sq");
    let data = [7u8; 16];
    let keys: Vec<OpKey> = (0..200)
        .map(|i| submit(&mut d, write_at(f.fd(), &data, i * 16, None)))
        .collect();
    for key in keys {
        assert_eq!(run(&mut d, key).res.unwrap(), 16);
    }
    assert_eq!(f.file.metadata().unwrap().len(), 200 * 16);
}

/// Set in the child process of a test that runs its other half there.
const CHILD_ENV: &str = "VELOQ_URING_FAULTS_CHILD";

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
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
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

    let accept = op::Accept {
        fd: listener.as_raw_fd(),
        ipv6: false,
    };
    let key = submit(&mut d, accept);
    let err = run(&mut d, key).res.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
    // Nothing is left running: a wait completes nothing and the loop does
    // not spin (a wait may still end early, e.g. on a signal).
    let before = d.stats();
    d.wait(Some(Duration::from_millis(100))).unwrap();
    assert_eq!(d.stats().completions, before.completions);
    assert!(d.stats().wait_calls - before.wait_calls <= 2);

    // With a descriptor free again, the waiting connection is accepted.
    // SAFETY: a duplicate made above, closed once.
    unsafe { libc::close(fillers.pop().unwrap()) };
    let accept = op::Accept {
        fd: listener.as_raw_fd(),
        ipv6: false,
    };
    let key = submit(&mut d, accept);
    let out = run(&mut d, key);
    let fd = out.res.unwrap() as RawFd;
    assert_eq!(out.addr, Some(client.local_addr().unwrap()));
    for fd in fillers.into_iter().chain([fd]) {
        // SAFETY: descriptors this test made, closed once.
        unsafe { libc::close(fd) };
    }
}
