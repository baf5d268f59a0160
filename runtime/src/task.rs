//! The runtime's record of one greenlet: identity, wait state, interrupts, locals.
//!
//! Where its state changes: the transitions in [`state`] (run state, waits, registry
//! key, result) and [`interrupts`] (what is pending to interrupt it) are the only
//! writers of the [`Task`] cells that change after a spawn.

use std::any::Any;
use std::cell::{Cell, RefCell, RefMut};
use std::fmt;
use std::mem::MaybeUninit;
use std::panic::Location;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_greenlet::Greenlet;

use crate::hub::InFrame;
use crate::park::WaitQueue;
use crate::signals::SignalWait;

mod borrowed;
mod interrupts;
mod state;

pub(crate) use borrowed::TaskRef;
pub use interrupts::Interrupt;

/// What a task is doing, as the registry reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Spawned or woken, waiting in the run queue.
    Ready,
    /// Running now.
    Running,
    /// Parked at a blocking call.
    Blocked,
    /// Finished (returned, panicked or was killed).
    Done,
}

/// Something a parked greenlet waits on, able to describe itself for the deadlock
/// report ("Mutex created at src/main.rs:12, held by greenlet 'worker-2' (id 3)").
pub(crate) trait Describe {
    fn describe(&self, out: &mut String);

    /// What kind of wait this is, for the hub's statistics (`stats`). Each
    /// implementation returns a constant, which the inlined park path folds.
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Other
    }
}

impl Describe for &str {
    fn describe(&self, out: &mut String) {
        out.push_str(self);
    }
}

/// The runtime's state for one greenlet (spawned, or adopted such as the main one).
pub(crate) struct Task {
    pub(crate) greenlet: Greenlet,
    pub(crate) name: Option<Rc<str>>,
    /// Where it was spawned; `None` for greenlets the runtime adopted (main, raw ones).
    pub(crate) location: Option<&'static Location<'static>>,
    /// Written only by the transitions of [`state`], as are the `generation`,
    /// `woken_by`, `signal_wait`, `key` and `result`.
    state: Cell<TaskState>,
    /// Bumped every time a wait ends, so wake-ups meant for an earlier wait are ignored.
    generation: Cell<u64>,
    /// Why the last wait ended.
    woken_by: Cell<Wake>,
    /// What it waits on while blocked: the address of a `&dyn Describe` in the frame
    /// of its park call, set by [`Task::show_waiting_on`] for as long as that frame
    /// borrows it; only read while the task is blocked (see [`Task::waiting_on`]).
    waiting_on: Cell<Option<NonNull<()>>>,
    /// The blocking call it parked in (its caller's `#[track_caller]` location) and
    /// the hub's coarse time then (`stats::Counters::clock`); only meaningful while it
    /// is blocked, so never reset.
    pub(crate) parked_at: Cell<&'static Location<'static>>,
    pub(crate) parked_clock: Cell<u64>,
    /// Which signal handlers end its current wait (see `signals`).
    signal_wait: Cell<SignalWait>,
    /// A kill was posted and not yet delivered. Written only by the transitions of
    /// [`interrupts`].
    kill_requested: Cell<bool>,
    /// Set whenever an interrupt may be pending (a kill, an expired timeout, a deadlock
    /// report), so the common blocking path checks one flag; cleared when a check finds
    /// nothing. Written only by [`interrupts`] (and `reuse`).
    interrupted: Cell<bool>,
    /// Greenlets waiting for this one to finish.
    pub(crate) joiners: WaitQueue,
    /// Key in the hub's registry while alive.
    key: Cell<usize>,
    /// What most tasks never use (expired timeouts, a deadlock report, `Local`
    /// values), made on first use: one word here instead of three containers to build
    /// and drop on every spawn.
    rare: RefCell<Option<Box<Rare>>>,
    /// What its function came to, a `Result<T, JoinError>` for the `JoinHandle<T>` to
    /// take: inline when it fits four words (most results do), so a spawn allocates no
    /// separate result slot.
    result: RefCell<Option<TaskResult>>,
}

/// The parts of a [`Task`] that most tasks never use.
#[derive(Default)]
pub(crate) struct Rare {
    /// Ids of `Timeout`s that expired and are still to be delivered (see [`interrupts`]).
    fired_timeouts: Vec<u64>,
    /// The deadlock report to raise at the task's blocking call.
    deadlock: Option<String>,
    /// `Local` values, by `Local` id; dropped when the task finishes.
    pub(crate) locals: Locals,
}

/// A finished task's `Result<T, JoinError>`, type-erased for the untyped task record.
pub(crate) type TaskResult = smallbox::SmallBox<dyn Any, smallbox::space::S4>;

/// A greenlet's `Local` values by `Local` id. A greenlet holds a handful at most, so a
/// vector searched in place beats a hash map, and an empty one costs nothing to make
/// or drop (which every spawn does).
#[derive(Default)]
pub(crate) struct Locals(Vec<(u64, Box<dyn Any>)>);

impl Locals {
    pub(crate) fn get(&self, id: &u64) -> Option<&Box<dyn Any>> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }

    /// Sets the value of `id`, returning the one it replaces.
    pub(crate) fn insert(&mut self, id: u64, value: Box<dyn Any>) -> Option<Box<dyn Any>> {
        match self.0.iter_mut().find(|(k, _)| *k == id) {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            None => {
                self.0.push((id, value));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &u64) -> Option<Box<dyn Any>> {
        let pos = self.0.iter().position(|(k, _)| k == id)?;
        Some(self.0.swap_remove(pos).1)
    }
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Someone woke it on purpose (the condition may hold; re-check it).
    Notified,
    /// Its deadline passed.
    TimedOut,
    /// A kill, timeout or deadlock report is pending.
    Interrupted,
    /// A signal handler ran on the thread while it waited in a wait marked as ended
    /// by that handler (see `signals`).
    Signal,
}

impl Task {
    #[inline(always)]
    pub(crate) fn new(greenlet: Greenlet, location: Option<&'static Location<'static>>) -> Task {
        Task {
            name: greenlet.name(),
            greenlet,
            location,
            state: Cell::new(TaskState::Ready),
            generation: Cell::new(0),
            woken_by: Cell::new(Wake::Notified),
            waiting_on: Cell::new(None),
            parked_at: Cell::new(Location::caller()),
            parked_clock: Cell::new(0),
            signal_wait: Cell::new(SignalWait::default()),
            kill_requested: Cell::new(false),
            interrupted: Cell::new(false),
            joiners: WaitQueue::new(),
            key: Cell::new(usize::MAX),
            rare: RefCell::new(None),
            result: RefCell::new(None),
        }
    }

    /// A new task in its `Rc`, built in place: a `Task` is a few hundred bytes, and
    /// `Rc::new(Task::new(..))` builds it on the stack and then copies it into the
    /// allocation, a `memcpy` per spawn. (As for a greenlet's record, std's
    /// `Rc::new_uninit` would cost about 50 instructions more per spawn: see
    /// `Builder::try_build` in the greenlet crate.)
    #[inline]
    pub(crate) fn new_rc(
        greenlet: Greenlet,
        location: Option<&'static Location<'static>>,
    ) -> Rc<Task> {
        let mut task = Rc::new(MaybeUninit::<Task>::uninit());
        Rc::get_mut(&mut task)
            .expect("a new Rc has no other reference")
            .write(Task::new(greenlet, location));
        // SAFETY: written just above.
        unsafe { task.assume_init() }
    }

    pub(crate) fn id(&self) -> u64 {
        self.greenlet.id()
    }

    /// Makes `self` the task of a greenlet the runtime adopted (the thread's main
    /// greenlet, a raw one): its context owns the task (until [`detach`](Self::detach))
    /// and its tag holds the task's address for [`current_borrowed`](Self::current_borrowed).
    pub(crate) fn attach(self: &Rc<Task>) {
        self.greenlet.set_context(Some(self.clone()));
        // SAFETY: we are the runtime the tag belongs to; the context just set owns the
        // task the tag points at until `detach` clears the tag before the context.
        unsafe { self.greenlet.set_tag(Rc::as_ptr(self) as usize) };
    }

    /// Makes `self` the task of the greenlet the runtime spawned for it: only its tag
    /// is set. No context is needed to keep the task alive: the hub's registry owns it
    /// from the spawn until its body (`run_task`, which holds its own reference while
    /// it runs) unregisters it and calls [`detach`](Self::detach) at the very end.
    pub(crate) fn attach_spawned(self: &Rc<Task>) {
        // SAFETY: we are the runtime the tag belongs to; the registry and then the
        // greenlet's body own the task until the body clears the tag (see above).
        unsafe { self.greenlet.set_tag(Rc::as_ptr(self) as usize) };
    }

    /// Undoes [`attach`](Self::attach) or [`attach_spawned`](Self::attach_spawned)
    /// (breaking the greenlet -> task -> greenlet cycle when the task finishes).
    pub(crate) fn detach(&self) {
        // SAFETY: a zero tag points at nothing.
        unsafe { self.greenlet.set_tag(0) };
        if self.location.is_none() {
            // Adopted: its context owned it.
            self.greenlet.set_context(None);
        }
    }

    /// The task of the running greenlet, if it has one, *borrowed* for as long as
    /// `frame` (a [`Here`](crate::hub::Here), or the hub borrowed through one): one
    /// thread-local read, no registry lookup and no reference count change. Clone it
    /// to keep it.
    #[inline]
    pub(crate) fn current_borrowed<F: InFrame>(frame: &F) -> Option<TaskRef<'_>> {
        let _ = frame;
        let task = NonNull::new(greenweave_greenlet::current_tag() as *mut Task)?;
        // A non-zero tag is only set by `attach` or `attach_spawned` (`set_tag` is
        // unsafe for anyone else), to the address of an `Rc<Task>` that the greenlet's
        // context or body owns until `detach` clears the tag first.
        // SAFETY: so the task is alive; `frame` is a local of a frame of the running
        // greenlet, which ends before `detach`.
        Some(unsafe { TaskRef::from_raw(task) })
    }

    /// The task's [`Rare`] parts, made if need be.
    pub(crate) fn rare(&self) -> RefMut<'_, Rare> {
        RefMut::map(self.rare.borrow_mut(), |rare| {
            &mut **rare.get_or_insert_with(Box::default)
        })
    }

    /// The task's [`Rare`] parts if they were ever made.
    pub(crate) fn rare_if_made(&self) -> Option<RefMut<'_, Rare>> {
        RefMut::filter_map(self.rare.borrow_mut(), |rare| rare.as_deref_mut()).ok()
    }

    /// Takes the [`Rare`] parts out (to drop them once the task is over, outside any
    /// borrow: `Local` values may run user destructors).
    pub(crate) fn take_rare(&self) -> Option<Box<Rare>> {
        self.rare.borrow_mut().take()
    }

    /// Shows `on` as what this task waits on (in reports and [`GreenletInfo`]) until
    /// the returned guard drops: the park call holds it across its switch. The guard
    /// borrows `on`, a local of that call, so the address it leaves here never
    /// outlives its target.
    #[inline(always)]
    pub(crate) fn show_waiting_on<'a>(&'a self, on: &'a &'a dyn Describe) -> ShowsWaitingOn<'a> {
        self.waiting_on.set(Some(NonNull::from(on).cast()));
        ShowsWaitingOn(self)
    }

    /// What this task waits on, if it is blocked and its park call said.
    pub(crate) fn waiting_on(&self) -> Option<&dyn Describe> {
        if self.state() != TaskState::Blocked {
            return None;
        }
        let on = self.waiting_on.get()?.cast::<&dyn Describe>();
        // Set by `show_waiting_on` to a `&dyn Describe` that the guard it returned
        // borrows, and cleared when that guard drops. A task is blocked only inside its
        // park call (`park::wait_here`), between making that guard and dropping it.
        // SAFETY: so while it is blocked (checked above), the target is alive.
        Some(unsafe { *on.as_ref() })
    }

    /// One line about this task for reports: `greenlet 'name' (id 3) spawned at f.rs:1`.
    pub(crate) fn describe_line(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = match self.location {
            Some(at) => write!(out, "{self} spawned at {at}"),
            None if self.greenlet.is_main() => write!(out, "{self}, the thread's main greenlet"),
            None => write!(out, "{self}, not spawned by greenweave"),
        };
        match self.state() {
            TaskState::Blocked => {
                out.push_str(", waits on ");
                match self.waiting_on() {
                    Some(on) => on.describe(out),
                    None => out.push_str("nothing known"),
                }
            }
            TaskState::Ready => out.push_str(", ready to run"),
            TaskState::Running => out.push_str(", running"),
            TaskState::Done => out.push_str(", finished"),
        }
    }
}

/// Clears a task's [`waiting_on`](Task::waiting_on) when the park call that set it
/// ends, even by unwinding (a greenlet force-unwound at thread exit).
pub(crate) struct ShowsWaitingOn<'a>(&'a Task);

impl Drop for ShowsWaitingOn<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.waiting_on.set(None);
    }
}

/// As its greenlet's (`greenlet 'name' (id 3)`).
impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.greenlet, f)
    }
}

/// A snapshot of one live greenlet, as listed by [`greenlets`](crate::greenlets).
#[derive(Clone, Debug)]
pub struct GreenletInfo {
    /// Process-wide unique id.
    pub id: u64,
    /// Name given at spawn, if any.
    pub name: Option<String>,
    /// Where it was spawned (`None` for the thread's main greenlet and other greenlets
    /// the runtime did not spawn).
    pub spawned_at: Option<&'static Location<'static>>,
    /// Whether it is the thread's main greenlet (its original stack).
    pub is_main: bool,
    /// What it is doing.
    pub state: TaskState,
    /// What it waits on, when blocked.
    pub waiting_on: Option<String>,
    /// When blocked: the blocking call it parked in (the line of the caller of
    /// greenweave's blocking function, such as `queue.get()` or `lock()`; inside a
    /// libc hook of `greenweave-monkey`, the hook's own line).
    pub parked_at: Option<&'static Location<'static>>,
    /// When blocked: for how long, measured from the hub's last clock reading before
    /// the park (the hub reads the clock at least every 16 maintenance passes, so this
    /// may be longer than the wait by about as long as a thousand greenlet runs take).
    pub waiting_for: Option<Duration>,
}

impl GreenletInfo {
    /// What `task` is doing; `clock` is its hub's counters, `now` the time to measure
    /// waits to.
    pub(crate) fn of(task: &Task, clock: &crate::stats::Counters, now: Instant) -> GreenletInfo {
        let blocked = task.state() == TaskState::Blocked;
        let waiting_on = task.waiting_on().map(|on| {
            let mut s = String::new();
            on.describe(&mut s);
            s
        });
        GreenletInfo {
            id: task.id(),
            name: task.name.as_deref().map(str::to_owned),
            spawned_at: task.location,
            is_main: task.greenlet.is_main(),
            state: task.state(),
            waiting_on,
            parked_at: blocked.then(|| task.parked_at.get()),
            waiting_for: blocked.then(|| clock.since(task.parked_clock.get(), now)),
        }
    }
}
