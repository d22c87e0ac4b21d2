//! The plain-heap form of "an op dropped outside any `block_on`": the read
//! buffers are ordinary `Vec`s, dropped with their futures while no runtime
//! is current; fresh allocations of the same size are made at once, then
//! the peers write. Not one of those allocations may change, and nothing
//! may crash (a driver that freed the buffers early has the kernel write
//! into them, or into the allocator's own bookkeeping).
//!
//! On its own in this file: when the bug is there, the process may abort
//! in the allocator, and no other test should go down with it.

mod util;

use std::io::Write;
use std::time::Duration;

use util::{poll_once, std_tcp_pair, within};
use veloq::net::TcpStream;
use veloq::time::sleep;
use veloq::Runtime;

/// Bytes per read buffer (and per fresh allocation).
const SLOT: usize = 4096;

/// Connections (reads dropped) per round: few, so that the allocator
/// hands the freed buffers straight back to the fresh allocations.
const CONNS: usize = 4;

/// Rounds, each with a fresh runtime.
const ROUNDS: usize = if cfg!(windows) { 5 } else { 20 };

#[test]
fn read_dropped_outside_block_on_never_overwrites_new_allocations() {
    within(60, || {
        for round in 0..ROUNDS {
            let rt = Runtime::new().expect("runtime");
            let (clients, mut peers): (Vec<_>, Vec<_>) = (0..CONNS).map(|_| std_tcp_pair()).unzip();
            let streams: Vec<TcpStream> = rt.block_on(async {
                clients
                    .into_iter()
                    .map(|c| TcpStream::from_std(c).expect("from_std"))
                    .collect()
            });
            let reads = rt.block_on(async {
                let mut reads = Vec::new();
                for s in &streams {
                    let mut read = Box::pin(s.read(Vec::<u8>::with_capacity(SLOT)));
                    assert!(poll_once(read.as_mut()).await.is_pending());
                    reads.push(read);
                }
                sleep(Duration::from_millis(5)).await;
                reads
            });
            // Made before the drop, so it takes none of the freed memory.
            let mut fresh: Vec<Vec<u8>> = Vec::with_capacity(4 * CONNS);
            // Outside any block_on.
            drop(reads);
            // Fresh allocations of the same size, likely where the read
            // buffers were.
            for _ in 0..4 * CONNS {
                fresh.push(vec![0u8; SLOT]);
            }
            for p in &mut peers {
                let _ = p.write_all(&[0xAB; SLOT]);
            }
            std::thread::sleep(Duration::from_millis(20));
            rt.block_on(sleep(Duration::from_millis(30)));
            for (i, v) in fresh.iter().enumerate() {
                if let Some(at) = v.iter().position(|&b| b != 0) {
                    panic!(
                        "round {round}: allocation {i}, made after the reads were dropped, \
                         was overwritten at byte {at} (0x{:02x}) by the peers' data",
                        v[at]
                    );
                }
            }
            drop(streams);
            drop(rt);
        }
    });
}
