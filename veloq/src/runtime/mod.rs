//! STUB (owned by the runtime helper): executor, tasks, builder.

pub(crate) mod context;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs `fut` to completion on a runtime created for this thread.
pub fn block_on<F: Future>(_fut: F) -> F::Output {
    todo!()
}

/// Spawns a task on the current runtime.
pub fn spawn<F: Future + 'static>(_fut: F) -> JoinHandle<F::Output>
where
    F::Output: 'static,
{
    todo!()
}

/// Yields to other tasks once.
pub async fn yield_now() {
    todo!()
}

/// Handle to a spawned task.
pub struct JoinHandle<T> {
    _t: std::marker::PhantomData<T>,
}

impl<T> JoinHandle<T> {
    /// Cancels the task.
    pub fn abort(&self) {
        todo!()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        todo!()
    }
}

/// Why a task did not produce its output.
#[derive(Debug)]
pub struct JoinError {}

/// A runtime.
pub struct Runtime {}
