//! Thread contracts, checked by the compiler: what must stay on the thread
//! (the runtime, its I/O objects, op and timer futures, registered
//! buffers) is `!Send`; what is promised to cross threads (join handles of
//! `Send` outputs, join errors, channels, std objects handed back, child
//! processes, the ctrl-c future) is `Send`.
//!
//! A `!Send` assertion that stops holding is a compile error of this file,
//! not a test failure: `assert_not_impl!` makes the trait call ambiguous
//! exactly when the type implements the trait.

use std::time::Duration;

use veloq::buf::{BufPool, FixedBuf};
use veloq::fs::File;
use veloq::net::{TcpListener, TcpStream, UdpSocket};
use veloq::{JoinError, JoinHandle, Runtime};

/// Fails to compile if the type (`assert_not_impl!(Type: Trait)`) or the
/// value of the expression (`assert_not_impl!(val expr: Trait)`)
/// implements the trait.
///
/// How: `Probe<A>` has a blanket impl for every type under `A = ()` and a
/// second one, under `A = Marker`, for the types with the trait. A call of
/// `Probe::<_>::probe` must infer `A`: with one impl that applies it picks
/// it; with two it is ambiguous, which is an error.
macro_rules! assert_not_impl {
    ($ty:ty: $tr:path) => {
        const _: fn() = || {
            trait Probe<A> {
                fn probe() {}
            }
            impl<T: ?Sized> Probe<()> for T {}
            struct Marker;
            impl<T: ?Sized + $tr> Probe<Marker> for T {}
            <$ty as Probe<_>>::probe();
        };
    };
    (val $e:expr; $tr:path) => {{
        trait Probe<A> {
            fn probe(&self) {}
        }
        impl<T: ?Sized> Probe<()> for T {}
        struct Marker;
        impl<T: ?Sized + $tr> Probe<Marker> for T {}
        let value = $e;
        Probe::<_>::probe(&value);
    }};
}

/// Fails to compile unless the type implements the traits.
macro_rules! assert_impl {
    ($ty:ty: $($tr:path),+) => {
        const _: fn() = || {
            fn check<T: ?Sized $(+ $tr)+>() {}
            check::<$ty>();
        };
    };
}

fn is_send<T: Send>(_: &T) {}

// The runtime and everything bound to its driver stay on their thread.
assert_not_impl!(Runtime: Send);
assert_not_impl!(TcpStream: Send);
assert_not_impl!(TcpListener: Send);
assert_not_impl!(UdpSocket: Send);
assert_not_impl!(File: Send);
assert_not_impl!(veloq::net::tcp::OwnedReadHalf: Send);
assert_not_impl!(veloq::net::tcp::OwnedWriteHalf: Send);
assert_not_impl!(BufPool: Send);
assert_not_impl!(FixedBuf: Send);
assert_not_impl!(veloq::time::Sleep: Send);
assert_not_impl!(veloq::time::Interval: Send);
assert_not_impl!(veloq::time::Timeout<std::future::Ready<()>>: Send);
// A handle of a `!Send` output cannot leave the thread either.
assert_not_impl!(JoinHandle<std::rc::Rc<()>>: Send);

// Promised to cross threads.
assert_impl!(JoinHandle<u32>: Send);
assert_impl!(JoinError: Send, Sync);
assert_impl!(veloq::sync::mpsc::Sender<u32>: Send);
assert_impl!(veloq::sync::mpsc::Receiver<u32>: Send);
assert_impl!(veloq::sync::oneshot::Sender<u32>: Send);
assert_impl!(veloq::sync::oneshot::Receiver<u32>: Send);
assert_impl!(veloq::process::Child: Send);

/// The futures of ops and timers: never run, only type-checked.
#[allow(dead_code)]
fn futures_are_not_send(stream: &TcpStream, socket: &UdpSocket, file: &File) {
    assert_not_impl!(val stream.read(vec![0u8; 8]); Send);
    assert_not_impl!(val stream.write(vec![0u8; 8]); Send);
    assert_not_impl!(val socket.recv_from(vec![0u8; 8]); Send);
    assert_not_impl!(val file.read_at(vec![0u8; 8], 0); Send);
    assert_not_impl!(val TcpStream::connect("127.0.0.1:1"); Send);
    assert_not_impl!(val veloq::time::sleep(Duration::from_millis(1)); Send);
    assert_not_impl!(val veloq::time::timeout(Duration::from_millis(1), async {}); Send);
    assert_not_impl!(val veloq::time::interval(Duration::from_millis(1)); Send);
}

/// What is promised `Send`, checked on values.
#[allow(dead_code)]
fn values_are_send(stream: TcpStream) {
    is_send(&veloq::signal::ctrl_c());
    is_send(&stream.into_std());
}

#[test]
fn thread_contracts_compile() {
    // Everything above is checked by the compiler; this test only marks
    // the file as run. The std stream handed back by `into_std` does cross
    // threads.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let std_stream = veloq::block_on(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.into_std().unwrap()
    });
    let peer = std::thread::spawn(move || std_stream.peer_addr().unwrap())
        .join()
        .unwrap();
    assert_eq!(peer, addr);
}
