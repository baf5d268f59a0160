//! [`workers`]: one hub per OS thread, to use more than one core.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use crate::spawn::JoinError;
use crate::threadpool::oneshot;

/// Runs `f(0)`, `f(1)`, ..., `f(n - 1)` on `n` new OS threads, each with its own hub,
/// and returns their values in index order once all have finished (`n = 0` starts no
/// thread and returns an empty `Vec`).
///
/// A hub runs its greenlets on one core; `workers` is how a greenweave program uses
/// more. Each worker is an ordinary thread (named `greenweave-worker-{i}`) whose hub is
/// created on first use, so `f` may spawn greenlets, sleep, lock and do I/O freely,
/// exactly like `main`. Greenlets it spawns belong to its thread: join them before `f`
/// returns (those still alive when the thread exits are killed then, and the worker's
/// hub gives back all its memory and fds; see the crate docs on thread exit). The calling
/// greenlet parks until the workers are done; the other greenlets of its thread keep
/// running meanwhile.
///
/// ```
/// use std::time::{Duration, Instant};
/// use greenweave_runtime::{joinall, sleep, spawn, workers};
///
/// let start = Instant::now();
/// let sums = workers(2, |worker| {
///     // 100 greenlets on this worker's hub, all sleeping at once.
///     let jobs: Vec<_> = (0..100)
///         .map(|j| spawn(move || { sleep(Duration::from_millis(20)); j }))
///         .collect();
///     let total: usize = joinall(jobs).into_iter().map(Result::unwrap).sum();
///     (worker, total)
/// });
/// assert_eq!(sums, [(0, 4950), (1, 4950)]);
/// assert!(start.elapsed() < Duration::from_secs(1));
/// ```
///
/// To serve one port on every core, bind a `StreamServer` with `.reuse_port(true)`
/// (`SO_REUSEPORT`) inside each worker: the kernel spreads the incoming connections
/// over the workers' listening sockets, and each worker's hub serves its own with
/// greenlets. `workers(std::thread::available_parallelism()?.get(), ...)` is the usual
/// count.
///
/// `workers(0, f)` starts nothing and returns an empty `Vec`, as mapping over an empty
/// range would.
///
/// # Panics
///
/// A panic in a worker does not stop the others (Rust has no way to kill another
/// thread): once every worker has finished, the panic of the lowest-numbered worker
/// that panicked is resumed in the caller with its original payload (its message was
/// already printed by the worker's thread, as for any thread). Panics if a thread
/// cannot be started (those already started are left to run). Unwinds if the calling
/// greenlet is killed or a `Timeout` expires while it waits; the workers run on,
/// detached.
///
/// ```
/// use std::panic::{catch_unwind, AssertUnwindSafe};
///
/// let err = catch_unwind(AssertUnwindSafe(|| {
///     greenweave_runtime::workers(3, |i| if i == 1 { panic!("worker {i} failed") })
/// }))
/// .unwrap_err();
/// assert_eq!(err.downcast_ref::<String>().map(String::as_str), Some("worker 1 failed"));
/// ```
#[track_caller]
pub fn workers<F, R>(n: usize, f: F) -> Vec<R>
where
    F: Fn(usize) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    let f = Arc::new(f);
    let started: Vec<_> = (0..n)
        .map(|i| {
            let (completer, handle) = oneshot();
            let f = f.clone();
            let thread = thread::Builder::new()
                .name(format!("greenweave-worker-{i}"))
                .spawn(move || {
                    let outcome =
                        panic::catch_unwind(AssertUnwindSafe(|| f(i))).map_err(JoinError::Panicked);
                    drop(f);
                    completer.complete(outcome);
                })
                .unwrap_or_else(|e| panic!("greenweave: cannot start worker thread {i}: {e}"));
            (thread, handle)
        })
        .collect();
    let outcomes: Vec<Result<R, JoinError>> = started
        .into_iter()
        .map(|(thread, handle)| {
            let outcome = handle.join();
            // The worker has delivered its value; this only waits for its thread-local
            // destructors (its hub among them), which is quick.
            let _ = thread.join();
            outcome
        })
        .collect();
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| match outcome {
            Ok(value) => value,
            Err(JoinError::Panicked(payload)) => panic::resume_unwind(payload),
            Err(JoinError::Killed) => panic!("greenweave: worker {i} ended without a result"),
        })
        .collect()
}
