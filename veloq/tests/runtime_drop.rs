//! Dropping a runtime while spawned tasks have reads in flight: the drop
//! returns, every buffer is freed exactly once, and the kernel never writes
//! into a buffer after it was freed.
//!
//! The buffers are slices of a leaked, zeroed arena, so a late kernel write
//! lands in memory the test can still inspect (never in freed memory); the
//! peers are std sockets that outlive the runtime and write into every
//! connection after the drop.

mod util;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use util::within;
use veloq::buf::{BufPool, IoBuf, IoBufMut};
use veloq::net::TcpStream;

const TASKS: usize = 64;
const SLOT: usize = 256;

/// A window into the leaked arena that counts its drops.
struct ArenaBuf {
    ptr: *mut u8,
    drops: Arc<AtomicUsize>,
}

impl Drop for ArenaBuf {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: `ptr` points to `SLOT` zero-initialised bytes of a leaked
// arena that is never freed, so it stays valid wherever the value moves.
unsafe impl IoBuf for ArenaBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr
    }
    fn bytes_init(&self) -> usize {
        SLOT
    }
    fn bytes_total(&self) -> usize {
        SLOT
    }
}

// SAFETY: as above; the window is writable and every byte initialised.
unsafe impl IoBufMut for ArenaBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

#[test]
fn drop_runtime_with_reads_in_flight() {
    let arena: &'static mut [u8] = Box::leak(vec![0u8; TASKS * SLOT].into_boxed_slice());
    let arena_addr = arena.as_mut_ptr() as usize;
    let drops = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));

    let peers = {
        let (drops, completed) = (drops.clone(), completed.clone());
        within(30, move || {
            let rt = veloq::Runtime::builder().build().expect("runtime");
            let peers = rt.block_on(async move {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let mut peers = Vec::new();
                let started = Arc::new(AtomicUsize::new(0));
                for i in 0..TASKS {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    // The connection is already queued: this does not block.
                    peers.push(listener.accept().unwrap().0);
                    let buf = ArenaBuf {
                        ptr: (arena_addr + i * SLOT) as *mut u8,
                        drops: drops.clone(),
                    };
                    let (started, completed) = (started.clone(), completed.clone());
                    veloq::spawn(async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        let (res, _) = stream.read(buf).await;
                        if matches!(res, Ok(n) if n > 0) {
                            completed.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
                for _ in 0..100 {
                    if started.load(Ordering::SeqCst) == TASKS {
                        break;
                    }
                    veloq::yield_now().await;
                }
                assert_eq!(started.load(Ordering::SeqCst), TASKS, "all reads submitted");
                peers
            });
            drop(rt);
            peers
        })
    };

    assert_eq!(completed.load(Ordering::SeqCst), 0, "no read received data");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        TASKS,
        "every buffer freed exactly once, none leaked"
    );

    // Anything still reading would now receive this.
    for mut p in peers {
        let _ = p.write_all(&[0xAB; SLOT]);
    }
    std::thread::sleep(Duration::from_millis(100));
    let arena = &*arena;
    if let Some(at) = arena.iter().position(|&b| b != 0) {
        panic!(
            "the kernel wrote into buffer {} after the runtime was dropped",
            at / SLOT
        );
    }
    assert_eq!(drops.load(Ordering::SeqCst), TASKS);
}

#[test]
fn block_on_returning_drops_tasks_with_reads_in_flight() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let peers = within(30, move || {
        veloq::block_on(async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut peers = Vec::new();
            for _ in 0..16 {
                let stream = TcpStream::connect(addr).await.unwrap();
                peers.push(listener.accept().unwrap().0);
                let buf = util::CountedBuf::new(64, &d);
                veloq::spawn(async move {
                    let _ = stream.read(buf).await;
                });
            }
            veloq::yield_now().await;
            peers
        })
    });
    assert_eq!(
        drops.load(Ordering::SeqCst),
        16,
        "block_on's runtime freed every buffer once"
    );
    drop(peers);
}

#[test]
fn drop_runtime_with_fixed_buf_reads_in_flight() {
    within(30, || {
        let rt = veloq::Runtime::builder().build().expect("runtime");
        let (peers, pool_size) = rt.block_on(async {
            let pool = BufPool::new(8, 1024).unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut peers = Vec::new();
            for _ in 0..8 {
                let stream = TcpStream::connect(addr).await.unwrap();
                peers.push(listener.accept().unwrap().0);
                let buf = pool.get().unwrap();
                veloq::spawn(async move {
                    let _ = stream.read(buf).await;
                });
            }
            veloq::yield_now().await;
            assert_eq!(pool.available(), 0, "every buffer is in a read");
            (peers, pool.count())
            // The pool handle goes here; the in-flight reads keep its memory.
        });
        drop(rt);
        assert_eq!(pool_size, 8);
        drop(peers);
    });
}
