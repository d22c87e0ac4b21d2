//! Path operations as driver ops: on io_uring, `metadata`,
//! `symlink_metadata`, `try_exists`, `File::metadata`, `rename`,
//! `remove_file`, `remove_dir`, `create_dir`, `create_dir_all`,
//! `hard_link` and `symlink` are io_uring opcodes (STATX, RENAMEAT, UNLINKAT, MKDIRAT, LINKAT,
//! SYMLINKAT); on epoll and IOCP they run on the blocking pool. These
//! tests run on every driver and check:
//!
//! - which path each call took (an op the driver counts in flight, or
//!   not), so the io_uring path is known to be taken where it should be;
//! - that the answers and the error kinds are std's, field by field;
//! - that a future dropped mid-flight leaves the file system consistent
//!   and the runtime working (the kernel's buffers are kept alive).

mod util;

use std::future::Future;
use std::io::ErrorKind;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use util::{in_dir, kind, poll_once};
use veloq::fs::{self, File};
use veloq::runtime::{driver_kind, driver_stats, DriverKind};

/// Whether this runtime should run path ops as driver ops: io_uring does
/// (every opcode exists since Linux 5.15), epoll and IOCP do not.
fn ops_expected() -> bool {
    driver_kind() == DriverKind::IoUring
}

/// Polls `fut` once, notes whether that put one op in flight on the
/// driver, then runs it to the end.
async fn took_driver<F: Future>(fut: F) -> (bool, F::Output) {
    let mut fut = pin!(fut);
    let before = driver_stats().in_flight;
    let first = poll_once(fut.as_mut()).await;
    let on_driver = driver_stats().in_flight == before + 1;
    let out = match first {
        Poll::Ready(out) => out,
        Poll::Pending => fut.await,
    };
    (on_driver, out)
}

/// Waits (yielding to the runtime) until no op is in flight.
async fn settle() {
    let start = Instant::now();
    while driver_stats().in_flight != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ops never completed"
        );
        veloq::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn each_path_op_takes_the_driver_where_it_has_the_opcode() {
    in_dir("fsuring-route", |dir| async move {
        let want = ops_expected();
        let (a, b, d) = (dir.join("a"), dir.join("b"), dir.join("d"));
        std::fs::write(&a, b"abc").unwrap();

        let (op, res) = took_driver(fs::metadata(&a)).await;
        assert_eq!((op, res.unwrap().len()), (want, 3), "metadata");
        let (op, res) = took_driver(fs::symlink_metadata(&a)).await;
        assert_eq!(
            (op, res.unwrap().is_file()),
            (want, true),
            "symlink_metadata"
        );
        let (op, res) = took_driver(fs::try_exists(&a)).await;
        assert_eq!((op, res.unwrap()), (want, true), "try_exists");
        let (op, res) = took_driver(fs::try_exists(dir.join("none"))).await;
        assert_eq!((op, res.unwrap()), (want, false), "try_exists (missing)");
        let file = File::open(&a).await.unwrap();
        let (op, res) = took_driver(file.metadata()).await;
        assert_eq!((op, res.unwrap().len()), (want, 3), "File::metadata");
        file.close().await.unwrap();

        let (op, res) = took_driver(fs::rename(&a, &b)).await;
        assert_eq!((op, res.unwrap()), (want, ()), "rename");
        assert!(!a.exists() && b.exists());
        let (op, res) = took_driver(fs::hard_link(&b, &a)).await;
        assert_eq!((op, res.unwrap()), (want, ()), "hard_link");
        assert_eq!(std::fs::read(&a).unwrap(), b"abc");
        let (op, res) = took_driver(fs::remove_file(&a)).await;
        assert_eq!((op, res.unwrap()), (want, ()), "remove_file");
        assert!(!a.exists());

        let (op, res) = took_driver(fs::create_dir(&d)).await;
        assert_eq!((op, res.unwrap()), (want, ()), "create_dir");
        assert!(d.is_dir());
        let (op, res) = took_driver(fs::remove_dir(&d)).await;
        assert_eq!((op, res.unwrap()), (want, ()), "remove_dir");
        assert!(!d.exists());
        // A recursive create is several ops; its first is on the driver.
        let (op, res) = took_driver(fs::create_dir_all(d.join("x").join("y"))).await;
        assert_eq!((op, res.unwrap()), (want, ()), "create_dir_all");
        assert!(d.join("x").join("y").is_dir());
        settle().await;
    });
}

/// Asserts that two metadata answers agree on everything std exposes.
fn assert_same(ours: &fs::Metadata, std: &std::fs::Metadata, what: &str) {
    assert_eq!(ours.len(), std.len(), "{what}: len");
    assert_eq!(ours.is_dir(), std.is_dir(), "{what}: is_dir");
    assert_eq!(ours.is_file(), std.is_file(), "{what}: is_file");
    assert_eq!(ours.is_symlink(), std.is_symlink(), "{what}: is_symlink");
    assert_eq!(
        ours.file_type(),
        fs::FileType::from(std.file_type()),
        "{what}"
    );
    assert_eq!(ours.permissions(), std.permissions(), "{what}: permissions");
    assert_eq!(ours.modified().unwrap(), std.modified().unwrap(), "{what}");
    assert_eq!(ours.accessed().unwrap(), std.accessed().unwrap(), "{what}");
    assert_eq!(ours.created().ok(), std.created().ok(), "{what}: created");
    assert_unix_fields(ours, std, what);
}

#[cfg(unix)]
fn assert_unix_fields(ours: &fs::Metadata, std: &std::fs::Metadata, what: &str) {
    use std::os::unix::fs::MetadataExt;
    let fields = |m: &dyn Fn() -> [i128; 16]| m();
    let o = fields(&|| {
        [
            ours.dev().into(),
            ours.ino().into(),
            ours.mode().into(),
            ours.nlink().into(),
            ours.uid().into(),
            ours.gid().into(),
            ours.rdev().into(),
            ours.size().into(),
            ours.atime().into(),
            ours.atime_nsec().into(),
            ours.mtime().into(),
            ours.mtime_nsec().into(),
            ours.ctime().into(),
            ours.ctime_nsec().into(),
            ours.blksize().into(),
            ours.blocks().into(),
        ]
    });
    let s: [i128; 16] = [
        std.dev().into(),
        std.ino().into(),
        std.mode().into(),
        std.nlink().into(),
        std.uid().into(),
        std.gid().into(),
        std.rdev().into(),
        std.size().into(),
        std.atime().into(),
        std.atime_nsec().into(),
        std.mtime().into(),
        std.mtime_nsec().into(),
        std.ctime().into(),
        std.ctime_nsec().into(),
        std.blksize().into(),
        std.blocks().into(),
    ];
    assert_eq!(
        o, s,
        "{what}: dev ino mode nlink uid gid rdev size times blksize blocks"
    );
}

#[cfg(windows)]
fn assert_unix_fields(_: &fs::Metadata, _: &std::fs::Metadata, _: &str) {}

#[test]
fn metadata_matches_std_field_by_field() {
    in_dir("fsuring-fields", |dir| async move {
        let file = dir.join("f");
        std::fs::write(&file, vec![7u8; 10_000]).unwrap();
        let sub = dir.join("sub");
        std::fs::create_dir(&sub).unwrap();

        let m = fs::metadata(&file).await.unwrap();
        assert_same(&m, &std::fs::metadata(&file).unwrap(), "file");
        let m = fs::metadata(&sub).await.unwrap();
        assert_same(&m, &std::fs::metadata(&sub).unwrap(), "dir");
        let m = fs::symlink_metadata(&file).await.unwrap();
        assert_same(&m, &std::fs::symlink_metadata(&file).unwrap(), "lstat file");

        let open = File::open(&file).await.unwrap();
        let m = open.metadata().await.unwrap();
        assert_same(&m, &std::fs::metadata(&file).unwrap(), "File::metadata");
        open.close().await.unwrap();
    });
}

#[test]
fn errors_are_the_kinds_std_reports() {
    in_dir("fsuring-errors", |dir| async move {
        let (file, full, empty) = (dir.join("f"), dir.join("full"), dir.join("empty"));
        let missing = dir.join("missing");
        std::fs::write(&file, b"x").unwrap();
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("inside"), b"x").unwrap();
        std::fs::create_dir(&empty).unwrap();

        /// Our error kind, asserted equal to std's for the same call (a
        /// failed call changes nothing, so both see the same tree).
        macro_rules! same {
            ($ours:expr, $std:expr) => {{
                let ours = kind($ours.await);
                assert_eq!(ours, kind($std), "{}", stringify!($ours));
                ours
            }};
        }
        let nf = ErrorKind::NotFound;
        assert_eq!(
            same!(fs::metadata(&missing), std::fs::metadata(&missing)),
            nf
        );
        let through_file = file.join("x");
        same!(
            fs::metadata(&through_file),
            std::fs::metadata(&through_file)
        );
        same!(
            fs::symlink_metadata(&missing),
            std::fs::symlink_metadata(&missing)
        );
        // An error (NotADirectory) on Linux, `false` on Windows: std's.
        assert_eq!(
            fs::try_exists(&through_file).await.map_err(|e| e.kind()),
            through_file.try_exists().map_err(|e| e.kind())
        );
        assert!(!fs::try_exists(&missing).await.unwrap());

        let to = dir.join("to");
        assert_eq!(
            same!(fs::rename(&missing, &to), std::fs::rename(&missing, &to)),
            nf
        );
        // DirectoryNotEmpty on Linux, PermissionDenied on Windows: std's.
        same!(fs::rename(&empty, &full), std::fs::rename(&empty, &full));
        same!(fs::rename(&file, &empty), std::fs::rename(&file, &empty));

        assert_eq!(
            same!(fs::remove_file(&missing), std::fs::remove_file(&missing)),
            nf
        );
        same!(fs::remove_file(&empty), std::fs::remove_file(&empty));
        assert_eq!(
            same!(fs::remove_dir(&missing), std::fs::remove_dir(&missing)),
            nf
        );
        assert_eq!(
            same!(fs::remove_dir(&full), std::fs::remove_dir(&full)),
            ErrorKind::DirectoryNotEmpty
        );
        same!(fs::remove_dir(&file), std::fs::remove_dir(&file));

        assert_eq!(
            same!(fs::create_dir(&empty), std::fs::create_dir(&empty)),
            ErrorKind::AlreadyExists
        );
        let orphan = missing.join("x");
        assert_eq!(
            same!(fs::create_dir(&orphan), std::fs::create_dir(&orphan)),
            nf
        );
        let below_file = file.join("x").join("y");
        same!(
            fs::create_dir_all(&below_file),
            std::fs::create_dir_all(&below_file)
        );
        same!(fs::create_dir_all(&file), std::fs::create_dir_all(&file));

        let link = dir.join("link");
        assert_eq!(
            same!(
                fs::hard_link(&missing, &link),
                std::fs::hard_link(&missing, &link)
            ),
            nf
        );
        assert_eq!(
            same!(
                fs::hard_link(&file, &empty),
                std::fs::hard_link(&file, &empty)
            ),
            ErrorKind::AlreadyExists
        );
        same!(
            fs::hard_link(&full, &link),
            std::fs::hard_link(&full, &link)
        );
        settle().await;
    });
}

#[test]
fn embedded_nul_is_invalid_input_everywhere() {
    in_dir("fsuring-nul", |dir| async move {
        let bad = dir.join("bad\0name");
        let good = dir.join("good");
        std::fs::write(&good, b"x").unwrap();
        let invalid = ErrorKind::InvalidInput;
        assert_eq!(kind(fs::metadata(&bad).await), invalid);
        assert_eq!(kind(fs::symlink_metadata(&bad).await), invalid);
        assert_eq!(kind(fs::try_exists(&bad).await), invalid);
        assert_eq!(kind(fs::rename(&bad, &good).await), invalid);
        assert_eq!(kind(fs::rename(&good, &bad).await), invalid);
        assert_eq!(kind(fs::remove_file(&bad).await), invalid);
        assert_eq!(kind(fs::remove_dir(&bad).await), invalid);
        assert_eq!(kind(fs::create_dir(&bad).await), invalid);
        assert_eq!(kind(fs::create_dir_all(bad.join("x")).await), invalid);
        assert_eq!(kind(fs::hard_link(&good, &bad).await), invalid);
        assert_eq!(kind(fs::hard_link(&bad, &good).await), invalid);
        assert!(good.exists(), "nothing was touched");
        assert_eq!(driver_stats().in_flight, 0, "nothing was submitted");
    });
}

#[test]
fn create_dir_all_walks_up_and_back_down() {
    in_dir("fsuring-create-all", |dir| async move {
        let deep = dir.join("a").join("b").join("c").join("d");
        fs::create_dir_all(&deep).await.unwrap();
        assert!(deep.is_dir());
        // Already there (the whole path, then a prefix): success.
        fs::create_dir_all(&deep).await.unwrap();
        fs::create_dir_all(dir.join("a")).await.unwrap();
        // A trailing separator and a `.` component, as std accepts them.
        let odd = dir.join("e").join(".").join("f/");
        fs::create_dir_all(&odd).await.unwrap();
        assert!(dir.join("e").join("f").is_dir());
        // Many at once racing on shared parents all succeed.
        let shared = dir.join("s");
        let tasks: Vec<_> = (0..8)
            .map(|i| veloq::spawn(fs::create_dir_all(shared.join("t").join(format!("{i}")))))
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(std::fs::read_dir(shared.join("t")).unwrap().count(), 8);
    });
}

/// Drops `fut` after its first poll and a few turns of the driver to
/// send it off. An op on the driver must still be pending then (its
/// completion is processed only on a later turn); the pool may be done.
async fn drop_after_one_poll<F: Future>(fut: F) {
    let mut fut = Box::pin(fut);
    let first = poll_once(fut.as_mut()).await;
    assert!(first.is_pending() || !ops_expected());
    veloq::time::sleep(Duration::from_millis(2)).await;
    drop(fut);
}

#[test]
fn dropped_path_ops_leave_everything_consistent() {
    in_dir("fsuring-cancel", |dir| async move {
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, b"payload").unwrap();

        // Dropped metadata futures: the kernel may still fill their
        // buffers, which the driver keeps until it has.
        for _ in 0..32 {
            drop_after_one_poll(fs::metadata(&a)).await;
        }
        let file = File::open(&a).await.unwrap();
        for _ in 0..8 {
            drop_after_one_poll(file.metadata()).await;
        }
        // The file is closed while dropped statx ops may still name it.
        file.close().await.unwrap();
        settle().await;
        assert_eq!(fs::metadata(&a).await.unwrap().len(), 7);

        // A dropped rename either happened or did not; never half.
        drop_after_one_poll(fs::rename(&a, &b)).await;
        // On io_uring the kernel has let go once nothing is in flight; on
        // the pool the dropped call still runs, later: wait for it.
        settle().await;
        let start = Instant::now();
        while !ops_expected() && !b.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the pool never ran it"
            );
            veloq::time::sleep(Duration::from_millis(1)).await;
        }
        let (at_a, at_b) = (a.exists(), b.exists());
        assert!(at_a != at_b, "a: {at_a}, b: {at_b}");
        let now = if at_b { &b } else { &a };
        assert_eq!(fs::read(now).await.unwrap(), b"payload");

        // And the runtime goes on: every op works afterwards.
        fs::rename(now, dir.join("c")).await.unwrap();
        fs::create_dir(dir.join("d")).await.unwrap();
        fs::remove_dir(dir.join("d")).await.unwrap();
        fs::remove_file(dir.join("c")).await.unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(driver_stats().in_flight, 0);
    });
}

#[cfg(unix)]
mod unix {
    use std::path::Path;

    use super::*;

    #[test]
    fn symlinks_as_ops() {
        in_dir("fsuring-symlink", |dir| async move {
            let (target, link) = (dir.join("target"), dir.join("link"));
            std::fs::write(&target, b"abc").unwrap();
            let (op, res) = took_driver(fs::symlink("target", &link)).await;
            assert_eq!((op, res.unwrap()), (ops_expected(), ()), "symlink");
            assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("target"));

            let lstat = fs::symlink_metadata(&link).await.unwrap();
            assert!(lstat.is_symlink() && lstat.file_type().is_symlink());
            assert_same(&lstat, &std::fs::symlink_metadata(&link).unwrap(), "lstat");
            let stat = fs::metadata(&link).await.unwrap();
            assert!(stat.is_file());
            assert_same(&stat, &std::fs::metadata(&link).unwrap(), "stat link");

            // A hard link to a symbolic link links the link itself (std).
            let hard = dir.join("hard");
            fs::hard_link(&link, &hard).await.unwrap();
            assert!(fs::symlink_metadata(&hard).await.unwrap().is_symlink());

            assert_eq!(
                kind(fs::symlink("x", &link).await),
                ErrorKind::AlreadyExists
            );
            let dangling = dir.join("dangling");
            fs::symlink("nowhere", &dangling).await.unwrap();
            assert_eq!(kind(fs::metadata(&dangling).await), ErrorKind::NotFound);
            assert!(fs::symlink_metadata(&dangling).await.unwrap().is_symlink());
            let bad = dir.join("bad\0");
            assert_eq!(
                kind(fs::symlink(&bad, &hard).await),
                ErrorKind::InvalidInput
            );
            assert_eq!(kind(fs::symlink("x", &bad).await), ErrorKind::InvalidInput);
        });
    }

    #[test]
    fn special_files_report_their_type() {
        use std::os::unix::fs::FileTypeExt;
        in_dir("fsuring-special", |dir| async move {
            let null = fs::metadata("/dev/null").await.unwrap();
            assert!(null.file_type().is_char_device());
            assert_same(&null, &std::fs::metadata("/dev/null").unwrap(), "/dev/null");
            let sock = dir.join("sock");
            let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
            let m = fs::symlink_metadata(&sock).await.unwrap();
            assert!(m.file_type().is_socket() && !m.is_file());
        });
    }

    #[test]
    fn dir_builder_mode_applies_on_the_op_path() {
        use std::os::unix::fs::PermissionsExt;
        in_dir("fsuring-mode", |dir| async move {
            let d = dir.join("m").join("n");
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .await
                .unwrap();
            for p in [dir.join("m"), d] {
                let mode = fs::metadata(&p).await.unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o700, "{p:?}");
            }
        });
    }
}
