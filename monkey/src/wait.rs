//! Parking inside a hook, and the retry loop every transferring hook shares.
//!
//! A hook makes non-blocking attempts. When one says `EAGAIN` it looks up whether the
//! *user* made the description non-blocking (if so, `EAGAIN` is the answer, as the
//! kernel gave it) and, for sockets, the `SO_RCVTIMEO`/`SO_SNDTIMEO` the call must
//! honour, both from the fd table entry the call read once at its start (a
//! [`Call`] carries it; see the `fd` module: no system call for an fd the hooks have
//! seen made). Then it parks the greenlet until epoll reports the fd ready, and tries
//! again. The fd stays registered with the hub for its life, and the hub
//! keeps what epoll last reported (see `greenweave_runtime::io`): a blocking call
//! whose fd is known not to be ready (its last attempt found nothing and no event came
//! since) parks *before* trying, and a read of a TCP stream that returns less than
//! asked marks it not ready. A request–response exchange then costs one `send` and
//! one `recv`.
//!
//! Every park says which signal handlers end it (a [`coop::Eintr`] class, after
//! signal(7)); one that does ends the call with `EINTR`, or with the progress made
//! before it (see the `signal` module).

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use greenweave_runtime::Interrupt;
use greenweave_runtime::coop::{self, Eintr};
use libc::{c_int, ssize_t};

use greenweave_runtime::io::Direction;

use crate::Area;
use crate::errno::{errno, set_errno};
use crate::fd::Entry;
use crate::state::cooperative;

/// The first check of every socket-area hook (see [`cooperative`]).
#[inline]
pub(crate) fn cooperative_socket() -> bool {
    cooperative(Area::Socket)
}

/// Why a hook stopped waiting without the fd becoming ready.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Give up with this errno (`EAGAIN` for a user-non-blocking fd, `EBADF` for an fd
    /// closed under the wait, `ECANCELED`/`ETIMEDOUT`/`EDEADLK` for an interrupt,
    /// `EINTR` for a signal handler).
    Fail(c_int),
    /// The socket timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO`) passed.
    TimedOut,
    /// epoll cannot watch the fd: make the real, blocking call.
    Unwatchable,
}

/// The errno a hook reports for an interrupt.
pub(crate) fn interrupt_errno(interrupt: &Interrupt) -> c_int {
    match interrupt {
        Interrupt::Killed => libc::ECANCELED,
        Interrupt::TimedOut(_) => libc::ETIMEDOUT,
        Interrupt::Deadlock(_) => libc::EDEADLK,
    }
}

/// One cooperative blocking call on one fd.
///
/// It works from the fd's table entry as it was when the call started (one load; see
/// [`fd::Entry`](crate::fd::Entry)): the kernel, too, fixes a call's blocking mode and
/// timeout when the call starts. What the entry does not record is asked of the
/// kernel once, when the call first needs it (at its first park).
pub(crate) struct Call {
    fd: c_int,
    direction: Direction,
    /// The socket option holding this call's timeout, if any.
    timeout_option: Option<c_int>,
    /// `fd`'s table entry at the start of the call.
    entry: Entry,
    /// A read shorter than asked means the fd was drained (a TCP stream, no peek).
    drains: bool,
    nonblocking: Option<bool>,
    deadline: Option<Option<Instant>>,
}

impl Call {
    /// A call waiting for `fd` to become ready for `direction`, honouring the socket
    /// timeout in `timeout_option` (`SO_RCVTIMEO`/`SO_SNDTIMEO`) if given.
    pub(crate) fn new(fd: c_int, direction: Direction, timeout_option: Option<c_int>) -> Call {
        Call::with_entry(fd, Entry::recorded(fd), direction, timeout_option)
    }

    /// [`new`](Self::new) for a hook that has read `fd`'s table entry already.
    #[inline]
    pub(crate) fn with_entry(
        fd: c_int,
        entry: Entry,
        direction: Direction,
        timeout_option: Option<c_int>,
    ) -> Call {
        Call {
            fd,
            direction,
            timeout_option,
            entry,
            drains: false,
            nonblocking: entry.cached_nonblocking(),
            deadline: None,
        }
    }

    /// A read call made with `flags` on a socket: a short read drains a TCP stream
    /// unless it only peeked.
    #[inline]
    pub(crate) fn reading_socket(mut self, flags: c_int) -> Call {
        self.drains =
            self.direction == Direction::Read && flags & libc::MSG_PEEK == 0 && self.entry.is_tcp();
        self
    }

    /// Whether the user made the file description non-blocking (from the entry, or
    /// asked of the kernel once per call). `Err(errno)` if the fd is not open.
    #[inline]
    pub(crate) fn user_nonblocking(&mut self) -> Result<bool, c_int> {
        if let Some(known) = self.nonblocking {
            return Ok(known);
        }
        self.ask_nonblocking()
    }

    #[cold]
    #[inline(never)]
    fn ask_nonblocking(&mut self) -> Result<bool, c_int> {
        let known = crate::fd::user_nonblocking(self.fd)?;
        self.nonblocking = Some(known);
        Ok(known)
    }

    /// Whether the next attempt can be skipped for a park: the call would park on
    /// `EAGAIN` (a blocking fd, known without a system call) and the hub knows the fd
    /// is not ready (see `coop::fd_ready`).
    #[inline]
    pub(crate) fn parks_first(&self) -> bool {
        self.nonblocking == Some(false) && !coop::fd_ready(self.fd, self.direction)
    }

    /// When the socket timeout of this call expires (fixed at the first park).
    pub(crate) fn deadline(&mut self) -> Option<Instant> {
        *self.deadline.get_or_insert_with(|| {
            let option = self.timeout_option?;
            let timeout = crate::fd::socket_timeout(self.fd, self.entry, option)?;
            Instant::now().checked_add(timeout)
        })
    }

    /// Which signal handlers end this call's waits: the kernel restarts a blocking
    /// transfer after an `SA_RESTART` handler, unless a socket timeout applies to it
    /// (signal(7)).
    pub(crate) fn eintr(&mut self) -> Eintr {
        eintr_with(self.deadline())
    }

    /// The fd said `EAGAIN`: parks until it is ready (`Ok`: try again) or says why not.
    pub(crate) fn park(&mut self) -> Result<(), Stop> {
        self.park_after(0)
    }

    /// [`park`](Self::park) for a call that moved `done` units before it. An interrupt
    /// is delivered as its errno only when nothing moved; after progress the progress
    /// is the answer (as the kernel's is for a signal) and the interrupt is put back,
    /// pending for the greenlet's next blocking call.
    fn park_after(&mut self, done: usize) -> Result<(), Stop> {
        match self.user_nonblocking() {
            Ok(false) => {}
            Ok(true) => return Err(Stop::Fail(libc::EAGAIN)),
            Err(errno) => return Err(Stop::Fail(errno)),
        }
        let deadline = self.deadline();
        let eintr = eintr_with(deadline);
        match wait_fd_or_interrupt(self.fd, self.direction, deadline, eintr, coop::wait_fd) {
            Ok(waited) => waited,
            Err(interrupt) if done > 0 => {
                coop::put_back(interrupt);
                // Any failure: the caller answers `done`, reporting no errno.
                Err(Stop::Fail(libc::EINTR))
            }
            Err(interrupt) => Err(Stop::Fail(interrupt_errno(&interrupt))),
        }
    }
}

/// Which signal handlers end the waits of a socket transfer whose socket timeout
/// expires at `deadline` (see [`Call::eintr`]).
fn eintr_with(deadline: Option<Instant>) -> Eintr {
    if deadline.is_some() {
        Eintr::Always
    } else {
        Eintr::UnlessRestarted
    }
}

/// Parks until `fd` is ready for `direction` or `deadline` passes, for a caller that
/// has just found it not ready; the fd stays registered (until its `close`). An
/// interrupt is delivered as its errno ([`Stop::Fail`]); a signal handler that `eintr`
/// names ends the wait with `EINTR`.
pub(crate) fn wait_fd(
    fd: c_int,
    direction: Direction,
    deadline: Option<Instant>,
    eintr: Eintr,
) -> Result<(), Stop> {
    wait_fd_or_interrupt(fd, direction, deadline, eintr, coop::wait_fd)
        .unwrap_or_else(|interrupt| Err(Stop::Fail(interrupt_errno(&interrupt))))
}

/// [`wait_fd`] for an fd registered for this wait only: one the hooks open and close
/// themselves behind the `close` hook's back (a pidfd, a private epoll instance).
pub(crate) fn wait_fd_once(
    fd: c_int,
    direction: Direction,
    deadline: Option<Instant>,
    eintr: Eintr,
) -> Result<(), Stop> {
    wait_fd_or_interrupt(fd, direction, deadline, eintr, coop::wait_fd_once)
        .unwrap_or_else(|interrupt| Err(Stop::Fail(interrupt_errno(&interrupt))))
}

/// The runtime's wait for an fd: `coop::wait_fd` (the registration stays) or
/// `coop::wait_fd_once`.
type CoopWait =
    fn(c_int, Direction, Option<Instant>, Eintr) -> Result<std::io::Result<()>, Interrupt>;

/// [`wait_fd`] or [`wait_fd_once`] (as `wait` says) with the interrupt, taken but not
/// yet delivered, as the outer `Err`.
fn wait_fd_or_interrupt(
    fd: c_int,
    direction: Direction,
    deadline: Option<Instant>,
    eintr: Eintr,
    wait: CoopWait,
) -> Result<Result<(), Stop>, Interrupt> {
    if crate::foreign::inside_event_loop() {
        // Inside tokio's `block_on`: block the thread instead (see `foreign`).
        return Ok(Err(Stop::Unwatchable));
    }
    Ok(match wait(fd, direction, deadline, eintr)? {
        Ok(()) => Ok(()),
        Err(err) => match err.raw_os_error() {
            Some(errno @ (libc::EBADF | libc::EINTR)) => Err(Stop::Fail(errno)),
            None if err.kind() == ErrorKind::TimedOut => Err(Stop::TimedOut),
            _ => Err(Stop::Unwatchable),
        },
    })
}

/// How one attempt of a transferring hook is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Without blocking (`MSG_DONTWAIT`, `RWF_NOWAIT`, or after a readiness check):
    /// fails with `EAGAIN` when the fd is not ready.
    NonBlocking,
    /// The real, blocking call: only for fds epoll cannot watch.
    Blocking,
}

/// How much a transferring hook moves before it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Amount {
    /// Everything asked for, as the kernel does for a blocking stream send, a pipe
    /// write or `MSG_WAITALL` (or the progress made before a failure).
    All,
    /// Whatever the first successful transfer moves.
    First,
}

/// The blocking-call loop shared by the transferring hooks.
///
/// `op(done, Attempt::NonBlocking)` makes one non-blocking attempt at the part not
/// yet transferred (`done` bytes are) and returns what the syscall returned;
/// `op(done, Attempt::Blocking)` makes the real, blocking call for that part.
///
/// With [`Amount::All`] it goes on until `total` bytes are transferred; with
/// [`Amount::First`] the first transfer is the answer. As in the kernel, a failure or a socket timeout
/// after some progress returns the progress; a failure before any returns -1 with
/// `errno` set (`EAGAIN` for a user-non-blocking fd or an expired socket timeout).
pub(crate) fn transfer(
    call: &mut Call,
    total: usize,
    amount: Amount,
    mut op: impl FnMut(usize, Attempt) -> ssize_t,
) -> ssize_t {
    let mut done = 0_usize;
    loop {
        if call.parks_first() {
            if let Some(answer) = park_or_answer(call, done, || op(done, Attempt::Blocking)) {
                return answer;
            }
        }
        let n = op(done, Attempt::NonBlocking);
        if n >= 0 {
            if call.drains && n > 0 && (n as usize) < total - done {
                coop::fd_not_ready(call.fd, Direction::Read);
            }
            done += n as usize;
            let more = amount == Amount::All && n > 0 && done < total;
            // A partial transfer on a user-non-blocking fd is the kernel's answer.
            if !more || call.user_nonblocking() != Ok(false) {
                return done as ssize_t;
            }
            continue;
        }
        let err = errno();
        if err != libc::EAGAIN {
            return give_up(done, err);
        }
        if let Some(answer) = park_or_answer(call, done, || op(done, Attempt::Blocking)) {
            return answer;
        }
    }
}

/// What a blocking call that moved `done` units (bytes, messages) answers when it
/// stops on `errno`: the progress if there was any (the kernel's rule), else -1 with
/// `errno` set.
pub(crate) fn give_up(done: usize, errno: c_int) -> ssize_t {
    if done > 0 {
        done as ssize_t
    } else {
        set_errno(errno);
        -1
    }
}

/// After an `EAGAIN` with `done` units moved: parks until the fd is ready (`None`: try
/// again), or gives the call's answer: [`give_up`] on a failure or an expired socket
/// timeout (`EAGAIN`), or, for an fd epoll cannot watch, the outcome of
/// `blocking_attempt` (the real, blocking call for the rest) added to `done`.
pub(crate) fn park_or_answer(
    call: &mut Call,
    done: usize,
    blocking_attempt: impl FnOnce() -> ssize_t,
) -> Option<ssize_t> {
    match call.park_after(done) {
        Ok(()) => None,
        Err(Stop::Fail(errno)) => Some(give_up(done, errno)),
        Err(Stop::TimedOut) => Some(give_up(done, libc::EAGAIN)),
        Err(Stop::Unwatchable) => {
            let n = blocking_attempt();
            Some(if n >= 0 {
                (done + n as usize) as ssize_t
            } else {
                give_up(done, errno())
            })
        }
    }
}

/// Parks until `deadline` (`None`: until interrupted). An interrupt is delivered as
/// its errno ([`Stop::Fail`]); a signal handler that `eintr` names ends the sleep with
/// `EINTR`.
pub(crate) fn sleep_until(deadline: Option<Instant>, eintr: Eintr) -> Result<(), Stop> {
    match coop::sleep_until(deadline, eintr) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_signal)) => Err(Stop::Fail(libc::EINTR)),
        Err(interrupt) => Err(Stop::Fail(interrupt_errno(&interrupt))),
    }
}

/// A cooperative back-off sleep for the few waits epoll cannot express (a
/// `MSG_PEEK | MSG_WAITALL` waiting for *more* data, a Unix `connect` to a full
/// backlog): 1 ms doubling to 10 ms, never past `deadline`.
pub(crate) fn back_off(
    step: &mut u32,
    deadline: Option<Instant>,
    eintr: Eintr,
) -> Result<(), Stop> {
    let pause = Duration::from_millis(u64::from((*step).min(10)));
    *step = (*step * 2).clamp(1, 10);
    let mut until = Instant::now() + pause;
    if let Some(deadline) = deadline {
        if Instant::now() >= deadline {
            return Err(Stop::TimedOut);
        }
        until = until.min(deadline);
    }
    sleep_until(Some(until), eintr)
}
