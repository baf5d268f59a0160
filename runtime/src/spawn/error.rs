//! Why a join did not produce a value.

use std::any::Any;
use std::fmt;

use super::JoinHandle;
use crate::timeout::TimeoutFired;

/// Why a greenlet did not produce a value.
pub enum JoinError {
    /// Its function panicked; the payload is what `panic!` was given.
    Panicked(Box<dyn Any + Send>),
    /// It was killed (before it started, or at a blocking point).
    Killed,
}

impl JoinError {
    /// The panic message, if the payload is a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panicked(p) => p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str)),
            JoinError::Killed => None,
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(_) => write!(
                f,
                "Panicked({:?})",
                self.panic_message().unwrap_or("<non-string payload>")
            ),
            JoinError::Killed => f.write_str("Killed"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) if p.is::<TimeoutFired>() => {
                f.write_str("greenlet died of an uncaught Timeout")
            }
            JoinError::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "greenlet panicked: {msg}"),
                None => f.write_str("greenlet panicked"),
            },
            JoinError::Killed => f.write_str("greenlet was killed"),
        }
    }
}

impl std::error::Error for JoinError {}

/// The error of [`JoinHandle::join_timeout`]: the handle comes back when time runs out.
pub enum JoinTimeoutError<T> {
    /// The greenlet is still running; here is its handle.
    Elapsed(JoinHandle<T>),
    /// It finished without a value.
    Join(JoinError),
}

impl<T> fmt::Debug for JoinTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinTimeoutError::Elapsed(h) => write!(f, "Elapsed({})", h.task),
            JoinTimeoutError::Join(e) => write!(f, "Join({e:?})"),
        }
    }
}

impl<T> fmt::Display for JoinTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinTimeoutError::Elapsed(h) => write!(
                f,
                "{} is still running after the join timeout (the error holds its handle)",
                h.task
            ),
            JoinTimeoutError::Join(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<T> std::error::Error for JoinTimeoutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JoinTimeoutError::Elapsed(_) => None,
            JoinTimeoutError::Join(e) => Some(e),
        }
    }
}
