//! Socket ops: readiness, ordering, short transfers, the eager budget and
//! cancellation of waiting ops.

use super::*;
use crate::io::driver::op_registry::KeepOnly;

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
    d.cancel(key, Some(Box::new(KeepOnly(buf.clone()))));
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
    d.cancel(key, Some(Box::new(KeepOnly(keep.clone()))));
    assert_eq!(Rc::strong_count(&keep), 1, "freed at once");
    d.wait(Some(Duration::from_millis(20))).unwrap();
    assert!(b.recv(&mut drain).is_err(), "the cancelled send never ran");
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

/// The peer's data and FIN arrive, and their edge is consumed before any
/// read waits. A short read then drains the data; the next read must still
/// see the end of stream, although no further edge will ever come.
#[test]
fn short_read_after_fin_edge_still_reaches_end_of_stream() {
    let mut d = driver();
    let (a, mut b) = tcp_pair(&mut d);
    b.write_all(b"abcdef").unwrap();
    b.shutdown(std::net::Shutdown::Write).unwrap();
    drop(b);
    // Consume the data + FIN edge with nobody waiting.
    let start = Instant::now();
    loop {
        d.wait(Some(Duration::from_millis(20))).unwrap();
        let mut probe = [0u8; 8];
        // SAFETY: MSG_PEEK into a live stack buffer of the stated length.
        let n = unsafe {
            libc::recv(
                a.as_raw_fd(),
                probe.as_mut_ptr().cast(),
                probe.len(),
                libc::MSG_PEEK,
            )
        };
        if n == 6 || start.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    d.wait(Some(Duration::from_millis(20))).unwrap();
    let mut first = vec![0u8; 4];
    assert_eq!(
        {
            let k = submit(&mut d, recv(a.as_raw_fd(), &mut first));
            run(&mut d, k)
        }
        .res
        .unwrap(),
        4
    );
    let mut second = vec![0u8; 16];
    // Short: 2 of 16 bytes, the data is drained.
    assert_eq!(
        {
            let k = submit(&mut d, recv(a.as_raw_fd(), &mut second));
            run(&mut d, k)
        }
        .res
        .unwrap(),
        2
    );
    let mut third = vec![0u8; 16];
    assert_eq!(
        {
            let k = submit(&mut d, recv(a.as_raw_fd(), &mut third));
            run(&mut d, k)
        }
        .res
        .unwrap(),
        0,
        "end of stream after the data"
    );
}
