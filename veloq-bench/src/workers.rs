//! The multi-worker echo scenario: each runtime's echo server with `n`
//! worker threads, in its own process (`serve-workers <runtime> <n>`),
//! loaded by the shared epoll client. Each runtime is set up the way its
//! documentation recommends for using several cores:
//!
//! - veloq: `Runtime::builder().workers(n)`, one `SO_REUSEPORT` listener per
//!   worker (`TcpListener::bind_reuseport`), so the kernel spreads the
//!   connections and each stays on the worker that accepted it;
//! - tokio: the `multi_thread` runtime with `n` worker threads, one
//!   listener, tasks stolen between workers;
//! - monoio: `n` threads, each with its own runtime and `SO_REUSEPORT`
//!   listener (its thread-per-core recipe).
//!
//! Nothing is pinned: with `n` workers on an `n`-core machine the client
//! shares the CPUs with the server, as it would on a real host. Rounds
//! alternate the runtimes; every window starts a fresh server process.

use std::net::SocketAddr;

use crate::client::{run_load, LoadSpec};
use crate::echo::Server;
use crate::opts::Opts;
use crate::progress::Progress;
use crate::report::Report;
use crate::stats::{Better, Figure};

/// Read buffer size of every server (as in `servers`).
const BUF: usize = 4096;
/// Connections of every window.
const CONNS: usize = 64;
/// Runtimes this scenario knows.
pub const RUNTIMES: [&str; 3] = ["veloq", "tokio", "monoio"];

/// The `serve-workers <runtime> <n>` entry point of the child process.
pub fn serve_main(runtime: &str, workers: usize) -> Result<(), String> {
    let ready = |addr: SocketAddr| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "LISTENING {addr}");
        let _ = out.flush();
    };
    match runtime {
        "veloq" => serve_veloq(workers, ready),
        "tokio" => serve_tokio(workers, ready),
        "monoio" => serve_monoio(workers, ready),
        other => return Err(format!("no multi-worker echo server for {other:?}")),
    }
    Ok(())
}

fn serve_veloq(workers: usize, ready: impl FnOnce(SocketAddr)) {
    use veloq::net::TcpListener;

    async fn serve(listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            veloq::spawn(crate::servers::veloq_echo(stream));
        }
    }

    let rt = veloq::Runtime::builder()
        .workers(workers)
        .build()
        .expect("veloq runtime");
    rt.block_on(async {
        let first = TcpListener::bind_reuseport("127.0.0.1:0").expect("bind");
        let addr = first.local_addr().expect("local_addr");
        // Every other worker binds its own listener to the same port before
        // the address is announced.
        let mut bound = Vec::new();
        for w in 1..veloq::worker_count() {
            let (tx, rx) = veloq::sync::oneshot::channel();
            bound.push(rx);
            veloq::spawn_on(w, move || async move {
                let listener = TcpListener::bind_reuseport(addr).expect("bind");
                tx.send(()).expect("announce");
                serve(listener).await
            });
        }
        for rx in bound {
            rx.await.expect("worker bound");
        }
        ready(addr);
        serve(first).await
    })
}

fn serve_tokio(workers: usize, ready: impl FnOnce(SocketAddr)) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_io()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        ready(listener.local_addr().expect("local_addr"));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; BUF];
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(n) if n > 0 => n,
                        _ => return,
                    };
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn serve_monoio(workers: usize, ready: impl FnOnce(SocketAddr)) {
    use monoio::net::{ListenerOpts, TcpListener};

    let opts = ListenerOpts::new().reuse_port(true);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut addr: Option<SocketAddr> = None;
    let mut threads = Vec::new();
    for _ in 0..workers {
        let tx = tx.clone();
        let bind = addr.unwrap_or_else(|| "127.0.0.1:0".parse().expect("address"));
        // One runtime and one listener per thread; the first picks the port.
        threads.push(std::thread::spawn(move || {
            let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .build()
                .expect("monoio runtime (io_uring)");
            rt.block_on(async move {
                let listener = TcpListener::bind_with_config(bind, &opts).expect("bind");
                tx.send(listener.local_addr().expect("local_addr"))
                    .expect("announce");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(crate::servers::monoio_echo(stream));
                }
            })
        }));
        let bound = rx.recv().expect("monoio worker bound");
        addr.get_or_insert(bound);
    }
    ready(addr.expect("at least one worker"));
    for t in threads {
        let _ = t.join();
    }
}

/// Runs the whole scenario: req/s on `CONNS` connections for every worker
/// count in `o.workers`, runtimes alternating within each round.
pub fn run(o: &Opts) -> Result<Report, String> {
    let runtimes: Vec<&str> = RUNTIMES
        .iter()
        .copied()
        .filter(|r| o.runtimes.iter().any(|x| x == r))
        .collect();
    let mut progress = Progress::new("workers", o.workers.len() * o.rounds * runtimes.len());
    let mut figures = Vec::new();
    for &n in &o.workers {
        let tag = format!("{n} worker{}, {CONNS} conns", if n == 1 { "" } else { "s" });
        let mut f = Figure::new(format!("req/s, {tag}"), "req/s", Better::Higher);
        for round in 1..=o.rounds {
            for rt in &runtimes {
                progress.step(&format!("{tag}, round {round}, {rt}"));
                let server = Server::spawn(&["serve-workers", rt, &n.to_string()], rt)?;
                let spec = LoadSpec {
                    addr: server.addr,
                    conns: CONNS,
                    warmup: o.warmup,
                    window: o.window,
                    rate: None,
                };
                let r = run_load(&spec, |_| {}).map_err(|e| format!("{rt}, {tag}: {e}"))?;
                drop(server);
                f.push(rt, r.rate());
            }
        }
        figures.push(f);
    }
    progress.finish();
    let mut notes = vec![format!(
        "{} rounds × {:.1} s windows after {:.1} s warm-up; runtimes alternate within each round; \
         fresh server process per window; nothing pinned (the client shares the CPUs)",
        o.rounds,
        o.window.as_secs_f64(),
        o.warmup.as_secs_f64()
    )];
    // Scaling efficiency: req/s with n workers over n × req/s with 1.
    if let Some(one) = figures.first().filter(|_| o.workers.first() == Some(&1)) {
        for (f, &n) in figures.iter().zip(&o.workers).skip(1) {
            let eff: Vec<String> = runtimes
                .iter()
                .filter_map(|rt| {
                    let base = one.get(rt)?.median();
                    let at_n = f.get(rt)?.median();
                    Some(format!("{rt} {:.0}%", 100.0 * at_n / (n as f64 * base)))
                })
                .collect();
            notes.push(format!(
                "scaling efficiency at {n} workers (median req/s ÷ ({n} × 1-worker median)): {}",
                eff.join(", ")
            ));
        }
    }
    Ok(Report {
        title: format!("workers: multi-worker TCP echo, 1 KiB ping-pong, {CONNS} connections"),
        notes,
        figures,
    })
}
