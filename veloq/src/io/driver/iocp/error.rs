//! Windows error codes → `std::io::Error`.
//!
//! An overlapped operation fails with a Win32 code (`GetOverlappedResult`)
//! or a Winsock code (`WSAGetOverlappedResult`, `WSAGetLastError`); which
//! one depends on the API and, for a completion, on which of the two the
//! driver asked. std's own mapping (`io::Error::from_raw_os_error`) covers
//! the common Winsock codes but not the Win32 forms the kernel reports for
//! sockets (`ERROR_NETNAME_DELETED` for a reset connection,
//! `ERROR_CONNECTION_REFUSED` for a refused `ConnectEx`, ...), nor the
//! codes that are not errors at all for a read (end of file).
//!
//! [`KIND_TABLE`] lists every code whose kind we fix ourselves; the error
//! keeps its raw code wherever std already gives it the right kind, and
//! otherwise wraps the raw-code error (so the message still names it) in
//! an error of the right kind.

use std::io;

use windows_sys::Win32::Foundation::{
    ERROR_ADDRESS_ALREADY_ASSOCIATED, ERROR_ALREADY_EXISTS, ERROR_BROKEN_PIPE,
    ERROR_CONNECTION_ABORTED, ERROR_CONNECTION_REFUSED, ERROR_FILE_EXISTS, ERROR_FILE_NOT_FOUND,
    ERROR_GRACEFUL_DISCONNECT, ERROR_HANDLE_EOF, ERROR_HOST_UNREACHABLE, ERROR_NETNAME_DELETED,
    ERROR_NETWORK_UNREACHABLE, ERROR_OPERATION_ABORTED, ERROR_PATH_NOT_FOUND,
    ERROR_PIPE_NOT_CONNECTED, ERROR_PORT_UNREACHABLE, ERROR_SEM_TIMEOUT,
};
use windows_sys::Win32::Networking::WinSock::{
    WSAEADDRINUSE, WSAECONNABORTED, WSAECONNREFUSED, WSAECONNRESET, WSAENOTCONN, WSAESHUTDOWN,
    WSAETIMEDOUT,
};

use crate::io::op::cancelled;

/// Codes whose `ErrorKind` we decide, whatever std says.
pub(crate) const KIND_TABLE: &[(u32, io::ErrorKind)] = &[
    // A reset connection, as the kernel reports it for socket I/O.
    (ERROR_NETNAME_DELETED, io::ErrorKind::ConnectionReset),
    (WSAECONNRESET as u32, io::ErrorKind::ConnectionReset),
    // The peer closed while we were sending a graceful shutdown.
    (ERROR_GRACEFUL_DISCONNECT, io::ErrorKind::ConnectionReset),
    (ERROR_CONNECTION_REFUSED, io::ErrorKind::ConnectionRefused),
    (WSAECONNREFUSED as u32, io::ErrorKind::ConnectionRefused),
    // A UDP send answered by ICMP port unreachable.
    (ERROR_PORT_UNREACHABLE, io::ErrorKind::ConnectionRefused),
    (ERROR_CONNECTION_ABORTED, io::ErrorKind::ConnectionAborted),
    (WSAECONNABORTED as u32, io::ErrorKind::ConnectionAborted),
    (ERROR_ADDRESS_ALREADY_ASSOCIATED, io::ErrorKind::AddrInUse),
    (WSAEADDRINUSE as u32, io::ErrorKind::AddrInUse),
    (ERROR_NETWORK_UNREACHABLE, io::ErrorKind::NetworkUnreachable),
    (ERROR_HOST_UNREACHABLE, io::ErrorKind::HostUnreachable),
    (ERROR_SEM_TIMEOUT, io::ErrorKind::TimedOut),
    (WSAETIMEDOUT as u32, io::ErrorKind::TimedOut),
    (WSAENOTCONN as u32, io::ErrorKind::NotConnected),
    // Sending on a socket shut down for writing.
    (WSAESHUTDOWN as u32, io::ErrorKind::BrokenPipe),
    (ERROR_BROKEN_PIPE, io::ErrorKind::BrokenPipe),
    (ERROR_FILE_NOT_FOUND, io::ErrorKind::NotFound),
    (ERROR_PATH_NOT_FOUND, io::ErrorKind::NotFound),
    (ERROR_FILE_EXISTS, io::ErrorKind::AlreadyExists),
    (ERROR_ALREADY_EXISTS, io::ErrorKind::AlreadyExists),
];

/// The `io::Error` for a Win32 or Winsock `code`.
///
/// `ERROR_OPERATION_ABORTED` (a cancelled op) becomes
/// [`cancelled()`](crate::io::op::cancelled), the error every driver
/// reports for a cancelled op.
pub(crate) fn error_from_code(code: u32) -> io::Error {
    if code == ERROR_OPERATION_ABORTED {
        return cancelled();
    }
    let raw = io::Error::from_raw_os_error(code as i32);
    match KIND_TABLE.iter().find(|(c, _)| *c == code) {
        Some(&(_, kind)) if raw.kind() != kind => io::Error::new(kind, raw),
        _ => raw,
    }
}

/// The result of a read-like op (file read, socket receive) that failed
/// with `code`: end of file and a closed (or disconnected) pipe are a
/// zero-byte read, not an error.
pub(crate) fn read_result(code: u32) -> io::Result<usize> {
    match code {
        ERROR_HANDLE_EOF | ERROR_BROKEN_PIPE | ERROR_PIPE_NOT_CONNECTED => Ok(0),
        _ => Err(error_from_code(code)),
    }
}

/// The last Win32 error of this thread as a code.
pub(crate) fn last_error() -> u32 {
    // SAFETY: GetLastError only reads this thread's last-error value.
    unsafe { windows_sys::Win32::Foundation::GetLastError() }
}

/// The last Winsock error of this thread as a code.
pub(crate) fn last_wsa_error() -> u32 {
    // SAFETY: WSAGetLastError only reads this thread's last-error value.
    unsafe { windows_sys::Win32::Networking::WinSock::WSAGetLastError() as u32 }
}
