//! veloq-bench: veloq measured side by side against tokio (current_thread),
//! monoio (io_uring driver) and compio, in alternating rounds, with
//! Markdown and SVG output.
//!
//! ```text
//! cargo run --release -p veloq-bench -- <echo|file|timers|alloc|workers|http|all> [--quick] [options]
//! ```
//!
//! See `veloq-bench/README.md` for what each scenario measures.

mod opts;
mod progress;
mod report;
mod stats;
mod svg;

#[cfg(any(target_os = "linux", windows))]
mod file;
#[cfg(any(windows, test))]
mod inproc;
#[cfg(any(target_os = "linux", windows))]
mod servers;
#[cfg(any(windows, test))]
mod thread_client;
#[cfg(windows)]
mod wine;

#[cfg(target_os = "linux")]
mod alloc;
#[cfg(target_os = "linux")]
mod callgrind;
#[cfg(target_os = "linux")]
mod client;
#[cfg(target_os = "linux")]
mod echo;
#[cfg(target_os = "linux")]
mod http;
#[cfg(target_os = "linux")]
mod raw_epoll;
#[cfg(target_os = "linux")]
mod raw_uring;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod timers;
#[cfg(target_os = "linux")]
mod workers;

#[cfg(target_os = "linux")]
#[global_allocator]
static GLOBAL: alloc::CountingAlloc = alloc::CountingAlloc;

use opts::{Command, USAGE};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match opts::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let result = match cmd {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Serve(rt) => serve(&rt),
        Command::ServeHttp(rt) => serve_http(&rt),
        Command::ServeWorkers { runtime, workers } => serve_workers(&runtime, workers),
        Command::Load { addr, conns, secs } => load(&addr, conns, secs),
        Command::Bench(o) => bench(&o, &args),
        Command::Callgrind(rest) => callgrind_main(&rest, &args),
    };
    if let Err(e) = result {
        eprintln!("veloq-bench: {e}");
        std::process::exit(1);
    }
}

#[cfg(target_os = "linux")]
fn serve(rt: &str) -> Result<(), String> {
    echo::serve_main(rt)
}

#[cfg(target_os = "linux")]
fn serve_http(rt: &str) -> Result<(), String> {
    http::serve_main(rt)
}

#[cfg(target_os = "linux")]
fn serve_workers(rt: &str, workers: usize) -> Result<(), String> {
    workers::serve_main(rt, workers)
}

#[cfg(target_os = "linux")]
fn load(addr: &str, conns: usize, secs: f64) -> Result<(), String> {
    let spec = client::LoadSpec {
        addr: addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        conns,
        warmup: std::time::Duration::ZERO,
        window: std::time::Duration::from_secs_f64(secs),
        rate: None,
    };
    let r = client::run_load(&spec, |_| {}).map_err(|e| e.to_string())?;
    println!(
        "{:.0} req/s, p50 {:.1} µs, p99 {:.1} µs",
        r.rate(),
        r.latency_us(0.5),
        r.latency_us(0.99)
    );
    Ok(())
}

#[cfg(target_os = "linux")]
fn bench(o: &opts::Opts, args: &[String]) -> Result<(), String> {
    let scenarios: Vec<&str> = match o.scenario.as_str() {
        "all" => vec!["echo", "file", "timers", "alloc"],
        s => vec![s],
    };
    let load_before = sys::load_average();
    for s in scenarios {
        let mut r = match s {
            "echo" => echo::run(o)?,
            "file" => file::run(o)?,
            "timers" => timers::run(o)?,
            "alloc" => alloc::run(o)?,
            "workers" => workers::run(o)?,
            "http" => http::run(o)?,
            _ => unreachable!("parse accepts only known scenarios"),
        };
        r.notes.insert(
            0,
            format!(
                "command: `cargo run --release -p veloq-bench -- {}`",
                args.join(" ")
            ),
        );
        r.notes
            .insert(1, format!("machine: {}", sys::machine_description()));
        r.notes.push(format!(
            "1-minute load average before / after: {load_before:.2} / {:.2}",
            sys::load_average()
        ));
        write_report(o, s, &r)?;
    }
    Ok(())
}

/// The Windows build (run under Wine by `scripts/bench-windows.sh`): echo
/// and file. The machine is described by `VELOQ_BENCH_MACHINE` (the
/// script sets it from the Linux host).
#[cfg(windows)]
fn bench(o: &opts::Opts, args: &[String]) -> Result<(), String> {
    let scenarios: Vec<&str> = match o.scenario.as_str() {
        "all" => vec!["echo", "file"],
        s => vec![s],
    };
    let machine = std::env::var("VELOQ_BENCH_MACHINE").unwrap_or_else(|_| "not described".into());
    for s in scenarios {
        let mut r = wine::run(s, o)?;
        r.notes.insert(
            0,
            format!(
                "command: `veloq-bench.exe {}` (release build)",
                args.join(" ")
            ),
        );
        r.notes.insert(2, format!("machine: {machine}"));
        write_report(o, s, &r)?;
    }
    Ok(())
}

/// Prints the Markdown and writes `<out>/<scenario>.md` and `.svg`.
#[cfg(any(target_os = "linux", windows))]
fn write_report(o: &opts::Opts, scenario: &str, r: &report::Report) -> Result<(), String> {
    let md = r.to_markdown();
    println!("{md}");
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let md_path = o.out.join(format!("{scenario}.md"));
    let svg_path = o.out.join(format!("{scenario}.svg"));
    std::fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    std::fs::write(&svg_path, svg::to_svg(r))
        .map_err(|e| format!("{}: {e}", svg_path.display()))?;
    eprintln!("wrote {} and {}", md_path.display(), svg_path.display());
    Ok(())
}

#[cfg(target_os = "linux")]
fn callgrind_main(rest: &[String], args: &[String]) -> Result<(), String> {
    callgrind::run(&callgrind::parse(rest)?, args)
}

#[cfg(not(target_os = "linux"))]
fn callgrind_main(_: &[String], _: &[String]) -> Result<(), String> {
    Err("the callgrind mode needs Linux (valgrind, the epoll load client)".into())
}

#[cfg(not(target_os = "linux"))]
fn serve(_: &str) -> Result<(), String> {
    Err("echo server processes are Linux-only; the Windows build serves in-process".into())
}

#[cfg(not(target_os = "linux"))]
fn serve_http(_: &str) -> Result<(), String> {
    Err("the http scenario (wrk load) is Linux-only".into())
}

#[cfg(not(target_os = "linux"))]
fn serve_workers(_: &str, _: usize) -> Result<(), String> {
    Err("the multi-worker echo servers need Linux (monoio's io_uring driver)".into())
}

#[cfg(not(target_os = "linux"))]
fn load(_: &str, _: usize, _: f64) -> Result<(), String> {
    Err("the epoll load client needs Linux".into())
}

#[cfg(not(any(target_os = "linux", windows)))]
fn bench(_: &opts::Opts, _: &[String]) -> Result<(), String> {
    Err("veloq-bench runs on Linux and Windows (Wine) only".into())
}
