//! Helpers shared by the integration tests: loopback connection pairs, an
//! echo server, unique temp paths, deterministic byte patterns and a buffer
//! type that counts its drops.
#![allow(dead_code)]

pub mod guarded_buf;
pub mod stream_check;
pub mod torture;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

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

/// Runs `f` in a fresh runtime with a fresh, created directory (removed
/// afterwards), failing if it takes more than 30 s.
pub fn in_dir<F, Fut>(tag: &'static str, f: F)
where
    F: FnOnce(PathBuf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    within(30, move || {
        let dir = TempPath::new(tag);
        std::fs::create_dir(&dir.0).unwrap();
        veloq::block_on(f(dir.0.clone()));
        drop(dir);
    })
}

/// The kind of the error `res` must be.
pub fn kind<T: std::fmt::Debug>(res: std::io::Result<T>) -> std::io::ErrorKind {
    res.expect_err("expected an error").kind()
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

// ---------------------------------------------------------------------------
// Ownership and cancellation helpers (issue 9 tests).

/// Polls `fut` once with the calling task's context and returns the
/// result, without waiting: a way to get an op submitted (and its future
/// kept, pending, to drop later) from inside a runtime.
pub async fn poll_once<F: std::future::Future + ?Sized>(
    mut fut: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Under `rt`: makes a future with `make`, polls it once (it must be
/// pending), lets the driver run a few turns so its op reaches the kernel
/// (or its timer the wheel), and hands it back, still pending, to be
/// dropped or polled elsewhere.
// Handing a pending future out of `block_on` is the point here.
#[allow(clippy::async_yields_async)]
pub fn pending_on<F: std::future::Future>(
    rt: &veloq::Runtime,
    make: impl FnOnce() -> F,
) -> std::pin::Pin<Box<F>> {
    rt.block_on(async {
        let mut fut = Box::pin(make());
        assert!(
            poll_once(fut.as_mut()).await.is_pending(),
            "the future must be pending after its first poll"
        );
        veloq::time::sleep(std::time::Duration::from_millis(5)).await;
        fut
    })
}

impl CountedBuf {
    /// A buffer holding `data` (e.g. for a write) that bumps `drops` when
    /// dropped.
    pub fn with_bytes(data: Vec<u8>, drops: &Arc<AtomicUsize>) -> CountedBuf {
        CountedBuf {
            data,
            drops: drops.clone(),
        }
    }
}

/// Waits (through the runtime's timers, up to `limit`) until `done()`
/// holds; returns whether it did.
pub async fn eventually(mut done: impl FnMut() -> bool, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        veloq::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    true
}

/// A connected loopback pair of blocking `std` streams (client, server),
/// made without a runtime.
pub fn std_tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

/// The byte at `offset` of an endless stream in which every byte depends
/// on its absolute position: a lost, repeated or reordered stretch shows
/// up at its first byte.
pub fn stream_byte(offset: u64) -> u8 {
    (offset.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// A small deterministic xorshift generator (tests need no crate for it).
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A random timeout in 0..=2 ms; a third of them exactly zero (the op is
/// submitted and cancelled in the same poll: the closest race).
pub fn random_limit(rng: &mut Rng) -> Duration {
    if rng.below(3) == 0 {
        Duration::ZERO
    } else {
        Duration::from_micros(rng.below(2001))
    }
}

/// Writes the [`stream_byte`] pattern into `peer` from a thread of its
/// own, in chunks of 1 to `max_chunk` bytes (random, from `Rng::new(seed)`)
/// with a random pause of up to 1.5 ms after about half of them, until
/// `stop` is set or the reader goes away; then closes `peer`. The thread
/// returns how many bytes it wrote.
pub fn spawn_pattern_writer(
    mut peer: std::net::TcpStream,
    seed: u64,
    max_chunk: u64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        use std::io::Write;
        let mut rng = Rng::new(seed);
        let (mut off, mut buf) = (0u64, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            let n = 1 + rng.below(max_chunk) as usize;
            buf.clear();
            buf.extend((off..off + n as u64).map(stream_byte));
            if peer.write_all(&buf).is_err() {
                break;
            }
            off += n as u64;
            if rng.below(2) == 0 {
                std::thread::sleep(Duration::from_micros(rng.below(1500)));
            }
        }
        drop(peer);
        off
    })
}

/// What `guarded` buffers are filled with when dropped.
pub const POISON: u8 = 0xEE;

/// Read buffers cut from a leaked arena, to see whether the kernel writes
/// into a buffer after it was dropped without that write landing in freed
/// heap memory: each [`GuardedBuf`] fills its window with [`POISON`] when
/// dropped, so any other byte found there later was written after the
/// drop. Each window also counts its drops.
pub struct GuardArena {
    /// Start of the leaked arena (never freed).
    base: usize,
    slot_len: usize,
    drops: Arc<Vec<AtomicUsize>>,
}

impl GuardArena {
    /// `slots` zeroed windows of `slot_len` bytes each. The memory is
    /// leaked on purpose: a late kernel write must never hit freed memory.
    pub fn new(slots: usize, slot_len: usize) -> GuardArena {
        let arena: &'static mut [u8] = Box::leak(vec![0u8; slots * slot_len].into_boxed_slice());
        GuardArena {
            base: arena.as_mut_ptr() as usize,
            slot_len,
            drops: Arc::new((0..slots).map(|_| AtomicUsize::new(0)).collect()),
        }
    }

    /// The buffer for window `i` (hand each window out once).
    pub fn buf(&self, i: usize) -> GuardedBuf {
        assert!(i < self.drops.len());
        GuardedBuf {
            ptr: (self.base + i * self.slot_len) as *mut u8,
            len: self.slot_len,
            init: 0,
            index: i,
            drops: self.drops.clone(),
        }
    }

    /// How often window `i`'s buffer was dropped.
    pub fn drops(&self, i: usize) -> usize {
        self.drops[i].load(Ordering::SeqCst)
    }

    /// A copy of window `i`.
    pub fn window(&self, i: usize) -> Vec<u8> {
        let ptr = (self.base + i * self.slot_len) as *const u8;
        (0..self.slot_len)
            // SAFETY: the window lies inside the leaked arena, valid for
            // the whole run; volatile because the kernel may write there.
            .map(|j| unsafe { std::ptr::read_volatile(ptr.add(j)) })
            .collect()
    }

    /// Panics if the kernel wrote into a window after its buffer was
    /// dropped (the window holds something other than [`POISON`]), or if
    /// any buffer was dropped more than once.
    pub fn assert_no_write_after_drop(&self, what: &str) {
        for i in 0..self.drops.len() {
            let drops = self.drops(i);
            assert!(drops <= 1, "{what}: buffer {i} dropped {drops} times");
            if drops == 1 {
                if let Some(at) = self.window(i).iter().position(|&b| b != POISON) {
                    panic!(
                        "{what}: the kernel wrote into buffer {i} (at byte {at}) after the \
                         buffer was dropped: a freed buffer was written"
                    );
                }
            }
        }
    }

    /// Panics unless every buffer was dropped exactly once.
    pub fn assert_each_dropped_once(&self, what: &str) {
        for i in 0..self.drops.len() {
            assert_eq!(self.drops(i), 1, "{what}: drops of buffer {i}");
        }
    }
}

/// A read buffer over one window of a [`GuardArena`].
pub struct GuardedBuf {
    ptr: *mut u8,
    len: usize,
    init: usize,
    index: usize,
    drops: Arc<Vec<AtomicUsize>>,
}

impl GuardedBuf {
    /// The initialised bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + init` lies in the leaked arena and was
        // initialised (the arena was zeroed when made).
        unsafe { std::slice::from_raw_parts(self.ptr, self.init) }
    }
}

impl Drop for GuardedBuf {
    fn drop(&mut self) {
        // SAFETY: the window lies inside the leaked arena, valid for the
        // whole run.
        unsafe { std::ptr::write_bytes(self.ptr, POISON, self.len) };
        self.drops[self.index].fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: `ptr` points to `len` bytes of a leaked arena that is never
// freed, so the memory stays valid and in place wherever the value moves;
// the arena was zero-filled, so every byte is initialised.
unsafe impl IoBuf for GuardedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr
    }
    fn bytes_init(&self) -> usize {
        self.init
    }
    fn bytes_total(&self) -> usize {
        self.len
    }
}

// SAFETY: as above; the window is writable.
unsafe impl IoBufMut for GuardedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    unsafe fn set_init(&mut self, pos: usize) {
        self.init = self.init.max(pos.min(self.len));
    }
}

/// The panic message carried by a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// Runs `f`, expecting it to panic because something was used under a
/// runtime it does not belong to; returns the message. Panics (failing
/// the test) if `f` returns, or if the message does not say a runtime is
/// the problem.
pub fn expect_wrong_runtime_panic<R>(what: &str, f: impl FnOnce() -> R) -> String {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(_) => panic!("{what}: used under another runtime, it did not panic"),
        Err(payload) => {
            let msg = panic_message(&*payload);
            assert!(
                is_wrong_runtime_message(&msg),
                "{what}: panicked, but not saying it belongs to another runtime: {msg:?}"
            );
            msg
        }
    }
}

/// Whether `msg` says a handle was used on a runtime (worker) other than
/// its own.
pub fn is_wrong_runtime_message(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("runtime")
        && (m.contains("another") || m.contains("other") || m.contains("different"))
}
