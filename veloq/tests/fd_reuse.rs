//! A socket or file closes only after the last op naming its descriptor
//! has completed (DESIGN.md, "Contract, part 2"): no op ever runs on a
//! descriptor number that was reused.
//!
//! Each case cancels an op, drops its socket or file at once and makes a
//! new one at once, synchronously (Unix hands out the lowest free
//! descriptor number, so the new one gets the old number unless the old
//! descriptor is still open; Windows reuses handle values too). The new one
//! must see nothing of the cancelled op. Racy by nature, so looped,
//! single-threaded. On main before issue 9, io_uring sent a cancelled
//! op's queued SQE to the new socket, and epoll's blocking pool ran a
//! queued file write on the new file.

mod util;

use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use util::{poll_once, within, CountedBuf, TempPath};
use veloq::fs::File;
use veloq::net::TcpStream;
use veloq::time::{sleep, timeout};

/// Iterations of the socket cases.
const ROUNDS: usize = if cfg!(windows) { 10 } else { 60 };

/// Size of the cancelled write: far more than a socket takes at once.
const BIG: usize = 4 << 20;

/// Reads `stream` to end of stream (bounded by `limit`); `None` if the
/// peer did not close within it.
async fn read_to_end(stream: &TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let fut = async {
        loop {
            let (res, buf) = stream.read(Vec::with_capacity(64 * 1024)).await;
            match res {
                Ok(0) => return,
                Ok(_) => all.extend_from_slice(&buf),
                // A reset after stray bytes still ends the stream.
                Err(_) => return,
            }
        }
    };
    timeout(limit, fut).await.ok().map(|()| all)
}

/// A connected pair made synchronously, adopted by the current runtime:
/// (client, server side). Nothing is submitted to the driver, so a new
/// pair made this way takes the lowest free descriptor numbers before the
/// driver runs again.
fn sync_pair(listener: &std::net::TcpListener) -> (TcpStream, TcpStream) {
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (
        TcpStream::from_std(client).unwrap(),
        TcpStream::from_std(server).unwrap(),
    )
}

#[test]
fn cancelled_write_all_never_reaches_a_new_connection_on_the_reused_descriptor() {
    within(60, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let rt = veloq::Runtime::new().expect("runtime");
        rt.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let big = util::pattern(BIG, 9);
            for round in 0..ROUNDS {
                let (old, old_peer) = sync_pair(&listener);
                {
                    let mut write =
                        Box::pin(old.write_all(CountedBuf::with_bytes(big.clone(), &drops)));
                    assert!(
                        poll_once(write.as_mut()).await.is_pending(),
                        "4 MiB cannot be sent at once"
                    );
                }
                // The write is cancelled, its stream dropped, a new
                // connection made: all before the driver runs again.
                drop(old);
                let (new, new_peer) = sync_pair(&listener);
                // The peer reads all along, so stray bytes cannot stall the
                // write below.
                let reader =
                    veloq::spawn(
                        async move { read_to_end(&new_peer, Duration::from_secs(5)).await },
                    );
                let msg = format!("round {round}: only this");
                let (res, _) = timeout(
                    Duration::from_secs(5),
                    new.write_all(msg.clone().into_bytes()),
                )
                .await
                .expect("the new connection's write completes");
                res.unwrap();
                new.shutdown(Shutdown::Write).unwrap();
                let got = reader
                    .await
                    .expect("reader task")
                    .expect("the new connection ends");
                if got != msg.as_bytes() {
                    let stray = got.len().saturating_sub(msg.len());
                    panic!(
                        "round {round}: the new connection's peer got {} bytes ({stray} \
                         more than were sent on it): a cancelled write of the dropped stream \
                         ran on the reused descriptor",
                        got.len()
                    );
                }
                drop(old_peer);
            }
            let done = util::eventually(
                || drops.load(Ordering::SeqCst) == ROUNDS,
                Duration::from_secs(5),
            )
            .await;
            assert!(
                done,
                "every cancelled write's buffer is dropped: {} of {ROUNDS}",
                drops.load(Ordering::SeqCst)
            );
        });
        drop(rt);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            ROUNDS,
            "each buffer dropped once"
        );
    });
}

#[test]
fn cancelled_read_never_takes_a_new_connections_bytes() {
    within(60, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let rt = veloq::Runtime::new().expect("runtime");
        rt.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            for round in 0..ROUNDS {
                let (old, old_peer) = sync_pair(&listener);
                {
                    let mut read = Box::pin(old.read(CountedBuf::new(4096, &drops)));
                    assert!(poll_once(read.as_mut()).await.is_pending());
                }
                drop(old);
                let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (mut server, _) = listener.accept().unwrap();
                // The new connection's bytes are there before the driver
                // runs again.
                let msg = format!("round {round}: for the new connection");
                {
                    use std::io::Write;
                    server.write_all(msg.as_bytes()).unwrap();
                }
                let new = TcpStream::from_std(client).unwrap();
                let got =
                    timeout(Duration::from_secs(3), new.read_exact(vec![0u8; msg.len()])).await;
                match got {
                    Ok((Ok(()), buf)) => assert_eq!(buf, msg.as_bytes(), "round {round}"),
                    Ok((Err(e), _)) => panic!("round {round}: the new connection's read: {e}"),
                    Err(_) => panic!(
                        "round {round}: the new connection's bytes never came: a cancelled \
                         read of the dropped stream took them on the reused descriptor"
                    ),
                }
                drop((old_peer, server));
            }
            let done = util::eventually(
                || drops.load(Ordering::SeqCst) == ROUNDS,
                Duration::from_secs(5),
            )
            .await;
            assert!(
                done,
                "every cancelled read's buffer is dropped: {} of {ROUNDS}",
                drops.load(Ordering::SeqCst)
            );
        });
        drop(rt);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            ROUNDS,
            "each buffer dropped once"
        );
    });
}

/// Iterations of the file case.
const FILE_ROUNDS: usize = if cfg!(windows) { 5 } else { 20 };

/// Size of the cancelled file write.
const FILE_WRITE: usize = 256 * 1024;

/// A file op that blocks a thread of the driver's blocking pool (or an
/// io_uring worker) until [`Blocker::release`]: the open of a FIFO for
/// reading, which waits for a writer. While it blocks, the single pool
/// thread is busy and further file ops queue behind it.
#[cfg(target_os = "linux")]
struct Blocker {
    fifo: std::path::PathBuf,
    task: veloq::JoinHandle<std::io::Result<File>>,
}

#[cfg(target_os = "linux")]
impl Blocker {
    async fn start(dir: &std::path::Path) -> Blocker {
        use std::os::unix::ffi::OsStrExt;
        let fifo = dir.join("fifo");
        if !fifo.exists() {
            let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
            // SAFETY: `c` is a valid NUL-terminated path.
            let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
            assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
        }
        let path = fifo.clone();
        let task =
            veloq::spawn(async move { veloq::fs::OpenOptions::new().read(true).open(path).await });
        // Let the task submit its open and a pool thread take it.
        sleep(Duration::from_millis(10)).await;
        Blocker { fifo, task }
    }

    /// Opens the FIFO's write end (without blocking: retried until the
    /// reader is there), which lets the blocked open complete.
    async fn release(self) {
        use std::os::unix::fs::OpenOptionsExt;
        let mut writer = None;
        for _ in 0..2000 {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.fifo)
            {
                Ok(f) => {
                    writer = Some(f);
                    break;
                }
                Err(_) => sleep(Duration::from_millis(1)).await,
            }
        }
        assert!(writer.is_some(), "the FIFO's reader never came");
        let file = timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the blocked open completes")
            .expect("open task");
        drop(file.expect("open the FIFO"));
        drop(writer);
    }
}

#[test]
fn file_dropped_with_a_cancelled_write_at_gives_a_new_file_no_stray_write() {
    within(60, || {
        let dir = TempPath::new("fd-reuse-file");
        std::fs::create_dir(&dir.0).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        // One blocking thread, so a file op can be made to wait in the
        // pool (epoll), behind the blocker.
        let rt = veloq::Runtime::builder()
            .max_blocking_threads(1)
            .build()
            .expect("runtime");
        rt.block_on(async {
            let data = util::pattern(FILE_WRITE, 3);
            for round in 0..FILE_ROUNDS {
                let old_path = dir.0.join(format!("old-{round}"));
                let new_path = dir.0.join(format!("new-{round}"));
                let old = File::create(&old_path).await.unwrap();
                #[cfg(target_os = "linux")]
                let blocker = Blocker::start(&dir.0).await;
                {
                    let mut write =
                        Box::pin(old.write_at(CountedBuf::with_bytes(data.clone(), &drops), 0));
                    // Ready at once is allowed (a driver may write
                    // inline); the interesting case is pending.
                    let _ = poll_once(write.as_mut()).await;
                }
                drop(old);
                // A new file, opened at once (synchronously: it takes the
                // lowest free descriptor number right now).
                let mine = format!("round {round}: the new file's only content");
                {
                    use std::io::Write;
                    let mut new = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&new_path)
                        .unwrap();
                    new.write_all(mine.as_bytes()).unwrap();
                    #[cfg(target_os = "linux")]
                    blocker.release().await;
                    // Whatever was left of the cancelled write runs now.
                    sleep(Duration::from_millis(20)).await;
                    drop(new);
                }
                let got = std::fs::read(&new_path).unwrap();
                if got != mine.as_bytes() {
                    panic!(
                        "round {round}: the new file holds {} bytes, not the {} written to \
                         it: the cancelled write_at of the dropped file ran on its reused \
                         descriptor",
                        got.len(),
                        mine.len()
                    );
                }
            }
            let done = util::eventually(
                || drops.load(Ordering::SeqCst) == FILE_ROUNDS,
                Duration::from_secs(5),
            )
            .await;
            assert!(
                done,
                "every cancelled write's buffer is dropped: {} of {FILE_ROUNDS}",
                drops.load(Ordering::SeqCst)
            );
        });
        drop(rt);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            FILE_ROUNDS,
            "each buffer dropped once"
        );
    });
}
