//! An 8-entry ring (an SQ of 8, a CQ of 32) with 1,000 receives in flight
//! at once: every receive completes with its own bytes, whichever driver
//! runs (the completions overflow io_uring's CQ some thirty times over).

use std::io::Write;
use std::time::Duration;

use veloq::net::TcpStream;
use veloq::Runtime;

#[test]
fn a_thousand_receives_on_an_eight_entry_ring() {
    const N: usize = 1000;
    let rt = Runtime::builder().entries(8).build().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut writers = Vec::with_capacity(N);
    let mut readers = Vec::with_capacity(N);
    for _ in 0..N {
        writers.push(std::net::TcpStream::connect(addr).unwrap());
        readers.push(listener.accept().unwrap().0);
    }
    rt.block_on(async move {
        let tasks: Vec<_> = readers
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let stream = TcpStream::from_std(r).unwrap();
                veloq::spawn(async move {
                    let (res, buf) = stream.read_exact(vec![0u8; 8]).await;
                    res.unwrap();
                    assert_eq!(
                        u64::from_le_bytes(buf.try_into().unwrap()),
                        i as u64,
                        "receive {i}"
                    );
                })
            })
            .collect();
        // Every receive submitted and waiting in the kernel ...
        veloq::time::sleep(Duration::from_millis(50)).await;
        // ... then all their bytes at once.
        for (i, w) in writers.iter_mut().enumerate() {
            w.write_all(&(i as u64).to_le_bytes()).unwrap();
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}
