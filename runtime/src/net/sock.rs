//! What every socket type wraps: a std socket kept in non-blocking mode, the handle's
//! own "do not park" flag, the socket timeouts (shared with `try_clone`d handles), the
//! fd's registration with the hub, and the blocking path every call takes.
//!
//! # The blocking path
//!
//! A call is tried while the fd's kept readiness says it may succeed (see
//! [`io`](crate::io): unknown counts as ready), and parks until epoll reports it ready
//! when the readiness says it would block, or when the kernel says `EWOULDBLOCK`
//! (which clears the readiness). A read of a TCP stream that returns less than its
//! buffer clears it too: the kernel returned all it had. So a request–response loop
//! makes one `send` and one `recv` per exchange and never a read that fails.
//!
//! # Registration
//!
//! The fd is registered with the hub of the first thread that waits on it, at that
//! first wait, and stays registered until the handle is dropped or turned into
//! something else (`into_std`, `into_raw_fd`, `OwnedFd`); creating a handle reports
//! its fd as new ([`notify_closed`](crate::io::notify_closed)) so no registration of
//! an earlier file with the same number survives, in any hub.

use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::{Direction, Until, wait};
use crate::io::{clear_ready, is_ready, notify_closed};
use crate::time::deadline_after;

/// What a socket call does when the kernel says `WouldBlock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnWouldBlock {
    /// Parks until the fd is ready, then tries again (a blocking call).
    Park,
    /// Returns the `WouldBlock` (a non-blocking handle, or a single try).
    Return,
}

/// A std socket kept in non-blocking mode, with what greenweave keeps about it.
#[derive(Debug)]
pub(crate) struct Sock<S> {
    /// Declared before `io`, so it is dropped first: the registration goes while the
    /// fd is still open.
    _registration: Registration,
    pub(crate) io: S,
    nonblocking: AtomicBool,
    timeouts: Arc<Timeouts>,
}

/// Drops the fd's registrations when the handle stops owning it (dropped, or moved out
/// of by `into_std` and friends, which leave this field behind).
#[derive(Debug)]
struct Registration(RawFd);

impl Drop for Registration {
    fn drop(&mut self) {
        notify_closed(self.0);
    }
}

/// `SO_RCVTIMEO` and `SO_SNDTIMEO` as set through the handles, in microseconds: 0 for
/// none, [`UNKNOWN`] until first asked or set (then read from the kernel once).
#[derive(Debug)]
struct Timeouts {
    read: AtomicU64,
    write: AtomicU64,
}

const UNKNOWN: u64 = u64::MAX;

impl Timeouts {
    fn unknown() -> Arc<Timeouts> {
        Arc::new(Timeouts {
            read: AtomicU64::new(UNKNOWN),
            write: AtomicU64::new(UNKNOWN),
        })
    }

    fn slot(&self, direction: Direction) -> &AtomicU64 {
        match direction {
            Direction::Read => &self.read,
            Direction::Write => &self.write,
        }
    }
}

/// A timeout as stored: at least 1 µs for any non-zero duration (as std sets the
/// kernel's), saturating far below [`UNKNOWN`].
fn encode(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| {
        u64::try_from(t.as_micros())
            .unwrap_or(UNKNOWN - 1)
            .clamp(1, UNKNOWN - 1)
    })
}

fn decode(micros: u64) -> Option<Duration> {
    (micros != 0).then(|| Duration::from_micros(micros))
}

impl<S: AsFd> Sock<S> {
    /// Wraps a socket already in non-blocking mode.
    pub(crate) fn new(io: S) -> Sock<S> {
        Sock::with_timeouts(io, Timeouts::unknown())
    }

    fn with_timeouts(io: S, timeouts: Arc<Timeouts>) -> Sock<S> {
        let fd = io.as_fd().as_raw_fd();
        // The number may have named another file whose close nobody reported.
        notify_closed(fd);
        Sock {
            _registration: Registration(fd),
            io,
            nonblocking: AtomicBool::new(false),
            timeouts,
        }
    }

    /// A handle on `io`, a dup of this socket (`try_clone`): it shares the timeouts.
    pub(crate) fn dup<T: AsFd>(&self, io: T) -> Sock<T> {
        Sock::with_timeouts(io, self.timeouts.clone())
    }

    /// A handle on `io`, a connection this listening socket accepted (already
    /// non-blocking). Linux gives an accepted socket its listener's timeouts.
    pub(crate) fn accepted<T: AsFd>(&self, io: T) -> io::Result<Sock<T>> {
        let timeouts = Timeouts {
            read: AtomicU64::new(encode(self.timeout(Direction::Read)?)),
            write: AtomicU64::new(encode(self.timeout(Direction::Write)?)),
        };
        Ok(Sock::with_timeouts(io, Arc::new(timeouts)))
    }

    fn fd(&self) -> RawFd {
        self.io.as_fd().as_raw_fd()
    }

    /// Runs `op`, parking until readable (bounded by the read timeout).
    #[track_caller]
    pub(crate) fn read<T>(&self, op: impl FnMut(&S) -> io::Result<T>) -> io::Result<T> {
        self.run(Direction::Read, Until::SocketTimeout, op)
    }

    /// A read of a stream into `len` bytes of buffers; with `drains` (TCP), a read that
    /// returns less than `len` (but not end of file) clears the read readiness.
    #[track_caller]
    pub(crate) fn read_stream(
        &self,
        drains: bool,
        len: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let drained = |&n: &usize| drains && n > 0 && n < len;
        let until = Until::SocketTimeout;
        self.retry(Direction::Read, until, self.on_would_block(), drained, op)
    }

    /// Runs `op`, parking until writable (bounded by the write timeout).
    #[track_caller]
    pub(crate) fn write<T>(&self, op: impl FnMut(&S) -> io::Result<T>) -> io::Result<T> {
        self.run(Direction::Write, Until::SocketTimeout, op)
    }

    /// Runs `op` until it does not fail with `WouldBlock`, parking on readiness in
    /// `direction` in between, until `until`.
    #[track_caller]
    pub(crate) fn run<T>(
        &self,
        direction: Direction,
        until: Until,
        op: impl FnMut(&S) -> io::Result<T>,
    ) -> io::Result<T> {
        self.retry(direction, until, self.on_would_block(), |_| false, op)
    }

    /// One attempt that never parks (`WouldBlock` if the kernel says so).
    pub(crate) fn try_once<T>(
        &self,
        direction: Direction,
        op: impl FnMut(&S) -> io::Result<T>,
    ) -> io::Result<T> {
        let until = Until::Deadline(None);
        self.retry(direction, until, OnWouldBlock::Return, |_| false, op)
    }

    /// The shared blocking path of every socket call: runs `op` while the fd may be
    /// ready, parking on its readiness in `direction` otherwise, until it does not fail
    /// with `WouldBlock`. `EINTR` is retried; other errors are returned. A wait that
    /// reaches the deadline fails with `TimedOut`; [`OnWouldBlock::Return`] returns
    /// `WouldBlock` instead of parking (and always tries). A result for which `drained` holds
    /// clears the readiness.
    ///
    /// # Panics
    ///
    /// Unwinds if the greenlet is killed or a `Timeout` expires while it is parked.
    #[track_caller]
    fn retry<T>(
        &self,
        direction: Direction,
        until: Until,
        on_would_block: OnWouldBlock,
        drained: impl Fn(&T) -> bool,
        mut op: impl FnMut(&S) -> io::Result<T>,
    ) -> io::Result<T> {
        let fd = self.fd();
        // Worked out at the first park and kept across retries, so spurious wakes
        // (another greenlet took the data) do not extend the wait.
        let mut deadline: Option<Option<Instant>> = None;
        let parks = on_would_block == OnWouldBlock::Park;
        if parks && !is_ready(fd, direction) {
            self.park(direction, until, &mut deadline)?;
        }
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    clear_ready(fd, direction);
                    if !parks {
                        return Err(e);
                    }
                    self.park(direction, until, &mut deadline)?;
                }
                Ok(done) => {
                    if drained(&done) {
                        clear_ready(fd, direction);
                    }
                    return Ok(done);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Parks until the fd is ready in `direction` or the call's deadline passes.
    #[track_caller]
    fn park(
        &self,
        direction: Direction,
        until: Until,
        deadline: &mut Option<Option<Instant>>,
    ) -> io::Result<()> {
        let at = match *deadline {
            Some(at) => at,
            None => *deadline.insert(match until {
                Until::Deadline(at) => at,
                Until::SocketTimeout => self.timeout(direction)?.and_then(deadline_after),
            }),
        };
        wait(self.io.as_fd(), direction, at)
    }

    /// What the handle's calls do when the kernel says `WouldBlock`: park, unless
    /// the user made it non-blocking (`set_nonblocking` on the socket types).
    fn on_would_block(&self) -> OnWouldBlock {
        if self.nonblocking.load(Ordering::Relaxed) {
            OnWouldBlock::Return
        } else {
            OnWouldBlock::Park
        }
    }

    /// The handle's "do not park" flag (see `set_nonblocking` on the socket types).
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) {
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
    }

    /// The socket's timeout in `direction`, as last set through a handle of it (read
    /// from the kernel the first time).
    fn timeout(&self, direction: Direction) -> io::Result<Option<Duration>> {
        let slot = self.timeouts.slot(direction);
        match slot.load(Ordering::Relaxed) {
            UNKNOWN => {
                let sock = SockRef::from(&self.io);
                let timeout = match direction {
                    Direction::Read => sock.read_timeout()?,
                    Direction::Write => sock.write_timeout()?,
                };
                slot.store(encode(timeout), Ordering::Relaxed);
                Ok(timeout)
            }
            micros => Ok(decode(micros)),
        }
    }

    /// Sets `SO_RCVTIMEO` (`Read`) or `SO_SNDTIMEO` (`Write`) and remembers it for this
    /// socket's handles. A zero duration is `InvalidInput`, as in std.
    pub(crate) fn set_timeout(
        &self,
        direction: Direction,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let sock = SockRef::from(&self.io);
        match direction {
            Direction::Read => sock.set_read_timeout(timeout)?,
            Direction::Write => sock.set_write_timeout(timeout)?,
        }
        self.timeouts
            .slot(direction)
            .store(encode(timeout), Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};
    use std::time::Duration;

    #[test]
    fn timeouts_round_trip_and_tiny_ones_stay_timeouts() {
        assert_eq!(decode(encode(None)), None);
        let t = Duration::from_millis(1500);
        assert_eq!(decode(encode(Some(t))), Some(t));
        assert_eq!(
            decode(encode(Some(Duration::from_nanos(1)))),
            Some(Duration::from_micros(1))
        );
        assert!(decode(encode(Some(Duration::MAX))).is_some());
    }
}
