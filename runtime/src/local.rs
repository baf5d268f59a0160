//! Per-greenlet storage (gevent's `gevent.local.local`, Python's `threading.local`).
//!
//! A [`Local`] is declared once, usually as a plain `static`, and every greenlet that
//! touches it sees a value of its own: created by the `init` function on the greenlet's
//! first access, dropped when that greenlet finishes.
//!
//! ```
//! use greenweave_runtime::{local::Local, spawn};
//!
//! static REQUEST_ID: Local<u32> = Local::new(|| 0);
//!
//! REQUEST_ID.set(1); // the main greenlet's own value
//! let other = spawn(|| {
//!     assert_eq!(REQUEST_ID.get(), 0); // a fresh value, not main's
//!     REQUEST_ID.set(2);
//!     REQUEST_ID.get()
//! });
//! assert_eq!(other.join().unwrap(), 2);
//! assert_eq!(REQUEST_ID.get(), 1);
//! ```
//!
//! The values live in the runtime's record of each greenlet, never in the `Local`
//! itself, so a `Local<T>` is `Send + Sync` whatever `T` is and can be a `static`:
//! greenlets of different OS threads simply never see each other's values.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hub;

/// Source of `Local` ids; 0 means "not assigned yet".
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One value per greenlet (gevent's `local`). See the [module docs](self).
///
/// - [`with`](Self::with) gives `&mut T` to a closure; [`get`](Self::get) clones,
///   [`set`](Self::set), [`replace`](Self::replace), [`take`](Self::take) and
///   [`remove`](Self::remove) work by value.
/// - The first access from a greenlet runs `init` (unless it is a `set`); the value is
///   dropped when the greenlet finishes, returns, panics or is killed, while it still
///   exists (so the destructor may use greenlet APIs, but should not block).
/// - The thread's main greenlet (and any greenlet greenweave did not spawn) has its own
///   value too; it is dropped when the OS thread exits, first thing in the hub's
///   teardown, while every greenlet of the thread still runs (on the process's main
///   thread, when the process exits normally).
/// - Accessing the same `Local` again from inside [`with`](Self::with) panics
///   (already borrowed); other `Local`s may be used freely, and `with` may block.
/// - Dropping a `Local` that is not a `static` does not drop the values greenlets
///   hold; those go when their greenlets finish.
///
/// # Panics
///
/// Every access panics when made from inside the hub (for example in a destructor the
/// hub runs), which belongs to no greenlet.
pub struct Local<T: 'static> {
    id: AtomicU64,
    init: fn() -> T,
    _values: PhantomData<fn() -> T>,
}

impl<T: 'static> Local<T> {
    /// A `Local` whose value is created by `init` on each greenlet's first access.
    /// `const`, so it can initialize a `static`.
    ///
    /// ```
    /// use greenweave_runtime::local::Local;
    /// static NAMES: Local<Vec<String>> = Local::new(Vec::new);
    /// NAMES.with(|names| names.push("main".into()));
    /// assert_eq!(NAMES.get(), ["main"]);
    /// ```
    pub const fn new(init: fn() -> T) -> Local<T> {
        Local {
            id: AtomicU64::new(0),
            init,
            _values: PhantomData,
        }
    }

    /// Runs `f` with the current greenlet's value, initializing it first if needed.
    ///
    /// ```
    /// use greenweave_runtime::local::Local;
    /// static HITS: Local<u64> = Local::new(|| 0);
    /// HITS.with(|n| *n += 1);
    /// assert_eq!(HITS.with(|n| { *n += 1; *n }), 2);
    /// ```
    ///
    /// # Panics
    ///
    /// If called again for this `Local` from inside `f` on the same greenlet.
    #[track_caller]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let cell = self.cell_or_init();
        self.with_cell(&cell, f)
    }

    /// A clone of the current greenlet's value.
    ///
    /// ```
    /// use greenweave_runtime::local::Local;
    /// static GREETING: Local<String> = Local::new(|| "hello".to_owned());
    /// assert_eq!(GREETING.get(), "hello");
    /// ```
    #[track_caller]
    pub fn get(&self) -> T
    where
        T: Clone,
    {
        self.with(|v| v.clone())
    }

    /// Sets the current greenlet's value (without running `init` if it had none).
    ///
    /// ```
    /// use greenweave_runtime::local::Local;
    /// static USER: Local<Option<String>> = Local::new(|| None);
    /// USER.set(Some("ada".into()));
    /// assert_eq!(USER.get().as_deref(), Some("ada"));
    /// ```
    #[track_caller]
    pub fn set(&self, value: T) {
        match self.existing_cell() {
            Some(cell) => drop(self.with_cell(&cell, |v| std::mem::replace(v, value))),
            None => drop(self.insert(value)),
        }
    }

    /// Replaces the current greenlet's value, returning the old one (the `init` value
    /// if it had none).
    ///
    /// ```
    /// use greenweave_runtime::local::Local;
    /// static DEPTH: Local<u32> = Local::new(|| 0);
    /// assert_eq!(DEPTH.replace(5), 0);
    /// assert_eq!(DEPTH.replace(6), 5);
    /// ```
    #[track_caller]
    pub fn replace(&self, value: T) -> T {
        self.with(|v| std::mem::replace(v, value))
    }

    /// Takes the current greenlet's value, leaving `T::default()`.
    ///
    /// ```
    /// use greenweave_runtime::local::Local;
    /// static LOG: Local<Vec<&str>> = Local::new(Vec::new);
    /// LOG.with(|log| log.push("started"));
    /// assert_eq!(LOG.take(), ["started"]);
    /// assert!(LOG.get().is_empty());
    /// ```
    #[track_caller]
    pub fn take(&self) -> T
    where
        T: Default,
    {
        self.with(std::mem::take)
    }

    /// Removes the current greenlet's value and returns it (`None` if it had none); the
    /// next access runs `init` again, like Python's `del local.attr`.
    ///
    /// ```
    /// use greenweave_runtime::local::Local;
    /// static TOKEN: Local<u32> = Local::new(|| 7);
    /// assert_eq!(TOKEN.remove(), None);
    /// TOKEN.set(9);
    /// assert_eq!(TOKEN.remove(), Some(9));
    /// assert_eq!(TOKEN.get(), 7);
    /// ```
    ///
    /// # Panics
    ///
    /// If called from inside [`with`](Self::with) on the same `Local` and greenlet.
    #[track_caller]
    pub fn remove(&self) -> Option<T> {
        let task = hub::current_task();
        let cell = self.existing_cell()?;
        if Rc::strong_count(&cell) > 2 {
            panic!(
                "greenweave: Local<{}>::remove called inside `with` on the same Local",
                std::any::type_name::<T>()
            );
        }
        let removed = task
            .rare_if_made()
            .and_then(|mut rare| rare.locals.remove(&self.id()));
        drop(removed); // outside the borrow: it is a clone of `cell`, which we still hold
        let cell = Rc::try_unwrap(cell).unwrap_or_else(|_| unreachable!("only clone left"));
        Some(cell.into_inner())
    }

    /// This `Local`'s process-wide unique id, assigned on first use.
    fn id(&self) -> u64 {
        let id = self.id.load(Ordering::Acquire);
        if id != 0 {
            return id;
        }
        let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => fresh,
            Err(theirs) => theirs, // another thread assigned one first
        }
    }

    /// The current greenlet's cell, if it has one.
    #[track_caller]
    fn existing_cell(&self) -> Option<Rc<RefCell<T>>> {
        let id = self.id();
        let task = hub::current_task();
        task.rare_if_made().and_then(|rare| {
            let boxed = rare.locals.get(&id)?;
            let cell = boxed
                .downcast_ref::<Rc<RefCell<T>>>()
                .expect("a Local's id maps to its own type");
            Some(cell.clone())
        })
    }

    /// The current greenlet's cell, made with `init` if it has none.
    #[track_caller]
    fn cell_or_init(&self) -> Rc<RefCell<T>> {
        self.existing_cell().unwrap_or_else(|| {
            // `init` runs with no borrow held: it may use other Locals.
            let value = (self.init)();
            self.insert(value)
        })
    }

    #[track_caller]
    fn with_cell<R>(&self, cell: &RefCell<T>, f: impl FnOnce(&mut T) -> R) -> R {
        let Ok(mut value) = cell.try_borrow_mut() else {
            panic!(
                "greenweave: Local<{}>: this greenlet's value is already borrowed \
                 (nested access to the same Local inside `with`)",
                std::any::type_name::<T>()
            );
        };
        f(&mut value)
    }

    /// Gives the current greenlet `value` as its cell, replacing any it had.
    #[track_caller]
    fn insert(&self, value: T) -> Rc<RefCell<T>> {
        let cell = Rc::new(RefCell::new(value));
        let old = hub::current_task()
            .rare()
            .locals
            .insert(self.id(), Box::new(cell.clone()));
        drop(old); // outside the borrow: a destructor may use other Locals
        cell
    }
}

impl<T: 'static> fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}
