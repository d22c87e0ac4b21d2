//! Command-line options. Hand-parsed (no argument-parsing dependency):
//!
//! ```text
//! veloq-bench <echo|file|timers|alloc|all> [--quick] [--rounds N] [--secs S]
//!             [--warmup S] [--rate R] [--conns 1,16,64] [--runtimes a,b]
//!             [--timers N] [--file-mib N] [--out DIR] [--max-busy PCT] [--retries N]
//! veloq-bench serve <runtime>        (internal: one echo server process)
//! veloq-bench http [--conns 16,64] [...]     (hyper on veloq vs tokio, wrk load)
//! veloq-bench serve-http <runtime>   (internal: one hyper server process)
//! veloq-bench workers [--workers 1,2] [...]   (multi-worker echo scenario)
//! veloq-bench serve-workers <runtime> <n>    (internal: an n-worker echo server)
//! veloq-bench load ADDR CONNS SECS   (the load client alone, for profiling)
//! veloq-bench callgrind [--servers a,b] [--loads 16@2000,64@10000] [...]
//!             (instructions per request under valgrind; see callgrind.rs)
//! ```

use std::path::PathBuf;
use std::time::Duration;

/// Every runtime the echo scenario knows, veloq first, then the two
/// reference servers with no runtime (a raw io_uring and a raw epoll loop).
#[cfg(target_os = "linux")]
pub const ECHO_RUNTIMES: &[&str] = &[
    "veloq",
    "tokio",
    "monoio",
    "compio",
    "raw-uring",
    "raw-epoll",
];
/// Every runtime the echo scenario knows, veloq first (monoio is
/// Linux-only).
#[cfg(not(target_os = "linux"))]
pub const ECHO_RUNTIMES: &[&str] = &["veloq", "tokio", "compio"];

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run one scenario (or "all").
    Bench(Opts),
    /// Internal: serve echo with one runtime on this process.
    Serve(String),
    /// Internal: serve the http scenario's hyper service with one runtime
    /// on this process.
    ServeHttp(String),
    /// Internal: serve echo with `workers` worker threads of `runtime`.
    ServeWorkers {
        /// Runtime name.
        runtime: String,
        /// Worker threads.
        workers: usize,
    },
    /// Profiling aid: run the load client alone against `addr` with
    /// `conns` connections for `secs` seconds (closed loop).
    Load {
        /// Server address.
        addr: String,
        /// Connections.
        conns: usize,
        /// Seconds.
        secs: f64,
    },
    /// Instructions per echo request under callgrind (the arguments after
    /// `callgrind`, parsed by `callgrind::parse`).
    Callgrind(Vec<String>),
    /// Print usage.
    Help,
}

/// Options of a benchmark run.
#[derive(Debug, Clone, PartialEq)]
pub struct Opts {
    /// echo, file, timers, alloc, workers, http or all.
    pub scenario: String,
    /// Alternating rounds per contender.
    pub rounds: usize,
    /// Length of one measured window.
    pub window: Duration,
    /// Warm-up before each window.
    pub warmup: Duration,
    /// Fixed request rate (req/s) for the server-CPU figure.
    pub rate: f64,
    /// Connection counts for the closed-loop echo runs.
    pub conns: Vec<usize>,
    /// Runtimes to compare (veloq always first).
    pub runtimes: Vec<String>,
    /// Timers in the timer scenario.
    pub timers: usize,
    /// Size of the file scenario's file in MiB.
    pub file_mib: u64,
    /// Where the Markdown and SVG go.
    pub out: PathBuf,
    /// Whether `--quick` was given (recorded in the report).
    pub quick: bool,
    /// An echo window during which other processes kept more than this
    /// share (percent) of the machine busy is measured again…
    pub max_busy: f64,
    /// …at most this many times.
    pub retries: usize,
    /// Worker counts of the multi-worker echo scenario.
    pub workers: Vec<usize>,
}

impl Opts {
    fn defaults(scenario: String, quick: bool) -> Opts {
        Opts {
            scenario,
            rounds: if quick { 2 } else { 3 },
            window: Duration::from_millis(if quick { 1500 } else { 5000 }),
            warmup: Duration::from_millis(if quick { 500 } else { 1000 }),
            rate: 40_000.0,
            conns: vec![1, 16, 64],
            runtimes: ECHO_RUNTIMES.iter().map(|s| s.to_string()).collect(),
            timers: 1_000_000,
            file_mib: 256,
            out: PathBuf::from("results"),
            quick,
            max_busy: 10.0,
            retries: if quick { 1 } else { 3 },
            workers: vec![1, 2],
        }
    }
}

/// Usage text.
pub const USAGE: &str = "usage: veloq-bench <echo|file|timers|alloc|workers|http|all> [--quick] [--rounds N] \
[--secs S] [--warmup S] [--rate REQ_PER_S] [--conns 1,16,64] [--runtimes veloq,tokio,monoio,compio] \
[--timers N] [--file-mib N] [--out DIR] [--max-busy PCT] [--retries N] [--workers 1,2,4]
       veloq-bench callgrind [--servers veloq,veloq-epoll,tokio,monoio,compio,raw-uring,raw-epoll] \
[--loads 16@2000,64@10000] [--secs S] [--warmup S] [--out DIR] [--keep DUMP_DIR]";

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some(first) = args.first() else {
        return Ok(Command::Help);
    };
    match first.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "serve" => {
            let rt = args.get(1).ok_or("serve needs a runtime name")?;
            return Ok(Command::Serve(rt.clone()));
        }
        "serve-http" => {
            let rt = args.get(1).ok_or("serve-http needs a runtime name")?;
            return Ok(Command::ServeHttp(rt.clone()));
        }
        "serve-workers" => {
            let [_, runtime, workers] = args else {
                return Err("usage: serve-workers RUNTIME WORKERS".into());
            };
            return Ok(Command::ServeWorkers {
                runtime: runtime.clone(),
                workers: num(workers, "workers")?,
            });
        }
        "load" => {
            let [_, addr, conns, secs] = args else {
                return Err("usage: load ADDR CONNS SECS".into());
            };
            return Ok(Command::Load {
                addr: addr.clone(),
                conns: num(conns, "conns")?,
                secs: num(secs, "secs")?,
            });
        }
        "callgrind" => return Ok(Command::Callgrind(args[1..].to_vec())),
        "echo" | "file" | "timers" | "alloc" | "workers" | "http" | "all" => {}
        other => return Err(format!("unknown scenario {other:?}")),
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Opts::defaults(first.clone(), quick);
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        if flag == "--quick" {
            continue;
        }
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value"))
                .cloned()
        };
        match flag.as_str() {
            "--rounds" => o.rounds = num(&value()?, flag)?,
            "--secs" => o.window = Duration::from_secs_f64(num(&value()?, flag)?),
            "--warmup" => o.warmup = Duration::from_secs_f64(num(&value()?, flag)?),
            "--rate" => o.rate = num(&value()?, flag)?,
            "--timers" => o.timers = num(&value()?, flag)?,
            "--file-mib" => o.file_mib = num(&value()?, flag)?,
            "--out" => o.out = PathBuf::from(value()?),
            "--max-busy" => o.max_busy = num(&value()?, flag)?,
            "--retries" => o.retries = num(&value()?, flag)?,
            "--workers" => {
                o.workers = value()?
                    .split(',')
                    .map(|c| num(c, flag))
                    .collect::<Result<_, _>>()?
            }
            "--conns" => {
                o.conns = value()?
                    .split(',')
                    .map(|c| num(c, flag))
                    .collect::<Result<_, _>>()?
            }
            "--runtimes" => {
                let v = value()?;
                let mut rts: Vec<String> = v.split(',').map(str::to_string).collect();
                if let Some(bad) = rts.iter().find(|r| !ECHO_RUNTIMES.contains(&r.as_str())) {
                    return Err(format!("unknown runtime {bad:?}"));
                }
                // veloq is what ratios are taken of: always measured, always first.
                rts.retain(|r| r != "veloq");
                rts.insert(0, "veloq".into());
                o.runtimes = rts;
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.rounds == 0
        || o.conns.contains(&0)
        || o.workers.contains(&0)
        || o.rate <= 0.0
        || o.timers < 2
    {
        return Err("rounds, conns, workers, rate and timers must be positive".into());
    }
    Ok(Command::Bench(o))
}

fn num<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: {s:?} is not a valid number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn quick_changes_defaults_and_flags_override() {
        let Command::Bench(o) = parse(&args("echo --rounds 5 --quick --conns 2,8")).unwrap() else {
            panic!("not a bench command")
        };
        assert!(o.quick);
        assert_eq!(o.rounds, 5);
        assert_eq!(o.window, Duration::from_millis(1500));
        assert_eq!(o.conns, vec![2, 8]);
    }

    #[test]
    fn veloq_is_always_first() {
        let Command::Bench(o) = parse(&args("echo --runtimes tokio,veloq,compio")).unwrap() else {
            panic!("not a bench command")
        };
        assert_eq!(o.runtimes, vec!["veloq", "tokio", "compio"]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(&args("nope")).is_err());
        assert!(parse(&args("echo --rounds")).is_err());
        assert!(parse(&args("echo --rounds x")).is_err());
        assert!(parse(&args("echo --runtimes glommio")).is_err());
        assert!(parse(&args("echo --conns 0")).is_err());
        assert_eq!(
            parse(&args("serve tokio")).unwrap(),
            Command::Serve("tokio".into())
        );
        assert_eq!(parse(&[]).unwrap(), Command::Help);
        assert_eq!(
            parse(&args("serve-http veloq")).unwrap(),
            Command::ServeHttp("veloq".into())
        );
        assert!(parse(&args("serve-http")).is_err());
        assert!(matches!(
            parse(&args("http --quick")).unwrap(),
            Command::Bench(_)
        ));
        assert!(parse(&args("load 127.0.0.1:1 4")).is_err());
        assert!(matches!(
            parse(&args("load 127.0.0.1:1 4 2.5")).unwrap(),
            Command::Load { conns: 4, .. }
        ));
    }
}
