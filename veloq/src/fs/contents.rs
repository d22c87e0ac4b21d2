//! Whole-file helpers: [`read`], [`read_to_string`] and [`write`].
//!
//! Each runs the `std::fs` call of the same name on the crate's blocking
//! pool in one trip (open, read or write everything, close), which for
//! small files is cheaper than a driver op per step. For large files or
//! streaming, open a [`File`](super::File) and use its positional ops.
//! They need no veloq runtime.

use std::io;
use std::path::Path;

use crate::runtime::blocking;

/// Reads the whole file at `path` into a vector.
///
/// # Errors
///
/// `NotFound` if it does not exist, and the system's other errors.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-read-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("f"), [1u8, 2, 3]).await?;
///     assert_eq!(veloq::fs::read(dir.join("f")).await?, [1, 2, 3]);
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::read(path)).await
}

/// Reads the whole file at `path` into a string.
///
/// # Errors
///
/// `InvalidData` if the file is not UTF-8, `NotFound` if it does not
/// exist, and the system's other errors.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-read-to-string-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("f"), "héllo").await?;
///     assert_eq!(veloq::fs::read_to_string(dir.join("f")).await?, "héllo");
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::read_to_string(path)).await
}

/// Writes `contents` as the whole file at `path`, creating it if missing
/// and truncating it if present. The bytes are copied once, to hand them
/// to the pool thread.
///
/// # Errors
///
/// `NotFound` if the parent directory does not exist, and the system's
/// other errors.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-write-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("f"), b"first, longer").await?;
///     veloq::fs::write(dir.join("f"), b"second").await?;
///     assert_eq!(veloq::fs::read(dir.join("f")).await?, b"second");
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    let contents = contents.as_ref().to_owned();
    blocking::run(move || std::fs::write(path, contents)).await
}
