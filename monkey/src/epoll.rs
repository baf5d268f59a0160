//! `epoll_wait`, `epoll_pwait`: greenlets running their own event loop (plain `mio`,
//! a C library's epoll loop). Opt-in: [`Area::EventLoop`](crate::Area::EventLoop),
//! switched on by [`patch_event_loops`](crate::patch_event_loops), **not** by
//! `patch_all`.
//!
//! An epoll fd is itself pollable: it is readable while events are ready on it. So a
//! cooperative call with a timeout other than zero first makes the real call with a
//! zero timeout (the events, their order and errors are the kernel's); if nothing is
//! ready it parks the greenlet on the epoll fd in the hub's reactor until it is
//! readable or the timeout passes, then makes the zero-timeout call again, and so on.
//! Zero timeouts pass straight through, and so does `epoll_pwait` with a signal mask
//! (a parked greenlet cannot let a signal in for one caller: see the `poll` module).
//! A kill gives `ECANCELED`, an expired `Timeout` `ETIMEDOUT`.
//!
//! The hub's own `epoll_wait` is never affected: the hub is never a cooperative caller
//! (the first check of every hook), and threads without a hub pass straight through.
//!
//! # Why it is not part of `patch_all`
//!
//! An event loop may keep per-OS-thread state around its `epoll_wait`. tokio does:
//! `Runtime::block_on` marks the thread as inside a runtime for the length of the call,
//! and the `postgres` sync client (like other `blocking` wrappers over async crates)
//! calls `block_on` on the calling thread. With this hook on, a greenlet parked in
//! tokio's `epoll_wait` leaves that mark set, and the next greenlet of the thread to
//! enter tokio panics: "Cannot start a runtime from within a runtime". Switch event
//! loops on only when every loop that runs in greenlets keeps its state per loop
//! object, as `mio::Poll` does; leave it off for tokio and anything built on it.

use std::time::{Duration, Instant};

use greenweave_runtime::coop::Eintr;
use libc::{c_int, epoll_event, sigset_t};

use greenweave_runtime::io::Direction;

use crate::Area;
use crate::errno::{preserving_errno, set_errno};
use crate::state::cooperative;
use crate::wait::{Stop, wait_fd};

/// The real functions.
pub mod real {
    use libc::{c_int, epoll_event, sigset_t};

    crate::real::real_fns! {
        /// libc's `epoll_wait`.
        fn epoll_wait(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: c_int) -> c_int;
        /// libc's `epoll_pwait`.
        fn epoll_pwait(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: c_int, sigmask: *const sigset_t) -> c_int;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[epoll_wait as *const (), epoll_pwait as *const ()];

/// Hook for `epoll_wait(2)`.
///
/// # Safety
///
/// As `epoll_wait(2)`: `events` is writable for `maxevents` events.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    if timeout == 0 || !cooperative(Area::EventLoop) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::epoll_wait(epfd, events, maxevents, timeout) };
    }
    // SAFETY: as the caller guarantees.
    let probe = || unsafe { real::epoll_wait(epfd, events, maxevents, 0) };
    // SAFETY: as above, with the time left.
    let blocking = |ms| unsafe { real::epoll_wait(epfd, events, maxevents, ms) };
    preserving_errno(|| wait_loop(epfd, timeout, probe, blocking))
}

/// Hook for `epoll_pwait(2)`. A call with a signal mask passes straight through.
///
/// # Safety
///
/// As `epoll_pwait(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
    sigmask: *const sigset_t,
) -> c_int {
    if timeout == 0 || !sigmask.is_null() || !cooperative(Area::EventLoop) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::epoll_pwait(epfd, events, maxevents, timeout, sigmask) };
    }
    let null = std::ptr::null();
    // SAFETY: as the caller guarantees (no mask).
    let probe = || unsafe { real::epoll_pwait(epfd, events, maxevents, 0, null) };
    // SAFETY: as above, with the time left.
    let blocking = |ms| unsafe { real::epoll_pwait(epfd, events, maxevents, ms, null) };
    preserving_errno(|| wait_loop(epfd, timeout, probe, blocking))
}

/// Probes with a zero timeout until events come or `timeout_ms` (negative: none)
/// passes, parking on `epfd` in between. `blocking(ms)` is the real call, for an fd
/// the reactor refuses.
fn wait_loop(
    epfd: c_int,
    timeout_ms: c_int,
    probe: impl Fn() -> c_int,
    blocking: impl Fn(c_int) -> c_int,
) -> c_int {
    let deadline = u64::try_from(timeout_ms)
        .ok()
        .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
    loop {
        // Events or an error (a bad fd or arguments: the kernel's answer at once).
        let n = probe();
        if n != 0 || deadline.is_some_and(|d| Instant::now() >= d) {
            return n;
        }
        match wait_fd(epfd, Direction::Read, deadline, Eintr::Always) {
            // Readable, timed out, or closed under the wait: the next probe tells.
            Ok(()) | Err(Stop::TimedOut) | Err(Stop::Fail(libc::EBADF)) => {}
            Err(Stop::Fail(errno)) => {
                set_errno(errno);
                return -1;
            }
            Err(Stop::Unwatchable) => {
                let left = deadline.map_or(-1, |d| {
                    let ms = d.saturating_duration_since(Instant::now()).as_millis();
                    c_int::try_from(ms).unwrap_or(c_int::MAX)
                });
                return blocking(left);
            }
        }
    }
}
