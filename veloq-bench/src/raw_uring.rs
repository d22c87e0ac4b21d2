//! The floor for a completion runtime: a hand-written io_uring echo server
//! with no runtime at all, measured beside the runtimes so every figure can
//! be read as a ratio to it.
//!
//! It uses the setup flags veloq asks for (SINGLE_ISSUER, DEFER_TASKRUN,
//! COOP_TASKRUN + TASKRUN_FLAG, SUBMIT_ALL, CLAMP, a CQ twice the SQ,
//! falling back to a plain ring), one multishot accept, exactly one receive
//! or send in flight per connection, and one `submit_and_wait(1)` per loop
//! turn. TCP_NODELAY on every accepted socket, 4 KiB buffers as in
//! `servers.rs`.
//!
//! Invariant the `unsafe` pushes rely on: a connection's buffer and
//! descriptor live in its `Conn`, which is dropped only when its one
//! in-flight operation has completed (one op per connection), so the kernel
//! never writes or reads freed memory or a reused descriptor.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// Read buffer size, as in the runtime servers.
const BUF: usize = 4096;
/// SQ entries; the CQ gets twice as many.
const ENTRIES: u32 = 256;
/// `user_data` of the multishot accept.
const ACCEPT: u64 = u64::MAX;
/// Low bit of a connection's `user_data`: set for a send, clear for a recv.
const SEND_BIT: u64 = 1;

struct Conn {
    fd: OwnedFd,
    buf: Box<[u8; BUF]>,
    /// Bytes received and to be echoed.
    len: usize,
    /// Bytes of them already sent.
    sent: usize,
}

/// Builds the ring with veloq's flags, or a plain ring where the kernel
/// refuses them.
fn ring() -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_clamp()
        .setup_submit_all()
        .setup_cqsize(ENTRIES * 2)
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_single_issuer()
        .setup_defer_taskrun();
    b.build(ENTRIES).or_else(|_| IoUring::new(ENTRIES))
}

/// Serves echo on the calling thread, forever (the process is killed).
pub fn serve(ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    run(ready).map_err(|e| format!("raw io_uring server: {e}"))
}

fn run(ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut ring = ring()?;
    ready(listener.local_addr()?);
    let lfd = listener.as_raw_fd();
    // Connections indexed by descriptor number (small and dense).
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let (submitter, mut sq, mut cq) = ring.split();
    let push = |sq: &mut io_uring::SubmissionQueue<'_>, e: squeue::Entry| {
        // SAFETY: every entry points into a `Conn` that outlives the op (see
        // the module invariant) or at the listener, which lives until the
        // process ends.
        while unsafe { sq.push(&e) }.is_err() {
            sq.sync();
            submitter.submit()?;
            sq.sync();
        }
        Ok::<(), io::Error>(())
    };
    push(
        &mut sq,
        opcode::AcceptMulti::new(types::Fd(lfd))
            .build()
            .user_data(ACCEPT),
    )?;
    loop {
        sq.sync();
        match submitter.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        cq.sync();
        for cqe in &mut cq {
            let (ud, res) = (cqe.user_data(), cqe.result());
            if ud == ACCEPT {
                if res >= 0 {
                    // SAFETY: a successful accept CQE carries a fresh
                    // descriptor nobody else owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(res) };
                    nodelay(&fd);
                    let i = res as usize;
                    if conns.len() <= i {
                        conns.resize_with(i + 1, || None);
                    }
                    let c = conns[i].insert(Conn {
                        fd,
                        buf: Box::new([0; BUF]),
                        len: 0,
                        sent: 0,
                    });
                    push(&mut sq, recv(i, c))?;
                }
                if !cqueue::more(cqe.flags()) {
                    push(
                        &mut sq,
                        opcode::AcceptMulti::new(types::Fd(lfd))
                            .build()
                            .user_data(ACCEPT),
                    )?;
                }
                continue;
            }
            let i = (ud >> 1) as usize;
            let Some(c) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if res <= 0 {
                conns[i] = None; // EOF or error: closes the socket.
                continue;
            }
            if ud & SEND_BIT == 0 {
                c.len = res as usize;
                c.sent = 0;
            } else {
                c.sent += res as usize;
            }
            let e = if c.sent < c.len {
                send(i, c)
            } else {
                recv(i, c)
            };
            push(&mut sq, e)?;
        }
    }
}

fn recv(i: usize, c: &mut Conn) -> squeue::Entry {
    opcode::Recv::new(types::Fd(c.fd.as_raw_fd()), c.buf.as_mut_ptr(), BUF as u32)
        .build()
        .user_data((i as u64) << 1)
}

fn send(i: usize, c: &mut Conn) -> squeue::Entry {
    let rest = &c.buf[c.sent..c.len];
    opcode::Send::new(
        types::Fd(c.fd.as_raw_fd()),
        rest.as_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data((i as u64) << 1 | SEND_BIT)
}

/// Sets TCP_NODELAY (best effort, as the runtime servers do).
pub(crate) fn nodelay(fd: &OwnedFd) {
    let one: libc::c_int = 1;
    // SAFETY: `one` lives on our stack for the call and the length given
    // is its size; the kernel only reads it.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
