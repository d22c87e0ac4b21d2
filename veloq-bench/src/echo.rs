//! The echo scenario: each runtime's echo server in its own process
//! (this binary re-executed as `serve <runtime>`, pinned to CPU 0), loaded
//! by the one shared epoll client on this thread (pinned to CPU 1).
//!
//! For every connection count, closed loop: req/s, p50/p99 round trip and
//! server CPU µs per request. Then at a fixed rate on 16 connections: the
//! server CPU µs per request, the figure that is stable on a noisy machine
//! (utime+stime of the server process from `/proc/<pid>/stat`). Rounds
//! alternate the runtimes (A B C D A B C D …); every round starts a fresh
//! server process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::client::{run_load, LoadSpec, Phase};
use crate::opts::Opts;
use crate::progress::Progress;
use crate::report::Report;
use crate::stats::{median, Better, Figure};
use crate::sys;

/// Reads the `LISTENING <addr>` line a server child prints on its stdout
/// once it accepts; `what` names the server in the error.
pub fn read_listening(child: &mut Child, what: &str) -> Result<SocketAddr, String> {
    let out = child.stdout.take().ok_or("no server stdout")?;
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    line.trim()
        .strip_prefix("LISTENING ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("{what} did not start (said {line:?})"))
}

/// (server CPU, client CPU): 0 and 1, or `VELOQ_BENCH_CPUS=S,C` (for
/// machines where 0 and 1 are hyper-threads of one core). Child server
/// processes inherit the variable.
pub fn cpus() -> (usize, usize) {
    std::env::var("VELOQ_BENCH_CPUS")
        .ok()
        .and_then(|v| parse_cpus(&v))
        .unwrap_or((0, 1))
}

fn parse_cpus(v: &str) -> Option<(usize, usize)> {
    let (s, c) = v.split_once(',')?;
    Some((s.trim().parse().ok()?, c.trim().parse().ok()?))
}
/// Connections of the fixed-rate run.
const FIXED_RATE_CONNS: usize = 16;

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `serve <runtime>` and waits for its address.
    pub fn start(runtime: &str) -> Result<Server, String> {
        Server::spawn(&["serve", runtime], runtime)
    }

    /// Re-executes the bench with `args` (a `serve…` subcommand that prints
    /// `LISTENING <addr>` once it accepts) and waits for the address.
    pub fn spawn(args: &[&str], runtime: &str) -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn server: {e}"))?;
        let addr = read_listening(&mut child, &format!("{runtime} server"))?;
        Ok(Server { child, addr })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `serve <runtime>` entry point of the child process.
pub fn serve_main(runtime: &str) -> Result<(), String> {
    let cpu = cpus().0;
    sys::pin_current_thread(cpu).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    crate::servers::serve(runtime, |addr| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "LISTENING {addr}");
        let _ = out.flush();
    })
}

/// One measured window against one server.
pub struct Sample {
    /// Round trips per second.
    pub rate: f64,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile round trip, µs.
    pub p99_us: f64,
    /// Server utime+stime per round trip, µs.
    pub cpu_us_per_req: f64,
    /// Share of the machine (0–100 %) busy with neither server nor client.
    pub others_pct: f64,
}

/// Runs one window of `conns` connections (closed loop or at `rate`)
/// against a fresh `runtime` server.
pub fn measure(runtime: &str, o: &Opts, conns: usize, rate: Option<f64>) -> Result<Sample, String> {
    let server = Server::start(runtime)?;
    let spec = LoadSpec {
        addr: server.addr,
        conns,
        warmup: o.warmup,
        window: o.window,
        rate,
    };
    let pid = server.pid();
    let me = std::process::id();
    let mut marks = Vec::with_capacity(2);
    let res = run_load(&spec, |_: Phase| {
        marks.push((
            sys::process_cpu_ticks(pid).unwrap_or(0),
            sys::process_cpu_ticks(me).unwrap_or(0),
            sys::machine_ticks().unwrap_or((0, 0)),
        ));
    })
    .map_err(|e| format!("{runtime}, {conns} conns: {e}"))?;
    drop(server);
    let [(s0, c0, (b0, t0)), (s1, c1, (b1, t1))] = marks[..] else {
        return Err("window marks missing".into());
    };
    let server_ticks = s1.saturating_sub(s0);
    let others = (b1 - b0).saturating_sub(server_ticks + c1.saturating_sub(c0));
    Ok(Sample {
        rate: res.rate(),
        p50_us: res.latency_us(0.5),
        p99_us: res.latency_us(0.99),
        cpu_us_per_req: server_ticks as f64 / sys::clock_ticks_per_sec() * 1e6
            / res.requests.max(1) as f64,
        others_pct: 100.0 * others as f64 / (t1 - t0).max(1) as f64,
    })
}

/// Runs the whole scenario.
pub fn run(o: &Opts) -> Result<Report, String> {
    let cpu = cpus().1;
    sys::pin_current_thread(cpu).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    let mut configs: Vec<(usize, Option<f64>)> = o.conns.iter().map(|&c| (c, None)).collect();
    configs.push((FIXED_RATE_CONNS, Some(o.rate)));
    let mut progress = Progress::new("echo", configs.len() * o.rounds * o.runtimes.len());
    let mut figures = Vec::new();
    let mut others = Vec::new();
    let mut retried = 0;
    for &(conns, rate) in &configs {
        let tag = match rate {
            None => format!("{conns} conns"),
            Some(r) => format!("{conns} conns at fixed {r:.0} req/s"),
        };
        let mut f_rate = Figure::new(format!("req/s, {tag}"), "req/s", Better::Higher);
        let mut f_p50 = Figure::new(format!("p50 round trip, {tag}"), "µs", Better::Lower);
        let mut f_p99 = Figure::new(format!("p99 round trip, {tag}"), "µs", Better::Lower);
        let mut f_cpu = Figure::new(
            format!("server CPU per request, {tag}"),
            "µs",
            Better::Lower,
        );
        for round in 1..=o.rounds {
            for rt in &o.runtimes {
                progress.step(&format!("{tag}, round {round}, {rt}"));
                let mut s = measure(rt, o, conns, rate)?;
                let mut tries = 0;
                while s.others_pct > o.max_busy && tries < o.retries {
                    tries += 1;
                    retried += 1;
                    s = measure(rt, o, conns, rate)?;
                }
                f_rate.push(rt, s.rate);
                f_p50.push(rt, s.p50_us);
                f_p99.push(rt, s.p99_us);
                f_cpu.push(rt, s.cpu_us_per_req);
                others.push(s.others_pct);
            }
        }
        if rate.is_none() {
            figures.extend([f_rate, f_cpu, f_p50, f_p99]);
        } else {
            figures.extend([f_cpu, f_rate, f_p50, f_p99]);
        }
    }
    progress.finish();
    // Headline figures first: the targets.
    figures.sort_by_key(|f| !f.name.contains("fixed") as u8);
    let max_others = others.iter().copied().fold(0.0f64, f64::max);
    Ok(Report {
        title: format!(
            "echo: TCP ping-pong, 1 KiB, server on CPU {}, shared epoll client on CPU {}",
            cpus().0,
            cpus().1
        ),
        notes: vec![
            format!(
                "{} rounds × {:.1} s windows after {:.1} s warm-up; runtimes alternate within each round; fresh server process per window",
                o.rounds,
                o.window.as_secs_f64(),
                o.warmup.as_secs_f64()
            ),
            format!(
                "machine busy with other work during the kept windows: median {:.0}%, max {:.0}% of all CPUs \
                 ({retried} windows measured again because other work exceeded {:.0}%, at most {} retries each)",
                median(&others),
                max_others,
                o.max_busy,
                o.retries
            ),
        ],
        figures,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_cpus;

    #[test]
    fn cpu_pair_parses() {
        assert_eq!(parse_cpus("0,1"), Some((0, 1)));
        assert_eq!(parse_cpus(" 2 , 5"), Some((2, 5)));
        assert_eq!(parse_cpus("3"), None);
        assert_eq!(parse_cpus("a,1"), None);
    }
}
