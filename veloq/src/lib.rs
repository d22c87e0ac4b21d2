//! veloq: a completion-based (proactor) async I/O runtime.
//!
//! Operations are *posted* to the kernel together with the memory they work
//! on, and the kernel reports when they are done: I/O completion ports on
//! Windows, io_uring on Linux (with an epoll fallback). All live behind one
//! internal `Driver` trait, so everything above it — executor, timers, TCP,
//! UDP, files and buffers — is written once.
//!
//! Buffers are owned: an operation takes its buffer and hands it back with
//! the result ([`BufResult`]). Dropping an operation's future cancels it; the
//! driver keeps the buffer and the op's memory alive until the kernel has
//! reported the completion.
//!
//! ```no_run
//! use veloq::net::{TcpListener, TcpStream};
//!
//! veloq::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     veloq::spawn(async move {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         let (res, buf) = stream.read(vec![0u8; 1024]).await;
//!         let n = res.unwrap();
//!         let (res, _) = stream.write_all(buf[..n].to_vec()).await;
//!         res.unwrap();
//!     });
//!     let client = TcpStream::connect(addr).await.unwrap();
//!     let (res, _) = client.write_all(b"hello".to_vec()).await;
//!     res.unwrap();
//!     let (res, buf) = client.read_exact(vec![0u8; 5]).await;
//!     res.unwrap();
//!     assert_eq!(&buf, b"hello");
//! });
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(any(feature = "futures-io", feature = "tokio"))]
pub mod compat;
pub mod fs;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod io;
pub(crate) mod loom;
pub mod net;
pub mod process;
pub mod runtime;
pub mod signal;
pub mod sync;
pub(crate) mod sys;
pub mod task;
pub mod time;
#[cfg(windows)]
pub mod windows;

pub use buf::BufResult;
pub use io::buf;
pub use runtime::{
    block_on, spawn, spawn_balanced, spawn_on, worker_count, worker_id, yield_now, JoinError,
    JoinHandle, Runtime,
};
pub use veloq_macros::{main, test};
