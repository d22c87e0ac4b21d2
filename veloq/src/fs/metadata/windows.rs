//! The Windows representation behind [`Metadata`](super::Metadata) and
//! [`FileType`](super::FileType): std's own values (every Windows
//! metadata call runs on the blocking pool), answered accessor for
//! accessor.

use std::fs::Permissions;
use std::io;
use std::time::SystemTime;

/// std's metadata of one file.
#[derive(Debug, Clone)]
pub(crate) struct Stat(std::fs::Metadata);

impl Stat {
    pub(super) fn from_std(m: &std::fs::Metadata) -> Stat {
        Stat(m.clone())
    }

    pub(super) fn kind(&self) -> Kind {
        Kind(self.0.file_type())
    }

    pub(super) fn len(&self) -> u64 {
        self.0.len()
    }

    pub(super) fn permissions(&self) -> Permissions {
        self.0.permissions()
    }

    pub(super) fn modified(&self) -> io::Result<SystemTime> {
        self.0.modified()
    }

    pub(super) fn accessed(&self) -> io::Result<SystemTime> {
        self.0.accessed()
    }

    pub(super) fn created(&self) -> io::Result<SystemTime> {
        self.0.created()
    }
}

/// std's file type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Kind(std::fs::FileType);

impl Kind {
    pub(super) fn from_std(t: std::fs::FileType) -> Kind {
        Kind(t)
    }

    pub(super) fn is_dir(self) -> bool {
        self.0.is_dir()
    }

    pub(super) fn is_file(self) -> bool {
        self.0.is_file()
    }

    pub(super) fn is_symlink(self) -> bool {
        self.0.is_symlink()
    }
}
