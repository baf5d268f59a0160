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
//! An fd is registered with epoll only while some greenlet waits on it, so a closed fd
//! whose number is reused is never confused with the old one. Several greenlets may
//! wait on one fd, for reading and for writing at once; all waiters of a direction
//! are woken on readiness and re-try their call (the first to succeed wins).

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use slab::Slab;

use crate::hub::{self, Hub};
use crate::park::{WaitQueue, raise};
use crate::task::{Describe, Wake};
use crate::time::deadline_after;

/// Which readiness of an fd a wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Readable (or at end of file, or in error).
    Read,
    /// Writable (or in error).
    Write,
}

/// The greenlets waiting on one fd.
pub(crate) struct FdWaiters {
    fd: RawFd,
    readers: WaitQueue,
    writers: WaitQueue,
    /// What epoll watches now (`None`: not registered).
    registered: std::cell::Cell<Option<Interest>>,
    /// Set by [`notify_closed`]: the fd was closed under its waiters.
    closed: std::cell::Cell<bool>,
}

/// fds with waiters, by mio token (the slab key) and by fd.
#[derive(Default)]
pub(crate) struct IoTable {
    entries: Slab<Rc<FdWaiters>>,
    by_fd: HashMap<RawFd, usize>,
}

impl IoTable {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Gives back the memory of a burst of fd waits once they are over (a trim pass).
    /// Tokens in use keep their keys: only the vacant tail of the slab goes.
    pub(crate) fn shrink(&mut self) {
        if crate::trim::oversized(self.entries.capacity(), self.entries.len()) {
            self.entries.shrink_to_fit();
        }
        if crate::trim::oversized(self.by_fd.capacity(), self.by_fd.len()) {
            self.by_fd.shrink_to_fit();
        }
    }
}

struct FdWait {
    fd: RawFd,
    direction: Direction,
}

impl Describe for FdWait {
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
    wait(fd, Direction::Read, timeout.and_then(deadline_after)).unwrap_or_else(|i| raise(i))
}

/// Parks until `fd` is writable (buffer space, an error or a hang-up), or until
/// `timeout` passes. Errors and panics as [`wait_readable`].
#[track_caller]
pub fn wait_writable(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    wait(fd, Direction::Write, timeout.and_then(deadline_after)).unwrap_or_else(|i| raise(i))
}

/// The shared wait path; interrupts come back as `Err` so callers that must not unwind
/// (libc hooks) can turn them into an errno.
#[track_caller]
pub(crate) fn wait(
    fd: RawFd,
    direction: Direction,
    deadline: Option<Instant>,
) -> Result<io::Result<()>, crate::task::Interrupt> {
    let (token, entry) = match hub::with(|hub| enter(hub, fd, direction)) {
        Ok(found) => found,
        Err(err) => return Ok(Err(err)),
    };
    let queue = match direction {
        Direction::Read => &entry.readers,
        Direction::Write => &entry.writers,
    };
    let outcome = queue.wait(&FdWait { fd, direction }, deadline);
    hub::with(|hub| leave(hub, token, &entry));
    if entry.closed.get() {
        // The close is the answer; an interrupt that came too stays pending.
        if let Err(interrupt) = outcome {
            crate::park::put_back(interrupt);
        }
        return Ok(Err(io::Error::from_raw_os_error(EBADF)));
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

/// The interest epoll needs for `entry`, counting a waiter about to join in `adding`.
fn needed(entry: &FdWaiters, adding: Option<Direction>) -> Option<Interest> {
    let read = !entry.readers.is_empty() || adding == Some(Direction::Read);
    let write = !entry.writers.is_empty() || adding == Some(Direction::Write);
    match (read, write) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

/// Finds or makes the entry for `fd` and makes sure epoll watches `direction`.
fn enter(hub: &Hub, fd: RawFd, direction: Direction) -> io::Result<(usize, Rc<FdWaiters>)> {
    let mut table = hub.io.borrow_mut();
    let token = match table.by_fd.get(&fd) {
        Some(&token) => token,
        None => {
            let token = table.entries.insert(Rc::new(FdWaiters {
                fd,
                readers: WaitQueue::new(),
                writers: WaitQueue::new(),
                registered: std::cell::Cell::new(None),
                closed: std::cell::Cell::new(false),
            }));
            table.by_fd.insert(fd, token);
            token
        }
    };
    let entry = table.entries[token].clone();
    let want = needed(&entry, Some(direction));
    if let Err(err) = update_registration(hub, token, &entry, want) {
        if entry.registered.get().is_none() {
            table.entries.remove(token);
            table.by_fd.remove(&fd);
        }
        return Err(err);
    }
    Ok((token, entry))
}

/// After a wait: shrink the registration, or drop it when nobody waits any more.
fn leave(hub: &Hub, token: usize, entry: &Rc<FdWaiters>) {
    if entry.closed.get() {
        // `notify_closed` already dropped the registration and the table entry; the
        // fd number may belong to a new file by now, so touch nothing.
        return;
    }
    let want = needed(entry, None);
    // The fd may have been closed meanwhile; epoll forgot it then, nothing to undo.
    let _ = update_registration(hub, token, entry, want);
    if want.is_none() {
        let mut table = hub.io.borrow_mut();
        if table
            .entries
            .get(token)
            .is_some_and(|e| Rc::ptr_eq(e, entry))
        {
            table.entries.remove(token);
            table.by_fd.remove(&entry.fd);
        }
    }
}

fn update_registration(
    hub: &Hub,
    token: usize,
    entry: &FdWaiters,
    want: Option<Interest>,
) -> io::Result<()> {
    let have = entry.registered.get();
    if have == want {
        return Ok(());
    }
    let poll = hub.poll.borrow();
    let registry = poll.registry();
    let mut source = SourceFd(&entry.fd);
    let result = match (have, want) {
        (None, Some(interest)) => registry.register(&mut source, Token(token), interest),
        (Some(_), Some(interest)) => registry.reregister(&mut source, Token(token), interest),
        (Some(_), None) => registry.deregister(&mut source),
        (None, None) => Ok(()),
    };
    if result.is_ok() || want.is_none() {
        entry.registered.set(want);
    }
    result
}

/// `EBADF` on Linux: what a wait on an fd closed under it reports.
const EBADF: i32 = 9;

/// Wakes every greenlet waiting on `fd` because it is being closed: their waits end
/// with `EBADF` (as the kernel reports for a closed fd) and the fd's registration is
/// dropped, so a later fd with the same number starts afresh. For code that closes raw
/// fds others may wait on (the libc `close` hook).
pub fn notify_closed(fd: RawFd) {
    // Never creates a hub: a thread without one has no waiters to wake.
    let entry = hub::try_with_existing(|hub| {
        let mut table = hub.io.borrow_mut();
        let token = table.by_fd.remove(&fd)?;
        let entry = table.entries.remove(token);
        drop(table);
        // Closing the fd removes it from epoll anyway; say so before it is reused.
        let _ = update_registration(hub, token, &entry, None);
        Some(entry)
    })
    .flatten();
    if let Some(entry) = entry {
        entry.closed.set(true);
        entry.readers.notify_all();
        entry.writers.notify_all();
    }
}

/// Dispatches one epoll event to the waiters of its fd.
pub(crate) fn dispatch(hub: &Hub, event: &mio::event::Event) {
    let entry = hub.io.borrow().entries.get(event.token().0).cloned();
    let Some(entry) = entry else { return };
    let broken = event.is_error();
    if broken || event.is_readable() || event.is_read_closed() {
        entry.readers.notify_all();
    }
    if broken || event.is_writable() || event.is_write_closed() {
        entry.writers.notify_all();
    }
}
