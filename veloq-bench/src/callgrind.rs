//! The callgrind mode: user-space instructions per echo request for every
//! server, from one run, as ratios to tokio (current_thread).
//!
//! ```text
//! veloq-bench callgrind [--servers veloq,veloq-ring,veloq-epoll,veloq-ring-epoll,tokio,monoio,raw-uring,raw-epoll]
//!                       [--loads 16@2000,64@10000] [--secs S] [--warmup S]
//!                       [--out DIR] [--keep DIR]
//! ```
//!
//! Each server runs as `serve <runtime>` under `valgrind --tool=callgrind`
//! (pinned to the server CPU as in the echo scenario) and is loaded by the
//! shared epoll client at a fixed rate (1 KiB ping-pong). When the client's
//! measured window opens, the client stops and runs `callgrind_control -z`
//! (zero the counters); when it closes, `callgrind_control -d` (dump).
//! Instructions in the dump divided by round trips the client completed in
//! the window is the figure; it counts only user space (the kernel's share
//! is invisible to valgrind), and it is deterministic where CPU times are
//! noise.
//!
//! Why the client stops around each control: under valgrind a thread
//! blocked in `io_uring_enter` takes no signal, so `callgrind_control`
//! (vgdb) reaches it through ptrace, which works on an idle server. Doing
//! both controls with the client paused makes the counted span and the
//! client's window cover the same round trips, to within the at most
//! `conns` requests in flight at each edge. The server is then killed
//! (SIGKILL; no final dump). The dumps stay in `--keep` (default
//! `/tmp/veloq-callgrind`) for `callgrind_annotate`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::client::{run_load, LoadSpec, Phase};

/// Every server this mode knows: the runtimes, veloq on each Linux driver,
/// and the two reference loops with no runtime.
pub const SERVERS: &[&str] = &[
    "veloq",
    "veloq-ring",
    "veloq-epoll",
    "veloq-ring-epoll",
    "tokio",
    "monoio",
    "compio",
    "raw-uring",
    "raw-epoll",
];

/// Servers measured unless `--servers` says otherwise.
const DEFAULT_SERVERS: &[&str] = &[
    "veloq",
    "veloq-epoll",
    "tokio",
    "monoio",
    "raw-uring",
    "raw-epoll",
];

/// The ratios are taken to this server.
const BASE: &str = "tokio";

/// Options of the callgrind mode.
#[derive(Debug, Clone, PartialEq)]
pub struct CgOpts {
    /// Servers, in column order.
    pub servers: Vec<String>,
    /// (connections, total req/s) per paced load.
    pub loads: Vec<(usize, f64)>,
    /// Measured window.
    pub window: Duration,
    /// Load before the window (valgrind translates the hot code here).
    pub warmup: Duration,
    /// Where `callgrind.md` goes.
    pub out: PathBuf,
    /// Where the callgrind dumps stay.
    pub keep: PathBuf,
}

/// Parses the arguments after `callgrind`.
pub fn parse(args: &[String]) -> Result<CgOpts, String> {
    let mut o = CgOpts {
        servers: DEFAULT_SERVERS.iter().map(|s| s.to_string()).collect(),
        loads: vec![(16, 2_000.0), (64, 10_000.0)],
        window: Duration::from_secs(4),
        warmup: Duration::from_secs(2),
        out: PathBuf::from("results"),
        keep: PathBuf::from("/tmp/veloq-callgrind"),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--servers" => {
                o.servers = v.split(',').map(str::to_string).collect();
                if let Some(bad) = o.servers.iter().find(|s| !SERVERS.contains(&s.as_str())) {
                    return Err(format!("unknown server {bad:?}"));
                }
            }
            "--loads" => {
                o.loads = v
                    .split(',')
                    .map(|l| {
                        let (c, r) = l
                            .split_once('@')
                            .ok_or_else(|| format!("--loads: {l:?} is not CONNS@RATE"))?;
                        Ok((num(c, flag)?, num(r, flag)?))
                    })
                    .collect::<Result<_, String>>()?;
            }
            "--secs" => o.window = Duration::from_secs_f64(num(v, flag)?),
            "--warmup" => o.warmup = Duration::from_secs_f64(num(v, flag)?),
            "--out" => o.out = PathBuf::from(v),
            "--keep" => o.keep = PathBuf::from(v),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.servers.is_empty()
        || o.loads.iter().any(|&(c, r)| c == 0 || r <= 0.0)
        || o.window.is_zero()
    {
        return Err("servers, conns, rates and --secs must be non-empty and positive".into());
    }
    Ok(o)
}

fn num<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: {s:?} is not a valid number"))
}

/// What one server did in one window.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Instructions (Ir) counted between the zero and the dump.
    instructions: u64,
    /// Round trips the client completed in its window.
    requests: u64,
}

impl Run {
    fn per_request(&self) -> f64 {
        self.instructions as f64 / self.requests.max(1) as f64
    }
}

/// `serve` arguments and `VELOQ_DRIVER` for a server name.
fn server_command(server: &str) -> (&str, Option<&'static str>) {
    match server {
        "veloq" => ("veloq", Some("io_uring")),
        "veloq-epoll" => ("veloq", Some("epoll")),
        "veloq-ring" => ("veloq-ring", Some("io_uring")),
        "veloq-ring-epoll" => ("veloq-ring", Some("epoll")),
        other => (other, None),
    }
}

/// A server under callgrind; killed on drop.
struct Traced(Child);

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn control(flag: &str, pid: u32) -> Result<(), String> {
    let out = Command::new("callgrind_control")
        .args([flag, &pid.to_string()])
        .output()
        .map_err(|e| format!("callgrind_control: {e} (is valgrind installed?)"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_control {flag} {pid}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Reads `totals:` (or `summary:`) of a callgrind dump.
fn dump_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn measure(server: &str, conns: usize, rate: f64, o: &CgOpts) -> Result<Run, String> {
    let base = o.keep.join(format!("callgrind.out.{server}.{conns}"));
    let dump = PathBuf::from(format!("{}.1", base.display()));
    let _ = std::fs::remove_file(&base);
    let _ = std::fs::remove_file(&dump);
    let log = std::fs::File::create(o.keep.join(format!("valgrind.{server}.{conns}.log")))
        .map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let (rt, driver) = server_command(server);
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", base.display()))
        .arg(exe)
        .args(["serve", rt])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(d) = driver {
        cmd.env("VELOQ_DRIVER", d);
    }
    let mut child = Traced(
        cmd.spawn()
            .map_err(|e| format!("valgrind: {e} (is valgrind installed?)"))?,
    );
    let addr = crate::echo::read_listening(&mut child.0, &format!("{server} under valgrind"))?;
    let pid = child.0.id();
    let spec = LoadSpec {
        addr,
        conns,
        warmup: o.warmup,
        window: o.window,
        rate: Some(rate),
    };
    let mut controls = Vec::with_capacity(2);
    let res = run_load(&spec, |p| {
        // The client is paused while these run (see the module docs).
        controls.push(control(if p == Phase::Start { "-z" } else { "-d" }, pid));
    })
    .map_err(|e| format!("{server}, {conns} conns: {e}"))?;
    controls.into_iter().collect::<Result<(), String>>()?;
    drop(child);
    let text = std::fs::read_to_string(&dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    let instructions =
        dump_total(&text).ok_or_else(|| format!("{}: no totals line", dump.display()))?;
    Ok(Run {
        instructions,
        requests: res.requests,
    })
}

/// Runs every server at every load and writes `<out>/callgrind.md`.
pub fn run(o: &CgOpts, args: &[String]) -> Result<(), String> {
    let client_cpu = crate::echo::cpus().1;
    crate::sys::pin_current_thread(client_cpu)
        .map_err(|e| format!("pin to CPU {client_cpu}: {e}"))?;
    std::fs::create_dir_all(&o.keep).map_err(|e| format!("{}: {e}", o.keep.display()))?;
    let load_before = crate::sys::load_average();
    let mut rows = Vec::new();
    for &(conns, rate) in &o.loads {
        let mut runs = Vec::new();
        for s in &o.servers {
            eprintln!("callgrind: {s}, {conns} conns at {rate:.0} req/s");
            let r = measure(s, conns, rate, o)?;
            eprintln!(
                "  {:.0} instructions/request ({} requests)",
                r.per_request(),
                r.requests
            );
            runs.push(r);
        }
        rows.push(((conns, rate), runs));
    }
    let md = render(o, args, &rows, load_before);
    println!("{md}");
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let path = o.out.join("callgrind.md");
    std::fs::write(&path, md).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

type Rows = [((usize, f64), Vec<Run>)];

fn render(o: &CgOpts, args: &[String], rows: &Rows, load_before: f64) -> String {
    use crate::report::{fmt_ratio, fmt_value};
    use std::fmt::Write as _;
    let mut md = String::from("### echo: user-space instructions per request (callgrind)\n\n");
    let _ = writeln!(
        md,
        "- command: `cargo run --release -p veloq-bench -- {}`",
        args.join(" ")
    );
    let _ = writeln!(md, "- machine: {}", crate::sys::machine_description());
    let _ = writeln!(
        md,
        "- one run per cell; {:.1} s window after {:.1} s warm-up; 1 KiB ping-pong at a fixed rate; \
         server under `valgrind --tool=callgrind`, counters zeroed as the window opens and dumped as it closes; \
         kernel instructions not counted; ratios to {BASE} from the same run",
        o.window.as_secs_f64(),
        o.warmup.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "- 1-minute load average before / after: {load_before:.2} / {:.2}\n",
        crate::sys::load_average()
    );
    let header = |md: &mut String, first: &str| {
        let _ = write!(md, "| {first} |");
        for s in &o.servers {
            let _ = write!(md, " {s} |");
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|".repeat(o.servers.len()));
        md.push('\n');
    };
    let label = |&(c, r): &(usize, f64)| format!("{c} conns, {} req/s", fmt_value(r));
    header(&mut md, "instructions per request");
    for (load, runs) in rows {
        let _ = write!(md, "| {} |", label(load));
        for r in runs {
            let _ = write!(md, " {} |", fmt_value(r.per_request()));
        }
        md.push('\n');
    }
    let base = o.servers.iter().position(|s| s == BASE);
    if let Some(b) = base {
        md.push('\n');
        header(&mut md, &format!("ratio to {BASE}"));
        for (load, runs) in rows {
            let _ = write!(md, "| {} |", label(load));
            let t = runs[b].per_request();
            for r in runs {
                let _ = write!(md, " {} |", fmt_ratio(Some(r.per_request() / t)));
            }
            md.push('\n');
        }
    }
    md.push('\n');
    header(&mut md, "round trips counted");
    for (load, runs) in rows {
        let _ = write!(md, "| {} |", label(load));
        for r in runs {
            let _ = write!(md, " {} |", fmt_value(r.requests as f64));
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_parse_and_bad_input_is_an_error() {
        let o = parse(&args(
            "--servers tokio,raw-uring --loads 8@100,2@50.5 --secs 1",
        ))
        .unwrap();
        assert_eq!(o.servers, vec!["tokio", "raw-uring"]);
        assert_eq!(o.loads, vec![(8, 100.0), (2, 50.5)]);
        assert_eq!(o.window, Duration::from_secs(1));
        assert_eq!(parse(&[]).unwrap().loads, vec![(16, 2000.0), (64, 10000.0)]);
        assert!(parse(&args("--servers glommio")).is_err());
        assert!(parse(&args("--loads 16")).is_err());
        assert!(parse(&args("--loads 0@10")).is_err());
        assert!(parse(&args("--secs")).is_err());
        assert!(parse(&args("--bogus 1")).is_err());
    }

    #[test]
    fn totals_are_read_from_a_dump() {
        let text = "version: 1\nevents: Ir\nsummary: 440659\ntotals: 440660\n";
        assert_eq!(dump_total(text), Some(440659));
        assert_eq!(dump_total("events: Ir\ntotals: 12\n"), Some(12));
        assert_eq!(dump_total("events: Ir\n"), None);
    }
}
