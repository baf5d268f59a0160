//! `Queue`, `LifoQueue` and `PriorityQueue`: one core, three storage disciplines.

use std::panic::Location;

use super::api::{blocking_api, core_api};
use super::base::Core;
use super::storage::{Fifo, Lifo, Priority};

/// A first-in first-out queue of items between greenlets, optionally bounded (gevent's
/// `Queue`). `get` waits while it is empty and `put` while it holds `maxsize` items.
///
/// Share it between greenlets with an `Rc`; iterating over `&queue` gets items until
/// the queue is [closed](Self::close) and drained.
///
/// ```
/// use std::rc::Rc;
/// use greenweave_runtime::{queue::Queue, spawn};
///
/// let q = Rc::new(Queue::new(2)); // at most 2 items at a time
/// let producer = spawn({
///     let q = q.clone();
///     move || {
///         for i in 0..5 {
///             q.put(i).unwrap(); // waits while the queue is full
///         }
///         q.close();
///     }
/// });
/// let got: Vec<i32> = q.iter().collect(); // ends once closed and drained
/// assert_eq!(got, [0, 1, 2, 3, 4]);
/// producer.join().unwrap();
/// ```
pub struct Queue<T> {
    core: Core<Fifo<T>>,
}

impl<T> Queue<T> {
    /// A queue holding at most `maxsize` items; `0` means unbounded.
    #[track_caller]
    pub fn new(maxsize: usize) -> Self {
        Queue {
            core: Core::new(maxsize, "Queue", Location::caller()),
        }
    }

    /// A queue without a size limit: `put` never waits.
    #[track_caller]
    pub fn unbounded() -> Self {
        Queue::new(0)
    }
}

blocking_api!(Queue, put_waits: "while the queue is full");
core_api!(Queue);

/// A last-in first-out queue (gevent's `LifoQueue`): `get` takes the most recently put
/// item. Otherwise like [`Queue`].
///
/// ```
/// use std::rc::Rc;
/// use greenweave_runtime::{queue::LifoQueue, spawn};
///
/// let stack = Rc::new(LifoQueue::new(3));
/// let filler = spawn({
///     let stack = stack.clone();
///     move || {
///         for page in ["home", "docs", "api"] {
///             stack.put(page).unwrap();
///         }
///     }
/// });
/// filler.join().unwrap();
/// assert!(stack.is_full());
/// assert_eq!(stack.drain(), ["api", "docs", "home"]);
/// ```
pub struct LifoQueue<T> {
    core: Core<Lifo<T>>,
}

impl<T> LifoQueue<T> {
    /// A LIFO queue holding at most `maxsize` items; `0` means unbounded.
    #[track_caller]
    pub fn new(maxsize: usize) -> Self {
        LifoQueue {
            core: Core::new(maxsize, "LifoQueue", Location::caller()),
        }
    }

    /// A LIFO queue without a size limit.
    #[track_caller]
    pub fn unbounded() -> Self {
        LifoQueue::new(0)
    }
}

blocking_api!(LifoQueue, put_waits: "while the queue is full");
core_api!(LifoQueue);

/// A queue that gives out its smallest item first (gevent's and Python's
/// `PriorityQueue`, heap-ordered like `heapq`). Put `(priority, value)` tuples to
/// order by priority; wrap in [`Reverse`](std::cmp::Reverse) for largest first. Items
/// that compare equal come out in no particular order. Otherwise like [`Queue`].
///
/// ```
/// use std::rc::Rc;
/// use greenweave_runtime::{queue::PriorityQueue, spawn};
///
/// let jobs = Rc::new(PriorityQueue::unbounded());
/// for job in [(3, "sweep"), (1, "page the on-call"), (2, "reply")] {
///     jobs.put(job).unwrap();
/// }
/// let worker = spawn({
///     let jobs = jobs.clone();
///     move || jobs.try_iter().map(|(_, what)| what).collect::<Vec<_>>()
/// });
/// assert_eq!(worker.join().unwrap(), ["page the on-call", "reply", "sweep"]);
/// ```
pub struct PriorityQueue<T> {
    core: Core<Priority<T>>,
}

impl<T: Ord> PriorityQueue<T> {
    /// A priority queue holding at most `maxsize` items; `0` means unbounded.
    #[track_caller]
    pub fn new(maxsize: usize) -> Self {
        PriorityQueue {
            core: Core::new(maxsize, "PriorityQueue", Location::caller()),
        }
    }

    /// A priority queue without a size limit.
    #[track_caller]
    pub fn unbounded() -> Self {
        PriorityQueue::new(0)
    }
}

blocking_api!(PriorityQueue: Ord, put_waits: "while the queue is full");
core_api!(PriorityQueue: Ord);
