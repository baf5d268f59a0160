//! Per-OS-thread state: the running greenlet, the main greenlet, the stack pool.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

use crate::greenlet::{Greenlet, Inner};
use crate::stack::{self, StackPool};
use crate::sys;

pub(crate) struct ThreadState {
    /// The greenlet running on this thread right now; `None` until the main greenlet
    /// is made on first use.
    current: Cell<Option<Rc<Inner>>>,
    /// This thread's original stack as a greenlet.
    main: OnceCell<Greenlet>,
    pool: RefCell<StackPool>,
    default_stack_size: Cell<usize>,
    /// An alternate signal stack made by us for threads that had none.
    altstack: OnceCell<Option<sys::AltStack>>,
}

thread_local! {
    static THREAD: ThreadState = const {
        ThreadState {
            current: Cell::new(None),
            main: OnceCell::new(),
            pool: RefCell::new(StackPool::new()),
            default_stack_size: Cell::new(stack::DEFAULT_STACK_SIZE),
            altstack: OnceCell::new(),
        }
    };
}

impl ThreadState {
    fn current(&self) -> Rc<Inner> {
        match self.current.take() {
            Some(cur) => {
                self.current.set(Some(cur.clone()));
                cur
            }
            None => {
                let main = self.main.get_or_init(Greenlet::new_main);
                let inner = main.inner().clone();
                self.current.set(Some(inner.clone()));
                inner
            }
        }
    }
}

/// The running greenlet (the main greenlet is made on first use).
///
/// # Panics
///
/// During the thread's own teardown, after its greenlet state is gone.
#[track_caller]
pub(crate) fn current_inner() -> Rc<Inner> {
    THREAD
        .try_with(ThreadState::current)
        .expect("greenlet state of this thread was already destroyed (thread is exiting)")
}

/// Records `g` as the running greenlet.
#[inline]
pub(crate) fn set_current(g: Rc<Inner>) {
    THREAD.with(|t| t.current.set(Some(g)));
}

/// Whether this thread's greenlet state is still usable (false during thread exit).
pub(crate) fn alive() -> bool {
    THREAD.try_with(|_| ()).is_ok()
}

/// Runs `f` on the thread's stack pool; if the pool is gone (thread exit) or busy,
/// nothing happens and `f` is dropped.
pub(crate) fn with_pool(f: impl FnOnce(&mut StackPool)) {
    let _ = THREAD.try_with(|t| {
        if let Ok(mut pool) = t.pool.try_borrow_mut() {
            f(&mut pool);
        }
    });
}

/// Takes a stack for a new greenlet, preparing the thread for overflow reports on the
/// first one.
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
    match THREAD.try_with(|t| {
        // SAFETY: only this thread touches `current`; we read it without moving it
        // out, and the Rc inside stays alive for the duration of `f` because nothing
        // on this thread runs meanwhile (we are in a signal handler or a plain read).
        let cur = unsafe { &*t.current.as_ptr() };
        cur.as_deref().map(|inner| inner as *const Inner)
    }) {
        // SAFETY: see above; the pointer comes from a live Rc.
        Ok(Some(ptr)) => f(Some(unsafe { &*ptr })),
        _ => f(None),
    }
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
