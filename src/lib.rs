//! greenweave: stackful coroutines ("greenlets") for Rust, in the spirit of Python's
//! greenlet + gevent.
//!
//! This facade re-exports the workspace crates so applications depend on one crate:
//!
//! ```
//! use greenweave::greenlet::Greenlet;
//!
//! let echo = Greenlet::new(|first| {
//!     let n: i32 = first.get();
//!     n * 2
//! });
//! assert_eq!(echo.switch(21).get::<i32>(), 42);
//! assert!(echo.is_dead());
//! ```
#![forbid(unsafe_code)]

pub use greenweave_greenlet as greenlet;
