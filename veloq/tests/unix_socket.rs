//! Unix-domain sockets (`veloq::net::{UnixListener, UnixStream,
//! UnixDatagram}`): path and abstract addresses, `pair`, peer credentials,
//! `into_split`, the owned-buffer traits and cancel-safe reads, on
//! whatever driver runs the suite. On Windows the types exist and every
//! constructor fails with `Unsupported`.

mod util;

#[cfg(unix)]
mod unix {
    use std::io;
    use std::io::Write;
    use std::os::unix::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::util::{pattern, poll_once, within, CountedBuf, TempPath};
    use veloq::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use veloq::net::{UnixDatagram, UnixListener, UnixStream};
    use veloq::time::{sleep, timeout};

    /// Lets the driver run a while without polling the caller's futures.
    async fn turns() {
        sleep(Duration::from_millis(20)).await;
    }

    /// Reads from `stream` until `want` bytes came, in reads of at most
    /// `chunk` bytes, within 3 s.
    async fn read_n(stream: &UnixStream, want: usize, chunk: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let _ = timeout(Duration::from_secs(3), async {
            while got.len() < want {
                let (res, buf) = stream.read(Vec::with_capacity(chunk)).await;
                match res {
                    Ok(0) | Err(_) => return,
                    Ok(_) => got.extend_from_slice(&buf),
                }
            }
        })
        .await;
        got
    }

    #[test]
    fn echo_over_a_path_socket() {
        within(30, || {
            veloq::block_on(async {
                let path = TempPath::new("unix-echo");
                let listener = UnixListener::bind(&path.0).unwrap();
                assert_eq!(
                    listener.local_addr().unwrap().as_pathname(),
                    Some(path.0.as_path())
                );
                let server = veloq::spawn(async move {
                    let (stream, peer) = listener.accept().await.unwrap();
                    assert!(peer.is_unnamed(), "the client bound no name: {peer:?}");
                    loop {
                        let (res, buf) = stream.read(vec![0u8; 4096]).await;
                        let n = res.unwrap();
                        if n == 0 {
                            return;
                        }
                        let (res, _) = stream.write_all(buf[..n].to_vec()).await;
                        res.unwrap();
                    }
                });
                let client = UnixStream::connect(&path.0).await.unwrap();
                assert_eq!(
                    client.peer_addr().unwrap().as_pathname(),
                    Some(path.0.as_path())
                );
                assert!(client.local_addr().unwrap().is_unnamed());
                let data = pattern(200_000, 7);
                let writer = async {
                    let (res, _) = client.write_all(data.clone()).await;
                    res.unwrap();
                };
                let reader = async {
                    let (res, back) = client.read_exact(vec![0u8; data.len()]).await;
                    res.unwrap();
                    back
                };
                let ((), back) = futures_join(writer, reader).await;
                assert_eq!(back, data);
                client.shutdown(std::net::Shutdown::Write).unwrap();
                server.await.unwrap();
                // The listener is gone; like std's, it left its file.
                assert!(path.0.exists(), "the socket file stays after drop");
            });
        });
    }

    /// Polls two futures to completion, in one task.
    async fn futures_join<A: std::future::Future, B: std::future::Future>(
        a: A,
        b: B,
    ) -> (A::Output, B::Output) {
        let mut a = std::pin::pin!(a);
        let mut b = std::pin::pin!(b);
        let (mut ra, mut rb) = (None, None);
        std::future::poll_fn(|cx| {
            if ra.is_none() {
                if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                    ra = Some(v);
                }
            }
            if rb.is_none() {
                if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                    rb = Some(v);
                }
            }
            if ra.is_some() && rb.is_some() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        (ra.unwrap(), rb.unwrap())
    }

    #[test]
    fn pair_talks_both_ways_and_reports_the_peer_credentials() {
        within(30, || {
            veloq::block_on(async {
                let (a, b) = UnixStream::pair().unwrap();
                let (res, _) = a.write_all(b"ping".to_vec()).await;
                res.unwrap();
                let (res, buf) = b.read_exact(vec![0u8; 4]).await;
                res.unwrap();
                assert_eq!(&buf, b"ping");
                let (res, _) = b.write_all(b"pong".to_vec()).await;
                res.unwrap();
                let (res, buf) = a.read_exact(vec![0u8; 4]).await;
                res.unwrap();
                assert_eq!(&buf, b"pong");
                assert!(a.peer_addr().unwrap().is_unnamed());

                let cred = a.peer_cred().unwrap();
                // SAFETY: getuid/getgid cannot fail and touch no memory.
                let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
                assert_eq!(cred.uid(), uid);
                assert_eq!(cred.gid(), gid);
                assert_eq!(cred.pid(), Some(std::process::id() as libc::pid_t));

                drop(a);
                let (res, _) = b.read(vec![0u8; 8]).await;
                assert_eq!(res.unwrap(), 0, "end of stream once the peer is gone");
            });
        });
    }

    #[test]
    fn peer_cred_of_an_accepted_connection() {
        within(30, || {
            veloq::block_on(async {
                let path = TempPath::new("unix-cred");
                let listener = UnixListener::bind(&path.0).unwrap();
                let client = UnixStream::connect(&path.0).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                for s in [&client, &server] {
                    let cred = s.peer_cred().unwrap();
                    // SAFETY: getuid cannot fail and touches no memory.
                    assert_eq!(cred.uid(), unsafe { libc::getuid() });
                    assert_eq!(cred.pid(), Some(std::process::id() as libc::pid_t));
                }
            });
        });
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_names_by_leading_nul_and_by_address() {
        use std::os::linux::net::SocketAddrExt;
        within(30, || {
            veloq::block_on(async {
                let name = format!("veloq-test-abstract-{}", std::process::id());
                let listener = UnixListener::bind(format!("\0{name}")).unwrap();
                let local = listener.local_addr().unwrap();
                assert_eq!(local.as_abstract_name(), Some(name.as_bytes()));
                assert_eq!(local.as_pathname(), None);

                let client = UnixStream::connect(format!("\0{name}")).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                let (res, _) = client.write_all(b"abstract".to_vec()).await;
                res.unwrap();
                let (res, buf) = server.read_exact(vec![0u8; 8]).await;
                res.unwrap();
                assert_eq!(&buf, b"abstract");
                assert_eq!(
                    client.peer_addr().unwrap().as_abstract_name(),
                    Some(name.as_bytes())
                );

                // The same through std's address type.
                let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
                let again = UnixStream::connect_addr(&addr).await.unwrap();
                let (_s, _) = listener.accept().await.unwrap();
                drop(again);
                let err = UnixListener::bind_addr(&addr).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
                drop(listener);
                // Abstract names vanish with their socket: no file to remove.
                let relisten = UnixListener::bind_addr(&addr).unwrap();
                drop(relisten);

                // Datagrams with abstract names, both ways.
                let a = UnixDatagram::bind(format!("\0{name}-a")).unwrap();
                let b = UnixDatagram::bind(format!("\0{name}-b")).unwrap();
                let (res, _) = a.send_to(b"hi".to_vec(), format!("\0{name}-b")).await;
                assert_eq!(res.unwrap(), 2);
                let (res, buf) = b.recv_from(vec![0u8; 16]).await;
                let (n, from) = res.unwrap();
                assert_eq!(&buf[..n], b"hi");
                assert_eq!(
                    from.as_abstract_name(),
                    Some(format!("{name}-a").as_bytes())
                );
            });
        });
    }

    #[test]
    fn binding_an_existing_path_is_addr_in_use() {
        within(30, || {
            veloq::block_on(async {
                let path = TempPath::new("unix-inuse");
                let listener = UnixListener::bind(&path.0).unwrap();
                let err = UnixListener::bind(&path.0).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
                drop(listener);
                // The stale file still blocks the path, as with std.
                let err = UnixListener::bind(&path.0).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
                let err = UnixDatagram::bind(&path.0).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
                std::fs::remove_file(&path.0).unwrap();
                UnixListener::bind(&path.0).unwrap();
            });
        });
    }

    #[test]
    fn accepting_a_connection_whose_client_already_left() {
        within(30, || {
            veloq::block_on(async {
                let path = TempPath::new("unix-gone");
                let listener = UnixListener::bind(&path.0).unwrap();
                let mut c = std::os::unix::net::UnixStream::connect(&path.0).unwrap();
                c.write_all(b"bye").unwrap();
                drop(c);
                let (s, _peer) = listener.accept().await.unwrap();
                let (res, buf) = s.read(vec![0u8; 8]).await;
                assert_eq!(&buf[..res.unwrap()], b"bye");
                let (res, _) = s.read(vec![0u8; 8]).await;
                assert_eq!(res.unwrap(), 0);
            });
        });
    }

    #[test]
    fn connect_errors() {
        within(30, || {
            veloq::block_on(async {
                let path = TempPath::new("unix-missing");
                let err = UnixStream::connect(&path.0).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
                // A socket file with no listener behind it.
                drop(std::os::unix::net::UnixListener::bind(&path.0).unwrap());
                let err = UnixStream::connect(&path.0).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
                let err = UnixStream::connect("bad\0path").await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
                let long = "x".repeat(200);
                let err = UnixListener::bind(&long).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            });
        });
    }

    #[test]
    fn a_full_backlog_makes_connect_wait_until_the_listener_accepts() {
        within(60, || {
            veloq::block_on(async {
                let path = TempPath::new("unix-backlog");
                // A tiny backlog, through std, then adopted.
                let std_listener = {
                    let s =
                        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
                            .unwrap();
                    s.bind(&socket2::SockAddr::unix(&path.0).unwrap()).unwrap();
                    s.listen(1).unwrap();
                    std::os::unix::net::UnixListener::from(s)
                };
                let listener = UnixListener::from_std(std_listener).unwrap();
                let mut held = Vec::new();
                let mut pending = None;
                for _ in 0..16 {
                    let mut c = Box::pin(UnixStream::connect(path.0.clone()));
                    match poll_once(c.as_mut()).await {
                        std::task::Poll::Ready(s) => held.push(s.unwrap()),
                        std::task::Poll::Pending => {
                            pending = Some(c);
                            break;
                        }
                    }
                }
                let pending = pending.expect("a backlog of 1 fills up");
                let path2 = path.0.clone();
                let acceptor = veloq::spawn(async move {
                    let _ = path2;
                    let mut n = 0;
                    while let Ok(Ok((s, _))) =
                        timeout(Duration::from_millis(500), listener.accept()).await
                    {
                        n += 1;
                        drop(s);
                    }
                    n
                });
                let stream = timeout(Duration::from_secs(10), pending)
                    .await
                    .expect("connect waited forever")
                    .unwrap();
                drop(stream);
                assert!(acceptor.await.unwrap() > held.len());
            });
        });
    }

    #[test]
    fn datagrams_between_bound_paths_report_their_source() {
        within(30, || {
            veloq::block_on(async {
                let pa = TempPath::new("unix-dgram-a");
                let pb = TempPath::new("unix-dgram-b");
                let a = UnixDatagram::bind(&pa.0).unwrap();
                let b = UnixDatagram::bind(&pb.0).unwrap();
                assert_eq!(a.local_addr().unwrap().as_pathname(), Some(pa.0.as_path()));
                for i in 0..20u8 {
                    let (res, _) = a.send_to(vec![i; 100 + i as usize], &pb.0).await;
                    assert_eq!(res.unwrap(), 100 + i as usize);
                    let (res, buf) = b.recv_from(vec![0u8; 1024]).await;
                    let (n, from) = res.unwrap();
                    assert_eq!(&buf[..n], &vec![i; 100 + i as usize][..]);
                    assert_eq!(from.as_pathname(), Some(pa.0.as_path()));
                    // Answer to where it came from.
                    let (res, _) = b
                        .send_to(buf[..n].to_vec(), from.as_pathname().unwrap())
                        .await;
                    res.unwrap();
                    let (res, back) = a.recv_from(vec![0u8; 1024]).await;
                    let (m, from_b) = res.unwrap();
                    assert_eq!(&back[..m], &buf[..n]);
                    assert_eq!(from_b.as_pathname(), Some(pb.0.as_path()));
                }
                // A datagram longer than the buffer is cut.
                let (res, _) = a.send_to(vec![9u8; 64], &pb.0).await;
                res.unwrap();
                let (res, buf) = b.recv_from(vec![0u8; 10]).await;
                assert_eq!(res.unwrap().0, 10);
                assert_eq!(buf, vec![9u8; 10]);
                // An unbound sender is unnamed.
                let u = UnixDatagram::unbound().unwrap();
                let (res, _) = u.send_to(b"anon".to_vec(), &pb.0).await;
                res.unwrap();
                let (res, buf) = b.recv_from(vec![0u8; 16]).await;
                let (n, from) = res.unwrap();
                assert_eq!(&buf[..n], b"anon");
                assert!(from.is_unnamed(), "{from:?}");
                // No receiver at the path.
                let gone = TempPath::new("unix-dgram-gone");
                let (res, _) = a.send_to(b"x".to_vec(), &gone.0).await;
                assert_eq!(res.unwrap_err().kind(), io::ErrorKind::NotFound);
            });
        });
    }

    #[test]
    fn connected_datagrams_and_pairs() {
        within(30, || {
            veloq::block_on(async {
                let pa = TempPath::new("unix-dconn-a");
                let pb = TempPath::new("unix-dconn-b");
                let a = UnixDatagram::bind(&pa.0).unwrap();
                let b = UnixDatagram::bind(&pb.0).unwrap();
                assert_eq!(
                    a.peer_addr().unwrap_err().kind(),
                    io::ErrorKind::NotConnected
                );
                a.connect(&pb.0).unwrap();
                b.connect(&pa.0).unwrap();
                assert_eq!(a.peer_addr().unwrap().as_pathname(), Some(pb.0.as_path()));
                let (res, _) = a.send(b"one".to_vec()).await;
                assert_eq!(res.unwrap(), 3);
                let (res, buf) = b.recv(vec![0u8; 16]).await;
                assert_eq!(&buf[..res.unwrap()], b"one");
                let (res, _) = b.send(b"two".to_vec()).await;
                res.unwrap();
                let (res, buf) = a.recv_from(vec![0u8; 16]).await;
                let (n, from) = res.unwrap();
                assert_eq!(&buf[..n], b"two");
                assert_eq!(from.as_pathname(), Some(pb.0.as_path()));

                let (x, y) = UnixDatagram::pair().unwrap();
                let (res, _) = x.send(b"paired".to_vec()).await;
                res.unwrap();
                let (res, buf) = y.recv_from(vec![0u8; 16]).await;
                let (n, from) = res.unwrap();
                assert_eq!(&buf[..n], b"paired");
                assert!(from.is_unnamed());
                // An empty datagram is a datagram.
                let (res, _) = y.send(Vec::new()).await;
                assert_eq!(res.unwrap(), 0);
                let (res, _) = x.recv(vec![0u8; 16]).await;
                assert_eq!(res.unwrap(), 0);
            });
        });
    }

    #[test]
    fn into_split_halves_work_in_two_tasks_and_reunite() {
        within(30, || {
            veloq::block_on(async {
                let (a, b) = UnixStream::pair().unwrap();
                let (rd, wr) = a.into_split();
                let data = pattern(100_000, 3);
                let expect = data.clone();
                let reader = veloq::spawn(async move {
                    let (res, got) = rd.read_exact(vec![0u8; expect.len()]).await;
                    res.unwrap();
                    assert_eq!(got, expect);
                    rd
                });
                // Echo on the far end.
                let echo = veloq::spawn(async move {
                    loop {
                        let (res, buf) = b.read(vec![0u8; 8192]).await;
                        let n = res.unwrap();
                        if n == 0 {
                            return;
                        }
                        let (res, _) = b.write_all(buf[..n].to_vec()).await;
                        res.unwrap();
                    }
                });
                let writer = veloq::spawn(async move {
                    let (res, _) = wr.write_all(data).await;
                    res.unwrap();
                    wr
                });
                let rd = reader.await.unwrap();
                let wr = writer.await.unwrap();
                let (x, _y) = UnixStream::pair().unwrap();
                let (other_rd, other_wr) = x.into_split();
                let err = rd.reunite(other_wr).unwrap_err();
                let (rd, other_wr) = (err.0, err.1);
                drop((other_rd, other_wr));
                let stream = rd.reunite(wr).unwrap();
                assert!(stream.peer_addr().unwrap().is_unnamed());
                drop(stream);
                // The echo side sees end of stream and returns.
                echo.await.unwrap();
            });
        });
    }

    #[test]
    fn dropping_the_write_half_shuts_down_the_write_side() {
        within(30, || {
            veloq::block_on(async {
                let (a, b) = UnixStream::pair().unwrap();
                let (rd, wr) = a.into_split();
                drop(wr);
                let (res, _) = b.read(vec![0u8; 8]).await;
                assert_eq!(res.unwrap(), 0);
                // Reading still works.
                let (res, _) = b.write_all(b"late".to_vec()).await;
                res.unwrap();
                let (res, buf) = rd.read_exact(vec![0u8; 4]).await;
                res.unwrap();
                assert_eq!(&buf, b"late");
            });
        });
    }

    /// Generic over the traits: copies everything from `r` to `w`, then
    /// shuts `w` down.
    async fn pump<R: AsyncRead, W: AsyncWrite>(mut r: R, mut w: W) -> usize {
        let (res, all) = r.read_to_end(Vec::new()).await;
        let n = res.unwrap();
        let (res, _) = w.write_all(all).await;
        res.unwrap();
        w.flush().await.unwrap();
        AsyncWrite::shutdown(&mut w).await.unwrap();
        n
    }

    #[test]
    fn the_io_traits_over_streams_references_and_halves() {
        within(30, || {
            veloq::block_on(async {
                let data = pattern(50_000, 11);
                // Owned stream -> &stream.
                let (src_w, src_r) = UnixStream::pair().unwrap();
                let (dst_w, dst_r) = UnixStream::pair().unwrap();
                let d = data.clone();
                let feed = veloq::spawn(async move {
                    let mut w = src_w;
                    let (res, _) = w.write_all(d).await;
                    res.unwrap();
                    AsyncWrite::shutdown(&mut w).await.unwrap();
                    w
                });
                let copy = veloq::spawn(async move {
                    let n = pump(src_r, &dst_w).await;
                    drop(dst_w);
                    n
                });
                let mut r = &dst_r;
                let (res, got) = r.read_to_end(Vec::new()).await;
                assert_eq!(res.unwrap(), data.len());
                assert_eq!(got, data);
                assert_eq!(copy.await.unwrap(), data.len());
                drop(feed.await.unwrap());

                // Halves.
                let (a, mut b) = UnixStream::pair().unwrap();
                let (rd, wr) = a.into_split();
                let d = data.clone();
                let t = veloq::spawn(async move {
                    let (res, _) = AsyncWriteExt::write_all(&mut b, d).await;
                    res.unwrap();
                    let (res, back) = AsyncReadExt::read_exact(&mut b, vec![0u8; 5]).await;
                    res.unwrap();
                    back
                });
                let mut rd = rd;
                let (res, got) = AsyncReadExt::read_exact(&mut rd, vec![0u8; data.len()]).await;
                res.unwrap();
                assert_eq!(got, data);
                let mut wr = wr;
                let (res, _) = AsyncWriteExt::write_all(&mut wr, b"hello".to_vec()).await;
                res.unwrap();
                assert_eq!(&t.await.unwrap(), b"hello");
                let mut wr_ref = &wr;
                AsyncWrite::shutdown(&mut wr_ref).await.unwrap();
                let mut rd_ref = &rd;
                let (res, _) = AsyncRead::read(&mut rd_ref, vec![0u8; 1]).await;
                drop(res);
            });
        });
    }

    #[test]
    fn a_dropped_read_hands_its_bytes_to_the_next_read() {
        within(30, || {
            let drops = Arc::new(AtomicUsize::new(0));
            veloq::block_on(async {
                let (client, peer) = std::os::unix::net::UnixStream::pair().unwrap();
                let client = UnixStream::from_std(client).unwrap();
                let mut peer = peer;
                for round in 0..5 {
                    let mut read = Box::pin(client.read(CountedBuf::new(64, &drops)));
                    assert!(poll_once(read.as_mut()).await.is_pending());
                    turns().await;
                    peer.write_all(format!("hello {round}").as_bytes()).unwrap();
                    // The read completes in the driver; nobody polls it.
                    turns().await;
                    drop(read);
                    peer.write_all(b" world").unwrap();
                    let want = format!("hello {round} world");
                    let got = read_n(&client, want.len(), 3).await;
                    assert_eq!(String::from_utf8_lossy(&got), want, "round {round}");
                }
            });
            assert_eq!(drops.load(Ordering::SeqCst), 5, "each buffer dropped once");
        });
    }

    #[test]
    fn reads_under_timeouts_lose_no_byte() {
        within(60, || {
            veloq::block_on(async {
                let (a, b) = UnixStream::pair().unwrap();
                let data = pattern(300_000, 5);
                let d = data.clone();
                let writer = veloq::spawn(async move {
                    for chunk in d.chunks(997) {
                        let (res, _) = b.write_all(chunk.to_vec()).await;
                        res.unwrap();
                        if chunk[0] % 7 == 0 {
                            sleep(Duration::from_micros(200)).await;
                        }
                    }
                    b
                });
                let mut got = Vec::new();
                let mut timeouts = 0;
                while got.len() < data.len() {
                    match timeout(Duration::from_micros(300), a.read(vec![0u8; 1500])).await {
                        Ok((res, buf)) => {
                            let n = res.unwrap();
                            assert!(n > 0);
                            got.extend_from_slice(&buf[..n]);
                        }
                        Err(_) => timeouts += 1,
                    }
                }
                drop(writer.await.unwrap());
                assert_eq!(got.len(), data.len());
                assert!(got == data, "bytes lost or reordered ({timeouts} timeouts)");
            });
        });
    }

    #[test]
    fn a_dropped_recv_from_hands_its_datagram_to_the_next_one() {
        within(30, || {
            let drops = Arc::new(AtomicUsize::new(0));
            veloq::block_on(async {
                let pr = TempPath::new("unix-dcancel");
                let sock = UnixDatagram::bind(&pr.0).unwrap();
                let ps = TempPath::new("unix-dcancel-s");
                let sender = std::os::unix::net::UnixDatagram::bind(&ps.0).unwrap();
                for round in 0..5 {
                    let mut recv = Box::pin(sock.recv_from(CountedBuf::new(64, &drops)));
                    assert!(poll_once(recv.as_mut()).await.is_pending());
                    turns().await;
                    sender
                        .send_to(format!("first {round}").as_bytes(), &pr.0)
                        .unwrap();
                    turns().await;
                    drop(recv);
                    sender
                        .send_to(format!("second {round}").as_bytes(), &pr.0)
                        .unwrap();
                    for (i, want) in [format!("first {round}"), format!("second {round}")]
                        .into_iter()
                        .enumerate()
                    {
                        let got =
                            timeout(Duration::from_secs(3), sock.recv_from(vec![0u8; 64])).await;
                        let (res, buf) = got.unwrap_or_else(|_| {
                            panic!("round {round}: datagram {want:?} was lost")
                        });
                        let (n, from) = res.unwrap();
                        assert_eq!(String::from_utf8_lossy(&buf[..n]), want);
                        // The stashed datagram (i == 0) keeps its source.
                        assert_eq!(from.as_pathname(), Some(ps.0.as_path()), "datagram {i}");
                    }
                }
            });
            assert_eq!(drops.load(Ordering::SeqCst), 5, "each buffer dropped once");
        });
    }

    /// Regression: a datagram a cancelled `recv_from` stashed used to come
    /// back with the unnamed address. Two senders, `recv_from` under random
    /// 0-2 ms timeouts: every datagram arrives once, with its own sender's
    /// path.
    #[test]
    fn recv_from_under_timeouts_reports_each_datagrams_own_source() {
        within(60, || {
            veloq::block_on(async {
                const N: usize = 300;
                let pr = TempPath::new("unix-dsrc");
                let sock = UnixDatagram::bind(&pr.0).unwrap();
                let paths = [TempPath::new("unix-dsrc-a"), TempPath::new("unix-dsrc-b")];
                let senders = [
                    std::os::unix::net::UnixDatagram::bind(&paths[0].0).unwrap(),
                    std::os::unix::net::UnixDatagram::bind(&paths[1].0).unwrap(),
                ];
                let mut rng = super::util::Rng::new(3);
                let (mut got, mut timeouts, mut sent) = (Vec::new(), 0usize, 0usize);
                let check = |n: usize, buf: &[u8], from: SocketAddr, got: &mut Vec<usize>| {
                    let text = std::str::from_utf8(&buf[..n]).unwrap();
                    let (who, seq) = text.split_once(':').unwrap();
                    let who: usize = who.parse().unwrap();
                    assert_eq!(
                        from.as_pathname(),
                        Some(paths[who].0.as_path()),
                        "datagram {text:?} reported the wrong source"
                    );
                    got.push(seq.parse().unwrap());
                };
                while sent < N || got.len() < N {
                    if sent < N && rng.below(2) == 0 {
                        let who = sent % 2;
                        senders[who]
                            .send_to(format!("{who}:{sent}").as_bytes(), &pr.0)
                            .unwrap();
                        sent += 1;
                    }
                    let limit = if rng.below(3) == 0 {
                        Duration::ZERO
                    } else {
                        Duration::from_micros(rng.below(2001))
                    };
                    match timeout(limit, sock.recv_from(vec![0u8; 32])).await {
                        Ok((res, buf)) => {
                            let (n, from) = res.unwrap();
                            check(n, &buf, from, &mut got);
                        }
                        Err(_) => timeouts += 1,
                    }
                    assert!(got.len() <= sent, "a datagram came twice");
                    if sent == N && timeouts > 10 * N {
                        break;
                    }
                }
                got.sort_unstable();
                assert_eq!(got, (0..N).collect::<Vec<_>>(), "{timeouts} timeouts");
                assert!(
                    timeouts > 0,
                    "no receive timed out: the test tested nothing"
                );
            });
        });
    }

    #[test]
    fn a_dropped_accept_hands_its_connection_to_the_next_accept() {
        within(30, || {
            veloq::block_on(async {
                let path = TempPath::new("unix-acancel");
                let listener = UnixListener::bind(&path.0).unwrap();
                for round in 0..5u8 {
                    let mut accept = Box::pin(listener.accept());
                    assert!(poll_once(accept.as_mut()).await.is_pending());
                    turns().await;
                    let mut c = std::os::unix::net::UnixStream::connect(&path.0).unwrap();
                    c.write_all(&[round]).unwrap();
                    turns().await;
                    drop(accept);
                    let (s, _) = timeout(Duration::from_secs(3), listener.accept())
                        .await
                        .expect("the connection was lost")
                        .unwrap();
                    let (res, buf) = s.read_exact(vec![0u8; 1]).await;
                    res.unwrap();
                    assert_eq!(buf, [round]);
                }
            });
        });
    }

    #[test]
    fn debug_output_names_the_addresses() {
        within(30, || {
            veloq::block_on(async {
                // Which driver ran the suite, for the log.
                eprintln!("driver: {:?}", veloq::runtime::driver_kind());
                let path = TempPath::new("unix-debug");
                let listener = UnixListener::bind(&path.0).unwrap();
                let text = format!("{listener:?}");
                assert!(text.starts_with("UnixListener"), "{text}");
                assert!(text.contains("unix-debug"), "{text}");
                let d = UnixDatagram::unbound().unwrap();
                assert!(format!("{d:?}").starts_with("UnixDatagram"));
                let (s, _) = UnixStream::pair().unwrap();
                assert!(format!("{s:?}").starts_with("UnixStream"));
            });
        });
    }
}

#[cfg(windows)]
#[test]
fn unix_sockets_are_unsupported_on_windows() {
    use std::io;
    use veloq::net::{UnixDatagram, UnixListener, UnixStream};
    util::within(30, || {
        veloq::block_on(async {
            let path = std::env::temp_dir().join("veloq-test-unix.sock");
            let err = UnixListener::bind(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
            assert!(err.to_string().contains("Unix-domain"), "{err}");
            let err = UnixStream::connect(&path).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
            assert_eq!(
                UnixStream::pair().unwrap_err().kind(),
                io::ErrorKind::Unsupported
            );
            for err in [
                UnixDatagram::bind(&path).unwrap_err(),
                UnixDatagram::unbound().unwrap_err(),
                UnixDatagram::pair().unwrap_err(),
            ] {
                assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
            }
        });
    });
}
