//! `poll`, `ppoll`, `select`, `pselect`.
//!
//! A cooperative call with a timeout other than zero first polls with a zero timeout
//! (the real call, so the result, `revents`, the fd sets and errors are the kernel's);
//! if nothing is ready it parks the greenlet until something may be, then polls again,
//! and so on until something is ready or the timeout has passed, when the last
//! zero-timeout poll is the answer. Calls with a zero timeout pass straight through.
//!
//! How it parks: with no fds, on a timer (a sleep); with one fd waited on for reading
//! only or for writing only (the common case: `std`'s `connect_timeout`, `ureq`), on
//! that fd in the hub's reactor; otherwise on a private epoll instance holding every
//! fd with its events, which becomes readable when any of them is ready (an epoll fd
//! is itself pollable), so any number of fds costs one wait. Should epoll refuse an fd
//! it could never report on, the hook falls back to re-polling with a 1–10 ms
//! cooperative back-off.
//!
//! `select` writes the time not slept back into its `timeout`, as Linux does; `ppoll`
//! and `pselect` leave theirs alone, as glibc does.
//!
//! # Signal masks
//!
//! `ppoll` and `pselect` with a signal mask pass straight through (block the thread,
//! as unpatched); with a null mask they are `poll` and `select` with a `timespec`.
//! The mask exists for the race-free wait for a signal: block it, check a flag, then
//! wait with the mask that unblocks it, so a signal arriving at any point ends the
//! wait with `EINTR`. A parked greenlet cannot offer that. The mask belongs to the
//! thread, and while the greenlet is parked the thread runs other greenlets, which
//! must keep the thread's own mask; a signal the caller meant to let in would stay
//! pending until the greenlet woke for another reason (an fd, the timeout), possibly
//! never. Waking on a `signalfd` would not do either: a signal directed at the process
//! can be taken by another thread, and the handler must run on this thread, under the
//! caller's mask, inside the call. So only the real call keeps the contract.

use std::time::{Duration, Instant};

use greenweave_runtime::coop::Eintr;
use libc::{c_int, c_short, fd_set, nfds_t, pollfd, sigset_t, timespec, timeval};

use greenweave_runtime::io::Direction;

use crate::errno::{preserving_errno, set_errno};
use crate::wait::{Stop, back_off, cooperative_socket, sleep_until, wait_fd, wait_fd_once};

/// The real functions.
pub mod real {
    use libc::{c_int, fd_set, nfds_t, pollfd, sigset_t, timespec, timeval};

    crate::real::real_fns! {
        /// libc's `poll`.
        fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int;
        /// libc's `ppoll`.
        fn ppoll(fds: *mut pollfd, nfds: nfds_t, timeout: *const timespec, sigmask: *const sigset_t) -> c_int;
        /// libc's `select`.
        fn select(nfds: c_int, readfds: *mut fd_set, writefds: *mut fd_set, exceptfds: *mut fd_set, timeout: *mut timeval) -> c_int;
        /// libc's `pselect`.
        fn pselect(nfds: c_int, readfds: *mut fd_set, writefds: *mut fd_set, exceptfds: *mut fd_set, timeout: *const timespec, sigmask: *const sigset_t) -> c_int;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[
    poll as *const (),
    ppoll as *const (),
    select as *const (),
    pselect as *const (),
];

/// Whether `fd` reports any of `events` (or an error, hang-up or `POLLNVAL`) right now.
pub(crate) fn ready(fd: c_int, events: c_short) -> bool {
    let mut p = pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    unsafe { real::poll(&mut p, 1, 0) != 0 }
}

/// Hook for `poll(2)`.
///
/// # Safety
///
/// As `poll(2)`: `fds` holds `nfds` pollfds.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    if timeout == 0 || !cooperative_socket() {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::poll(fds, nfds, timeout) };
    }
    let deadline = u64::try_from(timeout)
        .ok()
        .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
    // SAFETY: the caller's arguments; the interest is read only after the kernel
    // accepted the array.
    preserving_errno(|| unsafe {
        wait_loop(
            deadline,
            || real::poll(fds, nfds, 0),
            || interest_of(fds, nfds),
        )
    })
}

/// Hook for `ppoll(2)`. A call with a signal mask passes straight through (see the
/// module docs).
///
/// # Safety
///
/// As `ppoll(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    // SAFETY: the caller's timeout is null or readable.
    let limit = unsafe { timeout.as_ref() };
    let zero = limit.is_some_and(|t| t.tv_sec == 0 && t.tv_nsec == 0);
    if zero || !sigmask.is_null() || !cooperative_socket() {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::ppoll(fds, nfds, timeout, sigmask) };
    }
    let Ok(deadline) = deadline_after(limit) else {
        set_errno(libc::EINVAL);
        return -1;
    };
    let now = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as for `poll`.
    preserving_errno(|| unsafe {
        wait_loop(
            deadline,
            || real::ppoll(fds, nfds, &now, std::ptr::null()),
            || interest_of(fds, nfds),
        )
    })
}

/// Hook for `select(2)`.
///
/// # Safety
///
/// As `select(2)`: each set is null or holds `nfds` bits.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn select(
    nfds: c_int,
    readfds: *mut fd_set,
    writefds: *mut fd_set,
    exceptfds: *mut fd_set,
    timeout: *mut timeval,
) -> c_int {
    // SAFETY: the caller's timeout is null or readable.
    let limit = unsafe { timeout.as_ref() }.copied();
    let zero = limit.is_some_and(|t| t.tv_sec == 0 && t.tv_usec == 0);
    let in_range = (0..=libc::FD_SETSIZE as c_int).contains(&nfds);
    if zero || !in_range || !cooperative_socket() {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::select(nfds, readfds, writefds, exceptfds, timeout) };
    }
    let deadline = match limit {
        None => None,
        Some(t) if t.tv_sec < 0 || t.tv_usec < 0 => {
            set_errno(libc::EINVAL);
            return -1;
        }
        Some(t) => Instant::now().checked_add(
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64),
        ),
    };
    // SAFETY: as the caller guarantees.
    let rc = unsafe { select_coop(nfds, [readfds, writefds, exceptfds], deadline) };
    // Linux writes back the time not slept.
    // SAFETY: the caller's timeout is null or writable.
    if let (Some(deadline), Some(out)) = (deadline, unsafe { timeout.as_mut() }) {
        let left = deadline.saturating_duration_since(Instant::now());
        out.tv_sec = left.as_secs() as _;
        out.tv_usec = left.subsec_micros() as _;
    }
    rc
}

/// Hook for `pselect(2)`: `select` with a `timespec` timeout (left alone, as glibc
/// does) and a signal mask. A call with a mask passes straight through (see the
/// module docs).
///
/// # Safety
///
/// As `pselect(2)`: each set is null or holds `nfds` bits.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    readfds: *mut fd_set,
    writefds: *mut fd_set,
    exceptfds: *mut fd_set,
    timeout: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    // SAFETY: the caller's timeout is null or readable.
    let limit = unsafe { timeout.as_ref() };
    let zero = limit.is_some_and(|t| t.tv_sec == 0 && t.tv_nsec == 0);
    let in_range = (0..=libc::FD_SETSIZE as c_int).contains(&nfds);
    if zero || !in_range || !sigmask.is_null() || !cooperative_socket() {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::pselect(nfds, readfds, writefds, exceptfds, timeout, sigmask) };
    }
    let Ok(deadline) = deadline_after(limit) else {
        set_errno(libc::EINVAL);
        return -1;
    };
    // SAFETY: as the caller guarantees.
    unsafe { select_coop(nfds, [readfds, writefds, exceptfds], deadline) }
}

/// When a relative `timespec` timeout (`None`: none) ends; `Err` for one the kernel
/// would refuse (`EINVAL`). `Ok(None)` also for one too long to be a deadline.
fn deadline_after(limit: Option<&timespec>) -> Result<Option<Instant>, ()> {
    match limit {
        None => Ok(None),
        Some(t) if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) => Err(()),
        Some(t) => Ok(Instant::now().checked_add(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))),
    }
}

/// The cooperative `select`: zero-timeout real `select`s on copies of the caller's
/// sets, parking in between, until something is ready or `deadline` passes.
///
/// # Safety
///
/// `0 <= nfds <= FD_SETSIZE`; each set is null or a valid, writable `fd_set`.
unsafe fn select_coop(nfds: c_int, sets: [*mut fd_set; 3], deadline: Option<Instant>) -> c_int {
    // SAFETY: each set is null or readable.
    let asked = sets.map(|set| unsafe { set.as_ref() }.copied());
    let probe = || {
        let mut local = asked;
        let mut pointers = local
            .each_mut()
            .map(|set| set.as_mut().map_or(std::ptr::null_mut(), |s| s as *mut _));
        let mut now = timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: copies of the caller's sets; a zero timeout.
        let rc = unsafe { real::select(nfds, pointers[0], pointers[1], pointers[2], &mut now) };
        if rc >= 0 {
            // What the kernel would leave in the caller's sets.
            for (theirs, ours) in sets.iter().zip(pointers.iter_mut()) {
                if !theirs.is_null() {
                    // SAFETY: the caller's writable set; ours is a valid copy.
                    unsafe { **theirs = **ours };
                }
            }
        }
        rc
    };
    let interest = || {
        let events = [libc::POLLIN, libc::POLLOUT, libc::POLLPRI];
        let mut wanted = Vec::new();
        for fd in 0..nfds {
            let mut ev: c_short = 0;
            for (set, bit) in asked.iter().zip(events) {
                // SAFETY: `fd < nfds <= FD_SETSIZE`, within the set.
                let member = |s: &fd_set| unsafe { libc::FD_ISSET(fd, s) };
                if set.as_ref().is_some_and(member) {
                    ev |= bit;
                }
            }
            if ev != 0 {
                wanted.push((fd, ev));
            }
        }
        wanted
    };
    preserving_errno(|| wait_loop(deadline, probe, interest))
}

/// The fds and events of a pollfd array.
///
/// # Safety
///
/// `fds` holds `nfds` readable pollfds (the kernel accepted it).
unsafe fn interest_of(fds: *const pollfd, nfds: nfds_t) -> Vec<(c_int, c_short)> {
    if nfds == 0 || fds.is_null() {
        return Vec::new();
    }
    // SAFETY: as the caller guarantees.
    let fds = unsafe { std::slice::from_raw_parts(fds, nfds as usize) };
    fds.iter()
        .filter(|p| p.fd >= 0)
        .map(|p| (p.fd, p.events))
        .collect()
}

/// Polls with `probe` (a zero-timeout real call) until it reports something or
/// `deadline` passes, parking on the fds of `interest` in between.
fn wait_loop(
    deadline: Option<Instant>,
    mut probe: impl FnMut() -> c_int,
    interest: impl FnOnce() -> Vec<(c_int, c_short)>,
) -> c_int {
    let mut waiter: Option<Waiter> = None;
    let mut interest = Some(interest);
    loop {
        let rc = probe();
        if rc != 0 || deadline.is_some_and(|d| Instant::now() >= d) {
            return rc;
        }
        let waiter = waiter
            .get_or_insert_with(|| Waiter::new(interest.take().map(|f| f()).unwrap_or_default()));
        if let Err(errno) = waiter.wait(deadline) {
            set_errno(errno);
            return -1;
        }
    }
}

/// How a poll parks.
enum Waiter {
    /// No fds: a sleep.
    Sleep,
    /// One fd, one direction: the hub's reactor.
    One { fd: c_int, direction: Direction },
    /// A private epoll instance watching every fd.
    Epoll(c_int),
    /// Re-poll after a back-off.
    BackOff(u32),
}

/// Events meaning "readable" and "writable" to a single-fd wait.
const READ: c_short = libc::POLLIN | libc::POLLRDNORM;
const WRITE: c_short = libc::POLLOUT | libc::POLLWRNORM;
/// Poll events epoll understands (same bit values).
const EPOLL_EVENTS: c_short =
    READ | WRITE | libc::POLLPRI | libc::POLLRDBAND | libc::POLLWRBAND | libc::POLLRDHUP;

impl Waiter {
    fn new(interest: Vec<(c_int, c_short)>) -> Waiter {
        match interest[..] {
            [] => return Waiter::Sleep,
            [(fd, ev)] if ev != 0 && ev & !READ == 0 => {
                return Waiter::One {
                    fd,
                    direction: Direction::Read,
                };
            }
            [(fd, ev)] if ev != 0 && ev & !WRITE == 0 => {
                return Waiter::One {
                    fd,
                    direction: Direction::Write,
                };
            }
            _ => {}
        }
        // SAFETY: plain flags argument.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Waiter::BackOff(1);
        }
        let mut added: Vec<(c_int, u32)> = Vec::with_capacity(interest.len());
        for (fd, ev) in interest {
            let mut events = (ev & EPOLL_EVENTS) as u16 as u32;
            let op = match added.iter_mut().find(|(f, _)| *f == fd) {
                Some((_, merged)) => {
                    *merged |= events;
                    events = *merged;
                    libc::EPOLL_CTL_MOD
                }
                None => {
                    added.push((fd, events));
                    libc::EPOLL_CTL_ADD
                }
            };
            let mut event = libc::epoll_event {
                events,
                u64: fd as u64,
            };
            // SAFETY: a valid epoll fd and event. An fd epoll refuses (a regular file
            // asked for no events) can never report anything the probe would not see
            // at once, so it is left out.
            unsafe { libc::epoll_ctl(epfd, op, fd, &mut event) };
        }
        Waiter::Epoll(epfd)
    }

    /// Parks until something may be ready or `deadline` passes; `Err(errno)` for an
    /// interrupt.
    fn wait(&mut self, deadline: Option<Instant>) -> Result<(), c_int> {
        let outcome = match *self {
            // Never restarted after a signal handler (signal(7)).
            Waiter::Sleep => sleep_until(deadline, Eintr::Always),
            Waiter::One { fd, direction } => wait_fd(fd, direction, deadline, Eintr::Always),
            // Its own epoll fd, closed with the waiter behind the `close` hook.
            Waiter::Epoll(epfd) => wait_fd_once(epfd, Direction::Read, deadline, Eintr::Always),
            Waiter::BackOff(ref mut step) => back_off(step, deadline, Eintr::Always),
        };
        match outcome {
            // Ready, timed out, or closed under the wait (the probe says POLLNVAL or
            // EBADF): the next probe tells.
            Ok(()) | Err(Stop::TimedOut) | Err(Stop::Fail(libc::EBADF)) => Ok(()),
            Err(Stop::Fail(errno)) => Err(errno),
            Err(Stop::Unwatchable) => {
                // Dropping the old waiter closes its epoll fd.
                *self = Waiter::BackOff(1);
                Ok(())
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Waiter::Epoll(epfd) = *self {
            // SAFETY: our own epoll fd, closed once, with the waiter.
            unsafe { crate::ctl::real::close(epfd) };
        }
    }
}
