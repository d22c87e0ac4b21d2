//! `IocpOp`: one in-flight op, type-erased behind a vtable.
//!
//! ```text
//! #[repr(C)] IocpOp
//! +--------------------------------------------+  <- the pointer the kernel
//! | header: OverlappedEntry                    |     gets (&header.overlapped)
//! |   overlapped: OVERLAPPED   (first field)   |     and hands back
//! |   user_data, handle, state, owned, result  |
//! +--------------------------------------------+
//! | vtable: &'static OpVTable                  |  submit / on_complete / drop
//! +--------------------------------------------+
//! | payload: IocpOpPayload (union)             |  the one variant the vtable
//! |   WSABUF, sockaddr, AcceptEx buffer, ...   |  belongs to
//! |   (a vectored op: a pointer to the WSABUF  |
//! |   array its keep owns)                     |
//! +--------------------------------------------+
//! ```
//!
//! Because `overlapped` is the first field of the `#[repr(C)]` header and
//! the header the first of the `#[repr(C)]` op, the `OVERLAPPED*` a
//! completion carries is also a pointer to the op's [`OverlappedEntry`],
//! whose `user_data` names the registry slot (and generation) it belongs to.
//!
//! The op is as large as its header, the vtable pointer and the *largest*
//! payload — not the sum of all payloads, and never a heap allocation
//! (only `Open`'s path is converted to a wide string on the heap). It is
//! built by value, then moved once into a cell of the driver's `OpStore`
//! (`iocp/store.rs`) by `submit`, and stays there until it is dropped.
//!
//! # Op states ([`OpState`])
//!
//! ```text
//! Built ──submit──► InKernel ──completion dequeued──► Completed
//!   │                  │                                 ▲ ▲
//!   │                  └─ final at submit ─► Finished ───┘ │ (its packet
//!   │                                                      │  dequeued)
//!   └─────submit──► Offloaded ──pool posts result──────────┘
//! ```
//!
//! `Finished` is an op the kernel reported pending whose `OVERLAPPED`
//! already said "done" when `submit` looked (see `IocpDriver::submit`):
//! its output went to its task at once, and the kernel writes nothing more
//! into it, but its packet is still queued, so its cell stays allocated
//! (owned by the driver, outside the registry) until that packet is
//! dequeued.
//!
//! While `InKernel` the kernel may write the `OVERLAPPED` and the payload
//! (`WSARecv`'s flags, a source address and its length, the AcceptEx
//! buffer); while `Offloaded` a pool thread writes `header.blocking`. In
//! those two states Rust code reaches the op only through a raw
//! `*mut IocpOp` (as `OpVTable::submit` gets it), reading or writing single
//! fields the kernel and the pool never touch (`state`, `user_data`,
//! `handle`, `is_socket`) or passing field addresses (`addr_of_mut!`) to
//! the kernel; it never forms a reference that covers the `OVERLAPPED`,
//! the payload or `blocking`. Once the op's one packet has been dequeued
//! (`Completed`), nothing else writes it and `&mut IocpOp` is fine
//! (`OpVTable::on_complete`). An in-flight op is never dropped: the
//! `OpRef` that owns it aborts the process rather than free memory the
//! kernel or a pool thread may still write.
//!
//! # Handles an op owns
//!
//! An `Accept` owns its pre-created socket from submission on
//! ([`OwnedHandle`]); dropping the op closes it, so a failed accept never
//! leaks the socket. When the op completes successfully the driver moves
//! the handle into the op's output ([`IocpOp::disown`], at the completion,
//! whether the op was cancelled or not): from then on the output carries
//! it, and whoever gets the output — the op's future, or the cancel hook of
//! a cancelled op — owns it. An `Open` owns the handle the pool opened
//! from its completion on and hands it over the same way. The op only
//! remembers a handed-out handle ([`IocpOp::handed_out`]) so that a
//! dropping driver can close it when it throws an unread output away.

use std::io;
use std::mem::ManuallyDrop;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::Networking::WinSock::{closesocket, SOCKET, WSABUF};
use windows_sys::Win32::System::IO::OVERLAPPED;

use super::sockaddr::SockAddrBuf;
use super::submit::{self, SubmissionResult};
use super::IocpDriver;
use crate::io::driver::IntoPlatformOp;
use crate::io::op::{self, OpOutput, OpenFlags};
use crate::sys::RawFd;

/// Where an op is in its life; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpState {
    /// Built, not yet handed to the kernel or the pool.
    Built,
    /// Posted to the kernel; one completion packet will come.
    InKernel,
    /// Running on the blocking pool; the pool will post one packet.
    Offloaded,
    /// Done in the kernel and its output delivered, but its packet not
    /// yet dequeued (see the module docs): nothing writes it any more,
    /// and its memory stays until that packet.
    Finished,
    /// Its completion has been processed.
    Completed,
}

/// A kernel handle an op owns and closes when dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnedHandle {
    /// Nothing owned.
    None,
    /// A socket (`closesocket`).
    Socket(SOCKET),
    /// A file handle (`CloseHandle`).
    File(usize),
}

/// A result the blocking pool hands to the driver through op memory.
///
/// Written once by a pool thread, then announced by
/// `PostQueuedCompletionStatus`; read once by the driver after it dequeued
/// that packet. Two things order the write before the read: the packet
/// itself (the port's queue is a kernel object: the dequeue that returns a
/// packet happens after the post that queued it), and, in terms Rust's
/// memory model sees, the `done` flag (release store, acquire load). The
/// fields are atomics, so the pool writes them through a shared reference
/// while the driver holds only a raw pointer to the op.
#[derive(Default)]
pub(crate) struct BlockingResult {
    value: AtomicUsize,
    /// 0 for success, else the Win32 error code.
    error: AtomicU32,
    done: AtomicBool,
}

impl BlockingResult {
    /// Stores the pool's result (pool thread).
    pub(crate) fn store(&self, result: Result<usize, u32>) {
        match result {
            Ok(v) => {
                self.value.store(v, Ordering::Relaxed);
                self.error.store(0, Ordering::Relaxed);
            }
            Err(code) => self.error.store(code.max(1), Ordering::Relaxed),
        }
        self.done.store(true, Ordering::Release);
    }

    /// Takes the stored result (driver thread), if one was stored.
    pub(crate) fn take(&self) -> Option<Result<usize, u32>> {
        if !self.done.swap(false, Ordering::Acquire) {
            return None;
        }
        match self.error.load(Ordering::Relaxed) {
            0 => Some(Ok(self.value.load(Ordering::Relaxed))),
            code => Some(Err(code)),
        }
    }
}

/// The part of an op the kernel and the completion path see.
///
/// Who writes what while the op is in flight: the kernel `overlapped`
/// (`InKernel`), a pool thread `blocking` (`Offloaded`); `user_data`,
/// `handle` and `is_socket` are written before submission only, `state`,
/// `owned` and `disowned` by the driver thread only.
#[repr(C)]
pub(crate) struct OverlappedEntry {
    /// Handed to the kernel; must stay the first field.
    pub(crate) overlapped: OVERLAPPED,
    /// The op's registry key (`OpKey::to_user_data`).
    pub(crate) user_data: u64,
    /// The handle the op works on (for `CancelIoEx` and the error lookup).
    pub(crate) handle: RawFd,
    /// Whether `handle` is a socket (Winsock error codes).
    pub(crate) is_socket: bool,
    /// See [`OpState`].
    pub(crate) state: OpState,
    /// The handle this op created (an accepted socket, an opened file);
    /// see the module docs.
    pub(crate) owned: OwnedHandle,
    /// Whether `owned` went into the op's output: the op no longer closes
    /// it (see [`IocpOp::disown`]).
    pub(crate) disowned: bool,
    /// The blocking pool's result for an offloaded op.
    pub(crate) blocking: BlockingResult,
}

impl OverlappedEntry {
    pub(crate) fn new(handle: RawFd, is_socket: bool) -> Self {
        OverlappedEntry {
            overlapped: OVERLAPPED::default(),
            user_data: 0,
            handle,
            is_socket,
            state: OpState::Built,
            owned: OwnedHandle::None,
            disowned: false,
            blocking: BlockingResult::default(),
        }
    }

    /// `handle` as a Win32 `HANDLE`.
    pub(crate) fn raw_handle(&self) -> HANDLE {
        self.handle as HANDLE
    }
}

/// The per-op-type functions behind an [`IocpOp`].
///
/// Every function may only be called with an op that was built with this
/// vtable (so that its payload's active variant is this op type's).
pub(crate) struct OpVTable {
    /// The op's name, for debugging.
    pub(crate) name: &'static str,
    /// Starts the op (see [`SubmissionResult`]). An `Err` means nothing is
    /// in flight. Gets a raw pointer: once the kernel call is made, the
    /// kernel may write the op while this function still runs.
    pub(crate) submit: unsafe fn(*mut IocpOp) -> io::Result<SubmissionResult>,
    /// Turns the kernel's (or the pool's) outcome — bytes transferred or
    /// a Win32/Winsock error code — into the op's output, the same way
    /// whether or not the op was cancelled (a cancelled receive that got
    /// bytes reports them). Called once the op is `Completed`.
    pub(crate) on_complete: unsafe fn(&mut IocpOp, Result<usize, u32>) -> OpOutput,
    /// Drops the payload.
    pub(crate) drop: unsafe fn(&mut IocpOp),
}

/// One in-flight op; see the module docs.
#[repr(C)]
pub(crate) struct IocpOp {
    /// The `OVERLAPPED` and what the completion path needs.
    pub(crate) header: OverlappedEntry,
    /// This op type's functions.
    pub(crate) vtable: &'static OpVTable,
    /// This op type's arguments and kernel-written memory.
    pub(crate) payload: IocpOpPayload,
}

impl IocpOp {
    /// Hands the owned handle (if any) to the op's output: the op no longer
    /// closes it, and only remembers it ([`handed_out`](Self::handed_out)).
    pub(crate) fn disown(&mut self) {
        self.header.disowned = true;
    }

    /// The handle this op's output carries, if any: the one a dropping
    /// driver must close when the output is thrown away unread.
    pub(crate) fn handed_out(&self) -> OwnedHandle {
        if self.header.disowned {
            self.header.owned
        } else {
            OwnedHandle::None
        }
    }

    /// Whether the op's memory must stay: the kernel or the pool may
    /// still write it, or (`Finished`) a packet still points at it.
    pub(crate) fn in_flight(&self) -> bool {
        matches!(
            self.header.state,
            OpState::InKernel | OpState::Offloaded | OpState::Finished
        )
    }
}

impl Drop for IocpOp {
    fn drop(&mut self) {
        // `OpRef` checks this before it forms `&mut self`; this is for an
        // op dropped any other way.
        if self.in_flight() {
            eprintln!(
                "veloq: IOCP op {} dropped while in flight; aborting",
                self.vtable.name
            );
            std::process::abort();
        }
        // SAFETY: `vtable` is the one this op was built with.
        unsafe { (self.vtable.drop)(self) };
        if !self.header.disowned {
            close_owned(self.header.owned);
        }
        self.header.owned = OwnedHandle::None;
    }
}

/// Closes a handle an op owned.
pub(crate) fn close_owned(owned: OwnedHandle) {
    match owned {
        OwnedHandle::None => {}
        // SAFETY: the op owned this socket (created it, nobody else has
        // it); it is closed once, here.
        OwnedHandle::Socket(s) => unsafe {
            closesocket(s);
        },
        // SAFETY: as above, for a file handle the op opened.
        OwnedHandle::File(h) => unsafe {
            CloseHandle(h as HANDLE);
        },
    }
}

// ---- payloads -------------------------------------------------------------

/// `ReadFixed` / `WriteFixed`: the buffer; the offset goes in the
/// `OVERLAPPED`.
pub(crate) struct FileIo {
    pub(crate) buf: *mut u8,
    pub(crate) len: u32,
    pub(crate) offset: u64,
}

/// `Send` / `Recv`: the buffer and the flags `WSARecv` writes back.
pub(crate) struct SockIo {
    pub(crate) wsabuf: WSABUF,
    pub(crate) flags: u32,
}

/// `SendTo` / `RecvFrom`: as [`SockIo`] plus the address (read by
/// `WSASendTo`, written by `WSARecvFrom` after the call returned).
pub(crate) struct DatagramIo {
    pub(crate) wsabuf: WSABUF,
    pub(crate) flags: u32,
    pub(crate) addr_len: i32,
    pub(crate) addr: SockAddrBuf,
}

/// `SendVec` / `RecvVec`: the caller's `WSABUF` array (in the op's keep),
/// the flags `WSARecv` writes back, and, for a datagram to or from a named
/// peer (`named`), the address (read by `WSASendTo`, written by
/// `WSARecvFrom` after the call returned).
pub(crate) struct VecIo {
    pub(crate) bufs: *mut WSABUF,
    pub(crate) count: u32,
    pub(crate) flags: u32,
    pub(crate) named: bool,
    pub(crate) addr_len: i32,
    pub(crate) addr: SockAddrBuf,
}

/// `Connect`: the address `ConnectEx` reads.
pub(crate) struct ConnectPayload {
    pub(crate) addr_len: i32,
    pub(crate) addr: SockAddrBuf,
}

/// Bytes `AcceptEx` needs per address: the largest address plus 16.
pub(crate) const ACCEPT_ADDR_LEN: u32 = SockAddrBuf::CAPACITY as u32 + 16;

/// `Accept`: the listener's family and the buffer `AcceptEx` writes both
/// addresses into. The pre-created socket is `header.owned`.
pub(crate) struct AcceptPayload {
    pub(crate) ipv6: bool,
    pub(crate) buf: [u8; 2 * ACCEPT_ADDR_LEN as usize],
}

/// `Open`: the path (converted to a wide string at submission) and flags.
pub(crate) struct OpenPayload {
    pub(crate) path: Option<PathBuf>,
    pub(crate) flags: OpenFlags,
}

/// `Close`, `Fsync`, `SyncFileRange`, `Fallocate`, `ConnectPipe`: the
/// range, where there is one.
pub(crate) struct HandlePayload {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Builds a payload from an op description: `(handle, is_socket, payload)`.
pub(crate) trait FromDesc<D>: Sized {
    fn from_desc(desc: D) -> (RawFd, bool, Self);
}

impl FromDesc<op::ReadFixed> for FileIo {
    fn from_desc(d: op::ReadFixed) -> (RawFd, bool, Self) {
        let p = FileIo {
            buf: d.buf,
            len: d.len,
            offset: d.offset,
        };
        (d.fd, false, p)
    }
}

impl FromDesc<op::WriteFixed> for FileIo {
    fn from_desc(d: op::WriteFixed) -> (RawFd, bool, Self) {
        let p = FileIo {
            buf: d.buf as *mut u8,
            len: d.len,
            offset: d.offset,
        };
        (d.fd, false, p)
    }
}

fn wsabuf(buf: *const u8, len: u32) -> WSABUF {
    WSABUF {
        len,
        buf: buf as *mut u8,
    }
}

impl FromDesc<op::Send> for SockIo {
    fn from_desc(d: op::Send) -> (RawFd, bool, Self) {
        let p = SockIo {
            wsabuf: wsabuf(d.buf, d.len),
            flags: 0,
        };
        (d.fd, true, p)
    }
}

impl FromDesc<op::Recv> for SockIo {
    fn from_desc(d: op::Recv) -> (RawFd, bool, Self) {
        let p = SockIo {
            wsabuf: wsabuf(d.buf, d.len),
            flags: 0,
        };
        (d.fd, true, p)
    }
}

impl FromDesc<op::SendTo> for DatagramIo {
    fn from_desc(d: op::SendTo) -> (RawFd, bool, Self) {
        let (addr, addr_len) = SockAddrBuf::from_std(&d.addr);
        let p = DatagramIo {
            wsabuf: wsabuf(d.buf, d.len),
            flags: 0,
            addr_len,
            addr,
        };
        (d.fd, true, p)
    }
}

impl FromDesc<op::RecvFrom> for DatagramIo {
    fn from_desc(d: op::RecvFrom) -> (RawFd, bool, Self) {
        let p = DatagramIo {
            wsabuf: wsabuf(d.buf, d.len),
            flags: 0,
            addr_len: SockAddrBuf::CAPACITY,
            addr: SockAddrBuf::zeroed(),
        };
        (d.fd, true, p)
    }
}

impl FromDesc<op::SendVec> for VecIo {
    fn from_desc(d: op::SendVec) -> (RawFd, bool, Self) {
        let (named, (addr, addr_len)) = match &d.addr {
            Some(a) => (true, SockAddrBuf::from_std(a)),
            None => (false, (SockAddrBuf::zeroed(), 0)),
        };
        let p = VecIo {
            bufs: d.bufs.cast_mut(),
            count: d.count,
            flags: 0,
            named,
            addr_len,
            addr,
        };
        (d.fd, true, p)
    }
}

impl FromDesc<op::RecvVec> for VecIo {
    fn from_desc(d: op::RecvVec) -> (RawFd, bool, Self) {
        let p = VecIo {
            bufs: d.bufs,
            count: d.count,
            flags: 0,
            named: d.from,
            addr_len: SockAddrBuf::CAPACITY,
            addr: SockAddrBuf::zeroed(),
        };
        (d.fd, true, p)
    }
}

impl FromDesc<op::Connect> for ConnectPayload {
    fn from_desc(d: op::Connect) -> (RawFd, bool, Self) {
        let (addr, addr_len) = SockAddrBuf::from_std(&d.addr);
        (d.fd, true, ConnectPayload { addr_len, addr })
    }
}

impl FromDesc<op::Accept> for AcceptPayload {
    fn from_desc(d: op::Accept) -> (RawFd, bool, Self) {
        let p = AcceptPayload {
            ipv6: d.ipv6,
            buf: [0; 2 * ACCEPT_ADDR_LEN as usize],
        };
        (d.fd, true, p)
    }
}

impl FromDesc<op::Open> for OpenPayload {
    fn from_desc(d: op::Open) -> (RawFd, bool, Self) {
        let p = OpenPayload {
            path: Some(d.path),
            flags: d.flags,
        };
        (0, false, p)
    }
}

impl FromDesc<op::Close> for HandlePayload {
    fn from_desc(d: op::Close) -> (RawFd, bool, Self) {
        (d.fd, false, HandlePayload { offset: 0, len: 0 })
    }
}

impl FromDesc<op::Fsync> for HandlePayload {
    fn from_desc(d: op::Fsync) -> (RawFd, bool, Self) {
        // Windows flushes data and metadata together (FlushFileBuffers);
        // `data_only` changes nothing.
        (d.fd, false, HandlePayload { offset: 0, len: 0 })
    }
}

impl FromDesc<op::SyncFileRange> for HandlePayload {
    fn from_desc(d: op::SyncFileRange) -> (RawFd, bool, Self) {
        let p = HandlePayload {
            offset: d.offset,
            len: d.len,
        };
        (d.fd, false, p)
    }
}

impl FromDesc<op::ConnectPipe> for HandlePayload {
    fn from_desc(d: op::ConnectPipe) -> (RawFd, bool, Self) {
        // `ConnectNamedPipe` takes only the handle and the `OVERLAPPED`.
        (d.fd, false, HandlePayload { offset: 0, len: 0 })
    }
}

impl FromDesc<op::Fallocate> for HandlePayload {
    fn from_desc(d: op::Fallocate) -> (RawFd, bool, Self) {
        let p = HandlePayload {
            offset: d.offset,
            len: d.len,
        };
        (d.fd, false, p)
    }
}

/// Generates [`IocpOpPayload`], one vtable per op type and the
/// `IntoPlatformOp<IocpDriver>` conversion of each op description.
///
/// Each line: `Description => union_field(PayloadType) { submit: fn,
/// complete: fn }`. The payload is built with `FromDesc`, and dropped by a
/// generated function that drops exactly that union field.
macro_rules! define_iocp_ops {
    ($( $desc:ident => $field:ident($payload:ty) { submit: $submit:path, complete: $complete:path } ),* $(,)?) => {
        /// The payload of every op type; the op's vtable says which field
        /// is live.
        #[repr(C)]
        pub(crate) union IocpOpPayload {
            $( pub(crate) $field: ManuallyDrop<$payload>, )*
        }

        /// `(op type, size, alignment)` of every payload, for the size test.
        #[cfg(test)]
        pub(crate) const PAYLOAD_LAYOUTS: &[(&str, usize, usize)] = &[
            $( (stringify!($desc), std::mem::size_of::<$payload>(), std::mem::align_of::<$payload>()), )*
        ];

        $(
            impl IntoPlatformOp<IocpDriver> for op::$desc {
                fn into_platform_op(self) -> IocpOp {
                    /// Drops this op type's payload.
                    ///
                    /// # Safety
                    ///
                    /// `op` was built with this op type's vtable.
                    unsafe fn drop_payload(op: &mut IocpOp) {
                        // SAFETY: the caller guarantees this variant is the
                        // live one; it is dropped once, by `IocpOp::drop`.
                        unsafe { ManuallyDrop::drop(&mut op.payload.$field) }
                    }
                    static VTABLE: OpVTable = OpVTable {
                        name: stringify!($desc),
                        submit: $submit,
                        on_complete: $complete,
                        drop: drop_payload,
                    };
                    let (handle, is_socket, payload) =
                        <$payload as FromDesc<op::$desc>>::from_desc(self);
                    IocpOp {
                        header: OverlappedEntry::new(handle, is_socket),
                        vtable: &VTABLE,
                        payload: IocpOpPayload { $field: ManuallyDrop::new(payload) },
                    }
                }
            }
        )*
    };
}

define_iocp_ops! {
    ReadFixed => read(FileIo) { submit: submit::submit_read, complete: submit::complete_read },
    WriteFixed => write(FileIo) { submit: submit::submit_write, complete: submit::complete_bytes },
    Send => send(SockIo) { submit: submit::submit_send, complete: submit::complete_bytes },
    Recv => recv(SockIo) { submit: submit::submit_recv, complete: submit::complete_read },
    SendTo => send_to(DatagramIo) { submit: submit::submit_send_to, complete: submit::complete_bytes },
    RecvFrom => recv_from(DatagramIo) { submit: submit::submit_recv_from, complete: submit::complete_recv_from },
    SendVec => send_vec(VecIo) { submit: submit::submit_send_vec, complete: submit::complete_bytes },
    RecvVec => recv_vec(VecIo) { submit: submit::submit_recv_vec, complete: submit::complete_recv_vec },
    Connect => connect(ConnectPayload) { submit: submit::submit_connect, complete: submit::complete_connect },
    Accept => accept(AcceptPayload) { submit: submit::submit_accept, complete: submit::complete_accept },
    Open => open(OpenPayload) { submit: submit::submit_open, complete: submit::complete_open },
    Close => close(HandlePayload) { submit: submit::submit_close, complete: submit::complete_bytes },
    Fsync => fsync(HandlePayload) { submit: submit::submit_fsync, complete: submit::complete_bytes },
    SyncFileRange => sync_range(HandlePayload) { submit: submit::submit_sync_range, complete: submit::complete_bytes },
    Fallocate => fallocate(HandlePayload) { submit: submit::submit_fallocate, complete: submit::complete_bytes },
    ConnectPipe => connect_pipe(HandlePayload) { submit: submit::submit_connect_pipe, complete: submit::complete_bytes },
}
