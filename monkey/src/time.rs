//! Sleeping hooks: `nanosleep`, `clock_nanosleep`, `usleep`, `sleep`.
//!
//! In a greenlet (with [`Area::Time`](crate::Area::Time) patched) a sleep parks the
//! greenlet on a hub timer, so other greenlets run meanwhile; `std::thread::sleep`
//! (which calls `clock_nanosleep`) becomes gevent's `sleep`. Elsewhere the real
//! function runs.
//!
//! A kill or an expired `Timeout` ends the sleep early with `EINTR` and *nothing left to
//! sleep* (`rem` zeroed), so retry loops such as `std::thread::sleep`'s stop at once.
//! That delivers the interrupt (once, as every hook's errno does): `std::thread::sleep`
//! swallows `EINTR`, so a greenlet killed there goes on running after its sleep.
//!
//! A signal handler run on the thread while the greenlet sleeps (with or without
//! `SA_RESTART`: sleeps are never restarted) ends the sleep with `EINTR` and the time
//! not slept in `rem`, as the kernel does; `sleep` returns the seconds left, rounded
//! as glibc rounds them. `std::thread::sleep` sleeps the rest (see the `signal` module).

use std::time::{Duration, Instant};

use greenweave_runtime::coop::{self, Eintr};
use libc::{c_int, c_uint, clockid_t, timespec, useconds_t};

use crate::Area;
use crate::errno::set_errno;
use crate::state::cooperative;

/// The real functions.
pub mod real {
    use libc::{c_int, c_uint, clockid_t, timespec, useconds_t};

    crate::real::real_fns! {
        /// libc's `nanosleep`.
        fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int;
        /// libc's `clock_nanosleep`.
        fn clock_nanosleep(clock: clockid_t, flags: c_int, req: *const timespec, rem: *mut timespec) -> c_int;
        /// libc's `usleep`.
        fn usleep(usec: useconds_t) -> c_int;
        /// libc's `sleep`.
        fn sleep(secs: c_uint) -> c_uint;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[
    nanosleep as *const (),
    clock_nanosleep as *const (),
    usleep as *const (),
    sleep as *const (),
];

/// A `timespec` as a duration: `Err(EFAULT)` for null, `Err(EINVAL)` out of range.
///
/// # Safety
///
/// `ts` is null or points to a readable `timespec`.
unsafe fn duration_of(ts: *const timespec) -> Result<Duration, c_int> {
    // SAFETY: the caller guarantees `ts` is null or readable.
    let Some(ts) = (unsafe { ts.as_ref() }) else {
        return Err(libc::EFAULT);
    };
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(libc::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Parks for `requested`. Ended early (`EINTR`), returns what is left and writes it to
/// `rem` (if given): the time not slept after a signal handler, nothing after a kill
/// or an expired `Timeout`.
///
/// # Safety
///
/// `rem` is null or points to a writable `timespec`.
unsafe fn park_for(requested: Duration, rem: *mut timespec) -> Result<(), Duration> {
    let start = Instant::now();
    let left = match coop::sleep_until(start.checked_add(requested), Eintr::Always) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(_signal)) => requested.saturating_sub(start.elapsed()),
        Err(_interrupt) => Duration::ZERO,
    };
    // SAFETY: the caller guarantees `rem` is null or writable.
    if let Some(rem) = unsafe { rem.as_mut() } {
        rem.tv_sec = left.as_secs().try_into().unwrap_or(libc::time_t::MAX);
        rem.tv_nsec = left.subsec_nanos().into();
    }
    Err(left)
}

/// Hook for `nanosleep(2)`: parks the greenlet for the requested time.
///
/// # Safety
///
/// As `nanosleep(2)`: `req` points to a `timespec`, `rem` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    if !cooperative(Area::Time) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::nanosleep(req, rem) };
    }
    // SAFETY: the caller guarantees `req` is a timespec pointer (or null: EFAULT).
    let result = unsafe { duration_of(req) }
        // SAFETY: `rem` as the caller gave it.
        .and_then(|d| unsafe { park_for(d, rem) }.map_err(|_left| libc::EINTR));
    match result {
        Ok(()) => 0,
        Err(errno) => {
            set_errno(errno);
            -1
        }
    }
}

/// Hook for `clock_nanosleep(2)` (what `std::thread::sleep` calls). Relative and
/// absolute (`TIMER_ABSTIME`) sleeps on the realtime, monotonic and boottime clocks
/// park the greenlet; other clocks (CPU-time clocks) go to libc. Returns an error
/// number, as the real function does.
///
/// # Safety
///
/// As `clock_nanosleep(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn clock_nanosleep(
    clock: clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    let parkable_clock = matches!(
        clock,
        libc::CLOCK_REALTIME | libc::CLOCK_MONOTONIC | libc::CLOCK_BOOTTIME
    );
    if !parkable_clock || !cooperative(Area::Time) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::clock_nanosleep(clock, flags, req, rem) };
    }
    // SAFETY: the caller guarantees `req` is a timespec pointer (or null: EFAULT).
    let requested = match unsafe { duration_of(req) } {
        Ok(d) => d,
        Err(errno) => return errno,
    };
    let wait = if flags & libc::TIMER_ABSTIME != 0 {
        let mut now = timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid out-pointer; the clock id was checked above.
        if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
            return libc::EINVAL;
        }
        // SAFETY: `now` was just filled in by the kernel.
        let now = unsafe { duration_of(&now) }.unwrap_or_default();
        requested.saturating_sub(now)
    } else {
        requested
    };
    // An absolute sleep leaves `rem` alone, as the kernel does.
    let rem = if flags & libc::TIMER_ABSTIME != 0 {
        std::ptr::null_mut()
    } else {
        rem
    };
    // SAFETY: `rem` is the caller's (null or writable) or null.
    match unsafe { park_for(wait, rem) } {
        Ok(()) => 0,
        Err(_left) => libc::EINTR,
    }
}

/// Hook for `usleep(3)`.
///
/// # Safety
///
/// None beyond the C function's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usleep(usec: useconds_t) -> c_int {
    if !cooperative(Area::Time) {
        // SAFETY: plain integer argument.
        return unsafe { real::usleep(usec) };
    }
    // SAFETY: no `rem` to write.
    match unsafe { park_for(Duration::from_micros(u64::from(usec)), std::ptr::null_mut()) } {
        Ok(()) => 0,
        Err(_left) => {
            set_errno(libc::EINTR);
            -1
        }
    }
}

/// Hook for `sleep(3)`: returns 0, or the seconds left (rounded to the nearest, as
/// glibc does) when a signal handler ended it; 0 after a kill or `Timeout` (nothing
/// left to sleep).
///
/// # Safety
///
/// None beyond the C function's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sleep(secs: c_uint) -> c_uint {
    if !cooperative(Area::Time) {
        // SAFETY: plain integer argument.
        return unsafe { real::sleep(secs) };
    }
    // SAFETY: no `rem` to write.
    match unsafe { park_for(Duration::from_secs(u64::from(secs)), std::ptr::null_mut()) } {
        Ok(()) => 0,
        Err(left) => {
            let rounded = left.as_secs() + u64::from(left.subsec_nanos() >= 500_000_000);
            rounded.try_into().unwrap_or(c_uint::MAX)
        }
    }
}
