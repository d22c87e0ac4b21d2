//! TCP echo: one connection, many concurrent connections, and a large
//! transfer whose content is checked byte for byte.

mod util;

use std::rc::Rc;

use util::{pattern, spawn_echo_server, within};
use veloq::net::{TcpListener, TcpStream};

#[test]
fn one_connection_round_trips() {
    within(30, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            spawn_echo_server(listener);

            let client = TcpStream::connect(addr).await.unwrap();
            assert_eq!(client.peer_addr().unwrap(), addr);
            let mut reply = Vec::with_capacity(5);
            for i in 0..20u8 {
                let msg = vec![b'a' + i; 5];
                let (res, _) = client.write_all(msg.clone()).await;
                res.unwrap();
                reply.clear();
                let (res, r) = client.read_exact(reply).await;
                reply = r;
                res.unwrap();
                assert_eq!(reply, msg, "round trip {i}");
            }
        })
    });
}

#[test]
fn hundred_concurrent_connections() {
    within(60, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            spawn_echo_server(listener);

            let clients: Vec<_> = (0..100u64)
                .map(|id| {
                    veloq::spawn(async move {
                        let stream = TcpStream::connect(addr).await.unwrap();
                        for round in 0..10u64 {
                            let msg = pattern(512 + id as usize, id * 1000 + round);
                            let (res, msg) = stream.write_all(msg).await;
                            res.unwrap();
                            let (res, reply) = stream.read_exact(vec![0u8; msg.len()]).await;
                            res.unwrap();
                            assert!(reply == msg, "connection {id} round {round}: wrong echo");
                        }
                        id
                    })
                })
                .collect();
            let mut done = 0;
            for (i, c) in clients.into_iter().enumerate() {
                assert_eq!(c.await.expect("client task"), i as u64);
                done += 1;
            }
            assert_eq!(done, 100);
        })
    });
}

#[test]
fn sixteen_mib_transfer_content_checked() {
    const LEN: usize = 16 << 20;
    within(120, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            spawn_echo_server(listener);

            let client = Rc::new(TcpStream::connect(addr).await.unwrap());
            let data = pattern(LEN, 16);
            let expected = data.clone();
            // Write and read at once: the echo would otherwise fill both
            // socket buffers and stall.
            let writer = {
                let client = client.clone();
                veloq::spawn(async move {
                    let (res, data) = client.write_all(data).await;
                    res.unwrap();
                    assert_eq!(data.len(), LEN, "write_all hands the buffer back whole");
                    client.shutdown(std::net::Shutdown::Write).unwrap();
                })
            };
            let (res, got) = client.read_exact(Vec::with_capacity(LEN)).await;
            res.unwrap();
            assert_eq!(got.len(), LEN);
            if let Some(at) = got.iter().zip(&expected).position(|(a, b)| a != b) {
                panic!("echoed data differs first at byte {at}");
            }
            writer.await.unwrap();
            // The server closes after our shutdown: end of stream.
            let (res, _) = client.read(vec![0u8; 16]).await;
            assert_eq!(res.unwrap(), 0);
        })
    });
}
