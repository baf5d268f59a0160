//! The public methods every queue kind shares, written once: each kind provides the
//! two deadline paths ([`Sink::put_until`], [`Source::get_until`]) and these macros
//! derive the blocking, `_timeout` and `try_` forms and the iterators from them.

use super::wait::{Deadline, Stop};

/// Items can be taken from it (every queue kind and `Channel`).
pub(super) trait Source<T> {
    /// Takes an item, waiting until `deadline`.
    #[track_caller]
    fn get_until(&self, deadline: Deadline) -> Result<T, Stop>;
}

/// Items can be put into it.
pub(super) trait Sink<T> {
    /// Puts `item`, waiting until `deadline`; gives it back on failure.
    #[track_caller]
    fn put_until(&self, item: T, deadline: Deadline) -> Result<(), (T, Stop)>;
}

/// `put`, `get`, their `_timeout` and `try_` forms, `iter`, `try_iter`, `drain` and
/// `IntoIterator for &Type`, for a `Type<T>` implementing `Source<T>` and `Sink<T>`.
macro_rules! blocking_api {
    ($name:ident $(: $bound:path)?, put_waits: $waits:literal) => {
        impl<T $(: $bound)?> $name<T> {
            #[doc = concat!("Puts `item`, first waiting ", $waits, ".")]
            ///
            /// # Errors
            ///
            /// [`PutError`](crate::queue::PutError) with the item if the queue is
            /// closed, or gets closed while this call waits.
            // Always inlined, down to the switch (`Core::put_until`): a blocking call
            // whose switch runs in the caller's own frame returns through no frame of
            // ours when resumed, which saves two mispredicted returns per wait (see
            // docs/DESIGN-NOTES.md). The cost is code size at each call site.
            #[inline(always)]
            #[track_caller]
            pub fn put(&self, item: T) -> Result<(), $crate::queue::PutError<T>> {
                $crate::queue::api::Sink::put_until(self, item, $crate::queue::wait::Deadline::Never)
                    .map_err(|(item, _)| $crate::queue::PutError(item))
            }

            /// Like [`put`](Self::put), giving up after `timeout` (a timeout too
            /// large to represent never expires).
            ///
            /// # Errors
            ///
            /// [`Timeout`](crate::queue::PutTimeoutError::Timeout) or
            /// [`Closed`](crate::queue::PutTimeoutError::Closed), with the item.
            #[track_caller]
            pub fn put_timeout(
                &self,
                item: T,
                timeout: std::time::Duration,
            ) -> Result<(), $crate::queue::PutTimeoutError<T>> {
                use $crate::queue::{PutTimeoutError, wait::{Deadline, Stop}};
                $crate::queue::api::Sink::put_until(self, item, Deadline::after(timeout)).map_err(
                    |(item, stop)| match stop {
                        Stop::Closed => PutTimeoutError::Closed(item),
                        Stop::Timeout | Stop::WouldBlock => PutTimeoutError::Timeout(item),
                    },
                )
            }

            /// Puts `item` only if that needs no waiting.
            ///
            /// # Errors
            ///
            /// [`Full`](crate::queue::TryPutError::Full) or
            /// [`Closed`](crate::queue::TryPutError::Closed), with the item.
            pub fn try_put(&self, item: T) -> Result<(), $crate::queue::TryPutError<T>> {
                use $crate::queue::{TryPutError, wait::{Deadline, Stop}};
                $crate::queue::api::Sink::put_until(self, item, Deadline::Now).map_err(
                    |(item, stop)| match stop {
                        Stop::Closed => TryPutError::Closed(item),
                        Stop::WouldBlock | Stop::Timeout => TryPutError::Full(item),
                    },
                )
            }

            /// Takes the next item, first waiting for one while the queue is empty.
            /// A closed queue still gives out the items it holds.
            ///
            /// # Errors
            ///
            /// [`GetError`](crate::queue::GetError) once the queue is closed and
            /// empty (also if it gets closed while this call waits).
            // Always inlined, as `put` is.
            #[inline(always)]
            #[track_caller]
            pub fn get(&self) -> Result<T, $crate::queue::GetError> {
                $crate::queue::api::Source::get_until(self, $crate::queue::wait::Deadline::Never)
                    .map_err(|_| $crate::queue::GetError)
            }

            /// Like [`get`](Self::get), giving up after `timeout` (a timeout too
            /// large to represent never expires).
            ///
            /// # Errors
            ///
            /// [`Timeout`](crate::queue::GetTimeoutError::Timeout) or
            /// [`Closed`](crate::queue::GetTimeoutError::Closed) (closed and empty).
            #[track_caller]
            pub fn get_timeout(
                &self,
                timeout: std::time::Duration,
            ) -> Result<T, $crate::queue::GetTimeoutError> {
                use $crate::queue::{GetTimeoutError, wait::{Deadline, Stop}};
                $crate::queue::api::Source::get_until(self, Deadline::after(timeout)).map_err(
                    |stop| match stop {
                        Stop::Closed => GetTimeoutError::Closed,
                        Stop::Timeout | Stop::WouldBlock => GetTimeoutError::Timeout,
                    },
                )
            }

            /// Takes the next item only if that needs no waiting.
            ///
            /// # Errors
            ///
            /// [`Empty`](crate::queue::TryGetError::Empty) or
            /// [`Closed`](crate::queue::TryGetError::Closed) (closed and empty).
            pub fn try_get(&self) -> Result<T, $crate::queue::TryGetError> {
                use $crate::queue::{TryGetError, wait::{Deadline, Stop}};
                $crate::queue::api::Source::get_until(self, Deadline::Now).map_err(|stop| match stop {
                    Stop::Closed => TryGetError::Closed,
                    Stop::WouldBlock | Stop::Timeout => TryGetError::Empty,
                })
            }

            /// A blocking iterator: each item comes from [`get`](Self::get); it ends
            /// once the queue is closed and empty. Same as iterating over `&queue`.
            pub fn iter(&self) -> $crate::queue::Iter<'_, T> {
                $crate::queue::Iter::new(self)
            }

            /// A non-blocking iterator: each item comes from
            /// [`try_get`](Self::try_get); it ends when none is available now.
            pub fn try_iter(&self) -> $crate::queue::TryIter<'_, T> {
                $crate::queue::TryIter::new(self)
            }

            /// Takes every item available now, without waiting, in the order `get`
            /// would give them.
            pub fn drain(&self) -> Vec<T> {
                self.try_iter().collect()
            }
        }

        impl<'a, T $(: $bound)?> IntoIterator for &'a $name<T> {
            type Item = T;
            type IntoIter = $crate::queue::Iter<'a, T>;

            fn into_iter(self) -> Self::IntoIter {
                self.iter()
            }
        }
    };
}

/// The state queries, `close`, `Debug` and the `Source`/`Sink` impls for a
/// `Type<T>` whose field `core` is a `Core<S>` with `S::Item = T`.
macro_rules! core_api {
    ($name:ident $(: $bound:path)?) => {
        impl<T $(: $bound)?> $name<T> {
            /// Number of items in the queue.
            pub fn len(&self) -> usize {
                self.core.len()
            }

            /// Whether the queue holds no item.
            pub fn is_empty(&self) -> bool {
                self.core.len() == 0
            }

            /// Whether the queue holds `maxsize` items (never true when unbounded).
            pub fn is_full(&self) -> bool {
                self.core.is_full()
            }

            /// The capacity; `None` if unbounded (made with `maxsize` 0).
            pub fn maxsize(&self) -> Option<usize> {
                self.core.maxsize()
            }

            /// Closes the queue: every blocked putter and getter wakes with a
            /// `Closed` error, later puts fail (giving the item back), and the items
            /// already queued can still be taken; gets fail once they are gone.
            /// Returns `false` if the queue was already closed.
            pub fn close(&self) -> bool {
                self.core.close()
            }

            /// Whether [`close`](Self::close) was called.
            pub fn is_closed(&self) -> bool {
                self.core.is_closed()
            }

            /// Greenlets parked in get and put, in that order (for tests and
            /// diagnostics; woken ones that have not run yet are not counted).
            #[doc(hidden)]
            pub fn waiter_counts(&self) -> (usize, usize) {
                (self.core.waiting_getters(), self.core.waiting_putters())
            }
        }

        impl<T $(: $bound)?> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.core.debug(f)
            }
        }

        impl<T $(: $bound)?> $crate::queue::api::Source<T> for $name<T> {
            #[inline(always)]
            #[track_caller]
            fn get_until(
                &self,
                deadline: $crate::queue::wait::Deadline,
            ) -> Result<T, $crate::queue::wait::Stop> {
                self.core.get_until(deadline)
            }
        }

        impl<T $(: $bound)?> $crate::queue::api::Sink<T> for $name<T> {
            #[inline(always)]
            #[track_caller]
            fn put_until(
                &self,
                item: T,
                deadline: $crate::queue::wait::Deadline,
            ) -> Result<(), (T, $crate::queue::wait::Stop)> {
                self.core.put_until(item, deadline)
            }
        }
    };
}

pub(super) use {blocking_api, core_api};
