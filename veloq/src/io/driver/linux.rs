//! The Linux driver: io_uring, or the epoll fallback, chosen when the
//! runtime starts.
//!
//! [`LinuxDriver`] is an enum over the two backends; every [`Driver`]
//! method is one `match` that forwards to the active one. Its op type,
//! [`LinuxOp`], is an enum of the platform-neutral descriptions
//! themselves: `submit` converts the description into the active
//! backend's op (`IntoPlatformOp<UringDriver>` /
//! `IntoPlatformOp<EpollDriver>`) right before handing it over, so neither
//! backend pays for the other and nothing is allocated on the way.
//!
//! # Selection
//!
//! [`DriverKind::Auto`] reads `VELOQ_DRIVER` (see `kind`), then tries
//! io_uring. Where io_uring is refused — `ENOSYS` (no io_uring in this
//! kernel, gVisor), `EPERM` / `EACCES` (a seccomp filter such as Docker's
//! or containerd's default profile, or the `kernel.io_uring_disabled`
//! sysctl) — it starts the epoll driver and logs one line to stderr saying
//! why. The refusal is remembered for the process: later `Auto` runtimes
//! go straight to epoll, without a failing syscall and without logging
//! again. Any other io_uring error (out of memory, too many open files)
//! is reported, not papered over.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use super::epoll::{EpollDriver, EpollOp};
use super::uring::{UringDriver, UringOp};
use super::{Driver, DriverConfig, DriverKind, DriverStats, IntoPlatformOp, KeepAlive, OpKey};
use super::{TimerWheel, WakeHandle};
use crate::io::op::{self, OpOutput};
use crate::sys::RawFd;

/// Set once io_uring was refused in this process (see the module docs).
static URING_REFUSED: AtomicBool = AtomicBool::new(false);

/// The driver of a Linux runtime; see the module docs.
// One per runtime, created once and never moved on a hot path: keeping
// both variants inline spares the io_uring path an indirection.
#[allow(clippy::large_enum_variant)]
pub(crate) enum LinuxDriver {
    /// io_uring.
    Uring(UringDriver),
    /// The readiness fallback.
    Epoll(EpollDriver),
}

/// Declares [`LinuxOp`] over the description types and the conversions
/// into it and out of it into each backend's op.
macro_rules! linux_ops {
    ($($name:ident),* $(,)?) => {
        /// A platform-neutral op description, converted into the active
        /// backend's op by [`LinuxDriver::submit`](Driver::submit).
        pub(crate) enum LinuxOp {
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                $name(op::$name),
            )*
        }

        $(
            impl IntoPlatformOp<LinuxDriver> for op::$name {
                fn into_platform_op(self) -> LinuxOp {
                    LinuxOp::$name(self)
                }

                #[inline]
                fn submit_polled_to(
                    self,
                    driver: &mut LinuxDriver,
                    cx: &mut Context<'_>,
                ) -> io::Result<(OpKey, Poll<OpOutput>)> {
                    match driver {
                        LinuxDriver::Uring(d) => {
                            let key = d.submit_new(
                                |slot| {
                                    *slot = Some(
                                        IntoPlatformOp::<UringDriver>::into_platform_op(self),
                                    )
                                },
                                cx.waker(),
                            )?;
                            Ok((key, Poll::Pending))
                        }
                        LinuxDriver::Epoll(d) => d.submit_polled(
                            IntoPlatformOp::<EpollDriver>::into_platform_op(self),
                            cx,
                        ),
                    }
                }
            }
        )*

        impl LinuxOp {
            /// Stores the io_uring op for this description in `slot`, the
            /// registry slot it runs from. Each arm writes its conversion
            /// straight into the slot, so the hot ops (inlined, a few
            /// fields) are built in place instead of on the stack and then
            /// copied (~220 bytes, the size of the largest op).
            #[inline]
            fn into_uring_at(self, slot: &mut Option<UringOp>) {
                match self {
                    $(LinuxOp::$name(d) => {
                        *slot = Some(IntoPlatformOp::<UringDriver>::into_platform_op(d))
                    })*
                }
            }

            /// The epoll op for this description.
            fn into_epoll(self) -> EpollOp {
                match self {
                    $(LinuxOp::$name(d) => IntoPlatformOp::<EpollDriver>::into_platform_op(d),)*
                }
            }
        }
    };
}

linux_ops!(
    ReadFixed,
    WriteFixed,
    Send,
    Recv,
    SendTo,
    RecvFrom,
    SendToName,
    RecvFromName,
    SendMsg,
    RecvMsg,
    Connect,
    Accept,
    Open,
    Close,
    Fsync,
    SyncFileRange,
    Fallocate,
    // --- filesystem path ops (fsuring) ---
    Statx,
    RenameAt,
    UnlinkAt,
    MkdirAt,
    LinkAt,
    SymlinkAt,
    // --- process ops (procwait) ---
    PollReady,
    // --- multishot ops (recvring) ---
    AcceptMulti,
    RecvMulti,
);

/// Forwards a method call to the active backend.
macro_rules! dispatch {
    ($self:expr, $d:ident => $call:expr) => {
        match $self {
            LinuxDriver::Uring($d) => $call,
            LinuxDriver::Epoll($d) => $call,
        }
    };
}

impl LinuxDriver {
    /// Which backend this is.
    pub(crate) fn kind(&self) -> DriverKind {
        match self {
            LinuxDriver::Uring(_) => DriverKind::IoUring,
            LinuxDriver::Epoll(_) => DriverKind::Epoll,
        }
    }

    /// Whether the path op `kind` runs as a driver op: on io_uring when the
    /// kernel has its opcode; never on epoll (the fs layer then uses the
    /// blocking pool).
    pub(crate) fn supports_path_op(&self, kind: op::PathOpKind) -> bool {
        match self {
            LinuxDriver::Uring(d) => d.supports_path_op(kind),
            LinuxDriver::Epoll(_) => false,
        }
    }

    /// Makes the io_uring backend forget its path opcodes (tests of the
    /// fallback); nothing on epoll.
    #[cfg(test)]
    pub(crate) fn forget_path_ops(&mut self) {
        if let LinuxDriver::Uring(d) = self {
            d.forget_path_ops();
        }
    }

    // --- multishot ops (recvring) ---

    /// Whether listeners keep one multishot accept armed (io_uring, when
    /// the kernel has it); never on epoll.
    pub(crate) fn supports_multishot_accept(&self) -> bool {
        match self {
            LinuxDriver::Uring(d) => d.supports_multishot_accept(),
            LinuxDriver::Epoll(_) => false,
        }
    }

    /// Registers a provided-buffer ring (see `uring::multishot`): `None`
    /// where receives take the portable path (epoll, an older kernel).
    ///
    /// # Safety
    ///
    /// As `UringDriver::register_pbuf_ring`.
    pub(crate) unsafe fn register_pbuf_ring(
        &mut self,
        ring: *mut u8,
        entries: u16,
    ) -> io::Result<Option<(u16, super::uring::PbufReleases)>> {
        match self {
            // SAFETY: forwarded from the caller.
            LinuxDriver::Uring(d) => unsafe { d.register_pbuf_ring(ring, entries) },
            LinuxDriver::Epoll(_) => Ok(None),
        }
    }

    /// Cancels `key` in the kernel and waits for it (see
    /// `UringDriver::cancel_sync`); `false` on epoll, which never runs
    /// multishot ops (its ops are cancelled synchronously on drop anyway).
    pub(crate) fn cancel_sync(&mut self, key: OpKey) -> bool {
        match self {
            LinuxDriver::Uring(d) => d.cancel_sync(key),
            LinuxDriver::Epoll(_) => false,
        }
    }

    /// Makes the io_uring backend forget its multishot ops (tests of the
    /// fallbacks); nothing on epoll.
    #[cfg(test)]
    pub(crate) fn forget_multishot(&mut self) {
        if let LinuxDriver::Uring(d) = self {
            d.forget_multishot();
        }
    }

    /// Starts the backend `kind` asks for (after `VELOQ_DRIVER`), with the
    /// fallback of the module docs for `Auto`.
    fn start(config: &DriverConfig) -> io::Result<LinuxDriver> {
        match config.kind.or_env()? {
            DriverKind::IoUring => UringDriver::new(config).map(LinuxDriver::Uring),
            DriverKind::Epoll => EpollDriver::new(config).map(LinuxDriver::Epoll),
            DriverKind::Auto if URING_REFUSED.load(Ordering::Relaxed) => {
                EpollDriver::new(config).map(LinuxDriver::Epoll)
            }
            DriverKind::Auto => match UringDriver::new(config) {
                Ok(d) => Ok(LinuxDriver::Uring(d)),
                Err(e) if is_refusal(&e) => {
                    let epoll = EpollDriver::new(config)?;
                    if !URING_REFUSED.swap(true, Ordering::Relaxed) {
                        eprintln!(
                            "veloq: io_uring unavailable ({}); using the epoll driver",
                            refusal_reason(&e)
                        );
                    }
                    Ok(LinuxDriver::Epoll(epoll))
                }
                Err(e) => Err(e),
            },
            other => {
                other.check_platform()?;
                unreachable!("every Linux driver kind is handled above")
            }
        }
    }
}

/// Whether an io_uring setup error means "not allowed / not here" (fall
/// back) rather than a resource problem (report).
fn is_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::EACCES)
    )
}

/// Why io_uring was refused, for the log line.
fn refusal_reason(e: &io::Error) -> String {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&v| v != 0);
    match (e.raw_os_error(), sysctl) {
        (_, Some(v)) => format!("kernel.io_uring_disabled={v}; io_uring_setup: {e}"),
        (Some(libc::ENOSYS), None) => {
            format!("io_uring_setup: {e}: the kernel lacks io_uring or a filter hides it")
        }
        _ => format!("io_uring_setup: {e}: denied, e.g. by a seccomp filter"),
    }
}

impl Driver for LinuxDriver {
    type Op = LinuxOp;

    fn new(config: &DriverConfig) -> io::Result<Self> {
        LinuxDriver::start(config)
    }

    #[inline]
    fn reserve(&mut self) -> io::Result<OpKey> {
        dispatch!(self, d => d.reserve())
    }

    #[inline]
    fn submit(&mut self, key: OpKey, op: LinuxOp) -> io::Result<()> {
        match self {
            LinuxDriver::Uring(d) => d.submit_in_place(key, |slot| op.into_uring_at(slot)),
            LinuxDriver::Epoll(d) => d.submit(key, op.into_epoll()),
        }
    }

    #[inline]
    fn poll_op(&mut self, key: OpKey, cx: &mut Context<'_>) -> Poll<OpOutput> {
        dispatch!(self, d => d.poll_op(key, cx))
    }

    #[inline]
    fn submit_polled(
        &mut self,
        op: LinuxOp,
        cx: &mut Context<'_>,
    ) -> io::Result<(OpKey, Poll<OpOutput>)> {
        match self {
            LinuxDriver::Uring(d) => {
                let key = d.submit_new(|slot| op.into_uring_at(slot), cx.waker())?;
                Ok((key, Poll::Pending))
            }
            LinuxDriver::Epoll(d) => d.submit_polled(op.into_epoll(), cx),
        }
    }

    fn cancel(&mut self, key: OpKey, keep_alive: Option<KeepAlive>) {
        dispatch!(self, d => d.cancel(key, keep_alive))
    }

    fn flush(&mut self) -> io::Result<()> {
        dispatch!(self, d => d.flush())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        dispatch!(self, d => d.wait(timeout))
    }

    fn process_completions(&mut self) -> usize {
        dispatch!(self, d => d.process_completions())
    }

    fn wake_handle(&self) -> WakeHandle {
        dispatch!(self, d => d.wake_handle())
    }

    fn register_handle(&mut self, fd: RawFd) -> io::Result<()> {
        dispatch!(self, d => d.register_handle(fd))
    }

    unsafe fn register_buffers(&mut self, bufs: &[(*mut u8, usize)]) -> io::Result<Option<u16>> {
        // SAFETY: forwarded from the caller.
        dispatch!(self, d => unsafe { d.register_buffers(bufs) })
    }

    fn unregister_buffers(&mut self, first: u16, count: u16) {
        dispatch!(self, d => d.unregister_buffers(first, count))
    }

    fn timers(&mut self) -> &mut TimerWheel {
        dispatch!(self, d => d.timers())
    }

    fn stats(&self) -> DriverStats {
        dispatch!(self, d => d.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: DriverKind) -> DriverConfig {
        DriverConfig {
            kind,
            ..DriverConfig::default()
        }
    }

    #[test]
    fn explicit_kinds_start_that_backend() {
        let d = LinuxDriver::new(&config(DriverKind::Epoll)).unwrap();
        assert_eq!(d.kind(), DriverKind::Epoll);
        match LinuxDriver::new(&config(DriverKind::IoUring)) {
            Ok(d) => assert_eq!(d.kind(), DriverKind::IoUring),
            Err(e) => eprintln!("skipping the io_uring half: io_uring refused here ({e})"),
        }
    }

    #[test]
    fn iocp_is_unsupported_on_linux() {
        let err = LinuxDriver::new(&config(DriverKind::Iocp)).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    }

    #[test]
    fn refusals_are_told_apart_from_resource_errors() {
        for errno in [libc::ENOSYS, libc::EPERM, libc::EACCES] {
            let e = io::Error::from_raw_os_error(errno);
            assert!(is_refusal(&e), "{e}");
            assert!(refusal_reason(&e).contains("io_uring"));
        }
        for errno in [libc::ENOMEM, libc::EMFILE, libc::EINVAL] {
            assert!(!is_refusal(&io::Error::from_raw_os_error(errno)));
        }
    }

    #[test]
    fn epoll_refuses_path_ops_as_unsupported() {
        let mut d = LinuxDriver::new(&config(DriverKind::Epoll)).unwrap();
        assert!(!d.supports_path_op(op::PathOpKind::Statx));
        let key = d.reserve().unwrap();
        let path = c"/";
        let op = IntoPlatformOp::<LinuxDriver>::into_platform_op(op::UnlinkAt {
            path: path.as_ptr(),
            dir: true,
        });
        let err = d.submit(key, op).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert_eq!(d.stats().in_flight, 0, "the slot was given back");
    }

    #[test]
    fn ops_reach_the_epoll_backend_through_the_enum() {
        let mut d = LinuxDriver::new(&config(DriverKind::Epoll)).unwrap();
        let key = d.reserve().unwrap();
        let op = IntoPlatformOp::<LinuxDriver>::into_platform_op(op::Fsync {
            fd: -1,
            data_only: false,
        });
        d.submit(key, op).unwrap();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let started = std::time::Instant::now();
        let out = loop {
            if let Poll::Ready(out) = d.poll_op(key, &mut cx) {
                break out;
            }
            d.wait(Some(Duration::from_millis(10))).unwrap();
            assert!(started.elapsed() < Duration::from_secs(10));
        };
        assert_eq!(out.res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(d.stats().in_flight, 0);
    }
}
