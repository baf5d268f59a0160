//! `recvmmsg`, `sendmmsg`: batches of messages, as the socket hooks do single ones.
//!
//! Each attempt is the real call with `MSG_DONTWAIT` added, so it moves as many
//! messages as the socket has (or takes) in one system call without blocking; when it
//! says `EAGAIN` the hook parks until the socket is ready and tries again, as the
//! `recvmsg`/`sendmsg` hooks do (a user-non-blocking socket gets `EAGAIN`; an expired
//! `SO_RCVTIMEO`/`SO_SNDTIMEO` gives `EAGAIN` before any message and the count after
//! some, each message's wait timed afresh as in the kernel). Calls that never block
//! pass through: `MSG_DONTWAIT` given by the caller, `MSG_ERRQUEUE`/`MSG_OOB` reads,
//! `vlen` of 0, non-sockets.
//!
//! Blocking semantics kept, as Linux has them:
//!
//! - `recvmmsg` waits until `vlen` messages are in (`vlen` capped at `UIO_MAXIOV`, as
//!   the kernel caps it), or with `MSG_WAITFORONE` only for the first one. Its
//!   `timeout` is checked after each message received, not while waiting (the
//!   kernel's documented behaviour, `recvmmsg(2)` BUGS: it bounds a call that keeps
//!   receiving, not a wait for a message that never comes; use `SO_RCVTIMEO` or
//!   `poll` for that), and the time left is written back when messages were received.
//! - `sendmmsg` sends every message; on a stream socket each one whole, the rest of a
//!   message the socket took in part going out before the next one (as a blocking
//!   `sendmsg` would).
//! - An error, socket timeout, kill or `Timeout` after some messages returns the count
//!   so far (the kernel also keeps the error for the next call; a hook cannot, so the
//!   next call meets it afresh if it persists); before any, -1 with `errno`.
//! - `recvmmsg` with `MSG_WAITALL` on a stream socket passes straight through: each
//!   message must then fill its buffers, which a non-blocking batch cannot keep.

use std::time::{Duration, Instant};

use libc::{c_int, c_uint, mmsghdr, ssize_t, timespec};

use greenweave_runtime::io::Direction;

use crate::errno::{errno, preserving_errno};
use crate::fd::{Entry, Kind};
use crate::msg::{msg_total, sendmsg_rest};
use crate::sock::{RECV_NEVER_BLOCKS, coop_socket, nowait};
use crate::wait::{Attempt, Call, give_up, park_or_answer};

/// The real functions.
pub mod real {
    use libc::{c_int, c_uint, mmsghdr, timespec};

    crate::real::real_fns! {
        /// libc's `recvmmsg`.
        fn recvmmsg(fd: c_int, msgvec: *mut mmsghdr, vlen: c_uint, flags: c_int, timeout: *mut timespec) -> c_int;
        /// libc's `sendmmsg`.
        fn sendmmsg(fd: c_int, msgvec: *mut mmsghdr, vlen: c_uint, flags: c_int) -> c_int;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[recvmmsg as *const (), sendmmsg as *const ()];

/// The most messages one call handles (the kernel caps `vlen` at this).
const MAX_VLEN: c_uint = libc::UIO_MAXIOV as c_uint;

/// Hook for `recvmmsg(2)`.
///
/// # Safety
///
/// As `recvmmsg(2)`: `msgvec` holds `vlen` valid message headers; `timeout` is null or
/// a valid `timespec`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    msgvec: *mut mmsghdr,
    vlen: c_uint,
    flags: c_int,
    timeout: *mut timespec,
) -> c_int {
    // SAFETY: the caller's timeout is null or readable.
    let limit = unsafe { timeout.as_ref() }.copied();
    let valid = limit.is_none_or(|t| t.tv_sec >= 0 && (0..1_000_000_000).contains(&t.tv_nsec));
    let entry = coop_socket(fd, flags, RECV_NEVER_BLOCKS).filter(|entry| {
        valid
            && vlen > 0
            && !msgvec.is_null()
            && !(entry.kind() == Kind::Stream && flags & libc::MSG_WAITALL != 0)
    });
    let Some(entry) = entry else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::recvmmsg(fd, msgvec, vlen, flags, timeout) };
    };
    let deadline = limit
        .and_then(|t| Instant::now().checked_add(Duration::new(t.tv_sec as u64, t.tv_nsec as u32)));
    let vlen = vlen.min(MAX_VLEN);
    let attempt = |got: c_uint, attempt: Attempt| {
        // What the kernel would have left of the timeout (zero: stop after one more).
        let mut left = deadline.map(|d| to_timespec(d.saturating_duration_since(Instant::now())));
        let left_ptr = left.as_mut().map_or(std::ptr::null_mut(), |t| t as *mut _);
        // SAFETY: the caller's headers from `got` on; `got < vlen`.
        unsafe {
            real::recvmmsg(
                fd,
                msgvec.add(got as usize),
                vlen - got,
                flags | nowait(attempt),
                left_ptr,
            )
        }
    };
    let more = |got: c_uint| {
        got < vlen
            && flags & libc::MSG_WAITFORONE == 0
            && deadline.is_none_or(|d| Instant::now() < d)
    };
    let rc = preserving_errno(|| batches(fd, entry, Direction::Read, more, attempt, |_| true));
    // SAFETY: the caller's timeout is null or writable.
    if let (true, Some(deadline), Some(out)) = (rc > 0, deadline, unsafe { timeout.as_mut() }) {
        *out = to_timespec(deadline.saturating_duration_since(Instant::now()));
    }
    rc
}

/// Hook for `sendmmsg(2)`.
///
/// # Safety
///
/// As `sendmmsg(2)`: `msgvec` holds `vlen` valid message headers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgvec: *mut mmsghdr,
    vlen: c_uint,
    flags: c_int,
) -> c_int {
    let entry =
        coop_socket(fd, flags, libc::MSG_FASTOPEN).filter(|_| vlen > 0 && !msgvec.is_null());
    let Some(entry) = entry else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::sendmmsg(fd, msgvec, vlen, flags) };
    };
    let vlen = vlen.min(MAX_VLEN);
    let attempt = |sent: c_uint, attempt: Attempt| {
        let flags = flags | nowait(attempt);
        // SAFETY: the caller's headers from `sent` on; `sent < vlen`.
        unsafe { real::sendmmsg(fd, msgvec.add(sent as usize), vlen - sent, flags) }
    };
    // A stream socket may take the last message of a batch in part: send the rest of
    // it before going on, as the blocking call would.
    let finish = |sent: c_uint| {
        if entry.kind() != Kind::Stream {
            return true;
        }
        // SAFETY: `sent >= 1` headers were just sent, so the last is the caller's.
        let last = unsafe { &mut *msgvec.add(sent as usize - 1) };
        // SAFETY: the caller's valid header.
        let Some(total) = (unsafe { msg_total(&last.msg_hdr) }) else {
            return true;
        };
        let done = last.msg_len as usize;
        if done >= total {
            return true;
        }
        // SAFETY: as above; `done < total`.
        let rest = unsafe { sendmsg_rest(fd, &last.msg_hdr, done, total, flags) };
        last.msg_len += rest.max(0) as c_uint;
        last.msg_len as usize == total
    };
    preserving_errno(|| {
        batches(
            fd,
            entry,
            Direction::Write,
            |sent| sent < vlen,
            attempt,
            finish,
        )
    })
}

/// The loop of both hooks, working from `fd`'s table `entry` as the hook read it at
/// its start (see [`Call`]). `attempt(done, how)` moves messages from `done` on
/// ([`Attempt::Blocking`] only for an fd epoll refuses);
/// `finish(done)` completes the last message moved, `false` if it could not;
/// `more(done)` says whether the call goes on.
fn batches(
    fd: c_int,
    entry: Entry,
    direction: Direction,
    more: impl Fn(c_uint) -> bool,
    attempt: impl Fn(c_uint, Attempt) -> c_int,
    mut finish: impl FnMut(c_uint) -> bool,
) -> c_int {
    let option = if direction == Direction::Write {
        libc::SO_SNDTIMEO
    } else {
        libc::SO_RCVTIMEO
    };
    let mut call = Call::with_entry(fd, entry, direction, Some(option));
    let mut done: c_uint = 0;
    // Message counts fit a `c_int` (at most `UIO_MAXIOV`).
    let give_up = |done: c_uint, errno: c_int| give_up(done as usize, errno) as c_int;
    loop {
        let n = attempt(done, Attempt::NonBlocking);
        if n > 0 {
            done += n as c_uint;
            if !finish(done) || !more(done) {
                return done as c_int;
            }
            // The next message's wait is timed afresh.
            call = Call::with_entry(fd, entry, direction, Some(option));
            continue;
        }
        if n == 0 {
            // Not given for a non-empty batch (an end of file counts as a message).
            return done as c_int;
        }
        let err = errno();
        if err != libc::EAGAIN {
            return give_up(done, err);
        }
        let blocking = || attempt(done, Attempt::Blocking) as ssize_t;
        if let Some(answer) = park_or_answer(&mut call, done as usize, blocking) {
            return answer as c_int;
        }
    }
}

fn to_timespec(d: Duration) -> timespec {
    timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}
