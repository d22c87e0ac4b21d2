//! Path operations as io_uring opcodes (`STATX`, `RENAMEAT`, `UNLINKAT`,
//! `MKDIRAT`, `LINKAT`, `SYMLINKAT`), for the fs functions that would
//! otherwise take a trip through the blocking pool.
//!
//! Every function here answers `None` when the op cannot run on the
//! driver: no veloq runtime is current, the runtime runs the epoll driver,
//! the io_uring probe did not find the opcode, or the driver failed hard. The caller then runs
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
/// module docs). A driver that failed hard takes no new ops; the pool
/// still answers, as it did before the failure.
pub(crate) fn supports(kind: PathOpKind) -> bool {
    let Some(core) = context::current() else {
        return false;
    };
    core.driver_fault().is_none()
        && core
            .with_driver_if_free(|d| d.supports_path_op(kind))
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::path::PathBuf;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Poll;

    use super::*;
    use crate::io::driver::DriverKind;
    use crate::runtime::{driver_stats, Runtime};

    const KINDS: [PathOpKind; 6] = [
        PathOpKind::Statx,
        PathOpKind::RenameAt,
        PathOpKind::UnlinkAt,
        PathOpKind::MkdirAt,
        PathOpKind::LinkAt,
        PathOpKind::SymlinkAt,
    ];

    /// A fresh, created directory, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("veloq-unit-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir(&path).unwrap();
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A runtime on `kind`, or `None` (with a note) where it is refused.
    fn runtime(kind: DriverKind) -> Option<Runtime> {
        match Runtime::builder().driver(kind).build() {
            Ok(rt) => Some(rt),
            Err(e) => {
                eprintln!("skipping: {kind:?} refused here ({e})");
                None
            }
        }
    }

    /// Polls `fut` once and tells whether that left an op in flight on
    /// the driver; then runs it to the end.
    async fn took_driver<F: Future>(fut: F) -> (bool, F::Output) {
        let mut fut = pin!(fut);
        let before = driver_stats().in_flight;
        let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        let on_driver = driver_stats().in_flight > before;
        let out = match first {
            Poll::Ready(out) => out,
            Poll::Pending => fut.await,
        };
        (on_driver, out)
    }

    /// Every fs function that may be an op, in order, on `dir`; returns
    /// whether each went to the driver.
    async fn every_op(dir: &Path) -> Vec<bool> {
        use crate::fs;
        let (a, b, d) = (dir.join("a"), dir.join("b"), dir.join("d"));
        std::fs::write(&a, b"abc").unwrap();
        let mut took = Vec::new();
        let (op, m) = took_driver(fs::metadata(&a)).await;
        assert_eq!(m.unwrap().len(), 3);
        took.push(op);
        let (op, m) = took_driver(fs::symlink_metadata(&a)).await;
        assert!(m.unwrap().is_file());
        took.push(op);
        let (op, r) = took_driver(fs::rename(&a, &b)).await;
        r.unwrap();
        took.push(op);
        let (op, r) = took_driver(fs::hard_link(&b, &a)).await;
        r.unwrap();
        took.push(op);
        let (op, r) = took_driver(fs::symlink("b", d.with_extension("lnk"))).await;
        r.unwrap();
        took.push(op);
        let (op, r) = took_driver(fs::remove_file(&a)).await;
        r.unwrap();
        took.push(op);
        let (op, r) = took_driver(fs::create_dir(&d)).await;
        r.unwrap();
        took.push(op);
        let (op, r) = took_driver(fs::remove_dir(&d)).await;
        r.unwrap();
        took.push(op);
        let (op, r) = took_driver(fs::create_dir_all(d.join("x"))).await;
        r.unwrap();
        took.push(op);
        let file = fs::File::open(&b).await.unwrap();
        let (op, m) = took_driver(file.metadata()).await;
        assert_eq!(m.unwrap().len(), 3);
        took.push(op);
        file.close().await.unwrap();
        assert!(!a.exists() && b.exists() && d.join("x").is_dir());
        took
    }

    #[test]
    fn io_uring_runs_every_path_op_as_an_opcode() {
        let Some(rt) = runtime(DriverKind::IoUring) else {
            return;
        };
        let dir = Dir::new("fsnative-ops");
        rt.block_on(async {
            for kind in KINDS {
                assert!(supports(kind), "{kind:?}");
            }
            assert!(every_op(&dir.0).await.iter().all(|&op| op));
        });
    }

    #[test]
    fn without_the_opcodes_every_path_op_takes_the_pool() {
        let Some(rt) = runtime(DriverKind::IoUring) else {
            return;
        };
        let dir = Dir::new("fsnative-fallback");
        rt.block_on(async {
            // As if the probe had found none of them.
            context::with_driver(|d| d.forget_path_ops());
            for kind in KINDS {
                assert!(!supports(kind), "{kind:?}");
            }
            assert!(metadata(&dir.0, true).await.is_none());
            assert!(every_op(&dir.0).await.iter().all(|&op| !op));
        });
    }

    #[test]
    fn a_failed_driver_leaves_path_ops_to_the_pool() {
        let Some(rt) = runtime(DriverKind::IoUring) else {
            return;
        };
        let dir = Dir::new("fsnative-fault");
        rt.block_on(async {
            assert!(supports(PathOpKind::Statx));
            context::current()
                .unwrap()
                .inject_fault(io::Error::from_raw_os_error(libc::EIO));
            for kind in KINDS {
                assert!(!supports(kind), "{kind:?}");
            }
            let (op, m) = took_driver(crate::fs::metadata(&dir.0)).await;
            assert!(!op && m.unwrap().is_dir());
        });
    }

    #[test]
    fn epoll_and_no_runtime_take_the_pool() {
        for kind in KINDS {
            assert!(!supports(kind), "no runtime: {kind:?}");
        }
        let rt = runtime(DriverKind::Epoll).expect("epoll always starts");
        let dir = Dir::new("fsnative-epoll");
        rt.block_on(async {
            for kind in KINDS {
                assert!(!supports(kind), "epoll: {kind:?}");
            }
            assert!(every_op(&dir.0).await.iter().all(|&op| !op));
        });
    }
}
