//! Helpers shared by the `queue_*` test files.
#![allow(dead_code, unused_imports)]

pub use std::cell::{Cell, RefCell};
pub use std::cmp::Reverse;
pub use std::panic::{self, AssertUnwindSafe};
pub use std::rc::Rc;
pub use std::time::{Duration, Instant};

pub use greenweave_runtime::queue::{
    Channel, GetError, GetTimeoutError, JoinableQueue, LifoQueue, PriorityQueue, PutError,
    PutTimeoutError, Queue, TryGetError, TryPutError,
};
pub use greenweave_runtime::{Elapsed, JoinError, JoinHandle, spawn, with_timeout, yield_now};

pub const SHORT: Duration = Duration::from_millis(20);

/// Lets every ready greenlet run until it blocks (a few rounds, for chains of wake-ups).
pub fn settle() {
    for _ in 0..5 {
        yield_now();
    }
}

/// Counts how many times it was dropped.
pub struct Tracked(pub u32, pub Rc<Cell<u32>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.set(self.1.get() + 1);
    }
}
