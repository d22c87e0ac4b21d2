//! [`copy`]: moves a reader's bytes into a writer.

use std::io;

use super::traits::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The buffer `copy` reads into: large enough that a bulk transfer costs
/// few ops per megabyte (an op's fixed cost, not the copy, dominates
/// small reads), small enough to allocate per call.
const COPY_BUF: usize = 64 * 1024;

/// Copies everything `reader` yields into `writer` until end of stream,
/// then flushes `writer`; returns the number of bytes copied.
///
/// One 64 KiB buffer goes back and forth between the reader and the
/// writer: each read's bytes are written in full before the next read.
///
/// # Errors
///
/// The first read or write error; the bytes copied before it are written.
/// Not cancel-safe: a dropped `copy` may have read bytes it had not yet
/// written.
///
/// ```no_run
/// use veloq::net::TcpStream;
///
/// # veloq::block_on(async {
/// let stream = TcpStream::connect("127.0.0.1:8080").await?;
/// // Echo: everything the peer sends goes back to it.
/// let (mut rd, mut wr) = stream.into_split();
/// let n = veloq::io::copy(&mut rd, &mut wr).await?;
/// println!("echoed {n} bytes");
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn copy<R, W>(reader: &mut R, writer: &mut W) -> io::Result<u64>
where
    R: AsyncRead + ?Sized,
    W: AsyncWrite + ?Sized,
{
    let mut buf = Vec::with_capacity(COPY_BUF);
    let mut total = 0u64;
    loop {
        buf.clear();
        let (res, b) = reader.read(buf).await;
        buf = b;
        let n = match res {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // The read marked `buf[..n]` initialised on an empty Vec, so its
        // length is `n`; truncate in case a reader marked more.
        buf.truncate(n);
        let (res, b) = writer.write_all(buf).await;
        buf = b;
        res?;
        total += n as u64;
    }
    writer.flush().await?;
    Ok(total)
}
