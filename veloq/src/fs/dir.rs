//! Creating and removing directories: [`create_dir`], [`create_dir_all`],
//! [`remove_dir`], [`remove_dir_all`] and [`DirBuilder`].
//!
//! On the io_uring driver, creating and removing one directory are the
//! `MKDIRAT` and `UNLINKAT` (`AT_REMOVEDIR`) opcodes, and a recursive
//! create is a walk of `MKDIRAT`s (with `STATX` to tell an existing
//! directory from something else in the way), where the kernel has them.
//! Otherwise (epoll, IOCP, no runtime) and for `remove_dir_all`, the
//! `std::fs` call of the same name runs on the crate's blocking pool (one
//! trip per call, however deep a recursive one goes). Errors are those
//! `std::fs` reports. They need no veloq runtime. Listing a directory is
//! [`read_dir`](super::read_dir).

use std::io;
use std::path::Path;

use super::native;
use crate::runtime::blocking;

/// The mode bits of a created directory when none is given (before the
/// umask), as std's `DirBuilder`.
const DEFAULT_DIR_MODE: u32 = 0o777;

/// Creates the directory `path`; its parent must exist.
///
/// # Errors
///
/// `AlreadyExists` if something is at `path`, `NotFound` if the parent is
/// missing, `PermissionDenied` if the parent may not be written.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-create-dir-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     let again = veloq::fs::create_dir(&dir).await.unwrap_err();
///     assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
///     veloq::fs::remove_dir(&dir).await
/// })
/// # }
/// ```
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    if let Some(res) = native::create_dir(path.as_ref(), DEFAULT_DIR_MODE).await {
        return res;
    }
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::create_dir(path)).await
}

/// Creates the directory `path` and every missing parent; a directory
/// already at `path` is success.
///
/// # Errors
///
/// `AlreadyExists` if a file (not a directory) is at `path` or in the
/// way, and the system's other errors.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-create-dir-all-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir_all(dir.join("a").join("b")).await?;
///     veloq::fs::create_dir_all(dir.join("a").join("b")).await?; // already there: fine
///     assert!(veloq::fs::metadata(dir.join("a").join("b")).await?.is_dir());
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    if let Some(res) = native::create_dir_all(path.as_ref(), DEFAULT_DIR_MODE).await {
        return res;
    }
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::create_dir_all(path)).await
}

/// Removes the empty directory `path`.
///
/// # Errors
///
/// `DirectoryNotEmpty` if it has entries, `NotFound` if it does not
/// exist, and the system's other errors (a file at `path` is one).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-remove-dir-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir_all(dir.join("sub")).await?;
///     let err = veloq::fs::remove_dir(&dir).await.unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::DirectoryNotEmpty);
///     veloq::fs::remove_dir(dir.join("sub")).await?;
///     veloq::fs::remove_dir(&dir).await
/// })
/// # }
/// ```
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    if let Some(res) = native::remove(path.as_ref(), true).await {
        return res;
    }
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::remove_dir(path)).await
}

/// Removes the directory `path` with everything in it. Symbolic links
/// inside are removed, not followed.
///
/// # Errors
///
/// `NotFound` if `path` does not exist, and the first error met on the
/// way (what was removed before it stays removed).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-remove-dir-all-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir_all(dir.join("a").join("b")).await?;
///     veloq::fs::write(dir.join("a").join("f"), b"x").await?;
///     veloq::fs::remove_dir_all(&dir).await?;
///     assert!(!veloq::fs::try_exists(&dir).await?);
///     Ok(())
/// })
/// # }
/// ```
pub async fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    blocking::run(move || std::fs::remove_dir_all(path)).await
}

/// Options for creating a directory: whether parents are created too, and
/// (on Unix) the mode bits. tokio's `DirBuilder` shape.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-dir-builder-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::DirBuilder::new()
///         .recursive(true)
///         .create(dir.join("x").join("y"))
///         .await?;
///     assert!(veloq::fs::metadata(dir.join("x").join("y")).await?.is_dir());
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
#[derive(Debug, Default)]
pub struct DirBuilder {
    recursive: bool,
    #[cfg(unix)]
    mode: Option<u32>,
}

impl DirBuilder {
    /// Options that create one directory (not its parents), with the
    /// system's default mode.
    pub fn new() -> DirBuilder {
        DirBuilder::default()
    }

    /// Whether missing parents are created too (and a directory already at
    /// the path is success).
    pub fn recursive(&mut self, recursive: bool) -> &mut Self {
        self.recursive = recursive;
        self
    }

    /// The mode bits of directories created (before the umask), Unix only.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::os::unix::fs::PermissionsExt;
    ///
    /// let dir = std::env::temp_dir().join(format!("veloq-doc-dir-mode-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// veloq::block_on(async {
    ///     veloq::fs::DirBuilder::new().mode(0o700).create(&dir).await?;
    ///     let mode = veloq::fs::metadata(&dir).await?.permissions().mode();
    ///     assert_eq!(mode & 0o777, 0o700);
    ///     veloq::fs::remove_dir(&dir).await
    /// })
    /// # }
    /// ```
    #[cfg(unix)]
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = Some(mode);
        self
    }

    /// The mode bits directories are created with.
    #[cfg(unix)]
    fn mode_bits(&self) -> u32 {
        self.mode.unwrap_or(DEFAULT_DIR_MODE)
    }

    /// The mode bits directories are created with (unused on Windows).
    #[cfg(windows)]
    fn mode_bits(&self) -> u32 {
        DEFAULT_DIR_MODE
    }

    /// Creates the directory `path` with these options.
    ///
    /// # Errors
    ///
    /// As [`create_dir`] or, when recursive, [`create_dir_all`].
    pub async fn create(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let native = if self.recursive {
            native::create_dir_all(path.as_ref(), self.mode_bits()).await
        } else {
            native::create_dir(path.as_ref(), self.mode_bits()).await
        };
        if let Some(res) = native {
            return res;
        }
        let path = path.as_ref().to_owned();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(self.recursive);
        #[cfg(unix)]
        if let Some(mode) = self.mode {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(mode);
        }
        blocking::run(move || builder.create(path)).await
    }
}
