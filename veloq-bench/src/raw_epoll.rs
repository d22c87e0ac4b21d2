//! The floor for a readiness runtime: a hand-written level-triggered epoll
//! echo server (libc only, no runtime), measured beside the runtimes so
//! every figure can be read as a ratio to it.
//!
//! One `epoll_wait` per loop turn; on a readable connection one `read` and
//! one `write` of what it read (a write that would block parks the rest and
//! waits for EPOLLOUT, which a 1 KiB echo on loopback never needs). The
//! listener accepts until EAGAIN. TCP_NODELAY on every accepted socket,
//! 4 KiB buffers as in `servers.rs`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Read buffer size, as in the runtime servers.
const BUF: usize = 4096;
/// epoll token of the listener.
const LISTENER: u64 = u64::MAX;

struct Conn {
    fd: OwnedFd,
    buf: Box<[u8; BUF]>,
    /// Bytes read and to be echoed.
    len: usize,
    /// Bytes of them already written.
    sent: usize,
    /// Registered for EPOLLOUT instead of EPOLLIN (a write would block).
    want_out: bool,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn ctl(ep: RawFd, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` lives on our stack for the call; the kernel copies it.
    cvt(unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) }).map(drop)
}

/// Serves echo on the calling thread, forever (the process is killed).
pub fn serve(ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    run(ready).map_err(|e| format!("raw epoll server: {e}"))
}

fn run(ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    ready(listener.local_addr()?);
    // SAFETY: epoll_create1 takes no pointers; a non-negative result is a
    // fresh descriptor we own from here on.
    let ep = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
    let ep = ep.as_raw_fd();
    let lfd = listener.as_raw_fd();
    ctl(ep, libc::EPOLL_CTL_ADD, lfd, libc::EPOLLIN as u32, LISTENER)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    loop {
        // SAFETY: the kernel writes at most `events.len()` entries into the
        // buffer we exclusively own for the call.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            let token = ev.u64;
            if token == LISTENER {
                accept_all(ep, lfd, &mut conns)?;
                continue;
            }
            let i = token as usize;
            let Some(c) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if !serve_conn(ep, i, c) {
                conns[i] = None; // EOF or error: closing removes it from epoll.
            }
        }
    }
}

fn accept_all(ep: RawFd, lfd: RawFd, conns: &mut Vec<Option<Conn>>) -> io::Result<()> {
    loop {
        // SAFETY: null address pointers are allowed (we do not want the
        // peer address); a non-negative result is a fresh descriptor.
        let fd = unsafe {
            libc::accept4(
                lfd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            return match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                e if e.kind() == io::ErrorKind::Interrupted => continue,
                // A connection that died before accept: skip it.
                e if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                e => Err(e),
            };
        }
        // SAFETY: `fd` was just returned by accept4 and is owned by nobody.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        crate::raw_uring::nodelay(&fd);
        let i = fd.as_raw_fd() as usize;
        ctl(
            ep,
            libc::EPOLL_CTL_ADD,
            fd.as_raw_fd(),
            libc::EPOLLIN as u32,
            i as u64,
        )?;
        if conns.len() <= i {
            conns.resize_with(i + 1, || None);
        }
        conns[i] = Some(Conn {
            fd,
            buf: Box::new([0; BUF]),
            len: 0,
            sent: 0,
            want_out: false,
        });
    }
}

/// Handles one readiness event; false when the connection is done.
fn serve_conn(ep: RawFd, i: usize, c: &mut Conn) -> bool {
    let fd = c.fd.as_raw_fd();
    if c.sent == c.len {
        // SAFETY: the buffer is ours and `BUF` bytes long.
        let n = unsafe { libc::read(fd, c.buf.as_mut_ptr().cast(), BUF) };
        if n < 0 {
            return io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock;
        }
        if n == 0 {
            return false;
        }
        c.len = n as usize;
        c.sent = 0;
    }
    while c.sent < c.len {
        let rest = &c.buf[c.sent..c.len];
        // SAFETY: `rest` is initialised memory of ours, `rest.len()` long.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return false;
            }
            // Wait for room, then finish this echo before reading again.
            c.want_out = true;
            return ctl(ep, libc::EPOLL_CTL_MOD, fd, libc::EPOLLOUT as u32, i as u64).is_ok();
        }
        c.sent += n as usize;
    }
    if c.want_out {
        // Done after an EPOLLOUT wait: back to waiting for input.
        c.want_out = false;
        return ctl(ep, libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32, i as u64).is_ok();
    }
    true
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::mpsc;

    /// Both reference servers echo: 1 KiB and 10 KiB (more than one
    /// receive) round trips on two connections at once. The server thread
    /// serves until the test process exits.
    #[test]
    fn reference_servers_echo() {
        for name in ["raw-uring", "raw-epoll"] {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = crate::servers::serve(name, |addr| tx.send(addr).unwrap());
            });
            let addr = rx.recv().expect("server address");
            let mut conns: Vec<TcpStream> = (0..2)
                .map(|_| TcpStream::connect(addr).expect("connect"))
                .collect();
            for (i, size) in [1024usize, 10 * 1024].into_iter().enumerate() {
                for c in &mut conns {
                    let msg: Vec<u8> = (0..size).map(|b| (b + i) as u8).collect();
                    c.write_all(&msg).expect("write");
                    let mut back = vec![0; size];
                    c.read_exact(&mut back).expect("echo");
                    assert_eq!(back, msg, "{name}, {size} bytes");
                }
            }
        }
    }
}
