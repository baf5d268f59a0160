//! Cooperative waiting for code that must not unwind: the building blocks of the libc
//! hooks in `greenweave-monkey`.
//!
//! Rust-level blocking calls (`sleep`, `io::wait_readable`, `spawn_blocking`) unwind
//! when the greenlet is killed or its `Timeout` expires. A hook called from C (or from
//! std through an `extern "C"` function) must never unwind, so the functions here return
//! the interrupt as `Err(Interrupt)` instead; the hook turns it into an errno
//! (`ECANCELED` for a kill, `ETIMEDOUT` for a timeout). Returning it delivers it, as an
//! unwind would: it is pending no more, so a caller that logs the error and goes on
//! (the ordinary server loop) blocks normally at its next call, and a later kill is
//! delivered again. A hook that got an interrupt but answers something else (partial
//! progress, as the kernel does for a signal) hands it back with [`put_back`].
//!
//! Signal handlers end waits too, as they end system calls: a wait started with an
//! [`Eintr`] class other than `Never` comes back with an inner `Err` of kind
//! `Interrupted` (`EINTR`) when a handler run by [`run_signal_handler`] ran on this
//! thread while it was parked, and the class says that handler interrupts it (see
//! [`Eintr`]). That is no interrupt in the sense above: nothing is pending afterwards.
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
//! assert!(matches!(coop::sleep_until(Some(deadline), coop::Eintr::Always), Ok(Ok(()))));
//! ```

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::hub;
use crate::io::{self, Direction, Keep};
use crate::park;
use crate::task::{Describe, Interrupt, Wake};

pub use crate::fork::on_child as on_fork_child;
pub use crate::io::notify_closed;
pub use crate::kept::keep as keep_for_ever;
pub use crate::remote::ThreadWaker;
use crate::signals::Interruptible;
pub use crate::signals::{Eintr, expect_signals, run_signal_handler};

/// Whether a blocking call made here should park the current greenlet instead of
/// blocking the OS thread: this thread has a hub (it has used greenweave), the caller
/// is not the hub itself, nor a signal handler run by [`run_signal_handler`]. Two
/// thread-local reads and a load.
#[inline]
pub fn can_park() -> bool {
    hub::try_with_existing(|hub| {
        !hub.greenlet.is_current() && hub.signal_handlers_running.load(Ordering::Relaxed) == 0
    })
    .unwrap_or(false)
}

/// Parks until `fd` is ready for `direction`, the deadline passes (inner
/// `Err(TimedOut)`), a signal handler that `eintr` names runs on this thread (inner
/// `Err` with `EINTR`), or an interrupt arrives (`Err`). For a caller that has just
/// found the fd not ready (an `EAGAIN`, a zero-timeout poll): it parks until epoll
/// reports the fd ready, and the fd stays registered with this thread's hub
/// afterwards, until [`notify_closed`] reports its close (see [`io`] for the rules).
/// An fd whose close nobody will report takes [`wait_fd_once`].
#[track_caller]
pub fn wait_fd(
    fd: RawFd,
    direction: Direction,
    deadline: Option<Instant>,
    eintr: Eintr,
) -> Result<std::io::Result<()>, Interrupt> {
    let here = hub::Here::new();
    let _signals = Interruptible::enter(hub::get(&here), eintr);
    io::wait(fd, direction, deadline, Keep::Registered)
}

/// [`wait_fd`] for an fd registered for this wait only (a pidfd the caller opens and
/// closes itself with a raw system call). The caller need not have looked first: epoll
/// reports the fd's current readiness.
#[track_caller]
pub fn wait_fd_once(
    fd: RawFd,
    direction: Direction,
    deadline: Option<Instant>,
    eintr: Eintr,
) -> Result<std::io::Result<()>, Interrupt> {
    let here = hub::Here::new();
    let _signals = Interruptible::enter(hub::get(&here), eintr);
    io::wait(fd, direction, deadline, Keep::Once)
}

/// Whether a transfer on `fd` in `direction` is worth trying now: the last
/// event from epoll said it was ready and no attempt since found it would block, or
/// this thread's hub keeps no registration of it (nothing known: try). A `false` means
/// an attempt would find nothing (or no room) unless the kernel raised an event this
/// hub has not collected yet: a caller that would park on `EAGAIN` can park at once.
///
/// Out of line: one call, in which the runtime's table lookup is inlined (the lookup's
/// own inlining is left to the runtime crate's needs).
pub fn fd_ready(fd: RawFd, direction: Direction) -> bool {
    io::is_ready(fd, direction)
}

/// Records that a transfer on `fd` found it not ready without parking (a read of a TCP
/// stream that returned less than asked: the kernel had no more), so the next one
/// waits for an event before trying. An `EAGAIN` followed by [`wait_fd`] needs no call:
/// the wait records it.
/// Out of line, as [`fd_ready`].
pub fn fd_not_ready(fd: RawFd, direction: Direction) {
    io::clear_ready(fd, direction);
}

struct Sleeping;

impl Describe for Sleeping {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Timer
    }

    fn describe(&self, out: &mut String) {
        out.push_str("sleep in a blocking call (patched libc)");
    }
}

/// Parks until `deadline` (`None`: until interrupted), or until a signal handler
/// that `eintr` names runs on this thread (inner `Err` with `EINTR`).
#[track_caller]
pub fn sleep_until(
    deadline: Option<Instant>,
    eintr: Eintr,
) -> Result<std::io::Result<()>, Interrupt> {
    let here = hub::Here::new();
    let _signals = Interruptible::enter(hub::get(&here), eintr);
    loop {
        match park::park(&Sleeping, deadline, |_| {})? {
            Wake::TimedOut => return Ok(Ok(())),
            Wake::Signal => return Ok(Err(std::io::Error::from_raw_os_error(libc::EINTR))),
            Wake::Notified | Wake::Interrupted => {}
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

/// Makes an interrupt that one of these functions returned pending again, for the
/// current greenlet's next blocking call: for a hook that does not report it (it
/// returns the bytes it moved before the interrupt, as the kernel would). An interrupt
/// that is neither reported nor put back is lost.
#[track_caller]
pub fn put_back(interrupt: Interrupt) {
    park::put_back(interrupt);
}

/// How a [`park_external`] wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ExternalWake {
    /// A [`ThreadWaker`] woke it.
    Woken,
    /// The deadline passed.
    TimedOut,
    /// It ended early for a reason of the greenlet's own (a kill or an expired
    /// `Timeout`, which stay pending for its next interruptible blocking call): to the
    /// caller, a spurious wake-up.
    Spurious,
    /// Nothing can ever end the wait: the hub's deadlock report, addressed to this
    /// greenlet.
    Deadlock(String),
}

/// Describes a wait with a closure.
struct DescribeWith<'a>(&'a dyn Fn(&mut String));

impl Describe for DescribeWith<'_> {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Futex
    }

    fn describe(&self, out: &mut String) {
        (self.0)(out)
    }
}

/// Parks until the [`ThreadWaker`] handed to `register` is woken (from any thread),
/// `deadline` passes, or the wait ends spuriously; never fails with an interrupt, so it
/// suits waits whose callers cannot take an error (a futex wait in std's
/// `Mutex::lock` retries at once: an error there would spin for ever). A kill or an
/// expired `Timeout` ends the wait as [`ExternalWake::Spurious`] and stays pending.
///
/// While the wait lasts, the hub counts it as something another thread may end, so
/// it reports no deadlock unless the process has no other thread; then the report
/// comes back as [`ExternalWake::Deadlock`]. `describe` says what is waited on, for
/// that report and [`greenlets`](crate::greenlets).
///
/// ```
/// use greenweave_runtime::coop::{self, ExternalWake};
///
/// greenweave_runtime::spawn(|| ()).join().unwrap(); // this thread has a hub
/// let woken = coop::park_external(&|out| out.push_str("a reply from a thread"), None, |waker| {
///     std::thread::spawn(move || waker.wake());
/// });
/// assert_eq!(woken, ExternalWake::Woken);
/// ```
#[track_caller]
pub fn park_external(
    describe: &dyn Fn(&mut String),
    deadline: Option<Instant>,
    register: impl FnOnce(ThreadWaker),
) -> ExternalWake {
    let here = hub::Here::new();
    let hub = hub::get(&here);
    hub.external_waits.set(hub.external_waits.get() + 1);
    let shared = hub.remote.borrow().clone();
    let woken = park::park_shielded(&DescribeWith(describe), deadline, |token| {
        register(ThreadWaker::new(shared, &token));
    });
    hub.external_waits.set(hub.external_waits.get() - 1);
    match woken {
        Ok(Wake::Notified) => ExternalWake::Woken,
        Ok(Wake::TimedOut) => ExternalWake::TimedOut,
        Ok(Wake::Interrupted | Wake::Signal) => ExternalWake::Spurious,
        Err(report) => ExternalWake::Deadlock(report),
    }
}

/// When a [`on_maintenance`] hook is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maintenance {
    /// At the start of every maintenance pass: every `MAINTENANCE_INTERVAL` greenlet
    /// runs while the hub stays busy, and whenever its run queue empties.
    Pass,
    /// Right before the hub blocks in `epoll_wait` (nothing is ready; no greenlet runs
    /// until [`AfterSleep`](Self::AfterSleep)). Greenlets woken here (through a
    /// [`ThreadWaker`], which wakes the reactor) end the sleep at once.
    BeforeSleep,
    /// Right after that `epoll_wait` returned, before any greenlet runs.
    AfterSleep,
}

/// Has the hub of this thread call `hook` at each [`Maintenance`] point. The hook
/// runs on the hub greenlet, so it must not block; it may wake greenlets (through a
/// [`ThreadWaker`]). One hook per thread: a second call replaces the first. For state
/// the hook must keep between greenlet runs (the monkey layer's shared per-thread
/// parking word).
#[track_caller]
pub fn on_maintenance(hook: fn(Maintenance)) {
    hub::with(|hub| hub.maintenance_hook.set(Some(hook)));
}
