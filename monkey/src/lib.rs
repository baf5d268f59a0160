//! gevent's `monkey.patch_all()` for Rust: after [`patch_all`], unmodified blocking code
//! (`std::net`, `std::thread::sleep`, blocking crates such as `ureq`, C libraries linked
//! into the program) parks the calling greenlet instead of blocking the OS thread.
//!
//! ```no_run
//! greenweave_monkey::patch_all(); // first thing in main
//!
//! let sleepers: Vec<_> = (0..3)
//!     .map(|_| greenweave_runtime::spawn(|| std::thread::sleep(std::time::Duration::from_millis(100))))
//!     .collect();
//! for s in sleepers {
//!     s.join().unwrap(); // three 100 ms sleeps take 100 ms in all, not 300
//! }
//! ```
//!
//! # How
//!
//! This crate defines `#[no_mangle] extern "C"` functions named like libc's blocking
//! calls (`read`, `recv`, `connect`, `accept4`, `poll`, `clock_nanosleep`, …). An
//! executable's definitions win over the C library's, so every caller in the process
//! goes through them. Each hook passes straight through to the real function (see
//! [`original`]) unless patching is on for its area **and** the caller is a greenlet on
//! a thread with a hub **and** not the hub itself; then it tries the call without
//! blocking and, if it would block, parks the greenlet until the fd is ready or the
//! deadline passes, and retries. Blocking semantics are kept exactly as the caller
//! expects them (see each hook's docs).
//!
//! Waits on other threads ([`Area::Threads`]: a `syscall` hook for futex waits and
//! wakes, and `pthread_join`) park the greenlet too, so std's `Mutex`, `Condvar`,
//! `RwLock`, `Once`, `Barrier`, mpsc channels, `thread::park` and `JoinHandle::join`
//! let other greenlets run while one waits, and a wake from any thread reaches it.
//! parking_lot's waits cannot be shared by greenlets and still block the thread.
//!
//! Child-process waits ([`Area::Process`]: `waitpid`, `wait4`, `waitid` for one child,
//! so `Child::wait`, `Command::status` and `Command::output`) park the greenlet on a
//! pidfd until the child exits; waits for any child or a process group pass through.
//!
//! No hook parks while the calling thread is inside a tokio runtime (`block_on`): tokio
//! records the entered runtime per thread, so a second greenlet entering it meanwhile
//! would panic; there the real, blocking call is made (the default `tokio` feature).
//!
//! Kills and timeouts never unwind through a hook: a parked hook returns with an errno
//! (`ECANCELED` for a kill, `ETIMEDOUT` for an expired `Timeout`). That *delivers* the
//! interrupt, once, as an unwind would: code that logs the error and goes on (the
//! ordinary accept loop) blocks normally at its next call and is not killed again;
//! `JoinHandle::kill` then waits until it finishes on its own (`kill_timeout` bounds
//! the wait) and a second kill is delivered again. Code that returns the error ends
//! the greenlet, as a kill should. A hook that moved some bytes before the interrupt
//! returns that progress and leaves the interrupt pending for the next blocking call;
//! futex waits (std's locks, channels, joins) never report one and leave it pending.
//!
//! # Signals
//!
//! Signal handlers interrupt patched calls as they interrupt system calls (signal(7),
//! "Interruption of system calls and library functions by signal handlers"). Handlers
//! installed with `sigaction`, `signal` or `bsd_signal` (and `siginterrupt`'s changes)
//! go through hooks too. When one runs on a thread with a hub, each greenlet of that
//! thread that was parked *at that moment* in a call the kernel would interrupt
//! returns `EINTR` (or the bytes it moved first), at the hub's next maintenance pass:
//! at once if the hub was idle, within 61 greenlet runs if it was busy.
//!
//! | handler installed | these parked calls return `EINTR` | these wait on |
//! |---|---|---|
//! | without `SA_RESTART` | every hooked call that parks: `read`/`write`/`readv`/`writev`, `recv*`/`send*`, `sendfile`/`splice`, `accept`/`accept4`, `connect` (the connection goes on; a later blocking `connect` waits for it), `poll`/`ppoll`/`select`/`pselect`, `epoll_wait` (opt-in), the sleeps, `waitpid`/`wait4`/`waitid` | futex waits (std and parking_lot locks, condvars, channels), `pthread_join`, `getaddrinfo` |
//! | with `SA_RESTART` (`signal`, signal-hook) | `poll`/`ppoll`/`select`/`pselect`, `epoll_wait`, the sleeps, socket calls with a `SO_RCVTIMEO`/`SO_SNDTIMEO` timeout: the kernel never restarts these | every other call (the kernel restarts them), and those of the row above |
//!
//! The kernel's details are kept: `nanosleep`/`clock_nanosleep` write the time not
//! slept to `rem`, `sleep` returns the seconds left, `select` the time left. Not
//! affected: greenlets that were running or ready when the handler ran, or parked only
//! after it; greenlets of other threads (a signal sent to the *process* is handled by
//! one thread of the kernel's choosing: `pthread_kill` the hub's thread, or block the
//! signal in the others); futex waits (std retries them at once, a lock cannot fail,
//! and a spurious wake-up is allowed anyway); calls that pass straight through (they
//! block the thread, and the kernel interrupts them itself). std retries most calls on
//! `EINTR` (`thread::sleep`, `read_exact`, `write_all`, `accept`, `connect`,
//! `Child::wait`), so std code rarely sees a difference; a plain `Read::read` returns
//! `ErrorKind::Interrupted`. With a handler installed, a greenlet in a wait only a
//! signal can end (`poll` with no fds and no timeout: the `pause` idiom) is waited for,
//! not reported as a deadlock. `sigaction`'s `oldact` reports the user's handler and
//! flags, so chaining and restoring handlers work as before; unpatched, the hooks only
//! pass the handlers on. The `signal` module has the details and the limits. For a
//! clean shutdown on Ctrl-C or `SIGTERM`, see the recipe in
//! [`greenweave_runtime::server`] (it needs no patching).
//!
//! # What is covered
//!
//! | Area | Calls |
//! |---|---|
//! | [`Area::Socket`] | `read`, `write`, `readv`, `writev` (sockets, pipes, FIFOs, devices); `recv`, `recvfrom`, `recvmsg`, `recvmmsg`, `send`, `sendto`, `sendmsg`, `sendmmsg`; `sendfile`, `sendfile64`, `splice`; `connect`, `accept`, `accept4`; `poll`, `ppoll`, `select`, `pselect`; fd bookkeeping (kind, blocking mode, socket timeouts): `socket`, `socketpair`, `close`, `dup*`, `fcntl`, `ioctl(FIONBIO)`, `setsockopt`, `pipe*` |
//! | [`Area::Time`] | `nanosleep`, `clock_nanosleep`, `usleep`, `sleep` |
//! | [`Area::Dns`] | `getaddrinfo` (on the thread pool) |
//! | [`Area::Threads`] | `syscall` (futex numbers only: std's locks, condvars, `Once`, `Barrier`, channels, `thread::park`; parking_lot's per-thread waits block the thread), `pthread_join` |
//! | [`Area::Process`] | `waitpid`, `wait4`, `waitid` (one child) |
//! | [`Area::EventLoop`] (opt-in, [`patch_event_loops`]; not in `patch_all`) | `epoll_wait`, `epoll_pwait` |
//! | any area patched (the hooks are always in place) | `sigaction`, `signal`, `bsd_signal`, `siginterrupt`: see [Signals](#signals) |
//!
//! Passed straight through on purpose, even in a greenlet:
//!
//! - **The standard streams.** `read`/`write`/`readv`/`writev` on fds 0, 1 and 2
//!   never park. std's stdout and stderr locks are reentrant and owned by the OS
//!   thread, with a `RefCell` borrow held across the `write`: a `println!` parked on a
//!   full pipe would make the next greenlet's `println!` panic (`RefCell already
//!   borrowed`); glibc's `FILE` locks (and stdin's) have the same shape. The thread
//!   waits while a slow reader drains stdout instead; see the `rw` module.
//! - **Regular files, directories, block devices and ttys**, which epoll cannot wait
//!   for.
//! - **Calls with a signal mask** (`ppoll`, `pselect`, `epoll_pwait` given one): the
//!   mask belongs to the thread, which runs other greenlets while one is parked.
//! - **Calls that never block**: zero timeouts, `MSG_DONTWAIT`, `SPLICE_F_NONBLOCK`,
//!   fds the user made non-blocking (the kernel's `EAGAIN`).
//!
//! # Popular crates and std APIs, measured
//!
//! Each row is a test in `monkey/tests` (or `tests/` at the root) that runs the code
//! unmodified in greenlets after `patch_all()`, against real servers, threads or
//! processes; times are from a release build on a 2-core VM.
//!
//! | unmodified code | cooperative? | measured | test |
//! |---|---|---|---|
//! | `std::net`, `ureq` | yes | the downloader: 500 files, 50 at a time | `ureq.rs`, `net.rs` |
//! | `std::thread::sleep` | yes | 100 × 200 ms sleeps in < 1 s | `time.rs` |
//! | std `Mutex`, `RwLock`, `Condvar`, `Barrier`, `Once` | yes (futex) | `Condvar` hand-over 0.27 µs between greenlets, 22 µs between threads (81×) | `futex_std.rs`, `futex_wakes.rs`, bench `futex` |
//! | std mpsc, `thread::park`/`park_timeout` | yes (the shared park word) | 20 receivers fed by threads; 10,000 messages each way | `futex_std.rs`, `futex_parker_gaps.rs` |
//! | `thread::spawn(..).join()` | yes (`pthread_join` on a helper thread) | 20 joins of 200 ms threads: 0.21 s | `futex_std.rs` |
//! | `reqwest::blocking` (shared client, or `get`) | yes | 100 requests with 0.3 s latency: 0.38 s (serial 30 s) | `crates_http.rs` |
//! | `tiny_http` (handlers in greenlets) | yes | 200 requests × 0.2 s from another process: 0.42 s | `crates_tiny_http.rs` |
//! | `Command::status`/`output`, `Child::wait` | yes (pidfd) | 50 × `sleep 0.3`: 0.34 s | `process.rs` |
//! | `println!`/`eprintln!` into a full pipe | never parks (the thread waits), never panics | 100 greenlets × 1,000 lines, all whole | `stdio.rs` |
//! | `postgres` (sync client) | correct but serial: its tokio `block_on` waits in `epoll_wait` | 50 × `pg_sleep(0.3)`: 15.1 s; with `threadpool::Offload`: 0.34 s | `tests/postgres.rs` |
//! | `parking_lot` locks | no: its per-thread queue node cannot be shared, so waits block the thread (a stall over 1 s is logged) | | `futex_parking_lot.rs` |
//! | `r2d2` pools (parking_lot inside) | not by itself; take connections with `threadpool::spawn_blocking(|| pool.get())` | 10 users on 2 connections, hub never stalls | `r2d2_pool.rs` |
//! | a bare `mio::Poll` | opt-in: [`patch_event_loops`] | 10 greenlets in their own `Poll` at once | `event_loop.rs` |
//! | tokio `block_on` in greenlets | correct but serial: inside a tokio runtime no hook parks (tokio's entered-runtime record is per thread; a second greenlet entering would panic); use `threadpool::Offload` | 4 × `block_on` on a multi-thread runtime, no panic | `tests/tokio_block_on.rs` |
//!
//! Greenweave's own low-level code (the stack-overflow report in the `SIGSEGV`
//! handler, this crate's fatal errors) writes with the raw system call, never through
//! a hook (nor through `syscall`, which is hooked too).
#![allow(unsafe_code)]

mod ctl;
mod dns;
mod epoll;
mod errno;
mod fd;
mod foreign;
mod futex;
mod iov;
mod join;
mod mmsg;
mod msg;
mod net;
mod poll;
mod process;
mod real;
mod rw;
mod signal;
mod sock;
mod splice;
mod state;
mod thread_sync;
mod time;
mod wait;

pub use state::{
    Area, is_patched, patch_all, patch_dns, patch_event_loops, patch_process, patch_socket,
    patch_threads, patch_time,
};

/// The real libc functions, bypassing the hooks (gevent's `monkey.get_original`).
pub mod original {
    pub use crate::ctl::real::*;
    pub use crate::dns::real::*;
    pub use crate::epoll::real::*;
    pub use crate::futex::real::*;
    pub use crate::join::real::*;
    pub use crate::mmsg::real::*;
    pub use crate::net::real::*;
    pub use crate::poll::real::*;
    pub use crate::process::real::*;
    pub use crate::rw::real::*;
    pub use crate::signal::real::*;
    pub use crate::sock::real::*;
    pub use crate::splice::real::*;
    pub use crate::time::real::*;
}

/// Makes sure the object code holding the hooks is linked into the program: an rlib's
/// objects are only linked if something references them, and nothing in Rust code
/// calls `read` by way of this crate. `patch_*` calls this, so any program that patches
/// gets the hooks. Each hook module lists its functions in its `HOOKS` array.
#[inline(never)]
fn link_hooks() {
    let all: &[&[*const ()]] = &[
        ctl::HOOKS,
        dns::HOOKS,
        futex::HOOKS,
        join::HOOKS,
        epoll::HOOKS,
        mmsg::HOOKS,
        net::HOOKS,
        poll::HOOKS,
        process::HOOKS,
        rw::HOOKS,
        signal::HOOKS,
        sock::HOOKS,
        splice::HOOKS,
        time::HOOKS,
    ];
    std::hint::black_box(all);
}
