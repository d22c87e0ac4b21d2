//! UDP: datagrams with source addresses, connected sockets, IPv6.

mod util;

use std::io::ErrorKind;

use util::{ipv6_available, pattern, within};
use veloq::net::UdpSocket;

async fn exchange_unconnected(bind: &str) {
    let a = UdpSocket::bind(bind).unwrap();
    let b = UdpSocket::bind(bind).unwrap();
    let a_addr = a.local_addr().unwrap();
    let b_addr = b.local_addr().unwrap();
    assert_ne!(a_addr.port(), 0);

    for i in 0..5u64 {
        let msg = pattern(100 + i as usize, i);
        let (res, msg) = a.send_to(msg, b_addr).await;
        assert_eq!(res.unwrap(), msg.len());
        let (res, got) = b.recv_from(vec![0u8; 2048]).await;
        let (n, from) = res.unwrap();
        assert_eq!(from, a_addr, "source address of datagram {i}");
        assert_eq!(&got[..n], &msg[..]);

        // And back, with a buffer of exactly the datagram's size.
        let (res, _) = b.send_to(got[..n].to_vec(), from).await;
        res.unwrap();
        let (res, back) = a.recv_from(Vec::with_capacity(n)).await;
        let (m, from) = res.unwrap();
        assert_eq!((m, from), (n, b_addr));
        assert_eq!(back, msg, "recv_from marks the received bytes initialised");
    }
}

#[test]
fn send_to_recv_from_reports_source() {
    within(30, || veloq::block_on(exchange_unconnected("127.0.0.1:0")));
}

#[test]
fn ipv6_send_to_recv_from() {
    if !ipv6_available() {
        eprintln!("skipping ipv6_send_to_recv_from: [::1] cannot be bound here");
        return;
    }
    within(30, || veloq::block_on(exchange_unconnected("[::1]:0")));
}

#[test]
fn connected_send_recv() {
    within(30, || {
        veloq::block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
            a.connect(b_addr).await.unwrap();
            b.connect(a_addr).await.unwrap();
            assert_eq!(a.peer_addr().unwrap(), b_addr);

            let (res, _) = a.send(b"ping".to_vec()).await;
            assert_eq!(res.unwrap(), 4);
            let (res, got) = b.recv(vec![0u8; 64]).await;
            let n = res.unwrap();
            assert_eq!(&got[..n], b"ping");

            let (res, _) = b.send(b"pong!".to_vec()).await;
            assert_eq!(res.unwrap(), 5);
            let (res, got) = a.recv(vec![0u8; 64]).await;
            let n = res.unwrap();
            assert_eq!(&got[..n], b"pong!");
        })
    });
}

#[test]
fn connected_socket_ignores_other_sources() {
    within(30, || {
        veloq::block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
            a.connect(b.local_addr().unwrap()).await.unwrap();
            let a_addr = a.local_addr().unwrap();
            // Sent first, but from an address `a` is not connected to.
            let (res, _) = stranger.send_to(b"noise".to_vec(), a_addr).await;
            res.unwrap();
            let (res, _) = b.send_to(b"signal".to_vec(), a_addr).await;
            res.unwrap();
            let (res, got) = a.recv(vec![0u8; 64]).await;
            let n = res.unwrap();
            assert_eq!(&got[..n], b"signal");
        })
    });
}

#[test]
fn oversized_datagram_is_truncated_to_buffer() {
    within(30, || {
        veloq::block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let (res, _) = a.send_to(pattern(1000, 7), b.local_addr().unwrap()).await;
            res.unwrap();
            let (res, got) = b.recv_from(vec![0u8; 10]).await;
            // Linux reports the truncated length; Windows reports
            // WSAEMSGSIZE with the buffer filled. Either way the bytes are
            // the datagram's first ten.
            match res {
                Ok((n, _)) => assert_eq!(n, 10),
                Err(e) => assert!(e.raw_os_error().is_some(), "unexpected error {e}"),
            }
            assert_eq!(&got[..], &pattern(1000, 7)[..10]);
        })
    });
}
