//! Queues between greenlets (gevent's `gevent.queue`).
//!
//! | type | gives out | `put` waits while |
//! | --- | --- | --- |
//! | [`Queue`] | oldest item first | it holds `maxsize` items (`0`: never) |
//! | [`LifoQueue`] | newest item first | the same |
//! | [`PriorityQueue`] | smallest item first | the same |
//! | [`JoinableQueue`] | oldest first, plus `task_done`/`join` | the same |
//! | [`Channel`] | the putter's item, hand to hand | no getter has taken it yet |
//!
//! All share one implementation: the queue kinds differ only in how they store items.
//! Each has `put`, `get`, their `_timeout` and `try_` forms, `len`, `is_empty`,
//! `is_full`, `maxsize`, `close`, `is_closed`, a blocking iterator (`iter()`, or
//! `for item in &queue`) that ends once the queue is closed and drained, and the
//! non-blocking `try_iter()` and `drain()`.
//!
//! ```
//! use std::rc::Rc;
//! use greenweave_runtime::{queue::Queue, spawn};
//!
//! let q = Rc::new(Queue::new(10));
//! let consumer = spawn({
//!     let q = q.clone();
//!     move || q.iter().sum::<u32>() // until closed and drained
//! });
//! for i in 1..=100 {
//!     q.put(i).unwrap();
//! }
//! q.close();
//! assert_eq!(consumer.join().unwrap(), 5050);
//! ```
//!
//! # Errors give the item back
//!
//! In the style of crossbeam-channel: [`PutError`], [`TryPutError`] and
//! [`PutTimeoutError`] carry the item that could not be put (`into_inner`), so a
//! failed put loses nothing; [`GetError`], [`TryGetError`] and [`GetTimeoutError`]
//! say why no item came.
//!
//! # Closing
//!
//! [`close`](Queue::close) wakes every blocked putter and getter with a `Closed`
//! error. Later puts fail with their item; items already queued can still be taken,
//! and gets fail with `Closed` only once the queue is empty.
//!
//! # Fairness and hand-off
//!
//! Blocked getters are served in the order they started waiting, and so are blocked
//! putters. Serving is a hand-off, as Go's channels do it: a put that finds a getter
//! waiting on a [`Queue`], [`JoinableQueue`] or [`Channel`] puts the item straight into
//! that getter's hands and wakes it, so no greenlet that comes along meanwhile can
//! take it first; a get that makes room moves the longest-waiting putter's item into
//! the queue (a `Channel` get takes it) as it wakes that putter, whose put has then
//! succeeded. [`LifoQueue`] and [`PriorityQueue`] getters are woken instead and take
//! the newest or smallest item when they run, which may be one put after the wake-up.
//! With one producer, items come out of a `Queue` in the order they were put,
//! whichever consumers take them.
//!
//! # Kills and timeouts
//!
//! Every wait is a blocking point: a kill or an expired [`Timeout`](crate::Timeout)
//! unwinds from it. The queue stays consistent: the waiter's entry is removed, and a
//! killed putter's item is dropped with its frame, never half-inserted (a killed
//! `Channel` putter's item is not delivered either). `put_timeout` returns the item on
//! timeout. A hand-off that already happened wins over a kill or timeout that arrives
//! before the served greenlet runs again: its `get` returns the item (or its `put`
//! returns `Ok`), nothing is lost, and the kill or timeout lands at its next blocking
//! point. A `LifoQueue` or `PriorityQueue` getter killed after its wake-up passes the
//! wake-up on to the next getter.
//!
//! # One thread
//!
//! Queues connect greenlets of one thread; they are neither `Send` nor `Sync`:
//!
//! ```compile_fail
//! use greenweave_runtime::queue::Queue;
//!
//! let q = Queue::new(1);
//! std::thread::scope(|s| {
//!     s.spawn(|| q.put(1)); // error: `Queue<i32>` cannot be shared between threads
//! });
//! ```
//!
//! ```compile_fail
//! use greenweave_runtime::queue::Channel;
//!
//! let ch: Channel<i32> = Channel::new();
//! std::thread::spawn(move || ch.try_get()); // error: `Channel<i32>` cannot be sent
//! ```

mod api;
mod base;
mod channel;
mod error;
mod iter;
mod joinable;
mod queues;
mod storage;
mod wait;

pub use channel::Channel;
pub use error::{GetError, GetTimeoutError, PutError, PutTimeoutError, TryGetError, TryPutError};
pub use iter::{Iter, TryIter};
pub use joinable::JoinableQueue;
pub use queues::{LifoQueue, PriorityQueue, Queue};
