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
//! **Process-wide hooks.** By default greenweave installs a panic hook (naming the
//! greenlet, then calling the previous hook) when the first hub is made, and a
//! `SIGSEGV` handler for greenlet stack-overflow reports when the first greenlet
//! stack is. An application with its own panic hook or signal handling opts out first
//! thing: `greenweave::config::Config::new().panic_hook(false)
//! .stack_overflow_handler(false).apply()`. Diagnostics: [`stats()`], [`dump()`],
//! [`monitor`] (a blocking monitor, also `GREENWEAVE_MONITOR=100ms`; `dump_all`; a
//! dump on a signal); logging through `log` on the targets listed in [`log_targets`].
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
