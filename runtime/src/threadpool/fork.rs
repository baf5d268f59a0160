//! Thread pools across `fork` (see the crate docs' "Fork" section): every pool's lock
//! is taken before the fork, so no pool is half-changed by a thread that will not
//! exist in the child, and in the child every pool is told its threads are gone.
//!
//! Locks are taken by trying, yielding the thread between tries, never by waiting in
//! `lock()`: under `greenweave-monkey`'s futex hooks a contended `lock()` could park
//! the forking greenlet inside `fork` and run others there. Pool threads hold a pool's
//! lock only for a few instructions, never while they wait.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};

use super::pool::{Inner, State};

/// Every pool made (weakly: the registry does not keep a pool alive).
static POOLS: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

/// Adds a new pool to the registry (dropping entries of pools that are gone).
pub(super) fn register(pool: &Arc<Inner>) {
    crate::fork::install();
    let mut pools = lock(&POOLS);
    pools.retain(|p| p.strong_count() > 0);
    pools.push(Arc::downgrade(pool));
}

/// A pool's lock, held across the fork, with the pool it belongs to.
struct Held {
    // Declared (so dropped) before `_pool`, which keeps the lock's memory alive.
    state: MutexGuard<'static, State>,
    _pool: Arc<Inner>,
}

/// The locks the prepare handler took, released (dropped) by the parent or child
/// handler. All three run on the forking thread.
#[derive(Default)]
struct Locks {
    _config: Option<MutexGuard<'static, super::Config>>,
    _registry: Option<MutexGuard<'static, Vec<Weak<Inner>>>>,
    pools: Vec<Held>,
}

thread_local! {
    static HELD: RefCell<Locks> = RefCell::new(Locks::default());
}

/// The fork's prepare handler: takes the default pool's configuration lock (so no
/// default pool is half made), the registry's, and every pool's.
pub(crate) fn prepare() {
    let config = lock(&super::CONFIG);
    let registry = lock(&POOLS);
    let pools = registry
        .iter()
        .filter_map(Weak::upgrade)
        .map(|pool| {
            let inner: *const Inner = Arc::as_ptr(&pool);
            // SAFETY: the `Arc` stored next to the guard keeps the pool (and its lock)
            // alive, at the same address, until after the guard is dropped (`Held`'s
            // field order).
            let inner: &'static Inner = unsafe { &*inner };
            Held {
                state: lock(&inner.state),
                _pool: pool,
            }
        })
        .collect();
    let locks = Locks {
        _config: Some(config),
        _registry: Some(registry),
        pools,
    };
    // A thread whose thread-locals are gone (a fork from a thread-local's destructor)
    // cannot keep them: they are released at once.
    let _ = HELD.try_with(|held| *held.borrow_mut() = locks);
}

/// The parent handler: releases what `prepare` took.
pub(crate) fn release() {
    drop(take_held());
}

/// What `prepare` left for the parent or child handler (nothing if it could not).
fn take_held() -> Locks {
    HELD.try_with(|held| std::mem::take(&mut *held.borrow_mut()))
        .unwrap_or_default()
}

/// In the child: every pool lost its threads (but the forking one, if it is a pool
/// thread running a job); then the locks are released.
pub(crate) fn in_child() {
    let mut locks = take_held();
    let me = std::thread::current().id();
    for held in &mut locks.pools {
        held.state.after_fork(me);
    }
    drop(locks);
}

/// Locks `mutex` without ever waiting in `lock()` (see the module docs).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    loop {
        match mutex.try_lock() {
            Ok(guard) => return guard,
            Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
}
