//! Per-OS-thread state: the running greenlet, the main greenlet, the stack pool.
//!
//! # Thread exit
//!
//! `THREAD` is destroyed with the thread's other thread-locals. From then on no
//! greenlet can be switched to (`LIFE` is `GONE`), a suspended greenlet whose last
//! handle drops is force-unwound in place, and a stack returned afterwards is simply
//! dropped (its slab is unmapped with its last stack). The pool's own drop unmaps the
//! slabs whose stacks are all back.
//!
//! Thread-local destructors run in the reverse order of the thread-locals' first use
//! (glibc's `__call_tls_dtors` and std's fallback list both pop the newest first). A
//! runtime that needs greenlets during its own teardown (greenweave's hub kills and
//! unwinds the greenlets still parked at thread exit) therefore makes sure this
//! state exists (e.g. with [`current`](crate::current)) *before* its own thread-local
//! is first used: its destructor then runs while this state is still alive.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

use crate::greenlet::{Greenlet, Inner};
use crate::stack::{self, StackPool};
use crate::sys;

pub(crate) struct ThreadState {
    /// This thread's original stack as a greenlet.
    main: OnceCell<Greenlet>,
    pool: RefCell<StackPool>,
    default_stack_size: Cell<usize>,
    /// An alternate signal stack made by us for threads that had none.
    altstack: OnceCell<Option<sys::AltStack>>,
}

/// `LIFE` values: before first use, in use, torn down (thread exit).
const UNUSED: u8 = 0;
const LIVE: u8 = 1;
const GONE: u8 = 2;

thread_local! {
    static THREAD: ThreadState = const {
        ThreadState {
            main: OnceCell::new(),
            pool: RefCell::new(StackPool::new()),
            default_stack_size: Cell::new(stack::DEFAULT_STACK_SIZE),
            altstack: OnceCell::new(),
        }
    };

    /// The greenlet running on this thread, as a borrowed pointer (null before first
    /// use and after teardown). It has no destructor, so the switch path reads and
    /// writes it without the lazy-initialisation checks of `THREAD`. The greenlet it
    /// points at is kept alive by the `Rc` in the frame that resumed it (see `switch`, invariant 6)
    /// or, for the main greenlet, by `ThreadState::main`.
    static CURRENT: Cell<*const Inner> = const { Cell::new(std::ptr::null()) };

    /// Where this thread's greenlet state is in its life.
    static LIFE: Cell<u8> = const { Cell::new(UNUSED) };
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // Runs before the fields (the main greenlet) are dropped: nobody may follow
        // CURRENT any more.
        CURRENT.set(std::ptr::null());
        LIFE.set(GONE);
    }
}

/// The running greenlet (the main greenlet is made on first use), borrowed.
///
/// # Panics
///
/// During the thread's own teardown, after its greenlet state is gone.
#[inline]
#[track_caller]
pub(crate) fn current_ptr() -> *const Inner {
    let cur = CURRENT.get();
    if cur.is_null() { first_use() } else { cur }
}

#[cold]
#[track_caller]
fn first_use() -> *const Inner {
    assert!(
        LIFE.get() != GONE,
        "greenlet state of this thread was already destroyed (thread is exiting)"
    );
    THREAD.with(|t| {
        let main = t.main.get_or_init(Greenlet::new_main);
        let ptr = Rc::as_ptr(main.inner());
        CURRENT.set(ptr);
        LIFE.set(LIVE);
        ptr
    })
}

/// The running greenlet as a new `Rc`.
///
/// # Panics
///
/// During the thread's own teardown, after its greenlet state is gone.
#[track_caller]
pub(crate) fn current_inner() -> Rc<Inner> {
    let ptr = current_ptr();
    // SAFETY: `ptr` came from `Rc::as_ptr` of a live `Rc<Inner>` (CURRENT's invariant:
    // the running greenlet is kept alive by its resumer's frame or by ThreadState),
    // so adding a strong count and taking ownership of it is sound.
    unsafe {
        Rc::increment_strong_count(ptr);
        Rc::from_raw(ptr)
    }
}

/// Records `g` as the running greenlet; the caller keeps it alive while it runs.
#[inline]
pub(crate) fn set_current(g: &Inner) {
    CURRENT.set(g);
}

/// Whether this thread's greenlet state is still usable (false during thread exit).
pub(crate) fn alive() -> bool {
    LIFE.get() != GONE && THREAD.try_with(|_| ()).is_ok()
}

/// Runs `f` on the thread's stack pool; if the pool is gone (thread exit) or busy,
/// nothing happens and `f` is dropped.
#[inline]
pub(crate) fn with_pool(f: impl FnOnce(&mut StackPool)) {
    let _ = THREAD.try_with(|t| {
        if let Ok(mut pool) = t.pool.try_borrow_mut() {
            f(&mut pool);
        }
    });
}

/// Takes a stack for a new greenlet, preparing the thread for overflow reports on the
/// first one.
#[inline]
pub(crate) fn take_stack(size: Option<usize>) -> std::io::Result<stack::PooledStack> {
    THREAD.with(|t| {
        t.altstack.get_or_init(|| {
            crate::overflow::install_handler();
            sys::ensure_altstack()
        });
        let size = size.unwrap_or_else(|| t.default_stack_size.get());
        t.pool.borrow_mut().get(size)
    })
}

/// The running greenlet; for code that must not panic (the overflow handler).
pub(crate) fn peek_current<R>(f: impl FnOnce(Option<&Inner>) -> R) -> R {
    let ptr = CURRENT.try_with(Cell::get).unwrap_or(std::ptr::null());
    // SAFETY: a non-null CURRENT points at the live running greenlet (see CURRENT);
    // nothing on this thread runs while `f` reads it (a signal handler or plain read).
    f(unsafe { ptr.as_ref() })
}

/// Sets the stack size of greenlets created from now on on this thread without an
/// explicit [`Builder::stack_size`](crate::Builder::stack_size). Rounded up to pages.
///
/// # Panics
///
/// If `size` is outside [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE)..=[`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE).
#[track_caller]
pub fn set_default_stack_size(size: usize) {
    let size = stack::validate_stack_size(size);
    THREAD.with(|t| t.default_stack_size.set(size));
}

/// The stack size used on this thread when none is given.
pub fn default_stack_size() -> usize {
    THREAD.with(|t| t.default_stack_size.get())
}

/// How many finished greenlets' stacks this thread keeps ready for reuse.
pub fn pooled_stacks() -> usize {
    THREAD.with(|t| t.pool.borrow().free_stacks())
}

/// Queues for release the memory of this thread's pooled stacks that no greenlet took
/// since the previous call, beyond the warm set of [`HOT_STACKS`](crate::HOT_STACKS)
/// per stack size; returns how many stacks wait for [`release_idle_stacks`]. Makes no
/// system call: a queued stack is still handed out (after the warm ones) until it is
/// released.
///
/// Call it periodically (greenweave's hub does, at most every 200 ms), then release
/// the queue a bounded number at a time while the thread is idle: a stack has to go
/// unused for a whole period to be queued, so a load that goes up and down keeps its
/// stacks. Costs nothing on spawn or switch. Does nothing during thread exit.
///
/// ```
/// use greenweave_greenlet::{
///     Greenlet, HOT_STACKS, pooled_stacks, release_idle_stacks, surplus_stacks,
///     trim_stack_pool,
/// };
///
/// // A burst: 300 greenlets alive at once, all finished.
/// let burst: Vec<Greenlet> = (0..300).map(|_| Greenlet::new(|_| ())).collect();
/// for g in &burst {
///     g.switch(());
/// }
/// drop(burst);
/// assert_eq!(surplus_stacks(), 300 - HOT_STACKS);
/// assert_eq!(trim_stack_pool(), 0); // in use since the last call: nothing is idle yet
/// assert_eq!(trim_stack_pool(), 300 - HOT_STACKS); // unused for a whole period
/// assert_eq!(release_idle_stacks(usize::MAX), 0); // memory given back, none waits
/// assert_eq!(surplus_stacks(), 0);
/// assert!(pooled_stacks() >= HOT_STACKS);
/// ```
pub fn trim_stack_pool() -> usize {
    THREAD
        .try_with(|t| {
            t.pool
                .try_borrow_mut()
                .map_or(0, |mut pool| pool.mark_idle())
        })
        .unwrap_or(0)
}

/// Gives back to the kernel the memory of up to `max` stacks queued by
/// [`trim_stack_pool`]: a slab whose stacks are then all free is unmapped, the other
/// stacks release every page (they stay pooled and mapped, and are handed out when
/// no warm or queued stack is left). Returns how many stacks still wait. The work is
/// proportional to `max` (a few hundred stacks take about a millisecond): release in
/// small batches between other work. Does nothing during thread exit.
pub fn release_idle_stacks(max: usize) -> usize {
    THREAD
        .try_with(|t| {
            t.pool
                .try_borrow_mut()
                .map_or(0, |mut pool| pool.release(max))
        })
        .unwrap_or(0)
}

/// Pooled stacks beyond the warm set that are not queued for release yet (over all
/// stack sizes): what [`trim_stack_pool`] may queue once they have gone unused for a
/// whole period. Zero during thread exit.
pub fn surplus_stacks() -> usize {
    THREAD
        .try_with(|t| t.pool.try_borrow().map_or(0, |pool| pool.surplus()))
        .unwrap_or(0)
}
