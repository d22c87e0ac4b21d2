//! Windows named pipes (`veloq::windows::named_pipe`) through the IOCP
//! driver: connect in both orders, echo both ways, many instances of one
//! name, message mode, errors, end of stream, and cancellation.
#![cfg(windows)]

mod util;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use util::{pattern, poll_once, within};
use veloq::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use veloq::windows::named_pipe::{ClientOptions, NamedPipeServer, PipeMode, ServerOptions};

const ERROR_PIPE_BUSY: i32 = 231;

#[link(name = "kernel32")]
extern "system" {
    fn GetModuleHandleA(name: *const std::ffi::c_char) -> *mut std::ffi::c_void;
    fn GetProcAddress(
        module: *mut std::ffi::c_void,
        name: *const std::ffi::c_char,
    ) -> *const std::ffi::c_void;
}

/// Whether this runs under Wine, whose ntdll exports `wine_get_version`.
fn under_wine() -> bool {
    // SAFETY: both names are NUL-terminated; ntdll is loaded in every
    // process, and a null module is checked before use.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr());
        !ntdll.is_null() && !GetProcAddress(ntdll, c"wine_get_version".as_ptr()).is_null()
    }
}

/// A pipe name no other test (or test run) uses.
fn pipe_name(tag: &str) -> String {
    format!(r"\\.\pipe\veloq-test-{}-{tag}", std::process::id())
}

fn run<F: Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    within(60, move || veloq::block_on(f()));
}

#[test]
fn server_waits_then_echoes_both_ways() {
    run(|| async {
        let name = pipe_name("echo");
        let server = ServerOptions::new()
            .first_pipe_instance(true)
            .create(&name)
            .unwrap();
        let echo = veloq::spawn(async move {
            // Pending until the client below opens: the overlapped
            // `ConnectNamedPipe` completes through the port.
            server.connect().await.unwrap();
            let mut buf = Vec::with_capacity(64);
            loop {
                buf.clear();
                let (res, b) = server.read(buf).await;
                buf = b;
                let n = res.unwrap();
                if n == 0 {
                    break;
                }
                let (res, b) = server.write_all(buf).await;
                buf = b;
                res.unwrap();
            }
        });
        veloq::time::sleep(Duration::from_millis(20)).await;
        let client = ClientOptions::new().open(&name).unwrap();
        for i in 0..10u8 {
            let msg = vec![b'a' + i; 7];
            let (res, _) = client.write_all(msg.clone()).await;
            res.unwrap();
            let (res, reply) = client.read_exact(Vec::with_capacity(7)).await;
            res.unwrap();
            assert_eq!(reply, msg, "round trip {i}");
        }
        drop(client);
        echo.await.unwrap();
    });
}

#[test]
fn client_connected_before_server_waits() {
    run(|| async {
        let name = pipe_name("early");
        let server = ServerOptions::new().create(&name).unwrap();
        let client = ClientOptions::new().open(&name).unwrap();
        // The client is connected already: ERROR_PIPE_CONNECTED, which
        // is success, at once.
        server.connect().await.unwrap();
        let (res, _) = client.write_all(b"early bird".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.read_exact(vec![0u8; 10]).await;
        res.unwrap();
        assert_eq!(buf, b"early bird");
        let (res, _) = server.write_all(b"worm".to_vec()).await;
        res.unwrap();
        let (res, buf) = client.read_exact(vec![0u8; 4]).await;
        res.unwrap();
        assert_eq!(buf, b"worm");
    });
}

#[test]
fn three_instances_of_one_name() {
    run(|| async {
        let name = pipe_name("many");
        let servers: Vec<NamedPipeServer> = (0..3)
            .map(|i| {
                ServerOptions::new()
                    .first_pipe_instance(i == 0)
                    .max_instances(3)
                    .create(&name)
                    .unwrap()
            })
            .collect();
        // A fourth instance is over the name's limit.
        let err = ServerOptions::new()
            .max_instances(3)
            .create(&name)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ERROR_PIPE_BUSY), "{err}");

        let mut tasks = Vec::new();
        for server in servers {
            tasks.push(veloq::spawn(async move {
                server.connect().await.unwrap();
                let (res, buf) = server.read_exact(vec![0u8; 1]).await;
                res.unwrap();
                // Answer with the client's tag, repeated.
                let (res, _) = server.write_all(vec![buf[0]; 100]).await;
                res.unwrap();
                // Wait until the client has gone.
                let (res, _) = server.read(vec![0u8; 1]).await;
                assert_eq!(res.unwrap(), 0);
            }));
        }
        let clients: Vec<_> = (0..3)
            .map(|_| ClientOptions::new().open(&name).unwrap())
            .collect();
        // Every instance is taken: a fourth client is told the pipe is busy.
        let err = ClientOptions::new().open(&name).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ERROR_PIPE_BUSY), "{err}");

        for (i, client) in clients.iter().enumerate() {
            let (res, _) = client.write_all(vec![b'0' + i as u8]).await;
            res.unwrap();
        }
        for (i, client) in clients.iter().enumerate() {
            let (res, buf) = client.read_exact(vec![0u8; 100]).await;
            res.unwrap();
            assert_eq!(buf, vec![b'0' + i as u8; 100], "client {i}");
        }
        drop(clients);
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn message_mode_keeps_boundaries() {
    run(|| async {
        let name = pipe_name("message");
        let server = ServerOptions::new()
            .pipe_mode(PipeMode::Message)
            .create(&name)
            .unwrap();
        let client = ClientOptions::new()
            .pipe_mode(PipeMode::Message)
            .open(&name)
            .unwrap();
        server.connect().await.unwrap();
        for msg in [&b"hello"[..], b"world!", b"x"] {
            let (res, _) = client.write(msg.to_vec()).await;
            assert_eq!(res.unwrap(), msg.len());
        }
        // Each read returns exactly one message.
        for msg in [&b"hello"[..], b"world!", b"x"] {
            let (res, buf) = server.read(Vec::with_capacity(64)).await;
            assert_eq!(res.unwrap(), msg.len());
            assert_eq!(buf, msg);
        }
        // A message longer than the buffer: the buffer's worth first (the
        // read that would report ERROR_MORE_DATA), the rest next.
        let long = pattern(100, 7);
        let (res, _) = server.write(long.clone()).await;
        assert_eq!(res.unwrap(), 100);
        let (res, first) = client.read(Vec::with_capacity(40)).await;
        assert_eq!(res.unwrap(), 40);
        let (res, rest) = client.read(Vec::with_capacity(100)).await;
        assert_eq!(res.unwrap(), 60);
        assert_eq!([first, rest].concat(), long);
        // The same, with the read in flight before the message arrives.
        let read = veloq::spawn(async move {
            let (res, first) = client.read(Vec::with_capacity(40)).await;
            assert_eq!(res.unwrap(), 40);
            let (res, rest) = client.read(Vec::with_capacity(100)).await;
            assert_eq!(res.unwrap(), 60);
            [first, rest].concat()
        });
        veloq::time::sleep(Duration::from_millis(20)).await;
        let (res, _) = server.write(long.clone()).await;
        assert_eq!(res.unwrap(), 100);
        assert_eq!(read.await.unwrap(), long);
    });
}

#[test]
fn missing_name_is_not_found() {
    run(|| async {
        let err = ClientOptions::new()
            .open(pipe_name("nobody-here"))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    });
}

#[test]
fn bad_options_are_errors() {
    run(|| async {
        let name = pipe_name("bad");
        let err = ServerOptions::new()
            .max_instances(0)
            .create(&name)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = ServerOptions::new()
            .max_instances(300)
            .create(&name)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = ServerOptions::new()
            .access_inbound(false)
            .access_outbound(false)
            .create(&name)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = ServerOptions::new().create("bad\0name").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = ClientOptions::new()
            .read(false)
            .write(false)
            .open(&name)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        let _first = ServerOptions::new()
            .first_pipe_instance(true)
            .create(&name)
            .unwrap();
        let second = ServerOptions::new().first_pipe_instance(true).create(&name);
        match second {
            Err(err) => assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}"),
            // Wine 8 ignores FILE_FLAG_FIRST_PIPE_INSTANCE.
            Ok(_) if under_wine() => {}
            Ok(s) => panic!("a second first instance was created: {s:?}"),
        }
    });
}

#[test]
fn read_after_peer_closes_is_end_of_stream() {
    run(|| async {
        let name = pipe_name("eof");
        // The client goes: the server reads end of stream.
        let server = ServerOptions::new().create(&name).unwrap();
        let client = ClientOptions::new().open(&name).unwrap();
        server.connect().await.unwrap();
        let (res, _) = client.write_all(b"last".to_vec()).await;
        res.unwrap();
        drop(client);
        let (res, buf) = server.read_exact(vec![0u8; 4]).await;
        res.unwrap();
        assert_eq!(buf, b"last");
        let (res, _) = server.read(vec![0u8; 16]).await;
        assert_eq!(res.unwrap(), 0);
        // And again: still end of stream.
        let (res, _) = server.read(vec![0u8; 16]).await;
        assert_eq!(res.unwrap(), 0);
        // Writing to the gone client is an error.
        let (res, _) = server.write(b"anyone?".to_vec()).await;
        assert!(res.is_err());

        // A read in flight when the client goes ends with end of stream.
        let server = ServerOptions::new().create(&name).unwrap();
        let client = ClientOptions::new().open(&name).unwrap();
        server.connect().await.unwrap();
        let reader = veloq::spawn(async move {
            let (res, _) = server.read(vec![0u8; 16]).await;
            res.unwrap()
        });
        veloq::time::sleep(Duration::from_millis(20)).await;
        drop(client);
        assert_eq!(reader.await.unwrap(), 0);

        // The server goes: the client reads end of stream.
        let server = ServerOptions::new().create(&name).unwrap();
        let client = ClientOptions::new().open(&name).unwrap();
        server.connect().await.unwrap();
        drop(server);
        let (res, _) = client.read(vec![0u8; 16]).await;
        assert_eq!(res.unwrap(), 0);
    });
}

#[test]
fn disconnect_then_serve_the_next_client() {
    run(|| async {
        let name = pipe_name("disconnect");
        let server = ServerOptions::new().create(&name).unwrap();
        for round in 0..3u8 {
            // After a disconnect the instance takes no client until it
            // waits for one again: connect first, then open.
            let open = async {
                veloq::time::sleep(Duration::from_millis(20)).await;
                ClientOptions::new().open(&name).unwrap()
            };
            let (res, client) = futures_util::future::join(server.connect(), open).await;
            res.unwrap();
            let (res, _) = client.write_all(vec![round; 3]).await;
            res.unwrap();
            let (res, buf) = server.read_exact(vec![0u8; 3]).await;
            res.unwrap();
            assert_eq!(buf, vec![round; 3]);
            server.disconnect().unwrap();
            // The client's session is over.
            let (res, _) = client.read(vec![0u8; 4]).await;
            assert!(matches!(res, Ok(0) | Err(_)), "{res:?}");
        }
    });
}

#[test]
fn large_transfer_both_ways_at_once() {
    run(|| async {
        let name = pipe_name("large");
        let server = ServerOptions::new()
            .in_buffer_size(4096)
            .out_buffer_size(4096)
            .create(&name)
            .unwrap();
        let client = ClientOptions::new().open(&name).unwrap();
        server.connect().await.unwrap();
        let to_client = pattern(1 << 20, 1);
        let to_server = pattern(1 << 20, 2);
        let (expect_c, expect_s) = (to_client.clone(), to_server.clone());
        let server_side = veloq::spawn(async move {
            let writer = async {
                let (res, _) = server.write_all(to_client).await;
                res.unwrap();
            };
            let reader = async {
                let (res, buf) = server.read_exact(vec![0u8; 1 << 20]).await;
                res.unwrap();
                buf
            };
            let ((), got) = futures_util::future::join(writer, reader).await;
            assert!(got == expect_s, "server got wrong bytes");
        });
        let writer = async {
            let (res, _) = client.write_all(to_server).await;
            res.unwrap();
        };
        let reader = async {
            let (res, buf) = client.read_exact(vec![0u8; 1 << 20]).await;
            res.unwrap();
            buf
        };
        let ((), got) = futures_util::future::join(writer, reader).await;
        assert!(got == expect_c, "client got wrong bytes");
        server_side.await.unwrap();
    });
}

/// Copies everything `r` yields to `w` through the crate's traits.
async fn pump(mut r: impl AsyncRead, mut w: impl AsyncWrite) -> usize {
    let mut total = 0;
    let mut buf = Vec::with_capacity(512);
    loop {
        buf.clear();
        let (res, b) = r.read(buf).await;
        buf = b;
        let n = res.unwrap();
        if n == 0 {
            return total;
        }
        total += n;
        let (res, b) = w.write_all(buf).await;
        buf = b;
        res.unwrap();
    }
}

#[test]
fn traits_are_implemented() {
    run(|| async {
        let a = pipe_name("traits-a");
        let b = pipe_name("traits-b");
        let server_a = ServerOptions::new().create(&a).unwrap();
        let client_a = ClientOptions::new().open(&a).unwrap();
        let server_b = ServerOptions::new().create(&b).unwrap();
        let mut client_b = ClientOptions::new().open(&b).unwrap();
        server_a.connect().await.unwrap();
        server_b.connect().await.unwrap();
        // client_a → server_a ─pump→ server_b → client_b
        let data = pattern(10_000, 3);
        let pumping = veloq::spawn(async move { pump(&server_a, &server_b).await });
        let mut writer = client_a;
        let (res, _) = writer.write_all(data.clone()).await;
        res.unwrap();
        AsyncWrite::flush(&mut writer).await.unwrap();
        AsyncWrite::shutdown(&mut writer).await.unwrap();
        drop(writer);
        let (res, got) = client_b.read_exact(vec![0u8; 10_000]).await;
        res.unwrap();
        assert!(got == data);
        assert_eq!(pumping.await.unwrap(), 10_000);
        let (res, _) = AsyncReadExt::read_exact(&mut client_b, vec![0u8; 1]).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    });
}

#[test]
fn dropped_read_then_dropped_handle_is_fine() {
    run(|| async {
        let name = pipe_name("cancel");
        let server = ServerOptions::new().create(&name).unwrap();
        let client = ClientOptions::new().open(&name).unwrap();
        server.connect().await.unwrap();
        {
            let mut read = pin!(server.read(vec![0u8; 64]));
            assert!(poll_once(read.as_mut()).await.is_pending());
            veloq::time::sleep(Duration::from_millis(5)).await;
            // Dropped here, in flight: the op is cancelled.
        }
        // The handle goes while the cancelled op may still be in the
        // kernel; the op's keep holds it open until its packet comes.
        drop(server);
        // The client sees the server gone, and nothing crashed.
        let (res, _) = client.read(vec![0u8; 16]).await;
        assert_eq!(res.unwrap(), 0);

        // The same for a connect waiting for a client.
        let server = ServerOptions::new().create(&name).unwrap();
        {
            let mut connect = pin!(server.connect());
            assert!(poll_once(connect.as_mut()).await.is_pending());
            veloq::time::sleep(Duration::from_millis(5)).await;
        }
        drop(server);
        // The instance stays open (and, cancelled connect or not,
        // listening: an instance takes clients from its creation on)
        // until the cancelled op's packet is processed; let that happen,
        // so the next client cannot land on it.
        veloq::time::sleep(Duration::from_millis(20)).await;
        // And a read dropped mid-flight on a live pipe: the pipe still
        // works for the next read (bytes the cancelled read took, if
        // any, are lost; none were sent while it was in flight).
        let server = ServerOptions::new().create(&name).unwrap();
        let client = ClientOptions::new().open(&name).unwrap();
        server.connect().await.unwrap();
        {
            let mut read = pin!(client.read(vec![0u8; 64]));
            assert!(poll_once(read.as_mut()).await.is_pending());
        }
        veloq::time::sleep(Duration::from_millis(5)).await;
        let (res, _) = server.write_all(b"after".to_vec()).await;
        res.unwrap();
        let (res, buf) = client.read_exact(vec![0u8; 5]).await;
        res.unwrap();
        assert_eq!(buf, b"after");
        // Let the runtime process any packets left before it goes.
        veloq::time::sleep(Duration::from_millis(20)).await;
    });
}

#[test]
fn bytes_of_a_cancelled_read_go_to_the_next_read() {
    run(|| async {
        for mode in [PipeMode::Byte, PipeMode::Message] {
            let name = pipe_name(&format!("stash-{mode:?}"));
            let server = ServerOptions::new().pipe_mode(mode).create(&name).unwrap();
            let client = ClientOptions::new().pipe_mode(mode).open(&name).unwrap();
            server.connect().await.unwrap();
            let long = pattern(100, 9);
            {
                // A read in the kernel, then a message it takes (the
                // write completes at once), then the read dropped before
                // its completion was seen: its bytes must not be lost.
                let mut read = pin!(client.read(vec![0u8; 40]));
                assert!(poll_once(read.as_mut()).await.is_pending());
                let (res, _) = server.write(long.clone()).await;
                assert_eq!(res.unwrap(), 100);
            }
            let (res, _) = server.write(b"next".to_vec()).await;
            res.unwrap();
            let (res, first) = client.read(Vec::with_capacity(100)).await;
            let n = res.unwrap();
            let mut got = first;
            if mode == PipeMode::Message {
                // The cancelled read's 40 bytes, then the message's rest.
                assert_eq!(n, 40, "{mode:?}");
                let (res, rest) = client.read(Vec::with_capacity(100)).await;
                assert_eq!(res.unwrap(), 60);
                got.extend_from_slice(&rest);
            } else {
                let (res, rest) = client.read_exact(vec![0u8; 100 - n]).await;
                res.unwrap();
                got.extend_from_slice(&rest);
            }
            assert!(got == long, "{mode:?}: bytes lost or out of order");
            let (res, tail) = client.read_exact(vec![0u8; 4]).await;
            res.unwrap();
            assert_eq!(tail, b"next");
        }
    });
}
