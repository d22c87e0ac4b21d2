//! Files driven by the runtime's completion-based driver.
//!
//! Reads and writes are positional (`read_at`, `write_at`): a completion
//! based kernel runs many operations on one file at once, so there is no
//! shared cursor. Every operation takes an owned buffer and hands it back
//! with the result ([`BufResult`](crate::BufResult)); dropping an
//! operation's future cancels it, and the driver keeps the buffer alive
//! until the kernel lets go.
//!
//! # Invariants
//!
//! - Every file this module opens is passed to the driver's
//!   `register_handle` exactly once, before its first operation.
//! - [`File`] is `!Send` and `!Sync`: it belongs to the runtime thread that
//!   opened it (its operations, and on Windows its completion port, belong
//!   to that thread's driver).
//! - Opening a file outside a veloq runtime panics.
//!
//! On Windows, opening, closing, flushing and allocating run on the
//! driver's bounded blocking pool (Windows has no asynchronous form of
//! them); reads and writes are overlapped I/O.
//!
//! Path operations (metadata, rename, removal, directory creation, links)
//! are io_uring opcodes on the io_uring driver where the kernel has them,
//! and `std::fs` calls on the crate's blocking pool everywhere else (see
//! `path_ops` and `dir`). Their [`Metadata`] and [`FileType`] are veloq's
//! own, with std's accessors (std's cannot be built from a `statx`).

mod contents;
mod dir;
mod file;
mod metadata;
#[cfg_attr(target_os = "linux", path = "native/linux.rs")]
#[cfg_attr(windows, path = "native/windows.rs")]
mod native;
mod open_options;
mod path_ops;
mod read_dir;

pub use contents::{read, read_to_string, write};
pub use dir::{create_dir, create_dir_all, remove_dir, remove_dir_all, DirBuilder};
pub use file::File;
pub use metadata::{FileType, Metadata};
pub use open_options::OpenOptions;
#[cfg(unix)]
pub use path_ops::symlink;
pub use path_ops::{
    canonicalize, copy, hard_link, metadata, read_link, remove_file, rename, set_permissions,
    symlink_metadata, try_exists,
};
pub use read_dir::{read_dir, DirEntry, ReadDir};
/// Permissions are std's own type.
pub use std::fs::Permissions;
