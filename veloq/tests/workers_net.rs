//! Sockets and workers: per-worker listeners on one port (`SO_REUSEPORT`,
//! Linux) and handing accepted connections from one worker to another
//! (every platform).

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;

use util::{echo, within};
use veloq::net::{TcpListener, TcpStream};
use veloq::sync::mpsc;
use veloq::Runtime;

fn runtime() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

/// One blocking round trip through an echo server: returns the server's
/// reply (the worker id it appends).
fn round_trip(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(msg).unwrap();
    let mut buf = vec![0u8; msg.len() + 1];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Echoes one message and appends the worker id.
async fn echo_once_with_id(stream: TcpStream, len: usize) {
    let (res, mut buf) = stream.read_exact(vec![0u8; len]).await;
    res.unwrap();
    buf.push(veloq::worker_id() as u8);
    let (res, _) = stream.write_all(buf).await;
    res.unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn reuseport_listeners_share_connections_across_workers() {
    use std::collections::HashSet;
    within(120, || {
        let rt = runtime();
        rt.block_on(async {
            let first = TcpListener::bind_reuseport("127.0.0.1:0").unwrap();
            let addr = first.local_addr().unwrap();
            let (ready_tx, mut ready_rx) = mpsc::unbounded();
            let serve = |listener: TcpListener| async move {
                loop {
                    let (s, _) = listener.accept().await.unwrap();
                    veloq::spawn(echo_once_with_id(s, 4));
                }
            };
            veloq::spawn(serve(first));
            veloq::spawn_on(1, move || async move {
                let l = TcpListener::bind_reuseport(addr).unwrap();
                ready_tx.send(()).await.unwrap();
                serve(l).await
            });
            ready_rx.recv().await.unwrap();
            // Blocking clients on a plain thread, 64 connections.
            let workers = std::thread::spawn(move || {
                (0..64)
                    .map(|i| {
                        let reply = round_trip(addr, &[i; 4]);
                        assert_eq!(&reply[..4], &[i; 4]);
                        reply[4]
                    })
                    .collect::<Vec<u8>>()
            });
            let ids = loop {
                if workers.is_finished() {
                    break workers.join().unwrap();
                }
                veloq::time::sleep(std::time::Duration::from_millis(5)).await;
            };
            let seen: HashSet<u8> = ids.iter().copied().collect();
            // The kernel hashes each connection to one listener: with 64
            // connections both get some (all on one: probability 2^-63).
            assert_eq!(seen, HashSet::from([0, 1]), "served by {ids:?}");
        });
    });
}

#[cfg(windows)]
#[test]
fn reuseport_is_unsupported_on_windows() {
    veloq::block_on(async {
        let err = TcpListener::bind_reuseport("127.0.0.1:0").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    });
}

#[test]
fn accepted_connections_are_handed_to_another_worker() {
    within(120, || {
        let rt = runtime();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // Worker 0 accepts; worker 1 serves.
            veloq::spawn(async move {
                loop {
                    let (s, peer) = listener.accept_std().await.unwrap();
                    assert_eq!(s.peer_addr().unwrap(), peer);
                    veloq::spawn_on(1, move || async move {
                        let stream = TcpStream::from_std(s).unwrap();
                        assert_eq!(stream.peer_addr().unwrap(), peer);
                        echo_once_with_id(stream, 8).await
                    });
                }
            });
            let clients = std::thread::spawn(move || {
                (0..16u8)
                    .map(|i| round_trip(addr, &[i; 8]))
                    .collect::<Vec<_>>()
            });
            let replies = loop {
                if clients.is_finished() {
                    break clients.join().unwrap();
                }
                veloq::time::sleep(std::time::Duration::from_millis(5)).await;
            };
            for (i, r) in replies.iter().enumerate() {
                assert_eq!(&r[..8], &[i as u8; 8]);
                assert_eq!(r[8], 1, "served on worker {}", r[8]);
            }
        });
    });
}

#[test]
fn handed_off_stream_runs_full_duplex_on_its_new_worker() {
    within(120, || {
        let rt = runtime();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, mut rx) = mpsc::channel::<std::net::TcpStream>(4);
            // Worker 1 adopts what arrives on the channel and echoes it.
            let server = veloq::spawn_on(1, move || async move {
                let mut served = 0;
                while let Some(s) = rx.recv().await {
                    veloq::spawn(echo(TcpStream::from_std(s).unwrap()));
                    served += 1;
                }
                served
            });
            for round in 0..4u64 {
                let connect = veloq::spawn(TcpStream::connect(addr));
                let (s, _) = listener.accept_std().await.unwrap();
                tx.send(s).await.unwrap();
                let client = connect.await.unwrap().unwrap();
                let data = util::pattern(256 * 1024, round);
                let (res, _) = client.write_all(data.clone()).await;
                res.unwrap();
                let (res, back) = client.read_exact(vec![0u8; data.len()]).await;
                res.unwrap();
                assert!(back == data, "round {round}: echo differs");
            }
            drop(tx);
            assert_eq!(server.await.unwrap(), 4);
        });
    });
}

#[test]
fn stream_into_std_and_back() {
    within(60, || {
        let rt = runtime();
        rt.block_on(async {
            let (client, server) = util::tcp_pair().await;
            // Blocking std I/O on the same socket after leaving the driver:
            // the read starts before any data is there, so it must block
            // (a socket left non-blocking would fail with WouldBlock).
            let mut std_server = server.into_std().unwrap();
            let reader = std::thread::spawn(move || {
                let mut buf = [0u8; 4];
                std_server.read_exact(&mut buf).map(|()| (buf, std_server))
            });
            veloq::time::sleep(std::time::Duration::from_millis(50)).await;
            let (res, _) = client.write_all(b"ping".to_vec()).await;
            res.unwrap();
            let (buf, std_server) = reader
                .join()
                .unwrap()
                .expect("a stream from into_std must block, not fail with WouldBlock");
            assert_eq!(&buf, b"ping");
            // Adopting it on another worker: fine on Linux; on Windows the
            // socket stays tied to worker 0's completion port, so it fails.
            let adopted = veloq::spawn_on(1, move || async move {
                match TcpStream::from_std(std_server) {
                    Ok(s) => {
                        let (res, _) = s.write_all(b"pong".to_vec()).await;
                        res.map(|()| true)
                    }
                    Err(e) => Err(e),
                }
            })
            .await
            .unwrap();
            if cfg!(windows) {
                // CreateIoCompletionPort: ERROR_INVALID_PARAMETER.
                let err = adopted.unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
            } else {
                assert!(adopted.unwrap());
                let (res, buf) = client.read_exact(vec![0u8; 4]).await;
                res.unwrap();
                assert_eq!(buf, b"pong");
            }
        });
    });
}
