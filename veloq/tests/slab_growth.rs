//! Hundreds of ops in flight at once — more than one page of the driver's
//! op slab and more than the default submission queue — all complete with
//! the right data.

mod util;

use std::cell::Cell;
use std::rc::Rc;

use util::{tcp_pair, within};
use veloq::net::UdpSocket;

const IN_FLIGHT: usize = 300;

#[test]
fn three_hundred_tcp_reads_in_flight() {
    within(60, || {
        veloq::block_on(async {
            let mut servers = Vec::new();
            let submitted = Rc::new(Cell::new(0usize));
            let mut readers = Vec::new();
            for i in 0..IN_FLIGHT {
                let (client, server) = tcp_pair().await;
                servers.push(server);
                let submitted = submitted.clone();
                readers.push(veloq::spawn(async move {
                    submitted.set(submitted.get() + 1);
                    // Nothing has been written yet: this read stays in
                    // flight until the loop below writes.
                    let (res, buf) = client.read_exact(vec![0u8; 8]).await;
                    res.unwrap();
                    assert_eq!(u64::from_le_bytes(buf.try_into().unwrap()), i as u64 * 7919);
                    i
                }));
            }
            // Let every reader run up to its read (bounded).
            for _ in 0..100 {
                if submitted.get() == IN_FLIGHT {
                    break;
                }
                veloq::yield_now().await;
            }
            assert_eq!(submitted.get(), IN_FLIGHT, "all readers started");
            for (i, s) in servers.iter().enumerate() {
                let (res, _) = s.write_all((i as u64 * 7919).to_le_bytes().to_vec()).await;
                res.unwrap();
            }
            for (i, r) in readers.into_iter().enumerate() {
                assert_eq!(r.await.expect("reader task"), i);
            }
        })
    });
}

#[test]
fn three_hundred_udp_receives_in_flight() {
    within(60, || {
        veloq::block_on(async {
            let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
            let submitted = Rc::new(Cell::new(0usize));
            let mut addrs = Vec::new();
            let mut receivers = Vec::new();
            for i in 0..IN_FLIGHT {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                addrs.push(sock.local_addr().unwrap());
                let submitted = submitted.clone();
                receivers.push(veloq::spawn(async move {
                    submitted.set(submitted.get() + 1);
                    let (res, buf) = sock.recv_from(vec![0u8; 64]).await;
                    let (n, _) = res.unwrap();
                    assert_eq!(&buf[..n], format!("datagram {i}").as_bytes());
                }));
            }
            for _ in 0..100 {
                if submitted.get() == IN_FLIGHT {
                    break;
                }
                veloq::yield_now().await;
            }
            assert_eq!(submitted.get(), IN_FLIGHT, "all receivers started");
            for (i, a) in addrs.iter().enumerate() {
                let (res, _) = sender
                    .send_to(format!("datagram {i}").into_bytes(), *a)
                    .await;
                res.unwrap();
            }
            for r in receivers {
                r.await.expect("receiver task");
            }
        })
    });
}
