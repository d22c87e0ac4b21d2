//! Steady-state TCP echo allocates nothing: after warm-up, each round trip
//! (client write + server read + server write + client read, four ops and
//! the task wake-ups between them) makes zero heap allocations.
//!
//! A counting global allocator counts every allocation in the process, on
//! every thread; this file holds a single test so nothing else runs while
//! it measures.

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use util::spawn_echo_server;
use veloq::net::{TcpListener, TcpStream};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is a lock-free atomic, so counting cannot allocate or recurse.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM_UP: u64 = 1_000;
const ROUND_TRIPS: u64 = 5_000;

#[test]
fn steady_state_echo_makes_no_allocations() {
    // The counter sees allocations at all (so a zero below means something).
    let probe = ALLOCS.load(Ordering::SeqCst);
    drop(std::hint::black_box(vec![1u8; 16]));
    assert!(
        ALLOCS.load(Ordering::SeqCst) > probe,
        "the counting allocator is not in use"
    );

    let (allocs, checked) = veloq::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        spawn_echo_server(listener);
        let client = TcpStream::connect(addr).await.unwrap();
        client.set_nodelay(true).unwrap();

        let mut msg: Vec<u8> = (0..1024).map(|i| i as u8).collect();
        let mut reply = Vec::with_capacity(1024);
        let mut before = 0;
        let mut checked = 0;
        for i in 0..WARM_UP + ROUND_TRIPS {
            if i == WARM_UP {
                before = ALLOCS.load(Ordering::SeqCst);
            }
            msg[0] = i as u8;
            let (res, m) = client.write_all(msg).await;
            msg = m;
            res.unwrap();
            reply.clear();
            let (res, r) = client.read_exact(reply).await;
            reply = r;
            res.unwrap();
            assert!(reply == msg, "round trip {i}: wrong echo");
            checked += 1;
        }
        (ALLOCS.load(Ordering::SeqCst) - before, checked)
    });
    assert_eq!(checked, WARM_UP + ROUND_TRIPS);
    println!(
        "allocations over {ROUND_TRIPS} steady-state round trips: {allocs} ({:.4} per round trip)",
        allocs as f64 / ROUND_TRIPS as f64
    );
    assert_eq!(allocs, 0, "steady-state echo round trips allocated");
}
