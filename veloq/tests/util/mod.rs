//! Helpers shared by the integration tests: loopback connection pairs, an
//! echo server, unique temp paths, deterministic byte patterns and a buffer
//! type that counts its drops.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use veloq::buf::{IoBuf, IoBufMut};
use veloq::net::{TcpListener, TcpStream};

/// A connected loopback pair: (client, server side).
pub async fn tcp_pair() -> (TcpStream, TcpStream) {
    tcp_pair_at("127.0.0.1:0").await
}

/// A connected pair through a listener bound to `bind`.
pub async fn tcp_pair_at(bind: &str) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(bind).expect("bind");
    let addr = listener.local_addr().unwrap();
    let accept = veloq::spawn(async move { listener.accept().await.map(|(s, _)| s) });
    let client = TcpStream::connect(addr).await.expect("connect");
    let server = accept.await.expect("accept task").expect("accept");
    (client, server)
}

/// Serves `listener` forever: each connection echoes what it reads until
/// the peer closes. Allocation-free per message once a connection runs.
pub fn spawn_echo_server(listener: TcpListener) -> veloq::JoinHandle<()> {
    veloq::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => panic!("accept failed: {e}"),
            };
            veloq::spawn(echo(stream));
        }
    })
}

/// Echoes everything `stream` reads back to it until end of stream.
pub async fn echo(stream: TcpStream) {
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}

/// `len` bytes of a pattern that differs per `seed` and does not repeat
/// with any short period.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Whether the IPv6 loopback address can be bound here.
pub fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// A unique path under the system temp dir, removed (file or directory)
/// when dropped.
pub struct TempPath(pub PathBuf);

impl TempPath {
    /// A fresh path whose name contains `tag`; nothing is created.
    pub fn new(tag: &str) -> TempPath {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "veloq-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        TempPath(std::env::temp_dir().join(name))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A heap buffer that counts how often it is dropped, to prove the driver
/// frees a cancelled op's buffer exactly once.
pub struct CountedBuf {
    data: Vec<u8>,
    drops: Arc<AtomicUsize>,
}

impl CountedBuf {
    /// An empty buffer of `capacity` bytes that bumps `drops` when dropped.
    pub fn new(capacity: usize, drops: &Arc<AtomicUsize>) -> CountedBuf {
        CountedBuf {
            data: Vec::with_capacity(capacity),
            drops: drops.clone(),
        }
    }

    /// The initialised bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for CountedBuf {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: delegates to `Vec<u8>`, whose heap memory does not move when the
// `CountedBuf` moves.
unsafe impl IoBuf for CountedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.data.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.data.bytes_total()
    }
}

// SAFETY: delegates to `Vec<u8>`.
unsafe impl IoBufMut for CountedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded from our caller's guarantee.
        unsafe { self.data.set_init(pos) }
    }
}

/// Runs `f` on a fresh thread and panics if it does not return within
/// `secs` seconds, so a hang fails the test instead of stalling the run.
pub fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(v) => {
            handle.join().unwrap();
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // `f` panicked: re-raise its panic here.
            match handle.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => unreachable!(),
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {secs}s"),
    }
}
