//! Steady-state TCP echo allocates nothing: after warm-up, each round trip
//! (client write + server read + server write + client read, four ops and
//! the task wake-ups between them) makes zero heap allocations.
//!
//! A counting global allocator counts every allocation in the process, on
//! every thread; this file holds a single test so nothing else runs while
//! it measures.

mod util;

use util::spawn_echo_server;
use veloq::net::{TcpListener, TcpStream};

#[path = "util/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const WARM_UP: u64 = 1_000;
const ROUND_TRIPS: u64 = 5_000;

#[test]
fn steady_state_echo_makes_no_allocations() {
    counting_alloc::assert_counting();

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
                before = counting_alloc::allocations();
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
        (counting_alloc::allocations() - before, checked)
    });
    assert_eq!(checked, WARM_UP + ROUND_TRIPS);
    println!(
        "allocations over {ROUND_TRIPS} steady-state round trips: {allocs} ({:.4} per round trip)",
        allocs as f64 / ROUND_TRIPS as f64
    );
    assert_eq!(allocs, 0, "steady-state echo round trips allocated");
}
