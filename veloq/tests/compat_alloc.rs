//! Steady-state `Compat` echo allocates nothing: after warm-up, each round
//! trip through the poll traits (a buffered 1 KiB `write_all`, a `flush`,
//! a `read_exact`) reuses `Compat`'s buffers and its op slots, so zero
//! heap allocations are made (before the op slots, each read, write and
//! flush op boxed its future).
//!
//! A counting global allocator counts every allocation in the process;
//! this file holds a single test so nothing else runs while it measures.
//! Needs the features: `cargo test -p veloq --features futures-io,tokio
//! --test compat_alloc`.
#![cfg(all(feature = "futures-io", feature = "tokio"))]

mod util;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use util::spawn_echo_server;
use veloq::compat::Compat;
use veloq::net::{TcpListener, TcpStream};

#[path = "util/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const WARM_UP: u64 = 1_000;
const ROUND_TRIPS: u64 = 5_000;

#[test]
fn steady_state_compat_echo_makes_no_allocations() {
    counting_alloc::assert_counting();

    let allocs = veloq::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        spawn_echo_server(listener);
        let client = TcpStream::connect(addr).await.unwrap();
        client.set_nodelay(true).unwrap();
        let mut io = Compat::new(client);

        let mut msg: Vec<u8> = (0..1024).map(|i| i as u8).collect();
        let mut reply = vec![0u8; 1024];
        let mut before = 0;
        for i in 0..WARM_UP + ROUND_TRIPS {
            if i == WARM_UP {
                before = counting_alloc::allocations();
            }
            msg[0] = i as u8;
            io.write_all(&msg).await.unwrap();
            io.flush().await.unwrap();
            io.read_exact(&mut reply).await.unwrap();
            assert!(reply == msg, "round trip {i} came back different");
        }
        counting_alloc::allocations() - before
    });
    assert_eq!(
        allocs, 0,
        "{allocs} allocations in {ROUND_TRIPS} steady-state Compat round trips"
    );
}
