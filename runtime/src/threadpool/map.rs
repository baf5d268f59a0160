//! [`ThreadPool::map`]: CPU-bound work over many items.

use std::panic;
use std::sync::Arc;

use super::{BlockingHandle, ThreadPool};
use crate::spawn::JoinError;

impl ThreadPool {
    /// Applies `f` to every item on the pool's threads, at most [`size`](Self::size)
    /// at once, and returns the results in input order: the thread-pool form of
    /// `multiprocessing.Pool.map`, for CPU-bound work that would stall a hub.
    ///
    /// ```
    /// use greenweave_runtime::threadpool::ThreadPool;
    ///
    /// fn is_prime(n: u64) -> bool {
    ///     n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
    /// }
    /// let pool = ThreadPool::new(2);
    /// let flags = pool.map(is_prime, [7, 8, 1_000_003, 1_000_005]);
    /// assert_eq!(flags, [true, false, true, false]);
    /// ```
    ///
    /// # Panics
    ///
    /// Once every job has finished, resumes the panic of the first (in input order)
    /// that panicked. Unwinds if the greenlet is killed or times out while it waits;
    /// the jobs already queued still run.
    #[track_caller]
    pub fn map<I, F, R>(&self, f: F, items: I) -> Vec<R>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        let f = Arc::new(f);
        let handles: Vec<BlockingHandle<R>> = items
            .into_iter()
            .map(|item| {
                let f = f.clone();
                self.spawn(move || f(item))
            })
            .collect();
        let outcomes: Vec<Result<R, JoinError>> =
            handles.into_iter().map(BlockingHandle::join).collect();
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok(value) => value,
                Err(JoinError::Panicked(payload)) => panic::resume_unwind(payload),
                Err(JoinError::Killed) => {
                    panic!("greenweave: a thread-pool job was discarded unrun")
                }
            })
            .collect()
    }
}
