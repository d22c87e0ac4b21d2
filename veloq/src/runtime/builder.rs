//! [`Builder`]: runtime settings.

use std::io;
use std::time::Duration;

use super::executor::Runtime;
use crate::io::driver::{DriverConfig, DriverKind};

/// Configures and builds a [`Runtime`].
///
/// ```
/// let rt = veloq::Runtime::builder()
///     .entries(512)
///     .max_blocking_threads(8)
///     .build()?;
/// rt.block_on(async { /* ... */ });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    workers: usize,
    pin: bool,
    config: DriverConfig,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The default settings: one worker, 256 queue entries, at most 16
    /// blocking-pool threads.
    pub fn new() -> Self {
        Builder {
            workers: 1,
            pin: false,
            config: DriverConfig::default(),
        }
    }

    /// Submission queue size (io_uring) / completions fetched per wait
    /// (IOCP). Must be at least 1; the backend may round it up.
    pub fn entries(mut self, entries: u32) -> Self {
        self.config.entries = entries;
        self
    }

    /// Workers: threads, each with its own driver and executor (default
    /// 1). Worker 0 is the thread that calls `build` and runs `block_on`;
    /// `build` starts workers `1..n` on threads of their own. Tasks stay
    /// on the worker that spawned them; see [`spawn_on`](crate::spawn_on)
    /// and [`spawn_balanced`](crate::spawn_balanced). Must be at least 1.
    ///
    /// ```
    /// let rt = veloq::Runtime::builder().workers(2).build()?;
    /// let ids = rt.block_on(async {
    ///     let other = veloq::spawn_on(1, || async { veloq::worker_id() });
    ///     (veloq::worker_id(), other.await.unwrap())
    /// });
    /// assert_eq!(ids, (0, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Pins worker `i` to the `i`-th CPU this process may run on (wrapping
    /// around when there are more workers than CPUs): `sched_setaffinity`
    /// on Linux, `SetThreadAffinityMask` on Windows (CPUs of the first
    /// processor group only). Default `false`.
    ///
    /// Worker 0 is the thread that calls `build`; it stays pinned after the
    /// runtime is dropped.
    pub fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// Most threads the blocking-offload pool may run at once (used by
    /// backends that emulate some file ops on threads, e.g. IOCP's
    /// open/close/fsync). Must be at least 1.
    pub fn max_blocking_threads(mut self, threads: usize) -> Self {
        self.config.max_blocking_threads = threads;
        self
    }

    /// How long an idle blocking-pool thread lingers before it exits.
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.config.blocking_keep_alive = keep_alive;
        self
    }

    /// Sends of at least `min_len` bytes on a TCP stream
    /// (`TcpStream::write`, `write_all` and the write halves) go out
    /// zero-copy where the driver can: io_uring's `SEND_ZC` (Linux 6.0+).
    /// The kernel then sends from the buffer's own pages, and the write
    /// resolves, handing the buffer back, only once the kernel has let go
    /// of them (for TCP: once the peer acknowledged the data).
    ///
    /// Off (`None`) by default: measured over loopback it loses at every
    /// size from 4 KiB to 1 MiB (0.3–0.7× the throughput at 1.3–2.8× the
    /// CPU; the kernel copies data bound for a local socket anyway). It
    /// can pay off for large writes that leave through a network card,
    /// from about 64 KiB; measure there. The epoll and IOCP drivers,
    /// kernels without `SEND_ZC` and Unix-domain sockets always copy.
    /// [`driver_stats`](crate::runtime::driver_stats) counts the
    /// zero-copy sends.
    ///
    /// ```
    /// let rt = veloq::Runtime::builder()
    ///     .zero_copy_send(Some(64 * 1024))
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn zero_copy_send(mut self, min_len: Option<usize>) -> Self {
        self.config.zero_copy_min = min_len;
        self
    }

    /// Which I/O driver to run on (default [`DriverKind::Auto`]).
    ///
    /// On Linux, `Auto` takes the `VELOQ_DRIVER` environment variable
    /// (`auto`, `io_uring`, `epoll`) into account, then uses io_uring and
    /// falls back to epoll where io_uring is refused (seccomp,
    /// `kernel.io_uring_disabled`, no kernel support), logging one line to
    /// stderr. An explicit `IoUring` or `Epoll` is used as given: `build`
    /// fails if it cannot start. Windows runs on IOCP; asking for another
    /// driver there fails with `Unsupported`.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// use veloq::runtime::DriverKind;
    ///
    /// let rt = veloq::Runtime::builder().driver(DriverKind::Epoll).build()?;
    /// assert_eq!(rt.block_on(async { veloq::runtime::driver_kind() }), DriverKind::Epoll);
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn driver(mut self, kind: DriverKind) -> Self {
        self.config.kind = kind;
        self
    }

    /// Creates the runtime: worker 0 (and its driver) on the calling
    /// thread, and the threads of the other workers.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero setting, the error of a worker whose
    /// thread, pinning or driver cannot start (for example, io_uring
    /// disabled in the kernel); the workers already started are stopped
    /// then.
    pub fn build(&self) -> io::Result<Runtime> {
        if self.workers == 0 {
            return Err(invalid(
                "veloq: a runtime needs at least one worker (workers(0))",
            ));
        }
        if self.config.entries == 0 {
            return Err(invalid("veloq: entries must be at least 1"));
        }
        if self.config.max_blocking_threads == 0 {
            return Err(invalid("veloq: max_blocking_threads must be at least 1"));
        }
        self.config.kind.check_platform()?;
        Runtime::with_config(&self.config, self.workers, self.pin)
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}
