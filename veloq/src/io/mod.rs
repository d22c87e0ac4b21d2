//! Owned-buffer I/O: the [`AsyncRead`] / [`AsyncWrite`] traits and their
//! extension traits, [`copy`], and [`BufReader`] / [`BufWriter`].
//!
//! Everything here works on owned buffers ([`buf`]): a read or write takes
//! its buffer and hands it back with the result, as the streams' own
//! methods do. For code written against the poll-based `futures-io` or
//! `tokio` traits, wrap a stream in `veloq::compat::Compat` (features
//! `futures-io` and `tokio`).
//!
//! ```no_run
//! use veloq::io::{AsyncReadExt, AsyncWriteExt};
//! use veloq::net::TcpStream;
//!
//! async fn hello<S: AsyncReadExt + AsyncWriteExt>(stream: &mut S) -> std::io::Result<Vec<u8>> {
//!     let (res, _) = stream.write_all(b"hello".to_vec()).await;
//!     res?;
//!     let (res, reply) = stream.read_exact(vec![0u8; 5]).await;
//!     res?;
//!     Ok(reply)
//! }
//!
//! # veloq::block_on(async {
//! let mut stream = TcpStream::connect("127.0.0.1:8080").await?;
//! let reply = hello(&mut stream).await?;
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```
//!
//! (The drivers that carry the operations out live in this module too,
//! private to the crate.)

pub mod buf;
mod bufio;
mod copy;
pub(crate) mod driver;
pub(crate) mod op;
pub(crate) mod stash;
mod traits;

pub use bufio::{BufReader, BufWriter};
pub use copy::copy;
pub use traits::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
