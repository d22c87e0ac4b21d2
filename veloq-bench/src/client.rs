//! The one load client every echo server is measured with: a plain
//! level-triggered epoll loop over non-blocking sockets on one thread, so
//! no runtime under test also drives the load.
//!
//! Each connection keeps exactly one 1 KiB request in flight: write it,
//! read the whole echo, record the round trip, repeat. In closed loop the
//! next request goes out at once; at a fixed rate each connection sends on
//! its own schedule (`conns / rate` apart, staggered), a timerfd waking the
//! loop for the next due send. Only round trips sent and answered inside
//! the measured window count.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Size of one request and of its echo.
pub const MESSAGE: usize = 1024;

/// What load to put on a server.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Server address.
    pub addr: SocketAddr,
    /// Connections, each with one request in flight.
    pub conns: usize,
    /// Run time before the window (not counted).
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
    /// Total requests per second across all connections; `None` is
    /// closed loop (as fast as the server answers).
    pub rate: Option<f64>,
}

/// What the window measured.
pub struct LoadResult {
    /// Round trips completed in the window.
    pub requests: u64,
    /// Actual window length.
    pub elapsed: Duration,
    /// Round-trip latencies in nanoseconds.
    pub hist: Histogram<u64>,
}

impl LoadResult {
    /// Round trips per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at quantile `q` in microseconds.
    pub fn latency_us(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Window boundary, reported to the caller so it can sample the server's
/// CPU time exactly there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The window opens.
    Start,
    /// The window closes.
    End,
}

struct Conn {
    sock: TcpStream,
    /// Bytes of the current request written.
    sent: usize,
    /// Bytes of its echo read.
    recvd: usize,
    /// A request is outstanding.
    busy: bool,
    /// When the outstanding request started.
    sent_at: Instant,
    /// When the next request is due (fixed rate only).
    due: Instant,
    /// EPOLLOUT is registered (a write would have blocked).
    want_out: bool,
}

const TIMER_TOKEN: u64 = u64::MAX;

struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is
        // a fresh fd that we own from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is open and owned by nobody else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: i32, fd: i32, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` lives on our stack for the call; the kernel copies it.
        let rc = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: the kernel writes at most `events.len()` entries into the
        // slice we exclusively borrow for the call.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n as usize)
    }
}

struct TimerFd(OwnedFd);

impl TimerFd {
    fn new() -> io::Result<TimerFd> {
        // SAFETY: no pointers; a non-negative result is a fresh fd we own.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is open and owned by nobody else.
        Ok(TimerFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// One-shot expiry `after` from now (at least 1 ns: zero disarms).
    fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is on our stack for the call; the old value is not
        // asked for (null).
        let rc =
            unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn drain(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into our stack buffer.
        unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }
}

/// Connects, warms up, measures one window and closes the connections.
/// `at_phase` runs at the window's start and end.
pub fn run_load(spec: &LoadSpec, mut at_phase: impl FnMut(Phase)) -> io::Result<LoadResult> {
    let epoll = Epoll::new()?;
    let timer = TimerFd::new()?;
    epoll.ctl(
        libc::EPOLL_CTL_ADD,
        timer.0.as_raw_fd(),
        libc::EPOLLIN as u32,
        TIMER_TOKEN,
    )?;

    let begin = Instant::now();
    let interval = spec
        .rate
        .map(|r| Duration::from_secs_f64(spec.conns as f64 / r));
    let mut conns = Vec::with_capacity(spec.conns);
    for i in 0..spec.conns {
        let sock = TcpStream::connect(spec.addr)?;
        sock.set_nodelay(true)?;
        sock.set_nonblocking(true)?;
        epoll.ctl(
            libc::EPOLL_CTL_ADD,
            sock.as_raw_fd(),
            libc::EPOLLIN as u32,
            i as u64,
        )?;
        let stagger = interval.map_or(Duration::ZERO, |iv| iv * i as u32 / spec.conns as u32);
        conns.push(Conn {
            sock,
            sent: 0,
            recvd: 0,
            busy: false,
            sent_at: begin,
            due: begin + stagger,
            want_out: false,
        });
    }

    let msg = [0x5au8; MESSAGE];
    let mut rbuf = [0u8; MESSAGE];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut hist = Histogram::<u64>::new_with_bounds(1_000, 10_000_000_000, 3)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let start_at = begin + spec.warmup;
    let end_at = start_at + spec.window;
    let mut window_start: Option<Instant> = None;
    let mut requests = 0u64;

    loop {
        let now = Instant::now();
        if window_start.is_none() && now >= start_at {
            at_phase(Phase::Start);
            window_start = Some(Instant::now());
            requests = 0;
            hist.reset();
        }
        if now >= end_at {
            at_phase(Phase::End);
            let elapsed = now - window_start.unwrap_or(now);
            return Ok(LoadResult {
                requests,
                elapsed,
                hist,
            });
        }

        // Start every request that is due.
        let mut next_due: Option<Instant> = None;
        for (i, c) in conns.iter_mut().enumerate() {
            if c.busy {
                continue;
            }
            if interval.is_some() && c.due > now {
                next_due = Some(next_due.map_or(c.due, |d| d.min(c.due)));
                continue;
            }
            c.busy = true;
            c.sent = 0;
            c.recvd = 0;
            c.sent_at = Instant::now();
            write_some(&epoll, c, i, &msg)?;
        }

        let timeout_ms = if interval.is_some() {
            match next_due {
                Some(d) => {
                    timer.arm(d.min(end_at).saturating_duration_since(now))?;
                    -1
                }
                None => 10,
            }
        } else {
            10
        };
        let n = epoll.wait(&mut events, timeout_ms)?;
        for ev in &events[..n] {
            let token = ev.u64;
            if token == TIMER_TOKEN {
                timer.drain();
                continue;
            }
            let i = token as usize;
            let c = &mut conns[i];
            if ev.events & libc::EPOLLOUT as u32 != 0 && c.sent < MESSAGE {
                write_some(&epoll, c, i, &msg)?;
            }
            if ev.events & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                loop {
                    match c.sock.read(&mut rbuf[..MESSAGE - c.recvd]) {
                        Ok(0) => return Err(io::Error::other("server closed a connection")),
                        Ok(n) => {
                            c.recvd += n;
                            if c.recvd == MESSAGE {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if c.recvd == MESSAGE {
                    let done = Instant::now();
                    c.busy = false;
                    if let Some(ws) = window_start {
                        if c.sent_at >= ws && done < end_at {
                            requests += 1;
                            hist.saturating_record((done - c.sent_at).as_nanos() as u64);
                        }
                    }
                    if let Some(iv) = interval {
                        c.due += iv;
                    } else {
                        // Closed loop: the next request goes out at once.
                        c.busy = true;
                        c.sent = 0;
                        c.recvd = 0;
                        c.sent_at = done;
                        write_some(&epoll, c, i, &msg)?;
                    }
                }
            }
        }
    }
}

/// Writes what the socket takes of the rest of the request; registers
/// EPOLLOUT while a write would block, drops it once all is written.
fn write_some(epoll: &Epoll, c: &mut Conn, token: usize, msg: &[u8]) -> io::Result<()> {
    while c.sent < msg.len() {
        match c.sock.write(&msg[c.sent..]) {
            Ok(n) => c.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !c.want_out {
                    c.want_out = true;
                    let ev = (libc::EPOLLIN | libc::EPOLLOUT) as u32;
                    epoll.ctl(libc::EPOLL_CTL_MOD, c.sock.as_raw_fd(), ev, token as u64)?;
                }
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if c.want_out {
        c.want_out = false;
        epoll.ctl(
            libc::EPOLL_CTL_MOD,
            c.sock.as_raw_fd(),
            libc::EPOLLIN as u32,
            token as u64,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A thread-per-connection echo server from std, for testing the client.
    fn std_echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut b = [0u8; 4096];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 || s.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn closed_loop_counts_round_trips_inside_the_window() {
        let spec = LoadSpec {
            addr: std_echo(),
            conns: 2,
            warmup: Duration::from_millis(50),
            window: Duration::from_millis(200),
            rate: None,
        };
        let mut phases = Vec::new();
        let r = run_load(&spec, |p| phases.push(p)).unwrap();
        assert_eq!(phases, vec![Phase::Start, Phase::End]);
        assert!(r.requests > 0);
        assert_eq!(r.hist.len(), r.requests);
        assert!(r.elapsed >= Duration::from_millis(190));
    }

    #[test]
    fn fixed_rate_holds_the_rate() {
        let spec = LoadSpec {
            addr: std_echo(),
            conns: 4,
            warmup: Duration::from_millis(50),
            window: Duration::from_millis(500),
            rate: Some(2000.0),
        };
        let r = run_load(&spec, |_| {}).unwrap();
        // 2000/s for 0.5 s is 1000 round trips; the schedule never runs
        // ahead, so more than a handful over means pacing is broken.
        assert!(r.requests <= 1010, "{} requests", r.requests);
        assert!(r.requests >= 200, "{} requests", r.requests);
    }
}
