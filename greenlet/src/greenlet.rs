//! The `Greenlet` handle, its shared state, and the `Builder`.

use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{GreenletExit, ParentError};
use crate::stack::{self, PooledStack};
use crate::switch::{self, Coro, Payload};
use crate::thread;
use crate::value::Value;

/// Where a greenlet is in its life. See the module docs of `switch` for how the
/// states map onto corosensei's resume chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Created, never switched to.
    Unstarted,
    /// The greenlet whose code runs right now (exactly one per thread).
    Running,
    /// Blocked inside `Coroutine::resume` of the greenlet above it in the chain.
    Resuming,
    /// Parked inside `Yielder::suspend`, off the chain.
    Suspended,
    /// Its function returned or unwound.
    Dead,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) state: Cell<State>,
    /// The coroutine (`None` for main and once finished). Only `switch::resume` touches it
    /// while the greenlet is on the chain (see the `switch` module's invariant 2).
    pub(crate) coroutine: UnsafeCell<Option<Coro>>,
    /// The yielder of this greenlet's coroutine, set when it starts.
    pub(crate) yielder: Cell<*const switch::Yielder>,
    /// `None` only for a thread's main greenlet.
    pub(crate) parent: RefCell<Option<Greenlet>>,
    /// The payload of the switch aimed at this greenlet, until it takes it.
    pub(crate) inbox: Cell<Option<Payload>>,
    /// Its place in the resume chain when it was last resumed: main is 0, a greenlet
    /// resumed by one at depth `d` is at `d + 1` (see the `switch` module). Only
    /// meaningful while it is on the chain.
    pub(crate) depth: Cell<u32>,
    /// Number of live `Greenlet` handles (internal `Rc`s on stacks are not counted).
    handles: Cell<usize>,
    /// Set once an abandoned greenlet was sent `GreenletExit`.
    killing: Cell<bool>,
    name: RefCell<Option<Rc<str>>>,
    /// `(guard start, guard end, usable size)` of the stack; zeroes for a main greenlet.
    pub(crate) stack_bounds: (usize, usize, usize),
    context: RefCell<Option<Rc<dyn Any>>>,
    /// A word for the runtime, read by `current_tag` (0 until set).
    pub(crate) tag: Cell<usize>,
    /// Its stack pointer when it last suspended itself (0 until it has): where a switch
    /// back to it starts, for [`Greenlet::prefetch_stack`]. Stale while it resumes
    /// another greenlet, which records nothing (that switch is the hot path).
    pub(crate) left_at: Cell<usize>,
}

impl Inner {
    pub(crate) fn is_main(&self) -> bool {
        self.stack_bounds.2 == 0
    }

    /// Reads the name without borrowing bookkeeping (for the overflow handler).
    ///
    /// # Safety
    ///
    /// No `RefCell` borrow of the name may be in progress on this thread.
    pub(crate) unsafe fn name_unchecked(&self) -> Option<&str> {
        // SAFETY: the caller guarantees no mutable borrow is live.
        unsafe { (*self.name.as_ptr()).as_deref() }
    }

    /// Copies as much of the name as fits into `out` and returns how many bytes it
    /// copied; 0 without a name or while a rename holds the name borrowed (for a
    /// signal handler that may have interrupted `set_name`).
    pub(crate) fn copy_name_if_idle(&self, out: &mut [u8]) -> usize {
        // SAFETY: the reference lives only in this call, which does not rename; a
        // rename in progress on this thread holds the mutable borrow, which makes
        // `try_borrow_unguarded` fail instead.
        let Ok(name) = (unsafe { self.name.try_borrow_unguarded() }) else {
            return 0;
        };
        let Some(name) = name.as_deref() else {
            return 0;
        };
        let mut n = name.len().min(out.len());
        // Cut at a character boundary, so the copy is valid UTF-8.
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        out[..n].copy_from_slice(&name.as_bytes()[..n]);
        n
    }
}

/// A handle to a greenlet: a coroutine with its own stack on this OS thread.
///
/// Handles are cheap to clone and are `!Send`: a greenlet lives and dies on the thread
/// that made it, so a handle cannot reach another thread:
///
/// ```compile_fail
/// let g = greenweave_greenlet::Greenlet::new(|_| ());
/// std::thread::spawn(move || g.switch(()));
/// ```
///
/// When the last handle of a started, unfinished greenlet is dropped, it is sent
/// [`GreenletExit`](crate::GreenletExit) so that its destructors run (as Python does
/// when a suspended greenlet is garbage-collected); an unstarted one is discarded
/// without running.
pub struct Greenlet(Rc<Inner>);

impl Greenlet {
    /// A new greenlet that will run `f`, with the current greenlet as parent and the
    /// thread's default stack size. It starts on the first [`switch`](Self::switch),
    /// whose value becomes `f`'s argument; `f`'s return value is switched to the parent.
    ///
    /// # Panics
    ///
    /// If no stack can be mapped (see [`Builder::try_build`] for the fallible form).
    #[track_caller]
    pub fn new<F, R>(f: F) -> Greenlet
    where
        F: FnOnce(Value) -> R + 'static,
        R: Any,
    {
        Builder::new().build(f)
    }

    /// A builder to set a name or stack size.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn new_main() -> Greenlet {
        Greenlet::from_inner(Rc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            state: Cell::new(State::Running),
            coroutine: UnsafeCell::new(None),
            yielder: Cell::new(std::ptr::null()),
            inbox: Cell::new(None),
            depth: Cell::new(0),
            parent: RefCell::new(None),
            handles: Cell::new(0),
            killing: Cell::new(false),
            name: RefCell::new(Some(Rc::from("main"))),
            stack_bounds: (0, 0, 0),
            context: RefCell::new(None),
            tag: Cell::new(0),
            left_at: Cell::new(0),
        }))
    }

    pub(crate) fn from_inner(inner: Rc<Inner>) -> Greenlet {
        inner.handles.set(inner.handles.get() + 1);
        Greenlet(inner)
    }

    pub(crate) fn inner(&self) -> &Rc<Inner> {
        &self.0
    }

    /// Transfers control to this greenlet, handing it `value`, and returns the value of
    /// the next switch back into the calling greenlet.
    ///
    /// - An unstarted greenlet starts with `value` as its function's argument.
    /// - A suspended one returns `value` from its own pending `switch`.
    /// - Switching to the running greenlet returns `value` at once.
    /// - Switching to a dead greenlet switches to its parent instead (the first live
    ///   ancestor), as Python's greenlet does.
    ///
    /// If the value that comes back is a panic (a child's function panicked and this
    /// greenlet is its parent, or someone [`throw`](Self::throw)s into us), it resumes
    /// unwinding here.
    // Always inlined: the switch itself then runs in the caller's frame (see the
    // `switch` module), which is what makes a round trip cost little more than
    // corosensei's own.
    #[inline(always)]
    pub fn switch<T: Any>(&self, value: T) -> Value {
        let payload = if std::any::TypeId::of::<T>() == std::any::TypeId::of::<()>() {
            None
        } else {
            Some(Payload::Value(Value::new(value)))
        };
        switch::switch_to(&self.0, payload)
    }

    /// `switch(())` for a caller that drops what comes back: the same switch, with
    /// only the switch itself inlined at the call site (a value that comes back is
    /// dropped out of line; a thrown payload still unwinds from here). For the
    /// runtime's blocking calls, which switch away only to be resumed later.
    #[doc(hidden)] // runtime plumbing (greenweave's hub), not a user API
    #[inline(always)]
    pub fn switch_unit_discarding(&self) {
        switch::switch_to_discarding(&self.0);
    }

    /// Like [`switch`](Self::switch) with an already wrapped [`Value`].
    pub fn switch_value(&self, value: Value) -> Value {
        switch::switch_to(&self.0, Some(Payload::Value(value)))
    }

    /// Raises `payload` inside this greenlet at its suspension point, as an unwind that
    /// runs its destructors; returns what is next switched back to the caller.
    ///
    /// [`GreenletExit`] is the conventional payload: a greenlet that unwinds with it
    /// finishes quietly and its parent receives the `GreenletExit` as a normal value.
    /// Any other payload that the greenlet does not catch reaches its parent as a
    /// panic. An unstarted greenlet dies at once without running its function.
    pub fn throw<E: Any + Send>(&self, payload: E) -> Value {
        switch::switch_to(&self.0, Some(Payload::Throw(Box::new(payload))))
    }

    /// Like [`throw`](Self::throw) with an already boxed payload (e.g. a caught panic).
    pub fn throw_boxed(&self, payload: Box<dyn Any + Send>) -> Value {
        switch::switch_to(&self.0, Some(Payload::Throw(payload)))
    }

    /// The greenlet that receives this one's return value; `None` for a main greenlet.
    pub fn parent(&self) -> Option<Greenlet> {
        self.0.parent.borrow().clone()
    }

    /// Changes the parent.
    ///
    /// # Errors
    ///
    /// [`ParentError::Cycle`] if `parent` is this greenlet or one of its descendants,
    /// [`ParentError::Main`] if this is a main greenlet (it has no parent).
    pub fn set_parent(&self, parent: &Greenlet) -> Result<(), ParentError> {
        if self.0.is_main() {
            return Err(ParentError::Main {
                greenlet: self.to_string(),
            });
        }
        // Walk the ancestry by address: no handles or reference counts to make and drop.
        let mut p: *const Inner = Rc::as_ptr(&parent.0);
        loop {
            if std::ptr::eq(p, Rc::as_ptr(&self.0)) {
                return Err(ParentError::Cycle {
                    greenlet: self.to_string(),
                    parent: parent.to_string(),
                });
            }
            // SAFETY: `p` is `parent` or one of its ancestors, each held by the parent
            // link below it, starting from the handle we borrow; nothing in this loop
            // changes a parent link.
            let up = unsafe { &*p }
                .parent
                .borrow()
                .as_ref()
                .map(|g| Rc::as_ptr(&g.0));
            match up {
                Some(up) => p = up,
                None => break,
            }
        }
        let old = self.0.parent.replace(Some(parent.clone()));
        // Dropped after the borrow ends: a last handle's drop may switch.
        drop(old);
        Ok(())
    }

    /// Whether the greenlet has been switched to at least once (always true for main).
    #[inline]
    pub fn is_started(&self) -> bool {
        self.0.state.get() != State::Unstarted
    }

    /// Whether its function has returned or unwound.
    #[inline]
    pub fn is_dead(&self) -> bool {
        self.0.state.get() == State::Dead
    }

    /// Started and not dead (Python's `bool(greenlet)`).
    pub fn is_active(&self) -> bool {
        !matches!(self.0.state.get(), State::Unstarted | State::Dead)
    }

    /// Whether this is the greenlet running now.
    #[inline]
    pub fn is_current(&self) -> bool {
        self.0.state.get() == State::Running
    }

    /// Whether this is a thread's main greenlet (its original stack).
    #[inline]
    pub fn is_main(&self) -> bool {
        self.0.is_main()
    }

    /// A process-wide unique id.
    #[inline]
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The name given by [`Builder::name`] or [`set_name`](Self::set_name) (`"main"` for
    /// a main greenlet).
    #[inline]
    pub fn name(&self) -> Option<Rc<str>> {
        self.0.name.borrow().clone()
    }

    /// Renames the greenlet (shown in panics, overflow reports and `Display`).
    pub fn set_name(&self, name: &str) {
        *self.0.name.borrow_mut() = Some(Rc::from(name));
    }

    /// Hints the processor to bring the top of this greenlet's stack into its caches:
    /// the lines around where the greenlet left off, which the switch back to it reads
    /// and writes first. For a scheduler that knows which greenlet it will switch to
    /// next: with thousands of greenlets each resumed now and then, their stack tops
    /// have left the caches meanwhile, and a resume otherwise waits on each line in
    /// turn. Costs a few instructions and reads nothing of the stack; it does nothing
    /// for a greenlet that never suspended itself, and is only a wasted hint for one
    /// that ran since (or finished: a prefetch never faults). Reads where the greenlet left off from
    /// its record, so a scheduler that looks further ahead calls
    /// [`prefetch_record`](Self::prefetch_record) one step before.
    #[inline]
    pub fn prefetch_stack(&self) {
        switch::prefetch_stack(&self.0);
    }

    /// Hints the processor to bring this greenlet's own record (its state, its
    /// coroutine, where it left off) into its caches: the step before
    /// [`prefetch_stack`](Self::prefetch_stack) for a scheduler that looks two
    /// greenlets ahead.
    #[inline]
    pub fn prefetch_record(&self) {
        switch::prefetch_record(&self.0);
    }

    /// Usable stack size in bytes (0 for a main greenlet, whose stack is the thread's).
    pub fn stack_size(&self) -> usize {
        self.0.stack_bounds.2
    }

    /// Data a runtime attaches to the greenlet (greenweave's hub keeps its task here).
    pub fn context(&self) -> Option<Rc<dyn Any>> {
        self.0.context.borrow().clone()
    }

    /// Attaches runtime data; see [`context`](Self::context).
    pub fn set_context(&self, context: Option<Rc<dyn Any>>) {
        *self.0.context.borrow_mut() = context;
    }

    /// A word of data a runtime attaches to the greenlet (0 until set), read back for
    /// the running greenlet by [`current_tag`](crate::current_tag) without touching any
    /// reference count. greenweave's hub keeps the address of the greenlet's task here
    /// while [`context`](Self::context) owns it.
    #[inline]
    #[doc(hidden)] // runtime plumbing (greenweave's hub), not a user API
    pub fn tag(&self) -> usize {
        self.0.tag.get()
    }

    /// Sets the [`tag`](Self::tag).
    ///
    /// # Safety
    ///
    /// The tag belongs to the runtime driving this thread's greenlets: greenweave's hub
    /// treats a non-zero tag as the address of its record for the greenlet and
    /// dereferences it. Only that runtime may set a non-zero tag, and it must keep what
    /// the tag points at alive until it sets the tag back to 0. (Without such a runtime
    /// on the thread, any value is harmless.)
    #[inline]
    #[doc(hidden)] // runtime plumbing (greenweave's hub), not a user API
    pub unsafe fn set_tag(&self, tag: usize) {
        self.0.tag.set(tag);
    }

    /// Whether switching to this greenlet from the running one is a single corosensei
    /// switch that leaves the resume chain (see the `switch` module) at most
    /// `max_depth` greenlets above the thread's main greenlet: this greenlet resumed
    /// the running one (a switch to it is one `suspend`), or it is suspended or
    /// unstarted and the running one is less than `max_depth` deep (one `resume`).
    ///
    /// A scheduler uses this to switch from one of its greenlets straight to the next
    /// when that is cheap and through its own loop otherwise, so the chain, which a
    /// switch further down has to walk, stays short.
    #[inline(always)]
    #[doc(hidden)] // runtime plumbing (greenweave's hub), not a user API
    pub fn is_one_switch_away(&self, max_depth: u32) -> bool {
        // SAFETY: the running greenlet is alive while it runs (see `thread::current_ptr`).
        let depth = unsafe { (*thread::current_ptr()).depth.get() };
        match self.0.state.get() {
            State::Resuming => self.0.depth.get() + 1 == depth,
            State::Suspended | State::Unstarted => depth < max_depth,
            State::Running | State::Dead => false,
        }
    }

    /// Whether two handles name the same greenlet.
    pub fn ptr_eq(&self, other: &Greenlet) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Clone for Greenlet {
    fn clone(&self) -> Greenlet {
        Greenlet::from_inner(self.0.clone())
    }
}

impl PartialEq for Greenlet {
    fn eq(&self, other: &Greenlet) -> bool {
        self.ptr_eq(other)
    }
}

impl Eq for Greenlet {}

impl Drop for Greenlet {
    fn drop(&mut self) {
        let left = self.0.handles.get() - 1;
        self.0.handles.set(left);
        if left == 0 && self.0.state.get() == State::Suspended && !self.0.killing.get() {
            kill_abandoned(&self.0);
        }
    }
}

/// Sends `GreenletExit` into a suspended greenlet nobody can switch to any more, with the
/// current greenlet as its parent so control comes back here once it has unwound.
fn kill_abandoned(inner: &Rc<Inner>) {
    if !thread::alive() {
        // Thread exit: no switch is possible any more. The suspended stack holds `Rc`s
        // to `inner` itself, so dropping handles never frees the coroutine: take it out
        // and drop it here, which makes corosensei force-unwind the stack in place
        // (running its destructors) and breaks that cycle. The coroutine body catches
        // the forced unwind and returns normally, touching no thread-locals.
        inner.killing.set(true);
        // SAFETY: the greenlet is suspended, so no switch is using its coroutine
        // (the `switch` module's invariant 2), and no switch can start any more.
        drop(unsafe { (*inner.coroutine.get()).take() });
        inner.state.set(State::Dead);
        return;
    }
    inner.killing.set(true);
    let g = Greenlet::from_inner(inner.clone());
    *inner.parent.borrow_mut() = Some(crate::current());
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| g.throw(GreenletExit)));
    if outcome.is_err() {
        log::error!(
            target: crate::LOG_TARGET,
            "{g} panicked while unwinding after its last handle was dropped"
        );
    }
}

impl fmt::Display for Greenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0.name.borrow() {
            Some(name) => write!(f, "greenlet '{name}' (id {})", self.0.id),
            None => write!(f, "greenlet id {}", self.0.id),
        }
    }
}

impl fmt::Debug for Greenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Greenlet")
            .field("id", &self.0.id)
            .field("name", &self.0.name.borrow())
            .field("state", &self.0.state.get())
            .finish()
    }
}

/// Configures a greenlet before creating it.
///
/// ```
/// use greenweave_greenlet::Builder;
///
/// let g = Builder::new().name("worker").stack_size(64 * 1024).build(|_| 7);
/// assert_eq!(g.name().as_deref(), Some("worker"));
/// assert_eq!(g.switch(()).get::<i32>(), 7);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a Builder does nothing until `build` is called"]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
    parent: Option<Greenlet>,
}

impl Builder {
    /// Defaults: no name, the thread's default stack size.
    #[inline]
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the greenlet.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// The greenlet that receives the new greenlet's return value (default: the current
    /// greenlet). A runtime sets its hub here so finished greenlets return to it.
    #[inline]
    pub fn parent(mut self, parent: &Greenlet) -> Builder {
        self.parent = Some(parent.clone());
        self
    }

    /// Usable stack size in bytes, rounded up to whole pages.
    ///
    /// # Panics
    ///
    /// If `size` is outside [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE)..=[`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE).
    #[track_caller]
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(stack::validate_stack_size(size));
        self
    }

    /// Creates the greenlet; see [`Greenlet::new`].
    ///
    /// # Panics
    ///
    /// If no stack can be mapped.
    #[track_caller]
    pub fn build<F, R>(self, f: F) -> Greenlet
    where
        F: FnOnce(Value) -> R + 'static,
        R: Any,
    {
        match self.try_build(f) {
            Ok(g) => g,
            Err(err) => panic!("cannot allocate a greenlet stack: {err}"),
        }
    }

    /// Creates the greenlet, or says why no stack could be mapped (out of memory or of
    /// kernel memory mappings).
    pub fn try_build<F, R>(self, f: F) -> io::Result<Greenlet>
    where
        F: FnOnce(Value) -> R + 'static,
        R: Any,
    {
        let stack: PooledStack = thread::take_stack(self.stack_size)?;
        let parent = match self.parent {
            Some(parent) => parent,
            None => crate::current(),
        };
        let stack_bounds = (stack.guard_start(), stack.guard_end(), stack.size());
        // Built in place: `Rc::new(Inner { .. })` would build it on the stack and copy it
        // into the allocation, a `memcpy` per greenlet. Not std's `Rc::new_uninit`: it
        // computes the layout at run time in an out-of-line call, about 50 instructions
        // more per greenlet (callgrind, `switch_profile create`).
        let mut inner = Rc::new(MaybeUninit::<Inner>::uninit());
        Rc::get_mut(&mut inner)
            .expect("a new Rc has no other reference")
            .write(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                state: Cell::new(State::Unstarted),
                coroutine: UnsafeCell::new(Some(switch::new_coroutine(stack, f))),
                yielder: Cell::new(std::ptr::null()),
                inbox: Cell::new(None),
                depth: Cell::new(0),
                parent: RefCell::new(Some(parent)),
                handles: Cell::new(0),
                killing: Cell::new(false),
                name: RefCell::new(self.name.map(Rc::from)),
                stack_bounds,
                context: RefCell::new(None),
                tag: Cell::new(0),
                left_at: Cell::new(0),
            });
        // SAFETY: written just above.
        let inner = unsafe { inner.assume_init() };
        Ok(Greenlet::from_inner(inner))
    }
}
