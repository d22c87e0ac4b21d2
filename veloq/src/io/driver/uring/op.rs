//! `UringOp`: what one in-flight io_uring op keeps in its registry slot,
//! and the conversions from the platform-neutral descriptions.
//!
//! # Invariants
//!
//! - A `UringOp` holds everything the kernel reads or writes through the
//!   SQE other than the user's buffer: the encoded `sockaddr`, the
//!   `msghdr` + `iovec` of `SendTo`/`RecvFrom`, the accepted peer's address
//!   storage, the `CString` path of `Open`.
//! - The driver first builds the op in its slot (a `StableSlab` entry,
//!   whose address never changes while the op lives; see
//!   `UringDriver::submit_in_place`) and only then calls
//!   [`UringOp::prepare`], which builds the SQE from pointers into that
//!   slot. An SQE is never built from a temporary.
//! - The user's buffer belongs to the op's future (or, after a cancel, to
//!   the registry's keep-alive) until the completion has been processed.
//!
//! No conversion allocates except `Open` (its path).

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;

use io_uring::{opcode, squeue, types};
use socket2::{SockAddr, SockAddrStorage};

use super::UringDriver;
use crate::io::driver::IntoPlatformOp;
use crate::io::op::{self, OpOutput, OpenFlags};
use crate::sys::RawFd;

/// Default permission bits of a created file when the caller gave none.
const DEFAULT_MODE: u32 = 0o666;

/// `sync_file_range` flags: wait for earlier writeback, start writeback of
/// the range and wait for it, so the range is on the device on return.
const SYNC_RANGE_FLAGS: u32 = libc::SYNC_FILE_RANGE_WAIT_BEFORE
    | libc::SYNC_FILE_RANGE_WRITE
    | libc::SYNC_FILE_RANGE_WAIT_AFTER;

/// The `msghdr` of a `SendTo`/`RecvFrom` and the memory it points to.
///
/// `msg.msg_name` points at `addr` and `msg.msg_iov` at `iov`; both are
/// set by [`UringOp::prepare`] once the op sits in its slot.
pub(crate) struct MsgOp {
    fd: RawFd,
    addr: SockAddrStorage,
    iov: libc::iovec,
    msg: libc::msghdr,
}

impl MsgOp {
    fn new(fd: RawFd, buf: *mut u8, len: u32, addr: Option<SocketAddr>) -> MsgOp {
        let mut storage = SockAddrStorage::zeroed();
        let mut addr_len = storage.size_of();
        if let Some(addr) = addr {
            let encoded = SockAddr::from(addr);
            addr_len = encoded.len();
            storage = encoded.as_storage();
        }
        // SAFETY: all-zero is a valid `msghdr` (null pointers, zero
        // lengths).
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_namelen = addr_len;
        msg.msg_iovlen = 1;
        MsgOp {
            fd,
            addr: storage,
            iov: libc::iovec {
                iov_base: buf.cast(),
                iov_len: len as usize,
            },
            msg,
        }
    }

    /// As [`new`](MsgOp::new) with a destination of any family (a Unix
    /// datagram's path).
    fn with_name(fd: RawFd, buf: *mut u8, len: u32, to: SockAddr) -> MsgOp {
        let mut m = MsgOp::new(fd, buf, len, None);
        m.msg.msg_namelen = to.len();
        m.addr = to.as_storage();
        m
    }

    /// Points the header at this op's own `addr` and `iov`.
    fn fix_pointers(&mut self) {
        self.msg.msg_name = (&mut self.addr as *mut SockAddrStorage).cast();
        self.msg.msg_iov = &mut self.iov;
    }
}

/// The io_uring op stored in the registry slot; see the module docs.
pub(crate) enum UringOp {
    /// `READ_FIXED` with a registered-buffer index, else `READ` at offset.
    Read {
        fd: RawFd,
        buf: *mut u8,
        len: u32,
        offset: u64,
        fixed: Option<u16>,
    },
    /// `WRITE_FIXED` with a registered-buffer index, else `WRITE` at offset.
    Write {
        fd: RawFd,
        buf: *const u8,
        len: u32,
        offset: u64,
        fixed: Option<u16>,
    },
    /// `SEND` on a connected socket. `zero_copy`: the description allows
    /// `SEND_ZC` instead (the driver decides; see `send_zc`).
    Send {
        fd: RawFd,
        buf: *const u8,
        len: u32,
        zero_copy: bool,
    },
    /// `SEND_ZC`: two CQEs, the first one's result kept in `result` until
    /// the notification (see `send_zc`).
    SendZc {
        fd: RawFd,
        buf: *const u8,
        len: u32,
        result: Option<i32>,
    },
    /// `RECV` on a connected socket.
    Recv { fd: RawFd, buf: *mut u8, len: u32 },
    /// `SENDMSG` with a destination address.
    SendTo(MsgOp),
    /// `RECVMSG`; the output carries the source address.
    RecvFrom(MsgOp),
    /// `SENDMSG` to an address of any family.
    SendToName(MsgOp),
    /// `RECVMSG`; the source address (any family) is copied to the
    /// caller's `SockName` when the completion is processed.
    RecvFromName(MsgOp, *mut op::SockName),
    /// `SENDMSG` of a header built by the caller (vectored, ancillary).
    SendMsg { fd: RawFd, msg: *const libc::msghdr },
    /// `RECVMSG` into a header built by the caller.
    RecvMsg { fd: RawFd, msg: *mut libc::msghdr },
    /// `CONNECT` to the encoded address.
    Connect { fd: RawFd, addr: SockAddr },
    /// `ACCEPT` (with `SOCK_CLOEXEC`); the kernel writes the peer address
    /// into `addr` / `addr_len`.
    Accept {
        fd: RawFd,
        addr: SockAddrStorage,
        addr_len: libc::socklen_t,
    },
    /// `OPENAT` relative to the working directory.
    Open {
        path: CString,
        flags: libc::c_int,
        mode: libc::mode_t,
    },
    /// `CLOSE`.
    Close { fd: RawFd },
    /// `FSYNC`, optionally `DATASYNC`.
    Fsync { fd: RawFd, data_only: bool },
    /// `SYNC_FILE_RANGE` (waits for the range to reach the device).
    SyncFileRange { fd: RawFd, offset: u64, len: u64 },
    /// `FALLOCATE` (mode 0: allocate and extend).
    Fallocate { fd: RawFd, offset: u64, len: u64 },
    /// A filesystem path op (`STATX`, `RENAMEAT`, …; see `path_op`).
    Path(super::path_op::PathSqe),
    // --- process ops (procwait) ---
    /// `POLL_ADD` (one-shot) for `events`; the output is the ready mask.
    Poll { fd: RawFd, events: u32 },
    // --- multishot ops (recvring) ---
    /// `ACCEPT` with `IORING_ACCEPT_MULTISHOT`; every CQE goes to the sink.
    AcceptMulti {
        fd: RawFd,
        sink: std::rc::Rc<dyn op::MultishotSink>,
    },
    /// `RECV` multishot with buffer select from ring `group`; every CQE
    /// goes to the sink.
    RecvMulti {
        fd: RawFd,
        group: u16,
        sink: std::rc::Rc<dyn op::MultishotSink>,
    },
    /// A description that cannot be submitted (a path with a NUL byte,
    /// contradictory open flags): `submit` fails with this error.
    Invalid(io::Error),
}

impl UringOp {
    /// Builds the SQE for this op, tagged with `user_data`.
    ///
    /// Must be called only once the op sits in its registry slot: the SQE
    /// points into `self`. Fails for [`UringOp::Invalid`].
    pub(crate) fn prepare(&mut self, user_data: u64) -> io::Result<squeue::Entry> {
        let entry = match self {
            UringOp::Read {
                fd,
                buf,
                len,
                offset,
                fixed: Some(index),
            } => opcode::ReadFixed::new(types::Fd(*fd), *buf, *len, *index)
                .offset(*offset)
                .build(),
            UringOp::Read {
                fd,
                buf,
                len,
                offset,
                fixed: None,
            } => opcode::Read::new(types::Fd(*fd), *buf, *len)
                .offset(*offset)
                .build(),
            UringOp::Write {
                fd,
                buf,
                len,
                offset,
                fixed: Some(index),
            } => opcode::WriteFixed::new(types::Fd(*fd), *buf, *len, *index)
                .offset(*offset)
                .build(),
            UringOp::Write {
                fd,
                buf,
                len,
                offset,
                fixed: None,
            } => opcode::Write::new(types::Fd(*fd), *buf, *len)
                .offset(*offset)
                .build(),
            UringOp::Send { fd, buf, len, .. } => opcode::Send::new(types::Fd(*fd), *buf, *len)
                .flags(libc::MSG_NOSIGNAL)
                .build(),
            UringOp::SendZc { fd, buf, len, .. } => opcode::SendZc::new(types::Fd(*fd), *buf, *len)
                .flags(libc::MSG_NOSIGNAL)
                .build(),
            UringOp::Recv { fd, buf, len } => opcode::Recv::new(types::Fd(*fd), *buf, *len).build(),
            UringOp::SendMsg { fd, msg } => opcode::SendMsg::new(types::Fd(*fd), *msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build(),
            UringOp::RecvMsg { fd, msg } => opcode::RecvMsg::new(types::Fd(*fd), *msg)
                .flags(libc::MSG_CMSG_CLOEXEC as u32)
                .build(),
            UringOp::SendTo(m) | UringOp::SendToName(m) => {
                m.fix_pointers();
                opcode::SendMsg::new(types::Fd(m.fd), &m.msg)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build()
            }
            UringOp::RecvFrom(m) | UringOp::RecvFromName(m, _) => {
                m.fix_pointers();
                opcode::RecvMsg::new(types::Fd(m.fd), &mut m.msg).build()
            }
            UringOp::Connect { fd, addr } => {
                opcode::Connect::new(types::Fd(*fd), addr.as_ptr().cast(), addr.len()).build()
            }
            UringOp::Accept { fd, addr, addr_len } => {
                *addr_len = addr.size_of();
                opcode::Accept::new(
                    types::Fd(*fd),
                    (addr as *mut SockAddrStorage).cast(),
                    addr_len,
                )
                .flags(libc::SOCK_CLOEXEC)
                .build()
            }
            UringOp::Open { path, flags, mode } => {
                opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
                    .flags(*flags)
                    .mode(*mode)
                    .build()
            }
            UringOp::Close { fd } => opcode::Close::new(types::Fd(*fd)).build(),
            UringOp::Fsync { fd, data_only } => {
                let flags = if *data_only {
                    types::FsyncFlags::DATASYNC
                } else {
                    types::FsyncFlags::empty()
                };
                opcode::Fsync::new(types::Fd(*fd)).flags(flags).build()
            }
            UringOp::SyncFileRange { fd, offset, len } => {
                // The SQE carries a 32-bit length; 0 means "to the end of
                // the file", a superset of any longer range.
                let len = u32::try_from(*len).unwrap_or(0);
                opcode::SyncFileRange::new(types::Fd(*fd), len)
                    .offset(*offset)
                    .flags(SYNC_RANGE_FLAGS)
                    .build()
            }
            UringOp::Fallocate { fd, offset, len } => opcode::Fallocate::new(types::Fd(*fd), *len)
                .offset(*offset)
                .build(),
            UringOp::Path(p) => p.entry(),
            // --- process ops (procwait) ---
            UringOp::Poll { fd, events } => opcode::PollAdd::new(types::Fd(*fd), *events).build(),
            // --- multishot ops (recvring) ---
            UringOp::AcceptMulti { fd, .. } => opcode::AcceptMulti::new(types::Fd(*fd))
                .flags(libc::SOCK_CLOEXEC)
                .build(),
            UringOp::RecvMulti { fd, group, .. } => {
                opcode::RecvMulti::new(types::Fd(*fd), *group).build()
            }
            UringOp::Invalid(e) => {
                return Err(io::Error::new(e.kind(), e.to_string()));
            }
        };
        Ok(entry.user_data(user_data))
    }

    /// Turns the kernel's result into the op's output.
    pub(crate) fn output(&self, res: i32) -> OpOutput {
        if res < 0 {
            let err = if res == -libc::ECANCELED {
                op::cancelled()
            } else {
                io::Error::from_raw_os_error(-res)
            };
            return OpOutput {
                res: Err(err),
                addr: None,
            };
        }
        let addr = match self {
            UringOp::Accept { addr, addr_len, .. } => decode_addr(addr, *addr_len),
            UringOp::RecvFrom(m) => decode_addr(&m.addr, m.msg.msg_namelen),
            UringOp::RecvFromName(m, from) => {
                // SAFETY: `from` points into the op's keep-alive, which the
                // future or the registry holds until this completion has
                // been processed; nothing else accesses it meanwhile. The
                // storage is plain old data, copied bytewise.
                unsafe {
                    (**from).storage = std::ptr::read(&m.addr);
                    (**from).len = m.msg.msg_namelen;
                }
                None
            }
            _ => None,
        };
        OpOutput {
            res: Ok(res as usize),
            addr,
        }
    }
}

/// Decodes a kernel-written socket address (`None` for a family other than
/// IPv4/IPv6, or a length the kernel did not fill).
fn decode_addr(storage: &SockAddrStorage, len: libc::socklen_t) -> Option<SocketAddr> {
    if len == 0 || len > storage.size_of() {
        return None;
    }
    // SAFETY: `SockAddrStorage` is plain old data (a `sockaddr_storage`),
    // so a bytewise copy is a valid value.
    let copy: SockAddrStorage = unsafe { std::ptr::read(storage) };
    // SAFETY: the kernel initialised the first `len` bytes of the storage
    // with a socket address (`accept`/`recvmsg` contract), and `len` fits.
    let addr = unsafe { SockAddr::new(copy, len) };
    addr.as_socket()
}

/// Maps `OpenFlags` to `open(2)` flags the way `std::fs::OpenOptions`
/// does, always with `O_CLOEXEC`; `InvalidInput` for flags std refuses
/// (see [`OpenFlags::validate`]).
pub(crate) fn open_flags(f: &OpenFlags) -> io::Result<libc::c_int> {
    let f = f.validate()?;
    let access = match (f.read, f.write || f.append, f.append) {
        (_, _, true) if f.read => libc::O_RDWR | libc::O_APPEND,
        (_, _, true) => libc::O_WRONLY | libc::O_APPEND,
        (true, true, false) => libc::O_RDWR,
        (false, true, false) => libc::O_WRONLY,
        (_, false, false) => libc::O_RDONLY,
    };
    let creation = match (f.create, f.truncate, f.create_new) {
        (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
        (true, false, false) => libc::O_CREAT,
        (false, true, false) => libc::O_TRUNC,
        (false, false, false) => 0,
    };
    Ok(access | creation | libc::O_CLOEXEC)
}

impl IntoPlatformOp<UringDriver> for op::ReadFixed {
    fn into_platform_op(self) -> UringOp {
        UringOp::Read {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
            offset: self.offset,
            fixed: self.fixed,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::WriteFixed {
    fn into_platform_op(self) -> UringOp {
        UringOp::Write {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
            offset: self.offset,
            fixed: self.fixed,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::Send {
    fn into_platform_op(self) -> UringOp {
        UringOp::Send {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
            zero_copy: self.zero_copy,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::Recv {
    fn into_platform_op(self) -> UringOp {
        UringOp::Recv {
            fd: self.fd,
            buf: self.buf,
            len: self.len,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::SendTo {
    fn into_platform_op(self) -> UringOp {
        // The kernel only reads through the iovec of a send.
        UringOp::SendTo(MsgOp::new(
            self.fd,
            self.buf.cast_mut(),
            self.len,
            Some(self.addr),
        ))
    }
}

impl IntoPlatformOp<UringDriver> for op::RecvFrom {
    fn into_platform_op(self) -> UringOp {
        UringOp::RecvFrom(MsgOp::new(self.fd, self.buf, self.len, None))
    }
}

impl IntoPlatformOp<UringDriver> for op::SendToName {
    fn into_platform_op(self) -> UringOp {
        // The kernel only reads through the iovec of a send.
        UringOp::SendToName(MsgOp::with_name(
            self.fd,
            self.buf.cast_mut(),
            self.len,
            self.addr,
        ))
    }
}

impl IntoPlatformOp<UringDriver> for op::RecvFromName {
    fn into_platform_op(self) -> UringOp {
        UringOp::RecvFromName(MsgOp::new(self.fd, self.buf, self.len, None), self.from)
    }
}

impl IntoPlatformOp<UringDriver> for op::SendMsg {
    fn into_platform_op(self) -> UringOp {
        UringOp::SendMsg {
            fd: self.fd,
            msg: self.msg,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::RecvMsg {
    fn into_platform_op(self) -> UringOp {
        UringOp::RecvMsg {
            fd: self.fd,
            msg: self.msg,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::Connect {
    fn into_platform_op(self) -> UringOp {
        UringOp::Connect {
            fd: self.fd,
            addr: SockAddr::from(self.addr),
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::Accept {
    fn into_platform_op(self) -> UringOp {
        UringOp::Accept {
            fd: self.fd,
            addr: SockAddrStorage::zeroed(),
            addr_len: 0,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::Open {
    fn into_platform_op(self) -> UringOp {
        let path = match CString::new(self.path.as_os_str().as_bytes()) {
            Ok(p) => p,
            Err(_) => {
                return UringOp::Invalid(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "open: path contains a NUL byte",
                ))
            }
        };
        let flags = match open_flags(&self.flags) {
            Ok(f) => f,
            Err(e) => return UringOp::Invalid(e),
        };
        let mode = if self.flags.mode == 0 {
            DEFAULT_MODE
        } else {
            self.flags.mode
        };
        UringOp::Open {
            path,
            flags,
            mode: mode as libc::mode_t,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::Close {
    fn into_platform_op(self) -> UringOp {
        UringOp::Close { fd: self.fd }
    }
}

impl IntoPlatformOp<UringDriver> for op::Fsync {
    fn into_platform_op(self) -> UringOp {
        UringOp::Fsync {
            fd: self.fd,
            data_only: self.data_only,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::SyncFileRange {
    fn into_platform_op(self) -> UringOp {
        UringOp::SyncFileRange {
            fd: self.fd,
            offset: self.offset,
            len: self.len,
        }
    }
}

impl IntoPlatformOp<UringDriver> for op::Fallocate {
    fn into_platform_op(self) -> UringOp {
        UringOp::Fallocate {
            fd: self.fd,
            offset: self.offset,
            len: self.len,
        }
    }
}

// --- process ops (procwait) ---

impl IntoPlatformOp<UringDriver> for op::PollReady {
    fn into_platform_op(self) -> UringOp {
        let events = if self.write {
            libc::POLLOUT
        } else {
            libc::POLLIN
        };
        UringOp::Poll {
            fd: self.fd,
            events: events as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> OpenFlags {
        OpenFlags::default()
    }

    #[test]
    fn open_flags_follow_std_rules() {
        let ro = OpenFlags {
            read: true,
            ..flags()
        };
        assert_eq!(open_flags(&ro).unwrap(), libc::O_RDONLY | libc::O_CLOEXEC);
        let create = OpenFlags {
            write: true,
            create: true,
            truncate: true,
            ..flags()
        };
        assert_eq!(
            open_flags(&create).unwrap(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC
        );
        let new = OpenFlags {
            read: true,
            write: true,
            create_new: true,
            ..flags()
        };
        assert_eq!(
            open_flags(&new).unwrap(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC
        );
        let append = OpenFlags {
            append: true,
            create: true,
            ..flags()
        };
        assert_eq!(
            open_flags(&append).unwrap(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC
        );
    }

    #[test]
    fn contradictory_open_flags_are_refused() {
        assert!(open_flags(&flags()).is_err(), "no access mode");
        let create_ro = OpenFlags {
            read: true,
            create: true,
            ..flags()
        };
        assert!(open_flags(&create_ro).is_err());
        let append_trunc = OpenFlags {
            append: true,
            truncate: true,
            ..flags()
        };
        assert!(open_flags(&append_trunc).is_err());
    }

    #[test]
    fn errors_map_to_io_errors_and_cancel() {
        let op = UringOp::Close { fd: 3 };
        let out = op.output(-libc::ENOENT);
        assert_eq!(out.res.unwrap_err().kind(), io::ErrorKind::NotFound);
        let out = op.output(-libc::ECANCELED);
        assert_eq!(out.res.unwrap_err().kind(), op::cancelled().kind());
        assert_eq!(op.output(0).res.unwrap(), 0);
    }

    #[test]
    fn sockaddr_round_trips_through_storage() {
        for text in ["127.0.0.1:4242", "[::1]:9"] {
            let addr: SocketAddr = text.parse().unwrap();
            let enc = SockAddr::from(addr);
            let len = enc.len();
            assert_eq!(decode_addr(&enc.as_storage(), len), Some(addr));
        }
        assert_eq!(decode_addr(&SockAddrStorage::zeroed(), 0), None);
    }
}
