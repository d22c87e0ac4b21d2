//! Files: positional reads and writes, flushes, allocation, open errors
//! and close.

mod util;

use std::io::ErrorKind;

use util::{pattern, within, TempPath};
use veloq::fs::{File, OpenOptions};

#[test]
fn write_at_read_at_several_offsets() {
    within(30, || {
        veloq::block_on(async {
            let path = TempPath::new("offsets");
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path.0)
                .await
                .unwrap();
            // Out of order, with a hole, and one write straddling a 4 KiB
            // page boundary.
            let pieces: [(u64, usize); 4] = [(8192, 100), (0, 4096), (4000, 300), (20_000, 1)];
            for (i, &(pos, len)) in pieces.iter().enumerate() {
                let (res, _) = file.write_all_at(pattern(len, i as u64), pos).await;
                res.unwrap();
            }
            let mut expect = vec![0u8; 20_001];
            for (i, &(pos, len)) in pieces.iter().enumerate() {
                let pos = pos as usize;
                expect[pos..pos + len].copy_from_slice(&pattern(len, i as u64));
            }
            // Read back whole, then piece by piece through `read_at`.
            let (res, all) = file
                .read_exact_at(Vec::with_capacity(expect.len()), 0)
                .await;
            res.unwrap();
            assert!(all == expect, "file content differs from what was written");
            for &(pos, len) in &pieces {
                let (res, got) = file.read_at(vec![0u8; len], pos).await;
                assert_eq!(res.unwrap(), len);
                assert_eq!(&got[..], &expect[pos as usize..pos as usize + len]);
            }
            // At and past the end: 0 bytes, and read_exact_at is an EOF error.
            let (res, _) = file.read_at(vec![0u8; 10], expect.len() as u64).await;
            assert_eq!(res.unwrap(), 0);
            let (res, partial) = file.read_exact_at(Vec::with_capacity(10), 19_996).await;
            assert_eq!(res.unwrap_err().kind(), ErrorKind::UnexpectedEof);
            assert_eq!(
                &partial[..],
                &expect[19_996..],
                "the bytes before the end are kept"
            );
            file.close().await.unwrap();
            assert_eq!(
                std::fs::read(&path.0).unwrap(),
                expect,
                "std sees the same bytes"
            );
        })
    });
}

#[test]
fn syncs_and_allocate() {
    within(30, || {
        veloq::block_on(async {
            let path = TempPath::new("sync");
            let file = File::create(&path.0).await.unwrap();
            let (res, _) = file.write_all_at(pattern(10_000, 1), 0).await;
            res.unwrap();
            file.sync_all().await.unwrap();
            file.sync_data().await.unwrap();
            file.sync_range(0, 4096).await.unwrap();
            file.allocate(0, 1 << 20).await.unwrap();
            file.close().await.unwrap();
            let meta = std::fs::metadata(&path.0).unwrap();
            assert_eq!(
                meta.len(),
                1 << 20,
                "allocate grows the file to cover the range"
            );
            let data = std::fs::read(&path.0).unwrap();
            assert_eq!(&data[..10_000], &pattern(10_000, 1)[..]);
            assert!(
                data[10_000..].iter().all(|&b| b == 0),
                "allocated space reads as zeros"
            );
        })
    });
}

#[test]
fn open_missing_is_not_found() {
    within(30, || {
        veloq::block_on(async {
            let path = TempPath::new("missing");
            let err = File::open(&path.0).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
            let err = OpenOptions::new()
                .write(true)
                .open(&path.0)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        })
    });
}

#[test]
fn create_new_on_existing_is_already_exists() {
    within(30, || {
        veloq::block_on(async {
            let path = TempPath::new("exists");
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path.0)
                .await
                .unwrap();
            f.close().await.unwrap();
            let err = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path.0)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        })
    });
}

#[test]
fn create_truncates_and_open_is_read_only() {
    within(30, || {
        veloq::block_on(async {
            let path = TempPath::new("trunc");
            std::fs::write(&path.0, b"old contents").unwrap();
            let f = File::create(&path.0).await.unwrap();
            let (res, _) = f.write_all_at(b"new".to_vec(), 0).await;
            res.unwrap();
            f.close().await.unwrap();
            assert_eq!(std::fs::read(&path.0).unwrap(), b"new");

            let f = File::open(&path.0).await.unwrap();
            let (res, _) = f.write_at(b"x".to_vec(), 0).await;
            assert!(
                res.is_err(),
                "a file opened with File::open is not writable"
            );
            let (res, got) = f.read_at(vec![0u8; 16], 0).await;
            assert_eq!(&got[..res.unwrap()], b"new");
            // Dropped without close: closed synchronously.
            drop(f);
        })
    });
}

#[test]
fn append_writes_at_the_end() {
    within(30, || {
        veloq::block_on(async {
            let path = TempPath::new("append");
            std::fs::write(&path.0, b"head").unwrap();
            let f = OpenOptions::new().append(true).open(&path.0).await.unwrap();
            let (res, _) = f.write_all_at(b"-tail".to_vec(), 4).await;
            res.unwrap();
            f.close().await.unwrap();
            assert_eq!(std::fs::read(&path.0).unwrap(), b"head-tail");
        })
    });
}

#[test]
fn inconsistent_options_are_invalid_input() {
    within(30, || {
        veloq::block_on(async {
            let path = TempPath::new("opts");
            let err = OpenOptions::new().open(&path.0).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            let err = OpenOptions::new()
                .read(true)
                .create(true)
                .open(&path.0)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(!path.0.exists(), "nothing was created");
        })
    });
}

#[test]
fn many_reads_in_flight_on_one_file() {
    within(30, || {
        veloq::block_on(async {
            let path = TempPath::new("parallel");
            let data = pattern(64 * 1024, 3);
            std::fs::write(&path.0, &data).unwrap();
            let file = std::rc::Rc::new(File::open(&path.0).await.unwrap());
            let reads: Vec<_> = (0..16u64)
                .map(|i| {
                    let file = file.clone();
                    veloq::spawn(async move {
                        let (res, buf) = file.read_exact_at(vec![0u8; 4096], i * 4096).await;
                        res.unwrap();
                        buf
                    })
                })
                .collect();
            for (i, r) in reads.into_iter().enumerate() {
                let buf = r.await.unwrap();
                assert_eq!(&buf[..], &data[i * 4096..(i + 1) * 4096], "chunk {i}");
            }
        })
    });
}
