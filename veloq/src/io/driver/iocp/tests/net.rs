//! Socket ops on the IOCP driver (accept, connect, send, receive,
//! datagrams), their cancellation in every state, skip-on-success and
//! batching through the runtime.

use super::*;

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

/// `SendVec`/`RecvVec`: one `WSASendTo` gathers three `WSABUF`s into one
/// datagram, one `WSARecvFrom` scatters it over two, each filled before
/// the next, with the source; a datagram longer than the room is cut to
/// it (`WSAEMSGSIZE`, reported as the bytes placed).
#[test]
fn udp_send_vec_recv_vec_gather_and_scatter() {
    use windows_sys::Win32::Networking::WinSock::WSABUF;
    let mut d = driver();
    let (a, a_addr) = udp(&mut d);
    let (b, b_addr) = udp(&mut d);
    let (mut first, mut second) = (vec![0u8; 3], vec![0u8; 32]);
    let mut recv_bufs = vec![
        WSABUF {
            len: 3,
            buf: first.as_mut_ptr(),
        },
        WSABUF {
            len: 32,
            buf: second.as_mut_ptr(),
        },
    ];
    let parts: [&[u8]; 3] = [b"ab", b"cdef", b"ghi"];
    let send_bufs: Vec<WSABUF> = parts
        .iter()
        .map(|p| WSABUF {
            len: p.len() as u32,
            buf: p.as_ptr().cast_mut(),
        })
        .collect();
    let out = vec_round(&mut d, (&a, &b, b_addr), &mut recv_bufs, &send_bufs);
    assert_eq!(out.res.unwrap(), 9);
    assert_eq!(out.addr, Some(a_addr));
    assert_eq!(&first, b"abc");
    assert_eq!(&second[..6], b"defghi");

    // Cut to 3 + 2 bytes of room.
    recv_bufs[1].len = 2;
    let out = vec_round(&mut d, (&a, &b, b_addr), &mut recv_bufs, &send_bufs);
    assert_eq!(out.res.unwrap(), 5);
    assert_eq!(out.addr, Some(a_addr));
    assert_eq!((&first[..], &second[..2]), (&b"abc"[..], &b"de"[..]));
}

/// One round of the test above: posts a `RecvVec` of two buffers
/// (`recv`) on `b`, then sends the three parts of `send` from `a` to
/// `b_addr` in one `SendVec` and checks all 9 bytes went; the receive's
/// output.
fn vec_round(
    d: &mut IocpDriver,
    (a, b, b_addr): (&Socket, &Socket, SocketAddr),
    recv: &mut [windows_sys::Win32::Networking::WinSock::WSABUF],
    send: &[windows_sys::Win32::Networking::WinSock::WSABUF],
) -> OpOutput {
    let recv = submit(
        d,
        op::RecvVec {
            fd: socket_fd(b),
            bufs: recv.as_mut_ptr(),
            count: 2,
            from: true,
        },
    )
    .unwrap();
    let send = submit(
        d,
        op::SendVec {
            fd: socket_fd(a),
            bufs: send.as_ptr(),
            count: 3,
            addr: Some(b_addr),
        },
    )
    .unwrap();
    assert_eq!(run(d, send).res.unwrap(), 9);
    run(d, recv)
}

// ---- cancellation -----------------------------------------------------------------

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
    let keep: KeepAlive = Box::new(KeepOnly((buf, counter.clone())));
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
    let (out, hook) = record(counter.clone());
    d.cancel(key, hook);
    drain(&mut d);
    assert_eq!(Rc::strong_count(&counter), 1);
    assert!(d.ops.is_empty());
    // The cancelled receive's bytes reach the hook.
    let out = out.borrow_mut().take().expect("the hook got the output");
    assert_eq!(out.res.unwrap(), 4);
    assert_eq!(&buf[..4], b"late");
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
    let (out, hook) = record((big, counter.clone()));
    d.cancel(key, hook);
    drain(&mut d);
    assert_eq!(Rc::strong_count(&counter), 1);
    assert!(d.ops.is_empty());
    // Aborted after moving some bytes: still an error (as on Linux, a
    // cancelled send reports the cancellation, not a short count).
    let out = out.borrow_mut().take().expect("the hook got the output");
    assert!(out.res.is_err(), "{:?}", out.res);
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

/// Reads from `client` until end of stream, a reset, or 5 s: whether the
/// server side of its connection was closed.
fn peer_closed(client: &mut std::net::TcpStream) -> bool {
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4];
    match std::io::Read::read(client, &mut buf) {
        Ok(0) => true,
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
        ),
        Ok(_) => false,
    }
}

#[test]
fn accepted_then_cancelled_hands_socket_and_peer_to_the_hook() {
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
    // goes away without taking the socket: the hook gets it at once.
    drain(&mut d);
    let (out, hook) = record(());
    d.cancel(key, hook);
    assert!(d.ops.is_empty());
    let out = out.borrow_mut().take().expect("the hook got the output");
    assert_eq!(out.addr, Some(client.local_addr().unwrap()));
    // The driver no longer owns it: the connection is still open...
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4];
    let e = std::io::Read::read(&mut client, &mut buf).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{e:?}"
    );
    // ...until the hook's owner closes it.
    // SAFETY: the output carries the accepted socket; we own it now.
    drop(unsafe { crate::sys::socket_from_raw(out.res.unwrap()) });
    assert!(peer_closed(&mut client), "accepted socket not closed");
}

#[test]
fn accept_cancelled_while_a_client_connects_reports_what_happened() {
    // Whichever way the race goes, the hook gets the real outcome: the
    // connection (with its peer), or the abort.
    for _ in 0..20 {
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
        let (out, hook) = record(());
        d.cancel(key, hook);
        drain(&mut d);
        assert!(d.ops.is_empty());
        let out = out.borrow_mut().take().expect("the hook got the output");
        match out.res {
            Ok(s) => {
                assert_eq!(out.addr, Some(client.local_addr().unwrap()));
                // SAFETY: handed over with the output.
                drop(unsafe { crate::sys::socket_from_raw(s) });
                assert!(peer_closed(&mut client));
            }
            Err(e) => assert_eq!(e.kind(), crate::io::op::cancelled().kind(), "{e:?}"),
        }
    }
}

#[test]
fn dropping_the_driver_closes_an_unread_accepted_socket() {
    let mut d = driver();
    let (listener, addr) = tcp_listener(&mut d);
    submit(
        &mut d,
        op::Accept {
            fd: socket_fd(&listener),
            ipv6: false,
        },
    )
    .unwrap();
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    drain(&mut d);
    // Completed, its output never read: the driver's drop closes it.
    drop(d);
    assert!(peer_closed(&mut client), "accepted socket leaked");
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
    let ifs = crate::io::driver::iocp::ext::Extensions::get()
        .unwrap()
        .ifs_sockets;
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
