//! greenweave: stackful coroutines ("greenlets") for Rust, in the spirit of Python's
//! greenlet + gevent.
//!
//! This facade re-exports the workspace crates so applications depend on one crate.
//! Blocking-style code runs concurrently on one thread:
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! let start = Instant::now();
//! let slow = greenweave::spawn(|| { greenweave::sleep(Duration::from_millis(100)); 2 });
//! let fast = greenweave::spawn(|| { greenweave::sleep(Duration::from_millis(50)); 1 });
//! assert_eq!(slow.join().unwrap() + fast.join().unwrap(), 3);
//! assert!(start.elapsed() < Duration::from_millis(200));
//! ```
//!
//! The raw greenlet layer is `greenweave::greenlet`:
//!
//! ```
//! use greenweave::greenlet::Greenlet;
//!
//! let echo = Greenlet::new(|first| first.get::<i32>() * 2);
//! assert_eq!(echo.switch(21).get::<i32>(), 42);
//! assert!(echo.is_dead());
//! ```
#![forbid(unsafe_code)]

pub use greenweave_greenlet as greenlet;
pub use greenweave_monkey as monkey;
pub use greenweave_runtime::*;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
