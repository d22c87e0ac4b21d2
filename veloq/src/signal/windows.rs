//! Windows console control events: [`ctrl_c`], [`ctrl_break`],
//! [`ctrl_close`], [`ctrl_logoff`] and [`ctrl_shutdown`], each a stream of
//! deliveries like tokio's.
//!
//! ```no_run
//! veloq::block_on(async {
//!     let mut breaks = veloq::signal::windows::ctrl_break().unwrap();
//!     while breaks.recv().await.is_some() {
//!         println!("Ctrl-Break: dumping statistics");
//!     }
//! });
//! ```
//!
//! One `SetConsoleCtrlHandler` routine serves them all; see the
//! [parent module](super) for how events reach the listeners.

use std::fmt;
use std::io;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use windows_sys::core::BOOL;
use windows_sys::Win32::Foundation::{FALSE, TRUE};
use windows_sys::Win32::System::Console::{
    SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT, CTRL_LOGOFF_EVENT,
    CTRL_SHUTDOWN_EVENT,
};

use super::registry::{Listener, Registry};

/// Listeners by console control type (`CTRL_C_EVENT` ...).
static REGISTRY: Registry = Registry::new();

/// Whether [`on_ctrl`] is installed; the lock serialises installing it.
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Registers a listener for control type `ctrl`, installing the handler
/// routine on first use.
fn listen(ctrl: u32) -> io::Result<Listener> {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    // Registered first: an event between the two is counted, not missed.
    let listener = REGISTRY.register(ctrl as usize);
    if !*installed {
        let routine: unsafe extern "system" fn(u32) -> BOOL = on_ctrl;
        // SAFETY: `on_ctrl` has the signature of a HandlerRoutine and, being
        // a plain function, stays valid for the life of the process.
        if unsafe { SetConsoleCtrlHandler(Some(routine), TRUE) } == FALSE {
            return Err(io::Error::last_os_error());
        }
        *installed = true;
    }
    Ok(listener)
}

/// The console control handler. Windows calls it on a thread of its own,
/// so it may take locks and wake wakers (the registry contains panics:
/// none unwinds out of this `extern` function).
extern "system" fn on_ctrl(ctrl: u32) -> BOOL {
    deliver(ctrl)
}

/// Hands event `ctrl` to its listeners; `FALSE` when it has none, so the
/// next handler (ultimately the default one, which ends the process) runs.
fn deliver(ctrl: u32) -> BOOL {
    if !REGISTRY.broadcast(ctrl as usize, 1) {
        return FALSE;
    }
    if matches!(
        ctrl,
        CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT
    ) {
        // For these the system ends the process as soon as the handler
        // returns, whatever it returns. Not returning gives the listeners
        // the grace period the system allows (a few seconds) to shut down
        // cleanly; the process's exit ends this thread with it.
        loop {
            std::thread::park();
        }
    }
    TRUE
}

/// Delivers console event `ctrl` as the system's handler thread would, for
/// veloq's own tests: Wine 8.0 cannot generate `CTRL_BREAK_EVENT`
/// (`GenerateConsoleCtrlEvent` fails with `ERROR_INVALID_HANDLE`, while
/// `CTRL_C_EVENT` works), so the Ctrl-Break path is tested through this.
/// Returns whether a listener took the event. Never call it with
/// `CTRL_CLOSE_EVENT`, `CTRL_LOGOFF_EVENT` or `CTRL_SHUTDOWN_EVENT` while
/// they have a listener: it would not return.
#[doc(hidden)]
pub fn __deliver_console_event(ctrl: u32) -> bool {
    deliver(ctrl) == TRUE
}

/// One listener type and constructor per console control event.
macro_rules! events {
    ($(
        $(#[$type_doc:meta])*
        $ty:ident;
        $(#[$fn_doc:meta])*
        fn $ctor:ident => $ctrl:ident;
    )*) => {$(
        $(#[$type_doc])*
        #[must_use = "a listener does nothing unless `recv` is awaited"]
        pub struct $ty {
            listener: Listener,
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        }

        impl $ty {
            /// Waits for the next event.
            ///
            /// Returns at once if one arrived since the last `recv`. Always
            /// `Some(())`: the `Option` keeps tokio's shape, but the stream
            /// never ends. Cancel-safe: dropping the future loses no event.
            ///
            /// ```no_run
            #[doc = concat!("let mut events = veloq::signal::windows::", stringify!($ctor), "().unwrap();")]
            /// veloq::block_on(async move {
            ///     events.recv().await;
            ///     println!("got it");
            /// });
            /// ```
            pub async fn recv(&mut self) -> Option<()> {
                std::future::poll_fn(|cx| self.poll_recv(cx)).await
            }

            /// Polls for the next event: the building block of `recv` for
            /// hand-written futures. Only the waker of the last call that
            /// returned `Pending` is woken.
            ///
            /// ```no_run
            /// use std::task::{Context, Poll, Waker};
            ///
            #[doc = concat!("let mut events = veloq::signal::windows::", stringify!($ctor), "().unwrap();")]
            /// let mut cx = Context::from_waker(Waker::noop());
            /// assert_eq!(events.poll_recv(&mut cx), Poll::Pending);
            /// ```
            pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
                self.listener.poll_recv(cx).map(Some)
            }
        }

        $(#[$fn_doc])*
        ///
        /// The first call for any console event installs veloq's handler
        /// routine, which stays for the life of the process. Errors if
        /// `SetConsoleCtrlHandler` fails. Does not need a runtime.
        ///
        /// ```no_run
        /// veloq::block_on(async {
        #[doc = concat!("    let mut events = veloq::signal::windows::", stringify!($ctor), "().unwrap();")]
        ///     events.recv().await;
        /// });
        /// ```
        pub fn $ctor() -> io::Result<$ty> {
            Ok($ty { listener: listen($ctrl)? })
        }
    )*};
}

events! {
    /// A stream of Ctrl-C events (`CTRL_C_EVENT`), from [`ctrl_c`].
    CtrlC;
    /// Starts listening for Ctrl-C (`CTRL_C_EVENT`). While a listener
    /// exists, Ctrl-C no longer ends the process.
    fn ctrl_c => CTRL_C_EVENT;

    /// A stream of Ctrl-Break events (`CTRL_BREAK_EVENT`), from
    /// [`ctrl_break`].
    CtrlBreak;
    /// Starts listening for Ctrl-Break (`CTRL_BREAK_EVENT`). While a
    /// listener exists, Ctrl-Break no longer ends the process.
    fn ctrl_break => CTRL_BREAK_EVENT;

    /// A stream of console-closing events (`CTRL_CLOSE_EVENT`), from
    /// [`ctrl_close`].
    CtrlClose;
    /// Starts listening for the console window being closed
    /// (`CTRL_CLOSE_EVENT`). The process still ends: a listener only gets
    /// the system's grace period (a few seconds) to clean up.
    fn ctrl_close => CTRL_CLOSE_EVENT;

    /// A stream of log-off events (`CTRL_LOGOFF_EVENT`), from
    /// [`ctrl_logoff`].
    CtrlLogoff;
    /// Starts listening for the user logging off (`CTRL_LOGOFF_EVENT`;
    /// services only receive it). The process still ends after the
    /// system's grace period.
    fn ctrl_logoff => CTRL_LOGOFF_EVENT;

    /// A stream of shutdown events (`CTRL_SHUTDOWN_EVENT`), from
    /// [`ctrl_shutdown`].
    CtrlShutdown;
    /// Starts listening for system shutdown (`CTRL_SHUTDOWN_EVENT`;
    /// services only receive it). The process still ends after the
    /// system's grace period.
    fn ctrl_shutdown => CTRL_SHUTDOWN_EVENT;
}
