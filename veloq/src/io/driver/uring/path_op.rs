//! Filesystem path ops as io_uring opcodes: `STATX`, `RENAMEAT`,
//! `UNLINKAT`, `MKDIRAT`, `LINKAT`, `SYMLINKAT`, and the probe that says
//! which of them this kernel has.
//!
//! # Invariants
//!
//! - A [`PathSqe`] holds only raw pointers: the NUL-terminated paths and
//!   the `statx` buffer belong to the op's `keep` (heap memory that the
//!   future, or after a cancel the registry, keeps alive and unmoved until
//!   the completion has been processed). Nothing here owns or frees them.
//! - The driver probes its ring once, when it starts ([`PathOpSet::probe`]);
//!   the fs layer submits a path op only when the set has its opcode, so a
//!   kernel without one never sees it (it gets the blocking pool instead).

use io_uring::{opcode, squeue, types, IoUring, Probe};

use super::{UringDriver, UringOp};
use crate::io::driver::IntoPlatformOp;
use crate::io::op::{self, PathOpKind};

/// What `STATX` asks for: the basic `stat` fields and the birth time.
const STATX_MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// The SQE arguments of one path op; see the module docs.
pub(crate) enum PathSqe {
    /// `STATX` into `buf`.
    Statx {
        dirfd: i32,
        path: *const libc::c_char,
        flags: i32,
        buf: *mut libc::statx,
    },
    /// `RENAMEAT` relative to the working directory.
    Rename {
        from: *const libc::c_char,
        to: *const libc::c_char,
    },
    /// `UNLINKAT`, with `AT_REMOVEDIR` for a directory.
    Unlink {
        path: *const libc::c_char,
        dir: bool,
    },
    /// `MKDIRAT` with the mode bits (before the umask).
    Mkdir {
        path: *const libc::c_char,
        mode: u32,
    },
    /// `LINKAT` (no flags: a symbolic link is linked itself).
    Link {
        original: *const libc::c_char,
        link: *const libc::c_char,
    },
    /// `SYMLINKAT` relative to the working directory.
    Symlink {
        original: *const libc::c_char,
        link: *const libc::c_char,
    },
}

impl PathSqe {
    /// The SQE for this op (without `user_data`). The pointers are the
    /// caller's; see the module docs for who keeps them valid.
    pub(crate) fn entry(&self) -> squeue::Entry {
        let cwd = types::Fd(libc::AT_FDCWD);
        match *self {
            PathSqe::Statx {
                dirfd,
                path,
                flags,
                buf,
            } => opcode::Statx::new(types::Fd(dirfd), path, buf.cast())
                .flags(flags)
                .mask(STATX_MASK)
                .build(),
            PathSqe::Rename { from, to } => opcode::RenameAt::new(cwd, from, cwd, to).build(),
            PathSqe::Unlink { path, dir } => {
                let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
                opcode::UnlinkAt::new(cwd, path).flags(flags).build()
            }
            PathSqe::Mkdir { path, mode } => opcode::MkDirAt::new(cwd, path)
                .mode(mode as libc::mode_t)
                .build(),
            PathSqe::Link { original, link } => {
                opcode::LinkAt::new(cwd, original, cwd, link).build()
            }
            PathSqe::Symlink { original, link } => {
                opcode::SymlinkAt::new(cwd, original, link).build()
            }
        }
    }
}

/// Which path opcodes the kernel has, from `IORING_REGISTER_PROBE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PathOpSet(u8);

impl PathOpSet {
    /// Every path op and its opcode.
    const OPS: [(PathOpKind, u8); 6] = [
        (PathOpKind::Statx, opcode::Statx::CODE),
        (PathOpKind::RenameAt, opcode::RenameAt::CODE),
        (PathOpKind::UnlinkAt, opcode::UnlinkAt::CODE),
        (PathOpKind::MkdirAt, opcode::MkDirAt::CODE),
        (PathOpKind::LinkAt, opcode::LinkAt::CODE),
        (PathOpKind::SymlinkAt, opcode::SymlinkAt::CODE),
    ];

    /// Asks the kernel which opcodes `ring` supports; an empty set where
    /// the probe itself is refused (kernels before 5.6).
    pub(crate) fn probe(ring: &IoUring) -> PathOpSet {
        let mut probe = Probe::new();
        if ring.submitter().register_probe(&mut probe).is_err() {
            return PathOpSet::default();
        }
        let mut set = PathOpSet::default();
        for (kind, code) in PathOpSet::OPS {
            if probe.is_supported(code) {
                set.0 |= bit(kind);
            }
        }
        set
    }

    /// Whether `kind` runs as an opcode.
    pub(crate) fn contains(self, kind: PathOpKind) -> bool {
        self.0 & bit(kind) != 0
    }
}

/// `kind`'s bit in a [`PathOpSet`].
fn bit(kind: PathOpKind) -> u8 {
    1 << (kind as u8)
}

impl IntoPlatformOp<UringDriver> for op::Statx {
    fn into_platform_op(self) -> UringOp {
        UringOp::Path(PathSqe::Statx {
            dirfd: self.dirfd,
            path: self.path,
            flags: self.flags,
            buf: self.buf,
        })
    }
}

impl IntoPlatformOp<UringDriver> for op::RenameAt {
    fn into_platform_op(self) -> UringOp {
        UringOp::Path(PathSqe::Rename {
            from: self.from,
            to: self.to,
        })
    }
}

impl IntoPlatformOp<UringDriver> for op::UnlinkAt {
    fn into_platform_op(self) -> UringOp {
        UringOp::Path(PathSqe::Unlink {
            path: self.path,
            dir: self.dir,
        })
    }
}

impl IntoPlatformOp<UringDriver> for op::MkdirAt {
    fn into_platform_op(self) -> UringOp {
        UringOp::Path(PathSqe::Mkdir {
            path: self.path,
            mode: self.mode,
        })
    }
}

impl IntoPlatformOp<UringDriver> for op::LinkAt {
    fn into_platform_op(self) -> UringOp {
        UringOp::Path(PathSqe::Link {
            original: self.original,
            link: self.link,
        })
    }
}

impl IntoPlatformOp<UringDriver> for op::SymlinkAt {
    fn into_platform_op(self) -> UringOp {
        UringOp::Path(PathSqe::Symlink {
            original: self.original,
            link: self.link,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_finds_every_path_op_on_a_current_kernel() {
        let Ok(ring) = IoUring::new(4) else {
            eprintln!("skipping: io_uring refused here");
            return;
        };
        let set = PathOpSet::probe(&ring);
        // All six arrived by Linux 5.15; older kernels may lack some.
        let (major, minor) = kernel_version();
        if (major, minor) >= (5, 15) {
            for (kind, _) in PathOpSet::OPS {
                assert!(set.contains(kind), "{kind:?} missing on {major}.{minor}");
            }
        }
        assert!(!PathOpSet::default().contains(PathOpKind::Statx));
    }

    /// The running kernel's `major.minor`.
    fn kernel_version() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }
}
