//! Platform-neutral op descriptions and the [`Op`] future that carries one
//! through the driver.
//!
//! A description names the handle, the raw memory and the arguments of one
//! kernel operation. It holds raw pointers into a buffer, and the raw
//! descriptor of a socket or file, that the [`Op`] future owns (the `keep`
//! value: the buffer and a shared reference to the descriptor's owner). The
//! future hands `keep` back with the result or, if it is dropped first,
//! gives it to the driver to keep alive until the kernel has finished with
//! it. So neither the memory nor the descriptor number can be freed or
//! reused while the kernel may still act on them.
//!
//! Each backend implements [`IntoPlatformOp`] for every description.
//!
//! # The life of an op
//!
//! ```text
//!                 first poll: Op::submit (current runtime, or panic)
//!                        │ fails ─────────────────► Failed ──poll──► Ready(err)
//!                        ▼
//!   Submitted(key) ── poll on its own runtime ──► Pending (waker kept)
//!        │                    completion processed ──poll──► Ready(output, keep)
//!        │
//!        └── dropped (anywhere: its runtime, another one, none) ─┐
//!                                                                ▼
//!   its own driver alive:  cancel(key, orphan(keep)) ── kernel lets go ──►
//!                          hook(real output): bytes / connection to the
//!                          socket's next read, then keep dropped
//!   its driver drained:    keep dropped (the kernel is done with it)
//!   its driver leaked:     keep leaked (the kernel may still write it)
//! ```
//!
//! [`Op::submit_on_poll`] submits in that first poll (reserve, submit and
//! the first `poll_op` in one driver call); [`Op::submit`] submits when
//! called, for ops that must be in flight before they are polled. Either
//! way the op is in the driver only from its submission on, and a future
//! dropped before it holds nothing the kernel could touch.
//!
//! An op belongs to the runtime (worker) that submitted it, through the
//! `Rc` it holds: it is `!Send`, and polling it under another runtime on
//! the same thread panics with a message that says so.
//!
//! # Multishot ops (io_uring)
//!
//! [`AcceptMulti`] and [`RecvMulti`] follow the same life with one slot
//! for many completions: each CQE that leaves the op armed goes to the
//! op's [`MultishotSink`] (stored in the op, so in the slot), and only the
//! final CQE completes the slot. Cancelling (dropping the future) still
//! waits for that final CQE before the slot, its sink and the keep-alive
//! are freed; the sink keeps what the op still produces meanwhile (the
//! owner's queue, a socket's stash) or closes it (accepted descriptors).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use crate::io::buf::IoBufMut;
use crate::io::driver::op_registry::KeepOnly;
use crate::io::driver::{Driver, IntoPlatformOp, KeepAlive, OpKey, PlatformDriver};
use crate::runtime::context;
use crate::runtime::executor::Core;
use crate::sys::RawFd;

/// What a completed op reports.
#[derive(Debug)]
pub(crate) struct OpOutput {
    /// Bytes transferred; for `Accept` and `Open` the new handle.
    pub(crate) res: io::Result<usize>,
    /// The peer address (`Accept`, `RecvFrom`).
    pub(crate) addr: Option<SocketAddr>,
}

/// The error every driver reports for an op that was cancelled
/// (`ECANCELED` on Linux, `ERROR_OPERATION_ABORTED` on Windows).
pub(crate) fn cancelled() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "operation cancelled")
}

/// After a read-like op (`Recv`, `RecvFrom`, `ReadFixed`) that was asked
/// for at most `len` bytes at `buf[off..]`: marks what the kernel wrote as
/// initialised.
///
/// # Panics
///
/// If the driver reported more bytes than were asked for.
///
/// # Safety
///
/// `out` must be the output of an op that wrote into `buf` starting at
/// `off`, with `off + len <= buf.bytes_total()`, and `buf[..off]` must
/// already be initialised.
pub(crate) unsafe fn mark_read<B: IoBufMut>(out: &OpOutput, buf: &mut B, off: usize, len: u32) {
    if let Ok(n) = out.res {
        assert!(
            n <= len as usize,
            "driver reported more bytes than requested"
        );
        // SAFETY: the kernel wrote `n <= len` bytes at `off`; the caller
        // guarantees `buf[..off]` was initialised and `off + len` fits.
        unsafe { buf.set_init(off + n) };
    }
}

/// Read `len` bytes at `offset` into `buf` (files). `fixed` is the
/// registered-buffer index when `buf` lies in registered memory.
pub(crate) struct ReadFixed {
    pub(crate) fd: RawFd,
    pub(crate) buf: *mut u8,
    pub(crate) len: u32,
    pub(crate) offset: u64,
    // IOCP has no registered buffers; only io_uring reads the index.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) fixed: Option<u16>,
}

/// Write `len` bytes of `buf` at `offset` (files).
pub(crate) struct WriteFixed {
    pub(crate) fd: RawFd,
    pub(crate) buf: *const u8,
    pub(crate) len: u32,
    pub(crate) offset: u64,
    // IOCP has no registered buffers; only io_uring reads the index.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) fixed: Option<u16>,
}

/// Send on a connected socket.
pub(crate) struct Send {
    pub(crate) fd: RawFd,
    pub(crate) buf: *const u8,
    pub(crate) len: u32,
    /// The socket is a TCP stream, where the kernel can send straight from
    /// the buffer's pages: the io_uring driver may then use `SEND_ZC` (from
    /// its threshold up; see `uring::send_zc`). Other drivers ignore it.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) zero_copy: bool,
}

/// Receive on a connected socket.
pub(crate) struct Recv {
    pub(crate) fd: RawFd,
    pub(crate) buf: *mut u8,
    pub(crate) len: u32,
}

/// Send a datagram to `addr`.
pub(crate) struct SendTo {
    pub(crate) fd: RawFd,
    pub(crate) buf: *const u8,
    pub(crate) len: u32,
    pub(crate) addr: SocketAddr,
}

/// Receive a datagram and its source address.
pub(crate) struct RecvFrom {
    pub(crate) fd: RawFd,
    pub(crate) buf: *mut u8,
    pub(crate) len: u32,
}

/// A socket address of any family in kernel form: where a
/// [`RecvFromName`] stores a datagram's source (Unix-domain addresses,
/// which `std::net::SocketAddr` cannot hold).
#[cfg(unix)]
pub(crate) struct SockName {
    pub(crate) storage: socket2::SockAddrStorage,
    /// Bytes of `storage` the kernel filled; `0` until the op completed.
    pub(crate) len: libc::socklen_t,
}

#[cfg(unix)]
impl SockName {
    pub(crate) fn new() -> SockName {
        SockName {
            storage: socket2::SockAddrStorage::zeroed(),
            len: 0,
        }
    }

    /// The stored address, or `None` if the kernel stored none (or a
    /// length that does not fit).
    pub(crate) fn get(&self) -> Option<socket2::SockAddr> {
        if self.len == 0 || self.len > self.storage.size_of() {
            return None;
        }
        // SAFETY: `SockAddrStorage` is plain old data (a
        // `sockaddr_storage`), so a bytewise copy is a valid value.
        let copy: socket2::SockAddrStorage = unsafe { std::ptr::read(&self.storage) };
        // SAFETY: the kernel initialised the first `len` bytes with a
        // socket address (`recvmsg`/`recvfrom` contract), and `len` fits.
        Some(unsafe { socket2::SockAddr::new(copy, self.len) })
    }
}

/// Send a datagram to `addr`, an address of any family (Unix datagram
/// sockets; [`SendTo`] carries IP addresses only).
#[cfg(unix)]
pub(crate) struct SendToName {
    pub(crate) fd: RawFd,
    pub(crate) buf: *const u8,
    pub(crate) len: u32,
    pub(crate) addr: socket2::SockAddr,
}

/// Receive a datagram; the driver stores its source address, of any
/// family, in `*from` before it reports the completion. `from` points into
/// the op's `keep` (heap memory that outlives the op, like the buffer).
#[cfg(unix)]
pub(crate) struct RecvFromName {
    pub(crate) fd: RawFd,
    pub(crate) buf: *mut u8,
    pub(crate) len: u32,
    pub(crate) from: *mut SockName,
}

/// Send from a caller-built `msghdr` (several buffers, ancillary data such
/// as `SCM_RIGHTS`). The header and everything it points to live in the
/// op's `keep` (stable heap memory) until the op completes.
#[cfg(unix)]
pub(crate) struct SendMsg {
    pub(crate) fd: RawFd,
    pub(crate) msg: *const libc::msghdr,
}

/// Receive into a caller-built `msghdr` (several buffers, a control
/// buffer); the kernel updates its `msg_controllen` and `msg_flags`.
/// Received descriptors are close-on-exec. Memory as for [`SendMsg`].
#[cfg(unix)]
pub(crate) struct RecvMsg {
    pub(crate) fd: RawFd,
    pub(crate) msg: *mut libc::msghdr,
}

/// Connect a stream socket to `addr`.
pub(crate) struct Connect {
    pub(crate) fd: RawFd,
    pub(crate) addr: SocketAddr,
}

/// Accept one connection on a listening socket. `ipv6` says which family
/// the listener (and so the accepted socket) has; IOCP pre-creates the
/// accepted socket with it.
pub(crate) struct Accept {
    pub(crate) fd: RawFd,
    // Only IOCP needs the family (io_uring's accept creates the socket).
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) ipv6: bool,
}

/// How a file is opened (mirrors `fs::OpenOptions`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OpenFlags {
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) append: bool,
    pub(crate) truncate: bool,
    pub(crate) create: bool,
    pub(crate) create_new: bool,
    /// Unix permission bits for a created file (ignored on Windows).
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) mode: u32,
}

impl OpenFlags {
    /// The flags normalised (`create_new` overrides `create` and
    /// `truncate`), or `InvalidInput` for a combination std's
    /// `OpenOptions` also refuses. The one place these rules live: every
    /// backend maps only validated flags.
    pub(crate) fn validate(mut self) -> io::Result<OpenFlags> {
        let invalid = |msg| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if !self.read && !self.write && !self.append {
            return invalid("open: no access mode: set read, write or append");
        }
        if !self.write && !self.append && (self.truncate || self.create || self.create_new) {
            return invalid("open: truncate/create/create_new need write or append access");
        }
        if self.append && self.truncate && !self.create_new {
            return invalid("open: truncate and append together");
        }
        if self.create_new {
            self.create = false;
            self.truncate = false;
        }
        Ok(self)
    }
}

/// Open (or create) a file. The output is the new handle.
pub(crate) struct Open {
    pub(crate) path: PathBuf,
    pub(crate) flags: OpenFlags,
}

/// Close a handle.
pub(crate) struct Close {
    pub(crate) fd: RawFd,
}

/// Flush a file's data (and metadata unless `data_only`) to the device.
pub(crate) struct Fsync {
    pub(crate) fd: RawFd,
    // `FlushFileBuffers` always flushes data and metadata on Windows.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) data_only: bool,
}

/// Flush a byte range of a file (Linux `sync_file_range`; a whole-file
/// flush on Windows, which has no ranged equivalent).
pub(crate) struct SyncFileRange {
    pub(crate) fd: RawFd,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Reserve disk space for a byte range of a file.
pub(crate) struct Fallocate {
    pub(crate) fd: RawFd,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Wait for a client to connect to a named-pipe server instance
/// (`ConnectNamedPipe`). Windows only.
#[cfg(windows)]
pub(crate) struct ConnectPipe {
    pub(crate) fd: RawFd,
}

// --- filesystem path ops (fsuring) ---
//
// Path operations the io_uring driver runs as opcodes (Linux only; the fs
// layer asks `LinuxDriver::supports_path_op` first and uses the blocking
// pool where the answer is no). Every path is a NUL-terminated string
// owned by the op's `keep` (a `CString`, whose heap bytes do not move), as
// is the `statx` buffer the kernel writes.

/// Which path op: what the fs layer asks the driver about.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathOpKind {
    /// [`Statx`].
    Statx,
    /// [`RenameAt`].
    RenameAt,
    /// [`UnlinkAt`].
    UnlinkAt,
    /// [`MkdirAt`].
    MkdirAt,
    /// [`LinkAt`].
    LinkAt,
    /// [`SymlinkAt`].
    SymlinkAt,
}

/// `statx(dirfd, path, flags, STATX_BASIC_STATS | STATX_BTIME, buf)`: the
/// kernel fills `*buf`. `dirfd` is `AT_FDCWD` for a path, or an open file
/// with an empty path and `AT_EMPTY_PATH`.
#[cfg(target_os = "linux")]
pub(crate) struct Statx {
    pub(crate) dirfd: RawFd,
    pub(crate) path: *const libc::c_char,
    pub(crate) flags: i32,
    pub(crate) buf: *mut libc::statx,
}

/// `renameat(AT_FDCWD, from, AT_FDCWD, to)`.
#[cfg(target_os = "linux")]
pub(crate) struct RenameAt {
    pub(crate) from: *const libc::c_char,
    pub(crate) to: *const libc::c_char,
}

/// `unlinkat(AT_FDCWD, path, dir ? AT_REMOVEDIR : 0)`.
#[cfg(target_os = "linux")]
pub(crate) struct UnlinkAt {
    pub(crate) path: *const libc::c_char,
    pub(crate) dir: bool,
}

/// `mkdirat(AT_FDCWD, path, mode)`.
#[cfg(target_os = "linux")]
pub(crate) struct MkdirAt {
    pub(crate) path: *const libc::c_char,
    pub(crate) mode: u32,
}

/// `linkat(AT_FDCWD, original, AT_FDCWD, link, 0)` (a hard link; a
/// symbolic `original` is linked itself, as std does).
#[cfg(target_os = "linux")]
pub(crate) struct LinkAt {
    pub(crate) original: *const libc::c_char,
    pub(crate) link: *const libc::c_char,
}

/// `symlinkat(original, AT_FDCWD, link)`.
#[cfg(target_os = "linux")]
pub(crate) struct SymlinkAt {
    pub(crate) original: *const libc::c_char,
    pub(crate) link: *const libc::c_char,
}
// --- process ops (procwait) ---

/// Wait until `fd` is readable (`write == false`) or writable, without
/// reading or writing it: io_uring `POLL_ADD`, epoll readiness. The output
/// is the `poll` event mask. For descriptors that are waited on rather
/// than transferred through an op: a pidfd (readable once its process has
/// exited) and a child's non-blocking pipe ends. The descriptor must stay
/// open until the op completes (its owner goes in the op's `keep`).
#[cfg(target_os = "linux")]
pub(crate) struct PollReady {
    pub(crate) fd: RawFd,
    pub(crate) write: bool,
}

// --- end of process ops (procwait) ---
// --- multishot ops (recvring) ---
//
// Ops the io_uring driver keeps armed across completions: one slot, many
// CQEs. Every CQE goes to the op's sink (in the op, so it lives as long
// as the slot); the slot is freed only by the final CQE (no
// `IORING_CQE_F_MORE`), also after a cancel. Linux only; the epoll backend
// refuses them (callers ask `LinuxDriver::supports_multishot_*` first).

/// One completion of a multishot op, as its sink receives it.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct MultishotEvent {
    /// The result: an accepted descriptor, bytes received, or the error.
    pub(crate) res: io::Result<usize>,
    /// The provided buffer the kernel filled (`IORING_CQE_F_BUFFER`).
    pub(crate) buf: Option<u16>,
    /// Whether the op stays armed (`IORING_CQE_F_MORE`); `false` on the
    /// final completion, after which the kernel writes nothing more.
    pub(crate) more: bool,
}

/// Where a multishot op's completions go. Called on the driver's thread,
/// inside a driver call: it must not call back into the driver.
#[cfg(target_os = "linux")]
pub(crate) trait MultishotSink {
    /// One completion, in the order the kernel posted them.
    fn deliver(&self, event: MultishotEvent);
}

/// Accept connections until cancelled (`IORING_ACCEPT_MULTISHOT`); each
/// new descriptor (close-on-exec, owned by the sink) goes to `sink`.
#[cfg(target_os = "linux")]
pub(crate) struct AcceptMulti {
    pub(crate) fd: RawFd,
    pub(crate) sink: Rc<dyn MultishotSink>,
}

/// Receive until cancelled into buffers the kernel picks from the
/// provided-buffer ring `group` (`IORING_RECV_MULTISHOT` with buffer
/// select); each filled buffer's id goes to `sink`. The ring's memory must
/// outlive the op (the sink owns a reference to it).
#[cfg(target_os = "linux")]
pub(crate) struct RecvMulti {
    pub(crate) fd: RawFd,
    pub(crate) group: u16,
    pub(crate) sink: Rc<dyn MultishotSink>,
}

// --- end of multishot ops (recvring) ---
// --- vectored ops (winvec) ---

/// Send the buffers an array of `WSABUF`s describes, in order, in one
/// `WSASend`, or as one datagram to `addr` with `WSASendTo`. The array and
/// the memory it points to live in the op's `keep` (stable heap memory)
/// until the op completes. Windows only (Unix uses [`SendMsg`]).
#[cfg(windows)]
pub(crate) struct SendVec {
    pub(crate) fd: RawFd,
    pub(crate) bufs: *const windows_sys::Win32::Networking::WinSock::WSABUF,
    pub(crate) count: u32,
    pub(crate) addr: Option<SocketAddr>,
}

/// Receive into the buffers an array of `WSABUF`s describes, filling each
/// before the next, in one `WSARecv`, or, with `from`, one `WSARecvFrom`
/// that reports the datagram's source in the output. Memory as for
/// [`SendVec`]. Windows only (Unix uses [`RecvMsg`]).
#[cfg(windows)]
pub(crate) struct RecvVec {
    pub(crate) fd: RawFd,
    pub(crate) bufs: *mut windows_sys::Win32::Networking::WinSock::WSABUF,
    pub(crate) count: u32,
    pub(crate) from: bool,
}

// --- end of vectored ops (winvec) ---

enum State {
    /// Not submitted yet: the op of a [`SubmitOnPoll`] before its first
    /// poll. The driver knows nothing of it, so dropping it just drops
    /// `keep`.
    Unsubmitted,
    /// In flight in the driver under this key.
    Submitted(OpKey),
    /// Submission failed; the error is reported on first poll.
    Failed(io::Error),
    /// The output has been taken.
    Done,
}

/// Turns the keep-alive of a future dropped mid-flight into what the driver
/// keeps until the completion comes (see [`CancelHook`](crate::io::driver::op_registry::CancelHook)).
pub(crate) type Orphan<K> = fn(K) -> KeepAlive;

/// The default [`Orphan`]: keep the value alive, then drop it.
pub(crate) fn keep_only<K: 'static>(keep: K) -> KeepAlive {
    Box::new(KeepOnly(keep))
}

/// A future for one in-flight op; resolves to the op's output and the value
/// it kept alive (the buffer and descriptor).
///
/// Dropping it before completion cancels the op; `keep` then goes to the
/// op's own driver (see the module docs), whichever runtime is current.
pub(crate) struct Op<K: 'static> {
    /// The runtime the op was submitted to.
    core: Rc<Core>,
    state: State,
    keep: Option<K>,
    orphan: Orphan<K>,
}

impl<K: 'static> Op<K> {
    /// Submits `desc` to the current runtime's driver. `keep` is whatever the
    /// kernel may touch through `desc`'s pointers and descriptor; if the
    /// future is dropped early it is kept until the completion, then
    /// dropped.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub(crate) fn submit<T: IntoPlatformOp<PlatformDriver>>(desc: T, keep: K) -> Op<K> {
        Op::submit_with(desc, keep, keep_only::<K>)
    }

    /// As [`submit`](Op::submit); should the future be dropped early,
    /// `orphan` turns `keep` into the hook that receives the op's real
    /// output (a read hands its bytes on to the next read).
    pub(crate) fn submit_with<T: IntoPlatformOp<PlatformDriver>>(
        desc: T,
        keep: K,
        orphan: Orphan<K>,
    ) -> Op<K> {
        let core = context::current().unwrap_or_else(|| context::no_runtime());
        if let Some(e) = core.driver_fault() {
            // The driver failed hard: new ops fail; those in flight stay.
            return Op {
                core,
                state: State::Failed(e),
                keep: Some(keep),
                orphan,
            };
        }
        let submitted = core.with_driver(|driver| {
            let key = driver.reserve()?;
            driver.submit(key, desc.into_platform_op())?;
            Ok(key)
        });
        let state = match submitted {
            Some(Ok(key)) => State::Submitted(key),
            Some(Err(e)) => State::Failed(e),
            None => State::Failed(driver_gone()),
        };
        Op {
            core,
            state,
            keep: Some(keep),
            orphan,
        }
    }
}

impl<K: 'static> Op<K> {
    /// As [`submit_with`](Op::submit_with), but the op reaches the driver
    /// on the returned future's first poll, in the same driver call as
    /// that poll ([`Driver::submit_polled`]): one borrow of the driver and
    /// one slot lookup instead of two. For an op that is awaited at once
    /// (where the two orders cannot be told apart); an op that must be in
    /// flight before it is polled (multishot, `cancel_now`) uses
    /// [`submit_with`](Op::submit_with).
    ///
    /// Dropped before its first poll, the future submits nothing and just
    /// drops `keep`; from then on it is an [`Op`] in every respect (see
    /// the module docs).
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    #[inline]
    pub(crate) fn submit_on_poll<T: IntoPlatformOp<PlatformDriver>>(
        desc: T,
        keep: K,
        orphan: Orphan<K>,
    ) -> SubmitOnPoll<T, K> {
        let core = context::current().unwrap_or_else(|| context::no_runtime());
        SubmitOnPoll {
            desc: Some(desc),
            op: Op {
                core,
                state: State::Unsubmitted,
                keep: Some(keep),
                orphan,
            },
        }
    }

    /// The error of a submission that failed (the op never reached the
    /// kernel), taken out; `None` while the op is in flight or done. An op
    /// whose submission failed is done once this has been taken.
    // Multishot owners (Linux) learn completions through their sink and
    // never poll the op.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn take_submit_error(&mut self) -> Option<io::Error> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Failed(e) => Some(e),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Cancels the op in the kernel and waits for the kernel to let go of
    /// it (io_uring's synchronous cancel). `true` once the kernel no longer
    /// runs the op (or never did): its descriptor and memory are free even
    /// though the driver has not processed its final completion yet.
    /// `false` where that cannot be known now (the driver is busy further
    /// up the stack or gone, or the kernel lacks the synchronous cancel);
    /// the op then ends as a dropped op does.
    #[cfg(target_os = "linux")]
    pub(crate) fn cancel_now(&self) -> bool {
        let State::Submitted(key) = self.state else {
            return true;
        };
        self.core
            .with_driver_if_free(|driver| driver.cancel_sync(key))
            .unwrap_or(false)
    }
}

/// The error of an op whose runtime shut down before it could complete.
fn driver_gone() -> io::Error {
    io::Error::other("veloq: the runtime of this operation has shut down")
}

impl<K: 'static> Future for Op<K> {
    type Output = (OpOutput, K);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `Op` holds no self-references; it is `Unpin` whenever `K` is, and
        // we never move out of anything pinned.
        unsafe_unpin(self).poll_output(cx)
    }
}

impl<K: 'static> Op<K> {
    /// [`Future::poll`] of a submitted (or failed) op.
    #[inline]
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<(OpOutput, K)> {
        let this = self;
        // The state stays `Submitted` while the driver is asked (should the
        // driver panic, the drop still cancels the op and hands `keep` to
        // the driver); it turns `Done` once the output, and with it the
        // slot, has been taken.
        let out = if let State::Submitted(key) = this.state {
            context::assert_current(&this.core);
            // A driver that is gone has drained: the kernel let go of the
            // op, so `keep` may be handed back with an error.
            let polled = this.core.with_driver(|driver| driver.poll_op(key, cx));
            let out = ready!(polled.unwrap_or_else(|| Poll::Ready(OpOutput {
                res: Err(driver_gone()),
                addr: None,
            })));
            this.state = State::Done;
            out
        } else {
            match std::mem::replace(&mut this.state, State::Done) {
                State::Failed(e) => OpOutput {
                    res: Err(e),
                    addr: None,
                },
                _ => panic!("veloq: op future polled after completion"),
            }
        };
        let keep = this.keep.take().expect("op keep-alive taken twice");
        Poll::Ready((out, keep))
    }
}

/// The future of [`Op::submit_on_poll`]: an [`Op`] whose description is
/// submitted on the first poll.
pub(crate) struct SubmitOnPoll<T, K: 'static> {
    /// The description, until the first poll submits it.
    desc: Option<T>,
    /// `Unsubmitted` until then; an ordinary op afterwards.
    op: Op<K>,
}

impl<T: IntoPlatformOp<PlatformDriver>, K: 'static> Future for SubmitOnPoll<T, K> {
    type Output = (OpOutput, K);

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `SubmitOnPoll` is never structurally pinned: the kernel
        // holds pointers into `keep`'s heap memory and into the driver's
        // slot, never into this future, and `desc` is moved out by value
        // (as `unsafe_unpin` argues for `Op`).
        let this = unsafe { self.get_unchecked_mut() };
        let Some(desc) = this.desc.take() else {
            return this.op.poll_output(cx);
        };
        let op = &mut this.op;
        // Submitted to the runtime the op belongs to, as every later poll
        // of it asserts.
        context::assert_current(&op.core);
        let out = match op.core.driver_fault() {
            // The driver failed hard: new ops fail; those in flight stay.
            Some(e) => Err(e),
            None => match op
                .core
                .with_driver(|driver| desc.submit_polled_to(driver, cx))
            {
                Some(Ok((key, Poll::Pending))) => {
                    // In flight: from here on an ordinary op (its drop
                    // cancels it and hands `keep` to the driver).
                    op.state = State::Submitted(key);
                    return Poll::Pending;
                }
                // Completed at once; the slot is freed already.
                Some(Ok((_, Poll::Ready(out)))) => Ok(out),
                Some(Err(e)) => Err(e),
                None => Err(driver_gone()),
            },
        };
        let out = out.unwrap_or_else(|e| OpOutput {
            res: Err(e),
            addr: None,
        });
        op.state = State::Done;
        let keep = op.keep.take().expect("op keep-alive taken twice");
        Poll::Ready((out, keep))
    }
}

/// Projects a pinned `Op` to `&mut Op`.
fn unsafe_unpin<K>(op: Pin<&mut Op<K>>) -> &mut Op<K> {
    // SAFETY: `Op` is never structurally pinned: neither `state` nor `keep`
    // is treated as pinned (the kernel holds pointers into `keep`'s heap
    // memory, never into the `Op` itself), so handing out `&mut` is sound.
    unsafe { op.get_unchecked_mut() }
}

impl<K: 'static> Drop for Op<K> {
    fn drop(&mut self) {
        if let State::Submitted(key) = self.state {
            let keep = self.keep.take().map(self.orphan);
            // Through the op's own driver, whichever runtime is current.
            self.core.cancel_op(key, keep);
        }
    }
}

#[cfg(all(test, unix))]
#[path = "op_tests.rs"]
mod tests;
