//! [`DriverKind`]: which I/O driver a runtime runs on, and how a choice is
//! read from the `VELOQ_DRIVER` environment variable.
//!
//! # How the driver is chosen (Linux)
//!
//! 1. An explicit `Runtime::builder().driver(kind)` other than
//!    [`DriverKind::Auto`] is used as given; if it cannot start, building
//!    the runtime fails (no fallback).
//! 2. With `Auto` (the default), `VELOQ_DRIVER` is read: `io_uring` or
//!    `epoll` force that driver, `auto` or an unset/empty variable keep
//!    `Auto`, anything else is an `InvalidInput` error.
//! 3. `Auto` tries io_uring and falls back to epoll where io_uring is
//!    refused (`ENOSYS`, `EPERM`, `EACCES`: a seccomp filter, the
//!    `kernel.io_uring_disabled` sysctl, a kernel without it), logging one
//!    line to stderr that says why (once per process).
//!
//! Windows has one driver, IOCP; asking for another there is an
//! `Unsupported` error, and `VELOQ_DRIVER` is not read.

use std::fmt;
use std::io;

/// The environment variable that picks the driver of `Auto` runtimes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const ENV_VAR: &str = "VELOQ_DRIVER";

/// Which I/O driver a runtime runs on (see [`Builder::driver`]).
///
/// [`Builder::driver`]: crate::runtime::Builder::driver
///
/// ```
/// use veloq::runtime::DriverKind;
///
/// let rt = veloq::Runtime::builder().driver(DriverKind::Auto).build()?;
/// let kind = rt.block_on(async { veloq::runtime::driver_kind() });
/// assert_ne!(kind, DriverKind::Auto, "a running runtime names its driver");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DriverKind {
    /// The best driver this system allows: io_uring, else epoll (Linux);
    /// IOCP (Windows). On Linux `VELOQ_DRIVER` can override it.
    #[default]
    Auto,
    /// io_uring (Linux).
    IoUring,
    /// The readiness fallback: epoll with non-blocking sockets and a
    /// thread pool for file operations (Linux).
    Epoll,
    /// I/O completion ports (Windows).
    Iocp,
}

impl DriverKind {
    /// The name `VELOQ_DRIVER` accepts for this kind (`"auto"`,
    /// `"io_uring"`, `"epoll"`, `"iocp"`).
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Auto => "auto",
            DriverKind::IoUring => "io_uring",
            DriverKind::Epoll => "epoll",
            DriverKind::Iocp => "iocp",
        }
    }

    /// Parses a `VELOQ_DRIVER` value (case-insensitive; `io-uring` and
    /// `uring` also name io_uring; empty means `Auto`).
    pub(crate) fn parse(value: &str) -> Option<DriverKind> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(DriverKind::Auto),
            "io_uring" | "io-uring" | "uring" => Some(DriverKind::IoUring),
            "epoll" => Some(DriverKind::Epoll),
            "iocp" => Some(DriverKind::Iocp),
            _ => None,
        }
    }

    /// `self`, or for `Auto` what `VELOQ_DRIVER` asks for (still `Auto`
    /// when it is unset, empty or `auto`).
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the variable holds an unknown name.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn or_env(self) -> io::Result<DriverKind> {
        if self != DriverKind::Auto {
            return Ok(self);
        }
        let Some(value) = std::env::var_os(ENV_VAR) else {
            return Ok(DriverKind::Auto);
        };
        let text = value.to_string_lossy();
        DriverKind::parse(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "veloq: {ENV_VAR}={text:?} is not a driver name \
                     (expected auto, io_uring or epoll)"
                ),
            )
        })
    }

    /// Fails with `Unsupported` for a kind this platform does not have.
    pub(crate) fn check_platform(self) -> io::Result<()> {
        let supported = match self {
            DriverKind::Auto => true,
            DriverKind::IoUring | DriverKind::Epoll => cfg!(target_os = "linux"),
            DriverKind::Iocp => cfg!(windows),
        };
        if supported {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "veloq: the {} driver is not available on this platform",
                    self.name()
                ),
            ))
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse() {
        for kind in [
            DriverKind::Auto,
            DriverKind::IoUring,
            DriverKind::Epoll,
            DriverKind::Iocp,
        ] {
            assert_eq!(DriverKind::parse(kind.name()), Some(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
    }

    #[test]
    fn parse_accepts_aliases_and_refuses_garbage() {
        assert_eq!(DriverKind::parse(""), Some(DriverKind::Auto));
        assert_eq!(DriverKind::parse(" EPOLL "), Some(DriverKind::Epoll));
        assert_eq!(DriverKind::parse("io-uring"), Some(DriverKind::IoUring));
        assert_eq!(DriverKind::parse("uring"), Some(DriverKind::IoUring));
        assert_eq!(DriverKind::parse("kqueue"), None);
    }

    #[test]
    fn explicit_kind_ignores_the_environment() {
        assert_eq!(DriverKind::Epoll.or_env().unwrap(), DriverKind::Epoll);
        assert_eq!(DriverKind::IoUring.or_env().unwrap(), DriverKind::IoUring);
    }

    #[test]
    fn platform_check_follows_the_target() {
        assert!(DriverKind::Auto.check_platform().is_ok());
        let linux = cfg!(target_os = "linux");
        assert_eq!(DriverKind::Epoll.check_platform().is_ok(), linux);
        assert_eq!(DriverKind::IoUring.check_platform().is_ok(), linux);
        let err = DriverKind::Iocp.check_platform();
        assert_eq!(err.is_ok(), cfg!(windows));
        if let Err(e) = err {
            assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        }
    }
}
