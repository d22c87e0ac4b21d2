//! Multishot ops: one slot across CQEs with `F_MORE`, freed only by the
//! final CQE, also after a cancel (issue 13, item 3).

use std::cell::RefCell;

use super::*;
use crate::io::driver::op_registry::KeepOnly;
use crate::io::op::{MultishotEvent, MultishotSink};

/// A sink that records every event.
#[derive(Default)]
struct Events(RefCell<Vec<MultishotEvent>>);

impl MultishotSink for Events {
    fn deliver(&self, event: MultishotEvent) {
        self.0.borrow_mut().push(event);
    }
}

#[test]
fn a_multishot_accept_keeps_one_slot_until_its_final_cqe() {
    let mut d = driver();
    if !d.supports_multishot_accept() {
        eprintln!("skipping: no multishot accept in this kernel");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = Rc::new(Events::default());
    let key = submit(
        &mut d,
        op::AcceptMulti {
            fd: listener.as_raw_fd(),
            sink: sink.clone(),
        },
    );
    let _clients: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    wait_until(&mut d, |_| sink.0.borrow().len() == 3);
    for event in sink.0.borrow_mut().drain(..) {
        assert!(event.more, "the accept stays armed");
        let fd = event.res.unwrap() as RawFd;
        // SAFETY: the kernel accepted `fd` for this test; closed once.
        drop(unsafe { crate::sys::socket_from_raw(fd) });
    }
    assert_eq!(d.stats().in_flight, 1, "one slot for every connection");
    let (_, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(d.poll_op(key, &mut cx).is_pending(), "not complete yet");

    // Cancelled: the keep-alive stays until the final CQE.
    let keep = Rc::new(());
    d.cancel(key, Some(Box::new(KeepOnly(keep.clone()))));
    assert_eq!(Rc::strong_count(&keep), 2);
    wait_until(&mut d, |d| d.stats().in_flight == 0);
    assert_eq!(Rc::strong_count(&keep), 1, "freed with the slot");
    assert_eq!(Rc::strong_count(&sink), 1, "the slot let go of its sink");
    let events = sink.0.borrow();
    let last = events.last().expect("the final CQE reached the sink");
    assert!(!last.more);
    assert_eq!(
        last.res.as_ref().unwrap_err().kind(),
        op::cancelled().kind()
    );
    assert!(d.registry.is_empty());
    assert_eq!(d.stats().stale_completions, 0);
}

#[test]
fn a_more_cqe_for_a_freed_slot_is_stale() {
    let mut d = driver();
    let key = d.reserve().unwrap();
    d.registry.free(key);
    // `IORING_CQE_F_MORE` (the io-uring crate keeps its `sys` private).
    const F_MORE: u32 = 1 << 1;
    assert!(io_uring::cqueue::more(F_MORE));
    d.on_cqe(key.to_user_data(), 7, F_MORE);
    assert_eq!(d.stats().stale_completions, 1);
}

#[test]
fn a_synchronous_cancel_ends_a_multishot_accept_at_once() {
    let mut d = driver();
    if !d.supports_multishot_accept() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sink = Rc::new(Events::default());
    let key = submit(
        &mut d,
        op::AcceptMulti {
            fd: listener.as_raw_fd(),
            sink: sink.clone(),
        },
    );
    // Queued, not yet submitted: the synchronous cancel submits first.
    assert!(d.cancel_sync(key), "the kernel confirmed the cancel");
    // The final CQE is posted; the slot goes when it is processed.
    d.cancel(key, None);
    wait_until(&mut d, |d| d.registry.is_empty());
    assert!(!sink.0.borrow().last().unwrap().more);
    assert!(d.cancel_sync(key), "a freed slot has nothing in the kernel");
}
