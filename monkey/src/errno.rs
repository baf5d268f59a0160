//! Reading and writing the calling thread's `errno`.

/// The calling thread's `errno`.
#[inline]
pub(crate) fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns the calling thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
#[inline]
pub(crate) fn set_errno(value: libc::c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = value };
}

/// Runs `f`, restoring the caller's `errno` if it succeeds (`>= 0`): a blocking call
/// that succeeds leaves `errno` alone, whatever `EAGAIN`s happened on the way. The
/// slot is looked up once: a greenlet never changes threads, so it stays the calling
/// thread's across any park inside `f`.
#[inline]
pub(crate) fn preserving_errno<R: PartialOrd + Default>(f: impl FnOnce() -> R) -> R {
    let slot = libc_errno_slot();
    // SAFETY: the calling thread's errno slot, always valid on this thread.
    let saved = unsafe { *slot };
    let result = f();
    if result >= R::default() {
        // SAFETY: as above; `f` ran on this same thread.
        unsafe { *slot = saved };
    }
    result
}

/// The calling thread's `errno` slot.
#[inline]
fn libc_errno_slot() -> *mut libc::c_int {
    // SAFETY: __errno_location has no preconditions.
    unsafe { libc::__errno_location() }
}
