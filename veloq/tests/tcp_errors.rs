//! TCP error paths: refused connections, peer close, early end of stream
//! and unparsable addresses.

mod util;

use std::io::ErrorKind;

use util::{tcp_pair, within};
use veloq::net::{TcpListener, TcpStream, UdpSocket};

#[test]
fn connect_to_closed_port_is_refused() {
    within(30, || {
        veloq::block_on(async {
            // A port that was free a moment ago and has no listener now.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        })
    });
}

#[test]
fn read_after_peer_close_returns_zero() {
    within(30, || {
        veloq::block_on(async {
            let (client, server) = tcp_pair().await;
            let (res, _) = server.write_all(b"last".to_vec()).await;
            res.unwrap();
            drop(server);
            let (res, buf) = client.read_exact(vec![0u8; 4]).await;
            res.unwrap();
            assert_eq!(&buf, b"last");
            for _ in 0..2 {
                let (res, _) = client.read(vec![0u8; 64]).await;
                assert_eq!(res.unwrap(), 0, "end of stream reads as 0, repeatably");
            }
        })
    });
}

#[test]
fn read_exact_at_eof_is_unexpected_eof() {
    within(30, || {
        veloq::block_on(async {
            let (client, server) = tcp_pair().await;
            let (res, _) = server.write_all(b"abc".to_vec()).await;
            res.unwrap();
            server.shutdown(std::net::Shutdown::Write).unwrap();
            let (res, buf) = client.read_exact(Vec::with_capacity(10)).await;
            assert_eq!(res.unwrap_err().kind(), ErrorKind::UnexpectedEof);
            assert_eq!(buf, b"abc", "the bytes that did arrive are kept");
        })
    });
}

#[test]
fn write_after_shutdown_fails() {
    within(30, || {
        veloq::block_on(async {
            let (client, _server) = tcp_pair().await;
            client.shutdown(std::net::Shutdown::Write).unwrap();
            let (res, _) = client.write(b"x".to_vec()).await;
            assert!(res.is_err(), "write after shutdown(Write) succeeded");
        })
    });
}

#[test]
fn unparsable_addresses_are_invalid_input() {
    within(30, || {
        veloq::block_on(async {
            // Rejected by the parser, and (the last) by the resolver.
            let bad = [
                "garbage",
                "",
                "127.0.0.1",
                "127.0.0.1:port",
                "127.0.0.1:70000",
                "no such host!:80",
            ];
            for a in bad {
                let err = TcpStream::connect(a).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "connect {a:?}: {err}");
                let err = TcpListener::bind(a).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "bind {a:?}: {err}");
                let err = UdpSocket::bind(a).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "udp bind {a:?}: {err}");
            }
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let (res, buf) = sock.send_to(b"x".to_vec(), "garbage").await;
            assert_eq!(res.unwrap_err().kind(), ErrorKind::InvalidInput);
            assert_eq!(buf, b"x", "the buffer comes back on an address error");
            let err = sock.connect("garbage").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
        })
    });
}

#[test]
fn bind_in_use_port_fails() {
    within(30, || {
        veloq::block_on(async {
            let first = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = first.local_addr().unwrap();
            let err = TcpListener::bind(addr).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        })
    });
}

#[test]
fn nodelay_round_trips_and_debug_names_addresses() {
    within(30, || {
        veloq::block_on(async {
            let (client, _server) = tcp_pair().await;
            client.set_nodelay(true).unwrap();
            assert!(client.nodelay().unwrap());
            client.set_nodelay(false).unwrap();
            assert!(!client.nodelay().unwrap());
            let dbg = format!("{client:?}");
            let peer = client.peer_addr().unwrap().to_string();
            assert!(dbg.starts_with("TcpStream") && dbg.contains(&peer), "{dbg}");
        })
    });
}
