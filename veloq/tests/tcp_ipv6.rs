//! TCP over the IPv6 loopback (skipped, with a message, where `::1` is
//! unavailable).

mod util;

use util::{ipv6_available, spawn_echo_server, within};
use veloq::net::{TcpListener, TcpStream};

#[test]
fn ipv6_echo_and_addresses() {
    if !ipv6_available() {
        eprintln!("skipping ipv6_echo_and_addresses: [::1] cannot be bound here");
        return;
    }
    within(30, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("[::1]:0").unwrap();
            let addr = listener.local_addr().unwrap();
            assert!(addr.is_ipv6(), "{addr}");
            assert_ne!(addr.port(), 0);

            let accept = veloq::spawn(async move {
                let (stream, peer) = listener.accept().await.unwrap();
                assert!(peer.is_ipv6(), "{peer}");
                assert_eq!(stream.peer_addr().unwrap(), peer);
                assert_eq!(stream.local_addr().unwrap(), addr);
                util::echo(stream).await;
                peer
            });
            let client = TcpStream::connect(addr).await.unwrap();
            assert_eq!(client.peer_addr().unwrap(), addr);
            let (res, _) = client.write_all(b"over six".to_vec()).await;
            res.unwrap();
            let (res, got) = client.read_exact(vec![0u8; 8]).await;
            res.unwrap();
            assert_eq!(&got, b"over six");
            let local = client.local_addr().unwrap();
            drop(client);
            assert_eq!(
                accept.await.unwrap(),
                local,
                "accept reports the client's address"
            );
        })
    });
}

#[test]
fn ipv6_many_connections() {
    if !ipv6_available() {
        eprintln!("skipping ipv6_many_connections: [::1] cannot be bound here");
        return;
    }
    within(30, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("[::1]:0").unwrap();
            let addr = listener.local_addr().unwrap();
            spawn_echo_server(listener);
            for i in 0..10u8 {
                let c = TcpStream::connect(addr).await.unwrap();
                let (res, _) = c.write_all(vec![i; 100]).await;
                res.unwrap();
                let (res, got) = c.read_exact(vec![0u8; 100]).await;
                res.unwrap();
                assert_eq!(got, vec![i; 100]);
            }
        })
    });
}
