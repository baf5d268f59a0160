//! `recv`, `recvfrom`, `recvmsg`, `send`, `sendto`, `sendmsg` (and the socket side of
//! `read`/`write`/`readv`/`writev`).
//!
//! Every attempt adds `MSG_DONTWAIT`: non-blocking for this call only, whatever the
//! file description's flags, so no other thread or process sees a change. On `EAGAIN`
//! the hook looks at whether the user made the socket non-blocking (then `EAGAIN` is
//! the answer) and at `SO_RCVTIMEO`/`SO_SNDTIMEO`, both in the fd table entry it read
//! at its start (the kernel is asked only for what the table does not record), parks
//! until the socket is ready or the timeout passes (then `EAGAIN`, as Linux reports an
//! expired socket timeout), and tries again. Calls that never block in the kernel pass
//! through: `MSG_DONTWAIT` given by the caller, `MSG_ERRQUEUE`, and `MSG_OOB` reads.
//!
//! The hot hooks (`recv`, `send`) are two halves: the `extern "C"` hook checks only
//! that the call is cooperative (patched, a greenlet that can park, flags that may
//! block) and jumps either to libc or to its cooperative half, which reads the fd
//! table: the pass-through path does no more than the check.
//!
//! Blocking semantics kept: a send on a `SOCK_STREAM` socket sends everything (a
//! timeout, error or interrupt after some progress returns the progress, as the
//! kernel does), control data going with the first bytes; `MSG_WAITALL` on a stream
//! receives until the buffer is full, end of file, an error or the timeout, stopping
//! after control data (as Linux does for passed fds); `MSG_PEEK | MSG_WAITALL` waits
//! for enough data to peek, with a 1–10 ms cooperative back-off since epoll cannot
//! wait for *more* data on a readable socket.

use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use greenweave_runtime::io::Direction;

use crate::errno::{errno, preserving_errno};
use crate::fd::{self, Entry, Kind};
use crate::msg;
use crate::wait::{Amount, Attempt, Call, Stop, back_off, cooperative_socket, transfer};

/// The real functions.
pub mod real {
    use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};

    crate::real::real_fns! {
        /// libc's `recv`.
        fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t;
        /// libc's `recvfrom`.
        fn recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t) -> ssize_t;
        /// libc's `recvmsg`.
        fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
        /// libc's `send`.
        fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t;
        /// libc's `sendto`.
        fn sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, addrlen: socklen_t) -> ssize_t;
        /// libc's `sendmsg`.
        fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[
    recv as *const (),
    recvfrom as *const (),
    recvmsg as *const (),
    send as *const (),
    sendto as *const (),
    sendmsg as *const (),
];

/// The table entry of `fd` (a socket) if a call with `flags` should be made
/// cooperatively: the one lookup of the fd table the call makes.
#[inline]
pub(crate) fn coop_socket(fd: c_int, flags: c_int, never_blocks: c_int) -> Option<Entry> {
    if !coop_flags(flags, never_blocks) {
        return None;
    }
    socket_entry(fd)
}

/// The first half of [`coop_socket`], without the fd table: patching is on, the
/// caller can park, and `flags` may block.
#[inline]
fn coop_flags(flags: c_int, never_blocks: c_int) -> bool {
    cooperative_socket() && flags & (libc::MSG_DONTWAIT | never_blocks) == 0
}

/// The second half of [`coop_socket`]: `fd`'s entry if it is a socket.
#[inline]
fn socket_entry(fd: c_int) -> Option<Entry> {
    Some(fd::entry(fd)).filter(|e| e.kind().is_socket())
}

/// Receive flags with which the kernel never blocks.
pub(crate) const RECV_NEVER_BLOCKS: c_int = libc::MSG_ERRQUEUE | libc::MSG_OOB;

/// Hook for `recv(2)`.
///
/// # Safety
///
/// As `recv(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    if !coop_flags(flags, RECV_NEVER_BLOCKS) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::recv(fd, buf, len, flags) };
    }
    // SAFETY: the caller's arguments, as `recv(2)` takes them.
    unsafe { recv_coop(fd, buf, len, flags) }
}

/// The rest of [`recv`] once patching is on and the flags may block, out of line so
/// that the pass-through path stays a few checks and a jump (the C calling convention,
/// the hook's own, makes this call a jump too).
///
/// # Safety
///
/// As `recv(2)`.
#[inline(never)]
unsafe extern "C" fn recv_coop(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    let Some(entry) = socket_entry(fd) else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::recv(fd, buf, len, flags) };
    };
    // SAFETY: within the caller's buffer, `done <= len`.
    let op = move |done: usize, f| unsafe {
        real::recv(fd, buf.cast::<u8>().add(done).cast(), len - done, f)
    };
    preserving_errno(|| one_buffer(fd, entry, len, flags, Direction::Read, op))
}

/// Hook for `recvfrom(2)`.
///
/// # Safety
///
/// As `recvfrom(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    let Some(entry) = coop_socket(fd, flags, RECV_NEVER_BLOCKS) else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::recvfrom(fd, buf, len, flags, addr, addrlen) };
    };
    // SAFETY: within the caller's buffer, `done <= len`; the caller's address.
    let op = |done: usize, f| unsafe {
        real::recvfrom(
            fd,
            buf.cast::<u8>().add(done).cast(),
            len - done,
            f,
            addr,
            addrlen,
        )
    };
    preserving_errno(|| one_buffer(fd, entry, len, flags, Direction::Read, op))
}

/// Hook for `recvmsg(2)`.
///
/// # Safety
///
/// As `recvmsg(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's message header, as guaranteed.
    let total = coop_socket(fd, flags, RECV_NEVER_BLOCKS)
        .and_then(|entry| Some((entry, unsafe { msg::msg_total(msg)? })));
    let Some((entry, total)) = total else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::recvmsg(fd, msg, flags) };
    };
    // SAFETY: checked above.
    preserving_errno(|| unsafe { msg::recvmsg_coop(fd, entry, msg, total, flags) })
}

/// Hook for `send(2)`. On a stream socket a blocking send sends it all.
///
/// # Safety
///
/// As `send(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    if !coop_flags(flags, libc::MSG_FASTOPEN) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::send(fd, buf, len, flags) };
    }
    // SAFETY: the caller's arguments, as `send(2)` takes them.
    unsafe { send_coop(fd, buf, len, flags) }
}

/// The rest of [`send`] once patching is on and the flags may block, out of line so
/// that the pass-through path stays a few checks and a jump (the C calling convention,
/// the hook's own, makes this call a jump too).
///
/// # Safety
///
/// As `send(2)`.
#[inline(never)]
unsafe extern "C" fn send_coop(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    let Some(entry) = socket_entry(fd) else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::send(fd, buf, len, flags) };
    };
    // SAFETY: within the caller's buffer, `done <= len`.
    let op = move |done: usize, f| unsafe {
        real::send(fd, buf.cast::<u8>().add(done).cast(), len - done, f)
    };
    preserving_errno(|| one_buffer(fd, entry, len, flags, Direction::Write, op))
}

/// Hook for `sendto(2)`. On a stream socket a blocking send sends it all.
///
/// # Safety
///
/// As `sendto(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> ssize_t {
    let Some(entry) = coop_socket(fd, flags, libc::MSG_FASTOPEN) else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::sendto(fd, buf, len, flags, addr, addrlen) };
    };
    // SAFETY: within the caller's buffer, `done <= len`; the caller's address.
    let op = |done: usize, f| unsafe {
        real::sendto(
            fd,
            buf.cast::<u8>().add(done).cast(),
            len - done,
            f,
            addr,
            addrlen,
        )
    };
    preserving_errno(|| one_buffer(fd, entry, len, flags, Direction::Write, op))
}

/// Hook for `sendmsg(2)`. On a stream socket a blocking send sends it all.
///
/// # Safety
///
/// As `sendmsg(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's message header, as guaranteed.
    let total = coop_socket(fd, flags, libc::MSG_FASTOPEN)
        .and_then(|entry| Some((entry, unsafe { msg::msg_total(msg)? })));
    let Some((entry, total)) = total else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::sendmsg(fd, msg, flags) };
    };
    // SAFETY: checked above.
    preserving_errno(|| unsafe { msg::sendmsg_coop(fd, entry, msg, total, flags) })
}

/// A cooperative receive (or, `sending`, send) of `len` bytes with one buffer:
/// `op(done, flags)` makes the real call for the part after `done`.
pub(crate) fn one_buffer(
    fd: c_int,
    entry: Entry,
    len: usize,
    flags: c_int,
    direction: Direction,
    op: impl Fn(usize, c_int) -> ssize_t,
) -> ssize_t {
    let sending = direction == Direction::Write;
    let option = if sending {
        libc::SO_SNDTIMEO
    } else {
        libc::SO_RCVTIMEO
    };
    let mut call = Call::with_entry(fd, entry, direction, Some(option)).reading_socket(flags);
    let stream = entry.kind() == Kind::Stream;
    let waitall = !sending && stream && flags & libc::MSG_WAITALL != 0;
    if waitall && flags & libc::MSG_PEEK != 0 {
        return peek_all(&mut call, len, |f| op(0, flags | f));
    }
    let amount = if (sending && stream) || waitall {
        Amount::All
    } else {
        Amount::First
    };
    transfer(&mut call, len, amount, |done, attempt| {
        op(done, flags | nowait(attempt))
    })
}

/// `MSG_PEEK | MSG_WAITALL` on a stream: peek until `len` bytes are there (or end of
/// file, an error, the socket timeout, an interrupt: then what could be peeked).
pub(crate) fn peek_all(call: &mut Call, len: usize, peek: impl Fn(c_int) -> ssize_t) -> ssize_t {
    let mut step = 1;
    loop {
        let n = peek(libc::MSG_DONTWAIT);
        if n < 0 {
            if errno() != libc::EAGAIN {
                return -1;
            }
            match call.park() {
                Ok(()) => continue,
                Err(Stop::Unwatchable) => return peek(0),
                Err(stop) => return fail(stop),
            }
        }
        if n == 0 || n as usize >= len || call.user_nonblocking() != Ok(false) {
            return n;
        }
        // Some data, not enough; epoll cannot wait for more on a readable socket.
        let deadline = call.deadline();
        let eintr = call.eintr();
        if back_off(&mut step, deadline, eintr).is_err() {
            return n;
        }
    }
}

/// The flag that makes a send or receive the `attempt`: `MSG_DONTWAIT` for a
/// non-blocking one.
pub(crate) fn nowait(attempt: Attempt) -> c_int {
    match attempt {
        Attempt::NonBlocking => libc::MSG_DONTWAIT,
        Attempt::Blocking => 0,
    }
}

/// -1 with the errno for `stop` (`EAGAIN` for an expired socket timeout).
pub(crate) fn fail(stop: Stop) -> ssize_t {
    let errno = match stop {
        Stop::Fail(errno) => errno,
        Stop::TimedOut | Stop::Unwatchable => libc::EAGAIN,
    };
    crate::errno::set_errno(errno);
    -1
}
