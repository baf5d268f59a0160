//! Storage disciplines: the only thing that differs between `Queue`, `LifoQueue` and
//! `PriorityQueue`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;

/// The item type of a storage (declared without the storage's bounds, so a queue's
/// waiter lists can name it in the queue's own type).
pub(super) trait Holds {
    type Item;
}

/// Where a queue keeps its items, and in which order it gives them out.
pub(super) trait Store: Holds {
    /// Whether a put may hand its item straight to a waiting getter. Only for FIFO
    /// storage is that the item the getter would take anyway; a LIFO or priority getter
    /// takes the best item there is when it runs, so puts store and wake it instead.
    const HANDS_OFF: bool = false;
    fn new() -> Self;
    fn push(&mut self, item: Self::Item);
    fn pop(&mut self) -> Option<Self::Item>;
    fn len(&self) -> usize;

    /// The state shown in wait descriptions: `empty, maxsize 10`.
    fn describe(&self, maxsize: usize, out: &mut String) {
        let len = self.len();
        let _ = match len {
            0 => write!(out, "empty"),
            _ if maxsize != 0 && len >= maxsize => write!(out, "full"),
            1 => write!(out, "1 item"),
            _ => write!(out, "{len} items"),
        };
        let _ = match maxsize {
            0 => write!(out, ", unbounded"),
            _ => write!(out, ", maxsize {maxsize}"),
        };
    }
}

/// First in, first out.
pub(super) struct Fifo<T>(VecDeque<T>);

impl<T> Holds for Fifo<T> {
    type Item = T;
}

impl<T> Store for Fifo<T> {
    const HANDS_OFF: bool = true;
    fn new() -> Self {
        Fifo(VecDeque::new())
    }
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Last in, first out.
pub(super) struct Lifo<T>(Vec<T>);

impl<T> Holds for Lifo<T> {
    type Item = T;
}

impl<T> Store for Lifo<T> {
    fn new() -> Self {
        Lifo(Vec::new())
    }
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Smallest first (Python's `heapq` order).
pub(super) struct Priority<T>(BinaryHeap<Reverse<T>>);

impl<T> Holds for Priority<T> {
    type Item = T;
}

impl<T: Ord> Store for Priority<T> {
    fn new() -> Self {
        Priority(BinaryHeap::new())
    }
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(item)| item)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}
