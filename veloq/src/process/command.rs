//! [`Command`]: a process builder (tokio's shape around
//! `std::process::Command`).

use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};

use super::Child;

/// A process builder: program, arguments, environment, working directory
/// and standard streams, then [`spawn`](Self::spawn),
/// [`status`](Self::status) or [`output`](Self::output).
///
/// The setters mirror `std::process::Command` (and tokio's); each returns
/// `&mut Command` for chaining. Spawning is std's (a quick system call, done
/// on the calling thread); waiting and the piped streams never block a
/// worker.
///
/// ```ignore-windows
/// use veloq::process::Command;
///
/// veloq::block_on(async {
///     let out = Command::new("sh").args(["-c", "echo $GREETING"]).env("GREETING", "hi").output().await?;
///     assert!(out.status.success());
///     assert_eq!(out.stdout, b"hi\n");
///     Ok::<(), std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    /// Which streams the caller set (for [`output`](Self::output)'s
    /// defaults, which std cannot tell us).
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
}

impl Command {
    /// A command that runs `program` (looked up in `PATH` when it has no
    /// path separator), with no arguments, the parent's environment and
    /// working directory, and inherited standard streams.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets several environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what
    /// [`env`](Self::env) adds afterwards).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// Sets the child's standard input (inherited by default; null for
    /// [`output`](Self::output)). [`Stdio::piped`] makes
    /// [`Child::stdin`] a [`ChildStdin`](super::ChildStdin).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// Sets the child's standard output (inherited by default; piped for
    /// [`output`](Self::output)). [`Stdio::piped`] makes
    /// [`Child::stdout`] a [`ChildStdout`](super::ChildStdout).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// Sets the child's standard error (inherited by default; piped for
    /// [`output`](Self::output)). [`Stdio::piped`] makes
    /// [`Child::stderr`] a [`ChildStderr`](super::ChildStderr).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// Whether dropping the [`Child`] (or a [`status`](Self::status) /
    /// [`output`](Self::output) future) before the process has exited
    /// kills it. Off by default: the process keeps running (and is reaped
    /// in the background once it exits).
    ///
    /// ```ignore-windows
    /// use veloq::process::Command;
    ///
    /// veloq::block_on(async {
    ///     let child = Command::new("sleep").arg("100").kill_on_drop(true).spawn()?;
    ///     drop(child); // the `sleep` is killed
    ///     Ok::<(), std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn kill_on_drop(&mut self, kill_on_drop: bool) -> &mut Command {
        self.kill_on_drop = kill_on_drop;
        self
    }

    /// Whether [`kill_on_drop`](Self::kill_on_drop) is set.
    pub fn get_kill_on_drop(&self) -> bool {
        self.kill_on_drop
    }

    /// Sets the child's user id (`setuid`).
    #[cfg(unix)]
    pub fn uid(&mut self, id: u32) -> &mut Command {
        std::os::unix::process::CommandExt::uid(&mut self.std, id);
        self
    }

    /// Sets the child's group id (`setgid`).
    #[cfg(unix)]
    pub fn gid(&mut self, id: u32) -> &mut Command {
        std::os::unix::process::CommandExt::gid(&mut self.std, id);
        self
    }

    /// Sets the child's `argv[0]` (by default the program).
    #[cfg(unix)]
    pub fn arg0(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        std::os::unix::process::CommandExt::arg0(&mut self.std, arg);
        self
    }

    /// Puts the child into process group `pgroup` (`0`: a new group named
    /// after the child).
    #[cfg(unix)]
    pub fn process_group(&mut self, pgroup: i32) -> &mut Command {
        std::os::unix::process::CommandExt::process_group(&mut self.std, pgroup);
        self
    }

    /// Sets the `CreateProcess` creation flags (e.g. `CREATE_NO_WINDOW`).
    #[cfg(windows)]
    pub fn creation_flags(&mut self, flags: u32) -> &mut Command {
        std::os::windows::process::CommandExt::creation_flags(&mut self.std, flags);
        self
    }

    /// The std command inside.
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// The std command inside, for settings veloq has no setter for.
    /// (Streams set through it count as unset for
    /// [`output`](Self::output)'s defaults.)
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Unwraps the std command.
    pub fn into_std(self) -> std::process::Command {
        self.std
    }

    /// Starts the process.
    ///
    /// ```ignore-windows
    /// use veloq::process::{Command, Stdio};
    ///
    /// veloq::block_on(async {
    ///     let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    ///     let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    ///     let (res, _) = stdin.write_all(b"ping".to_vec()).await;
    ///     res?;
    ///     drop(stdin);
    ///     let (res, out) = stdout.read_to_end(Vec::new()).await;
    ///     res?;
    ///     assert_eq!(out, b"ping");
    ///     assert!(child.wait().await?.success());
    ///     Ok::<(), std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As std's `spawn`: `NotFound` for a program that does not exist,
    /// `PermissionDenied` for one that may not be run, and so on.
    pub fn spawn(&mut self) -> io::Result<Child> {
        Child::new(self.std.spawn()?, self.kill_on_drop)
    }

    /// Runs the process to its end and returns its exit status. Its
    /// streams are inherited unless set; piped ones are closed at once.
    ///
    /// The process starts when `status` is called; the future only waits.
    /// Dropping the future leaves the process running unless
    /// [`kill_on_drop`](Self::kill_on_drop) is set.
    ///
    /// ```ignore-windows
    /// use veloq::process::Command;
    ///
    /// veloq::block_on(async {
    ///     let status = Command::new("sh").args(["-c", "exit 3"]).status().await?;
    ///     assert_eq!(status.code(), Some(3));
    ///     Ok::<(), std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn) and [`Child::wait`].
    pub fn status(&mut self) -> impl Future<Output = io::Result<ExitStatus>> + Send + 'static {
        let child = self.spawn();
        async move {
            let mut child = child?;
            drop(child.stdout.take());
            drop(child.stderr.take());
            child.wait().await
        }
    }

    /// Runs the process to its end and collects its output. As with std,
    /// standard input is null and standard output and error are piped and
    /// collected, unless set otherwise. (Those defaults are set on this
    /// command, as tokio does.)
    ///
    /// The process starts when `output` is called; the future collects.
    /// Dropping the future leaves the process running unless
    /// [`kill_on_drop`](Self::kill_on_drop) is set.
    ///
    /// ```ignore-windows
    /// use veloq::process::Command;
    ///
    /// veloq::block_on(async {
    ///     let out = Command::new("echo").arg("hello").output().await?;
    ///     assert_eq!(out.stdout, b"hello\n");
    ///     Ok::<(), std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn) and [`Child::wait_with_output`].
    pub fn output(&mut self) -> impl Future<Output = io::Result<Output>> + Send + 'static {
        if !self.stdin_set {
            self.stdin(Stdio::null());
        }
        if !self.stdout_set {
            self.stdout(Stdio::piped());
        }
        if !self.stderr_set {
            self.stderr(Stdio::piped());
        }
        let child = self.spawn();
        async move { child?.wait_with_output().await }
    }
}

impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            kill_on_drop: false,
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("std", &self.std)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}
