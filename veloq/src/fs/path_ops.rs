//! Operations on paths that neither open a file for I/O nor walk a
//! directory: metadata, renames, links, removal of files, permissions.
//!
//! On the io_uring driver, `metadata`, `symlink_metadata`, `try_exists`,
//! `rename`, `remove_file`, `hard_link` and `symlink` are io_uring opcodes
//! (`STATX`, `RENAMEAT`, `UNLINKAT`, `LINKAT`, `SYMLINKAT`) where the
//! kernel has them (the driver probes once when it starts). Everywhere
//! else — the epoll driver, IOCP, a kernel without the opcode, no veloq
//! runtime at all — and for the other functions here, the `std::fs` call
//! of the same name runs on the crate's bounded blocking pool. Either way the worker never
//! blocks on the file system, and errors are exactly those `std::fs`
//! reports (`NotFound`, `AlreadyExists`, `PermissionDenied`,
//! `InvalidInput` for a path with an embedded NUL, …).
//!
//! None of these needs a veloq runtime: outside one they take the pool,
//! whose result arrives through a thread-safe waker.

use std::fs::Permissions;
use std::io;
use std::path::{Path, PathBuf};

use super::native;
use super::Metadata;
use crate::runtime::blocking;

/// Returns the metadata of the file or directory at `path`, following
/// symbolic links (`stat`).
///
/// # Errors
///
/// `NotFound` if nothing is at `path`, and the system's other errors.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-metadata-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("f"), b"four").await?;
///     let meta = veloq::fs::metadata(dir.join("f")).await?;
///     assert!(meta.is_file());
///     assert_eq!(meta.len(), 4);
///     assert!(veloq::fs::metadata(&dir).await?.is_dir());
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    if let Some(res) = native::metadata(path.as_ref(), true).await {
        return res;
    }
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::metadata(path).map(Metadata::from)).await
}

/// Returns the metadata of `path` itself, not following a symbolic link
/// there (`lstat`).
///
/// # Errors
///
/// `NotFound` if nothing is at `path`, and the system's other errors.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-symlink-metadata-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("f"), b"x").await?;
///     let meta = veloq::fs::symlink_metadata(dir.join("f")).await?;
///     assert!(meta.is_file() && !meta.file_type().is_symlink());
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    if let Some(res) = native::metadata(path.as_ref(), false).await {
        return res;
    }
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::symlink_metadata(path).map(Metadata::from)).await
}

/// Renames `from` to `to`, replacing `to` if it is a file (and, on Unix,
/// an empty directory when `from` is one).
///
/// # Errors
///
/// `NotFound` if `from` does not exist, and the system's other errors
/// (e.g. across file systems).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-rename-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("old"), b"x").await?;
///     veloq::fs::rename(dir.join("old"), dir.join("new")).await?;
///     assert!(!veloq::fs::try_exists(dir.join("old")).await?);
///     assert_eq!(veloq::fs::read(dir.join("new")).await?, b"x");
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    if let Some(res) = native::rename(from.as_ref(), to.as_ref()).await {
        return res;
    }
    let from = from.as_ref().to_owned();
    let to = to.as_ref().to_owned();
    blocking::run(move || std::fs::rename(from, to)).await
}

/// Removes the file (or symbolic link) at `path`.
///
/// # Errors
///
/// `NotFound` if it does not exist; a directory is an error (use
/// [`remove_dir`](super::remove_dir)).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-remove-file-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("f"), b"x").await?;
///     veloq::fs::remove_file(dir.join("f")).await?;
///     let err = veloq::fs::remove_file(dir.join("f")).await.unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
///     veloq::fs::remove_dir(&dir).await
/// })
/// # }
/// ```
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    if let Some(res) = native::remove(path.as_ref(), false).await {
        return res;
    }
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::remove_file(path)).await
}

/// Makes `link` a hard link to the file `original`.
///
/// # Errors
///
/// `NotFound` if `original` does not exist, `AlreadyExists` if `link`
/// does, and the system's other errors.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-hard-link-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("a"), b"shared").await?;
///     veloq::fs::hard_link(dir.join("a"), dir.join("b")).await?;
///     veloq::fs::remove_file(dir.join("a")).await?;
///     assert_eq!(veloq::fs::read(dir.join("b")).await?, b"shared");
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    if let Some(res) = native::hard_link(original.as_ref(), link.as_ref()).await {
        return res;
    }
    let original = original.as_ref().to_owned();
    let link = link.as_ref().to_owned();
    blocking::run(move || std::fs::hard_link(original, link)).await
}

/// Makes `link` a symbolic link pointing at `original` (which need not
/// exist; a relative `original` is resolved from `link`'s directory).
///
/// # Errors
///
/// `AlreadyExists` if `link` exists, and the system's other errors.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-symlink-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("target"), b"x").await?;
///     veloq::fs::symlink("target", dir.join("link")).await?;
///     assert_eq!(veloq::fs::read_link(dir.join("link")).await?, std::path::Path::new("target"));
///     assert_eq!(veloq::fs::read(dir.join("link")).await?, b"x");
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
#[cfg(unix)]
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    if let Some(res) = native::symlink(original.as_ref(), link.as_ref()).await {
        return res;
    }
    let original = original.as_ref().to_owned();
    let link = link.as_ref().to_owned();
    blocking::run(move || std::os::unix::fs::symlink(original, link)).await
}

/// Returns the absolute form of `path` with every `.`, `..` and symbolic
/// link resolved (`realpath`; on Windows a `\\?\` verbatim path).
///
/// # Errors
///
/// `NotFound` if `path` (or a component of it) does not exist.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-canonicalize-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir_all(dir.join("sub")).await?;
///     let round_about = dir.join("sub").join("..").join("sub");
///     let canonical = veloq::fs::canonicalize(&round_about).await?;
///     assert!(canonical.is_absolute());
///     assert_eq!(canonical, veloq::fs::canonicalize(dir.join("sub")).await?);
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::canonicalize(path)).await
}

/// Returns what the symbolic link at `path` points to, as stored in the
/// link (not resolved).
///
/// # Errors
///
/// `NotFound` if nothing is at `path`; `InvalidInput` (on Unix) if it is
/// not a symbolic link.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-read-link-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     let err = veloq::fs::read_link(dir.join("missing")).await.unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
///     veloq::fs::remove_dir(&dir).await
/// })
/// # }
/// ```
pub async fn read_link(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::read_link(path)).await
}

/// Whether something exists at `path` (following symbolic links):
/// `Ok(false)` when it is known not to, an error when that cannot be
/// told (e.g. a parent directory that may not be searched).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-try-exists-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     assert!(!veloq::fs::try_exists(&dir).await?);
///     veloq::fs::create_dir(&dir).await?;
///     assert!(veloq::fs::try_exists(&dir).await?);
///     veloq::fs::remove_dir(&dir).await
/// })
/// # }
/// ```
pub async fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    // std's rule: found is `true`, `NotFound` is `false`, other errors are
    // errors; as one `STATX` where the driver has it.
    match native::metadata(path.as_ref(), true).await {
        Some(Ok(_)) => return Ok(true),
        Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Some(Err(e)) => return Err(e),
        None => {}
    }
    let path = path.as_ref().to_owned();
    blocking::run(move || path.try_exists()).await
}

/// Copies the contents and permissions of the file `from` to `to`
/// (created or truncated) and returns the number of bytes copied.
///
/// # Errors
///
/// `NotFound` if `from` does not exist, `InvalidInput` if it is not a
/// regular file, and the system's other errors.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-copy-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("a"), b"copy me").await?;
///     assert_eq!(veloq::fs::copy(dir.join("a"), dir.join("b")).await?, 7);
///     assert_eq!(veloq::fs::read(dir.join("b")).await?, b"copy me");
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let from = from.as_ref().to_owned();
    let to = to.as_ref().to_owned();
    blocking::run(move || std::fs::copy(from, to)).await
}

/// Sets the permissions of the file or directory at `path` (following
/// symbolic links).
///
/// # Errors
///
/// `NotFound` if nothing is at `path`, `PermissionDenied` if the caller
/// may not change them.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-set-permissions-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     let file = dir.join("f");
///     veloq::fs::write(&file, b"x").await?;
///     let mut perm = veloq::fs::metadata(&file).await?.permissions();
///     perm.set_readonly(true);
///     veloq::fs::set_permissions(&file, perm).await?;
///     assert!(veloq::fs::metadata(&file).await?.permissions().readonly());
///     # let mut perm = veloq::fs::metadata(&file).await?.permissions();
///     # #[allow(clippy::permissions_set_readonly_false)]
///     # perm.set_readonly(false);
///     # veloq::fs::set_permissions(&file, perm).await?;
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn set_permissions(path: impl AsRef<Path>, perm: Permissions) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::set_permissions(path, perm)).await
}
