//! The alloc scenario: a counting global allocator, and heap allocations
//! per steady-state echo round trip (server side: the server runs on a
//! thread of this process, the client's thread is not counted) and per
//! 4 KiB random file read, for veloq and each peer.
//!
//! The allocator counts only while [`ENABLED`] is set, and never on a
//! thread that called [`ignore_this_thread`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::client::{run_load, LoadSpec, Phase};
use crate::file::{self, Pattern, WARM_READS};
use crate::opts::Opts;
use crate::progress::Progress;
use crate::report::Report;
use crate::stats::{Better, Figure};
use crate::sys;

/// Counts allocations (alloc, alloc_zeroed, realloc) while enabled.
pub struct CountingAlloc;

/// Whether counting is on.
pub static ENABLED: AtomicBool = AtomicBool::new(false);
/// Allocations counted so far.
pub static COUNT: AtomicU64 = AtomicU64::new(0);
/// `COUNT` when the file workload finished warming up.
static AT_WARM: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // const-initialised and without a destructor: safe to touch from
    // inside the allocator (no lazy init, no allocation).
    static IGNORED: Cell<bool> = const { Cell::new(false) };
}

/// Stops counting allocations made by the calling thread.
pub fn ignore_this_thread() {
    IGNORED.with(|i| i.set(true));
}

fn count() {
    if ENABLED.load(Ordering::Relaxed) && !IGNORED.with(|i| i.get()) {
        COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counting touches only atomics and a const thread-local `Cell<bool>`,
// neither of which allocates or re-enters the allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from this allocator (so from `System`) with
        // `layout`, as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations per server round trip at 16 connections, closed loop.
fn echo_allocs(runtime: &str, o: &Opts) -> Result<f64, String> {
    let (tx, rx) = mpsc::channel();
    let rt = runtime.to_string();
    // The server thread lives on, idle, after its connections close.
    std::thread::spawn(move || {
        let _ = sys::pin_current_thread(crate::echo::cpus().0);
        let _ = crate::servers::serve(&rt, |addr| {
            let _ = tx.send(addr);
        });
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| format!("{runtime} server did not start"))?;
    let spec = LoadSpec {
        addr,
        conns: 16,
        warmup: o.warmup,
        window: o.window,
        rate: None,
    };
    let mut marks = Vec::with_capacity(2);
    let res = run_load(&spec, |p| {
        if p == Phase::Start {
            ENABLED.store(true, Ordering::SeqCst);
        }
        marks.push(COUNT.load(Ordering::SeqCst));
    })
    .map_err(|e| e.to_string())?;
    ENABLED.store(false, Ordering::SeqCst);
    Ok((marks[1] - marks[0]) as f64 / res.requests.max(1) as f64)
}

fn mark_warm() {
    AT_WARM.store(COUNT.load(Ordering::SeqCst), Ordering::SeqCst);
}

/// Allocations per 4 KiB random read after warm-up.
fn file_allocs(runtime: &str, path: &std::path::Path, o: &Opts) -> Result<f64, String> {
    let start = COUNT.load(Ordering::SeqCst);
    AT_WARM.store(start, Ordering::SeqCst);
    ENABLED.store(true, Ordering::SeqCst);
    let reads = file::run_one(runtime, path, Pattern::Random, o.window, mark_warm);
    ENABLED.store(false, Ordering::SeqCst);
    let reads = reads.map_err(|e| e.to_string())?;
    if reads <= WARM_READS {
        return Err(format!("{runtime}: too few reads ({reads}) to measure"));
    }
    let delta = COUNT.load(Ordering::SeqCst) - AT_WARM.load(Ordering::SeqCst);
    Ok(delta as f64 / (reads - WARM_READS) as f64)
}

/// Runs the whole scenario.
pub fn run(o: &Opts) -> Result<Report, String> {
    sys::pin_current_thread(crate::echo::cpus().1).map_err(|e| e.to_string())?;
    ignore_this_thread();
    let path = file::prepare_file(o.file_mib).map_err(|e| format!("test file: {e}"))?;
    let steps = o.rounds * (o.runtimes.len() + file::CONTENDERS.len());
    let mut progress = Progress::new("alloc", steps);
    let mut f_echo = Figure::new(
        "heap allocations per echo round trip (server, 16 conns)",
        "allocs",
        Better::Lower,
    );
    let mut f_file = Figure::new(
        "heap allocations per 4 KiB random read",
        "allocs",
        Better::Lower,
    );
    for round in 1..=o.rounds {
        for rt in &o.runtimes {
            progress.step(&format!("echo, round {round}, {rt}"));
            f_echo.push(rt, echo_allocs(rt, o)?);
        }
        for rt in file::CONTENDERS {
            progress.step(&format!("file, round {round}, {rt}"));
            // The reading threads must be counted: undo the client's opt-out
            // by running on a fresh thread.
            let (p, oo) = (path.clone(), o.clone());
            let v = std::thread::spawn(move || file_allocs(rt, &p, &oo))
                .join()
                .map_err(|_| "file alloc thread panicked".to_string())??;
            f_file.push(rt, v);
        }
    }
    progress.finish();
    Ok(Report {
        title: "alloc: heap allocations in steady state (counting global allocator)".into(),
        notes: vec![
            "echo: server thread in this process, 16 connections, closed loop, after warm-up; the client thread is not counted".into(),
            format!("file: every thread of the process counted, after the first {WARM_READS} reads"),
        ],
        figures: vec![f_echo, f_file],
    })
}
