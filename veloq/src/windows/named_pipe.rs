//! Windows named pipes, in tokio's shape: [`ServerOptions`] creates
//! server instances ([`NamedPipeServer`]), [`ClientOptions`] opens the
//! client end ([`NamedPipeClient`]).
//!
//! Every operation goes through the runtime's completion port: waiting for
//! a client is an overlapped `ConnectNamedPipe`, reads and writes are
//! overlapped `ReadFile` / `WriteFile`. Buffers are owned, as everywhere in
//! veloq: each call takes its buffer and hands it back with the result.
//!
//! A server instance serves one client at a time. To serve many, create
//! the next instance of the same name (with [`ServerOptions::create`])
//! before handing the connected one to a task, so a client always finds an
//! instance waiting:
//!
//! ```no_run
//! use veloq::windows::named_pipe::ServerOptions;
//!
//! const NAME: &str = r"\\.\pipe\veloq-doc-echo";
//!
//! veloq::block_on(async {
//!     let mut server = ServerOptions::new().first_pipe_instance(true).create(NAME)?;
//!     loop {
//!         server.connect().await?;
//!         let connected = server;
//!         server = ServerOptions::new().create(NAME)?;
//!         veloq::spawn(async move {
//!             let (res, buf) = connected.read(vec![0u8; 1024]).await;
//!             if res.is_ok() {
//!                 let _ = connected.write_all(buf).await;
//!             }
//!         });
//!     }
//!     #[allow(unreachable_code)]
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # Invariants
//!
//! - The pipe handle is owned by a `PipeInner` behind an `Rc`: the
//!   server or client holds one reference and every op naming the handle
//!   holds another in its `keep`, so the handle closes only after the last
//!   op on it has completed (a cancelled one included). No op ever runs on
//!   a handle value that was closed and reused.
//! - The handle was opened overlapped (`FILE_FLAG_OVERLAPPED`) and passed
//!   to `register_handle` exactly once, in `Pipe::register`.
//! - An op's description points into the buffer its `Op` future owns, so
//!   the memory stays put and alive while the kernel may write it.
//!
//! # Cancellation
//!
//! Reads are cancel-safe: dropping a `read` future cancels its op
//! (`CancelIoEx`), and whatever it had already received goes to the next
//! read on the same pipe end, in order (a new read waits until the
//! cancelled one has completed). In message mode the bytes of one
//! cancelled read come back as one read, so message boundaries stay as
//! they were. A dropped `write` may have written some or all of its
//! bytes.
//! Dropping a `connect` future leaves the instance as it is: an instance
//! takes a client from its creation on, whether or not a `connect` waits,
//! and the next `connect` returns at once if one came.
//!
//! Dropping a server or client closes its handle once no cancelled op
//! names it any more, that is when the runtime has processed those ops'
//! completions (usually its next turn). Until then a dropped server
//! instance can still take a client.

use std::cell::{RefCell, RefMut};
use std::ffi::OsStr;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, IntoRawHandle};
use std::ptr;
use std::rc::Rc;

use windows_sys::Win32::Foundation::{GetLastError, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, PIPE_ACCESS_INBOUND, PIPE_ACCESS_OUTBOUND,
    SECURITY_IDENTIFICATION,
};
use windows_sys::Win32::System::Pipes::{
    CreateNamedPipeW, DisconnectNamedPipe, SetNamedPipeHandleState, PIPE_READMODE_BYTE,
    PIPE_READMODE_MESSAGE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_TYPE_MESSAGE,
    PIPE_UNLIMITED_INSTANCES, PIPE_WAIT,
};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::driver::Driver;
use crate::io::op::{self, ConnectPipe, Op, ReadFixed, WriteFixed};
use crate::io::stash::{OrphanRecv, RecvKeep, Stash, StashKind, StashOwner};
use crate::io::{AsyncRead, AsyncWrite};
use crate::runtime::context;
use crate::sys::{self, RawFd};

/// How a pipe carries data: a byte stream, or messages whose boundaries
/// the reader sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipeMode {
    /// A stream of bytes (`PIPE_TYPE_BYTE`): writes may be split or joined
    /// by reads.
    Byte,
    /// Messages (`PIPE_TYPE_MESSAGE`): each write is one message, and one
    /// read returns at most one message. A message longer than the read's
    /// buffer fills it, and the next read returns the rest.
    Message,
}

/// Builder for the server instances of a named pipe (`CreateNamedPipeW`).
///
/// Defaults: duplex (inbound and outbound), byte mode, unlimited
/// instances, 64 KiB buffers each way, remote clients rejected.
///
/// ```no_run
/// use veloq::windows::named_pipe::{PipeMode, ServerOptions};
///
/// veloq::block_on(async {
///     let server = ServerOptions::new()
///         .first_pipe_instance(true)
///         .pipe_mode(PipeMode::Message)
///         .max_instances(4)
///         .create(r"\\.\pipe\veloq-doc-server-options")?;
///     server.connect().await
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ServerOptions {
    access_inbound: bool,
    access_outbound: bool,
    first_pipe_instance: bool,
    reject_remote_clients: bool,
    pipe_mode: PipeMode,
    max_instances: usize,
    out_buffer_size: u32,
    in_buffer_size: u32,
    default_timeout: u32,
}

/// The most instances `max_instances` accepts (255 means "unlimited" to
/// the system).
const MAX_INSTANCES: usize = PIPE_UNLIMITED_INSTANCES as usize - 1;

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions::new()
    }
}

impl ServerOptions {
    /// The default options (see the type's docs).
    pub fn new() -> ServerOptions {
        ServerOptions {
            access_inbound: true,
            access_outbound: true,
            first_pipe_instance: false,
            reject_remote_clients: true,
            pipe_mode: PipeMode::Byte,
            max_instances: PIPE_UNLIMITED_INSTANCES as usize,
            out_buffer_size: 65536,
            in_buffer_size: 65536,
            default_timeout: 0,
        }
    }

    /// Byte or message mode, for both writing and reading (default
    /// [`PipeMode::Byte`]). Every instance of one name must use the same
    /// mode.
    pub fn pipe_mode(&mut self, mode: PipeMode) -> &mut Self {
        self.pipe_mode = mode;
        self
    }

    /// Whether the server may read what clients write (default `true`).
    pub fn access_inbound(&mut self, allowed: bool) -> &mut Self {
        self.access_inbound = allowed;
        self
    }

    /// Whether the server may write to clients (default `true`).
    pub fn access_outbound(&mut self, allowed: bool) -> &mut Self {
        self.access_outbound = allowed;
        self
    }

    /// Fail with `PermissionDenied` if an instance of this name exists
    /// already (`FILE_FLAG_FIRST_PIPE_INSTANCE`; default `false`). Guards
    /// against another process owning the name first.
    pub fn first_pipe_instance(&mut self, first: bool) -> &mut Self {
        self.first_pipe_instance = first;
        self
    }

    /// Refuse clients on other machines (`PIPE_REJECT_REMOTE_CLIENTS`;
    /// default `true`).
    pub fn reject_remote_clients(&mut self, reject: bool) -> &mut Self {
        self.reject_remote_clients = reject;
        self
    }

    /// How many instances of this name may exist at once, 1 to 254
    /// (default: unlimited). The first instance's value holds for the
    /// name; [`create`](Self::create) reports a value out of range as
    /// `InvalidInput`.
    pub fn max_instances(&mut self, instances: usize) -> &mut Self {
        self.max_instances = instances;
        self
    }

    /// The output buffer size the system reserves, in bytes (a hint;
    /// default 65536).
    pub fn out_buffer_size(&mut self, size: u32) -> &mut Self {
        self.out_buffer_size = size;
        self
    }

    /// The input buffer size the system reserves, in bytes (a hint;
    /// default 65536).
    pub fn in_buffer_size(&mut self, size: u32) -> &mut Self {
        self.in_buffer_size = size;
        self
    }

    /// Creates one server instance of the pipe `addr` (`\\.\pipe\name`)
    /// and registers it with the current runtime. Then wait for a client
    /// with [`NamedPipeServer::connect`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a name with a NUL in it, for neither inbound nor
    /// outbound access, or for `max_instances` out of 1..=254;
    /// `PermissionDenied` when `first_pipe_instance` is set and the name
    /// exists; the system's error when all instances allowed exist
    /// (`ERROR_PIPE_BUSY`, raw code 231) or the name is not a pipe name.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn create(&self, addr: impl AsRef<OsStr>) -> io::Result<NamedPipeServer> {
        let name = wide_name(addr.as_ref())?;
        let instances = match self.max_instances {
            n if n == PIPE_UNLIMITED_INSTANCES as usize => PIPE_UNLIMITED_INSTANCES,
            n @ 1..=MAX_INSTANCES => n as u32,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "named pipe: max_instances must be 1 to 254",
                ))
            }
        };
        let mut open_mode = FILE_FLAG_OVERLAPPED;
        match (self.access_inbound, self.access_outbound) {
            (false, false) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "named pipe: a server needs inbound or outbound access",
                ))
            }
            (true, false) => open_mode |= PIPE_ACCESS_INBOUND,
            (false, true) => open_mode |= PIPE_ACCESS_OUTBOUND,
            (true, true) => open_mode |= PIPE_ACCESS_INBOUND | PIPE_ACCESS_OUTBOUND,
        }
        if self.first_pipe_instance {
            open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
        }
        let mut pipe_mode = PIPE_WAIT;
        pipe_mode |= match self.pipe_mode {
            PipeMode::Byte => PIPE_TYPE_BYTE | PIPE_READMODE_BYTE,
            PipeMode::Message => PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE,
        };
        if self.reject_remote_clients {
            pipe_mode |= PIPE_REJECT_REMOTE_CLIENTS;
        }
        // SAFETY: `name` is a NUL-terminated wide string that outlives the
        // call; no security attributes are passed.
        let handle = unsafe {
            CreateNamedPipeW(
                name.as_ptr(),
                open_mode,
                pipe_mode,
                instances,
                self.out_buffer_size,
                self.in_buffer_size,
                self.default_timeout,
                ptr::null(),
            )
        };
        if handle == INVALID_HANDLE_VALUE {
            // SAFETY: reads this thread's last-error value only.
            let code = unsafe { GetLastError() };
            return Err(io::Error::from_raw_os_error(code as i32));
        }
        // SAFETY: `handle` was just created, is valid and nothing else
        // owns it; `register` takes it over.
        let pipe = unsafe { Pipe::register(handle as RawFd) }?;
        Ok(NamedPipeServer { pipe })
    }
}

/// Builder for the client end of a named pipe (`CreateFileW` on the
/// pipe's name).
///
/// ```no_run
/// use std::time::Duration;
/// use veloq::windows::named_pipe::ClientOptions;
///
/// const ERROR_PIPE_BUSY: i32 = 231;
///
/// veloq::block_on(async {
///     let client = loop {
///         match ClientOptions::new().open(r"\\.\pipe\veloq-doc-client") {
///             Ok(client) => break client,
///             // Every instance is serving a client: try again shortly.
///             Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) => {}
///             Err(e) => return Err(e),
///         }
///         veloq::time::sleep(Duration::from_millis(50)).await;
///     };
///     let (res, _) = client.write_all(b"hello".to_vec()).await;
///     res
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    read: bool,
    write: bool,
    pipe_mode: PipeMode,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions::new()
    }
}

impl ClientOptions {
    /// Read and write access, byte read mode.
    pub fn new() -> ClientOptions {
        ClientOptions {
            read: true,
            write: true,
            pipe_mode: PipeMode::Byte,
        }
    }

    /// Whether the client may read (default `true`). The server must
    /// have outbound access for it.
    pub fn read(&mut self, allowed: bool) -> &mut Self {
        self.read = allowed;
        self
    }

    /// Whether the client may write (default `true`). The server must
    /// have inbound access for it.
    pub fn write(&mut self, allowed: bool) -> &mut Self {
        self.write = allowed;
        self
    }

    /// How the client reads (default [`PipeMode::Byte`]):
    /// [`PipeMode::Message`] needs a message-type pipe and the `write`
    /// access right (the mode is set on the open handle).
    pub fn pipe_mode(&mut self, mode: PipeMode) -> &mut Self {
        self.pipe_mode = mode;
        self
    }

    /// Opens the client end of the pipe `addr` (`\\.\pipe\name`) and
    /// registers it with the current runtime.
    ///
    /// # Errors
    ///
    /// `NotFound` if no pipe of that name exists; `ERROR_PIPE_BUSY` (raw
    /// code 231) if instances exist but all are serving other clients
    /// (wait and try again, as the [`ClientOptions`] example shows);
    /// `InvalidInput` for neither read nor write access or a NUL in the
    /// name.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub fn open(&self, addr: impl AsRef<OsStr>) -> io::Result<NamedPipeClient> {
        let addr = addr.as_ref();
        if !self.read && !self.write {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "named pipe: a client needs read or write access",
            ));
        }
        // Checked here so the message names the pipe, not a path.
        wide_name(addr)?;
        // std's open is `CreateFileW` with OPEN_EXISTING; the flags make
        // the handle overlapped and keep the server from impersonating
        // the client beyond identification.
        let file = std::fs::OpenOptions::new()
            .read(self.read)
            .write(self.write)
            .custom_flags(FILE_FLAG_OVERLAPPED)
            .security_qos_flags(SECURITY_IDENTIFICATION)
            .open(addr)?;
        if self.pipe_mode == PipeMode::Message {
            let mode = PIPE_READMODE_MESSAGE;
            // SAFETY: `file` is an open pipe handle; the mode is read
            // during the call only, and the other two arguments may be
            // null.
            let ok = unsafe {
                SetNamedPipeHandleState(
                    file.as_raw_handle() as HANDLE,
                    &mode,
                    ptr::null(),
                    ptr::null(),
                )
            };
            if ok == 0 {
                // `file` closes the handle on the way out.
                return Err(io::Error::last_os_error());
            }
        }
        let fd = file.into_raw_handle() as RawFd;
        // SAFETY: `fd` came out of `file` just now: open, owned by nobody
        // else; `register` takes it over.
        let pipe = unsafe { Pipe::register(fd) }?;
        Ok(NamedPipeClient { pipe })
    }
}

/// A NUL-terminated wide pipe name; `InvalidInput` for a NUL inside.
fn wide_name(name: &OsStr) -> io::Result<Vec<u16>> {
    let mut wide: Vec<u16> = name.encode_wide().collect();
    if wide.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "named pipe: the name contains a NUL character",
        ));
    }
    wide.push(0);
    Ok(wide)
}

/// One server instance of a named pipe, made by [`ServerOptions::create`].
///
/// Wait for a client with [`connect`](Self::connect), then read and write.
/// [`disconnect`](Self::disconnect) ends a client's session so the
/// instance can [`connect`](Self::connect) again; dropping it closes the
/// instance (the client then reads end of stream).
///
/// ```no_run
/// use veloq::windows::named_pipe::ServerOptions;
///
/// veloq::block_on(async {
///     let server = ServerOptions::new().create(r"\\.\pipe\veloq-doc-server")?;
///     server.connect().await?;
///     let (res, buf) = server.read(vec![0u8; 256]).await;
///     let n = res?;
///     let (res, _) = server.write_all(buf[..n].to_vec()).await;
///     res
/// })
/// .unwrap();
/// ```
pub struct NamedPipeServer {
    pipe: Pipe,
}

impl NamedPipeServer {
    /// Waits until a client connects to this instance (an overlapped
    /// `ConnectNamedPipe`). Returns at once if a client connected before
    /// this call.
    ///
    /// # Errors
    ///
    /// The system's error; `ERROR_NO_DATA` (raw code 232) if a client
    /// connected and closed its end again before this call (disconnect and
    /// connect again).
    pub async fn connect(&self) -> io::Result<()> {
        let desc = ConnectPipe {
            fd: self.pipe.inner.fd,
        };
        let (out, _) = Op::submit(desc, self.pipe.inner.clone()).await;
        out.res.map(drop)
    }

    /// Ends the current client's session (`DisconnectNamedPipe`): its
    /// unread data is thrown away and its reads and writes fail. The
    /// instance may then [`connect`](Self::connect) to the next client.
    pub fn disconnect(&self) -> io::Result<()> {
        // SAFETY: the handle is open (owned by `self.pipe`).
        let ok = unsafe { DisconnectNamedPipe(self.pipe.inner.fd as HANDLE) };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads once into `buf[..bytes_total]`; returns the bytes read and
    /// marks them initialised. `Ok(0)` is end of stream: the client closed
    /// its end (or, for an empty buffer, nothing was asked for).
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.pipe.read_at(buf, 0).await
    }

    /// Writes once from `buf[..bytes_init]`; returns how many bytes were
    /// taken. In message mode, one write is one message.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.pipe.write_at(buf, 0).await
    }

    /// Reads until `buf[..bytes_total]` is full; `UnexpectedEof` if the
    /// client closes first (the bytes that came are marked initialised).
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        self.pipe.read_exact(buf).await
    }

    /// Writes all of `buf[..bytes_init]`, one write after another.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.pipe.write_all(buf).await
    }
}

impl fmt::Debug for NamedPipeServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedPipeServer")
            .field("handle", &self.pipe.inner.fd)
            .finish()
    }
}

/// The client end of a named pipe, opened by [`ClientOptions::open`].
///
/// ```no_run
/// use veloq::windows::named_pipe::ClientOptions;
///
/// veloq::block_on(async {
///     let client = ClientOptions::new().open(r"\\.\pipe\veloq-doc-client-end")?;
///     let (res, _) = client.write_all(b"ping".to_vec()).await;
///     res?;
///     let (res, buf) = client.read_exact(vec![0u8; 4]).await;
///     res?;
///     println!("{:?}", buf);
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct NamedPipeClient {
    pipe: Pipe,
}

impl NamedPipeClient {
    /// Reads once into `buf[..bytes_total]`; returns the bytes read and
    /// marks them initialised. `Ok(0)` is end of stream: the server closed
    /// or disconnected its instance (or, for an empty buffer, nothing was
    /// asked for).
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.pipe.read_at(buf, 0).await
    }

    /// Writes once from `buf[..bytes_init]`; returns how many bytes were
    /// taken. In message mode, one write is one message.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.pipe.write_at(buf, 0).await
    }

    /// Reads until `buf[..bytes_total]` is full; `UnexpectedEof` if the
    /// server closes first (the bytes that came are marked initialised).
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        self.pipe.read_exact(buf).await
    }

    /// Writes all of `buf[..bytes_init]`, one write after another.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.pipe.write_all(buf).await
    }
}

impl fmt::Debug for NamedPipeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedPipeClient")
            .field("handle", &self.pipe.inner.fd)
            .finish()
    }
}

/// The handle a pipe end and its in-flight ops share; see the module docs.
struct PipeInner {
    /// Owns the handle: closes it when the last reference goes.
    _file: std::fs::File,
    fd: RawFd,
    /// What cancelled reads received, for the next reads.
    stash: RefCell<Stash>,
}

impl StashOwner for PipeInner {
    fn stash(&self) -> RefMut<'_, Stash> {
        self.stash.borrow_mut()
    }

    /// One entry per cancelled read that got bytes, the rest of a
    /// partly taken one left for the next read: message boundaries hold
    /// in message mode, and in byte mode the bytes simply come in order.
    fn stash_kind(&self) -> StashKind {
        StashKind::Messages
    }
}

/// A registered pipe handle, either end.
struct Pipe {
    inner: Rc<PipeInner>,
}

/// Clamps a buffer length to what one op can carry.
fn op_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Pipe {
    /// Takes over `fd` and registers it with the current runtime's driver.
    ///
    /// # Safety
    ///
    /// `fd` is an open pipe handle, opened overlapped, that nothing else
    /// owns.
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime (the handle is closed first).
    unsafe fn register(fd: RawFd) -> io::Result<Pipe> {
        // SAFETY: the caller passes sole ownership; `file` closes it once.
        let file = unsafe { sys::file_from_raw(fd) };
        // On failure (or a panic) `file` is dropped here, closing it.
        context::with_driver(|d| d.register_handle(fd))?;
        Ok(Pipe {
            inner: Rc::new(PipeInner {
                _file: file,
                fd,
                stash: RefCell::default(),
            }),
        })
    }

    /// Reads into `buf[off..bytes_total]` and marks `buf[..off + n]`
    /// initialised. `off <= bytes_total`, and `buf[..off]` is initialised.
    /// Cancel-safe (see the module docs).
    async fn read_at<B: IoBufMut>(&self, mut buf: B, off: usize) -> BufResult<usize, B> {
        let total = buf.bytes_total();
        debug_assert!(off <= total);
        if off == total {
            // No room: nothing to read (as std's `read` of an empty
            // buffer), rather than a kernel read of 0 bytes.
            return (Ok(0), buf);
        }
        if self.inner.stash().busy() {
            // Bytes of a cancelled read come first, in order.
            poll_fn(|cx| self.inner.stash().poll_gate(cx)).await;
            if let Some(n) = self.inner.stash().take_message(&mut buf, off) {
                return (Ok(n), buf);
            }
        }
        // `wrapping_add` stays inside the buffer because `off <= total`.
        let ptr = buf.stable_mut_ptr().wrapping_add(off);
        let len = op_len(total - off);
        // A pipe has no file position: the offset is ignored.
        let desc = ReadFixed {
            fd: self.inner.fd,
            buf: ptr,
            len,
            offset: 0,
            fixed: None,
        };
        let keep = RecvKeep {
            buf,
            off,
            sock: self.inner.clone(),
        };
        let (out, keep) = Op::submit_with(desc, keep, OrphanRecv::orphan).await;
        let mut buf = keep.buf;
        // SAFETY: the op read at most `len` bytes into `buf[off..]`, with
        // `off + len <= total`; the caller guarantees `buf[..off]` was
        // initialised.
        unsafe { op::mark_read(&out, &mut buf, off, len) };
        (out.res, buf)
    }

    /// Writes `buf[off..bytes_init]`. `off <= bytes_init`.
    async fn write_at<B: IoBuf>(&self, buf: B, off: usize) -> BufResult<usize, B> {
        let init = buf.bytes_init();
        debug_assert!(off <= init);
        // `wrapping_add` stays inside the buffer because `off <= init`.
        let ptr = buf.stable_ptr().wrapping_add(off);
        let desc = WriteFixed {
            fd: self.inner.fd,
            buf: ptr,
            len: op_len(init - off),
            offset: 0,
            fixed: None,
        };
        let (out, (buf, _)) = Op::submit(desc, (buf, self.inner.clone())).await;
        (out.res, buf)
    }

    async fn read_exact<B: IoBufMut>(&self, mut buf: B) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let mut filled = 0;
        while filled < total {
            let (res, b) = self.read_at(buf, filled).await;
            buf = b;
            match res {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "pipe closed before the buffer was full",
                    );
                    return (Err(e), buf);
                }
                Ok(n) => filled += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    async fn write_all<B: IoBuf>(&self, mut buf: B) -> BufResult<(), B> {
        let total = buf.bytes_init();
        let mut written = 0;
        while written < total {
            let (res, b) = self.write_at(buf, written).await;
            buf = b;
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => written += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }
}

// --- the owned-buffer traits -------------------------------------------------
//
// Every impl calls the inherent method by path: in method-call syntax the
// trait method itself would be found first for some receivers and recurse.
// A pipe has no half-close: `shutdown` only flushes, which is a no-op (the
// system buffers nothing on our side), as in tokio.

macro_rules! impl_traits {
    ($ty:ty) => {
        impl AsyncRead for $ty {
            async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
                <$ty>::read(self, buf).await
            }
        }

        impl AsyncRead for &$ty {
            async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
                <$ty>::read(self, buf).await
            }
        }

        impl AsyncWrite for $ty {
            async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
                <$ty>::write(self, buf).await
            }
            async fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
            async fn shutdown(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl AsyncWrite for &$ty {
            async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
                <$ty>::write(self, buf).await
            }
            async fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
            async fn shutdown(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
    };
}

impl_traits!(NamedPipeServer);
impl_traits!(NamedPipeClient);
