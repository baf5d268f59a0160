//! `close`, `dup`, `dup2`, `dup3`, `fcntl`, `ioctl`, `pipe`, `pipe2`: keeping the fd
//! table right, and waking greenlets whose fd is closed.
//!
//! - `close` (and `dup2`/`dup3` replacing an open fd) first reports the fd to the
//!   runtime ([`notify_closed`](greenweave_runtime::coop::notify_closed)): this
//!   thread's hub drops its epoll registration while the fd is still open and wakes
//!   every greenlet waiting on it, whose call then fails with `EBADF`; other threads'
//!   hubs drop theirs at their next use of the number. Then it closes the fd and drops
//!   its table entry. Greenlets of *other* threads' hubs waiting on the same fd are not
//!   woken (epoll forgets a closed fd silently; nothing crosses threads).
//! - `dup`, `dup2`, `dup3`, `fcntl(F_DUPFD*)` give the new fd the old one's kind and
//!   state (both then shared, see the `fd` module); `pipe`/`pipe2` record their fds as
//!   pipes, with the `O_NONBLOCK` given.
//! - `fcntl(F_SETFL)` and `ioctl(FIONBIO)` record the user's `O_NONBLOCK`.
//! - `fcntl(F_GETFL)` hides the `O_NONBLOCK` that `connect` sets for the length of its
//!   syscall (see the `net` module), so callers only ever see their own flag.
//!
//! These hooks work whenever the socket area is patched, on every thread: the table is
//! shared by all of them.
//!
//! `fcntl` and `ioctl` are variadic in C. The hooks take the optional third argument
//! as a fixed `c_ulong`: on the Linux ABIs (x86_64, aarch64, …) the first variadic
//! integer or pointer arguments travel exactly like fixed ones, and the real functions
//! are called through a variadic pointer.

use greenweave_runtime::coop;
use libc::{c_int, c_ulong};

use crate::Area;
use crate::fd::{self, Kind, Opened};
use crate::state::is_patched;

/// The real functions.
pub mod real {
    use libc::{c_int, c_ulong};

    crate::real::real_fns! {
        /// libc's `close`.
        fn close(fd: c_int) -> c_int;
        /// libc's `dup`.
        fn dup(fd: c_int) -> c_int;
        /// libc's `dup2`.
        fn dup2(old: c_int, new: c_int) -> c_int;
        /// libc's `dup3`.
        fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
        /// libc's `pipe`.
        fn pipe(fds: *mut c_int) -> c_int;
        /// libc's `pipe2`.
        fn pipe2(fds: *mut c_int, flags: c_int) -> c_int;
    }

    /// libc's `fcntl`, with its optional argument as an integer (pointers fit).
    ///
    /// # Safety
    ///
    /// The same contract as the libc function: `arg` is what `cmd` expects.
    pub unsafe fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
        // SAFETY: as the caller guarantees.
        unsafe { variadic(c"fcntl", fd, cmd, arg) }
    }

    /// libc's `fcntl64` (what C code built with `_FILE_OFFSET_BITS=64` calls).
    ///
    /// # Safety
    ///
    /// As [`fcntl`].
    pub unsafe fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
        // SAFETY: as the caller guarantees.
        unsafe { variadic(c"fcntl64", fd, cmd, arg) }
    }

    /// libc's `ioctl`, with its optional argument as an integer (pointers fit).
    ///
    /// # Safety
    ///
    /// The same contract as the libc function: `arg` is what `request` expects.
    pub unsafe fn ioctl(fd: c_int, request: c_ulong, arg: c_ulong) -> c_int {
        use std::sync::atomic::AtomicPtr;
        static IOCTL: AtomicPtr<libc::c_void> = AtomicPtr::new(std::ptr::null_mut());
        let ptr = crate::real::resolve(&IOCTL, c"ioctl");
        // SAFETY: `ptr` is libc's `ioctl`, which is variadic after `request`.
        let f: unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int =
            unsafe { std::mem::transmute(ptr) };
        // SAFETY: as the caller guarantees.
        unsafe { f(fd, request, arg) }
    }

    /// Calls the real variadic `name` (`fcntl` or `fcntl64`).
    ///
    /// # Safety
    ///
    /// As [`fcntl`].
    unsafe fn variadic(
        name: &'static std::ffi::CStr,
        fd: c_int,
        cmd: c_int,
        arg: c_ulong,
    ) -> c_int {
        use std::sync::atomic::AtomicPtr;
        static FCNTL: AtomicPtr<libc::c_void> = AtomicPtr::new(std::ptr::null_mut());
        static FCNTL64: AtomicPtr<libc::c_void> = AtomicPtr::new(std::ptr::null_mut());
        let slot = if name == c"fcntl" { &FCNTL } else { &FCNTL64 };
        let ptr = crate::real::resolve(slot, name);
        // SAFETY: `ptr` is libc's definition of `name`, which is variadic after `cmd`.
        let f: unsafe extern "C" fn(c_int, c_int, ...) -> c_int =
            unsafe { std::mem::transmute(ptr) };
        // SAFETY: as the caller guarantees.
        unsafe { f(fd, cmd, arg) }
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[
    close as *const (),
    dup as *const (),
    dup2 as *const (),
    dup3 as *const (),
    fcntl as *const (),
    fcntl64 as *const (),
    ioctl as *const (),
    pipe as *const (),
    pipe2 as *const (),
];

/// Reports `fd`, about to be closed or replaced, to the runtime: this thread's hub
/// drops its registration and wakes its waiters (`EBADF`); other hubs drop theirs at
/// their next use. (In a forked child the hub was rebuilt with an epoll instance of its
/// own, so this is as safe there.)
fn wake_waiters(fd: c_int) {
    coop::notify_closed(fd);
}

/// Hook for `close(2)`: wakes this thread's greenlets waiting on `fd` (their calls
/// fail with `EBADF`), closes it, and forgets its kind.
///
/// # Safety
///
/// None beyond the C function's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if !is_patched(Area::Socket) {
        // SAFETY: plain integer argument.
        return unsafe { real::close(fd) };
    }
    wake_waiters(fd);
    // SAFETY: plain integer argument.
    let rc = unsafe { real::close(fd) };
    // After the close: a concurrent re-classification of the old file cannot land
    // after this (a wipe of a new file's entry only costs a re-classification).
    fd::forget(fd);
    rc
}

/// Hook for `dup(2)`: the new fd has the old one's kind.
///
/// # Safety
///
/// None beyond the C function's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(old: c_int) -> c_int {
    // SAFETY: plain integer argument.
    let new = unsafe { real::dup(old) };
    if new >= 0 && is_patched(Area::Socket) {
        fd::copy(old, new);
    }
    new
}

/// Hook for `dup2(2)`: an open `new` is closed first (its waiters get `EBADF`).
///
/// # Safety
///
/// None beyond the C function's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: plain integer arguments.
    unsafe { replace(old, new, || real::dup2(old, new)) }
}

/// Hook for `dup3(2)`: an open `new` is closed first (its waiters get `EBADF`).
///
/// # Safety
///
/// None beyond the C function's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: plain integer arguments.
    unsafe { replace(old, new, || real::dup3(old, new, flags)) }
}

/// `dup2`/`dup3`: `call` makes `new` a copy of `old`.
///
/// # Safety
///
/// `call` is safe to make.
unsafe fn replace(old: c_int, new: c_int, call: impl FnOnce() -> c_int) -> c_int {
    if !is_patched(Area::Socket) {
        return call();
    }
    if old != new {
        let saved = crate::errno::errno();
        // SAFETY: F_GETFD takes no argument.
        let old_open = unsafe { real::fcntl(old, libc::F_GETFD, 0) } >= 0;
        crate::errno::set_errno(saved);
        if old_open {
            wake_waiters(new);
        }
    }
    let rc = call();
    if rc >= 0 && old != new {
        fd::copy(old, new);
    }
    rc
}

/// Hook for `fcntl(2)`: `F_GETFL` shows only the user's `O_NONBLOCK`; `F_SETFL`
/// records it; `F_DUPFD*` copies the kind and state.
///
/// # Safety
///
/// As `fcntl(2)`: `arg` is what `cmd` expects (ignored if it expects none).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    let rc = unsafe { real::fcntl(fd, cmd, arg) };
    if is_patched(Area::Socket) {
        after_fcntl(fd, cmd, arg, rc)
    } else {
        rc
    }
}

/// Hook for `fcntl64`, as [`fcntl`].
///
/// # Safety
///
/// As `fcntl(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    let rc = unsafe { real::fcntl64(fd, cmd, arg) };
    if is_patched(Area::Socket) {
        after_fcntl(fd, cmd, arg, rc)
    } else {
        rc
    }
}

/// The table side of an `fcntl(fd, cmd, arg)` that returned `rc`.
fn after_fcntl(fd: c_int, cmd: c_int, arg: c_ulong, rc: c_int) -> c_int {
    match cmd {
        libc::F_SETFL if rc == 0 => {
            fd::set_nonblocking(fd, arg as c_int & libc::O_NONBLOCK != 0);
            rc
        }
        libc::F_GETFL if rc >= 0 && rc & libc::O_NONBLOCK != 0 && fd::is_connecting(fd) => {
            rc & !libc::O_NONBLOCK
        }
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC if rc >= 0 => {
            fd::copy(fd, rc);
            rc
        }
        _ => rc,
    }
}

/// Hook for `ioctl(2)`: `FIONBIO` (std's `set_nonblocking`) records the user's
/// `O_NONBLOCK`.
///
/// # Safety
///
/// As `ioctl(2)`: `arg` is what `request` expects (ignored if it expects none).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: c_ulong) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    let rc = unsafe { real::ioctl(fd, request, arg) };
    if rc == 0 && request == libc::FIONBIO && is_patched(Area::Socket) {
        // SAFETY: the kernel has just read an int through `arg`.
        let on = unsafe { (arg as *const c_int).read_unaligned() } != 0;
        fd::set_nonblocking(fd, on);
    }
    rc
}

/// Hook for `pipe(2)`: records both ends as pipes.
///
/// # Safety
///
/// As `pipe(2)`: `fds` is writable for two fds.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pipe(fds: *mut c_int) -> c_int {
    // SAFETY: the caller's argument, passed on unchanged.
    let rc = unsafe { real::pipe(fds) };
    // SAFETY: on success the kernel filled in both fds.
    unsafe { record_pipe(rc, fds, 0) };
    rc
}

/// Hook for `pipe2(2)`: records both ends as pipes.
///
/// # Safety
///
/// As `pipe2(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    let rc = unsafe { real::pipe2(fds, flags) };
    // SAFETY: on success the kernel filled in both fds.
    unsafe { record_pipe(rc, fds, flags) };
    rc
}

/// # Safety
///
/// If `rc == 0`, `fds` holds two fds, made with `flags`.
unsafe fn record_pipe(rc: c_int, fds: *const c_int, flags: c_int) {
    if rc == 0 && is_patched(Area::Socket) {
        // SAFETY: as the caller guarantees.
        let pair = unsafe { [*fds, *fds.add(1)] };
        let state = Opened {
            tcp: false,
            nonblocking: flags & libc::O_NONBLOCK != 0,
            timeouts_of: None,
        };
        pair.into_iter()
            .for_each(|fd| fd::opened(fd, Kind::Fifo, state));
    }
}
