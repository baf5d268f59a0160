//! `socket`, `socketpair`, `connect`, `accept`, `accept4`, `setsockopt`.
//!
//! - `socket`/`socketpair` (and the fds `accept*` returns) are recorded in the fd
//!   table as they are made, whenever the socket area is patched, with their blocking
//!   mode (`SOCK_NONBLOCK`) and timeouts (none; an accepted connection's are its
//!   listener's). `setsockopt` of `SO_RCVTIMEO`/`SO_SNDTIMEO` records the new
//!   timeout (see the `fd` module).
//! - `accept`/`accept4` have no per-call non-blocking flag, and making the listener
//!   non-blocking, even briefly, would make a concurrent blocking `accept` on another
//!   thread or process fail with `EAGAIN`. So the hook polls the listener with a zero
//!   timeout and calls the real `accept` only once a connection is queued; until then
//!   it parks (honouring `SO_RCVTIMEO`: `EAGAIN` when it expires, as Linux does). A
//!   user-non-blocking listener gets `EAGAIN` at once. If another thread or process
//!   sharing the listener takes the queued connection between the poll and the
//!   `accept`, the call blocks the thread until the next one: the one race left, and
//!   it costs cooperation, never correctness.
//! - `connect` has no per-call flag either: the hook sets `O_NONBLOCK` on the
//!   description for the `connect` syscall alone (which then returns at once) and
//!   restores the flags right after; meanwhile the `fcntl(F_GETFL)` hook hides the
//!   flag. On `EINPROGRESS` it parks until the socket is writable (honouring
//!   `SO_SNDTIMEO`: `EINPROGRESS` when it expires, as a blocking Linux `connect` with
//!   a send timeout reports), then returns `SO_ERROR` as the blocking call would. A Unix
//!   socket whose listener's backlog is full (`EAGAIN`) is retried with a 1–10 ms
//!   cooperative back-off. (A `fcntl(F_SETFL)` by another thread during that one
//!   syscall would be undone by the restore.)

use std::time::Duration;

use libc::{c_int, c_void, sockaddr, socklen_t};

use greenweave_runtime::io::Direction;

use crate::Area;
use crate::errno::{errno, preserving_errno, set_errno};
use crate::fd::{self, Kind, Opened};
use crate::poll::ready;
use crate::state::is_patched;
use crate::wait::{Call, Stop, back_off, cooperative_socket, wait_fd};

/// The real functions.
pub mod real {
    use libc::{c_int, c_void, sockaddr, socklen_t};

    crate::real::real_fns! {
        /// libc's `socket`.
        fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
        /// libc's `socketpair`.
        fn socketpair(domain: c_int, ty: c_int, protocol: c_int, sv: *mut c_int) -> c_int;
        /// libc's `connect`.
        fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
        /// libc's `accept`.
        fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
        /// libc's `accept4`.
        fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
        /// libc's `setsockopt`.
        fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: socklen_t) -> c_int;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[
    socket as *const (),
    socketpair as *const (),
    connect as *const (),
    accept as *const (),
    accept4 as *const (),
    setsockopt as *const (),
];

/// Hook for `socket(2)`: records the new socket's kind.
///
/// # Safety
///
/// None beyond the C function's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    // SAFETY: plain integer arguments.
    let fd = unsafe { real::socket(domain, ty, protocol) };
    if fd >= 0 && is_patched(Area::Socket) {
        let (kind, opened) = made(domain, ty);
        fd::opened(fd, kind, opened);
    }
    fd
}

/// What a socket made with `domain` and type `ty` (flags included) is known to be.
fn made(domain: c_int, ty: c_int) -> (Kind, Opened) {
    let kind = Kind::of_socket_type(ty);
    let inet = matches!(domain, libc::AF_INET | libc::AF_INET6);
    let opened = Opened {
        tcp: inet && kind == Kind::Stream,
        nonblocking: ty & libc::SOCK_NONBLOCK != 0,
        timeouts_of: None,
    };
    (kind, opened)
}

/// Hook for `socketpair(2)`: records the new sockets' kind.
///
/// # Safety
///
/// As `socketpair(2)`: `sv` is writable for two fds.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    ty: c_int,
    protocol: c_int,
    sv: *mut c_int,
) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    let rc = unsafe { real::socketpair(domain, ty, protocol, sv) };
    if rc == 0 && is_patched(Area::Socket) {
        // SAFETY: the kernel just filled in both fds.
        let pair = unsafe { [*sv, *sv.add(1)] };
        let (kind, opened) = made(domain, ty);
        pair.into_iter().for_each(|fd| fd::opened(fd, kind, opened));
    }
    rc
}

/// Hook for `accept(2)`: parks until a connection is queued.
///
/// # Safety
///
/// As `accept(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { accept_hook(fd, addr, len, None) }
}

/// Hook for `accept4(2)` (what `std::net::TcpListener::accept` calls): parks until a
/// connection is queued.
///
/// # Safety
///
/// As `accept4(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { accept_hook(fd, addr, len, Some(flags)) }
}

/// `accept` (`flags: None`) or `accept4`.
///
/// # Safety
///
/// As `accept4(2)`.
unsafe fn accept_hook(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: Option<c_int>,
) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    let real = || unsafe {
        let new = match flags {
            Some(flags) => real::accept4(fd, addr, len, flags),
            None => real::accept(fd, addr, len),
        };
        if new >= 0 && is_patched(Area::Socket) {
            let nonblocking = flags.is_some_and(|f| f & libc::SOCK_NONBLOCK != 0);
            fd::accepted(fd, new, nonblocking);
        }
        new
    };
    if !cooperative_socket() || !matches!(fd::kind(fd), Kind::Stream | Kind::SeqPacket) {
        return real();
    }
    preserving_errno(|| {
        let mut call = Call::new(fd, Direction::Read, Some(libc::SO_RCVTIMEO));
        let mut checked = false;
        loop {
            // Ready also covers errors and hang-ups: the real call reports those. (A
            // listener the hub knows has nothing queued is not polled.)
            if !call.parks_first() && ready(fd, libc::POLLIN) {
                return real();
            }
            // Before the first park: a socket that is not listening fails at once.
            if !std::mem::replace(&mut checked, true) && !listening(fd) {
                return real();
            }
            match call.park() {
                Ok(()) => {}
                Err(Stop::Unwatchable) => return real(),
                Err(Stop::TimedOut) => return fail(libc::EAGAIN),
                Err(Stop::Fail(errno)) => return fail(errno),
            }
        }
    })
}

/// Whether `fd` is a listening socket (`SO_ACCEPTCONN`).
fn listening(fd: c_int) -> bool {
    let mut on: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `on` and `len` are valid out-pointers of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut on).cast(),
            &mut len,
        )
    };
    rc == 0 && on != 0
}

/// Sets `errno`, returns -1.
fn fail(errno: c_int) -> c_int {
    set_errno(errno);
    -1
}

/// Hook for `connect(2)`: parks until the connection is made (or fails).
///
/// # Safety
///
/// As `connect(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if !cooperative_socket() || !fd::kind(fd).is_socket() {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::connect(fd, addr, len) };
    }
    // SAFETY: F_GETFL takes no argument.
    let flags = unsafe { crate::ctl::real::fcntl(fd, libc::F_GETFL, 0) };
    if flags < 0 || flags & libc::O_NONBLOCK != 0 {
        // Not open, or the user's non-blocking socket: the kernel's own answer.
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::connect(fd, addr, len) };
    }
    preserving_errno(|| {
        let mut call = Call::new(fd, Direction::Write, Some(libc::SO_SNDTIMEO));
        let mut step = 1;
        loop {
            // SAFETY: the caller's address; `flags` are the description's own.
            if unsafe { nonblocking_connect(fd, addr, len, flags) } == 0 {
                return 0;
            }
            match errno() {
                // `EALREADY`: a connect a signal interrupted goes on in the background;
                // a blocking call waits for it, as the kernel's does.
                libc::EINPROGRESS | libc::EALREADY => return finish_connect(fd, &mut call),
                // A Unix socket whose listener's backlog is full: epoll cannot say
                // when there is room.
                libc::EAGAIN => match back_off(&mut step, call.deadline(), call.eintr()) {
                    Ok(()) => {}
                    Err(Stop::Fail(errno)) => return fail(errno),
                    Err(_) => return fail(libc::EAGAIN),
                },
                _ => return -1,
            }
        }
    })
}

/// The real `connect` with `O_NONBLOCK` set for its length (hidden from `F_GETFL`).
///
/// # Safety
///
/// As `connect(2)`; `flags` are the description's current flags.
unsafe fn nonblocking_connect(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
    flags: c_int,
) -> c_int {
    fd::set_connecting(fd, true);
    // SAFETY: F_SETFL with an int argument.
    unsafe { crate::ctl::real::fcntl(fd, libc::F_SETFL, (flags | libc::O_NONBLOCK) as _) };
    // SAFETY: the caller's arguments.
    let rc = unsafe { real::connect(fd, addr, len) };
    let err = errno();
    // SAFETY: as above.
    unsafe { crate::ctl::real::fcntl(fd, libc::F_SETFL, flags as _) };
    fd::set_connecting(fd, false);
    set_errno(err);
    rc
}

/// The connection is in progress: park until it is made or fails, and report as a
/// blocking `connect` would.
fn finish_connect(fd: c_int, call: &mut Call) -> c_int {
    let deadline = call.deadline();
    match wait_fd(fd, Direction::Write, deadline, call.eintr()) {
        Ok(()) => {}
        Err(Stop::TimedOut) => return fail(libc::EINPROGRESS),
        Err(Stop::Fail(errno)) => return fail(errno),
        Err(Stop::Unwatchable) => {
            // Cannot happen for a socket; wait the blocking way all the same.
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { crate::poll::real::poll(&mut p, 1, -1) };
        }
    }
    let mut err: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `err` and `len` are valid out-pointers of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return -1;
    }
    if err != 0 {
        return fail(err);
    }
    0
}

/// Hook for `setsockopt(2)`: records a new `SO_RCVTIMEO`/`SO_SNDTIMEO` in the fd
/// table once the kernel has taken it.
///
/// # Safety
///
/// As `setsockopt(2)`: `value` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    let rc = unsafe { real::setsockopt(fd, level, name, value, len) };
    if rc == 0 && level == libc::SOL_SOCKET && is_patched(Area::Socket) {
        // SAFETY: the kernel accepted `value` as this option's argument.
        if let Some(timeout) = unsafe { timeout_value(name, value, len) } {
            fd::set_timeout(fd, name, timeout);
        }
    }
    rc
}

/// The timeout a successful `setsockopt(SOL_SOCKET, name, value, len)` set, if `name`
/// is a timeout option: `Some(None)` for none (zero, or a negative time, which Linux
/// takes as none).
///
/// # Safety
///
/// The kernel accepted `value` (`len` bytes) for `name`.
#[allow(clippy::useless_conversion)] // `time_t` and `suseconds_t` are `i64` on 64-bit Linux only
unsafe fn timeout_value(
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> Option<Option<Duration>> {
    let (sec, usec) = match name {
        libc::SO_RCVTIMEO | libc::SO_SNDTIMEO if len as usize >= size_of::<libc::timeval>() => {
            // SAFETY: as the caller guarantees; read unaligned, as the kernel does.
            let tv = unsafe { value.cast::<libc::timeval>().read_unaligned() };
            (i64::from(tv.tv_sec), i64::from(tv.tv_usec))
        }
        fd::SO_RCVTIMEO_NEW | fd::SO_SNDTIMEO_NEW if len as usize >= size_of::<[i64; 2]>() => {
            // SAFETY: as above (`struct __kernel_sock_timeval`).
            let [sec, usec] = unsafe { value.cast::<[i64; 2]>().read_unaligned() };
            (sec, usec)
        }
        _ => return None,
    };
    if sec < 0 || (sec == 0 && usec <= 0) {
        return Some(None);
    }
    Some(Some(
        Duration::from_secs(sec as u64) + Duration::from_micros(usec.max(0) as u64),
    ))
}
