//! A one-line progress indicator on stderr (`\r`-rewritten), with an ETA
//! from the average step time so far. Silent when stderr is not a
//! terminal except for one line per 10% so logs stay short.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Progress over a known number of steps.
pub struct Progress {
    name: String,
    total: usize,
    done: usize,
    start: Instant,
    tty: bool,
    last_decile: usize,
}

impl Progress {
    /// Starts counting `total` steps of scenario `name`.
    pub fn new(name: &str, total: usize) -> Progress {
        Progress {
            name: name.to_string(),
            total: total.max(1),
            done: 0,
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            last_decile: 0,
        }
    }

    /// Announces the step about to run.
    pub fn step(&mut self, what: &str) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let eta = if self.done == 0 {
            String::from("?")
        } else {
            format!(
                "{:.0}s",
                elapsed / self.done as f64 * (self.total - self.done) as f64
            )
        };
        let line = format!(
            "[{}] {:>3}/{} {:<40} {:>5.0}s elapsed, eta {eta}",
            self.name,
            self.done + 1,
            self.total,
            what,
            elapsed
        );
        let decile = self.done * 10 / self.total;
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
        } else if self.done == 0 || decile > self.last_decile {
            self.last_decile = decile;
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.done += 1;
    }

    /// Ends the line.
    pub fn finish(&self) {
        let secs = self.start.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(
            err,
            "[{}] done: {} steps in {secs:.0}s",
            self.name, self.total
        );
    }
}
