//! The cross-thread synchronization the injector and the thread pool use: std's, or
//! loom's models of it when built with `--cfg loom`.
//!
//! Code that other OS threads run concurrently takes its locks, condition variables,
//! atomics and threads from here, so the model checker drives the very code the
//! runtime uses (`RUSTFLAGS="--cfg loom" cargo test -p greenweave-runtime --lib
//! loom_tests`; see `loom_tests`). Single-threaded hub state uses `Cell`/`RefCell`
//! and needs no model.

#[cfg(not(loom))]
pub(crate) use std::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicUsize, Ordering},
};
#[cfg(not(loom))]
pub(crate) use std::thread;

#[cfg(loom)]
pub(crate) use loom::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicUsize, Ordering},
};
#[cfg(loom)]
pub(crate) use loom::thread;
