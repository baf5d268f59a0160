//! `sendfile`, `sendfile64`, `splice`: the zero-copy transfers (what `std::io::copy`
//! uses between a file, a pipe and a socket on Linux).
//!
//! Neither call has a per-call non-blocking flag for a socket (`SPLICE_F_NONBLOCK`
//! only covers the pipe side), and making the caller's socket non-blocking, even for
//! one call, would make a thread reading it meanwhile fail with `EAGAIN`. So:
//!
//! - **The pipe side** is non-blocking per call: `splice` gets `SPLICE_F_NONBLOCK`,
//!   and `sendfile` into a pipe is made as that `splice` (the same transfer: the file
//!   at `offset`, or at its position, advancing it). On `EAGAIN` the hook parks until
//!   the pipe is readable (or writable) and tries again.
//! - **The socket side** is waited for before the call: readable (data or end of file)
//!   before splicing from a socket, writable before sending to one. A send is then cut
//!   to half the room left in the socket's send buffer (`SO_MEMINFO`), which the kernel
//!   takes without waiting. The estimate can only be wrong if another thread or
//!   process uses the same socket meanwhile (takes the data, fills the buffer); the
//!   call then blocks the thread until the peer reads, as unpatched: it never costs
//!   data.
//! - **Regular files** never block: a file-to-file `sendfile` (and anything else that
//!   is neither a pipe nor a stream socket on the blocking side) passes through.
//!
//! Blocking semantics kept: `sendfile` to a stream socket sends all `count` bytes (or
//! up to the end of the file), as the blocking call does, in as many real calls as the
//! socket's room needs, `offset` (or the file position) advanced by what was sent; an
//! error, socket timeout, kill or `Timeout` after some progress returns the progress.
//! `sendfile` into a pipe and `splice` return after one transfer, as the kernel's do.
//! A socket or pipe the user made non-blocking, and `SPLICE_F_NONBLOCK` given by the
//! caller, get the real call (the kernel's own `EAGAIN`). `SO_RCVTIMEO`/`SO_SNDTIMEO`
//! bound the waits on a socket (`EAGAIN` when they expire).

use greenweave_runtime::coop::Eintr;
use libc::{c_int, c_uint, loff_t, off_t, size_t, ssize_t};

use greenweave_runtime::io::Direction;

use crate::errno::{errno, preserving_errno, set_errno};
use crate::fd::{self, Kind};
use crate::poll::ready;
use crate::wait::{Call, Stop, back_off, cooperative_socket, give_up, park_or_answer};

/// The real functions.
pub mod real {
    use libc::{c_int, c_uint, loff_t, off_t, size_t, ssize_t};

    crate::real::real_fns! {
        /// libc's `sendfile`.
        fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut off_t, count: size_t) -> ssize_t;
        /// libc's `sendfile64`.
        fn sendfile64(out_fd: c_int, in_fd: c_int, offset: *mut off_t, count: size_t) -> ssize_t;
        /// libc's `splice`.
        fn splice(fd_in: c_int, off_in: *mut loff_t, fd_out: c_int, off_out: *mut loff_t, len: size_t, flags: c_uint) -> ssize_t;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[
    sendfile as *const (),
    sendfile64 as *const (),
    splice as *const (),
];

/// Hook for `sendfile(2)`.
///
/// # Safety
///
/// As `sendfile(2)`: `offset` is null or a valid, writable offset.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendfile(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut off_t,
    count: size_t,
) -> ssize_t {
    // SAFETY: the caller's arguments.
    unsafe { sendfile_hook(out_fd, in_fd, offset, count, real::sendfile) }
}

/// Hook for `sendfile64` (what C code built with `_FILE_OFFSET_BITS=64` calls; the
/// same call on 64-bit Linux).
///
/// # Safety
///
/// As `sendfile(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendfile64(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut off_t,
    count: size_t,
) -> ssize_t {
    // SAFETY: the caller's arguments.
    unsafe { sendfile_hook(out_fd, in_fd, offset, count, real::sendfile64) }
}

/// `sendfile` or `sendfile64`, whichever `real_sendfile` is.
///
/// # Safety
///
/// As `sendfile(2)`.
unsafe fn sendfile_hook(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut off_t,
    count: size_t,
    real_sendfile: unsafe fn(c_int, c_int, *mut off_t, size_t) -> ssize_t,
) -> ssize_t {
    // SAFETY: the caller's arguments, passed on unchanged.
    let real_call = |out: c_int, count: size_t| unsafe { real_sendfile(out, in_fd, offset, count) };
    if count == 0 || !cooperative_socket() {
        return real_call(out_fd, count);
    }
    match fd::kind(out_fd) {
        Kind::Fifo | Kind::FifoPolled => {
            // `off_t` and `loff_t` are both 64-bit on 64-bit Linux.
            let off = offset.cast::<loff_t>();
            let null = std::ptr::null_mut();
            // SAFETY: the caller's fds and offset; the pipe side non-blocking.
            let attempt = || unsafe { real::splice(in_fd, off, out_fd, null, count, NONBLOCK) };
            preserving_errno(|| {
                let n = attempt();
                if n < 0 && errno() != libc::EAGAIN {
                    // A file `splice` refuses: the real call gives the kernel's answer.
                    return real_call(out_fd, count);
                }
                pipe_loop(n, attempt, || {
                    Call::new(out_fd, Direction::Write, None).park()
                })
            })
        }
        Kind::Stream => preserving_errno(|| send_all(out_fd, count, real_call)),
        _ => real_call(out_fd, count),
    }
}

/// Hook for `splice(2)`.
///
/// # Safety
///
/// As `splice(2)`: the offsets are null or valid, writable offsets.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut loff_t,
    fd_out: c_int,
    off_out: *mut loff_t,
    len: size_t,
    flags: c_uint,
) -> ssize_t {
    // SAFETY: the caller's arguments, with `len` and `flags` as given.
    let call = |len: size_t, flags: c_uint| unsafe {
        real::splice(fd_in, off_in, fd_out, off_out, len, flags)
    };
    if len == 0 || flags & NONBLOCK != 0 || !cooperative_socket() {
        return call(len, flags);
    }
    let (kind_in, kind_out) = (fd::kind(fd_in), fd::kind(fd_out));
    if !is_pipe(kind_in) && !is_pipe(kind_out) {
        return call(len, flags);
    }
    // A socket side the user made non-blocking: the kernel's own answer.
    let socket_in = kind_in.is_socket().then_some(fd_in);
    let socket_out = kind_out.is_socket().then_some(fd_out);
    for socket in socket_in.iter().chain(&socket_out) {
        if Call::new(*socket, Direction::Read, None).user_nonblocking() != Ok(false) {
            return call(len, flags);
        }
    }
    preserving_errno(|| {
        let mut socket_call = socket_in
            .map(|fd| Call::new(fd, Direction::Read, Some(libc::SO_RCVTIMEO)))
            .or_else(|| {
                socket_out.map(|fd| Call::new(fd, Direction::Write, Some(libc::SO_SNDTIMEO)))
            });
        let mut step = 1;
        loop {
            // The socket side first: it has no per-call flag, so wait until it is ready.
            if let Some(socket_call) = socket_call.as_mut() {
                let (fd, events) = match socket_in {
                    Some(fd) => (fd, libc::POLLIN),
                    None => (fd_out, libc::POLLOUT),
                };
                if !ready(fd, events) {
                    match socket_call.park() {
                        Ok(()) => continue,
                        Err(Stop::Unwatchable) => return call(len, flags),
                        Err(stop) => return fail(stop),
                    }
                }
            }
            let len = socket_out.map_or(len, |fd| len.min(send_room(fd)));
            let n = call(len, flags | NONBLOCK);
            if n >= 0 || errno() != libc::EAGAIN {
                return n;
            }
            // A pipe side is not ready: wait for it (its user-non-blocking flag means
            // `EAGAIN`, as the kernel's call would give).
            let waited = if is_pipe(kind_in) && !ready(fd_in, libc::POLLIN) {
                Call::new(fd_in, Direction::Read, None).park()
            } else if is_pipe(kind_out) && !ready(fd_out, libc::POLLOUT) {
                Call::new(fd_out, Direction::Write, None).park()
            } else {
                // Ready again already (another reader or writer moved first).
                back_off(&mut step, None, Eintr::UnlessRestarted)
            };
            match waited {
                Ok(()) => {}
                Err(Stop::Unwatchable) => return call(len, flags),
                Err(stop) => return fail(stop),
            }
        }
    })
}

/// `SPLICE_F_NONBLOCK`, as the `c_uint` the flags are.
const NONBLOCK: c_uint = libc::SPLICE_F_NONBLOCK;

fn is_pipe(kind: Kind) -> bool {
    matches!(kind, Kind::Fifo | Kind::FifoPolled)
}

/// -1 with the errno for `stop` (`EAGAIN` for an expired socket timeout).
fn fail(stop: Stop) -> ssize_t {
    crate::sock::fail(stop)
}

/// The retry loop of a transfer into a pipe: `first` is the first attempt's result,
/// `wait` parks until the pipe may be ready.
fn pipe_loop(
    first: ssize_t,
    attempt: impl Fn() -> ssize_t,
    wait: impl Fn() -> Result<(), Stop>,
) -> ssize_t {
    let mut n = first;
    loop {
        if n >= 0 || errno() != libc::EAGAIN {
            return n;
        }
        match wait() {
            Ok(()) => {}
            Err(Stop::Unwatchable) => {
                set_errno(libc::EAGAIN);
                return -1;
            }
            Err(stop) => return fail(stop),
        }
        n = attempt();
    }
}

/// `sendfile` to a blocking stream socket: `count` bytes (or to the end of the file),
/// each real call cut to the socket's room, parking while it has none.
fn send_all(out_fd: c_int, count: size_t, real_call: impl Fn(c_int, size_t) -> ssize_t) -> ssize_t {
    let mut call = Call::new(out_fd, Direction::Write, Some(libc::SO_SNDTIMEO));
    match call.user_nonblocking() {
        Ok(false) => {}
        // The user's non-blocking socket (or a closed fd): the kernel's own answer.
        _ => return real_call(out_fd, count),
    }
    let mut sent = 0_usize;
    while sent < count {
        if !ready(out_fd, libc::POLLOUT) {
            match park_or_answer(&mut call, sent, || real_call(out_fd, count - sent)) {
                None => continue,
                Some(answer) => return answer,
            }
        }
        let n = real_call(out_fd, (count - sent).min(send_room(out_fd)));
        match n {
            0 => break, // the end of the file
            n if n > 0 => sent += n as usize,
            _ if errno() == libc::EAGAIN => continue,
            _ => return give_up(sent, errno()),
        }
    }
    sent as ssize_t
}

/// Bytes a writable socket takes without waiting: half the room its send buffer has
/// left (`SO_MEMINFO`; the kernel charges some overhead per buffer), at least 1.
fn send_room(fd: c_int) -> usize {
    const SNDBUF: usize = 3; // SK_MEMINFO_SNDBUF
    const WMEM_ALLOC: usize = 2; // SK_MEMINFO_WMEM_ALLOC
    const WMEM_QUEUED: usize = 5; // SK_MEMINFO_WMEM_QUEUED
    let mut info = [0_u32; 9]; // SK_MEMINFO_VARS
    let mut len = size_of_val(&info) as libc::socklen_t;
    let saved = errno();
    // SAFETY: `info` and `len` are valid out-pointers of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    set_errno(saved);
    if rc != 0 || (len as usize) < (WMEM_QUEUED + 1) * 4 {
        return 16 * 1024;
    }
    let used = info[WMEM_ALLOC].max(info[WMEM_QUEUED]);
    (info[SNDBUF].saturating_sub(used) / 2).max(1) as usize
}
