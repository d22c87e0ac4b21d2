//! Path operations as driver ops: none on Windows. IOCP has no
//! asynchronous form of them, so every function answers `None` and the
//! caller runs the `std::fs` call on the blocking pool. The signatures
//! match the Linux module's.

use std::io;
use std::path::Path;

use crate::fs::metadata::Metadata;
use crate::sys::RawFd;

/// `metadata` / `symlink_metadata` of `path`: the pool's.
pub(crate) async fn metadata(_path: &Path, _follow: bool) -> Option<io::Result<Metadata>> {
    None
}

/// The metadata of an open file: the pool's.
pub(crate) async fn file_metadata<K: 'static>(
    _fd: RawFd,
    _owner: K,
) -> Option<io::Result<Metadata>> {
    None
}

/// `rename`: the pool's.
pub(crate) async fn rename(_from: &Path, _to: &Path) -> Option<io::Result<()>> {
    None
}

/// A hard link: the pool's.
pub(crate) async fn hard_link(_original: &Path, _link: &Path) -> Option<io::Result<()>> {
    None
}

/// Removing a file or a directory: the pool's.
pub(crate) async fn remove(_path: &Path, _dir: bool) -> Option<io::Result<()>> {
    None
}

/// Creating a directory: the pool's.
pub(crate) async fn create_dir(_path: &Path, _mode: u32) -> Option<io::Result<()>> {
    None
}

/// Creating a directory and its parents: the pool's.
pub(crate) async fn create_dir_all(_path: &Path, _mode: u32) -> Option<io::Result<()>> {
    None
}
