//! Iterating over a queue: blocking until it is closed and drained, or only over what
//! is there now.

use std::fmt;
use std::iter::FusedIterator;

use super::api::Source;
use super::wait::Deadline;

/// A blocking iterator over a queue's items: each `next` is a `get`; it ends once the
/// queue is closed and empty. Made by `iter()` or by iterating over `&queue`.
pub struct Iter<'a, T> {
    source: &'a dyn Source<T>,
}

impl<'a, T> Iter<'a, T> {
    pub(super) fn new(source: &'a dyn Source<T>) -> Self {
        Iter { source }
    }
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.source.get_until(Deadline::Never).ok()
    }
}

/// A closed queue never reopens, so once drained it stays that way.
impl<T> FusedIterator for Iter<'_, T> {}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Iter { .. }")
    }
}

/// A non-blocking iterator over a queue's items: each `next` is a `try_get`; it ends
/// at the first one that would have to wait. Made by `try_iter()`.
pub struct TryIter<'a, T> {
    source: &'a dyn Source<T>,
}

impl<'a, T> TryIter<'a, T> {
    pub(super) fn new(source: &'a dyn Source<T>) -> Self {
        TryIter { source }
    }
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.source.get_until(Deadline::Now).ok()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TryIter { .. }")
    }
}
