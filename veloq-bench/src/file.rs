//! The file scenario: 4 KiB random positional reads with 32 in flight,
//! and 1 MiB sequential reads, from a file in the page cache — veloq
//! (io_uring reads) vs tokio::fs (seek + read on its blocking pool; tokio
//! has no positional read, so each of the 32 readers owns its handle) vs
//! compio vs plain `pread` on one thread (one read at a time).
//!
//! Runs unpinned: tokio::fs uses helper threads, and that is part of what
//! is measured. The Windows build (run under Wine) runs the same code on
//! IOCP, with `seek_read` (a synchronous positional `ReadFile`) in
//! `pread`'s place.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::opts::Opts;
use crate::progress::Progress;
use crate::report::Report;
use crate::stats::{Better, Figure};

/// Size of a random read.
pub const BLOCK: usize = 4096;
/// Size of a sequential read.
pub const SEQ_BLOCK: usize = 1 << 20;
/// Random reads in flight.
pub const IN_FLIGHT: usize = 32;
/// Reads before `on_warm` fires.
pub const WARM_READS: u64 = 2_000;

/// The one-thread synchronous positional read: `pread` on Unix…
#[cfg(unix)]
pub const SYNC_READ: &str = "pread";
/// …`seek_read` (`ReadFile` with an offset) on Windows.
#[cfg(windows)]
pub const SYNC_READ: &str = "seek_read";

/// The contenders of this scenario, veloq first.
pub const CONTENDERS: [&str; 4] = ["veloq", "tokio", "compio", SYNC_READ];

/// Which access pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// 4 KiB at random block-aligned offsets, 32 in flight.
    Random,
    /// 1 MiB reads front to back, wrapping, one in flight.
    Sequential,
}

/// A tiny xorshift generator: reproducible offsets without a dependency.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (zero is replaced, xorshift would stick).
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A block-aligned offset inside a file of `size` bytes.
    pub fn offset(&mut self, size: u64) -> u64 {
        (self.next_u64() % (size / BLOCK as u64)) * BLOCK as u64
    }
}

/// Shared read counter that fires `on_warm` once, when warm-up is over.
#[derive(Clone)]
struct Counter {
    n: Arc<AtomicU64>,
    on_warm: fn(),
}

impl Counter {
    fn new(on_warm: fn()) -> Counter {
        Counter {
            n: Arc::new(AtomicU64::new(0)),
            on_warm,
        }
    }
    fn add(&self, k: u64) {
        if self.n.fetch_add(k, Ordering::Relaxed) + k == WARM_READS {
            (self.on_warm)();
        }
    }
    fn get(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }
}

/// Creates (once) and pre-reads the test file so it sits in the page cache.
pub fn prepare_file(mib: u64) -> std::io::Result<PathBuf> {
    use std::io::{Read, Write};
    let path = std::env::temp_dir().join(format!("veloq-bench-{mib}m.dat"));
    let size = mib << 20;
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(size) {
        let mut f = std::fs::File::create(&path)?;
        let mut rng = XorShift::new(42);
        let mut chunk = vec![0u8; SEQ_BLOCK];
        for _ in 0..mib {
            for w in chunk.chunks_mut(8) {
                w.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            f.write_all(&chunk)?;
        }
        f.sync_all()?;
    }
    let mut f = std::fs::File::open(&path)?;
    let mut chunk = vec![0u8; SEQ_BLOCK];
    while f.read(&mut chunk)? > 0 {}
    Ok(path)
}

/// Runs `pattern` with `runtime` for `window`; returns reads (random) or
/// bytes (sequential) done.
pub fn run_one(
    runtime: &str,
    path: &Path,
    pattern: Pattern,
    window: Duration,
    on_warm: fn(),
) -> std::io::Result<u64> {
    let size = std::fs::metadata(path)?.len();
    let c = Counter::new(on_warm);
    let deadline = Instant::now() + window;
    match runtime {
        "veloq" => veloq_reads(path, size, pattern, deadline, &c)?,
        "tokio" => tokio_reads(path, size, pattern, deadline, &c)?,
        "compio" => compio_reads(path, size, pattern, deadline, &c)?,
        SYNC_READ => pread_reads(path, size, pattern, deadline, &c)?,
        other => return Err(std::io::Error::other(format!("no file reader for {other}"))),
    }
    Ok(c.get())
}

fn short(n: usize) -> std::io::Error {
    std::io::Error::other(format!("short read: {n} bytes"))
}

thread_local! {
    /// veloq's driver counters over the last `veloq_reads` on this thread:
    /// (completions, wait calls), from its reads' start to their end.
    static VELOQ_DRIVER: std::cell::Cell<Option<(u64, u64)>> = const { std::cell::Cell::new(None) };
}

/// (completions, wait calls) of veloq's driver during the last veloq run
/// on this thread, if there was one.
pub fn last_veloq_driver() -> Option<(u64, u64)> {
    VELOQ_DRIVER.with(|d| d.take())
}

fn veloq_reads(
    p: &Path,
    size: u64,
    pat: Pattern,
    end: Instant,
    c: &Counter,
) -> std::io::Result<()> {
    veloq::block_on(async {
        let file = std::rc::Rc::new(veloq::fs::File::open(p).await?);
        let before = veloq::runtime::driver_stats();
        let tasks = if pat == Pattern::Random { IN_FLIGHT } else { 1 };
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (file, c) = (file.clone(), c.clone());
                veloq::spawn(async move {
                    let len = if pat == Pattern::Random {
                        BLOCK
                    } else {
                        SEQ_BLOCK
                    };
                    let mut buf = Vec::with_capacity(len);
                    let mut rng = XorShift::new(t as u64 + 1);
                    let mut pos = 0;
                    while Instant::now() < end {
                        let off = match pat {
                            Pattern::Random => rng.offset(size),
                            Pattern::Sequential => pos,
                        };
                        buf.clear();
                        let (res, b) = file.read_at(buf, off).await;
                        buf = b;
                        let n = res?;
                        if pat == Pattern::Random && n != BLOCK {
                            return Err(short(n));
                        }
                        pos = if off + n as u64 >= size {
                            0
                        } else {
                            off + n as u64
                        };
                        c.add(if pat == Pattern::Random { 1 } else { n as u64 });
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.await.map_err(std::io::Error::other)??;
        }
        let after = veloq::runtime::driver_stats();
        VELOQ_DRIVER.with(|d| {
            d.set(Some((
                after.completions - before.completions,
                after.wait_calls - before.wait_calls,
            )))
        });
        Ok(())
    })
}

fn tokio_reads(
    p: &Path,
    size: u64,
    pat: Pattern,
    end: Instant,
    c: &Counter,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(async {
        let tasks = if pat == Pattern::Random { IN_FLIGHT } else { 1 };
        let mut handles = Vec::new();
        for t in 0..tasks {
            let mut file = tokio::fs::File::open(p).await?;
            let c = c.clone();
            handles.push(tokio::spawn(async move {
                let mut rng = XorShift::new(t as u64 + 1);
                match pat {
                    Pattern::Random => {
                        let mut buf = vec![0u8; BLOCK];
                        while Instant::now() < end {
                            file.seek(std::io::SeekFrom::Start(rng.offset(size)))
                                .await?;
                            file.read_exact(&mut buf).await?;
                            c.add(1);
                        }
                    }
                    Pattern::Sequential => {
                        let mut buf = vec![0u8; SEQ_BLOCK];
                        while Instant::now() < end {
                            let n = file.read(&mut buf).await?;
                            if n == 0 {
                                file.seek(std::io::SeekFrom::Start(0)).await?;
                            }
                            c.add(n as u64);
                        }
                    }
                }
                Ok::<(), std::io::Error>(())
            }));
        }
        for h in handles {
            h.await.map_err(std::io::Error::other)??;
        }
        Ok(())
    })
}

fn compio_reads(
    p: &Path,
    size: u64,
    pat: Pattern,
    end: Instant,
    c: &Counter,
) -> std::io::Result<()> {
    use compio::io::AsyncReadAt;
    let rt = compio::runtime::Runtime::new()?;
    rt.block_on(async {
        let file = std::rc::Rc::new(compio::fs::File::open(p).await?);
        let tasks = if pat == Pattern::Random { IN_FLIGHT } else { 1 };
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (file, c) = (file.clone(), c.clone());
                compio::runtime::spawn(async move {
                    let len = if pat == Pattern::Random {
                        BLOCK
                    } else {
                        SEQ_BLOCK
                    };
                    let mut buf = Vec::with_capacity(len);
                    let mut rng = XorShift::new(t as u64 + 1);
                    let mut pos = 0;
                    while Instant::now() < end {
                        let off = match pat {
                            Pattern::Random => rng.offset(size),
                            Pattern::Sequential => pos,
                        };
                        buf.clear();
                        let compio::BufResult(res, b) = file.read_at(buf, off).await;
                        buf = b;
                        let n = res?;
                        if pat == Pattern::Random && n != BLOCK {
                            return Err(short(n));
                        }
                        pos = if off + n as u64 >= size {
                            0
                        } else {
                            off + n as u64
                        };
                        c.add(if pat == Pattern::Random { 1 } else { n as u64 });
                    }
                    Ok::<(), std::io::Error>(())
                })
            })
            .collect();
        for h in handles {
            h.await
                .map_err(|e| std::io::Error::other(format!("{e:?}")))??;
        }
        Ok(())
    })
}

/// One synchronous positional read (may be short).
#[cfg(unix)]
fn read_at(file: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, off)
}

/// One synchronous positional read (may be short; moves the file cursor,
/// which nothing here uses).
#[cfg(windows)]
fn read_at(file: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, off)
}

fn pread_reads(
    p: &Path,
    size: u64,
    pat: Pattern,
    end: Instant,
    c: &Counter,
) -> std::io::Result<()> {
    let file = std::fs::File::open(p)?;
    let mut rng = XorShift::new(1);
    let mut buf = vec![
        0u8;
        if pat == Pattern::Random {
            BLOCK
        } else {
            SEQ_BLOCK
        }
    ];
    let mut pos = 0;
    while Instant::now() < end {
        match pat {
            Pattern::Random => {
                let n = read_at(&file, &mut buf, rng.offset(size))?;
                if n != BLOCK {
                    return Err(short(n));
                }
                c.add(1);
            }
            Pattern::Sequential => {
                let n = read_at(&file, &mut buf, pos)?;
                pos = if n == 0 || pos + n as u64 >= size {
                    0
                } else {
                    pos + n as u64
                };
                c.add(n as u64);
            }
        }
    }
    Ok(())
}

/// Runs the whole scenario.
pub fn run(o: &Opts) -> Result<Report, String> {
    let path = prepare_file(o.file_mib).map_err(|e| format!("test file: {e}"))?;
    // `--runtimes` narrows the field; the synchronous reader always runs.
    let contenders: Vec<&str> = CONTENDERS
        .into_iter()
        .filter(|c| *c == SYNC_READ || o.runtimes.iter().any(|r| r == c))
        .collect();
    let mut progress = Progress::new("file", 2 * o.rounds * contenders.len());
    let mut f_rand = Figure::new(
        format!("4 KiB random reads, {IN_FLIGHT} in flight"),
        "reads/s",
        Better::Higher,
    );
    let mut f_seq = Figure::new("1 MiB sequential reads", "MiB/s", Better::Higher);
    // How veloq's reads reached the kernel: completion packets / CQEs and
    // waiting calls per random read (reads that complete at submission
    // produce no packet).
    let mut f_packets = Figure::new(
        "veloq completions per 4 KiB random read",
        "packets",
        Better::Lower,
    );
    let mut f_waits = Figure::new(
        "veloq kernel wait calls per 4 KiB random read",
        "calls",
        Better::Lower,
    );
    for round in 1..=o.rounds {
        for (pat, fig) in [
            (Pattern::Random, &mut f_rand),
            (Pattern::Sequential, &mut f_seq),
        ] {
            for &rt in &contenders {
                progress.step(&format!("{pat:?}, round {round}, {rt}"));
                let start = Instant::now();
                let n = run_one(rt, &path, pat, o.window, || {})
                    .map_err(|e| format!("{rt} {pat:?}: {e}"))?;
                let secs = start.elapsed().as_secs_f64();
                if let (Pattern::Random, Some((packets, waits))) = (pat, last_veloq_driver()) {
                    f_packets.push(rt, packets as f64 / n.max(1) as f64);
                    f_waits.push(rt, waits as f64 / n.max(1) as f64);
                }
                fig.push(
                    rt,
                    match pat {
                        Pattern::Random => n as f64 / secs,
                        Pattern::Sequential => n as f64 / secs / (1 << 20) as f64,
                    },
                );
            }
        }
    }
    progress.finish();
    Ok(Report {
        title: format!("file: reads from a {} MiB file in the page cache", o.file_mib),
        notes: vec![
            format!("{} rounds × {:.1} s per contender, alternating; unpinned", o.rounds, o.window.as_secs_f64()),
            format!("tokio::fs: 32 handles, seek + read_exact on its blocking pool; {SYNC_READ}: one thread, one read at a time"),
        ],
        figures: vec![f_rand, f_seq, f_packets, f_waits],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_aligned_and_inside_the_file() {
        let mut r = XorShift::new(0);
        let size = 64 * BLOCK as u64;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let o = r.offset(size);
            assert_eq!(o % BLOCK as u64, 0);
            assert!(o + BLOCK as u64 <= size);
            seen.insert(o);
        }
        assert!(seen.len() > 32, "offsets hardly vary: {}", seen.len());
    }
}
