//! [`OpenOptions`]: how a file is opened, checked once here so every
//! driver receives a consistent set of flags.

use std::io;
use std::path::Path;

use super::File;
use crate::io::driver::op_registry::CancelHook;
use crate::io::driver::KeepAlive;
use crate::io::op::{Op, OpOutput, Open, OpenFlags};

/// Permission bits of a newly created file on Unix, before the umask.
const DEFAULT_MODE: u32 = 0o666;

/// Options for opening a file, as in `std::fs::OpenOptions`.
///
/// ```no_run
/// use veloq::fs::OpenOptions;
///
/// async fn append_line() -> std::io::Result<()> {
///     let file = OpenOptions::new().append(true).create(true).open("log.txt").await?;
///     let (res, _) = file.write_all_at(b"line\n".to_vec(), 0).await;
///     res?;
///     file.close().await
/// }
///
/// veloq::block_on(append_line()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    flags: OpenFlags,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// All options off.
    pub fn new() -> OpenOptions {
        OpenOptions {
            flags: OpenFlags {
                mode: DEFAULT_MODE,
                ..OpenFlags::default()
            },
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.flags.read = read;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.flags.write = write;
        self
    }

    /// Open for appending (implies writing). Positional writes still go
    /// where the platform puts appended data: at the end on Linux.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.flags.append = append;
        self
    }

    /// Truncate an existing file to length 0 (needs `write`).
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.flags.truncate = truncate;
        self
    }

    /// Create the file if it does not exist (needs `write` or `append`).
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.flags.create = create;
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists (needs
    /// `write` or `append`); `create` and `truncate` are then ignored.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.flags.create_new = create_new;
        self
    }

    /// Opens `path` with these options.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an inconsistent set of options (no access mode;
    /// `truncate`, `create` or `create_new` without `write`/`append`;
    /// `truncate` with `append`), and the system's error otherwise
    /// (`NotFound`, `AlreadyExists`, `PermissionDenied`, ...).
    ///
    /// # Panics
    ///
    /// Outside a veloq runtime.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let flags = self.checked()?;
        let desc = Open {
            path: path.as_ref().to_path_buf(),
            flags,
        };
        let (out, ()) = Op::submit_with(desc, (), close_orphaned_open).await;
        let fd = out.res?;
        // SAFETY: a successful `Open` hands us a new handle that nothing
        // else owns; the driver keeps no reference to it.
        unsafe { File::from_opened(fd as crate::sys::RawFd) }
    }

    /// The flags, normalised, or `InvalidInput` for a combination std's
    /// `OpenOptions` would also refuse.
    fn checked(&self) -> io::Result<OpenFlags> {
        self.flags.validate()
    }
}

/// The hook of an open whose future was dropped: nobody will take the
/// handle it may have opened, so it is closed.
struct OrphanOpen;

impl CancelHook for OrphanOpen {
    fn completed(self: Box<Self>, out: OpOutput) {
        if let Ok(fd) = out.res {
            // SAFETY: a successful `Open` created this handle for the op
            // alone, and its future is gone; this closes it once.
            drop(unsafe { crate::sys::file_from_raw(fd as crate::sys::RawFd) });
        }
    }
}

/// [`Orphan`](crate::io::op::Orphan) of an open.
fn close_orphaned_open((): ()) -> KeepAlive {
    Box::new(OrphanOpen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inconsistent_options_are_invalid_input() {
        let cases: [&dyn Fn(&mut OpenOptions) -> &mut OpenOptions; 4] = [
            &|o| o,
            &|o| o.read(true).truncate(true),
            &|o| o.read(true).create(true),
            &|o| o.append(true).truncate(true),
        ];
        for (i, c) in cases.iter().enumerate() {
            let mut o = OpenOptions::new();
            let err = c(&mut o).checked().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "case {i}");
        }
    }

    #[test]
    fn create_new_overrides_create_and_truncate() {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .create_new(true)
            .checked()
            .unwrap();
        assert!(f.create_new && !f.create && !f.truncate && f.write);
        assert_eq!(f.mode, DEFAULT_MODE);
    }

    #[test]
    fn plain_modes_pass() {
        assert!(OpenOptions::new().read(true).checked().is_ok());
        assert!(OpenOptions::new()
            .append(true)
            .create(true)
            .checked()
            .is_ok());
        assert!(OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .checked()
            .is_ok());
    }
}
