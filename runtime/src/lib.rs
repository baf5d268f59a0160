//! gevent's core for Rust: a per-thread hub that runs greenlets, switching whenever one
//! would block.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use greenweave_runtime::{joinall, sleep, spawn};
//!
//! let start = Instant::now();
//! let a = spawn(|| { sleep(Duration::from_millis(100)); "a" });
//! let b = spawn(|| { sleep(Duration::from_millis(50)); "b" });
//! let done: Vec<_> = joinall([a, b]).into_iter().map(Result::unwrap).collect();
//! assert_eq!(done, ["a", "b"]);
//! assert!(start.elapsed() < Duration::from_millis(200)); // 100 ms, not 150
//! ```
//!
//! There is no `run()` or `block_on()`: the thread's own code is the *main greenlet*,
//! and when it blocks (a `join`, a `sleep`, a lock) it switches to the thread's hub,
//! which runs the other greenlets until main can continue.
//!
//! - Tasks: [`spawn`], [`spawn_later`], [`Builder`], [`JoinHandle`] (`join`,
//!   `join_timeout`, `kill`), [`joinall`], [`killall`], [`wait_any`], [`iwait`].
//! - Time: [`sleep`], [`yield_now`], [`Timeout`], [`with_timeout`].
//! - Introspection: [`current`], [`greenlets`], [`active_count`].
//! - Blocking primitives, all built on one park/wake mechanism: [`sync`], [`queue`],
//!   [`pool`], [`local`].
//! - Networking: [`net`] (TCP, UDP, Unix sockets, `lookup_host`), [`server`]
//!   (`StreamServer`, `DatagramServer`), [`io`] (readiness of any fd).
//! - Beyond the hub: [`threadpool`] (`spawn_blocking` for file I/O and other truly
//!   blocking or CPU-bound work), [`workers`] (one hub per core),
//!   [`wait_for_thread`] (wake a greenlet from another OS thread).
//! - Child processes: [`process`] (`status`, `output`, `wait`, `wait_timeout` for
//!   std's `Command` and `Child`, parking only the calling greenlet); a plain `fork`
//!   gives the child a fresh hub (see [Fork](#fork)).
//!
//! Kills and timeouts are delivered at blocking points only, and once each, as in
//! gevent: the blocking call unwinds (with `GreenletExit`, or the [`Timeout`]'s
//! [`TimeoutFired`]), running destructors, which may block normally. A greenlet that
//! catches the unwind goes on running and is not interrupted again by the same kill
//! or timeout; [`JoinHandle::kill`] waits until the greenlet has died,
//! [`JoinHandle::kill_timeout`] bounds that wait, and a second kill is delivered again.
//! Code that must not unwind ([`coop`], the libc hooks of `greenweave-monkey`) gets the
//! interrupt as a value (an errno), which delivers it the same way. A deadlock
//! (everyone blocked, nothing pending that could wake anyone) panics in the blocked
//! main greenlet with a report of who waits on what.
//!
//! # Zero, huge and out-of-range arguments
//!
//! - A size that could never work (`Pool::new(0)`, `ThreadPool::new(0)`,
//!   `set_default_pool_size(0)`, `StreamServer::pool(0)`/`max_accept(0)`, a stack size
//!   outside 16 KiB..=1 GiB) is a programming error: it panics at the caller's line with
//!   a message naming the call and the argument. Validate sizes that come from users
//!   (command lines, config files) before passing them; the examples show how.
//! - A [`Duration`](std::time::Duration) too large to add to `Instant::now()` (up to
//!   `Duration::MAX`) means "never": [`sleep`] sleeps for ever, a [`Timeout`] never
//!   expires, [`spawn_later`] never starts (until killed), `*_timeout` calls wait like
//!   their untimed forms. A zero duration expires at once, except the socket timeouts
//!   (`set_read_timeout`, `connect_timeout`, `accept_timeout`), which return an
//!   `InvalidInput` error for zero, as std does.
//! - A queue's `maxsize` of 0 means unbounded (Python's and gevent's `Queue(0)`);
//!   `usize::MAX` is accepted and reserves nothing. [`workers`]`(0, f)` runs nothing and
//!   returns an empty `Vec`. Releasing a `Semaphore` past `usize::MAX` permits panics at
//!   the caller's line; a `BoundedSemaphore` returns a `ReleaseError` instead.
//!
//! # Thread exit and memory
//!
//! A thread's exit ends its greenlets and gives back everything its hub owns. The
//! greenlets still alive are killed, as [`killall`] would (once, at their blocking
//! point; one that never started never runs), and the hub runs until they have died,
//! so their destructors run and may block. One that catches its kill and blocks
//! again, or is still blocked in a destructor a second later, is *abandoned*: never
//! resumed, its task record and stack kept for the life of the process. Then every
//! stack, slab, timer, task record, fd registration and the reactor's own fds
//! (epoll, eventfd) are released: threads that come and go, and [`workers`] called
//! again and again, leave no memory behind. `Local` values of the main greenlet are
//! dropped first. On the process's main thread this runs when the process exits
//! normally. Nothing is ended (everything is abandoned, as a detached thread's work
//! is) when the thread exits from inside a spawned greenlet (`std::process::exit`
//! there, or the return of a forked child's main greenlet; see [Fork](#fork)).
//!
//! While a hub is idle, memory left behind by a burst of greenlets goes back to the
//! kernel: pooled stacks unused for a whole 200 ms period beyond the warm set of
//! `HOT_STACKS` per stack size (their slabs unmapped when wholly free), in steps of
//! under a millisecond between looks at the reactor, and the task registry's and run
//! queue's spare capacity. A hub that keeps busy does the same in smaller steps,
//! every thousand-odd maintenance passes. Spawn, join and switch do none of this work.
//!
//! # Fork
//!
//! A `fork` (a plain `libc::fork()`; no patching needed) follows POSIX's rule for
//! threads, with greenlets in the part of threads: in the child, only the greenlet that
//! called `fork` goes on, on a fresh hub of its thread. No readiness event, timer or
//! wake-up of one process reaches the other.
//!
//! - **The forking greenlet** goes on where it was, with a new epoll instance (the
//!   inherited one is closed without any `epoll_ctl`: its interest list is the
//!   parent's), a new waker, an empty run queue and no fd registrations. It may be the
//!   thread's main greenlet or a spawned one; either can spawn, sleep, use sockets and
//!   join the greenlets it spawns in the child. Its own [`Timeout`]s stay armed (a
//!   [`with_timeout`] around code that forks still bounds that code in the child);
//!   every other timer is dropped.
//! - **Its sockets and fds** keep working in both processes. An fd the parent's hub
//!   had registered (see [`io`]'s "Registrations") is unknown to the child's: it
//!   registers with the child's epoll instance at its first wait there, and its
//!   readiness starts unknown, so the child's first call on it is tried (data that
//!   arrived before the fork is found). The parent keeps its registrations: a close or
//!   drop in the child never removes them. A file shared by both processes is still
//!   one file: each byte is read by whichever process reads first.
//! - **Every other greenlet** of the forking thread is left behind: never resumed,
//!   unwound or dropped in the child (its destructors never run; its record and stack
//!   are the child's copy, kept for the life of the process). Its [`JoinHandle`] reads as finished: `join` returns
//!   [`JoinError::Killed`] (or the value, if it had finished before the fork), `kill`
//!   returns at once. [`greenlets`] does not list it, and waking it (setting an
//!   [`Event`](sync::Event) it waits on, sending to its queue) does nothing. What it
//!   held stays held, as what a vanished thread held does: a [`sync::Mutex`] it locked
//!   is never released in the child, a [`pool::Pool`] slot it took stays taken.
//! - **Other threads** do not exist in the child; their hubs are never touched, and
//!   waking one of their greenlets from the child does nothing.
//! - **Thread pools** ([`threadpool`]) lost their threads and start new ones as jobs
//!   come. Jobs queued or running at the fork are not run in the child: their
//!   [`BlockingHandle`](threadpool::BlockingHandle)s return `JoinError::Killed`
//!   (discarded) there, unless the job had finished before the fork.
//! - **A spawned greenlet that forked is the child's `main`**: when its function
//!   returns the child process exits, as a program does when `main` returns (status 0,
//!   or 101 if it panicked), even if greenlets it spawned are still running: join them
//!   first. Most children end with an `exec` or [`std::process::exit`] anyway.
//! - A `fork` from inside the hub itself (a `Drop` the hub runs) leaves every greenlet
//!   behind; the child exits with status 0 once the hub has nothing left to do.
//!
//! Raw greenlets of the greenlet crate, switched by hand, run only where code switches
//! to them, in the child as in the parent. With `greenweave-monkey` patched, the
//! child's hooks park on its fresh hub like the parent's; the blocking mode and socket
//! timeouts the hooks recorded for inherited fds are asked of the kernel in the child
//! (the file descriptions are shared with the parent, which may change them).
//!
//! # `panic = "unwind"` only
//!
//! A kill or an expired [`Timeout`] unwinds the greenlet's stack from its blocking call
//! (running its destructors, releasing its locks), and so does a parked greenlet that
//! is killed at thread exit. Under `panic = "abort"` every one of these would abort
//! the process, so greenweave refuses such a build at compile time (`compile_error!`
//! naming the setting) rather than support it.
#![deny(unsafe_code)]

// Kills, timeouts and dropping a suspended greenlet unwind the greenlet's stack; with
// `panic = "abort"` each would abort the whole process instead. Refused, not supported.
#[cfg(panic = "abort")]
compile_error!(
    "greenweave needs panic = \"unwind\": kills, timeouts and dropping a suspended greenlet \
     unwind its stack (GreenletExit), which would abort the process under panic = \"abort\"; \
     remove `panic = \"abort\"` from the Cargo profile (or `-C panic=abort` from RUSTFLAGS)"
);

#[doc(hidden)] // plumbing for greenweave-monkey, not a user API
pub mod coop;
mod deadlock;
#[allow(unsafe_code)]
mod fork;
#[allow(unsafe_code)]
mod hub;
mod injector;
pub mod io;
mod kept;
pub mod local;
#[cfg(all(test, loom))]
mod loom_model;
pub mod net;
#[allow(unsafe_code)]
mod park;
pub mod pool;
pub mod process;
pub mod queue;
mod remote;
mod report;
#[allow(unsafe_code)]
mod run_queue;
pub mod server;
mod signals;
mod spawn;
pub mod sync;
#[allow(unsafe_code)]
mod sys;
#[allow(unsafe_code)]
mod task;
mod thread_exit;
mod thread_sync;
pub mod threadpool;
mod time;
mod timeout;
mod timer;
mod trim;
mod workers;

#[doc(hidden)] // a tuning fact for benches and tests, not a user API
pub use hub::MAINTENANCE_INTERVAL;
pub use remote::{RemoteWaker, wait_for_thread};
pub use spawn::{
    Builder, JoinError, JoinHandle, JoinTimeoutError, iwait, joinall, killall, spawn, spawn_later,
    wait_any,
};
pub use task::{GreenletInfo, Interrupt, TaskState};
pub use time::{sleep, sleep_until, yield_now};
pub use timeout::{Elapsed, Timeout, TimeoutFired, with_timeout};
pub use workers::workers;

/// A snapshot of the running greenlet, as the runtime sees it
/// (`threading.current_thread()`): its id, name, spawn site and state at this moment.
/// For a handle that can be switched to, see `greenweave_greenlet::current`.
#[track_caller]
pub fn current_info() -> GreenletInfo {
    hub::with(|hub| GreenletInfo::of(&hub.current_task()))
}

/// The old name of [`current_info`].
#[deprecated(
    since = "0.2.0",
    note = "renamed `current_info`: it returns a snapshot, not a handle"
)]
#[track_caller]
pub fn current() -> GreenletInfo {
    current_info()
}

/// Every live greenlet the runtime knows on this thread: spawned ones, plus the main
/// greenlet once it has blocked (`threading.enumerate()`).
pub fn greenlets() -> Vec<GreenletInfo> {
    hub::with(|hub| hub.tasks().iter().map(|t| GreenletInfo::of(t)).collect())
}

/// How many greenlets [`greenlets`] would list (`threading.active_count()`).
pub fn active_count() -> usize {
    hub::with(|hub| hub.task_count())
}
