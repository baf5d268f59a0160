//! The greenlets parked on futex words, by word address, for wakes from any thread.
//!
//! A wait checks the word and joins its bucket under the bucket's lock; a wake takes
//! waiters out under the same lock. A waker changes the word *before* it wakes, so a
//! waiter either sees the new value (and does not wait) or is in the bucket by the
//! time the waker looks: no wake-up is lost, which is the kernel's own contract.
//!
//! The table counts parked greenlets (one process-wide table, [`global`]), so that a
//! wake with nobody parked (every wake of a program that parks no greenlet) costs one
//! load before going to the kernel. A waiter counts itself *before* reading the word
//! and a waker reads the count *after* changing the word, with a full fence between on
//! both sides, so the waker cannot miss a waiter that saw the old value.
//!
//! loom checks this protocol and the bucket lock (`loom_tests`, next to this file).

use greenweave_runtime::coop::ThreadWaker;

use super::raw_lock::RawLock;
use crate::thread_sync::{AtomicU64, AtomicUsize, Ordering, UnsafeCell, fence};

/// Buckets of the table; words hash to one. (Fewer under loom, which tracks every
/// lock it makes.)
const BUCKETS: usize = if cfg!(loom) { 2 } else { 64 };

/// The process-wide table the hooks use.
#[cfg(not(loom))]
static TABLE: Table<ThreadWaker> = Table::new();

/// The process-wide table the hooks use.
#[cfg(not(loom))]
pub(crate) fn global() -> &'static Table<ThreadWaker> {
    &TABLE
}

/// The hooks do not run under loom (its tests make tables of their own).
#[cfg(loom)]
pub(crate) fn global() -> &'static Table<ThreadWaker> {
    unreachable!("the futex hooks do not run under loom")
}

/// Wakes a parked greenlet from any thread (a [`ThreadWaker`]; an event in the loom
/// tests).
pub(crate) trait Waker: Send {
    /// Ends the wait it was registered for, if it is still in progress.
    fn wake(&self);
}

impl Waker for ThreadWaker {
    fn wake(&self) {
        ThreadWaker::wake(self);
    }
}

/// What kind of futex word a greenlet parks on, which decides how many a wake takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Word {
    /// A word of its own (a lock's, a condvar's, ...): a wake takes up to its count.
    Ordinary,
    /// Its thread's parking word (std's parker), shared by all greenlets of the
    /// thread: a wake wakes every greenlet parked on it, and each re-checks.
    ThreadParker,
}

/// Greenlets parked on futex words, by word address.
pub(crate) struct Table<W> {
    /// Greenlets parked (or about to), in every bucket.
    waiters: AtomicUsize,
    /// A wait's identity in its bucket.
    next_id: AtomicU64,
    buckets: [Bucket<W>; BUCKETS],
}

/// One parked greenlet.
struct Waiter<W> {
    addr: usize,
    bitset: u32,
    id: u64,
    word: Word,
    waker: W,
}

struct Bucket<W> {
    lock: RawLock,
    waiters: UnsafeCell<Vec<Waiter<W>>>,
}

// SAFETY: `waiters` is only touched through a `Locked`, which holds `lock`; the wakers
// in it are `Send`, and are woken (used) by whichever thread takes them out.
unsafe impl<W: Send> Sync for Bucket<W> {}

impl<W> Bucket<W> {
    fn lock(&self) -> Locked<'_, W> {
        self.lock.lock();
        Locked { bucket: self }
    }
}

/// A bucket, locked.
pub(crate) struct Locked<'a, W> {
    bucket: &'a Bucket<W>,
}

impl<W> Locked<'_, W> {
    fn with_waiters<R>(&mut self, f: impl FnOnce(&mut Vec<Waiter<W>>) -> R) -> R {
        self.bucket.waiters.with_mut(|waiters| {
            // SAFETY: we hold the bucket's lock, and `&mut self` makes this the only
            // reference made through it.
            f(unsafe { &mut *waiters })
        })
    }
}

impl<W> Drop for Locked<'_, W> {
    fn drop(&mut self) {
        self.bucket.lock.unlock();
    }
}

#[cfg(not(loom))]
impl<W> Table<W> {
    pub(crate) const fn new() -> Table<W> {
        Table {
            waiters: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            buckets: [const {
                Bucket {
                    lock: RawLock::new(),
                    waiters: UnsafeCell::new(Vec::new()),
                }
            }; BUCKETS],
        }
    }
}

#[cfg(not(loom))]
impl<W> Table<W> {
    /// In a forked child: every waiter was a greenlet of the parent (the forking one is
    /// not parked), and a bucket may have been locked, mid-change, by a thread that
    /// does not exist here. Each bucket gets a new, empty list and a free lock; the old
    /// lists are kept for the life of the process (reachable, for leak checkers), never
    /// used or dropped (their wakers belong to hubs the child does not run).
    pub(crate) fn forget_all_after_fork(&self)
    where
        W: 'static,
    {
        for bucket in &self.buckets {
            let old = bucket.waiters.with_mut(|waiters| {
                // The old list is moved out bit for bit and never used again (a
                // vanished thread may have left it mid-change).
                // SAFETY: the child has a single thread, running this fork handler,
                // so nothing else touches the table.
                unsafe { std::ptr::replace(waiters, Vec::new()) }
            });
            greenweave_runtime::coop::keep_for_ever(old);
            bucket.lock.free_after_fork();
        }
        self.waiters.store(0, Ordering::SeqCst);
    }
}

#[cfg(loom)]
impl<W> Table<W> {
    pub(crate) fn new() -> Table<W> {
        Table {
            waiters: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            buckets: std::array::from_fn(|_| Bucket {
                lock: RawLock::new(),
                waiters: UnsafeCell::new(Vec::new()),
            }),
        }
    }
}

impl<W: Waker> Table<W> {
    fn bucket_of(&self, addr: usize) -> &Bucket<W> {
        // Words are 4-byte aligned; mix the rest (Fibonacci hashing) so neighbouring
        // words land in different buckets.
        let hash = ((addr >> 2) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.buckets[(hash >> 58) as usize % BUCKETS]
    }

    /// Starts a wait on `addr`: counts it, locks its bucket, and then asks `still`
    /// whether the word still holds the value the caller waits on. If it does, the
    /// wait goes on ([`Joining::join`] next); if not (`None`), the wait is uncounted and
    /// the caller returns without parking (`EAGAIN`).
    pub(crate) fn start_wait(
        &self,
        addr: usize,
        still: impl FnOnce() -> bool,
    ) -> Option<Joining<'_, W>> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `anyone_parked`: a waker that changed the word after
        // this wait read its old value sees the count.
        fence(Ordering::SeqCst);
        let joining = Joining {
            table: self,
            locked: self.bucket_of(addr).lock(),
            addr,
            joined: false,
        };
        still().then_some(joining)
    }

    /// Ends wait `id` on `addr` after its park returned; `true` if it was still queued
    /// (nobody woke it: a timeout or a spurious wake-up), `false` if a wake took it.
    pub(crate) fn leave(&self, addr: usize, id: u64) -> bool {
        let mut locked = self.bucket_of(addr).lock();
        let queued = locked.with_waiters(|waiters| match waiters.iter().position(|w| w.id == id) {
            Some(pos) => {
                waiters.remove(pos);
                true
            }
            None => false,
        });
        drop(locked);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        queued
    }

    /// Whether a wake needs to look at the table at all (call after the word changed).
    #[inline]
    pub(crate) fn anyone_parked(&self) -> bool {
        fence(Ordering::SeqCst);
        self.waiters.load(Ordering::Relaxed) != 0
    }

    /// Wakes up to `max` greenlets parked on `addr` whose bitset meets `bitset`, oldest
    /// first (all of them if it is a [`Word::ThreadParker`]); returns how many, and
    /// whether the word is a thread's parking word.
    pub(crate) fn wake(&self, addr: usize, max: usize, bitset: u32) -> (usize, bool) {
        let mut woken = Vec::new();
        let mut shared = false;
        self.bucket_of(addr).lock().with_waiters(|waiters| {
            let mut i = 0;
            while i < waiters.len() {
                let w = &waiters[i];
                if w.addr == addr && w.bitset & bitset != 0 {
                    shared |= w.word == Word::ThreadParker;
                    if woken.len() < max || shared {
                        woken.push(waiters.remove(i).waker);
                        continue;
                    }
                }
                i += 1;
            }
        });
        // Outside the lock: a wake-up may take other locks (the hub's injector).
        let count = woken.len();
        for waker in woken {
            waker.wake();
        }
        (count, shared)
    }

    /// Moves up to `max` waiters from `from` to `to` (a requeue's second half); returns
    /// how many moved.
    pub(crate) fn requeue(&self, from: usize, to: usize, max: usize) -> usize {
        let mut moving = Vec::new();
        self.bucket_of(from).lock().with_waiters(|waiters| {
            let mut i = 0;
            while i < waiters.len() && moving.len() < max {
                if waiters[i].addr == from {
                    moving.push(waiters.remove(i));
                } else {
                    i += 1;
                }
            }
        });
        let moved = moving.len();
        self.bucket_of(to).lock().with_waiters(|waiters| {
            for mut w in moving {
                w.addr = to;
                waiters.push(w);
            }
        });
        moved
    }
}

/// A wait about to park: counted and its bucket locked, the word checked. Dropped
/// without [`join`](Self::join)ing, it uncounts itself.
pub(crate) struct Joining<'a, W> {
    table: &'a Table<W>,
    locked: Locked<'a, W>,
    addr: usize,
    joined: bool,
}

impl<W> Joining<'_, W> {
    /// Puts the waiter in its bucket and unlocks it (what a park registers); returns
    /// the wait's id for [`Table::leave`], which also uncounts it.
    pub(crate) fn join(mut self, bitset: u32, word: Word, waker: W) -> u64 {
        let id = self.table.next_id.fetch_add(1, Ordering::Relaxed);
        let addr = self.addr;
        self.locked.with_waiters(|waiters| {
            waiters.push(Waiter {
                addr,
                bitset,
                id,
                word,
                waker,
            })
        });
        self.joined = true;
        id
    }
}

impl<W> Drop for Joining<'_, W> {
    fn drop(&mut self) {
        if !self.joined {
            self.table.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
