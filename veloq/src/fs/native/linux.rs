//! Path operations as io_uring opcodes (`STATX`, `RENAMEAT`, `UNLINKAT`,
//! `MKDIRAT`, `LINKAT`, `SYMLINKAT`), for the fs functions that would
//! otherwise take a trip through the blocking pool.
//!
//! Every function here answers `None` when the op cannot run on the
//! driver: no veloq runtime is current, the runtime runs the epoll driver,
//! or the io_uring probe did not find the opcode. The caller then runs
//! the `std::fs` call on the blocking pool, so a result always comes.
//!
//! # Invariants
//!
//! - The paths (`CString`s) and the `statx` buffer live in the op's
//!   `keep`: the future holds them, and if it is dropped mid-flight the
//!   driver keeps them until the kernel's completion, so the kernel never
//!   reads a freed path nor writes a freed buffer. `File::metadata` also
//!   keeps its file's handle (the caller's owner value) alive that way.
//! - A path with an embedded NUL is refused with `InvalidInput` before
//!   anything is submitted; kernel errors become `io::Error`s through
//!   `from_raw_os_error`, with the kinds std reports for the same call.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::fs::metadata::{from_statx, Metadata};
use crate::io::driver::{IntoPlatformOp, PlatformDriver};
use crate::io::op::{self, Op, PathOpKind};
use crate::runtime::context;
use crate::sys::RawFd;

/// Whether the current runtime's driver runs `kind` as an op (see the
/// module docs).
pub(crate) fn supports(kind: PathOpKind) -> bool {
    context::current()
        .and_then(|core| core.with_driver_if_free(|d| d.supports_path_op(kind)))
        .unwrap_or(false)
}

/// `path` as a NUL-terminated string, or std's `InvalidInput`.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file name contained an unexpected NUL byte",
        )
    })
}

/// Submits `desc`, keeping `keep` (what its pointers point into) alive
/// until the kernel is done; the op's result, without a count.
async fn run<D: IntoPlatformOp<PlatformDriver>, K: 'static>(desc: D, keep: K) -> io::Result<()> {
    let (out, keep) = Op::submit(desc, keep).await;
    drop(keep);
    out.res.map(drop)
}

/// `statx` of `path` relative to `dirfd` with `flags`; `owner` is kept
/// alive with the path and the buffer (a file's handle for `dirfd`).
async fn statx<K: 'static>(
    dirfd: RawFd,
    path: CString,
    flags: i32,
    owner: K,
) -> io::Result<Metadata> {
    // SAFETY: `statx` is plain old data; all-zero is a valid value.
    let mut buf: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
    let desc = op::Statx {
        dirfd,
        path: path.as_ptr(),
        flags,
        buf: &mut *buf,
    };
    let (out, (_path, buf, _owner)) = Op::submit(desc, (path, buf, owner)).await;
    out.res?;
    Ok(from_statx(&buf))
}

/// `metadata` (`follow`) or `symlink_metadata` of `path`.
pub(crate) async fn metadata(path: &Path, follow: bool) -> Option<io::Result<Metadata>> {
    if !supports(PathOpKind::Statx) {
        return None;
    }
    let flags = if follow {
        libc::AT_STATX_SYNC_AS_STAT
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    Some(match c_path(path) {
        Ok(path) => statx(libc::AT_FDCWD, path, flags, ()).await,
        Err(e) => Err(e),
    })
}

/// The metadata of the open file `fd`; `owner` keeps `fd` open until the
/// kernel is done with it.
pub(crate) async fn file_metadata<K: 'static>(fd: RawFd, owner: K) -> Option<io::Result<Metadata>> {
    if !supports(PathOpKind::Statx) {
        return None;
    }
    let flags = libc::AT_EMPTY_PATH | libc::AT_STATX_SYNC_AS_STAT;
    Some(statx(fd, CString::default(), flags, owner).await)
}

/// Runs the op `make` builds from two paths.
async fn two_paths<D: IntoPlatformOp<PlatformDriver>>(
    kind: PathOpKind,
    a: &Path,
    b: &Path,
    make: fn(&CString, &CString) -> D,
) -> Option<io::Result<()>> {
    if !supports(kind) {
        return None;
    }
    let (a, b) = match (c_path(a), c_path(b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
    };
    let desc = make(&a, &b);
    Some(run(desc, (a, b)).await)
}

/// `rename(from, to)`.
pub(crate) async fn rename(from: &Path, to: &Path) -> Option<io::Result<()>> {
    two_paths(PathOpKind::RenameAt, from, to, |from, to| op::RenameAt {
        from: from.as_ptr(),
        to: to.as_ptr(),
    })
    .await
}

/// `link(original, link)`.
pub(crate) async fn hard_link(original: &Path, link: &Path) -> Option<io::Result<()>> {
    two_paths(PathOpKind::LinkAt, original, link, |original, link| {
        op::LinkAt {
            original: original.as_ptr(),
            link: link.as_ptr(),
        }
    })
    .await
}

/// `symlink(original, link)`.
pub(crate) async fn symlink(original: &Path, link: &Path) -> Option<io::Result<()>> {
    two_paths(PathOpKind::SymlinkAt, original, link, |original, link| {
        op::SymlinkAt {
            original: original.as_ptr(),
            link: link.as_ptr(),
        }
    })
    .await
}

/// `unlink(path)`, or `rmdir(path)` when `dir`.
pub(crate) async fn remove(path: &Path, dir: bool) -> Option<io::Result<()>> {
    if !supports(PathOpKind::UnlinkAt) {
        return None;
    }
    Some(match c_path(path) {
        Ok(path) => {
            let desc = op::UnlinkAt {
                path: path.as_ptr(),
                dir,
            };
            run(desc, path).await
        }
        Err(e) => Err(e),
    })
}

/// `mkdir(path, mode)`, for a caller that checked `supports(MkdirAt)`.
async fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    let path = c_path(path)?;
    let desc = op::MkdirAt {
        path: path.as_ptr(),
        mode,
    };
    run(desc, path).await
}

/// `mkdir(path, mode)`.
pub(crate) async fn create_dir(path: &Path, mode: u32) -> Option<io::Result<()>> {
    if !supports(PathOpKind::MkdirAt) {
        return None;
    }
    Some(mkdir(path, mode).await)
}

/// Creates `path` and its missing parents with `mode`, with std's rules:
/// an existing directory anywhere (raced in or not) is success, anything
/// else in the way is the error of its `mkdir`.
pub(crate) async fn create_dir_all(path: &Path, mode: u32) -> Option<io::Result<()>> {
    if !supports(PathOpKind::MkdirAt) || !supports(PathOpKind::Statx) {
        return None;
    }
    Some(create_all(path, mode).await)
}

async fn create_all(path: &Path, mode: u32) -> io::Result<()> {
    // Walk up until a directory is created or found; the missing ones
    // below it are created on the way back down.
    let mut missing = Vec::new();
    let mut cur = path;
    while !cur.as_os_str().is_empty() {
        match mkdir(cur, mode).await {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(cur);
                cur = cur
                    .parent()
                    .ok_or_else(|| io::Error::other("failed to create whole tree"))?;
            }
            Err(_) if is_dir(cur).await => break,
            Err(e) => return Err(e),
        }
    }
    for dir in missing.into_iter().rev() {
        match mkdir(dir, mode).await {
            Ok(()) => {}
            Err(_) if is_dir(dir).await => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a directory is at `path` (following links), as
/// `Path::is_dir`: any error is "no".
async fn is_dir(path: &Path) -> bool {
    match metadata(path, true).await {
        Some(Ok(m)) => m.is_dir(),
        _ => false,
    }
}
