//! Unix signals as streams: [`signal`] returns a [`Signal`] whose
//! [`recv`](Signal::recv) completes once per delivery of a [`SignalKind`].
//!
//! ```no_run
//! use veloq::signal::unix::{signal, SignalKind};
//!
//! veloq::block_on(async {
//!     let mut hangups = signal(SignalKind::hangup()).unwrap();
//!     while hangups.recv().await.is_some() {
//!         println!("SIGHUP: reloading the configuration");
//!     }
//! });
//! ```
//!
//! How the handler, the self-pipe and the dispatcher thread fit together is
//! described in the [parent module](super).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use super::registry::{Listener, Registry};

/// Signal numbers with a counter: 1 to 64 covers Linux's real-time range
/// (`SIGRTMAX` is 64) and every other Unix's signals.
const SLOTS: usize = 65;

/// Signals no handler may be installed for: `SIGKILL` and `SIGSTOP` cannot
/// be caught, and returning from a handler for a synchronous fault
/// (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`) re-runs the faulting
/// instruction forever.
const FORBIDDEN: [c_int; 6] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
];

/// Deliveries per signal number not yet taken by the dispatcher thread.
/// Bumped by the signal handler (lock-free atomics are async-signal-safe).
static PENDING: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// The write end of the self-pipe; -1 until the dispatcher thread runs.
/// Never closed once set, so the handler may use it at any time.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// Listeners by signal number.
static REGISTRY: Registry = Registry::new();

/// One-time setup, serialised: the dispatcher thread and which signal
/// numbers have a handler installed.
static SETUP: Mutex<Setup> = Mutex::new(Setup {
    dispatcher: false,
    installed: [false; SLOTS],
});

struct Setup {
    dispatcher: bool,
    installed: [bool; SLOTS],
}

/// A kind of Unix signal: a signal number.
///
/// The named constructors cover the usual signals; [`from_raw`] takes any
/// number (e.g. a real-time signal).
///
/// ```
/// use veloq::signal::unix::SignalKind;
///
/// assert_eq!(SignalKind::terminate(), SignalKind::from_raw(libc::SIGTERM));
/// assert_eq!(SignalKind::hangup().as_raw_value(), libc::SIGHUP);
/// ```
///
/// [`from_raw`]: SignalKind::from_raw
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignalKind(c_int);

/// One named constructor per common signal, each with its doc example.
macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident => $sig:ident;)*) => {
        $(
            $(#[$doc])*
            ///
            /// ```
            /// use veloq::signal::unix::SignalKind;
            ///
            #[doc = concat!(
                "assert_eq!(SignalKind::", stringify!($name),
                "().as_raw_value(), libc::", stringify!($sig), ");"
            )]
            /// ```
            pub const fn $name() -> SignalKind {
                SignalKind(libc::$sig)
            }
        )*
    };
}

impl SignalKind {
    /// The kind for signal number `signum`, which [`signal`] checks.
    ///
    /// ```
    /// use veloq::signal::unix::SignalKind;
    ///
    /// let kind = SignalKind::from_raw(libc::SIGUSR1);
    /// assert_eq!(kind, SignalKind::user_defined1());
    /// assert_eq!(kind.as_raw_value(), libc::SIGUSR1);
    /// ```
    pub const fn from_raw(signum: c_int) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal number.
    ///
    /// ```
    /// use veloq::signal::unix::SignalKind;
    ///
    /// assert_eq!(SignalKind::interrupt().as_raw_value(), libc::SIGINT);
    /// ```
    pub const fn as_raw_value(&self) -> c_int {
        self.0
    }

    kinds! {
        /// `SIGALRM`: a timer set with `alarm` or `setitimer` expired.
        alarm => SIGALRM;
        /// `SIGCHLD`: a child process stopped or ended.
        child => SIGCHLD;
        /// `SIGHUP`: the terminal hung up; daemons take it as "reload".
        hangup => SIGHUP;
        /// `SIGINT`: Ctrl-C at the terminal.
        interrupt => SIGINT;
        /// `SIGIO`: a descriptor set up for signal-driven I/O is ready.
        io => SIGIO;
        /// `SIGPIPE`: a write to a pipe or socket with no reader.
        pipe => SIGPIPE;
        /// `SIGQUIT`: Ctrl-\ at the terminal.
        quit => SIGQUIT;
        /// `SIGTERM`: a polite request to end (what `kill` sends).
        terminate => SIGTERM;
        /// `SIGUSR1`: user-defined.
        user_defined1 => SIGUSR1;
        /// `SIGUSR2`: user-defined.
        user_defined2 => SIGUSR2;
        /// `SIGWINCH`: the terminal window changed size.
        window_change => SIGWINCH;
    }
}

impl From<c_int> for SignalKind {
    /// Same as [`SignalKind::from_raw`].
    ///
    /// ```
    /// use veloq::signal::unix::SignalKind;
    ///
    /// assert_eq!(SignalKind::from(libc::SIGQUIT), SignalKind::quit());
    /// ```
    fn from(signum: c_int) -> SignalKind {
        SignalKind(signum)
    }
}

impl From<SignalKind> for c_int {
    /// Same as [`SignalKind::as_raw_value`].
    ///
    /// ```
    /// use veloq::signal::unix::SignalKind;
    ///
    /// assert_eq!(libc::c_int::from(SignalKind::child()), libc::SIGCHLD);
    /// ```
    fn from(kind: SignalKind) -> c_int {
        kind.0
    }
}

/// A stream of deliveries of one signal, from [`signal`].
///
/// Every `Signal` for a signal number sees every delivery; dropping one
/// unregisters it (the process-wide handler stays installed).
///
/// ```no_run
/// use veloq::signal::unix::{signal, SignalKind};
///
/// veloq::block_on(async {
///     let mut term = signal(SignalKind::terminate()).unwrap();
///     term.recv().await;
///     println!("SIGTERM: shutting down");
/// });
/// ```
#[must_use = "a Signal does nothing unless `recv` is awaited"]
pub struct Signal {
    kind: SignalKind,
    listener: Listener,
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("kind", &self.kind).finish()
    }
}

impl Signal {
    /// Waits for the next delivery of the signal.
    ///
    /// Returns at once if a delivery arrived since the last `recv`.
    /// Always resolves to `Some(())`: the `Option` keeps tokio's shape,
    /// but this stream never ends. Cancel-safe: dropping the future loses
    /// no delivery.
    ///
    /// ```
    /// use veloq::signal::unix::{signal, SignalKind};
    ///
    /// veloq::block_on(async {
    ///     let mut usr1 = signal(SignalKind::user_defined1()).unwrap();
    ///     // SAFETY: raise only sends a signal to this thread, whose
    ///     // handler `signal` has just installed.
    ///     unsafe { libc::raise(libc::SIGUSR1) };
    ///     assert_eq!(usr1.recv().await, Some(()));
    /// });
    /// ```
    pub async fn recv(&mut self) -> Option<()> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery: the building block of [`recv`] for
    /// hand-written futures and streams. Only the waker of the last call
    /// that returned `Pending` is woken.
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use veloq::signal::unix::{signal, SignalKind};
    ///
    /// let mut usr2 = signal(SignalKind::user_defined2()).unwrap();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert_eq!(usr2.poll_recv(&mut cx), Poll::Pending);
    /// ```
    ///
    /// [`recv`]: Signal::recv
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.listener.poll_recv(cx).map(Some)
    }
}

/// Starts listening for `kind`: from this call on, every delivery of the
/// signal to the process is counted for the returned [`Signal`].
///
/// The first call for a signal number installs a handler for it that stays
/// for the life of the process (so, e.g., `SIGINT` no longer ends the
/// program once asked for). Does not need a runtime.
///
/// # Errors
///
/// `InvalidInput` for `SIGKILL`, `SIGSTOP`, `SIGSEGV`, `SIGBUS`, `SIGILL`
/// and `SIGFPE` (which cannot be caught, or must not be returned from), for
/// numbers that are no signal, and whatever `sigaction` or starting the
/// dispatcher thread reports.
///
/// ```
/// use std::io::ErrorKind;
/// use veloq::signal::unix::{signal, SignalKind};
///
/// veloq::block_on(async {
///     let mut winch = signal(SignalKind::window_change()).unwrap();
///     // SAFETY: raise only sends a signal to this thread, whose handler
///     // `signal` has just installed.
///     unsafe { libc::raise(libc::SIGWINCH) };
///     winch.recv().await;
///
///     let err = signal(SignalKind::from_raw(libc::SIGKILL)).unwrap_err();
///     assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// });
/// ```
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let signum = kind.0;
    if FORBIDDEN.contains(&signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signum} cannot be listened for (it cannot be caught safely)"),
        ));
    }
    let slot = match usize::try_from(signum) {
        Ok(slot @ 1..SLOTS) => slot,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{signum} is not a signal number"),
            ))
        }
    };
    let mut setup = SETUP.lock().unwrap_or_else(PoisonError::into_inner);
    if !setup.dispatcher {
        start_dispatcher()?;
        setup.dispatcher = true;
    }
    // Registered before the handler goes in: a delivery between the two
    // is then counted rather than missed.
    let listener = REGISTRY.register(slot);
    if !setup.installed[slot] {
        install_handler(signum)?;
        setup.installed[slot] = true;
    }
    Ok(Signal { kind, listener })
}

/// Installs [`on_signal`] for `signum`.
fn install_handler(signum: c_int) -> io::Result<()> {
    // SAFETY: `sigaction` is a plain C struct for which all-zero bytes are
    // a valid value (no flags, empty mask, SIG_DFL); the fields that matter
    // are set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
    // Without SA_SIGINFO the handler takes just the signal number.
    // SA_RESTART: system calls the signal interrupts in other code resume
    // instead of failing with EINTR.
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa_mask` is a valid, exclusively borrowed sigset_t.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and outlives the call; the old
    // action is not asked for (null). `on_signal` is async-signal-safe.
    if unsafe { libc::sigaction(signum, &action, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The signal handler: counts the delivery and wakes the dispatcher thread.
/// Only async-signal-safe work: atomics and `write(2)`; errno is preserved
/// for the code the signal interrupted.
extern "C" fn on_signal(signum: c_int) {
    let saved = errno::get();
    if let Some(count) = usize::try_from(signum).ok().and_then(|i| PENDING.get(i)) {
        // Bumped before the byte is written, so the dispatcher, woken by
        // the byte, finds the count.
        count.fetch_add(1, Ordering::AcqRel);
    }
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd >= 0 {
        let byte = 0u8;
        // SAFETY: `write` is async-signal-safe; `fd` is the self-pipe's
        // write end, which is never closed once published, and `byte` is a
        // valid one-byte buffer. A full pipe (EAGAIN) is fine: unread bytes
        // mean the dispatcher will wake and take the counter anyway.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    errno::set(saved);
}

/// Creates the self-pipe and starts the `veloq-signal` thread, then
/// publishes the pipe's write end for the handler.
fn start_dispatcher() -> io::Result<()> {
    let (read, write) = self_pipe()?;
    std::thread::Builder::new()
        .name("veloq-signal".into())
        .spawn(move || dispatch(read))?;
    // Kept open for the rest of the process: the handler may run at any
    // moment, so the descriptor must never be closed (or reused).
    WAKE_FD.store(write.as_raw_fd(), Ordering::Release);
    std::mem::forget(write);
    Ok(())
}

/// The dispatcher thread: sleeps in `read` on the self-pipe and, on every
/// wake, hands each signal's count to its listeners.
fn dispatch(read: OwnedFd) {
    let mut buf = [0u8; 128];
    loop {
        // SAFETY: `read` is an open descriptor this thread owns; `buf` is
        // a valid, writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Cannot happen with a valid blocking pipe; nothing to retry.
            return;
        }
        if n == 0 {
            // End of file: impossible, the write end is never closed.
            return;
        }
        // The bytes carry no information; the counters do. Taking every
        // counter after the read sees each delivery whose byte was read.
        for (signum, count) in PENDING.iter().enumerate() {
            let n = count.swap(0, Ordering::AcqRel);
            if n > 0 {
                REGISTRY.broadcast(signum, n);
            }
        }
    }
}

/// A close-on-exec pipe whose write end does not block (the handler must
/// never block) and whose read end does (the dispatcher sleeps on it).
fn self_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pipe` succeeded, so both are open descriptors owned by
    // nobody else; the `OwnedFd`s close them on every error path below.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&read, &write] {
        set_flag(fd, libc::F_GETFD, libc::F_SETFD, libc::FD_CLOEXEC)?;
    }
    set_flag(&write, libc::F_GETFL, libc::F_SETFL, libc::O_NONBLOCK)?;
    Ok((read, write))
}

/// Adds `flag` to a descriptor's flags (`get`/`set` select the fd or the
/// status flags).
fn set_flag(fd: &OwnedFd, get: c_int, set: c_int, flag: c_int) -> io::Result<()> {
    // SAFETY: `fd` is open; F_GETFD/F_GETFL take no argument.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), get) };
    // SAFETY: `fd` is open; F_SETFD/F_SETFL take an int.
    if flags < 0 || unsafe { libc::fcntl(fd.as_raw_fd(), set, flags | flag) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Saving and restoring `errno` around the handler: `write` may set it
/// (EAGAIN on a full pipe) under the feet of the interrupted code.
mod errno {
    use std::os::raw::c_int;

    /// Where the calling thread's errno lives, on the systems whose libc
    /// exports that; elsewhere errno is not preserved (only a failed write,
    /// on a full pipe, changes it).
    #[allow(unreachable_code)]
    fn location() -> Option<*mut c_int> {
        #[cfg(any(target_os = "linux", target_os = "hurd"))]
        // SAFETY: returns the calling thread's errno address; no preconditions.
        return Some(unsafe { libc::__errno_location() });
        #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
        // SAFETY: as above.
        return Some(unsafe { libc::__errno() });
        #[cfg(any(
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "dragonfly"
        ))]
        // SAFETY: as above.
        return Some(unsafe { libc::__error() });
        None
    }

    pub(super) fn get() -> c_int {
        // SAFETY: the calling thread's errno is valid to read.
        location().map_or(0, |p| unsafe { *p })
    }

    pub(super) fn set(value: c_int) {
        if let Some(p) = location() {
            // SAFETY: the calling thread's errno is valid to write.
            unsafe { *p = value };
        }
    }
}
