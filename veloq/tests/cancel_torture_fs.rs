//! Cancellation torture of the file ops (read_at, write_at, fsync, open)
//! and of `sleep`: the same harness and checks as `cancel_torture.rs`
//! (which see), with a peer thread writing to the same file, or a task
//! ticking beside the sleeps. Also proves the guarded buffers' detector:
//! a kernel write into a dropped one fails with `EFAULT`, and the driver
//! counts it (`DriverStats::fault_completions`).
//!
//! `VELOQ_TORTURE_ITERS` sets the iterations per op kind (10,000; 1,000
//! under Windows), `VELOQ_TORTURE_SEED` replays a printed seed.

mod util;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::stream_check::Sent;
use util::torture::{join, race, torture, Ctx, DropAt, Tally};
use util::{stream_byte, TempPath};
use veloq::fs::{File, OpenOptions};
use veloq::time::sleep;

/// Time limit of one op kind's run (a hang fails instead of stalling).
const LIMIT_SECS: u64 = 120;

// ---------------------------------------------------------------------------
// Files

/// Writes `data` at `pos` of `file` (the peers' blocking file writes).
#[cfg(unix)]
fn pwrite(file: &std::fs::File, data: &[u8], pos: u64) {
    std::os::unix::fs::FileExt::write_all_at(file, data, pos).unwrap();
}

/// Writes `data` at `pos` of `file` (the peers' blocking file writes).
#[cfg(windows)]
fn pwrite(file: &std::fs::File, data: &[u8], pos: u64) {
    let mut done = 0;
    while done < data.len() {
        done += std::os::windows::fs::FileExt::seek_write(file, &data[done..], pos + done as u64)
            .unwrap();
    }
}

/// A peer thread that keeps writing into `[from, from + 64 KiB)` of the
/// file at `path` until `stop`.
fn file_writer(
    path: &std::path::Path,
    from: u64,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let stop = stop.clone();
    std::thread::spawn(move || {
        let mut i = 0u64;
        while !stop.load(Ordering::SeqCst) {
            pwrite(&file, &[i as u8; 512], from + (i % 128) * 512);
            i += 1;
            std::thread::sleep(Duration::from_micros(100));
        }
    })
}

/// Size of the patterned part of the read_at file.
const FILE_LEN: u64 = 1 << 20;

#[test]
fn read_at_torture() {
    torture(
        "file read_at",
        util::torture::iterations() + 16,
        LIMIT_SECS,
        read_at_body,
    );
}

async fn read_at_body(mut cx: Ctx) -> Tally {
    let path = TempPath::new("torture-read-at");
    let data: Vec<u8> = (0..FILE_LEN).map(stream_byte).collect();
    std::fs::write(&path.0, &data).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = file_writer(&path.0, FILE_LEN, &stop);
    let file = File::open(&path.0).await.unwrap();
    let mut tally = Tally {
        // IOCP finishes a file op in its first poll when its status is
        // final by then (Wine does every regular-file read and write inside
        // the call), so there may be nothing left to cancel.
        cancel_optional: cfg!(windows),
        ..Tally::default()
    };
    for _ in 0..cx.iters {
        let len = 1 + cx.rng.below(4096) as usize;
        let pos = cx.rng.below(FILE_LEN - len as u64);
        let at = DropAt::pick(&mut cx.rng);
        let out = race(file.read_at(cx.pool.buf(len), pos), at).await;
        tally.note(&out, at);
        match out {
            Some((Ok(n), buf)) => {
                assert_eq!(n, len, "short read at {pos}");
                assert!(
                    buf.bytes() == &data[pos as usize..pos as usize + n],
                    "read_at {pos} returned the wrong bytes"
                );
            }
            Some((Err(e), _)) => panic!("read_at {pos} failed: {e}"),
            None => {}
        }
    }
    stop.store(true, Ordering::SeqCst);
    join(writer, "file read_at").await;
    drop(file);
    tally
}

/// Byte `i` of write number `j` in the write_at torture (never 0, the
/// byte of a region nothing wrote).
fn file_byte(j: u64, i: u64) -> u8 {
    1 + stream_byte((j << 12) | i) % 255
}

#[test]
fn write_at_torture() {
    torture(
        "file write_at",
        util::torture::iterations() + 16,
        LIMIT_SECS,
        write_at_body,
    );
}

async fn write_at_body(mut cx: Ctx) -> Tally {
    const REGION: u64 = 512;
    let path = TempPath::new("torture-write-at");
    std::fs::write(&path.0, []).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let end = cx.iters as u64 * REGION;
    let writer = file_writer(&path.0, end, &stop);
    let file = OpenOptions::new().write(true).open(&path.0).await.unwrap();
    let mut tally = Tally {
        // IOCP finishes a file op in its first poll when its status is
        // final by then (Wine does every regular-file read and write inside
        // the call), so there may be nothing left to cancel.
        cancel_optional: cfg!(windows),
        ..Tally::default()
    };
    let mut sent = Vec::with_capacity(cx.iters);
    let mut chunk = Vec::new();
    for j in 0..cx.iters as u64 {
        let len = 1 + cx.rng.below(REGION) as usize;
        chunk.clear();
        chunk.extend((0..len as u64).map(|i| file_byte(j, i)));
        let at = DropAt::pick(&mut cx.rng);
        let out = race(file.write_at(cx.pool.with_bytes(&chunk), j * REGION), at).await;
        tally.note(&out, at);
        sent.push(match out {
            Some((Ok(n), _)) => Sent::Done(n),
            Some((Err(e), _)) => panic!("write_at {j} failed: {e}"),
            None if at.never_polled() => Sent::Never,
            None => Sent::Cancelled(len),
        });
    }
    // Every op is done once the driver is idle: look at the file then.
    util::torture::settle("file write_at").await;
    stop.store(true, Ordering::SeqCst);
    join(writer, "file write_at").await;
    drop(file);
    let got = std::fs::read(&path.0).unwrap();
    for (j, s) in sent.iter().enumerate() {
        let start = j * REGION as usize;
        let region = got
            .get(start..(start + REGION as usize).min(got.len()))
            .unwrap_or(&[]);
        // The bytes write j put there: a prefix of its chunk, then zeros.
        let wrote = region
            .iter()
            .enumerate()
            .take_while(|&(i, &b)| b == file_byte(j as u64, i as u64))
            .count();
        assert!(
            region[wrote..].iter().all(|&b| b == 0),
            "write_at {j} ({s:?}): region holds bytes no write put there"
        );
        match *s {
            Sent::Done(n) => assert_eq!(wrote, n, "write_at {j}: bytes written vs reported"),
            Sent::Never => assert_eq!(wrote, 0, "write_at {j} was never polled but wrote"),
            Sent::Cancelled(len) => assert!(wrote <= len),
        }
    }
    tally
}

#[test]
fn fsync_torture() {
    torture("file fsync", 1, LIMIT_SECS, fsync_body);
}

async fn fsync_body(mut cx: Ctx) -> Tally {
    let path = TempPath::new("torture-fsync");
    std::fs::write(&path.0, [0u8; 4096]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = file_writer(&path.0, 0, &stop);
    let file = OpenOptions::new().write(true).open(&path.0).await.unwrap();
    let mut tally = Tally::default();
    for i in 0..cx.iters {
        let at = DropAt::pick(&mut cx.rng);
        let out = if i % 2 == 0 {
            race(file.sync_all(), at).await
        } else {
            race(file.sync_data(), at).await
        };
        tally.note(&out, at);
        if let Some(Err(e)) = out {
            panic!("fsync {i} failed: {e}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    join(writer, "file fsync").await;
    drop(file);
    tally
}

#[test]
fn open_torture() {
    torture("file open", 1, LIMIT_SECS, open_body);
}

async fn open_body(mut cx: Ctx) -> Tally {
    let path = TempPath::new("torture-open");
    std::fs::write(&path.0, [0u8; 4096]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = file_writer(&path.0, 0, &stop);
    let mut tally = Tally::default();
    for i in 0..cx.iters {
        let at = DropAt::pick(&mut cx.rng);
        let out = race(File::open(&path.0), at).await;
        tally.note(&out, at);
        if let Some(Err(e)) = out {
            panic!("open {i} failed: {e}");
        }
    }
    // A cancelled open's descriptor is closed by its hook: the harness's
    // descriptor count shows a leak.
    stop.store(true, Ordering::SeqCst);
    join(writer, "file open").await;
    tally
}

// ---------------------------------------------------------------------------
// Timers

#[test]
fn sleep_torture() {
    torture("sleep", 1, LIMIT_SECS, sleep_body);
}

async fn sleep_body(mut cx: Ctx) -> Tally {
    // The peer: a task ticking every millisecond throughout.
    let ticks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (ticks, stop) = (ticks.clone(), stop.clone());
        veloq::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                sleep(Duration::from_millis(1)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut tally = Tally::default();
    let start = Instant::now();
    for _ in 0..cx.iters {
        let d = Duration::from_micros(cx.rng.below(3000));
        let at = DropAt::pick(&mut cx.rng);
        let out = race(sleep(d), at).await;
        tally.note(&out, at);
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    ticker.await.unwrap();
    let ticks = ticks.load(Ordering::SeqCst);
    assert!(
        ticks as u128 * 20 >= elapsed.as_millis(),
        "the peer's 1 ms sleeps fell behind: {ticks} ticks in {elapsed:?}"
    );
    // The wheel still keeps time after thousands of cancelled entries.
    let t = Instant::now();
    sleep(Duration::from_millis(20)).await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(20) && took < Duration::from_secs(2),
        "a 20 ms sleep took {took:?}"
    );
    tally
}

/// A guarded buffer really refuses late kernel writes (Unix). These tests
/// hold the torture lock: their descriptors would upset a torture run's
/// count.
#[cfg(unix)]
mod guard {
    use super::util::guarded_buf::GuardPool;
    use veloq::buf::IoBufMut;

    #[test]
    fn a_kernel_write_into_a_dropped_guarded_buffer_fails_with_efault() {
        let _serial = super::util::torture::serial();
        let pool = GuardPool::new(4);
        let mut buf = pool.buf(64);
        let ptr = buf.stable_mut_ptr();
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let kernel_write = |ptr: *mut u8| {
            // SAFETY: a one-byte write from a live static into the pipe,
            // then a one-byte read by the kernel into `ptr`: if `ptr`'s
            // page is inaccessible the kernel reports EFAULT, it does not
            // fault this process.
            unsafe {
                assert_eq!(libc::write(fds[1], b"x".as_ptr().cast(), 1), 1);
                libc::read(fds[0], ptr.cast(), 1)
            }
        };
        assert_eq!(kernel_write(ptr), 1, "a live buffer takes the write");
        drop(buf);
        assert_eq!(kernel_write(ptr), -1, "a dropped buffer refuses it");
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EFAULT)
        );
        // SAFETY: closes the two descriptors pipe(2) made, once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        pool.assert_each_dropped_once("guard");
    }

    #[test]
    fn an_op_on_released_memory_is_counted_as_a_fault_completion() {
        use std::io::Write;
        let _serial = super::util::torture::serial();
        let pool = GuardPool::new(4);
        let (client, mut peer) = super::util::std_tcp_pair();
        peer.write_all(b"hello").unwrap();
        veloq::block_on(async {
            let client = veloq::net::TcpStream::from_std(client).unwrap();
            let before = veloq::runtime::driver_stats();
            let (res, _buf) = client.read(pool.retired_buf(64)).await;
            let err = res.expect_err("a read into inaccessible memory");
            assert_eq!(err.raw_os_error(), Some(libc::EFAULT), "{err}");
            let after = veloq::runtime::driver_stats();
            assert_eq!(after.fault_completions - before.fault_completions, 1);
            assert_eq!(after.stale_completions, before.stale_completions);
        });
        pool.assert_each_dropped_once("fault");
    }
}
