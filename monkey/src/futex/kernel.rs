//! The kernel's futex, reached through libc's real `syscall` (never the hook).

use std::sync::atomic::AtomicU32;

use libc::c_long;

/// Waits in the kernel while `word` holds `expected` (no timeout; may return early).
pub(crate) fn wait(word: &AtomicU32, expected: u32) {
    // SAFETY: a private FUTEX_WAIT on a live, aligned word with no timeout.
    unsafe {
        super::real::syscall(
            libc::SYS_futex,
            word.as_ptr() as c_long,
            c_long::from(libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG),
            c_long::from(expected),
            0,
            0,
            0,
        );
    }
}

/// Wakes up to `count` kernel waiters of `word`.
pub(crate) fn wake(word: &AtomicU32, count: i32) {
    // SAFETY: a private FUTEX_WAKE on a live, aligned word.
    unsafe {
        super::real::syscall(
            libc::SYS_futex,
            word.as_ptr() as c_long,
            c_long::from(libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG),
            c_long::from(count),
            0,
            0,
            0,
        );
    }
}
