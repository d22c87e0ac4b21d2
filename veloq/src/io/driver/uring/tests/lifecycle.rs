//! Op lifetimes: cancellation, keep-alives, stale completions, drop
//! with ops in flight.

use super::*;
use crate::io::driver::op_registry::KeepOnly;

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
    d.cancel(key, Some(Box::new(KeepOnly(buf.clone()))));
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
    d.cancel(key, Some(Box::new(KeepOnly(keep.clone()))));
    assert_eq!(Rc::strong_count(&keep), 1);
    assert!(d.registry.is_empty());
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
        d.cancel(
            key,
            Some(Box::new(KeepOnly((keep.clone(), std::mem::take(buf))))),
        );
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
    d.on_cqe(old.to_user_data(), 4, 0);
    assert_eq!(d.stats().in_flight, in_flight);
    let (_, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(d.poll_op(new, &mut cx).is_pending(), "new op untouched");
    d.cancel(new, Some(Box::new(KeepOnly(buf))));
    wait_until(&mut d, |d| d.registry.is_empty());
}

#[test]
fn the_driver_stays_on_its_thread() {
    // Fails to compile ("type annotations needed") if `UringDriver` were
    // `Send`: the ring may be SINGLE_ISSUER, tied to its creating thread.
    let _ = <UringDriver as AmbiguousIfSend<_>>::some_item;
}

#[allow(dead_code)]
trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
#[allow(dead_code)]
struct Invalid;
impl<T: ?Sized + Send> AmbiguousIfSend<Invalid> for T {}
