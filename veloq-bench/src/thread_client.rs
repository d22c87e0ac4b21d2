//! The echo load client of the Wine leg: one plain blocking std thread per
//! connection (no runtime under test drives the load, and nothing here is
//! Linux-specific, so it builds for Windows as it is).
//!
//! Each connection keeps exactly one 1 KiB request in flight, closed loop:
//! write it, read the whole echo, check it, record the round trip, repeat.
//! The window is two instants fixed by the caller before the connections
//! are made (the time until `window.0` is warm-up, connecting included);
//! only round trips sent and answered inside it count. Every thread stops
//! at the window's end, and the sockets are closed when `run` returns.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Size of one request and of its echo.
pub const MESSAGE: usize = 1024;

/// How long a read may wait for an echo before the window fails.
const STALL: Duration = Duration::from_secs(20);

/// What load to put on a server.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Server address.
    pub addr: SocketAddr,
    /// Connections, one thread and one request in flight each.
    pub conns: usize,
    /// The measured window: (start, end).
    pub window: (Instant, Instant),
}

/// What the window measured.
pub struct Outcome {
    /// Round trips completed in the window.
    pub requests: u64,
    /// Window length.
    pub elapsed: Duration,
    /// Round-trip latencies in nanoseconds.
    pub hist: Histogram<u64>,
}

impl Outcome {
    /// Round trips per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at quantile `q` in microseconds.
    pub fn latency_us(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1_000, 10_000_000_000, 3).expect("histogram bounds")
}

/// Connects `spec.conns` sockets (`TCP_NODELAY`), runs one thread per
/// connection until the window's end, and merges their counts.
pub fn run(spec: &Spec) -> io::Result<Outcome> {
    let socks = (0..spec.conns)
        .map(|_| {
            let s = TcpStream::connect(spec.addr)?;
            s.set_nodelay(true)?;
            // A stalled server fails the window instead of hanging it.
            s.set_read_timeout(Some(STALL))?;
            Ok(s)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let (start, end) = spec.window;
    let results: Vec<io::Result<(u64, Histogram<u64>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = socks
            .into_iter()
            .enumerate()
            .map(|(i, sock)| scope.spawn(move || one_conn(sock, i as u8, start, end)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("client panicked")))
            })
            .collect()
    });
    let mut out = Outcome {
        requests: 0,
        elapsed: end.saturating_duration_since(start),
        hist: new_hist(),
    };
    for r in results {
        let (n, h) = r?;
        out.requests += n;
        out.hist.add(h).map_err(io::Error::other)?;
    }
    Ok(out)
}

/// One connection's closed loop; returns its round trips in the window.
fn one_conn(
    mut sock: TcpStream,
    tag: u8,
    start: Instant,
    end: Instant,
) -> io::Result<(u64, Histogram<u64>)> {
    let req: Vec<u8> = (0..MESSAGE).map(|i| (i as u8) ^ tag).collect();
    let mut resp = vec![0u8; MESSAGE];
    let mut hist = new_hist();
    let mut n = 0;
    loop {
        let sent_at = Instant::now();
        if sent_at >= end {
            return Ok((n, hist));
        }
        sock.write_all(&req)?;
        sock.read_exact(&mut resp)?;
        let done = Instant::now();
        if resp != req {
            return Err(io::Error::other("echo differs from the request"));
        }
        if sent_at >= start && done <= end {
            n += 1;
            let _ = hist.record((done - sent_at).as_nanos() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A blocking std echo server for `conns` connections.
    fn std_echo(conns: usize) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().take(conns) {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut b = [0u8; 4096];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 || s.write_all(&b[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn counts_round_trips_only_inside_the_window() {
        let addr = std_echo(3);
        let now = Instant::now();
        let window = (
            now + Duration::from_millis(50),
            now + Duration::from_millis(250),
        );
        let out = run(&Spec {
            addr,
            conns: 3,
            window,
        })
        .unwrap();
        assert!(out.requests > 0);
        assert_eq!(out.requests, out.hist.len());
        assert_eq!(out.elapsed, Duration::from_millis(200));
        // Every round trip counted lies inside the 200 ms window.
        assert!(out.hist.max() <= 200_000_000);
        assert!(Instant::now() >= window.1);
    }

    #[test]
    fn a_wrong_echo_is_an_error() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; MESSAGE];
            s.read_exact(&mut b).unwrap();
            b[7] ^= 1;
            s.write_all(&b).unwrap();
        });
        let now = Instant::now();
        let r = run(&Spec {
            addr,
            conns: 1,
            window: (now, now + Duration::from_secs(5)),
        });
        assert!(r.is_err());
    }
}
