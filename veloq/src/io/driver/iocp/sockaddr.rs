//! Socket addresses as Winsock reads and writes them, sized for IP only.
//!
//! Ops that carry an address (`SendTo`, `RecvFrom`, `Connect`) keep it in
//! their payload, because Winsock reads it (and `WSARecvFrom` writes it)
//! after the call returns. [`SockAddrBuf`] is the size of the largest IP
//! address, 28 bytes, not the 128 of `SOCKADDR_STORAGE`, which keeps
//! every op small.

use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use windows_sys::Win32::Networking::WinSock::{
    AF_INET, AF_INET6, IN6_ADDR, IN6_ADDR_0, IN_ADDR, IN_ADDR_0, SOCKADDR, SOCKADDR_IN,
    SOCKADDR_IN6, SOCKADDR_IN6_0,
};

/// Storage for one IPv4 or IPv6 socket address.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union SockAddrBuf {
    v4: SOCKADDR_IN,
    v6: SOCKADDR_IN6,
}

impl SockAddrBuf {
    /// Bytes of the largest address this buffer holds.
    pub(crate) const CAPACITY: i32 = size_of::<SockAddrBuf>() as i32;

    /// An all-zero buffer (for the kernel to fill).
    pub(crate) fn zeroed() -> Self {
        SockAddrBuf {
            v6: SOCKADDR_IN6::default(),
        }
    }

    /// The buffer holding `addr`, and the length Winsock must be given.
    pub(crate) fn from_std(addr: &SocketAddr) -> (Self, i32) {
        match addr {
            SocketAddr::V4(a) => {
                let mut buf = Self::zeroed();
                buf.v4 = SOCKADDR_IN {
                    sin_family: AF_INET,
                    sin_port: a.port().to_be(),
                    sin_addr: IN_ADDR {
                        S_un: IN_ADDR_0 {
                            S_addr: u32::from_ne_bytes(a.ip().octets()),
                        },
                    },
                    sin_zero: [0; 8],
                };
                (buf, size_of::<SOCKADDR_IN>() as i32)
            }
            SocketAddr::V6(a) => (
                SockAddrBuf {
                    v6: SOCKADDR_IN6 {
                        sin6_family: AF_INET6,
                        sin6_port: a.port().to_be(),
                        sin6_flowinfo: a.flowinfo(),
                        sin6_addr: IN6_ADDR {
                            u: IN6_ADDR_0 {
                                Byte: a.ip().octets(),
                            },
                        },
                        Anonymous: SOCKADDR_IN6_0 {
                            sin6_scope_id: a.scope_id(),
                        },
                    },
                },
                size_of::<SOCKADDR_IN6>() as i32,
            ),
        }
    }

    /// The address as a `*const SOCKADDR` for Winsock.
    pub(crate) fn as_ptr(&self) -> *const SOCKADDR {
        (self as *const SockAddrBuf).cast()
    }

    /// The address as a `*mut SOCKADDR` for Winsock to fill.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut SOCKADDR {
        (self as *mut SockAddrBuf).cast()
    }

    /// The address held, if it is a complete IPv4 or IPv6 one of `len`
    /// bytes.
    pub(crate) fn socket_addr(&self, len: i32) -> Option<SocketAddr> {
        // SAFETY: `self` is `CAPACITY` readable bytes, and `len` is checked
        // against the family's size inside.
        unsafe { sockaddr_to_std(self.as_ptr(), len) }
    }
}

/// Reads an IPv4 or IPv6 socket address.
///
/// # Safety
///
/// `ptr` must be valid for reads of `len` bytes (or null).
pub(crate) unsafe fn sockaddr_to_std(ptr: *const SOCKADDR, len: i32) -> Option<SocketAddr> {
    if ptr.is_null() || (len as usize) < size_of::<u16>() {
        return None;
    }
    // SAFETY: the caller guarantees `len` (>= 2) readable bytes at `ptr`;
    // `sa_family` is the first field of every sockaddr. Unaligned reads
    // because Winsock may hand back addresses inside a byte buffer
    // (`GetAcceptExSockaddrs`).
    let family = unsafe { std::ptr::addr_of!((*ptr).sa_family).read_unaligned() };
    match family {
        AF_INET if len as usize >= size_of::<SOCKADDR_IN>() => {
            // SAFETY: `len` covers a whole SOCKADDR_IN (checked above).
            let sin = unsafe { ptr.cast::<SOCKADDR_IN>().read_unaligned() };
            // SAFETY: every IN_ADDR_0 variant is plain bytes.
            let ip = Ipv4Addr::from(unsafe { sin.sin_addr.S_un.S_addr }.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        AF_INET6 if len as usize >= size_of::<SOCKADDR_IN6>() => {
            // SAFETY: `len` covers a whole SOCKADDR_IN6 (checked above).
            let sin6 = unsafe { ptr.cast::<SOCKADDR_IN6>().read_unaligned() };
            // SAFETY: every IN6_ADDR_0 and SOCKADDR_IN6_0 variant is plain
            // integers.
            let (bytes, scope) = unsafe { (sin6.sin6_addr.u.Byte, sin6.Anonymous.sin6_scope_id) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(bytes),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                scope,
            )))
        }
        _ => None,
    }
}

/// The unspecified address (port 0) of `addr`'s family: what an unbound
/// socket is bound to before `ConnectEx`.
pub(crate) fn unspecified_like(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}
