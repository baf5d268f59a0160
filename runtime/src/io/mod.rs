//! Waiting for file-descriptor readiness on the hub's reactor.
//!
//! [`wait_readable`] and [`wait_writable`] park the current greenlet until the fd is
//! ready (or the timeout passes) while other greenlets run. They are how greenweave's
//! sockets block, and they let any fd join in: pipes, eventfds, a C library's socket.
//! The usual pattern is *try, then wait*: make the fd non-blocking, attempt the call,
//! and wait only when it says `WouldBlock`.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//!
//! let (mut a, mut b) = UnixStream::pair().unwrap();
//! b.set_nonblocking(true).unwrap();
//! let writer = greenweave_runtime::spawn(move || {
//!     greenweave_runtime::sleep(Duration::from_millis(10));
//!     a.write_all(b"ping").unwrap();
//! });
//! greenweave_runtime::io::wait_readable(b.as_raw_fd(), Some(Duration::from_secs(5))).unwrap();
//! let mut buf = [0; 4];
//! b.read_exact(&mut buf).unwrap();
//! assert_eq!(&buf, b"ping");
//! writer.join().unwrap();
//! ```
//!
//! # Registrations
//!
//! The hub watches an fd with one epoll registration (edge-triggered, read and write
//! interest) and keeps, per fd, the readiness epoll last reported, as tokio's
//! `ScheduledIo` does. How long a registration lives depends on who waits:
//!
//! - greenweave's sockets ([`net`](crate::net)) and the libc hooks of
//!   `greenweave-monkey` register an fd at its first wait and keep the registration for
//!   the fd's life: until the socket is dropped, or the `close` hook (or `dup2`/`dup3`
//!   onto it) reports it through [`notify_closed`]. They also keep its readiness: an
//!   operation is tried only while epoll's last word for its direction was "ready" (or
//!   nothing is known yet, as after registering: a byte buffered before is still
//!   found), and an operation that would block clears it. A read on a TCP stream that
//!   returns less than asked clears it too, as tokio's do: the kernel returns less only
//!   when nothing more was queued, and anything arriving after raises a new event. So
//!   a request–response exchange costs one `send` and one `recv`, with no failed read
//!   and no `epoll_ctl` per wait.
//! - [`wait_readable`] and [`wait_writable`] on an fd nobody keeps registered register
//!   it for that wait only (a raw fd's close is nobody's to report); on a registered fd
//!   they re-arm its registration, which makes epoll report its current readiness.
//!
//! Several greenlets may wait on one fd, for reading and for writing at once; all
//! waiters of a direction are woken by its event and retry their call (the first to
//! succeed wins; the others find the fd not ready and wait again).
//!
//! # What guarantees that a registration belongs to the fd it is used for
//!
//! A closed fd's number is reused by the next file opened, so a registration must
//! never outlive its file's use of the number. Each registration carries a
//! *generation* in its epoll token, so an event of an earlier registration of the same
//! number (one a dup kept alive in epoll) is ignored. Each fd number has a
//! process-wide *epoch*, bumped by [`notify_closed`], which every close, `dup2`/`dup3`
//! and fd-creating call of the monkey hooks makes, and which greenweave's sockets make
//! when they adopt or drop an fd; a registration from an earlier epoch is dropped at
//! its next use, in whichever hub made it. What is *not* seen: an fd closed behind the
//! hooks' back (a raw `close` system call, glibc-internal closes such as `fclose`'s)
//! whose number is then reused by a call no hook sees either (an `open` of a device, an
//! `eventfd`, a raw system call). A wait on the new file may then find the old
//! registration and its readiness, and park on events that never come. Re-arming (the
//! raw-fd waits above) detects a vanished registration (`ENOENT`) and registers
//! afresh.

mod table;

use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use table::FdEntry;
pub(crate) use table::{IoTable, dispatch};

use crate::hub::{self, Hub};
use crate::park::raise;
use crate::task::{Describe, Interrupt, Wake};
use crate::time::deadline_after;

/// Which readiness of an fd a wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Readable (or at end of file, or in error).
    Read,
    /// Writable (or in error).
    Write,
}

/// How a wait treats the fd's registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// The caller has just seen the fd not ready (an `EAGAIN`, a zero-timeout poll):
    /// park until epoll reports it ready, and keep the registration afterwards.
    Registered,
    /// Register for this wait only, or re-arm a kept registration: epoll reports the
    /// fd's current readiness either way, so the caller need not have looked.
    Once,
}

struct FdWait {
    fd: RawFd,
    direction: Direction,
}

impl Describe for FdWait {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Fd
    }

    fn describe(&self, out: &mut String) {
        let what = match self.direction {
            Direction::Read => "readable",
            Direction::Write => "writable",
        };
        out.push_str(&format!("fd {} to become {what}", self.fd));
    }
}

/// Parks until `fd` is readable (data, end of file, an error or a hang-up), or until
/// `timeout` passes (`ErrorKind::TimedOut`).
///
/// # Errors
///
/// `TimedOut`, or the error epoll gives for an fd it cannot watch (`EBADF` for a closed
/// fd, `EPERM` for a regular file, which is always ready).
///
/// # Panics
///
/// Unwinds with `GreenletExit` if the greenlet is killed, or with a `Timeout`'s
/// payload if one expires, while it waits.
#[track_caller]
pub fn wait_readable(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    let deadline = timeout.and_then(deadline_after);
    wait(fd, Direction::Read, deadline, Keep::Once).unwrap_or_else(|i| raise(i))
}

/// Parks until `fd` is writable (buffer space, an error or a hang-up), or until
/// `timeout` passes. Errors and panics as [`wait_readable`].
#[track_caller]
pub fn wait_writable(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    let deadline = timeout.and_then(deadline_after);
    wait(fd, Direction::Write, deadline, Keep::Once).unwrap_or_else(|i| raise(i))
}

/// Whether an operation on `fd` in `direction` is worth trying: epoll's last word for
/// that direction was "ready", or nothing is known (no registration in this thread's
/// hub). A `false` means the last attempt would have blocked and no event came since.
#[inline]
pub(crate) fn is_ready(fd: RawFd, direction: Direction) -> bool {
    hub::try_with_existing(|hub| {
        match hub.io.borrow().current(fd) {
            Ok(Some(entry)) => return entry.ready(direction),
            Ok(None) => return true,
            Err(()) => {}
        }
        table::retire(hub, fd, None);
        true
    })
    .unwrap_or(true)
}

/// An operation on `fd` in `direction` found it not ready (or, for a TCP read,
/// drained it): the next one waits for an event first.
#[inline]
pub(crate) fn clear_ready(fd: RawFd, direction: Direction) {
    hub::try_with_existing(|hub| {
        if let Ok(Some(entry)) = hub.io.borrow().current(fd) {
            entry.clear(direction);
        }
    });
}

/// The shared wait path; interrupts come back as `Err` so callers that must not unwind
/// (libc hooks) can turn them into an errno.
#[track_caller]
pub(crate) fn wait(
    fd: RawFd,
    direction: Direction,
    deadline: Option<Instant>,
    keep: Keep,
) -> Result<io::Result<()>, Interrupt> {
    let here = hub::Here::new();
    let hub = hub::get(&here);
    let entry = match enter(hub, fd, direction, keep) {
        Ok(entry) => entry,
        Err(err) => return Ok(Err(err)),
    };
    hub.io.borrow_mut().parked += 1;
    let outcome = entry
        .queue(direction)
        .wait(&FdWait { fd, direction }, deadline);
    hub.io.borrow_mut().parked -= 1;
    table::leave(hub, &entry);
    if entry.closed.get() {
        // The close is the answer; an interrupt that came too stays pending.
        if let Err(interrupt) = outcome {
            crate::park::put_back(interrupt);
        }
        return Ok(Err(io::Error::from_raw_os_error(libc::EBADF)));
    }
    match outcome {
        Ok(Wake::TimedOut) => Ok(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "timed out waiting for fd readiness",
        ))),
        Ok(Wake::Signal) => Ok(Err(io::Error::from_raw_os_error(libc::EINTR))),
        Ok(_) => Ok(Ok(())),
        Err(interrupt) => Err(interrupt),
    }
}

/// The entry `fd`'s wait parks on: the current one, its `direction` cleared (and
/// re-armed for [`Keep::Once`]), or a new registration.
fn enter(hub: &Hub, fd: RawFd, direction: Direction, keep: Keep) -> io::Result<Rc<FdEntry>> {
    let found = hub.io.borrow().current(fd).map(Option::<&_>::cloned);
    let entry = match found {
        Ok(Some(entry)) => entry,
        Ok(None) => return table::register(hub, fd, direction, keep),
        Err(()) => {
            table::retire(hub, fd, None);
            return table::register(hub, fd, direction, keep);
        }
    };
    entry.clear(direction);
    match keep {
        Keep::Registered => entry.keep.set(true),
        Keep::Once => {
            if let Err(err) = table::rearm(hub, &entry) {
                // The registration is gone: the fd was closed (behind everyone's back,
                // or its number now names a file epoll never saw).
                table::retire(hub, fd, Some(&entry));
                if err.raw_os_error() != Some(libc::ENOENT) {
                    return Err(err);
                }
                return table::register(hub, fd, direction, Keep::Once);
            }
        }
    }
    Ok(entry)
}

/// Reports that `fd` is being closed, or that its number now names a file it did not
/// name before (a `dup2` onto it, a new socket): every registration of the number is
/// dropped (this thread's at once, other threads' hubs at their next use of it), and
/// the greenlets of this thread waiting on it are woken, their waits failing with
/// `EBADF` (as the kernel reports for a closed fd). For code that closes raw fds others
/// may wait on (the libc `close` hook); greenweave's sockets do it themselves.
pub fn notify_closed(fd: RawFd) {
    table::bump_epoch(fd);
    // Never creates a hub: a thread without one has nothing registered.
    hub::try_with_existing(|hub| table::retire(hub, fd, None));
}

/// Forgets every fd registration of `hub`, without a system call: for the forking
/// thread's hub in the child of a `fork`, rebuilt with a new epoll instance (see
/// `fork::hub`). Every fd is then unknown to it: the forking greenlet's socket
/// registers with the new instance at its next wait, its readiness unknown (tried
/// first).
pub(crate) fn reset_after_fork(hub: &Hub) {
    table::reset_after_fork(hub);
}
