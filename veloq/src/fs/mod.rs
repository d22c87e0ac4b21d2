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

mod file;
mod open_options;

pub use file::File;
pub use open_options::OpenOptions;
