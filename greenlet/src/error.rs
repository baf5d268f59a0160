//! The exit signal and error types.

use std::error::Error;
use std::fmt;

/// The conventional payload to end a greenlet early: [`Greenlet::throw`](crate::Greenlet::throw)
/// it in, the greenlet unwinds (running its destructors) and finishes quietly; its
/// parent receives the `GreenletExit` as an ordinary value instead of a panic.
///
/// ```
/// use greenweave_greenlet::{Greenlet, GreenletExit, current};
///
/// let main = current();
/// let g = Greenlet::new(move |_| {
///     main.switch("parked");
///     unreachable!("killed while parked");
/// });
/// assert_eq!(g.switch(()).get::<&str>(), "parked");
/// assert!(g.throw(GreenletExit).is::<GreenletExit>());
/// assert!(g.is_dead());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreenletExit;

impl fmt::Display for GreenletExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("greenlet exit requested")
    }
}

impl Error for GreenletExit {}

/// Why [`Greenlet::set_parent`](crate::Greenlet::set_parent) refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParentError {
    /// The new parent is the greenlet itself or one of its descendants.
    Cycle {
        /// The greenlet whose parent was being set.
        greenlet: String,
        /// The rejected parent.
        parent: String,
    },
    /// A main greenlet has no parent and cannot be given one.
    Main {
        /// The main greenlet.
        greenlet: String,
    },
}

impl fmt::Display for ParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParentError::Cycle { greenlet, parent } => write!(
                f,
                "cannot make {parent} the parent of {greenlet}: it would create a parent cycle \
                 (the new parent is {greenlet} itself or one of its descendants)"
            ),
            ParentError::Main { greenlet } => {
                write!(
                    f,
                    "cannot set the parent of {greenlet}: a thread's main greenlet has no parent"
                )
            }
        }
    }
}

impl Error for ParentError {}
