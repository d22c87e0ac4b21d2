//! The Windows build of the bench (`x86_64-pc-windows-gnu`), run under
//! Wine by `scripts/bench-windows.sh`: the echo and file scenarios, veloq's
//! IOCP driver vs tokio (and compio where it runs).
//!
//! Every figure this module produces is labelled with the host it ran on
//! as detected at run time: "Wine <version>" when ntdll exports
//! `wine_get_version`, else "Windows". Figures under Wine say nothing
//! about speed on Windows.
//!
//! Echo here is the in-process design (`inproc.rs`): server runtime on one
//! thread, one blocking client thread per connection, nothing pinned; no
//! server-CPU figure (no `/proc`), but veloq's completions per
//! `GetQueuedCompletionStatusEx` call from its driver counters.

use std::ffi::{c_char, c_void, CStr};

use crate::inproc;
use crate::opts::Opts;
use crate::progress::Progress;
use crate::report::Report;
use crate::stats::{Better, Figure};

#[link(name = "kernel32")]
extern "system" {
    fn GetModuleHandleA(name: *const c_char) -> *mut c_void;
    fn GetProcAddress(module: *mut c_void, name: *const c_char) -> *mut c_void;
}

/// "Wine 8.0" when running under Wine, else "Windows".
pub fn host() -> String {
    // SAFETY: both names are NUL-terminated literals; ntdll is mapped into
    // every process for its whole life, so the module handle and any
    // procedure address from it stay valid while we use them.
    let proc_addr = unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr());
        if ntdll.is_null() {
            return "Windows".into();
        }
        GetProcAddress(ntdll, c"wine_get_version".as_ptr())
    };
    if proc_addr.is_null() {
        return "Windows".into();
    }
    // SAFETY: Wine's `const char *wine_get_version(void)` (cdecl, which is
    // the C ABI on x86_64) returns a static NUL-terminated string.
    let version = unsafe {
        let f: extern "C" fn() -> *const c_char = std::mem::transmute(proc_addr);
        CStr::from_ptr(f()).to_string_lossy().into_owned()
    };
    format!("Wine {version}")
}

/// Runs one scenario of the Windows build.
pub fn run(scenario: &str, o: &Opts) -> Result<Report, String> {
    let host = host();
    let mut r = match scenario {
        "echo" => echo(o, &host)?,
        "file" => {
            let mut r = crate::file::run(o)?;
            r.title = format!("{host} (IOCP driver), {}", r.title);
            r
        }
        other => {
            return Err(format!(
                "{other}: the Windows build has the echo and file scenarios only"
            ))
        }
    };
    r.notes.insert(
        0,
        format!(
            "host: {host}, x86_64-pc-windows-gnu build{}",
            if host.starts_with("Wine") {
                "; Wine figures, they say nothing about speed on Windows"
            } else {
                ""
            }
        ),
    );
    Ok(r)
}

/// The echo scenario, in-process: req/s and round trips per connection
/// count, and veloq's completions per wait call.
fn echo(o: &Opts, host: &str) -> Result<Report, String> {
    let mut progress = Progress::new("echo", o.conns.len() * o.rounds * o.runtimes.len());
    let mut figures = Vec::new();
    for &conns in &o.conns {
        let tag = format!("{conns} conns");
        let mut f_rate = Figure::new(format!("req/s, {tag}"), "req/s", Better::Higher);
        let mut f_p50 = Figure::new(format!("p50 round trip, {tag}"), "µs", Better::Lower);
        let mut f_p99 = Figure::new(format!("p99 round trip, {tag}"), "µs", Better::Lower);
        let mut f_batch = Figure::new(
            format!("veloq completions per GetQueuedCompletionStatusEx call, {tag}"),
            "packets",
            Better::Higher,
        );
        for round in 1..=o.rounds {
            for rt in &o.runtimes {
                progress.step(&format!("{tag}, round {round}, {rt}"));
                let s = inproc::measure(rt, conns, o.warmup, o.window)?;
                f_rate.push(rt, s.rate);
                f_p50.push(rt, s.p50_us);
                f_p99.push(rt, s.p99_us);
                if let Some(d) = s.driver {
                    f_batch.push(rt, d.completions as f64 / d.wait_calls.max(1) as f64);
                }
            }
        }
        figures.extend([f_rate, f_p50, f_p99]);
        if !f_batch.series.is_empty() {
            figures.push(f_batch);
        }
    }
    progress.finish();
    // Headline first: req/s at every connection count (a stable sort).
    figures.sort_by_key(|f| !f.name.starts_with("req/s") as u8);
    Ok(Report {
        title: format!(
            "{host} (IOCP driver), echo: TCP ping-pong, 1 KiB, server runtime on one thread, \
             one blocking client thread per connection, in one process"
        ),
        notes: vec![
            format!(
                "{} rounds × {:.1} s windows after {:.1} s warm-up (server start and connecting included); \
                 runtimes alternate within each round; fresh server runtime per window; nothing pinned",
                o.rounds,
                o.window.as_secs_f64(),
                o.warmup.as_secs_f64()
            ),
            "completions per GetQueuedCompletionStatusEx call: packets dequeued / calls over the window \
             (veloq::runtime::driver_stats() read on the server thread at the window's edges)"
                .into(),
        ],
        figures,
    })
}
