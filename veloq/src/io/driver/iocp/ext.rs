//! Winsock extension functions, loaded once per process.
//!
//! `AcceptEx`, `ConnectEx` and `GetAcceptExSockaddrs` are not exported by
//! `ws2_32.dll`; the socket provider hands out pointers to them through
//! `WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER)`. Registered I/O (RIO)
//! comes the same way as one table (`SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER`
//! with `WSAID_MULTIPLE_RIO`).
//!
//! All are loaded on a scratch TCP socket the first time a driver is built
//! and cached for the process (the pointers are the provider's and the same
//! for every IP socket). A failure is kept as its error code and reported
//! by the ops that need the function, so a driver used only for files works
//! without them.
//!
//! RIO is only detected: the driver reports whether it is available
//! ([`Extensions::rio`]) and sends and receives through `WSASend`/`WSARecv`
//! either way. Wine 8.0 has no RIO (loading fails with `WSAEOPNOTSUPP`).

use std::io;
use std::mem::{size_of, zeroed};
use std::os::windows::io::AsRawSocket;
use std::ptr;
use std::sync::OnceLock;

use windows_sys::core::GUID;
use windows_sys::Win32::Networking::WinSock::{
    getsockopt, WSAEnumProtocolsW, WSAIoctl, AF_INET, AF_INET6, LPFN_ACCEPTEX, LPFN_CONNECTEX,
    LPFN_GETACCEPTEXSOCKADDRS, RIO_EXTENSION_FUNCTION_TABLE, SIO_GET_EXTENSION_FUNCTION_POINTER,
    SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER, SOCKET, SOCKET_ERROR, SOL_SOCKET, SO_TYPE,
    WSAID_ACCEPTEX, WSAID_CONNECTEX, WSAID_GETACCEPTEXSOCKADDRS, WSAID_MULTIPLE_RIO,
    WSAPROTOCOL_INFOW, XP1_IFS_HANDLES,
};

use super::error::{error_from_code, last_wsa_error};

/// `AcceptEx`.
pub(crate) type AcceptExFn = unsafe extern "system" fn(
    SOCKET,
    SOCKET,
    *mut core::ffi::c_void,
    u32,
    u32,
    u32,
    *mut u32,
    *mut windows_sys::Win32::System::IO::OVERLAPPED,
) -> windows_sys::core::BOOL;

/// The Registered I/O function table, where the provider has one.
#[derive(Clone, Copy)]
pub(crate) struct RioTable(
    // Kept for the RIO send/receive path; only detection is wired today.
    #[allow(dead_code)] pub(crate) RIO_EXTENSION_FUNCTION_TABLE,
);

/// The extension functions of the process's TCP/IP provider.
#[derive(Clone, Copy)]
pub(crate) struct Extensions {
    /// `AcceptEx`.
    pub(crate) accept_ex: AcceptExFn,
    /// `ConnectEx`.
    pub(crate) connect_ex: LPFN_CONNECTEX,
    /// `GetAcceptExSockaddrs`.
    pub(crate) get_accept_ex_sockaddrs: LPFN_GETACCEPTEXSOCKADDRS,
    /// Registered I/O, or the Winsock error that loading it gave.
    pub(crate) rio: Result<RioTable, u32>,
    /// Whether every IPv4/IPv6 provider hands out real kernel handles
    /// (`XP1_IFS_HANDLES`). Only then may sockets skip the completion port
    /// on immediate success: a layered (non-IFS) provider may complete
    /// such an op without the kernel ever reporting it.
    pub(crate) ifs_sockets: bool,
}

static EXTENSIONS: OnceLock<Result<Extensions, u32>> = OnceLock::new();

impl Extensions {
    /// The process's extensions, loaded on first use; an error (with the
    /// Winsock code) where the provider lacks `AcceptEx`, `ConnectEx` or
    /// `GetAcceptExSockaddrs`.
    pub(crate) fn get() -> io::Result<&'static Extensions> {
        match EXTENSIONS.get_or_init(load) {
            Ok(ext) => Ok(ext),
            Err(code) => Err(io::Error::new(
                error_from_code(*code).kind(),
                format!(
                    "veloq: cannot load the Winsock extensions (AcceptEx, ConnectEx): {}",
                    error_from_code(*code)
                ),
            )),
        }
    }

    /// Whether Registered I/O is available.
    pub(crate) fn rio_available(&self) -> bool {
        self.rio.is_ok()
    }
}

fn load() -> Result<Extensions, u32> {
    // A socket2 socket, so that Winsock is initialised (WSAStartup) the way
    // std does it.
    let scratch = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| e.raw_os_error().unwrap_or(0) as u32)?;
    let s = scratch.as_raw_socket() as SOCKET;
    let accept: LPFN_ACCEPTEX = load_fn(s, WSAID_ACCEPTEX)?;
    let connect_ex: LPFN_CONNECTEX = load_fn(s, WSAID_CONNECTEX)?;
    let get_accept_ex_sockaddrs: LPFN_GETACCEPTEXSOCKADDRS =
        load_fn(s, WSAID_GETACCEPTEXSOCKADDRS)?;
    let (Some(accept_ex), Some(_), Some(_)) = (accept, connect_ex, get_accept_ex_sockaddrs) else {
        return Err(windows_sys::Win32::Networking::WinSock::WSAEOPNOTSUPP as u32);
    };
    Ok(Extensions {
        accept_ex,
        connect_ex,
        get_accept_ex_sockaddrs,
        rio: load_rio(s),
        ifs_sockets: ip_providers_are_ifs(),
    })
}

/// Whether every IPv4/IPv6 Winsock provider has `XP1_IFS_HANDLES`; `false`
/// when they cannot be listed.
fn ip_providers_are_ifs() -> bool {
    let mut len = 0u32;
    // SAFETY: a null buffer with length 0 only asks for the size needed.
    unsafe { WSAEnumProtocolsW(ptr::null(), ptr::null_mut(), &mut len) };
    let count = len as usize / size_of::<WSAPROTOCOL_INFOW>() + 1;
    let mut infos = vec![WSAPROTOCOL_INFOW::default(); count];
    let mut len = (count * size_of::<WSAPROTOCOL_INFOW>()) as u32;
    // SAFETY: `infos` has `len` writable bytes.
    let n = unsafe { WSAEnumProtocolsW(ptr::null(), infos.as_mut_ptr(), &mut len) };
    if n == SOCKET_ERROR {
        return false;
    }
    infos
        .iter()
        .take(n as usize)
        .filter(|p| p.iAddressFamily == AF_INET as i32 || p.iAddressFamily == AF_INET6 as i32)
        .all(|p| p.dwServiceFlags1 & XP1_IFS_HANDLES != 0)
}

/// Loads one extension function pointer (`F` is an `Option<fn>` type).
fn load_fn<F: Copy>(s: SOCKET, guid: GUID) -> Result<F, u32> {
    // SAFETY: every `F` used here is `Option<unsafe extern fn>`, for which
    // all-zero is `None`.
    let mut f: F = unsafe { zeroed() };
    let mut bytes = 0u32;
    // SAFETY: in and out buffers are locals of the sizes passed; no
    // OVERLAPPED, so the call completes before it returns.
    let rc = unsafe {
        WSAIoctl(
            s,
            SIO_GET_EXTENSION_FUNCTION_POINTER,
            (&guid as *const GUID).cast(),
            size_of::<GUID>() as u32,
            (&mut f as *mut F).cast(),
            size_of::<F>() as u32,
            &mut bytes,
            ptr::null_mut(),
            None,
        )
    };
    if rc == SOCKET_ERROR {
        return Err(last_wsa_error());
    }
    Ok(f)
}

fn load_rio(s: SOCKET) -> Result<RioTable, u32> {
    let guid = WSAID_MULTIPLE_RIO;
    // SAFETY: the table is plain integers and `Option<fn>`s; all-zero is
    // valid.
    let mut table: RIO_EXTENSION_FUNCTION_TABLE = unsafe { zeroed() };
    table.cbSize = size_of::<RIO_EXTENSION_FUNCTION_TABLE>() as u32;
    let mut bytes = 0u32;
    // SAFETY: as in `load_fn`; the out buffer is the whole table.
    let rc = unsafe {
        WSAIoctl(
            s,
            SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER,
            (&guid as *const GUID).cast(),
            size_of::<GUID>() as u32,
            (&mut table as *mut RIO_EXTENSION_FUNCTION_TABLE).cast(),
            size_of::<RIO_EXTENSION_FUNCTION_TABLE>() as u32,
            &mut bytes,
            ptr::null_mut(),
            None,
        )
    };
    if rc == SOCKET_ERROR {
        return Err(last_wsa_error());
    }
    if table.RIOReceive.is_none() || table.RIOSend.is_none() {
        return Err(windows_sys::Win32::Networking::WinSock::WSAEOPNOTSUPP as u32);
    }
    Ok(RioTable(table))
}

/// The socket type (`SOCK_STREAM`, `SOCK_DGRAM`, ...) of `handle`, or
/// `None` when it is not a socket. Asks `SO_TYPE`, which fails with
/// `WSAENOTSOCK` for any other handle and changes nothing.
pub(crate) fn socket_type(handle: usize) -> Option<i32> {
    let mut ty = 0i32;
    let mut len = size_of::<i32>() as i32;
    // SAFETY: the option is read into a local of the size passed.
    let rc = unsafe {
        getsockopt(
            handle as SOCKET,
            SOL_SOCKET,
            SO_TYPE,
            (&mut ty as *mut i32).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(ty)
}
