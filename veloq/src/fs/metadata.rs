//! [`Metadata`] and [`FileType`]: what [`metadata`](super::metadata),
//! [`symlink_metadata`](super::symlink_metadata), [`File::metadata`](super::File::metadata)
//! and [`DirEntry`](super::DirEntry) report.
//!
//! They mirror `std::fs::Metadata` and `std::fs::FileType` accessor for
//! accessor (std's types cannot be built from a `statx` buffer, which is
//! what io_uring's `STATX` fills). On Unix they implement std's
//! `MetadataExt` and `FileTypeExt`, so code written against std's types
//! keeps compiling; `From` converts std's values.
//!
//! # Invariants
//!
//! - A value holds plain data copied out of the kernel's answer (or out of
//!   std's), never a pointer to it: the op's buffer is gone by the time
//!   the caller sees a `Metadata`.
//! - Every accessor answers what std's accessor of the same name answers
//!   for the same file (the tests compare them field by field).

#[cfg_attr(unix, path = "metadata/unix.rs")]
#[cfg_attr(windows, path = "metadata/windows.rs")]
mod imp;

use std::fmt;
use std::fs::Permissions;
use std::io;
use std::time::SystemTime;

#[cfg(target_os = "linux")]
pub(crate) use imp::from_statx;

/// Metadata of a file or directory: tokio's and std's `Metadata`, with the
/// same accessors.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-metadata-type-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("f"), b"abc").await?;
///     let meta = veloq::fs::metadata(dir.join("f")).await?;
///     assert!(meta.is_file() && !meta.is_dir() && !meta.is_symlink());
///     assert_eq!(meta.len(), 3);
///     assert!(meta.modified()? <= std::time::SystemTime::now());
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
#[derive(Clone)]
pub struct Metadata {
    inner: imp::Stat,
}

/// The type of a file: directory, regular file, symbolic link or (on Unix)
/// a device, FIFO or socket. Mirrors `std::fs::FileType`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileType {
    inner: imp::Kind,
}

impl Metadata {
    /// The file's type.
    pub fn file_type(&self) -> FileType {
        FileType {
            inner: self.inner.kind(),
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type().is_dir()
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type().is_file()
    }

    /// Whether this is a symbolic link (only ever from
    /// [`symlink_metadata`](super::symlink_metadata) or a directory entry,
    /// which do not follow links).
    pub fn is_symlink(&self) -> bool {
        self.file_type().is_symlink()
    }

    /// The size in bytes.
    #[allow(clippy::len_without_is_empty)] // std's shape
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    /// The permissions (on Unix the whole `st_mode`, as std reports it).
    pub fn permissions(&self) -> Permissions {
        self.inner.permissions()
    }

    /// The last modification time.
    ///
    /// # Errors
    ///
    /// Where the platform does not record it (as std).
    pub fn modified(&self) -> io::Result<SystemTime> {
        self.inner.modified()
    }

    /// The last access time.
    ///
    /// # Errors
    ///
    /// Where the platform does not record it (as std).
    pub fn accessed(&self) -> io::Result<SystemTime> {
        self.inner.accessed()
    }

    /// The creation (birth) time.
    ///
    /// # Errors
    ///
    /// `Unsupported` where the file system does not record it (as std).
    pub fn created(&self) -> io::Result<SystemTime> {
        self.inner.created()
    }
}

impl From<std::fs::Metadata> for Metadata {
    fn from(std: std::fs::Metadata) -> Metadata {
        Metadata {
            inner: imp::Stat::from_std(&std),
        }
    }
}

#[cfg(target_os = "linux")]
impl Metadata {
    /// Wraps the fields of a completed `statx`.
    pub(crate) fn from_stat(inner: imp::Stat) -> Metadata {
        Metadata { inner }
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("file_type", &self.file_type())
            .field("len", &self.len())
            .field("permissions", &self.permissions())
            .field("modified", &self.modified().ok())
            .finish_non_exhaustive()
    }
}

impl FileType {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.inner.is_dir()
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.inner.is_file()
    }

    /// Whether this is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.inner.is_symlink()
    }
}

impl From<std::fs::FileType> for FileType {
    fn from(std: std::fs::FileType) -> FileType {
        FileType {
            inner: imp::Kind::from_std(std),
        }
    }
}

impl fmt::Debug for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileType")
            .field("is_file", &self.is_file())
            .field("is_dir", &self.is_dir())
            .field("is_symlink", &self.is_symlink())
            .finish_non_exhaustive()
    }
}
