//! Listing a directory: [`read_dir`] and its stream of [`DirEntry`]s.
//!
//! The entries come from `std::fs::ReadDir` on the crate's blocking pool,
//! [`BATCH`] at a time: one pool trip per batch, not per entry. Opening
//! the directory and reading the first batch share a trip, so a small
//! directory is listed in one.
//!
//! # Invariants
//!
//! - The std iterator is owned by exactly one place at a time: the
//!   [`ReadDir`] while idle, or the pool job (and then the pending trip's
//!   future) while a batch is read. Dropping a pending trip drops the
//!   iterator with it, after the job finishes.
//! - A trip in progress is kept in the `ReadDir`, so a `next_entry` future
//!   dropped mid-trip loses no entries: the next call picks the same trip
//!   up (the stream is cancel-safe).
//! - Entries come out in the order std yields them, errors in place.

use super::{FileType, Metadata};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::runtime::blocking;

/// Entries read per pool trip.
const BATCH: usize = 32;

/// What one pool trip hands back: the iterator (`None` once it ended) and
/// the entries read.
struct Batch {
    iter: Option<Box<std::fs::ReadDir>>,
    entries: VecDeque<io::Result<DirEntry>>,
}

type Trip = Pin<Box<dyn Future<Output = Batch> + Send>>;

enum State {
    /// Holding the iterator between trips; `None` once it ended. Boxed:
    /// std's is large on Windows (it holds a whole find record).
    Idle(Option<Box<std::fs::ReadDir>>),
    /// A trip to the pool in progress.
    Pending(Trip),
}

/// Returns a stream of the entries of the directory `path` (without `.`
/// and `..`, in no particular order).
///
/// # Errors
///
/// `NotFound` if `path` does not exist, and the system's other errors
/// (a file at `path` is one). Errors reading an entry come from
/// [`ReadDir::next_entry`].
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-read-dir-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir_all(dir.join("sub")).await?;
///     veloq::fs::write(dir.join("file"), b"x").await?;
///     let mut names = Vec::new();
///     let mut entries = veloq::fs::read_dir(&dir).await?;
///     while let Some(entry) = entries.next_entry().await? {
///         names.push(entry.file_name());
///     }
///     names.sort();
///     assert_eq!(names, ["file", "sub"]);
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref().to_owned();
    let batch =
        blocking::run(move || std::fs::read_dir(path).map(|iter| next_batch(Box::new(iter))))
            .await?;
    Ok(ReadDir {
        buffered: batch.entries,
        state: State::Idle(batch.iter),
    })
}

/// Reads up to [`BATCH`] entries from `iter` (on a pool thread), with
/// each entry's file type, which the system usually reports with the
/// entry itself.
fn next_batch(mut iter: Box<std::fs::ReadDir>) -> Batch {
    let mut entries = VecDeque::with_capacity(BATCH);
    while entries.len() < BATCH {
        match iter.next() {
            Some(Ok(std)) => {
                let file_type = std.file_type().ok().map(FileType::from);
                entries.push_back(Ok(DirEntry {
                    std: Arc::new(std),
                    file_type,
                }));
            }
            Some(Err(e)) => entries.push_back(Err(e)),
            None => {
                return Batch {
                    iter: None,
                    entries,
                }
            }
        }
    }
    Batch {
        iter: Some(iter),
        entries,
    }
}

/// The entries of a directory, from [`read_dir`].
///
/// Read them with [`next_entry`](Self::next_entry); see the module docs
/// for how they are fetched. Dropping a `ReadDir` closes the directory
/// (on the pool thread, if a batch is being read then).
pub struct ReadDir {
    buffered: VecDeque<io::Result<DirEntry>>,
    state: State,
}

impl ReadDir {
    /// The next entry, or `None` after the last.
    ///
    /// Cancel-safe: if the future is dropped before it completes, no entry
    /// is lost; the next call returns it.
    ///
    /// # Errors
    ///
    /// What the system reports reading the directory; entries after an
    /// error may still follow.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let dir = std::env::temp_dir().join(format!("veloq-doc-next-entry-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// veloq::block_on(async {
    ///     veloq::fs::create_dir(&dir).await?;
    ///     for i in 0..100 {
    ///         veloq::fs::write(dir.join(format!("f{i}")), b"").await?;
    ///     }
    ///     let mut entries = veloq::fs::read_dir(&dir).await?;
    ///     let mut count = 0;
    ///     while let Some(entry) = entries.next_entry().await? {
    ///         assert!(entry.file_type().await?.is_file());
    ///         count += 1;
    ///     }
    ///     assert_eq!(count, 100);
    ///     veloq::fs::remove_dir_all(&dir).await
    /// })
    /// # }
    /// ```
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        poll_fn(|cx| self.poll_next_entry(cx)).await
    }

    /// Polls for the next entry: `Ready(Ok(None))` after the last. The
    /// waker of the latest poll is woken when a pending batch arrives.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let dir = std::env::temp_dir().join(format!("veloq-doc-poll-next-entry-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// veloq::block_on(async {
    ///     veloq::fs::create_dir(&dir).await?;
    ///     let mut entries = veloq::fs::read_dir(&dir).await?;
    ///     let next = std::future::poll_fn(|cx| entries.poll_next_entry(cx)).await?;
    ///     assert!(next.is_none());
    ///     veloq::fs::remove_dir(&dir).await
    /// })
    /// # }
    /// ```
    pub fn poll_next_entry(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<DirEntry>>> {
        loop {
            if let Some(entry) = self.buffered.pop_front() {
                return Poll::Ready(entry.map(Some));
            }
            match &mut self.state {
                State::Idle(None) => return Poll::Ready(Ok(None)),
                State::Idle(iter) => {
                    let iter = iter.take().expect("matched Some above");
                    self.state = State::Pending(Box::pin(blocking::run(move || next_batch(iter))));
                }
                State::Pending(trip) => {
                    let batch = match trip.as_mut().poll(cx) {
                        Poll::Ready(batch) => batch,
                        Poll::Pending => return Poll::Pending,
                    };
                    self.buffered = batch.entries;
                    self.state = State::Idle(batch.iter);
                }
            }
        }
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Idle(Some(_)) => "idle",
            State::Idle(None) => "ended",
            State::Pending(_) => "reading",
        };
        f.debug_struct("ReadDir")
            .field("buffered", &self.buffered.len())
            .field("state", &state)
            .finish()
    }
}

/// One entry of a directory, from [`ReadDir::next_entry`].
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("veloq-doc-dir-entry-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// veloq::block_on(async {
///     veloq::fs::create_dir(&dir).await?;
///     veloq::fs::write(dir.join("data"), b"12345").await?;
///     let entry = veloq::fs::read_dir(&dir).await?.next_entry().await?.unwrap();
///     assert_eq!(entry.file_name(), "data");
///     assert_eq!(entry.path(), dir.join("data"));
///     assert!(entry.file_type().await?.is_file());
///     assert_eq!(entry.metadata().await?.len(), 5);
///     veloq::fs::remove_dir_all(&dir).await
/// })
/// # }
/// ```
pub struct DirEntry {
    /// Shared so that a pool trip for metadata can hold it.
    std: Arc<std::fs::DirEntry>,
    /// Read with the entry; `None` if that failed (asked again on demand).
    file_type: Option<FileType>,
}

impl DirEntry {
    /// The full path: the directory given to [`read_dir`] joined with the
    /// entry's name.
    pub fn path(&self) -> PathBuf {
        self.std.path()
    }

    /// The entry's name, without any directory.
    pub fn file_name(&self) -> OsString {
        self.std.file_name()
    }

    /// The entry's inode number (from the directory listing; no system
    /// call).
    #[cfg(unix)]
    pub fn ino(&self) -> u64 {
        use std::os::unix::fs::DirEntryExt;
        self.std.ino()
    }

    /// The entry's metadata, not following a symbolic link (as
    /// [`symlink_metadata`](super::symlink_metadata) on its path).
    ///
    /// # Errors
    ///
    /// `NotFound` if the entry was removed since it was listed, and the
    /// system's other errors.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let std = self.std.clone();
        blocking::run(move || std.metadata().map(Metadata::from)).await
    }

    /// The entry's file type, not following a symbolic link. Usually
    /// known from the listing itself, and then returned at once.
    ///
    /// # Errors
    ///
    /// As [`metadata`](Self::metadata), when the type has to be asked for.
    pub async fn file_type(&self) -> io::Result<FileType> {
        if let Some(file_type) = self.file_type {
            return Ok(file_type);
        }
        let std = self.std.clone();
        blocking::run(move || std.file_type().map(FileType::from)).await
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DirEntry").field(&self.path()).finish()
    }
}
