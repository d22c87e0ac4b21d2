//! Address resolution with one error contract: anything that is not a
//! usable socket address is `InvalidInput`.
//!
//! std's `ToSocketAddrs` sends strings it cannot parse as `ip:port` to the
//! system resolver, which fails with a platform-dependent error kind; this
//! module folds every such failure into `InvalidInput` so callers see one
//! kind whatever the system.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `addr`, mapping any failure (and an empty result) to
/// `InvalidInput`. Never panics.
pub(crate) fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<impl Iterator<Item = SocketAddr>> {
    let mut iter = addr.to_socket_addrs().map_err(invalid_input)?.peekable();
    if iter.peek().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "address resolved to no socket addresses",
        ));
    }
    Ok(iter)
}

/// Resolves `addr` to its first address (datagram destinations).
pub(crate) fn resolve_one<A: ToSocketAddrs>(addr: A) -> io::Result<SocketAddr> {
    resolve(addr)?.next().ok_or_else(unreachable_empty)
}

/// Runs `f` on each resolved address until one succeeds; returns the last
/// error when all fail.
pub(crate) fn try_each<A, T>(
    addr: A,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T>
where
    A: ToSocketAddrs,
{
    let mut last = None;
    for a in resolve(addr)? {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(unreachable_empty))
}

fn unreachable_empty() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "address resolved to no socket addresses",
    )
}

/// Keeps an `InvalidInput` error as it is and wraps any other resolution
/// failure (a DNS error for an unparsable string) as `InvalidInput`.
fn invalid_input(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::InvalidInput {
        e
    } else {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid socket address: {e}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_and_port_resolve() {
        let a: Vec<_> = resolve("127.0.0.1:80").unwrap().collect();
        assert_eq!(a, vec!["127.0.0.1:80".parse().unwrap()]);
    }

    #[test]
    fn garbage_is_invalid_input() {
        for s in [
            "garbage",
            "",
            "127.0.0.1",
            "127.0.0.1:99999",
            "[::1",
            "no such host!:80",
        ] {
            let err = resolve(s).err().unwrap_or_else(|| panic!("{s:?} resolved"));
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{s:?}: {err}");
        }
    }

    #[test]
    fn empty_slice_is_invalid_input() {
        let none: &[SocketAddr] = &[];
        assert_eq!(
            resolve(none).err().unwrap().kind(),
            io::ErrorKind::InvalidInput
        );
        let err = try_each(none, |_| Ok(())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn try_each_returns_last_error() {
        let addrs: &[SocketAddr] = &[
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        let mut seen = Vec::new();
        let err = try_each(addrs, |a| -> io::Result<()> {
            seen.push(a.port());
            Err(io::Error::other(format!("p{}", a.port())))
        })
        .unwrap_err();
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(err.to_string(), "p2");
    }
}
