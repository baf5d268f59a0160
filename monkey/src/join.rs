//! `pthread_join` (what `std::thread::JoinHandle::join` calls) from a greenlet.
//!
//! glibc's `pthread_join` waits on the thread's id word with its own internal futex
//! call, which no hook sees, and a thread's exit gives no fd to wait on before Linux
//! 6.9 (and glibc 2.36 has no way to learn a `pthread_t`'s thread id). So a
//! cooperative join hands the real join to a helper thread and parks the greenlet on a
//! futex word the helper sets when the join is done: the other greenlets run
//! meanwhile. The join itself cannot be abandoned halfway (the helper writes the
//! result into the caller's `retval`), so a kill or `Timeout` reaching the greenlet
//! is delivered after the join ends, at its next interruptible blocking call.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use libc::{c_int, c_void, pthread_t};

use crate::Area;
use crate::state::cooperative;

/// The real function.
pub mod real {
    use libc::{c_int, c_void, pthread_t};

    crate::real::real_fns! {
        /// libc's `pthread_join`.
        fn pthread_join(thread: pthread_t, retval: *mut *mut c_void) -> c_int;
    }
}

/// Every hook of this module, for the linker (see `link_hooks`).
pub(crate) const HOOKS: &[*const ()] = &[pthread_join as *const ()];

/// A join running on a helper thread.
struct Join {
    /// 0 while the join runs, 1 once it returned.
    done: AtomicU32,
    result: AtomicI32,
}

/// Hook for `pthread_join(3)`: from a greenlet, joins on a helper thread while the
/// greenlet parks. Joining the calling thread itself, and calls from anywhere else, go
/// to libc at once (so `EDEADLK`, `EINVAL` and `ESRCH` are libc's own).
///
/// # Safety
///
/// As `pthread_join(3)`: `thread` is a joinable thread not joined elsewhere, `retval`
/// is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_join(thread: pthread_t, retval: *mut *mut c_void) -> c_int {
    // SAFETY: pthread_self has no preconditions.
    let own_thread = unsafe { libc::pthread_equal(thread, libc::pthread_self()) } != 0;
    if own_thread || !cooperative(Area::Threads) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::pthread_join(thread, retval) };
    }
    let join = Arc::new(Join {
        done: AtomicU32::new(0),
        result: AtomicI32::new(0),
    });
    let helper_join = join.clone();
    let retval_addr = retval as usize;
    let helper = std::thread::Builder::new()
        .name("greenweave-join".into())
        .spawn(move || {
            // SAFETY: the caller's arguments; `retval` stays valid because the caller
            // does not return before `done` is set below.
            let result = unsafe { real::pthread_join(thread, retval_addr as *mut *mut c_void) };
            helper_join.result.store(result, Ordering::Relaxed);
            helper_join.done.store(1, Ordering::Release);
            crate::futex::wake_word(&helper_join.done);
        });
    if helper.is_err() {
        // No thread to spare: join here, blocking.
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::pthread_join(thread, retval) };
    }
    while join.done.load(Ordering::Acquire) == 0 {
        crate::futex::wait_word(&join.done, 0);
    }
    join.result.load(Ordering::Relaxed)
}
