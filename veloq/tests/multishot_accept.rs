//! Listener accepts on every driver; on io_uring one multishot accept stays
//! armed per listener (issue 13, item 3). The accept API is the same on
//! every driver: these tests check what it promises (every connection
//! accepted once with the right peer address, cancel safety, errors
//! reported and recovered from, nothing leaked on drop) and, on Linux,
//! which path ran, through what each path leaves in the process: the
//! multishot accept takes queued connections into descriptors of its own,
//! single-shot accepts leave them in the kernel's backlog.

mod util;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use util::{poll_once, within};
use veloq::net::{TcpListener, TcpStream};
use veloq::runtime::DriverKind;
use veloq::time::sleep;

/// The tests count descriptors and change limits: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn every_connection_is_accepted_once_with_its_peer_address() {
    let _g = serial();
    within(30, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let clients = veloq::spawn(async move {
                let mut out = Vec::new();
                for i in 0..200u32 {
                    let c = TcpStream::connect(addr).await.unwrap();
                    let (res, _) = c.write_all(i.to_le_bytes().to_vec()).await;
                    res.unwrap();
                    out.push(c);
                }
                out
            });
            let mut seen = [false; 200];
            let mut peers = Vec::new();
            for _ in 0..200 {
                let (s, peer) = listener.accept().await.unwrap();
                assert_eq!(s.peer_addr().unwrap(), peer);
                let (res, buf) = s.read_exact(vec![0u8; 4]).await;
                res.unwrap();
                let i = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                assert!(!seen[i], "connection {i} accepted twice");
                seen[i] = true;
                peers.push((i, peer));
            }
            let clients = clients.await.unwrap();
            for (i, peer) in peers {
                assert_eq!(clients[i].local_addr().unwrap(), peer, "peer of {i}");
            }
            if veloq::runtime::driver_kind() == DriverKind::IoUring {
                // The armed multishot accept is the one op left in flight.
                assert_eq!(veloq::runtime::driver_stats().in_flight, 1);
            }
        })
    });
}

#[test]
fn a_dropped_accept_loses_no_connection() {
    let _g = serial();
    within(30, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            for round in 0..20 {
                // Pending (no client yet), then dropped.
                {
                    let mut fut = Box::pin(listener.accept());
                    assert!(poll_once(fut.as_mut()).await.is_pending());
                    sleep(Duration::from_millis(2)).await;
                }
                let client = TcpStream::connect(addr).await.unwrap();
                // The connection arrives while no accept is waiting; a
                // future made now and dropped before it is polled takes
                // nothing either.
                sleep(Duration::from_millis(5)).await;
                drop(listener.accept());
                let (s, peer) = listener.accept().await.unwrap();
                assert_eq!(peer, client.local_addr().unwrap(), "round {round}");
                assert_eq!(s.peer_addr().unwrap(), peer);
            }
        })
    });
}

#[test]
fn queued_connections_are_served_in_arrival_order() {
    let _g = serial();
    within(30, || {
        veloq::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut clients = Vec::new();
            for _ in 0..10 {
                clients.push(TcpStream::connect(addr).await.unwrap());
            }
            sleep(Duration::from_millis(10)).await;
            for c in &clients {
                let (_, peer) = listener.accept().await.unwrap();
                assert_eq!(peer, c.local_addr().unwrap());
            }
        })
    });
}

#[test]
fn ipv6_listeners_accept_too() {
    let _g = serial();
    within(30, || {
        veloq::block_on(async {
            if let Ok(listener) = TcpListener::bind("[::1]:0") {
                let addr: SocketAddr = listener.local_addr().unwrap();
                let client = TcpStream::connect(addr).await.unwrap();
                let (_, peer) = listener.accept().await.unwrap();
                assert_eq!(peer, client.local_addr().unwrap());
            }
        })
    });
}

/// Descriptor counts and limits: Linux (the accept paths differ there).
#[cfg(target_os = "linux")]
mod linux {
    use super::*;

    use veloq::net::{UnixListener, UnixStream};

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    /// Linux: the listener sets `SO_REUSEADDR` (Windows refuses to bind a
    /// port its accepted connections still use).
    #[test]
    fn a_dropped_listener_frees_its_address_at_once() {
        let _g = serial();
        within(30, || {
            veloq::block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                for _ in 0..3 {
                    let client = TcpStream::connect(addr).await.unwrap();
                    let (_, peer) = listener.accept().await.unwrap();
                    assert_eq!(peer, client.local_addr().unwrap());
                }
                // An accept is armed (io_uring) or pending (every driver).
                let mut fut = Box::pin(listener.accept());
                assert!(poll_once(fut.as_mut()).await.is_pending());
                drop(fut);
                drop(listener);
                let again = TcpListener::bind(addr).expect("the address is free again");
                let client = TcpStream::connect(addr).await.unwrap();
                let (_, peer) = again.accept().await.unwrap();
                assert_eq!(peer, client.local_addr().unwrap());
            })
        });
    }

    #[test]
    fn queued_and_late_connections_are_closed_with_the_listener() {
        let _g = serial();
        within(30, || {
            veloq::block_on(async {
                let uring = veloq::runtime::driver_kind() == DriverKind::IoUring;
                let base = open_fds();
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let first = std::net::TcpStream::connect(addr).unwrap();
                let (taken, _) = listener.accept().await.unwrap();
                let mut clients = vec![first];
                for _ in 0..5 {
                    clients.push(std::net::TcpStream::connect(addr).unwrap());
                }
                sleep(Duration::from_millis(30)).await;
                // listener + 6 clients + the stream taken, and on io_uring
                // the 5 connections the armed accept already took.
                let queued = if uring { 5 } else { 0 };
                assert_eq!(open_fds(), base + 1 + 6 + 1 + queued);
                drop(taken);
                drop(listener);
                // Connections arriving while the cancel is on its way.
                // (Refused once the listening socket is closed.)
                for _ in 0..3 {
                    if let Ok(c) = std::net::TcpStream::connect(addr) {
                        clients.push(c);
                    }
                }
                sleep(Duration::from_millis(30)).await;
                drop(clients);
                sleep(Duration::from_millis(30)).await;
                assert_eq!(open_fds(), base, "every descriptor closed");
                assert_eq!(veloq::runtime::driver_stats().in_flight, 0);
            })
        });
    }

    #[test]
    fn an_accept_error_is_reported_then_accepting_resumes() {
        let _g = serial();
        within(30, || {
            veloq::block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                // The accept is armed under the tight limit (io_uring takes
                // the limit when it prepares the accept).
                // The client socket exists before the limit tightens.
                let c1 = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .unwrap();
                // No descriptor number free below the limit: EMFILE.
                let mut old = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                // SAFETY: plain libc calls on valid pointers.
                let lowest = unsafe {
                    assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
                    let fd = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 0);
                    assert!(fd >= 0);
                    libc::close(fd);
                    fd
                };
                let tight = libc::rlimit {
                    rlim_cur: lowest as libc::rlim_t,
                    rlim_max: old.rlim_max,
                };
                // SAFETY: as above.
                assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &tight) }, 0);
                c1.connect(&addr.into()).unwrap();
                let res = veloq::time::timeout(Duration::from_secs(5), listener.accept()).await;
                // SAFETY: as above.
                assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
                let err = res.expect("the error is reported").unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
                // The connection stayed in the backlog; accepting resumes.
                let (s1, peer) = listener.accept().await.unwrap();
                assert_eq!(Some(peer), c1.local_addr().unwrap().as_socket());
                drop(s1);
            })
        });
    }

    #[test]
    fn unix_listeners_accept_and_drop_cleanly() {
        let _g = serial();
        within(30, || {
            veloq::block_on(async {
                let dir = std::env::temp_dir().join(format!("veloq-macc-{}", std::process::id()));
                let _ = std::fs::remove_file(&dir);
                let base = open_fds();
                let listener = UnixListener::bind(&dir).unwrap();
                let mut clients = Vec::new();
                for i in 0..5u8 {
                    let c = UnixStream::connect(&dir).await.unwrap();
                    let (res, _) = c.write_all(vec![i]).await;
                    res.unwrap();
                    clients.push(c);
                }
                for i in 0..5u8 {
                    let (s, _) = listener.accept().await.unwrap();
                    let (res, buf) = s.read_exact(vec![0u8; 1]).await;
                    res.unwrap();
                    assert_eq!(buf[0], i);
                }
                clients.push(UnixStream::connect(&dir).await.unwrap());
                sleep(Duration::from_millis(20)).await;
                drop(listener);
                drop(clients);
                sleep(Duration::from_millis(20)).await;
                assert_eq!(open_fds(), base);
                let _ = std::fs::remove_file(&dir);
            })
        });
    }
}
