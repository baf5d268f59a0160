//! `JoinableQueue`: a FIFO queue that also counts unfinished tasks.

use std::panic::Location;
use std::time::Duration;

use crate::Elapsed;

use super::api::{blocking_api, core_api};
use super::base::Core;
use super::storage::Fifo;
use super::wait::Deadline;

/// A FIFO [`Queue`](super::Queue) that also counts *unfinished tasks* (gevent's
/// `JoinableQueue`, Python's `queue.Queue` `task_done`/`join`): every successful put
/// adds one, every [`task_done`](Self::task_done) removes one, and
/// [`join`](Self::join) waits until the count is back to zero, i.e. until every item
/// put has been taken *and processed*.
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// use greenweave_runtime::{queue::JoinableQueue, sleep, spawn};
///
/// let jobs = Rc::new(JoinableQueue::new(5));
/// let done = Rc::new(std::cell::Cell::new(0));
/// for _ in 0..2 {
///     let (jobs, done) = (jobs.clone(), done.clone());
///     spawn(move || {
///         for job in &*jobs {
///             sleep(Duration::from_millis(job));
///             done.set(done.get() + 1);
///             jobs.task_done();
///         }
///     });
/// }
/// for job in [3, 1, 2, 1] {
///     jobs.put(job).unwrap();
/// }
/// jobs.join(); // every job was taken and marked done
/// assert_eq!(done.get(), 4);
/// jobs.close(); // lets the workers' loops end
/// ```
pub struct JoinableQueue<T> {
    core: Core<Fifo<T>>,
}

impl<T> JoinableQueue<T> {
    /// A joinable queue holding at most `maxsize` items; `0` means unbounded.
    #[track_caller]
    pub fn new(maxsize: usize) -> Self {
        JoinableQueue {
            core: Core::new(maxsize, "JoinableQueue", Location::caller()).counting_tasks(),
        }
    }

    /// A joinable queue without a size limit.
    #[track_caller]
    pub fn unbounded() -> Self {
        JoinableQueue::new(0)
    }

    /// Marks one item taken from the queue as processed. When the last unfinished one
    /// is marked, every greenlet in [`join`](Self::join) wakes.
    ///
    /// # Panics
    ///
    /// If called more times than items were put (Python's `ValueError: task_done()
    /// called too many times`); the count stays at zero.
    #[track_caller]
    pub fn task_done(&self) {
        if !self.core.task_done() {
            let mut queue = String::new();
            self.core.describe_self(&mut queue);
            panic!("greenweave: task_done() called more times than items were put on {queue}");
        }
    }

    /// Items put and not yet marked done (including those still queued).
    pub fn unfinished_tasks(&self) -> usize {
        self.core.unfinished()
    }

    /// Waits until every item put has been marked done with
    /// [`task_done`](Self::task_done); returns at once if none is unfinished (also
    /// before anything was put). Closing the queue does not end a join: the items
    /// put still need their `task_done`.
    #[track_caller]
    pub fn join(&self) {
        // Under `Deadline::Never` the only way out is the count reaching zero.
        let _ = self.core.join_until(Deadline::Never);
    }

    /// Like [`join`](Self::join), giving up after `timeout` (a timeout too large to
    /// represent never expires).
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if tasks were still unfinished when the time ran out.
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Elapsed> {
        self.core
            .join_until(Deadline::after(timeout))
            .map_err(|_| Elapsed)
    }
}

blocking_api!(JoinableQueue, put_waits: "while the queue is full");
core_api!(JoinableQueue);
