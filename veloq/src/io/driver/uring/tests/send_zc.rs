//! `SEND_ZC` at the driver level: the probe, the two-CQE life of the op,
//! a result that no notification follows, and the fallbacks.

use super::*;
use crate::io::driver::op_registry::KeepOnly;

fn zc_driver(min: Option<usize>) -> UringDriver {
    let config = DriverConfig {
        zero_copy_min: min,
        ..DriverConfig::default()
    };
    UringDriver::new(&config).expect("io_uring setup")
}

fn send(fd: RawFd, data: &[u8], zero_copy: bool) -> op::Send {
    op::Send {
        fd,
        buf: data.as_ptr(),
        len: data.len() as u32,
        zero_copy,
    }
}

fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (b, _) = listener.accept().unwrap();
    (a, b)
}

/// Whether this kernel has `SEND_ZC` (6.0).
fn kernel_has_send_zc() -> bool {
    let d = driver();
    super::super::send_zc::probe(&d.ring)
}

#[test]
fn a_zero_copy_send_completes_once_after_its_notification() {
    if !kernel_has_send_zc() {
        eprintln!("skipped: no SEND_ZC in this kernel");
        return;
    }
    let mut d = zc_driver(Some(1));
    let (a, mut b) = tcp_pair();
    let data = vec![0xabu8; 100_000];
    let key = submit(&mut d, send(a.as_raw_fd(), &data, true));
    assert_eq!(d.stats().zero_copy_sends, 1);
    let out = run(&mut d, key);
    let n = out.res.unwrap();
    assert!(n > 0 && n <= data.len());
    let mut got = vec![0u8; n];
    b.read_exact(&mut got).unwrap();
    assert!(got.iter().all(|&x| x == 0xab));
    // Two CQEs, one completion: nothing stale, nothing left in flight.
    let stats = d.stats();
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.stale_completions, 0);
}

#[test]
fn a_refused_zero_copy_send_completes_with_the_error() {
    if !kernel_has_send_zc() {
        return;
    }
    // Unix-domain sockets do not support zero-copy: the kernel fails the
    // op (with or without a notification to follow); either way it ends
    // once, with the error.
    let mut d = zc_driver(Some(1));
    let (a, _b) = UnixStream::pair().unwrap();
    let data = b"not zero-copy".to_vec();
    let key = submit(&mut d, send(a.as_raw_fd(), &data, true));
    let err = run(&mut d, key).res.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP), "{err}");
    // A bad descriptor fails too.
    let key = submit(&mut d, send(-1, &data, true));
    assert!(run(&mut d, key).res.is_err());
    let stats = d.stats();
    assert_eq!((stats.in_flight, stats.stale_completions), (0, 0));
}

#[test]
fn below_the_threshold_or_switched_off_a_send_copies() {
    let (a, mut b) = tcp_pair();
    let data = vec![1u8; 4096];
    for (min, zero_copy) in [(Some(4097), true), (None, true), (Some(1), false)] {
        let mut d = zc_driver(min);
        let key = submit(&mut d, send(a.as_raw_fd(), &data, zero_copy));
        assert_eq!(run(&mut d, key).res.unwrap(), data.len());
        assert_eq!(d.stats().zero_copy_sends, 0, "{min:?} {zero_copy}");
        let mut got = vec![0u8; data.len()];
        b.read_exact(&mut got).unwrap();
    }
}

#[test]
fn a_cancelled_zero_copy_send_keeps_its_memory_until_the_notification() {
    if !kernel_has_send_zc() {
        return;
    }
    let mut d = zc_driver(Some(1));
    let (a, mut b) = tcp_pair();
    // More than the socket takes while the peer does not read: the queued
    // part pins the pages until the peer reads.
    let data = Rc::new(vec![0x5au8; 16 << 20]);
    let key = submit(&mut d, send(a.as_raw_fd(), &data, true));
    // The result CQE comes (part sent) but the op stays in flight.
    for _ in 0..5 {
        d.wait(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(d.stats().in_flight, 1, "waiting for the notification");
    let keep = Rc::downgrade(&data);
    d.cancel(key, Some(Box::new(KeepOnly(data))));
    d.wait(Some(Duration::from_millis(20))).unwrap();
    assert!(
        keep.upgrade().is_some(),
        "the keep-alive outlives the first CQE"
    );
    // The peer reads: the kernel lets go, the keep-alive is dropped.
    let reader = std::thread::spawn(move || {
        let mut sink = vec![0u8; 1 << 20];
        while let Ok(n) = b.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
    });
    wait_until(&mut d, |d| d.stats().in_flight == 0);
    assert!(keep.upgrade().is_none(), "dropped after the notification");
    assert_eq!(d.stats().stale_completions, 0);
    drop(a);
    reader.join().unwrap();
}
