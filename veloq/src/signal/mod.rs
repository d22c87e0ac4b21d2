//! Signals: [`ctrl_c`] everywhere, `unix::signal` streams on Unix and the
//! console control events of `windows` (`ctrl_c`, `ctrl_break`, ...) on
//! Windows. Each platform module exists only on its platform.
//!
//! ```no_run
//! veloq::block_on(async {
//!     println!("press Ctrl-C to stop");
//!     veloq::signal::ctrl_c().await.unwrap();
//!     println!("stopping");
//! });
//! ```
//!
//! # How delivery works
//!
//! Signal delivery does not go through the I/O driver, so it works the same
//! on io_uring, epoll and IOCP, and a listener can be polled by any
//! executor (its waker is woken from another thread, which every `Waker`
//! allows).
//!
//! - **Unix.** The first time a signal number is asked for, a process-wide
//!   `sigaction` handler is installed for it (`SA_RESTART`) and stays
//!   installed for the life of the process. The handler does only what is
//!   async-signal-safe: it bumps an atomic counter for its signal number and
//!   writes one byte to a non-blocking pipe. One process-wide thread
//!   (`veloq-signal`) blocks reading that pipe; each time it wakes it takes
//!   every counter and hands the counts to the listeners of that signal.
//!   A full pipe loses no signal: the counter is bumped before the write,
//!   and unread bytes guarantee the thread wakes and reads the counters.
//! - **Windows.** One `SetConsoleCtrlHandler` routine, installed the first
//!   time a console event is asked for. Windows runs it on a thread of its
//!   own, which hands the event to the listeners directly. It returns `TRUE`
//!   (handled) only when the event has a listener, so without one the
//!   default action (ending the process) still happens.
//!
//! A listener (`unix::Signal`, `windows::CtrlC`, ...) keeps a count of
//! deliveries it has not yet received and the waker of the task waiting in
//! `recv`. Every listener of a signal sees every delivery, and none is lost
//! between two `recv`s: a signal that arrives while nobody waits is counted
//! and returned by the next `recv`. As with tokio, deliveries may coalesce
//! (the operating system itself merges a standard signal that arrives while
//! the same one is still pending), so several deliveries between two
//! `recv`s yield at least one `recv`, possibly fewer than were sent. A
//! listener counts from its creation on; it may also see a delivery that
//! arrived just before it was created but had not been handed out yet.
//!
//! On Unix, installing a handler is permanent for the process: once a
//! program has asked for `SIGINT`, Ctrl-C no longer ends it, even after
//! every listener is dropped, and a handler installed by other code for
//! that signal is replaced (veloq does not call it). On Windows the routine
//! declines events that have no listener, so Ctrl-C ends the program again
//! once the last listener is gone.

use std::future::Future;
use std::io;

mod registry;

#[cfg(unix)]
pub mod unix;

#[cfg(windows)]
pub mod windows;

/// Completes at the first Ctrl-C (`SIGINT` on Unix, `CTRL_C_EVENT` on
/// Windows) after this call.
///
/// The listener is registered when `ctrl_c` is called, not when the future
/// is first polled: a Ctrl-C between the call and the first poll is not
/// lost. Errors if the handler could not be installed. On Unix the first
/// call installs a `SIGINT` handler that stays for the life of the
/// process, so from then on Ctrl-C no longer ends the program by itself
/// (see the [module docs](self)).
///
/// ```no_run
/// use std::time::Duration;
///
/// veloq::block_on(async {
///     let stop = veloq::signal::ctrl_c(); // listening from here on
///     let work = veloq::spawn(async {
///         loop {
///             veloq::time::sleep(Duration::from_secs(1)).await;
///             println!("working");
///         }
///     });
///     stop.await.unwrap();
///     work.abort();
/// });
/// ```
pub fn ctrl_c() -> impl Future<Output = io::Result<()>> + Send + 'static {
    #[cfg(unix)]
    let listener = unix::signal(unix::SignalKind::interrupt());
    #[cfg(windows)]
    let listener = windows::ctrl_c();
    async move {
        let mut listener = listener?;
        listener.recv().await;
        Ok(())
    }
}
