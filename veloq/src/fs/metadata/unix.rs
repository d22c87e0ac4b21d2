//! The Unix representation behind [`Metadata`] and [`FileType`]: the
//! `stat` fields as plain numbers, filled from a `statx` buffer (io_uring
//! `STATX`) or from std's `Metadata` (the blocking pool), and std's
//! `MetadataExt` / `FileTypeExt` on top of them.

use std::fs::Permissions;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{FileType, Metadata};

/// A timestamp as the kernel gives it: seconds since the epoch (negative
/// before it) and nanoseconds within the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ts {
    sec: i64,
    nsec: u32,
}

impl Ts {
    /// The same instant as a `SystemTime` (as std builds it from a
    /// `timespec`).
    fn system_time(self) -> SystemTime {
        let nsec = Duration::from_nanos(u64::from(self.nsec));
        if self.sec >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.sec as u64) + nsec
        } else {
            UNIX_EPOCH - Duration::from_secs(self.sec.unsigned_abs()) + nsec
        }
    }

    /// The timestamp of a `SystemTime` (the inverse of [`system_time`](Ts::system_time)).
    fn of(t: SystemTime) -> Ts {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Ts {
                sec: d.as_secs() as i64,
                nsec: d.subsec_nanos(),
            },
            Err(e) => {
                // Before the epoch: round the seconds down, keep the
                // nanoseconds non-negative.
                let d = e.duration();
                let (mut sec, mut nsec) = (-(d.as_secs() as i64), d.subsec_nanos());
                if nsec > 0 {
                    sec -= 1;
                    nsec = 1_000_000_000 - nsec;
                }
                Ts { sec, nsec }
            }
        }
    }

    fn of_statx(t: &libc::statx_timestamp) -> Ts {
        Ts {
            sec: t.tv_sec,
            nsec: t.tv_nsec,
        }
    }
}

/// The `stat` fields of one file.
#[derive(Debug, Clone)]
pub(crate) struct Stat {
    dev: u64,
    ino: u64,
    mode: u32,
    nlink: u64,
    uid: u32,
    gid: u32,
    rdev: u64,
    size: u64,
    blksize: u64,
    blocks: u64,
    atime: Ts,
    mtime: Ts,
    ctime: Ts,
    /// The birth time, where the file system records it.
    btime: Option<Ts>,
}

/// The fields of a `statx` buffer the kernel filled (asked for
/// `STATX_BASIC_STATS | STATX_BTIME`).
#[cfg(target_os = "linux")]
pub(crate) fn from_statx(st: &libc::statx) -> Metadata {
    let btime = (st.stx_mask & libc::STATX_BTIME != 0).then(|| Ts::of_statx(&st.stx_btime));
    Metadata::from_stat(Stat {
        dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        mode: u32::from(st.stx_mode),
        nlink: u64::from(st.stx_nlink),
        uid: st.stx_uid,
        gid: st.stx_gid,
        rdev: libc::makedev(st.stx_rdev_major, st.stx_rdev_minor),
        size: st.stx_size,
        blksize: u64::from(st.stx_blksize),
        blocks: st.stx_blocks,
        atime: Ts::of_statx(&st.stx_atime),
        mtime: Ts::of_statx(&st.stx_mtime),
        ctime: Ts::of_statx(&st.stx_ctime),
        btime,
    })
}

impl Stat {
    pub(super) fn from_std(m: &std::fs::Metadata) -> Stat {
        Stat {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev(),
            size: m.size(),
            blksize: m.blksize(),
            blocks: m.blocks(),
            atime: Ts {
                sec: m.atime(),
                nsec: m.atime_nsec() as u32,
            },
            mtime: Ts {
                sec: m.mtime(),
                nsec: m.mtime_nsec() as u32,
            },
            ctime: Ts {
                sec: m.ctime(),
                nsec: m.ctime_nsec() as u32,
            },
            btime: m.created().ok().map(Ts::of),
        }
    }

    pub(super) fn kind(&self) -> Kind {
        Kind(self.mode & libc::S_IFMT)
    }

    pub(super) fn len(&self) -> u64 {
        self.size
    }

    pub(super) fn permissions(&self) -> Permissions {
        Permissions::from_mode(self.mode)
    }

    pub(super) fn modified(&self) -> io::Result<SystemTime> {
        Ok(self.mtime.system_time())
    }

    pub(super) fn accessed(&self) -> io::Result<SystemTime> {
        Ok(self.atime.system_time())
    }

    pub(super) fn created(&self) -> io::Result<SystemTime> {
        self.btime.map(Ts::system_time).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "creation time is not available for the filesystem",
            )
        })
    }
}

/// A file type: the `S_IFMT` bits of a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Kind(u32);

impl Kind {
    pub(super) fn from_std(t: std::fs::FileType) -> Kind {
        let bits = if t.is_dir() {
            libc::S_IFDIR
        } else if t.is_file() {
            libc::S_IFREG
        } else if t.is_symlink() {
            libc::S_IFLNK
        } else if t.is_block_device() {
            libc::S_IFBLK
        } else if t.is_char_device() {
            libc::S_IFCHR
        } else if t.is_fifo() {
            libc::S_IFIFO
        } else if t.is_socket() {
            libc::S_IFSOCK
        } else {
            0
        };
        Kind(bits)
    }

    fn is(self, bits: u32) -> bool {
        self.0 == bits
    }

    pub(super) fn is_dir(self) -> bool {
        self.is(libc::S_IFDIR)
    }

    pub(super) fn is_file(self) -> bool {
        self.is(libc::S_IFREG)
    }

    pub(super) fn is_symlink(self) -> bool {
        self.is(libc::S_IFLNK)
    }
}

/// std's Unix accessors, so code written against `std::fs::Metadata`
/// compiles unchanged.
impl MetadataExt for Metadata {
    fn dev(&self) -> u64 {
        self.inner.dev
    }
    fn ino(&self) -> u64 {
        self.inner.ino
    }
    fn mode(&self) -> u32 {
        self.inner.mode
    }
    fn nlink(&self) -> u64 {
        self.inner.nlink
    }
    fn uid(&self) -> u32 {
        self.inner.uid
    }
    fn gid(&self) -> u32 {
        self.inner.gid
    }
    fn rdev(&self) -> u64 {
        self.inner.rdev
    }
    fn size(&self) -> u64 {
        self.inner.size
    }
    fn atime(&self) -> i64 {
        self.inner.atime.sec
    }
    fn atime_nsec(&self) -> i64 {
        i64::from(self.inner.atime.nsec)
    }
    fn mtime(&self) -> i64 {
        self.inner.mtime.sec
    }
    fn mtime_nsec(&self) -> i64 {
        i64::from(self.inner.mtime.nsec)
    }
    fn ctime(&self) -> i64 {
        self.inner.ctime.sec
    }
    fn ctime_nsec(&self) -> i64 {
        i64::from(self.inner.ctime.nsec)
    }
    fn blksize(&self) -> u64 {
        self.inner.blksize
    }
    fn blocks(&self) -> u64 {
        self.inner.blocks
    }
}

/// std's Unix file types (devices, FIFOs, sockets).
impl FileTypeExt for FileType {
    fn is_block_device(&self) -> bool {
        self.inner.is(libc::S_IFBLK)
    }
    fn is_char_device(&self) -> bool {
        self.inner.is(libc::S_IFCHR)
    }
    fn is_fifo(&self) -> bool {
        self.inner.is(libc::S_IFIFO)
    }
    fn is_socket(&self) -> bool {
        self.inner.is(libc::S_IFSOCK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_system_time() {
        for (sec, nsec) in [
            (0, 0),
            (1_700_000_000, 123_456_789),
            (-1, 500),
            (-86_400, 0),
        ] {
            let ts = Ts { sec, nsec };
            assert_eq!(Ts::of(ts.system_time()), ts, "{sec}.{nsec}");
        }
    }

    #[test]
    fn std_metadata_converts_field_by_field() {
        let std = std::fs::metadata("/").unwrap();
        let ours = Metadata::from(std.clone());
        assert!(ours.is_dir() && !ours.is_file() && !ours.is_symlink());
        assert_eq!(ours.len(), std.len());
        assert_eq!(ours.ino(), std.ino());
        assert_eq!(ours.mode(), std.mode());
        assert_eq!(ours.permissions(), std.permissions());
        assert_eq!(ours.modified().unwrap(), std.modified().unwrap());
        assert_eq!(ours.accessed().unwrap(), std.accessed().unwrap());
        assert_eq!(ours.created().ok(), std.created().ok());
        assert_eq!(FileType::from(std.file_type()), ours.file_type());
    }
}
