//! One echo window with the server in this process (the Wine leg's
//! design): the runtime's echo server (`servers.rs`, the same code the
//! Linux leg runs in its server processes) on a thread of its own, loaded
//! by the thread-per-connection client (`thread_client.rs`), the same
//! client for every server.
//!
//! The window is fixed before the server starts, so that the veloq server
//! can read its driver counters at both edges on its own thread. When the
//! client is done (its sockets closed), the server is told to stop and
//! joined: every window starts a fresh runtime.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::servers::{serve_until, Control, DriverWindow};
use crate::thread_client::{self, Spec};

/// How long a server may take to bind.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One measured window against one server.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Round trips per second.
    pub rate: f64,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile round trip, µs.
    pub p99_us: f64,
    /// veloq's driver counters over the window (`None` for other runtimes).
    pub driver: Option<DriverWindow>,
}

/// Runs `warmup` (server start and connecting included) then a `window`
/// of `conns` closed-loop connections against a fresh `runtime` server.
pub fn measure(
    runtime: &str,
    conns: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Sample, String> {
    let start = Instant::now() + warmup;
    let end = start + window;
    let (stats_tx, stats_rx) = mpsc::channel();
    let ctl = Control {
        veloq_window: (runtime == "veloq").then_some((start, end, stats_tx)),
        ..Control::default()
    };
    let stop = ctl.stop.clone();
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let rt = runtime.to_string();
    let server = std::thread::Builder::new()
        .name(format!("{runtime}-server"))
        .spawn(move || {
            serve_until(
                &rt,
                |addr| {
                    let _ = addr_tx.send(addr);
                },
                ctl,
            )
        })
        .map_err(|e| format!("spawn {runtime} server thread: {e}"))?;
    let addr = match addr_rx.recv_timeout(START_TIMEOUT) {
        Ok(addr) => addr,
        // It returned without binding (say, an unknown runtime): its error
        // says why.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(match server.join() {
                Ok(Err(e)) => e,
                _ => format!("{runtime} server ended before it listened"),
            })
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err(format!("{runtime} server did not start"))
        }
    };
    let load = thread_client::run(&Spec {
        addr,
        conns,
        window: (start, end),
    });
    // Stop the server whatever the client's outcome: the flag, then one
    // connection so its accept loop looks at the flag.
    stop.store(true, Ordering::Release);
    drop(TcpStream::connect(addr));
    let served = server
        .join()
        .map_err(|_| format!("{runtime} server panicked"))?;
    served?;
    let load = load.map_err(|e| format!("{runtime}, {conns} conns: {e}"))?;
    Ok(Sample {
        rate: load.rate(),
        p50_us: load.latency_us(0.5),
        p99_us: load.latency_us(0.99),
        driver: stats_rx.try_recv().ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veloq_window_measures_and_reports_driver_counters() {
        let s = measure(
            "veloq",
            4,
            Duration::from_millis(100),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(s.rate > 0.0, "{s:?}");
        assert!(s.p50_us > 0.0 && s.p99_us >= s.p50_us, "{s:?}");
        let d = s.driver.expect("veloq sends its driver counters");
        assert!(d.wait_calls > 0 && d.completions > 0, "{d:?}");
    }

    #[test]
    fn tokio_server_stops_and_reports_no_driver_counters() {
        let s = measure(
            "tokio",
            2,
            Duration::from_millis(50),
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(s.rate > 0.0, "{s:?}");
        assert!(s.driver.is_none());
    }

    #[test]
    fn unknown_runtime_is_an_error() {
        assert!(measure("glommio", 1, Duration::ZERO, Duration::from_millis(10)).is_err());
    }
}
