//! Tests of [`Op::submit_on_poll`] on the current driver (io_uring, or
//! epoll under `VELOQ_DRIVER=epoll`): nothing reaches the driver before
//! the first poll, and from then on it is an ordinary op.

use std::future::{poll_fn, Future};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use super::{keep_only, Op, Recv};
use crate::runtime::driver_stats;

/// A receive of up to `buf.len()` bytes on `sock`, keeping `buf` and
/// `token` alive for as long as the op may use them.
fn recv_on_poll(
    sock: &UnixStream,
    mut buf: Vec<u8>,
    token: Rc<()>,
) -> super::SubmitOnPoll<Recv, (Vec<u8>, Rc<()>)> {
    let desc = Recv {
        fd: sock.as_raw_fd(),
        buf: buf.as_mut_ptr(),
        len: buf.len() as u32,
    };
    Op::submit_on_poll(desc, (buf, token), keep_only)
}

#[test]
fn dropped_before_its_first_poll_submits_nothing() {
    crate::block_on(async {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let token = Rc::new(());
        let before = driver_stats().in_flight;
        let op = recv_on_poll(&ours, vec![0; 8], token.clone());
        assert_eq!(
            driver_stats().in_flight,
            before,
            "submitted before its poll"
        );
        drop(op);
        // The keep-alive goes at once: no driver holds it for a kernel op.
        assert_eq!(Rc::strong_count(&token), 1);
        assert_eq!(driver_stats().in_flight, before);
        // And no receive took what the peer sends next.
        peer.write_all(b"hi").unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut got = [0; 8];
        assert_eq!((&ours).read(&mut got).unwrap(), 2);
        assert_eq!(&got[..2], b"hi");
    });
}

#[test]
fn first_poll_submits_and_waits_then_completes() {
    crate::block_on(async {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let token = Rc::new(());
        let before = driver_stats().in_flight;
        let mut op = pin!(recv_on_poll(&ours, vec![0; 8], token.clone()));
        let first = poll_fn(|cx| Poll::Ready(op.as_mut().poll(cx).is_pending())).await;
        assert!(first, "a receive with no data completed");
        assert_eq!(driver_stats().in_flight, before + 1);
        peer.write_all(b"hi").unwrap();
        let (out, (buf, _token)) = op.await;
        assert_eq!(out.res.unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
        assert_eq!(driver_stats().in_flight, before);
    });
}

#[test]
fn dropped_after_its_first_poll_is_cancelled_like_any_op() {
    crate::block_on(async {
        let (ours, _peer) = UnixStream::pair().unwrap();
        let token = Rc::new(());
        let before = driver_stats().in_flight;
        {
            let mut op = pin!(recv_on_poll(&ours, vec![0; 8], token.clone()));
            let pending = poll_fn(|cx| Poll::Ready(op.as_mut().poll(cx).is_pending())).await;
            assert!(pending);
        }
        // The driver keeps the buffer until the kernel lets go of it.
        for _ in 0..10_000 {
            if driver_stats().in_flight == before {
                break;
            }
            crate::task::yield_now().await;
        }
        assert_eq!(
            driver_stats().in_flight,
            before,
            "cancelled op never completed"
        );
        assert_eq!(Rc::strong_count(&token), 1, "keep-alive outlived the op");
    });
}
