//! The futex table's bucket lock: waits in the kernel directly (through libc's real
//! `syscall`, never the hook), so the table never parks a greenlet on itself.

use crate::thread_sync::{AtomicU32, Ordering, spin_loop};

/// Spins before sleeping. Critical sections are a few instructions long. (Under loom
/// every spin is a scheduling point; a few show the same interleavings.)
const SPINS: usize = if cfg!(loom) { 2 } else { 100 };

/// A three-state futex lock.
pub(super) struct RawLock {
    /// 0 free, 1 held, 2 held with sleepers.
    state: AtomicU32,
}

impl RawLock {
    #[cfg(not(loom))]
    pub(super) const fn new() -> RawLock {
        RawLock {
            state: AtomicU32::new(0),
        }
    }

    #[cfg(loom)]
    pub(super) fn new() -> RawLock {
        RawLock {
            state: AtomicU32::new(0),
        }
    }

    pub(super) fn lock(&self) {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        for _ in 0..SPINS {
            spin_loop();
            if self.state.load(Ordering::Relaxed) == 0
                && self
                    .state
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        while self.state.swap(2, Ordering::Acquire) != 0 {
            kernel::wait(&self.state, 2);
        }
    }

    /// In a forked child: frees the lock whoever held it (a thread that does not exist
    /// there; the caller makes sure the data it guards is consistent).
    #[cfg(not(loom))]
    pub(super) fn free_after_fork(&self) {
        self.state.store(0, Ordering::Release);
    }

    pub(super) fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            kernel::wake(&self.state, 1);
        }
    }
}

#[cfg(not(loom))]
use super::kernel;

/// The kernel's futex as the lock uses it, modelled for loom: a wait checks the word
/// and sleeps under the one lock a wake takes, as the kernel's hash bucket does.
#[cfg(loom)]
mod kernel {
    use loom::sync::{Condvar, Mutex};

    use crate::thread_sync::{AtomicU32, Ordering};

    loom::lazy_static! {
        static ref BUCKET: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32) {
        let (lock, sleepers) = &*BUCKET;
        let held = lock.lock().unwrap();
        if word.load(Ordering::SeqCst) == expected {
            drop(sleepers.wait(held).unwrap());
        }
    }

    pub(super) fn wake(_word: &AtomicU32, _count: i32) {
        let (lock, sleepers) = &*BUCKET;
        let _held = lock.lock().unwrap();
        // Every sleeper re-checks its word, as after an early return from the kernel.
        sleepers.notify_all();
    }
}
