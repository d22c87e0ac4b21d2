//! How a listener accepts: [`AcceptQueue`], one per listener.
//!
//! Where the driver has it (io_uring on Linux 5.19+) a listener keeps one
//! multishot accept armed (`accept_multi`): armed by the first `accept`,
//! it queues every connection the kernel accepts, and `accept` takes the
//! oldest or waits. Elsewhere (epoll, IOCP, older kernels) each `accept`
//! is one single-shot accept op ([`accept_once`]).
//!
//! Either way `accept` is cancel-safe: a dropped call loses no
//! connection. The multishot queue only hands a connection out when the
//! call returns it; a single-shot accept cancelled after the kernel took
//! a connection stashes it for the next call (see `io::stash`).

use std::io;
use std::net::SocketAddr;

use super::socket::Socket;
use crate::io::op::{Accept, Op};
use crate::io::stash::{OrphanAccept, Stash};
use crate::sys::RawFd;

#[cfg(target_os = "linux")]
pub(crate) use super::accept_multi::AcceptQueue;

/// The accept of a listener on a driver without multishot accept: every
/// call is one single-shot op.
#[cfg(not(target_os = "linux"))]
#[derive(Default)]
pub(crate) struct AcceptQueue(());

#[cfg(not(target_os = "linux"))]
impl AcceptQueue {
    /// One accepted connection, owned by the caller, and its peer address
    /// when the driver reported it.
    pub(crate) async fn accept(
        &self,
        socket: &Socket,
        ipv6: bool,
    ) -> io::Result<(RawFd, Option<SocketAddr>)> {
        accept_once(socket, ipv6).await
    }
}

/// One single-shot accept on `socket` (after any connection a cancelled
/// accept stashed); see the module docs.
pub(crate) async fn accept_once(
    socket: &Socket,
    ipv6: bool,
) -> io::Result<(RawFd, Option<SocketAddr>)> {
    if let Some(conn) = socket.take_stashed(Stash::take_accepted).await {
        return Ok(conn);
    }
    let desc = Accept {
        fd: socket.fd(),
        ipv6,
    };
    let (out, _) = Op::submit_with(desc, socket.shared(), OrphanAccept::orphan).await;
    Ok((out.res? as RawFd, out.addr))
}
