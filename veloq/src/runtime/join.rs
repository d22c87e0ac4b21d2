//! [`JoinHandle`], the owner's view of a spawned task, and [`JoinError`].

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use async_task::FallibleTask;

use super::task::{Panic, TaskOutput};

/// An owned permission to await (or abort) a spawned task.
///
/// Awaiting it yields the task's output, or a [`JoinError`] if the task
/// was aborted or panicked. Dropping it *detaches* the task: the task keeps
/// running and its output is dropped.
///
/// `JoinHandle<T>` is `Send` when `T` is, so a result may be awaited on
/// another thread; the task itself always runs on the runtime that spawned
/// it.
///
/// ```
/// veloq::block_on(async {
///     let handle = veloq::spawn(async { 6 * 7 });
///     assert_eq!(handle.await.unwrap(), 42);
/// });
/// ```
pub struct JoinHandle<T> {
    /// `None` once aborted.
    task: RefCell<Option<FallibleTask<TaskOutput<T>>>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: FallibleTask<TaskOutput<T>>) -> Self {
        JoinHandle {
            task: RefCell::new(Some(task)),
        }
    }

    /// Cancels the task, unless it has already finished.
    ///
    /// The handle then resolves to a [`JoinError`] for which
    /// [`is_cancelled`](JoinError::is_cancelled) is true. The task's future
    /// is dropped on its runtime's thread the next time that runtime runs
    /// its tasks (at once if the task is running: after its current poll),
    /// which cancels whatever I/O it had in flight. Aborting a finished task
    /// does nothing; its output stays available.
    ///
    /// Called from a thread other than the runtime's, a task that finishes
    /// at the same moment may be reported as cancelled.
    pub fn abort(&self) {
        let task = {
            let mut slot = self.task.borrow_mut();
            match slot.as_ref() {
                Some(task) if !task.is_finished() => slot.take(),
                _ => None,
            }
        };
        // Dropping an unfinished `async_task::Task` closes the task and, if
        // it is idle, schedules it once more so its runtime drops the future.
        drop(task);
    }

    /// Whether the task has finished: completed, panicked or aborted.
    pub fn is_finished(&self) -> bool {
        self.task.borrow().as_ref().is_none_or(|t| t.is_finished())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(task) = this.task.get_mut() else {
            return Poll::Ready(Err(JoinError::cancelled()));
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(out))) => Poll::Ready(Ok(out)),
            Poll::Ready(Some(Err(panic))) => Poll::Ready(Err(JoinError::panic(panic))),
            // Closed without output: the task was cancelled (aborted
            // elsewhere, or its runtime was dropped).
            Poll::Ready(None) => Poll::Ready(Err(JoinError::cancelled())),
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task produced no output: it was cancelled, or it panicked.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    /// The `Mutex` only makes the payload `Sync` (it is `Send` only); it is
    /// never contended.
    Panic(Mutex<Panic>),
}

impl JoinError {
    pub(crate) fn cancelled() -> Self {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panic(payload: Panic) -> Self {
        JoinError {
            repr: Repr::Panic(Mutex::new(payload)),
        }
    }

    /// Whether the task was cancelled ([`JoinHandle::abort`], or its runtime
    /// was dropped).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to resume the panic with
    /// [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// If the task did not panic.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("JoinError::into_panic on a cancelled task")
    }

    /// The panic payload, or `self` back if the task did not panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }

    /// The panic message, when the payload is a string (as from `panic!`).
    fn panic_message(&self) -> Option<String> {
        let Repr::Panic(p) = &self.repr else {
            return None;
        };
        let p = p.lock().unwrap_or_else(|e| e.into_inner());
        p.downcast_ref::<&'static str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("task was cancelled"),
            Repr::Panic(_) => match self.panic_message() {
                Some(msg) => write!(f, "task panicked: {msg}"),
                None => f.write_str("task panicked"),
            },
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::Panic(_) => match self.panic_message() {
                Some(msg) => write!(f, "JoinError::Panic({msg:?})"),
                None => f.write_str("JoinError::Panic(..)"),
            },
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> Self {
        std::io::Error::other(e)
    }
}
