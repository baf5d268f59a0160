//! Cooperative waiting for code that must not unwind: the building blocks of the libc
//! hooks in `greenweave-monkey`.
//!
//! Rust-level blocking calls (`sleep`, `io::wait_readable`, `spawn_blocking`) unwind
//! when the greenlet is killed or its `Timeout` expires. A hook called from C (or from
//! std through an `extern "C"` function) must never unwind, so the functions here return
//! the interrupt as `Err(Interrupt)` instead; the hook turns it into an errno
//! (`ECANCELED` for a kill, `ETIMEDOUT` for a timeout). The interrupt stays pending
//! and is raised at the greenlet's next Rust-level blocking call.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use greenweave_runtime::coop;
//!
//! // On a thread that has not used greenweave there is nothing to park on: hooks pass
//! // straight through to the kernel.
//! let plain = std::thread::spawn(coop::can_park).join().unwrap();
//! assert!(!plain);
//!
//! greenweave_runtime::spawn(|| ()).join().unwrap(); // this thread now has a hub
//! assert!(coop::can_park());
//! let deadline = Instant::now() + Duration::from_millis(5);
//! assert_eq!(coop::sleep_until(Some(deadline)), Ok(()));
//! ```

use std::os::fd::RawFd;
use std::time::Instant;

use crate::hub;
use crate::io::{self, Direction};
use crate::park;
use crate::task::{Describe, Interrupt, Wake};

pub use crate::io::notify_closed;

/// Whether a blocking call made here should park the current greenlet instead of
/// blocking the OS thread: this thread has a hub (it has used greenweave) and the
/// caller is not the hub itself. Two thread-local reads.
#[inline]
pub fn can_park() -> bool {
    hub::try_with_existing(|hub| !hub.greenlet.is_current()).unwrap_or(false)
}

/// Parks until `fd` is readable (or writable), the deadline passes (inner
/// `Err(TimedOut)`), or an interrupt arrives (`Err`).
#[track_caller]
pub fn wait_fd(
    fd: RawFd,
    writable: bool,
    deadline: Option<Instant>,
) -> Result<std::io::Result<()>, Interrupt> {
    let direction = if writable {
        Direction::Write
    } else {
        Direction::Read
    };
    io::wait(fd, direction, deadline)
}

struct Sleeping;

impl Describe for Sleeping {
    fn describe(&self, out: &mut String) {
        out.push_str("sleep in a blocking call (patched libc)");
    }
}

/// Parks until `deadline` (`None`: until interrupted).
#[track_caller]
pub fn sleep_until(deadline: Option<Instant>) -> Result<(), Interrupt> {
    loop {
        if park::park(&Sleeping, deadline, |_| {})? == Wake::TimedOut {
            return Ok(());
        }
    }
}

/// Runs `f` on the default thread pool and parks until it is done. A panic in `f`
/// comes back as the inner `Err`; a kill or timeout while waiting as the outer `Err`
/// (the job keeps running and its value is dropped when it finishes).
#[track_caller]
pub fn run_blocking<F, T>(f: F) -> Result<std::thread::Result<T>, Interrupt>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let handle = crate::threadpool::default_pool().spawn(f);
    Ok(handle.join_or_interrupt()?.map_err(|err| match err {
        crate::JoinError::Panicked(payload) => payload,
        crate::JoinError::Killed => Box::new("thread-pool job discarded unrun"),
    }))
}
