//! The owned halves of a stream (`into_split`) and the owned-buffer I/O
//! traits ([`AsyncRead`](crate::io::AsyncRead),
//! [`AsyncWrite`](crate::io::AsyncWrite)) for the stream, its halves and
//! references to them: written once here, stamped out for `TcpStream`
//! (`split`) and `UnixStream` (`unix_split`) by [`owned_halves!`].
//!
//! A stream's reads and writes take `&self`, so the halves simply share the
//! stream through an `Rc`: the read half only reads, the write half only
//! writes, and the socket closes when both are gone (and every op on it has
//! completed, as for the stream itself).

/// Defines `split`, `OwnedReadHalf`, `OwnedWriteHalf`, `ReuniteError` and
/// the trait impls for the stream type `$stream`, whose addresses are
/// `$addr`, in the module that invokes it. The stream must have inherent
/// `read`, `read_exact`, `write`, `write_all`, `shutdown`, `peer_addr` and
/// `local_addr` methods of `TcpStream`'s shapes.
macro_rules! owned_halves {
    ($stream:ident, $addr:ty) => {
        use std::error::Error;
        use std::fmt;
        use std::io;
        use std::net::Shutdown;
        use std::rc::Rc;

        use crate::buf::{BufResult, IoBuf, IoBufMut};
        use crate::io::{AsyncRead, AsyncWrite};

        /// Splits `stream` into its two halves.
        pub(super) fn split(stream: $stream) -> (OwnedReadHalf, OwnedWriteHalf) {
            let stream = Rc::new(stream);
            (
                OwnedReadHalf {
                    stream: stream.clone(),
                },
                OwnedWriteHalf {
                    stream,
                    shutdown_on_drop: true,
                },
            )
        }

        #[doc = concat!("The read half of a [`", stringify!($stream), "`], from")]
        #[doc = concat!("[`", stringify!($stream), "::into_split`]; it may live in another task than the write")]
        /// half (on the same worker: like the stream, it is `!Send`).
        ///
        /// Reads as the stream does: [`read`](Self::read) is cancel-safe.
        pub struct OwnedReadHalf {
            stream: Rc<$stream>,
        }

        #[doc = concat!("The write half of a [`", stringify!($stream), "`], from")]
        #[doc = concat!("[`", stringify!($stream), "::into_split`].")]
        ///
        /// Dropping it shuts down the write side of the connection (the peer
        /// reads end of stream) unless [`forget`](Self::forget) was called; so
        /// does [`AsyncWrite::shutdown`].
        pub struct OwnedWriteHalf {
            stream: Rc<$stream>,
            shutdown_on_drop: bool,
        }

        /// The two halves given to `reunite` came from different streams; they
        /// are handed back.
        pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

        impl OwnedReadHalf {
            /// Puts the stream back together from its two halves.
            ///
            /// # Errors
            ///
            /// [`ReuniteError`], holding both halves, if they came from different
            /// streams.
            pub fn reunite(self, other: OwnedWriteHalf) -> Result<$stream, ReuniteError> {
                reunite(self, other)
            }

            #[doc = concat!("Reads once into `buf[..bytes_total]`, as [`", stringify!($stream), "::read`]")]
            /// (cancel-safe).
            pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
                $stream::read(&self.stream, buf).await
            }

            #[doc = concat!("The received bytes as a stream of buffers from `ring`, as [`", stringify!($stream), "::recv_stream`].")]
            pub fn recv_stream<'a>(&'a self, ring: &crate::buf::BufRing) -> crate::net::RecvStream<'a> {
                $stream::recv_stream(&self.stream, ring)
            }

            /// Reads until `buf[..bytes_total]` is full, as
            #[doc = concat!("[`", stringify!($stream), "::read_exact`].")]
            pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
                $stream::read_exact(&self.stream, buf).await
            }

            /// The remote address.
            pub fn peer_addr(&self) -> io::Result<$addr> {
                self.stream.peer_addr()
            }

            /// The local address.
            pub fn local_addr(&self) -> io::Result<$addr> {
                self.stream.local_addr()
            }
        }

        impl OwnedWriteHalf {
            /// Puts the stream back together from its two halves.
            ///
            /// # Errors
            ///
            /// [`ReuniteError`], holding both halves, if they came from different
            /// streams.
            pub fn reunite(self, other: OwnedReadHalf) -> Result<$stream, ReuniteError> {
                reunite(other, self)
            }

            /// Drops the half without shutting down the write side.
            pub fn forget(mut self) {
                self.shutdown_on_drop = false;
            }

            #[doc = concat!("Writes once from `buf[..bytes_init]`, as [`", stringify!($stream), "::write`].")]
            pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
                $stream::write(&self.stream, buf).await
            }

            #[doc = concat!("Writes all of `buf[..bytes_init]`, as [`", stringify!($stream), "::write_all`].")]
            pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
                $stream::write_all(&self.stream, buf).await
            }

            /// The remote address.
            pub fn peer_addr(&self) -> io::Result<$addr> {
                self.stream.peer_addr()
            }

            /// The local address.
            pub fn local_addr(&self) -> io::Result<$addr> {
                self.stream.local_addr()
            }
        }

        impl Drop for OwnedWriteHalf {
            fn drop(&mut self) {
                if self.shutdown_on_drop {
                    // Nobody to report to; the peer simply reads end of stream
                    // now, or on close if this fails (e.g. already disconnected).
                    let _ = $stream::shutdown(&self.stream, Shutdown::Write);
                }
            }
        }

        fn reunite(read: OwnedReadHalf, mut write: OwnedWriteHalf) -> Result<$stream, ReuniteError> {
            if !Rc::ptr_eq(&read.stream, &write.stream) {
                return Err(ReuniteError(read, write));
            }
            write.shutdown_on_drop = false;
            drop(write);
            // The halves hold the only two references, and the write half's is
            // gone.
            Ok(Rc::try_unwrap(read.stream)
                .unwrap_or_else(|_| unreachable!("only the halves share the stream")))
        }

        impl fmt::Debug for OwnedReadHalf {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple("OwnedReadHalf").field(&self.stream).finish()
            }
        }

        impl fmt::Debug for OwnedWriteHalf {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple("OwnedWriteHalf").field(&self.stream).finish()
            }
        }

        impl fmt::Debug for ReuniteError {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple("ReuniteError").finish_non_exhaustive()
            }
        }

        impl fmt::Display for ReuniteError {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("tried to reunite halves that are not from the same stream")
            }
        }

        impl Error for ReuniteError {}

        // --- the owned-buffer traits ---
        //
        // Every impl calls the stream's inherent method by path (`Stream::read`):
        // in method-call syntax the trait method itself would be found first for
        // some receivers and recurse.

        impl AsyncRead for $stream {
            async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
                $stream::read(self, buf).await
            }
        }

        impl AsyncRead for &$stream {
            async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
                $stream::read(self, buf).await
            }
        }

        impl AsyncWrite for $stream {
            async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
                $stream::write(self, buf).await
            }
            async fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
            async fn shutdown(&mut self) -> io::Result<()> {
                $stream::shutdown(self, Shutdown::Write)
            }
        }

        impl AsyncWrite for &$stream {
            async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
                $stream::write(self, buf).await
            }
            async fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
            async fn shutdown(&mut self) -> io::Result<()> {
                $stream::shutdown(self, Shutdown::Write)
            }
        }

        impl AsyncRead for OwnedReadHalf {
            async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
                $stream::read(&self.stream, buf).await
            }
        }

        impl AsyncRead for &OwnedReadHalf {
            async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
                $stream::read(&self.stream, buf).await
            }
        }

        impl AsyncWrite for OwnedWriteHalf {
            async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
                $stream::write(&self.stream, buf).await
            }
            async fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
            async fn shutdown(&mut self) -> io::Result<()> {
                $stream::shutdown(&self.stream, Shutdown::Write)
            }
        }

        impl AsyncWrite for &OwnedWriteHalf {
            async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
                $stream::write(&self.stream, buf).await
            }
            async fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
            async fn shutdown(&mut self) -> io::Result<()> {
                $stream::shutdown(&self.stream, Shutdown::Write)
            }
        }
    };
}

pub(super) use owned_halves;
