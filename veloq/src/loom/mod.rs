//! The one place the crate's cross-thread primitives come from, so that the
//! code built on them can be model-checked with [loom].
//!
//! A normal build re-exports std's atomics, `Arc`, `Mutex`, `Condvar` and
//! `thread`, plus crossbeam's `SegQueue`: no cost, no wrapper. A build with
//! `RUSTFLAGS="--cfg loom"` (`scripts/test-loom.sh`) re-exports loom's
//! instead, whose every load, store, lock and spawn is a point where loom's
//! scheduler may switch threads; its models (the `loom_tests` modules next
//! to the code they check) then run every interleaving up to a preemption
//! bound, with loom's weak-memory model for the atomics.
//!
//! # What goes through here
//!
//! The state shared between threads whose *protocol* is the thing to
//! check: the worker's park state (`runtime::park`), its remote and
//! injection queues and `closed` flag (`runtime::scheduler`), the main
//! future's waker and the workers' stop flag, the eventfd's coalescing
//! flag, and the channels (`sync::mpsc`, `sync::oneshot`, which also carry
//! the blocking pool's results).
//!
//! # What does not
//!
//! - `WakeHandle` and task wakers stay `std::sync::Arc`s: they are
//!   coerced to `Arc<dyn Unpark>` or turned into a `Waker`, which loom's
//!   `Arc` cannot do, and their reference counts are not a protocol.
//! - The blocking pool's own queue lives in a process-wide `static`, which
//!   loom objects cannot (each model execution must create its own), and
//!   it waits with a timeout, which loom's `Condvar` does not implement.
//!   Its result hand-off is a `oneshot`, modelled here.
//!
//! # Invariants
//!
//! - Under `cfg(loom)` loom objects may only be created inside
//!   `loom::model`: library code that runs outside a model (anything
//!   touching a `static`) must not use this facade.
//! - The re-exported names and signatures are the same in both builds, so
//!   the code using them compiles unchanged.
//!
//! [loom]: https://docs.rs/loom

// A fixed set: some names are used only by the models, or only in
// some builds.
#[cfg(not(loom))]
#[allow(unused_imports)]
mod imp {
    pub(crate) mod sync {
        pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

        pub(crate) mod atomic {
            pub(crate) use std::sync::atomic::{
                fence, AtomicBool, AtomicU8, AtomicUsize, Ordering,
            };
        }
    }

    pub(crate) use crossbeam_queue::SegQueue;
    pub(crate) use std::thread;
}

#[cfg(loom)]
#[allow(unused_imports)]
mod imp {
    pub(crate) mod sync {
        pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

        pub(crate) mod atomic {
            pub(crate) use loom::sync::atomic::{
                fence, AtomicBool, AtomicU8, AtomicUsize, Ordering,
            };
        }
    }

    pub(crate) use super::queue::SegQueue;
    pub(crate) use loom::thread;
}

#[cfg(loom)]
mod queue;

#[allow(unused_imports)]
pub(crate) use imp::{sync, thread, SegQueue};

/// A kernel object that threads race on through system calls (an
/// eventfd's counter). Empty in a normal build; under loom, an atomic that
/// [`call`](KernelObject::call) updates just before each system call, so
/// that loom sees the calls as conflicting accesses to one object and
/// explores their orders (it cannot see the kernel, and would otherwise
/// treat a read and a racing write as independent). The read-modify-write
/// is `AcqRel`, like the kernel's lock around the object. Linux only: the
/// eventfd waker is its one user.
#[cfg(target_os = "linux")]
pub(crate) struct KernelObject {
    #[cfg(loom)]
    calls: sync::atomic::AtomicUsize,
}

#[cfg(target_os = "linux")]
impl KernelObject {
    /// A new object.
    pub(crate) fn new() -> Self {
        KernelObject {
            #[cfg(loom)]
            calls: sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Call just before a system call on the object.
    #[inline(always)]
    pub(crate) fn call(&self) {
        #[cfg(loom)]
        self.calls.fetch_add(1, sync::atomic::Ordering::AcqRel);
    }
}

/// Locks `m`, ignoring poisoning: the crate's locks never leave their state
/// half-updated across a panic.
pub(crate) fn lock<T>(m: &sync::Mutex<T>) -> sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(all(test, loom))]
pub(crate) mod model_util;
