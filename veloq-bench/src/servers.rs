//! The echo servers, one per runtime, each written the way that runtime's
//! documentation shows: a single-threaded runtime, an accept loop, one
//! task per connection that reads up to 4 KiB and writes back what it
//! read. TCP_NODELAY on every accepted socket.
//!
//! Each `serve_*` blocks until its [`Control`] says stop (the Linux leg's
//! server processes are killed instead and never say it); `ready` gets the
//! bound address once the listener is up. monoio is Linux-only, and so are
//! the two reference servers with no runtime (`raw-uring`, `raw-epoll`,
//! in `raw_uring.rs` and `raw_epoll.rs`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

/// Read buffer size of every server.
const BUF: usize = 4096;

const ADDR: &str = "127.0.0.1:0";

/// How an in-process server (the Wine leg) is stopped and observed. The
/// Linux leg's server processes are killed instead and pass the default.
#[derive(Clone, Default)]
pub struct Control {
    /// Once set, the next accepted connection ends the accept loop and the
    /// server returns: set it, then connect once to the listener.
    pub stop: Arc<AtomicBool>,
    /// veloq only: the driver counters between these two instants are sent
    /// here (read on the server thread by a task that sleeps until each).
    pub veloq_window: Option<(Instant, Instant, Sender<DriverWindow>)>,
}

impl Control {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// veloq's driver counters over a measured window (differences of two
/// `veloq::runtime::driver_stats()` readings).
// Only the Wine leg (and tests) read it; the Linux leg never asks for it.
#[cfg_attr(all(target_os = "linux", not(test)), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverWindow {
    /// Completion packets dequeued.
    pub completions: u64,
    /// Calls that waited on the kernel (`GetQueuedCompletionStatusEx` on
    /// Windows, `io_uring_enter` with a wait on Linux).
    pub wait_calls: u64,
}

/// Serves echo with `runtime` on the calling thread, forever.
#[cfg(target_os = "linux")]
pub fn serve(runtime: &str, ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    serve_until(runtime, ready, Control::default())
}

/// Serves echo with `runtime` on the calling thread until `ctl` says stop.
pub fn serve_until(
    runtime: &str,
    ready: impl FnOnce(SocketAddr),
    ctl: Control,
) -> Result<(), String> {
    match runtime {
        "veloq" => serve_veloq(ready, ctl, false),
        // veloq echoing through a receive stream over a `BufRing`.
        "veloq-ring" => serve_veloq(ready, ctl, true),
        "tokio" => serve_tokio(ready, ctl),
        #[cfg(target_os = "linux")]
        "monoio" => serve_monoio(ready, ctl),
        "compio" => serve_compio(ready, ctl),
        // The no-runtime reference loops (Linux-only, never told to stop:
        // the Linux leg kills its server processes).
        #[cfg(target_os = "linux")]
        "raw-uring" => return crate::raw_uring::serve(ready),
        #[cfg(target_os = "linux")]
        "raw-epoll" => return crate::raw_epoll::serve(ready),
        other => return Err(format!("no echo server for {other:?}")),
    }
    Ok(())
}

fn serve_veloq(ready: impl FnOnce(SocketAddr), ctl: Control, ring: bool) {
    use veloq::net::TcpListener;
    veloq::block_on(async {
        let listener = TcpListener::bind(ADDR).expect("bind");
        // One ring shared by every connection (1 KiB requests: one chunk each).
        let ring = ring.then(|| veloq::buf::BufRing::new(1024, BUF).expect("BufRing"));
        ready(listener.local_addr().expect("local_addr"));
        if let Some((start, end, tx)) = ctl.veloq_window.clone() {
            veloq::spawn(async move {
                veloq::time::sleep_until(start).await;
                let a = veloq::runtime::driver_stats();
                veloq::time::sleep_until(end).await;
                let b = veloq::runtime::driver_stats();
                let _ = tx.send(DriverWindow {
                    completions: b.completions - a.completions,
                    wait_calls: b.wait_calls - a.wait_calls,
                });
            });
        }
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            if ctl.stopping() {
                return;
            }
            let _ = stream.set_nodelay(true);
            match &ring {
                Some(ring) => veloq::spawn(veloq_ring_echo(stream, ring.clone())),
                None => veloq::spawn(veloq_echo(stream)),
            };
        }
    })
}

/// veloq's echo of one connection through a receive stream: each received
/// chunk (a pooled buffer) is written back as it is, until the peer closes
/// or an error.
async fn veloq_ring_echo(stream: veloq::net::TcpStream, ring: veloq::buf::BufRing) {
    let mut chunks = stream.recv_stream(&ring);
    while let Some(Ok(chunk)) = chunks.next().await {
        let (res, _) = stream.write_all(chunk).await;
        if res.is_err() {
            return;
        }
    }
}

/// veloq's echo of one connection: read up to `BUF` bytes, write them back,
/// until the peer closes or an error.
pub(crate) async fn veloq_echo(stream: veloq::net::TcpStream) {
    let mut buf = Vec::with_capacity(BUF);
    loop {
        buf.clear();
        let (res, b) = stream.read(buf).await;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
        let (res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}

fn serve_tokio(ready: impl FnOnce(SocketAddr), ctl: Control) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(ADDR).await.expect("bind");
        ready(listener.local_addr().expect("local_addr"));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            if ctl.stopping() {
                return;
            }
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; BUF];
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(n) if n > 0 => n,
                        _ => return,
                    };
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

#[cfg(target_os = "linux")]
fn serve_monoio(ready: impl FnOnce(SocketAddr), ctl: Control) {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .build()
        .expect("monoio runtime (io_uring)");
    rt.block_on(async {
        let listener = monoio::net::TcpListener::bind(ADDR).expect("bind");
        ready(listener.local_addr().expect("local_addr"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            if ctl.stopping() {
                return;
            }
            let _ = stream.set_nodelay(true);
            monoio::spawn(monoio_echo(stream));
        }
    })
}

/// monoio's echo of one connection (the same loop as [`veloq_echo`]).
#[cfg(target_os = "linux")]
pub(crate) async fn monoio_echo(mut stream: monoio::net::TcpStream) {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut buf = Vec::with_capacity(BUF);
    loop {
        buf.clear();
        let (res, b) = stream.read(buf).await;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
        let (res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}

fn serve_compio(ready: impl FnOnce(SocketAddr), ctl: Control) {
    use compio::io::{AsyncRead, AsyncWriteExt};
    let rt = compio::runtime::Runtime::new().expect("compio runtime");
    rt.block_on(async {
        let listener = compio::net::TcpListener::bind(ADDR).await.expect("bind");
        ready(listener.local_addr().expect("local_addr"));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            if ctl.stopping() {
                return;
            }
            let _ = stream.set_nodelay(true);
            compio::runtime::spawn(async move {
                let mut buf = Vec::with_capacity(BUF);
                loop {
                    buf.clear();
                    let compio::BufResult(res, b) = stream.read(buf).await;
                    buf = b;
                    if !matches!(res, Ok(n) if n > 0) {
                        return;
                    }
                    let compio::BufResult(res, b) = stream.write_all(buf).await;
                    buf = b;
                    if res.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
    })
}
