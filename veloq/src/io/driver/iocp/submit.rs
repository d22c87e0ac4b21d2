//! Starting each op (`submit_*`) and turning its completion into an
//! [`OpOutput`] (`complete_*`).
//!
//! A `submit_*` function starts its op on the handle in `op.header` and
//! says what happened ([`SubmissionResult`]):
//!
//! - `Pending`: the kernel has the op and one completion packet will
//!   arrive on the port.
//! - `Immediate`: the call succeeded at once. Whether a packet follows
//!   depends on the handle's `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` mode,
//!   which the driver tracks (see `IocpDriver::register_handle`).
//! - `Offload(task)`: the op may block (open, close, flush, allocate) and
//!   runs on the blocking pool, which posts the packet when done.
//! - `Ready(outcome)`: the op finished at once and no packet will come
//!   (a read at end of file, which fails synchronously).
//! - `Err`: the op failed to start (any code but `ERROR_IO_PENDING` /
//!   `WSA_IO_PENDING`); nothing is in flight and no packet will come.
//!
//! Every function here is `unsafe`: it must be called with an op built for
//! its op type (the payload variant it reads), at the op's final address
//! (the kernel keeps `&op.header.overlapped` and pointers into the
//! payload), and for `submit_*`, only once.
//!
//! A `submit_*` function gets the op as a raw pointer and never makes a
//! reference to it, its header's `OVERLAPPED` or its payload: from the
//! kernel call on, the kernel may complete the op on another processor and
//! write them while the function is still running. It reads the arguments
//! it needs by value, writes what the kernel will read before the call,
//! and hands the kernel field addresses made with `addr_of_mut!`. A
//! `complete_*` function runs after the op's packet was dequeued, when
//! nothing else writes the op, and gets `&mut IocpOp`.

use std::ffi::OsStr;
use std::io;
use std::mem::size_of;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::IntoRawSocket;
use std::ptr::{self, addr_of, addr_of_mut};

use windows_sys::Win32::Foundation::{
    ERROR_BROKEN_PIPE, ERROR_HANDLE_EOF, ERROR_IO_PENDING, ERROR_MORE_DATA, ERROR_PIPE_CONNECTED,
    ERROR_PIPE_NOT_CONNECTED, GENERIC_READ, GENERIC_WRITE, HANDLE,
};
use windows_sys::Win32::Networking::WinSock::{
    bind, getsockname, setsockopt, WSARecv, WSARecvFrom, WSASend, WSASendTo, SOCKADDR, SOCKET,
    SOCKET_ERROR, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, SO_UPDATE_CONNECT_CONTEXT, WSAEINVAL,
    WSAEMSGSIZE, WSA_IO_PENDING,
};
use windows_sys::Win32::Storage::FileSystem::{
    ReadFile, WriteFile, CREATE_ALWAYS, CREATE_NEW, FILE_GENERIC_WRITE, FILE_WRITE_DATA,
    OPEN_ALWAYS, OPEN_EXISTING, TRUNCATE_EXISTING,
};
use windows_sys::Win32::System::Pipes::{ConnectNamedPipe, GetNamedPipeInfo, PIPE_TYPE_MESSAGE};
use windows_sys::Win32::System::IO::{OVERLAPPED, OVERLAPPED_0, OVERLAPPED_0_0};

use super::blocking::BlockingTask;
use super::error::{error_from_code, last_error, last_wsa_error, read_result};
use super::ext::Extensions;
use super::op::{
    AcceptPayload, DatagramIo, FileIo, IocpOp, OwnedHandle, SockIo, VecIo, ACCEPT_ADDR_LEN,
};
use super::sockaddr::{sockaddr_to_std, unspecified_like, SockAddrBuf};
use crate::io::op::{OpOutput, OpenFlags};
use crate::sys::RawFd;

/// What starting an op did; see the module docs.
pub(crate) enum SubmissionResult {
    /// In the kernel; one completion packet will come.
    Pending,
    /// The call succeeded at once. If the handle skips the port on
    /// success (`FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`), no packet comes
    /// and the bytes are in `OVERLAPPED::InternalHigh`; otherwise the
    /// packet comes as for `Pending`. The driver knows which.
    Immediate,
    /// To run on the blocking pool, which posts the completion.
    Offload(BlockingTask),
    /// Done already; no packet will come.
    Ready(Result<usize, u32>),
}

use SubmissionResult::{Immediate, Offload, Pending, Ready};

/// The kernel handle behind a logical handle. veloq's logical handles are
/// the raw `HANDLE`/`SOCKET` values (there is no handle table), so this is
/// a cast; it is the one place to change if one is added.
pub(crate) fn resolve_fd(fd: RawFd) -> usize {
    fd
}

/// Whether `fd` is a message-type named pipe. A read of a message longer
/// than its buffer ends with a warning status (`ERROR_MORE_DATA`), which
/// Windows reports through the port even in skip-on-success mode and Wine
/// 8 does not; such a pipe is kept out of that mode (as datagram sockets
/// are), so a packet always follows.
pub(crate) fn is_message_pipe(fd: RawFd) -> bool {
    let mut flags = 0u32;
    // SAFETY: `fd` is an open handle (the caller's); the call writes only
    // `flags`, and fails harmlessly for a handle that is not a pipe.
    let ok = unsafe {
        GetNamedPipeInfo(
            resolve_fd(fd) as HANDLE,
            &mut flags,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    ok != 0 && flags & PIPE_TYPE_MESSAGE != 0
}

/// The op's `OVERLAPPED`, as the kernel gets it.
///
/// # Safety
///
/// `op` points at a live op.
unsafe fn overlapped(op: *mut IocpOp) -> *mut OVERLAPPED {
    // SAFETY: the caller guarantees `op` is live; no reference is made.
    unsafe { addr_of_mut!((*op).header.overlapped) }
}

/// The handle the op works on.
///
/// # Safety
///
/// `op` points at a live op.
unsafe fn handle_of(op: *const IocpOp) -> RawFd {
    // SAFETY: the caller guarantees `op` is live; `handle` is written
    // before submission only, so this read races with nothing.
    unsafe { (*op).header.handle }
}

/// Puts `offset` in the op's `OVERLAPPED`, before the kernel call.
///
/// # Safety
///
/// `op` points at a live op not yet handed to the kernel.
unsafe fn set_offset(op: *mut IocpOp, offset: u64) {
    // SAFETY: the caller guarantees the kernel does not have the op yet;
    // the write goes through the raw pointer to this one field.
    unsafe {
        (*op).header.overlapped.Anonymous = OVERLAPPED_0 {
            Anonymous: OVERLAPPED_0_0 {
                Offset: offset as u32,
                OffsetHigh: (offset >> 32) as u32,
            },
        };
    }
}

/// A payload variant's address. `ManuallyDrop<T>` is `repr(transparent)`,
/// so the union field's address is the `T`'s.
macro_rules! payload_ptr {
    ($op:expr, $field:ident, $ty:ty) => {
        addr_of_mut!((*$op).payload.$field).cast::<$ty>()
    };
}

/// Result of a Win32 call that started an overlapped op: `ok` is its BOOL.
fn win32_started(ok: i32) -> io::Result<SubmissionResult> {
    if ok != 0 {
        return Ok(Immediate);
    }
    win32_code(last_error())
}

/// As [`win32_started`] for a call that failed with `code`.
fn win32_code(code: u32) -> io::Result<SubmissionResult> {
    match code {
        ERROR_IO_PENDING => Ok(Pending),
        code => Err(error_from_code(code)),
    }
}

/// Result of a Winsock call that started an overlapped op: `rc` is its
/// return value (0 or `SOCKET_ERROR`).
fn wsa_started(rc: i32) -> io::Result<SubmissionResult> {
    if rc != SOCKET_ERROR {
        return Ok(Immediate);
    }
    match last_wsa_error() {
        code if code == WSA_IO_PENDING as u32 => Ok(Pending),
        // A datagram that did not fit, received at once: a warning
        // (STATUS_BUFFER_OVERFLOW), not an error, to the I/O manager,
        // which queues the op's packet as for a success.
        code if code == WSAEMSGSIZE as u32 => Ok(Pending),
        code => Err(error_from_code(code)),
    }
}

// ---- files ------------------------------------------------------------------

/// `ReadFile` at the op's offset.
///
/// # Safety
///
/// See the module docs; the payload is `read`.
pub(crate) unsafe fn submit_read(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `read` is the live variant of a live,
    // not yet submitted op; the fields are read by value.
    let (buf, len, offset, handle) = unsafe {
        let p = payload_ptr!(op, read, FileIo);
        ((*p).buf, (*p).len, (*p).offset, handle_of(op))
    };
    // SAFETY: not submitted yet.
    unsafe { set_offset(op, offset) };
    // SAFETY: `buf` is valid for `len` bytes until the completion (the op's
    // future or the driver keeps it alive); the OVERLAPPED lives in the
    // op, which stays put until its completion is processed.
    let ok = unsafe { ReadFile(handle as HANDLE, buf, len, ptr::null_mut(), overlapped(op)) };
    if ok != 0 {
        return Ok(Immediate);
    }
    match last_error() {
        // A read at or past the end of a file, or from a pipe whose other
        // end has gone, fails at once and no packet comes; the completion
        // turns the code into end of stream.
        code @ (ERROR_HANDLE_EOF | ERROR_BROKEN_PIPE | ERROR_PIPE_NOT_CONNECTED) => {
            Ok(Ready(Err(code)))
        }
        // A message-mode pipe message longer than the buffer, read at
        // once: a warning (STATUS_BUFFER_OVERFLOW), not an error, to the
        // I/O manager, which queues the op's packet as for a success
        // (message pipes are kept out of skip-on-success mode, where Wine
        // would not; see `is_message_pipe`).
        ERROR_MORE_DATA => Ok(Pending),
        code => win32_code(code),
    }
}

/// `WriteFile` at the op's offset.
///
/// # Safety
///
/// See the module docs; the payload is `write`.
pub(crate) unsafe fn submit_write(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `write` is the live variant of a live,
    // not yet submitted op; the fields are read by value.
    let (buf, len, offset, handle) = unsafe {
        let p = payload_ptr!(op, write, FileIo);
        ((*p).buf, (*p).len, (*p).offset, handle_of(op))
    };
    // SAFETY: not submitted yet.
    unsafe { set_offset(op, offset) };
    // SAFETY: as in `submit_read`; the kernel only reads `buf`.
    let ok = unsafe { WriteFile(handle as HANDLE, buf, len, ptr::null_mut(), overlapped(op)) };
    win32_started(ok)
}

/// `ConnectNamedPipe` on a server instance.
///
/// # Safety
///
/// See the module docs; the payload is `connect_pipe`.
pub(crate) unsafe fn submit_connect_pipe(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `op` is live and not yet submitted;
    // `handle` is read by value and only the `OVERLAPPED`'s address taken.
    let (handle, ovl) = unsafe { (handle_of(op), overlapped(op)) };
    // SAFETY: the OVERLAPPED lives in the op, which stays put until its
    // completion is processed; the call reads nothing else of ours.
    let ok = unsafe { ConnectNamedPipe(handle as HANDLE, ovl) };
    if ok != 0 {
        return Ok(Immediate);
    }
    match last_error() {
        // A client connected between `CreateNamedPipeW` (or the last
        // `DisconnectNamedPipe`) and this call: the instance is connected
        // already. The call failed at once, so no packet comes.
        ERROR_PIPE_CONNECTED => Ok(Ready(Ok(0))),
        code => win32_code(code),
    }
}

/// The Win32 access mask and creation disposition for `flags`, checked the
/// way std checks them.
fn open_mode(flags: &OpenFlags) -> io::Result<(u32, u32)> {
    let append_write = FILE_GENERIC_WRITE & !FILE_WRITE_DATA;
    let access = match (flags.read, flags.write, flags.append) {
        (false, false, false) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "veloq: open needs read, write or append access",
            ))
        }
        (true, false, false) => GENERIC_READ,
        (false, true, false) => GENERIC_WRITE,
        (true, true, false) => GENERIC_READ | GENERIC_WRITE,
        (false, _, true) => append_write,
        (true, _, true) => GENERIC_READ | append_write,
    };
    let writable = flags.write || flags.append;
    if !writable && (flags.truncate || flags.create || flags.create_new) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "veloq: create and truncate need write or append access",
        ));
    }
    if flags.append && flags.truncate && !flags.create_new {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "veloq: append and truncate cannot be combined",
        ));
    }
    let disposition = match (flags.create, flags.truncate, flags.create_new) {
        (_, _, true) => CREATE_NEW,
        (false, false, false) => OPEN_EXISTING,
        (true, false, false) => OPEN_ALWAYS,
        (false, true, false) => TRUNCATE_EXISTING,
        (true, true, false) => CREATE_ALWAYS,
    };
    Ok((access, disposition))
}

/// A NUL-terminated wide path; an error for a path with a NUL inside.
fn wide_path(path: &OsStr) -> io::Result<Vec<u16>> {
    let mut wide: Vec<u16> = path.encode_wide().collect();
    if wide.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "veloq: path contains a NUL character",
        ));
    }
    wide.push(0);
    Ok(wide)
}

/// `CreateFileW` (with `FILE_FLAG_OVERLAPPED`) on the blocking pool.
///
/// # Safety
///
/// See the module docs; the payload is `open`.
pub(crate) unsafe fn submit_open(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `open` is the live variant. Nothing
    // else reaches the op before it is offloaded (below, by the caller),
    // and the pool never touches the payload.
    let p = unsafe { &mut *payload_ptr!(op, open, super::op::OpenPayload) };
    let (access, disposition) = open_mode(&p.flags)?;
    let path = p
        .path
        .take()
        .ok_or_else(|| io::Error::other("veloq: open submitted twice"))?;
    let path = wide_path(path.as_os_str())?;
    Ok(Offload(BlockingTask::Open {
        path,
        access,
        disposition,
    }))
}

/// `closesocket` or `CloseHandle` on the blocking pool.
///
/// # Safety
///
/// See the module docs; the payload is `close`.
pub(crate) unsafe fn submit_close(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    Ok(Offload(BlockingTask::Close {
        // SAFETY: the caller guarantees `op` is live.
        handle: resolve_fd(unsafe { handle_of(op) }),
    }))
}

/// `FlushFileBuffers` on the blocking pool (data and metadata).
///
/// # Safety
///
/// See the module docs; the payload is `fsync`.
pub(crate) unsafe fn submit_fsync(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    Ok(Offload(BlockingTask::Flush {
        // SAFETY: the caller guarantees `op` is live.
        handle: resolve_fd(unsafe { handle_of(op) }),
    }))
}

/// `SyncFileRange` on Windows: there is no ranged flush, so this is
/// `FlushFileBuffers` — a whole-file flush of data and metadata, as
/// expensive as `fsync`. The range is accepted and ignored.
///
/// # Safety
///
/// See the module docs; the payload is `sync_range`.
pub(crate) unsafe fn submit_sync_range(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    Ok(Offload(BlockingTask::Flush {
        // SAFETY: the caller guarantees `op` is live.
        handle: resolve_fd(unsafe { handle_of(op) }),
    }))
}

/// Reserve space (and extend the file to `offset + len`, as Linux's
/// `fallocate` does) on the blocking pool.
///
/// # Safety
///
/// See the module docs; the payload is `fallocate`.
pub(crate) unsafe fn submit_fallocate(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `fallocate` is the live variant; the
    // fields are read by value.
    let (offset, len) = unsafe {
        let p = payload_ptr!(op, fallocate, super::op::HandlePayload);
        ((*p).offset, (*p).len)
    };
    let end = offset
        .checked_add(len)
        .filter(|e| *e <= i64::MAX as u64)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "veloq: allocate range overflows",
            )
        })?;
    Ok(Offload(BlockingTask::Allocate {
        // SAFETY: the caller guarantees `op` is live.
        handle: resolve_fd(unsafe { handle_of(op) }),
        end,
    }))
}

// ---- sockets ----------------------------------------------------------------

/// The socket the op works on.
///
/// # Safety
///
/// `op` points at a live op.
unsafe fn socket(op: *const IocpOp) -> SOCKET {
    // SAFETY: the caller guarantees `op` is live.
    resolve_fd(unsafe { handle_of(op) }) as SOCKET
}

/// `WSASend`.
///
/// # Safety
///
/// See the module docs; the payload is `send`.
pub(crate) unsafe fn submit_send(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `send` is the live variant of a live
    // op; only field addresses are taken.
    let (s, ovl, wsabuf) = unsafe {
        let p = payload_ptr!(op, send, SockIo);
        (socket(op), overlapped(op), addr_of!((*p).wsabuf))
    };
    // SAFETY: the WSABUF's memory stays valid until the completion (kept
    // by the future or the driver); the WSABUF itself and the OVERLAPPED
    // live in the op, which stays put until then.
    let rc = unsafe { WSASend(s, wsabuf, 1, ptr::null_mut(), 0, ovl, None) };
    wsa_started(rc)
}

/// `WSARecv`.
///
/// # Safety
///
/// See the module docs; the payload is `recv`.
pub(crate) unsafe fn submit_recv(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `recv` is the live variant of a live
    // op; only field addresses are taken.
    let (s, ovl, wsabuf, flags) = unsafe {
        let p = payload_ptr!(op, recv, SockIo);
        (
            socket(op),
            overlapped(op),
            addr_of!((*p).wsabuf),
            addr_of_mut!((*p).flags),
        )
    };
    // SAFETY: as in `submit_send`; `flags`, which Winsock may write back
    // when the op completes, is in the op too.
    let rc = unsafe { WSARecv(s, wsabuf, 1, ptr::null_mut(), flags, ovl, None) };
    wsa_started(rc)
}

/// `WSASendTo`; the address is in the payload.
///
/// # Safety
///
/// See the module docs; the payload is `send_to`.
pub(crate) unsafe fn submit_send_to(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `send_to` is the live variant of a
    // live op; only field addresses and `addr_len` (by value) are taken.
    let (s, ovl, wsabuf, addr, addr_len) = unsafe {
        let p = payload_ptr!(op, send_to, DatagramIo);
        (
            socket(op),
            overlapped(op),
            addr_of!((*p).wsabuf),
            addr_of!((*p).addr).cast::<SOCKADDR>(),
            (*p).addr_len,
        )
    };
    // SAFETY: as in `submit_send`; the address lives in the op as well.
    let rc = unsafe { WSASendTo(s, wsabuf, 1, ptr::null_mut(), 0, addr, addr_len, ovl, None) };
    wsa_started(rc)
}

/// `WSARecvFrom`; Winsock writes the source address into the payload.
///
/// # Safety
///
/// See the module docs; the payload is `recv_from`.
pub(crate) unsafe fn submit_recv_from(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `recv_from` is the live variant of a
    // live op; only field addresses are taken.
    let (s, ovl, wsabuf, flags, addr, addr_len) = unsafe {
        let p = payload_ptr!(op, recv_from, DatagramIo);
        (
            socket(op),
            overlapped(op),
            addr_of!((*p).wsabuf),
            addr_of_mut!((*p).flags),
            addr_of_mut!((*p).addr).cast::<SOCKADDR>(),
            addr_of_mut!((*p).addr_len),
        )
    };
    // SAFETY: as in `submit_recv`; the address buffer and its length,
    // written when the datagram arrives, live in the op.
    let rc = unsafe {
        WSARecvFrom(
            s,
            wsabuf,
            1,
            ptr::null_mut(),
            flags,
            addr,
            addr_len,
            ovl,
            None,
        )
    };
    wsa_started(rc)
}

/// `WSASend` over the op's `WSABUF` array, or `WSASendTo` for a datagram
/// to a named peer.
///
/// # Safety
///
/// See the module docs; the payload is `send_vec`, and its array and the
/// memory it describes stay valid until the completion (the op's keep).
pub(crate) unsafe fn submit_send_vec(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `send_vec` is the live variant of a
    // live op; plain fields are read by value, the address's is taken.
    let (s, ovl, bufs, count, named, addr, addr_len) = unsafe {
        let p = payload_ptr!(op, send_vec, VecIo);
        (
            socket(op),
            overlapped(op),
            (*p).bufs,
            (*p).count,
            (*p).named,
            addr_of!((*p).addr).cast::<SOCKADDR>(),
            (*p).addr_len,
        )
    };
    // SAFETY: the WSABUF array and the buffers it points at are owned by
    // the op's keep, alive and unmoved until the completion (Winsock
    // captures the array at the call anyway); the address and the
    // OVERLAPPED live in the op, which stays put until then.
    let rc = unsafe {
        if named {
            WSASendTo(
                s,
                bufs,
                count,
                ptr::null_mut(),
                0,
                addr,
                addr_len,
                ovl,
                None,
            )
        } else {
            WSASend(s, bufs, count, ptr::null_mut(), 0, ovl, None)
        }
    };
    wsa_started(rc)
}

/// `WSARecv` over the op's `WSABUF` array, or `WSARecvFrom` when the
/// source address is wanted.
///
/// # Safety
///
/// See the module docs; the payload is `recv_vec`, with its array as for
/// [`submit_send_vec`].
pub(crate) unsafe fn submit_recv_vec(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    // SAFETY: the caller guarantees `recv_vec` is the live variant of a
    // live op; plain fields are read by value, the others' addresses taken.
    let (s, ovl, bufs, count, named, flags, addr, addr_len) = unsafe {
        let p = payload_ptr!(op, recv_vec, VecIo);
        (
            socket(op),
            overlapped(op),
            (*p).bufs,
            (*p).count,
            (*p).named,
            addr_of_mut!((*p).flags),
            addr_of_mut!((*p).addr).cast::<SOCKADDR>(),
            addr_of_mut!((*p).addr_len),
        )
    };
    // SAFETY: as in `submit_send_vec`; `flags`, the address buffer and its
    // length, which Winsock writes when the data arrives, live in the op.
    let rc = unsafe {
        if named {
            WSARecvFrom(
                s,
                bufs,
                count,
                ptr::null_mut(),
                flags,
                addr,
                addr_len,
                ovl,
                None,
            )
        } else {
            WSARecv(s, bufs, count, ptr::null_mut(), flags, ovl, None)
        }
    };
    wsa_started(rc)
}

/// Binds `s` to the unspecified address of `addr`'s family unless it is
/// bound already (`ConnectEx` needs a bound socket).
fn ensure_bound(s: SOCKET, addr: &std::net::SocketAddr) -> io::Result<()> {
    let mut name = SockAddrBuf::zeroed();
    let mut len = SockAddrBuf::CAPACITY;
    // SAFETY: `name` has `len` writable bytes.
    if unsafe { getsockname(s, name.as_mut_ptr(), &mut len) } == 0 {
        return Ok(());
    }
    let code = last_wsa_error();
    if code != WSAEINVAL as u32 {
        return Err(error_from_code(code));
    }
    let (any, any_len) = SockAddrBuf::from_std(&unspecified_like(addr));
    // SAFETY: `any` holds `any_len` bytes of a valid address.
    if unsafe { bind(s, any.as_ptr(), any_len) } != 0 {
        return Err(error_from_code(last_wsa_error()));
    }
    Ok(())
}

/// `ConnectEx`, binding the socket first where needed.
///
/// # Safety
///
/// See the module docs; the payload is `connect`.
pub(crate) unsafe fn submit_connect(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    let connect_ex = Extensions::get()?.connect_ex.expect("checked when loaded");
    // SAFETY: the caller guarantees `connect` is the live variant of a
    // live op. The shared reference to the payload ends before the kernel
    // call (and the kernel only reads the address anyway).
    let (s, ovl, addr, addr_ptr, addr_len) = unsafe {
        let p = payload_ptr!(op, connect, super::op::ConnectPayload);
        let addr = (*p).addr.socket_addr((*p).addr_len);
        (
            socket(op),
            overlapped(op),
            addr,
            addr_of!((*p).addr).cast::<SOCKADDR>(),
            (*p).addr_len,
        )
    };
    let addr = addr
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "veloq: bad connect address"))?;
    ensure_bound(s, &addr)?;
    let mut sent = 0u32;
    // SAFETY: the address lives in the op, which stays put until the
    // completion; no send buffer.
    let ok = unsafe { connect_ex(s, addr_ptr, addr_len, ptr::null(), 0, &mut sent, ovl) };
    if ok != 0 {
        return Ok(Immediate);
    }
    wsa_started(SOCKET_ERROR)
}

/// `AcceptEx` into a socket created here with the listener's family.
///
/// # Safety
///
/// See the module docs; the payload is `accept`.
pub(crate) unsafe fn submit_accept(op: *mut IocpOp) -> io::Result<SubmissionResult> {
    let accept_ex = Extensions::get()?.accept_ex;
    // SAFETY: the caller guarantees `accept` is the live variant of a
    // live, not yet submitted op.
    let p = unsafe { payload_ptr!(op, accept, AcceptPayload) };
    // SAFETY: as above; read by value.
    let ipv6 = unsafe { (*p).ipv6 };
    let domain = if ipv6 {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    // socket2 creates it overlapped and not inheritable.
    let accepted =
        socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    let accepted = accepted.into_raw_socket() as SOCKET;
    // From here the op owns the socket: dropping it (a failed start or a
    // failed completion) closes it, until a successful completion moves it
    // into the output.
    // SAFETY: not submitted yet: nothing else reads or writes `owned`.
    unsafe { (*op).header.owned = OwnedHandle::Socket(accepted) };
    // SAFETY: the op is live; only field addresses are taken.
    let (listener, ovl, buf) = unsafe {
        (
            socket(op),
            overlapped(op),
            addr_of_mut!((*p).buf).cast::<u8>(),
        )
    };
    let mut received = 0u32;
    // SAFETY: `buf` holds both addresses (2 * ACCEPT_ADDR_LEN bytes, no
    // data) and lives in the op, which stays put until the completion.
    let ok = unsafe {
        accept_ex(
            listener,
            accepted,
            buf.cast(),
            0,
            ACCEPT_ADDR_LEN,
            ACCEPT_ADDR_LEN,
            &mut received,
            ovl,
        )
    };
    if ok != 0 {
        return Ok(Immediate);
    }
    wsa_started(SOCKET_ERROR)
}

// ---- completions --------------------------------------------------------------

fn output(res: io::Result<usize>) -> OpOutput {
    OpOutput { res, addr: None }
}

/// Completion of an op whose result is the bytes transferred.
///
/// # Safety
///
/// Never unsafe; `unsafe` only to fit the vtable.
pub(crate) unsafe fn complete_bytes(_op: &mut IocpOp, res: Result<usize, u32>) -> OpOutput {
    output(res.map_err(error_from_code))
}

/// Completion of a read or receive: end of file is `Ok(0)`.
///
/// # Safety
///
/// Never unsafe; `unsafe` only to fit the vtable.
pub(crate) unsafe fn complete_read(op: &mut IocpOp, res: Result<usize, u32>) -> OpOutput {
    match res {
        // The first part of a message-mode pipe message that did not fit:
        // the buffer is full of it, and the next read gets the rest (as
        // tokio's named pipes report it). The kernel is done with the op,
        // so its `OVERLAPPED` holds the byte count.
        Err(ERROR_MORE_DATA) => output(Ok(op.header.overlapped.InternalHigh)),
        res => output(res.or_else(read_result)),
    }
}

/// Completion of `WSARecvFrom`: the bytes and the source address.
///
/// # Safety
///
/// `op` is a `RecvFrom` op whose completion arrived.
pub(crate) unsafe fn complete_recv_from(op: &mut IocpOp, res: Result<usize, u32>) -> OpOutput {
    let res = res.or_else(read_result);
    // SAFETY: `recv_from` is the live variant; the kernel is done with it.
    let p = unsafe { &op.payload.recv_from };
    // Read by family over the whole buffer: the length Winsock writes back
    // is not needed to decode an IP address.
    let addr = if res.is_ok() {
        p.addr.socket_addr(SockAddrBuf::CAPACITY)
    } else {
        None
    };
    OpOutput { res, addr }
}

/// Completion of a vectored receive: the bytes (end of stream is `Ok(0)`)
/// and, for `WSARecvFrom`, the source address.
///
/// # Safety
///
/// `op` is a `RecvVec` op whose completion arrived.
pub(crate) unsafe fn complete_recv_vec(op: &mut IocpOp, res: Result<usize, u32>) -> OpOutput {
    let res = res.or_else(read_result);
    // SAFETY: `recv_vec` is the live variant; the kernel is done with it.
    let p = unsafe { &op.payload.recv_vec };
    let addr = if res.is_ok() && p.named {
        p.addr.socket_addr(SockAddrBuf::CAPACITY)
    } else {
        None
    };
    OpOutput { res, addr }
}

/// Completion of `ConnectEx`: `SO_UPDATE_CONNECT_CONTEXT` so that the
/// socket works with `getpeername`, `shutdown` and the rest.
///
/// # Safety
///
/// `op` is a `Connect` op whose completion arrived.
pub(crate) unsafe fn complete_connect(op: &mut IocpOp, res: Result<usize, u32>) -> OpOutput {
    if let Err(code) = res {
        return output(Err(error_from_code(code)));
    }
    // SAFETY: `op` is a live reference.
    let s = unsafe { socket(op) };
    // SAFETY: this option takes no value.
    let rc = unsafe { setsockopt(s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, ptr::null(), 0) };
    if rc == SOCKET_ERROR {
        return output(Err(error_from_code(last_wsa_error())));
    }
    output(Ok(0))
}

/// Completion of `AcceptEx`: `SO_UPDATE_ACCEPT_CONTEXT`, the peer address
/// from `GetAcceptExSockaddrs`, and the accepted socket as the result. On
/// success the driver then moves the socket from the op into the output
/// (`IocpOp::disown`); on failure the op keeps it and closes it.
///
/// # Safety
///
/// `op` is an `Accept` op whose completion arrived.
pub(crate) unsafe fn complete_accept(op: &mut IocpOp, res: Result<usize, u32>) -> OpOutput {
    if let Err(code) = res {
        return output(Err(error_from_code(code)));
    }
    let OwnedHandle::Socket(accepted) = op.header.owned else {
        return output(Err(io::Error::other(
            "veloq: accept completed without its socket",
        )));
    };
    // SAFETY: `op` is a live reference.
    let listener = unsafe { socket(op) };
    // SAFETY: the option value is the listening socket, `size_of::<SOCKET>()`
    // bytes read during the call.
    let rc = unsafe {
        setsockopt(
            accepted,
            SOL_SOCKET,
            SO_UPDATE_ACCEPT_CONTEXT,
            (&listener as *const SOCKET).cast(),
            size_of::<SOCKET>() as i32,
        )
    };
    if rc == SOCKET_ERROR {
        return output(Err(error_from_code(last_wsa_error())));
    }
    let addr = match Extensions::get() {
        Ok(ext) => {
            let get_addrs = ext.get_accept_ex_sockaddrs.expect("checked when loaded");
            let (mut local, mut remote): (*mut SOCKADDR, *mut SOCKADDR) =
                (ptr::null_mut(), ptr::null_mut());
            let (mut local_len, mut remote_len) = (0i32, 0i32);
            // SAFETY: `accept` is the live variant; the kernel is done
            // writing `buf`, laid out as AcceptEx was told. The returned
            // pointers point into `buf`.
            unsafe {
                get_addrs(
                    (*op.payload.accept).buf.as_ptr().cast(),
                    0,
                    ACCEPT_ADDR_LEN,
                    ACCEPT_ADDR_LEN,
                    &mut local,
                    &mut local_len,
                    &mut remote,
                    &mut remote_len,
                );
                sockaddr_to_std(remote, remote_len)
            }
        }
        Err(e) => return output(Err(e)),
    };
    OpOutput {
        res: Ok(accepted),
        addr,
    }
}

/// Completion of an offloaded open: the new handle. The op owns it until
/// the driver moves it into the output (at once, as for an accept).
///
/// # Safety
///
/// Never unsafe; `unsafe` only to fit the vtable.
pub(crate) unsafe fn complete_open(op: &mut IocpOp, res: Result<usize, u32>) -> OpOutput {
    match res {
        Ok(handle) => {
            op.header.owned = OwnedHandle::File(handle);
            output(Ok(handle))
        }
        Err(code) => output(Err(error_from_code(code))),
    }
}
