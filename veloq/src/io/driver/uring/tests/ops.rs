//! Each op against the live kernel: files, sockets, open/close, fixed
//! buffers, and many ops in flight at once.

use super::*;

#[test]
fn file_write_then_read_at_offsets() {
    let mut d = driver();
    let f = TempFile::new("rw");
    let data = b"hello, ring".to_vec();
    let key = submit(&mut d, write_at(f.fd(), &data, 4, None));
    assert_eq!(run(&mut d, key).res.unwrap(), data.len());

    let mut buf = vec![0xffu8; 15];
    let key = submit(&mut d, read_at(f.fd(), &mut buf, 0, None));
    assert_eq!(run(&mut d, key).res.unwrap(), 15);
    assert_eq!(
        &buf[..4],
        &[0, 0, 0, 0],
        "hole before the write reads as zeros"
    );
    assert_eq!(&buf[4..], &data[..]);

    let mut tail = vec![0u8; 8];
    let key = submit(&mut d, read_at(f.fd(), &mut tail, 10, None));
    assert_eq!(
        run(&mut d, key).res.unwrap(),
        5,
        "short read at end of file"
    );
    assert_eq!(&tail[..5], b", ring"[1..].as_ref());
    assert_eq!(d.stats().in_flight, 0);
}

#[test]
fn send_and_recv_over_a_socketpair() {
    let mut d = driver();
    let (a, b) = UnixStream::pair().unwrap();
    let mut buf = vec![0u8; 16];
    // Receive first: it waits in the kernel until the send arrives.
    let recv = submit(
        &mut d,
        op::Recv {
            fd: b.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: buf.len() as u32,
        },
    );
    let msg = b"ping".to_vec();
    let send = submit(
        &mut d,
        op::Send {
            fd: a.as_raw_fd(),
            buf: msg.as_ptr(),
            len: msg.len() as u32,
            zero_copy: false,
        },
    );
    assert_eq!(run(&mut d, send).res.unwrap(), 4);
    assert_eq!(run(&mut d, recv).res.unwrap(), 4);
    assert_eq!(&buf[..4], b"ping");
}

#[test]
fn recv_from_reports_the_source_address() {
    let mut d = driver();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut buf = vec![0u8; 32];
    let recv = submit(
        &mut d,
        op::RecvFrom {
            fd: rx.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: buf.len() as u32,
        },
    );
    let msg = b"datagram".to_vec();
    let send = submit(
        &mut d,
        op::SendTo {
            fd: tx.as_raw_fd(),
            buf: msg.as_ptr(),
            len: msg.len() as u32,
            addr: rx.local_addr().unwrap(),
        },
    );
    assert_eq!(run(&mut d, send).res.unwrap(), msg.len());
    let out = run(&mut d, recv);
    assert_eq!(out.res.unwrap(), msg.len());
    assert_eq!(&buf[..msg.len()], &msg[..]);
    assert_eq!(out.addr, Some(tx.local_addr().unwrap()));
}

#[test]
fn send_to_ipv6_loopback() {
    let Ok(rx) = UdpSocket::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    };
    let mut d = driver();
    let tx = UdpSocket::bind("[::1]:0").unwrap();
    let msg = b"six".to_vec();
    let send = submit(
        &mut d,
        op::SendTo {
            fd: tx.as_raw_fd(),
            buf: msg.as_ptr(),
            len: 3,
            addr: rx.local_addr().unwrap(),
        },
    );
    assert_eq!(run(&mut d, send).res.unwrap(), 3);
    let mut buf = vec![0u8; 8];
    let recv = submit(
        &mut d,
        op::RecvFrom {
            fd: rx.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: 8,
        },
    );
    let out = run(&mut d, recv);
    assert_eq!(out.res.unwrap(), 3);
    assert_eq!(out.addr, Some(tx.local_addr().unwrap()));
}

#[test]
fn accept_and_connect_over_loopback() {
    let mut d = driver();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = submit(
        &mut d,
        op::Accept {
            fd: listener.as_raw_fd(),
            ipv6: false,
        },
    );
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let connect = submit(
        &mut d,
        op::Connect {
            fd: client.as_raw_fd(),
            addr,
        },
    );
    assert_eq!(run(&mut d, connect).res.unwrap(), 0);
    let out = run(&mut d, accept);
    let fd = out.res.unwrap() as RawFd;
    let client_addr: SocketAddr = client.local_addr().unwrap().as_socket().unwrap();
    assert_eq!(out.addr, Some(client_addr));
    // SAFETY: the accept op created `fd`; this test owns it from here.
    let mut server = unsafe { <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: `fd` is a valid descriptor; F_GETFD has no pointers.
    let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_ne!(
        fd_flags & libc::FD_CLOEXEC,
        0,
        "accepted socket must be CLOEXEC"
    );
    let mut client: std::net::TcpStream = client.into();
    client.write_all(b"hi").unwrap();
    let mut got = [0u8; 2];
    server.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hi");
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let mut d = driver();
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let key = submit(
        &mut d,
        op::Connect {
            fd: client.as_raw_fd(),
            addr,
        },
    );
    let err = run(&mut d, key).res.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn open_missing_file_is_not_found() {
    let mut d = driver();
    let key = submit(
        &mut d,
        op::Open {
            path: temp_path("does-not-exist"),
            flags: OpenFlags {
                read: true,
                ..OpenFlags::default()
            },
        },
    );
    let err = run(&mut d, key).res.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn open_create_write_fsync_close() {
    let mut d = driver();
    let path = temp_path("created");
    let key = submit(
        &mut d,
        op::Open {
            path: path.clone(),
            flags: OpenFlags {
                write: true,
                create_new: true,
                mode: 0o600,
                ..OpenFlags::default()
            },
        },
    );
    let fd = run(&mut d, key).res.unwrap() as RawFd;
    // SAFETY: `fd` is the descriptor the open op created; F_GETFD has no
    // pointers.
    let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_ne!(
        fd_flags & libc::FD_CLOEXEC,
        0,
        "opened file must be CLOEXEC"
    );
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );

    let data = vec![7u8; 100];
    let key = submit(&mut d, write_at(fd, &data, 0, None));
    assert_eq!(run(&mut d, key).res.unwrap(), 100);
    let key = submit(
        &mut d,
        op::Fallocate {
            fd,
            offset: 0,
            len: 8192,
        },
    );
    run(&mut d, key).res.unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        8192,
        "fallocate extends"
    );
    let key = submit(
        &mut d,
        op::SyncFileRange {
            fd,
            offset: 0,
            len: 4096,
        },
    );
    run(&mut d, key).res.unwrap();
    for data_only in [false, true] {
        let key = submit(&mut d, op::Fsync { fd, data_only });
        run(&mut d, key).res.unwrap();
    }
    let key = submit(&mut d, op::Close { fd });
    run(&mut d, key).res.unwrap();
    // (Whether `fd` is closed cannot be checked here: a parallel test may
    // already have been given the same number.)

    let create_again = submit(
        &mut d,
        op::Open {
            path: path.clone(),
            flags: OpenFlags {
                write: true,
                create_new: true,
                ..OpenFlags::default()
            },
        },
    );
    let err = run(&mut d, create_again).res.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn invalid_open_fails_at_submit_and_frees_the_slot() {
    let mut d = driver();
    let key = d.reserve().unwrap();
    let desc = op::Open {
        path: PathBuf::from("nul\0byte"),
        flags: OpenFlags {
            read: true,
            ..OpenFlags::default()
        },
    };
    let err = d
        .submit(key, IntoPlatformOp::<UringDriver>::into_platform_op(desc))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(d.registry.is_empty());
    assert_eq!(d.stats().in_flight, 0);
}

#[test]
fn fixed_buffers_read_and_write() {
    let mut d = driver();
    if !d.has_fixed_buffers() {
        eprintln!("skipped: kernel has no sparse fixed-buffer table");
        return;
    }
    let mut wbuf = vec![0u8; 4096];
    let mut rbuf = vec![0u8; 4096];
    wbuf[..5].copy_from_slice(b"fixed");
    // SAFETY: both buffers outlive the driver's use of them: they are
    // unregistered below before they drop.
    let first =
        unsafe { d.register_buffers(&[(wbuf.as_mut_ptr(), 4096), (rbuf.as_mut_ptr(), 4096)]) }
            .unwrap();
    let Some(first) = first else {
        eprintln!("skipped: buffer registration refused (RLIMIT_MEMLOCK?)");
        return;
    };
    let f = TempFile::new("fixed");
    let key = submit(&mut d, write_at(f.fd(), &wbuf[..5], 100, Some(first)));
    assert_eq!(run(&mut d, key).res.unwrap(), 5);
    let key = submit(
        &mut d,
        read_at(f.fd(), &mut rbuf[..105], 0, Some(first + 1)),
    );
    assert_eq!(run(&mut d, key).res.unwrap(), 105);
    assert_eq!(&rbuf[100..105], b"fixed");

    d.unregister_buffers(first, 2);
    // A cleared slot no longer accepts fixed I/O.
    let key = submit(&mut d, read_at(f.fd(), &mut rbuf[..10], 0, Some(first + 1)));
    assert!(
        run(&mut d, key).res.is_err(),
        "unregistered index must fail"
    );
    // The range is free again.
    // SAFETY: as above.
    let again = unsafe { d.register_buffers(&[(rbuf.as_mut_ptr(), 4096)]) }.unwrap();
    assert_eq!(again, Some(first));
    d.unregister_buffers(first, 1);
}

#[test]
fn many_ops_in_flight_grow_the_slab() {
    // A small SQ also exercises "SQ full: submit and retry".
    let config = DriverConfig {
        entries: 8,
        ..DriverConfig::default()
    };
    let mut d = UringDriver::new(&config).unwrap();
    const N: usize = 150;
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..N).map(|_| UnixStream::pair().unwrap()).collect();
    let mut bufs: Vec<Vec<u8>> = (0..N).map(|_| vec![0u8; 8]).collect();
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
    d.wait(Some(Duration::ZERO)).unwrap();
    assert_eq!(d.stats().in_flight, N);
    for (i, (a, _)) in pairs.iter().enumerate() {
        (&*a).write_all(&(i as u64).to_le_bytes()).unwrap();
    }
    for (i, key) in keys.into_iter().enumerate() {
        assert_eq!(run(&mut d, key).res.unwrap(), 8);
        assert_eq!(
            u64::from_le_bytes(bufs[i][..].try_into().unwrap()),
            i as u64
        );
    }
    assert_eq!(d.stats().in_flight, 0);
}
