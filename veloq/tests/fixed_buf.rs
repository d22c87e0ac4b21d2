//! Registered buffers: `FixedBuf`s from a `BufPool` used for file reads and
//! writes (fixed ops where the driver registers memory) and for sockets
//! (plain memory), with the pool's lending checked along the way.

mod util;

use util::{pattern, tcp_pair, within, TempPath};
use veloq::buf::BufPool;
use veloq::fs::OpenOptions;

const SIZE: usize = 4096;

#[test]
fn fixed_bufs_through_a_file() {
    within(30, || {
        veloq::block_on(async {
            let pool = BufPool::new(4, SIZE).unwrap();
            println!("pool registered with the driver: {}", pool.is_registered());
            let path = TempPath::new("fixed");
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path.0)
                .await
                .unwrap();

            // Two pages written from pooled buffers, the second at an offset.
            for (i, pos) in [(0u64, 0u64), (1, SIZE as u64)] {
                let mut buf = pool.get().unwrap();
                buf.extend_from_slice(&pattern(SIZE, i));
                let (res, buf) = file.write_all_at(buf, pos).await;
                res.unwrap();
                assert_eq!(buf.len(), SIZE, "the buffer comes back intact");
            }
            assert_eq!(pool.available(), 4, "dropped buffers return to the pool");

            let expect: Vec<u8> = [pattern(SIZE, 0), pattern(SIZE, 1)].concat();
            assert_eq!(std::fs::read(&path.0).unwrap(), expect);

            // Read back into pooled buffers: whole, then straddling pages.
            let (res, buf) = file.read_exact_at(pool.get().unwrap(), SIZE as u64).await;
            res.unwrap();
            assert_eq!(buf.as_slice(), &expect[SIZE..]);
            let (res, buf) = file.read_at(pool.get().unwrap(), 100).await;
            let n = res.unwrap();
            assert_eq!(n, SIZE);
            assert_eq!(buf.len(), n, "read_at sets the length to the bytes read");
            assert_eq!(buf.as_slice(), &expect[100..100 + SIZE]);
            // Near the end a read is short and the length says so.
            let (res, buf) = file
                .read_at(pool.get().unwrap(), 2 * SIZE as u64 - 10)
                .await;
            assert_eq!(res.unwrap(), 10);
            assert_eq!(buf.as_slice(), &expect[2 * SIZE - 10..]);
            file.close().await.unwrap();
        })
    });
}

#[test]
fn fixed_bufs_through_a_socket() {
    within(30, || {
        veloq::block_on(async {
            let pool = BufPool::new(2, SIZE).unwrap();
            let (client, server) = tcp_pair().await;
            let data = pattern(SIZE, 9);
            for round in 0..3 {
                let mut out = pool.get().unwrap();
                out.extend_from_slice(&data);
                let (res, _) = client.write_all(out).await;
                res.unwrap();
                let (res, got) = server.read_exact(pool.get().unwrap()).await;
                res.unwrap();
                assert_eq!(got.as_slice(), &data[..], "round {round}");
            }
            assert_eq!(pool.available(), 2);
        })
    });
}

#[test]
fn pool_lends_each_buffer_once() {
    within(30, || {
        veloq::block_on(async {
            let pool = BufPool::new(2, 512).unwrap();
            let a = pool.get().unwrap();
            let b = pool.get().unwrap();
            assert!(pool.get().is_none(), "all lent");
            assert_ne!(a.as_slice().as_ptr(), b.as_slice().as_ptr());
            drop(a);
            let c = pool.get().expect("a returned buffer is lent again");
            assert!(c.is_empty() && c.capacity() == 512);
            drop((b, c));
            assert_eq!(pool.available(), 2);
        })
    });
}
