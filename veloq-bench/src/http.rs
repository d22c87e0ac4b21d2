//! The http scenario: hyper 1.x on veloq (`veloq::hyper`, through
//! `veloq::compat::Compat`) against hyper 1.x on tokio `current_thread`
//! (hyper-util's `TokioIo`), the same service and the same HTTP/1.1
//! connection builder on both, loaded by `wrk` (Debian's package), a load
//! generator neither runtime wrote.
//!
//! Each server runs in its own process (this binary re-executed as
//! `serve-http <runtime>`, pinned to the server CPU, a fresh process per
//! window); `wrk -t1` runs on the client CPU (it inherits this thread's
//! pinning). For `GET /` (`Hello, world!\n`) and `GET /64k` (64 KiB) at each
//! connection count, keep-alive, closed loop: req/s and p50/p99 latency as
//! wrk reports them, and the server's CPU time per request (utime + stime
//! from `/proc/<pid>/stat` around the measured wrk run, divided by wrk's
//! request count). Before the load, every server's answer to both routes is
//! checked byte for byte.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};

use crate::echo::{cpus, Server};
use crate::opts::Opts;
use crate::progress::Progress;
use crate::report::Report;
use crate::stats::{median, Better, Figure};
use crate::sys;

/// The runtimes this scenario has a hyper server for.
pub const HTTP_RUNTIMES: &[&str] = &["veloq", "tokio"];

/// The body of `GET /`.
const HELLO: &[u8] = b"Hello, world!\n";

/// The body of `GET /64k`.
static BODY_64K: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// The routes measured, as (path, expected body).
const ROUTES: &[(&str, &[u8])] = &[("/", HELLO), ("/64k", &BODY_64K)];

/// The service both servers run.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body): (StatusCode, &'static [u8]) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => (StatusCode::OK, HELLO),
        (&Method::GET, "/64k") => (StatusCode::OK, &BODY_64K),
        _ => (StatusCode::NOT_FOUND, b"not found\n"),
    };
    let mut res = Response::new(Full::new(Bytes::from_static(body)));
    *res.status_mut() = status;
    Ok(res)
}

/// The `serve-http <runtime>` entry point of the child process.
pub fn serve_main(runtime: &str) -> Result<(), String> {
    let cpu = cpus().0;
    sys::pin_current_thread(cpu).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    let ready = |addr: SocketAddr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "LISTENING {addr}");
        let _ = out.flush();
    };
    match runtime {
        "veloq" => serve_veloq(ready),
        "tokio" => serve_tokio(ready),
        other => Err(format!("no hyper server for {other:?}")),
    }
}

/// hyper's HTTP/1.1 server on veloq: one task per connection.
fn serve_veloq(ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    use veloq::compat::Compat;
    veloq::block_on(async {
        let listener = veloq::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        ready(listener.local_addr().map_err(|e| e.to_string())?);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            drop(veloq::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(Compat::new(stream), service_fn(handle))
                    .await;
            }));
        }
    })
}

/// hyper's HTTP/1.1 server on tokio `current_thread`: one task per
/// connection.
fn serve_tokio(ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    use hyper_util::rt::TokioIo;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        ready(listener.local_addr().map_err(|e| e.to_string())?);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
        }
    })
}

/// Fetches `path` from `addr` with a plain HTTP/1.1 request and checks
/// the status and body.
fn check_route(addr: SocketAddr, path: &str, expected: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("GET {path}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no end of head in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {head}"));
    }
    if &raw[split + 4..] != expected {
        return Err(format!(
            "GET {path}: body of {} bytes differs from the expected {}",
            raw.len() - split - 4,
            expected.len()
        ));
    }
    Ok(())
}

/// What one wrk run reported.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub rate: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Non-2xx/3xx responses plus socket errors.
    pub errors: u64,
}

/// A latency as wrk prints it ("812.00us", "1.23ms", "2.00s") in µs.
fn parse_latency(s: &str) -> Option<f64> {
    let (num, scale) = if let Some(v) = s.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e6)
    } else {
        return None;
    };
    Some(num.parse::<f64>().ok()? * scale)
}

/// The figures of wrk's `--latency` output.
pub fn parse_wrk(out: &str) -> Option<WrkResult> {
    let mut requests = None;
    let mut rate = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut errors = 0;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => p50 = parse_latency(v),
            ["99%", v] => p99 = parse_latency(v),
            ["Requests/sec:", v] => rate = v.parse().ok(),
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                for n in rest.iter().skip(1).step_by(2) {
                    errors += n.trim_end_matches(',').parse::<u64>().ok()?;
                }
            }
            _ => {}
        }
    }
    Some(WrkResult {
        requests: requests?,
        rate: rate?,
        p50_us: p50?,
        p99_us: p99?,
        errors,
    })
}

/// Runs `wrk -t1` with `conns` connections for `secs` whole seconds.
fn wrk(url: &str, conns: usize, secs: u64) -> Result<WrkResult, String> {
    let out = Command::new("wrk")
        .args(["-t1", "--latency"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "wrk is not installed: the http scenario needs it (apt-get install -y wrk)"
                    .to_string()
            }
            _ => format!("run wrk: {e}"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text).ok_or_else(|| format!("unparsable wrk output: {text}"))
}

/// Whole seconds for wrk (it takes no fractions), at least one.
fn whole_secs(d: Duration) -> u64 {
    (d.as_secs_f64().ceil() as u64).max(1)
}

/// One measured window against one server.
struct Sample {
    wrk: WrkResult,
    cpu_us_per_req: f64,
    others_pct: f64,
}

/// Starts a fresh `runtime` server, checks its answers, warms it up and
/// measures one wrk run of `conns` connections on `path`.
fn measure(runtime: &str, o: &Opts, path: &str, conns: usize) -> Result<Sample, String> {
    let server = Server::spawn(&["serve-http", runtime], runtime)?;
    for (p, body) in ROUTES {
        check_route(server.addr, p, body).map_err(|e| format!("{runtime}: {e}"))?;
    }
    let url = format!("http://{}{path}", server.addr);
    if !o.warmup.is_zero() {
        wrk(&url, conns, whole_secs(o.warmup))?;
    }
    let pid = server.pid();
    let s0 = sys::process_cpu_ticks(pid).map_err(|e| e.to_string())?;
    let c0 = client_ticks();
    let (b0, t0) = sys::machine_ticks().map_err(|e| e.to_string())?;
    let res = wrk(&url, conns, whole_secs(o.window))?;
    let s1 = sys::process_cpu_ticks(pid).map_err(|e| e.to_string())?;
    let c1 = client_ticks();
    let (b1, t1) = sys::machine_ticks().map_err(|e| e.to_string())?;
    drop(server);
    if res.errors > 0 {
        return Err(format!(
            "{runtime}, {path}, {conns} conns: wrk saw {} errors",
            res.errors
        ));
    }
    let server_ticks = s1.saturating_sub(s0);
    let others = (b1 - b0).saturating_sub(server_ticks + c1.saturating_sub(c0));
    Ok(Sample {
        cpu_us_per_req: server_ticks as f64 / sys::clock_ticks_per_sec() * 1e6
            / res.requests.max(1) as f64,
        others_pct: 100.0 * others as f64 / (t1 - t0).max(1) as f64,
        wrk: res,
    })
}

/// CPU time of the client side: this process and its reaped children
/// (wrk), in clock ticks.
fn client_ticks() -> u64 {
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: `ru` is a zeroed rusage on our stack that getrusage fills;
        // `who` is one of the two documented constants.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut ru);
            ru
        };
        for tv in [ru.ru_utime, ru.ru_stime] {
            total += tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        }
    }
    (total * sys::clock_ticks_per_sec()) as u64
}

/// Runs the whole scenario.
pub fn run(o: &Opts) -> Result<Report, String> {
    let cpu = cpus().1;
    sys::pin_current_thread(cpu).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    let runtimes: Vec<&str> = o
        .runtimes
        .iter()
        .map(String::as_str)
        .filter(|r| HTTP_RUNTIMES.contains(r))
        .collect();
    let skipped: Vec<&str> = o
        .runtimes
        .iter()
        .map(String::as_str)
        .filter(|r| !HTTP_RUNTIMES.contains(r))
        .collect();
    let points: Vec<(&str, usize)> = ROUTES
        .iter()
        .flat_map(|(p, _)| o.conns.iter().map(move |&c| (*p, c)))
        .collect();
    let mut progress = Progress::new("http", points.len() * o.rounds * runtimes.len());
    let mut figures = Vec::new();
    let mut others = Vec::new();
    let mut retried = 0;
    for &(path, conns) in &points {
        let tag = format!("GET {path}, {conns} conns");
        let mut f_rate = Figure::new(format!("req/s, {tag}"), "req/s", Better::Higher);
        let mut f_cpu = Figure::new(
            format!("server CPU per request, {tag}"),
            "µs",
            Better::Lower,
        );
        let mut f_p50 = Figure::new(format!("p50 latency, {tag}"), "µs", Better::Lower);
        let mut f_p99 = Figure::new(format!("p99 latency, {tag}"), "µs", Better::Lower);
        for round in 1..=o.rounds {
            for rt in &runtimes {
                progress.step(&format!("{tag}, round {round}, {rt}"));
                let mut s = measure(rt, o, path, conns)?;
                let mut tries = 0;
                while s.others_pct > o.max_busy && tries < o.retries {
                    tries += 1;
                    retried += 1;
                    s = measure(rt, o, path, conns)?;
                }
                f_rate.push(rt, s.wrk.rate);
                f_cpu.push(rt, s.cpu_us_per_req);
                f_p50.push(rt, s.wrk.p50_us);
                f_p99.push(rt, s.wrk.p99_us);
                others.push(s.others_pct);
            }
        }
        figures.extend([f_rate, f_cpu, f_p50, f_p99]);
    }
    progress.finish();
    let max_others = others.iter().copied().fold(0.0f64, f64::max);
    let mut notes = vec![
        format!(
            "hyper 1.x HTTP/1.1 server (`http1::Builder::new()`, no timer, keep-alive) on each runtime; \
             wrk -t1 --latency, {} rounds × {} s windows after {} s warm-up (wrk takes whole seconds); \
             runtimes alternate within each round; fresh server process per window",
            o.rounds,
            whole_secs(o.window),
            if o.warmup.is_zero() { 0 } else { whole_secs(o.warmup) }
        ),
        format!(
            "machine busy with other work during the kept windows: median {:.0}%, max {:.0}% of all CPUs \
             ({retried} windows measured again because other work exceeded {:.0}%, at most {} retries each)",
            median(&others),
            max_others,
            o.max_busy,
            o.retries
        ),
    ];
    if !skipped.is_empty() {
        notes.push(format!(
            "not measured (no hyper server for them here): {}",
            skipped.join(", ")
        ));
    }
    Ok(Report {
        title: format!(
            "http: hyper on veloq vs hyper on tokio current_thread, wrk load, server on CPU {}, wrk on CPU {}",
            cpus().0,
            cpus().1
        ),
        notes,
        figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 2s test @ http://127.0.0.1:1/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   212.31us   50.02us   2.10ms   90.00%
    Req/Sec    70.12k     2.00k   75.00k    80.00%
  Latency Distribution
     50%  200.50us
     75%  230.00us
     90%  260.00us
     99%    1.25ms
  140123 requests in 2.00s, 17.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  70061.50
Transfer/sec:      8.55MB
";

    #[test]
    fn wrk_output_parses() {
        let r = parse_wrk(SAMPLE).unwrap();
        assert_eq!(r.requests, 140_123);
        assert_eq!(r.rate, 70_061.5);
        assert_eq!(r.p50_us, 200.5);
        assert_eq!(r.p99_us, 1250.0);
        assert_eq!(r.errors, 7);
        assert_eq!(parse_latency("2.00s"), Some(2e6));
        assert_eq!(parse_latency("12"), None);
    }

    #[test]
    fn incomplete_wrk_output_is_none() {
        assert_eq!(parse_wrk("unable to connect to 127.0.0.1:1"), None);
        let no_rate: String = SAMPLE
            .lines()
            .filter(|l| !l.starts_with("Requests/sec"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(parse_wrk(&no_rate), None);
    }

    #[test]
    fn whole_seconds_round_up() {
        assert_eq!(whole_secs(Duration::from_millis(1500)), 2);
        assert_eq!(whole_secs(Duration::from_millis(1)), 1);
        assert_eq!(whole_secs(Duration::from_secs(3)), 3);
    }
}
