//! The greenlets parked on futex words, by word address, for wakes from any thread.
//!
//! A wait checks the word and joins its bucket under the bucket's lock; a wake takes
//! waiters out under the same lock. A waker changes the word *before* it wakes, so a
//! waiter either sees the new value (and does not wait) or is in the bucket by the
//! time the waker looks: no wake-up is lost, which is the kernel's own contract.
//!
//! [`WAITERS`] counts parked greenlets process-wide, so that a wake with nobody parked
//! (every wake of a program that parks no greenlet) costs one load before going to
//! the kernel. A waiter counts itself *before* reading the word and a waker reads the
//! count *after* changing the word, with a full fence between on both sides, so the
//! waker cannot miss a waiter that saw the old value.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

use greenweave_runtime::coop::ThreadWaker;

/// Greenlets parked on futex words, process-wide.
static WAITERS: AtomicUsize = AtomicUsize::new(0);

/// A wait's identity in its bucket.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

const BUCKETS: usize = 64;

static TABLE: [Bucket; BUCKETS] = [const { Bucket::new() }; BUCKETS];

/// One parked greenlet.
struct Waiter {
    addr: usize,
    bitset: u32,
    id: u64,
    /// A per-thread word shared by all greenlets of the thread (std's parker): a
    /// wake wakes every greenlet parked on it, and each re-checks.
    shared_by_thread: bool,
    waker: ThreadWaker,
}

struct Bucket {
    lock: RawLock,
    waiters: UnsafeCell<Vec<Waiter>>,
}

// SAFETY: `waiters` is only touched through a `Locked`, which holds `lock`.
unsafe impl Sync for Bucket {}

impl Bucket {
    const fn new() -> Bucket {
        Bucket {
            lock: RawLock::new(),
            waiters: UnsafeCell::new(Vec::new()),
        }
    }

    fn lock(&self) -> Locked<'_> {
        self.lock.lock();
        Locked { bucket: self }
    }
}

fn bucket_of(addr: usize) -> &'static Bucket {
    // Words are 4-byte aligned; mix the rest (Fibonacci hashing) so neighbouring
    // words land in different buckets.
    let hash = ((addr >> 2) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    &TABLE[(hash >> 58) as usize % BUCKETS]
}

/// A bucket, locked.
pub(crate) struct Locked<'a> {
    bucket: &'a Bucket,
}

impl Locked<'_> {
    fn waiters(&mut self) -> &mut Vec<Waiter> {
        // SAFETY: we hold the bucket's lock, and `&mut self` makes this the only
        // reference made through it.
        unsafe { &mut *self.bucket.waiters.get() }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.bucket.lock.unlock();
    }
}

/// A wait about to park: counted and its bucket locked, the word not yet checked.
/// Dropped without [`join`](Self::join)ing (the word had changed), it uncounts itself.
pub(crate) struct Joining {
    locked: Locked<'static>,
    addr: usize,
    joined: bool,
}

impl Joining {
    /// Counts a wait on `addr` and locks its bucket; check the word next.
    pub(crate) fn start(addr: usize) -> Joining {
        WAITERS.fetch_add(1, Ordering::SeqCst);
        Joining {
            locked: bucket_of(addr).lock(),
            addr,
            joined: false,
        }
    }

    /// Puts the waiter in its bucket and unlocks it (what a park registers); returns
    /// the wait's id for [`leave`], which also uncounts it.
    pub(crate) fn join(mut self, bitset: u32, shared_by_thread: bool, waker: ThreadWaker) -> u64 {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let addr = self.addr;
        self.locked.waiters().push(Waiter {
            addr,
            bitset,
            id,
            shared_by_thread,
            waker,
        });
        self.joined = true;
        id
    }
}

impl Drop for Joining {
    fn drop(&mut self) {
        if !self.joined {
            WAITERS.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Ends wait `id` on `addr` after its park returned; `true` if it was still queued
/// (nobody woke it: a timeout or a spurious wake-up), `false` if a wake took it.
pub(crate) fn leave(addr: usize, id: u64) -> bool {
    let mut locked = bucket_of(addr).lock();
    let waiters = locked.waiters();
    let queued = match waiters.iter().position(|w| w.id == id) {
        Some(pos) => {
            waiters.remove(pos);
            true
        }
        None => false,
    };
    drop(locked);
    WAITERS.fetch_sub(1, Ordering::SeqCst);
    queued
}

/// Whether a wake needs to look at the table at all (call after the word changed).
#[inline]
pub(crate) fn anyone_parked() -> bool {
    fence(Ordering::SeqCst);
    WAITERS.load(Ordering::Relaxed) != 0
}

/// Wakes up to `max` greenlets parked on `addr` whose bitset meets `bitset`, oldest
/// first (all of them if the word is shared by a thread's greenlets); returns how
/// many, and whether the word is such a shared one.
pub(crate) fn wake(addr: usize, max: usize, bitset: u32) -> (usize, bool) {
    let mut woken = Vec::new();
    let mut shared = false;
    {
        let mut locked = bucket_of(addr).lock();
        let waiters = locked.waiters();
        let mut i = 0;
        while i < waiters.len() {
            let w = &waiters[i];
            if w.addr == addr && w.bitset & bitset != 0 {
                shared |= w.shared_by_thread;
                if woken.len() < max || shared {
                    woken.push(waiters.remove(i).waker);
                    continue;
                }
            }
            i += 1;
        }
    }
    // Outside the lock: a wake-up may take other locks (the hub's injector).
    let count = woken.len();
    for waker in woken {
        waker.wake();
    }
    (count, shared)
}

/// Moves up to `max` waiters from `from` to `to` (a requeue's second half); returns
/// how many moved.
pub(crate) fn requeue(from: usize, to: usize, max: usize) -> usize {
    let mut moving = Vec::new();
    {
        let mut locked = bucket_of(from).lock();
        let waiters = locked.waiters();
        let mut i = 0;
        while i < waiters.len() && moving.len() < max {
            if waiters[i].addr == from {
                moving.push(waiters.remove(i));
            } else {
                i += 1;
            }
        }
    }
    let moved = moving.len();
    let mut locked = bucket_of(to).lock();
    for mut w in moving {
        w.addr = to;
        locked.waiters().push(w);
    }
    moved
}

/// In a forked child: every waiter was a greenlet of the parent (the forking one is not
/// parked), and a bucket may have been locked, mid-change, by a thread that does not
/// exist here. Each bucket gets a new, empty list and a free lock; the old lists are
/// leaked, never read or dropped (their wakers belong to hubs the child does not run).
pub(crate) fn forget_all_after_fork() {
    for bucket in &TABLE {
        // SAFETY: the child has a single thread, running this fork handler, so nothing
        // else touches the table; the old list is overwritten without being read or
        // dropped.
        unsafe { bucket.waiters.get().write(Vec::new()) };
        bucket.lock.state.store(0, Ordering::Release);
    }
    WAITERS.store(0, Ordering::SeqCst);
}

/// A lock for the buckets that waits in the kernel directly (through libc's real
/// `syscall`, never the hook), so the table never parks a greenlet on itself. Critical
/// sections are a few instructions long; it spins briefly before sleeping.
struct RawLock {
    /// 0 free, 1 held, 2 held with sleepers.
    state: AtomicU32,
}

impl RawLock {
    const fn new() -> RawLock {
        RawLock {
            state: AtomicU32::new(0),
        }
    }

    fn lock(&self) {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        for _ in 0..100 {
            std::hint::spin_loop();
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
            super::kernel::wait(&self.state, 2);
        }
    }

    fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            super::kernel::wake(&self.state, 1);
        }
    }
}
