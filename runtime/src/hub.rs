//! The per-thread hub: run queue, timers, the mio reactor and the cross-thread
//! injector, driven from a greenlet of its own.
//!
//! A greenlet that blocks parks itself (see `park`) and switches away; the hub runs
//! ready greenlets, fires timers, polls I/O and wakes whoever can continue. The
//! thread's main greenlet is an ordinary client of the hub: blocking in `main` just
//! switches away like any other greenlet, so no `run()` or `block_on()` is needed.
//!
//! # Direct switches
//!
//! Switching away goes straight to the front of the run queue when that costs one
//! corosensei switch (the greenlet that resumed the blocking one, or a parked one
//! while the resume chain is shallow; see [`Hub::take_direct`]), and through the hub
//! greenlet otherwise. Both take the same greenlet next, so the order is the run
//! queue's; the direct switch saves the hub's half of the trip. Direct runs count
//! toward the maintenance interval below, so timers and I/O are looked at as often.
//!
//! # Turns
//!
//! One turn of the hub runs every greenlet that was ready when the turn began (those
//! woken meanwhile wait for the next turn). Before a turn the hub does *maintenance*
//! (fire due timers, poll mio, run cross-thread wake-ups) when nothing is ready (then
//! it blocks in `epoll_wait` until the next timer) or when [`MAINTENANCE_INTERVAL`]
//! greenlet runs have passed since the last one, as tokio's event interval does: a
//! clock read and an `epoll_wait` per yield would cost more than the yield itself. So
//! while greenlets keep the run queue busy, timers and I/O are looked at every 61 runs,
//! and an expired `Timeout` is delivered at a blocking point soon after, not
//! necessarily the very next one. A maintenance pass with greenlets ready skips the
//! clock when no timer is pending and `epoll_wait` when no greenlet waits for an fd
//! and no other thread holds a way to wake one.
//!
//! # Memory and thread exit
//!
//! Maintenance also gives memory back after a burst of greenlets (see `trim`): pooled
//! stacks that stayed unused, the spare capacity of the registry and the run queue.
//! When the thread exits, the hub's thread-local destructor ends the greenlets still
//! alive and releases everything (see `thread_exit`).
//!
//! # Deadlock
//!
//! When nothing is ready and no timer, I/O wait or cross-thread work could ever wake
//! anyone, the hub delivers a report listing every blocked greenlet to the thread's
//! main greenlet (or, if main is not blocked, to the first blocked one), where the
//! blocking call panics with it (see `deadlock`). Greenlets in external waits (the
//! monkey layer's futex waits) count as wakeable by other threads, so they are reported
//! only when the process has no other thread.

use std::cell::{Cell, RefCell};
use std::panic::Location;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use greenweave_greenlet::{self as greenlet, Greenlet};
use mio::{Events, Poll};
use slab::Slab;

use crate::remote;
use crate::run_queue::RunQueue;
use crate::signals;
use crate::task::{Task, TaskRef, TaskState};
use crate::timer::Timers;

/// Greenlet runs between two maintenance passes while the run queue stays busy.
pub const MAINTENANCE_INTERVAL: u32 = 61;

/// How deep the resume chain may get through direct switches between tasks (main is
/// 0, the hub it resumes 1, a task the hub runs 2): a task the hub runs may resume
/// one more directly. A switch to a greenlet further down the chain walks it, one
/// corosensei switch per level, so the chain is kept this short.
const DIRECT_DEPTH: u32 = 3;

/// How many finished task records a hub keeps for reuse.
const SPARE_TASKS: usize = 64;

/// Whether switching straight to a ready task is cheap (see [`Hub::take_front_if`]).
trait Cheap {
    fn cheap(self, task: &Task) -> bool;
}

/// A task one corosensei switch away, leaving the resume chain at most this deep
/// (`Greenlet::is_one_switch_away`).
struct OneSwitchAway(u32);

impl Cheap for OneSwitchAway {
    #[inline(always)]
    fn cheap(self, task: &Task) -> bool {
        task.greenlet.is_one_switch_away(self.0)
    }
}

/// The greenlet that resumed this finishing one, which becomes its parent.
struct ParentOf<'a>(&'a Greenlet);

impl Cheap for ParentOf<'_> {
    #[inline]
    fn cheap(self, task: &Task) -> bool {
        task.greenlet.is_one_switch_away(0) && self.0.set_parent(&task.greenlet).is_ok()
    }
}

/// The value the hub is switched with when its thread exits: stop the loop.
struct HubStop;

/// How the running greenlet leaves, for [`Hub::take_direct`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaving {
    /// It parked: it runs again when something wakes it.
    Parked,
    /// It queued itself again (a yield): it is in the run queue already.
    Requeued,
}

pub(crate) struct Hub {
    pub(crate) greenlet: Greenlet,
    pub(crate) ready: RunQueue,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) tasks: RefCell<Slab<Rc<Task>>>,
    pub(crate) poll: RefCell<Poll>,
    events: RefCell<Events>,
    /// Greenlets waiting for fd readiness.
    pub(crate) io: RefCell<crate::io::IoTable>,
    /// The injector; replaced only in a forked child (see `fork`).
    pub(crate) remote: RefCell<Arc<remote::Shared>>,
    runs_since_maintenance: Cell<u32>,
    /// Records of finished, joined tasks, for [`Hub::new_task`] to reuse.
    pub(crate) spare_tasks: RefCell<Vec<Rc<Task>>>,
    /// When memory is next given back (see `trim`).
    pub(crate) trim: crate::trim::Trim,
    /// The process the hub was made (or, in a forked child, rebuilt; see `fork`) in: a
    /// forked child's copy must not end greenlets (their waits are registered in the
    /// parent's epoll instance).
    pub(crate) pid: Cell<u32>,
    /// Greenlets parked in shielded waits that any thread may end (futex waits of the
    /// monkey layer; see `coop::park_external`).
    pub(crate) external_waits: Cell<usize>,
    /// Run at the start of every maintenance pass (see `coop::on_maintenance`).
    pub(crate) maintenance_hook: Cell<Option<fn(crate::coop::Maintenance)>>,
    /// Greenlets parked in waits that a signal handler may end (see `signals`).
    pub(crate) signal_waits: Cell<usize>,
    /// Signal handlers running on this thread now (see `signals`); an atomic, as
    /// handlers change it between any two instructions of the code they interrupt.
    pub(crate) signal_handlers_running: AtomicU32,
    /// The thread's signal-handler counts at the last maintenance pass.
    signals_seen: Cell<signals::Handled>,
    /// In a forked child, the id of the spawned greenlet that forked, which plays the
    /// part of `main` there (its return ends the process); 0 otherwise (see `fork`).
    pub(crate) fork_root: Cell<u64>,
    /// Statistics, and what the monitor and `dump_all` see of this hub (`stats`).
    pub(crate) stats: crate::stats::Counters,
    /// Keeps the hub in the process's list of hubs until it is dropped (at thread
    /// exit, whichever way `thread_exit::release` ends it).
    _registration: crate::monitor::registry::Registration,
}

mod owner;
mod turn;

pub(crate) use owner::{Here, InFrame, existing, get, try_with_existing, with};

/// The running greenlet's task (adopting it if the runtime did not spawn it).
///
/// # Panics
///
/// When called from the hub itself.
#[track_caller]
#[inline]
pub(crate) fn current_task() -> Rc<Task> {
    with(Hub::current_task)
}

impl Hub {
    fn new() -> Hub {
        crate::report::install_panic_hook();
        crate::fork::install();
        let poll = Poll::new()
            .unwrap_or_else(|e| panic!("greenweave: cannot create the hub's epoll instance: {e}"));
        let remote = remote::Shared::new(&poll)
            .unwrap_or_else(|e| panic!("greenweave: cannot create the hub's waker: {e}"));
        let mut root = greenlet::current();
        while let Some(parent) = root.parent() {
            root = parent;
        }
        let greenlet = Greenlet::builder().name("hub").parent(&root).build(|_| {
            if let Err(payload) = std::panic::catch_unwind(turn::run_hub) {
                if payload.is::<greenlet::GreenletExit>() {
                    // Only a raw greenlet `throw` into the hub (reachable as a spawned
                    // greenlet's `parent()`) gets here.
                    panic!(
                        "greenweave: the hub greenlet was killed; the hub runs every greenlet of \
                         this thread and cannot be killed: kill the greenlets themselves \
                         (JoinHandle::kill) instead"
                    );
                }
                // Anything else (another thrown payload, the forced unwind of a thread
                // exit) goes on unwinding.
                std::panic::resume_unwind(payload);
            }
        });
        let remote = Arc::new(remote);
        let (entry, registration) =
            crate::monitor::registry::register(greenlet.id(), remote.clone());
        crate::monitor::start_from_env();
        Hub {
            greenlet,
            ready: RunQueue::new(),
            timers: RefCell::new(Timers::new()),
            tasks: RefCell::new(Slab::new()),
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(1024)),
            io: RefCell::new(crate::io::IoTable::default()),
            remote: RefCell::new(remote),
            // "Maintenance due" from the start: the first switch away from a greenlet
            // goes through the hub loop, which starts the hub greenlet before any task
            // can reach it (a raw `throw` into an unstarted hub would end it unnoticed).
            runs_since_maintenance: Cell::new(MAINTENANCE_INTERVAL),
            spare_tasks: RefCell::new(Vec::new()),
            trim: crate::trim::Trim::new(),
            pid: Cell::new(std::process::id()),
            external_waits: Cell::new(0),
            maintenance_hook: Cell::new(None),
            signal_waits: Cell::new(0),
            signal_handlers_running: AtomicU32::new(0),
            signals_seen: Cell::new(signals::Handled::default()),
            fork_root: Cell::new(0),
            stats: crate::stats::Counters::new(entry),
            _registration: registration,
        }
    }

    /// The task of the running greenlet; a greenlet the runtime did not spawn (the
    /// thread's main greenlet, a raw `Greenlet`) is adopted on first use.
    ///
    /// # Panics
    ///
    /// When called from the hub itself: the hub must never block.
    #[inline]
    #[track_caller]
    pub(crate) fn current_task(&self) -> Rc<Task> {
        Rc::clone(&self.current_task_borrowed())
    }

    /// The task of the running greenlet (adopted if need be), borrowed as
    /// [`Task::current_borrowed`] hands it out, for as long as the hub is borrowed: the
    /// caller's own frame (see [`Here`]).
    ///
    /// # Panics
    ///
    /// When called from the hub itself.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn current_task_borrowed(&self) -> TaskRef<'_> {
        match Task::current_borrowed(self) {
            Some(task) => task,
            None => self.adopt_current(),
        }
    }

    #[cold]
    #[track_caller]
    fn adopt_current(&self) -> TaskRef<'_> {
        let g = greenlet::current();
        assert!(
            !g.ptr_eq(&self.greenlet),
            "greenweave: a blocking call was made from inside the hub (e.g. in a Drop run by the hub); \
             the hub must never block: move the call into a spawned greenlet"
        );
        let task = Task::new_rc(g, None);
        self.register(&task);
        task.attach();
        // The registry and the greenlet's context (set by `attach`) own the task from
        // here on: hand it out borrowed, as for a spawned one.
        drop(task);
        Task::current_borrowed(self).expect("`attach` tagged the current greenlet")
    }

    /// A task record for a greenlet spawned at `location`, in the allocation of a
    /// finished one when [`recycle`](Self::recycle) kept one (a spawn then joined
    /// allocates no task record).
    #[inline]
    pub(crate) fn new_task(
        &self,
        greenlet: Greenlet,
        location: &'static Location<'static>,
    ) -> Rc<Task> {
        // Not borrowed during the match: the old record's drop must not find it busy.
        let spare = self.spare_tasks.borrow_mut().pop();
        let task = match spare {
            Some(mut task) => {
                Rc::get_mut(&mut task)
                    .expect("a spare task has no other reference")
                    .reuse(greenlet, Some(location));
                task
            }
            None => Task::new_rc(greenlet, Some(location)),
        };
        self.stats.count_spawn();
        task
    }

    /// Keeps the record of a finished task that nothing else refers to (its join just
    /// took the result) for [`new_task`](Self::new_task) to reuse; drops it otherwise.
    #[inline]
    pub(crate) fn recycle(&self, task: Rc<Task>) {
        let unshared = Rc::strong_count(&task) == 1 && Rc::weak_count(&task) == 0;
        if unshared && task.state() == TaskState::Done {
            let mut spares = self.spare_tasks.borrow_mut();
            if spares.len() < SPARE_TASKS {
                spares.push(task);
            }
        }
    }

    #[inline]
    pub(crate) fn register(&self, task: &Rc<Task>) {
        let mut tasks = self.tasks.borrow_mut();
        let key = tasks.insert(task.clone());
        self.stats.entry.set_greenlets(tasks.len());
        task.registered(key);
    }

    #[inline]
    pub(crate) fn unregister(&self, task: &Task) {
        if let Some(key) = task.unregistered() {
            let mut tasks = self.tasks.borrow_mut();
            tasks.try_remove(key);
            self.stats.entry.set_greenlets(tasks.len());
        }
    }

    /// Puts a ready task at the back of the run queue.
    #[inline]
    pub(crate) fn schedule(&self, task: Rc<Task>) {
        self.ready.push(task);
    }

    /// Leaves the running greenlet, which has just parked itself or queued itself
    /// again (`leaving`), for the next ready one (see
    /// [`take_direct`](Self::take_direct)); returns when someone makes it run again.
    #[inline(always)]
    pub(crate) fn switch_away(&self, leaving: Leaving) {
        self.switch_to(self.take_direct(leaving));
    }

    /// Switches to `next` (what [`take_direct`](Self::take_direct) chose), or to the
    /// hub loop if it is `None`; returns when someone makes the caller run again.
    /// Always inlined: the switch runs in the blocking call's own frame, so a resumed
    /// greenlet returns through no frame of ours.
    #[inline(always)]
    fn switch_to(&self, next: Option<Rc<Task>>) {
        let to = match &next {
            Some(task) => &task.greenlet,
            None => &self.greenlet,
        };
        // One switch site, so the blocking call that inlines this stays small.
        to.switch_unit_discarding();
        drop(next);
    }

    /// The greenlet to leave the running one for, which has just parked itself or
    /// queued itself again (`leaving`): the front of the run queue, taken and marked
    /// running, if it can be switched to directly now; `None` to go through the hub
    /// loop. [`switch_to`](Self::switch_to) makes the switch.
    ///
    /// The next greenlet is switched to directly when that is a single corosensei
    /// switch (see [`Greenlet::is_one_switch_away`]): a task handing off to the one
    /// that resumed it, or, when it is the only other greenlet ready, resuming it while
    /// the resume chain is shallow. Otherwise, when nothing is ready, or when
    /// maintenance is due, it goes through the hub loop. Either way the next greenlet
    /// is the front of the run queue, so the order is the same; the direct switch
    /// saves the hub's half of the trip.
    ///
    /// Why only the only other one: with several ready, a direct resume puts the next
    /// greenlet one level up the chain, and the one after it would have to walk back
    /// down to the hub through it (two switches, where the hub loop's round robin
    /// spends one per greenlet). Two greenlets handing off (ping-pong, `yield_now`
    /// between two, a spawn and its join) are where the direct switch pays.
    #[inline(always)]
    fn take_direct(&self, leaving: Leaving) -> Option<Rc<Task>> {
        let others_ready = self.ready.len() - usize::from(leaving == Leaving::Requeued);
        // A depth limit of 0 admits only the greenlet that resumed us.
        let max_depth = if others_ready == 1 { DIRECT_DEPTH } else { 0 };
        self.take_front_if(OneSwitchAway(max_depth))
    }

    /// The front of the run queue, taken and marked running, if it is ready, no
    /// maintenance is due, and `cheap` says switching to it is.
    // `Cheap` rather than a closure: a closure is a function of its own that LLVM may
    // leave out of line in a large caller (it did, in the queue shell's steps).
    #[inline(always)]
    fn take_front_if(&self, cheap: impl Cheap) -> Option<Rc<Task>> {
        let runs = self.runs_since_maintenance.get();
        if runs >= MAINTENANCE_INTERVAL {
            return None;
        }
        let task = self.ready.pop()?;
        if task.state() != TaskState::Ready || !cheap.cheap(&task) {
            self.ready.push_front(task);
            return None;
        }
        task.start_running();
        self.runs_since_maintenance.set(runs + 1);
        self.stats.count_switch();
        Some(task)
    }

    /// Called by a finishing task's greenlet as the last thing it does: if the next
    /// ready greenlet is the one that resumed it (typically a spawner parked in
    /// `join`), makes that its parent, so the greenlet's return goes straight there:
    /// one switch instead of three (to the hub, and from the hub on). Otherwise the
    /// return goes to the hub as usual.
    pub(crate) fn finish_into_next(&self, finishing: &Greenlet) {
        // A task whose greenlet descends from the finishing one (a raw child greenlet
        // adopted as a task) cannot become its parent: that one stays queued.
        let next = self.take_front_if(ParentOf(finishing));
        // The new parent is on the resume chain right below us, which keeps it alive
        // until our return reaches it (the greenlet crate's invariant 6).
        drop(next);
    }

    /// Ends the hub loop (at thread exit, from the main greenlet), so the hub
    /// greenlet's stack goes back to the pool.
    pub(crate) fn stop_loop(&self) {
        if self.greenlet.is_active() {
            self.greenlet.switch(HubStop);
        }
    }

    /// Shrinks the buffers a burst of greenlets grew, once they are mostly empty (a
    /// trim pass; see `trim`). The registry keeps every key in use: only its vacant
    /// tail goes.
    pub(crate) fn shrink_buffers(&self) {
        {
            let mut tasks = self.tasks.borrow_mut();
            if crate::trim::oversized(tasks.capacity(), tasks.len()) {
                tasks.shrink_to_fit();
            }
        }
        self.ready.shrink();
        self.io.borrow_mut().shrink();
    }

    /// Snapshot of the registered tasks.
    pub(crate) fn tasks(&self) -> Vec<Rc<Task>> {
        self.tasks.borrow().iter().map(|(_, t)| t.clone()).collect()
    }

    pub(crate) fn task_count(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// [`task_by_key`](Self::task_by_key), or `None` when the registry is being
    /// changed right now (a wake-up from a destructor the registry runs).
    pub(crate) fn try_task_by_key(&self, key: usize, id: u64) -> Option<Rc<Task>> {
        let tasks = self.tasks.try_borrow().ok()?;
        tasks.get(key).filter(|t| t.id() == id).cloned()
    }

    /// The task registered under `key` if it still has greenlet id `id`.
    pub(crate) fn task_by_key(&self, key: usize, id: u64) -> Option<Rc<Task>> {
        self.tasks
            .borrow()
            .get(key)
            .filter(|t| t.id() == id)
            .cloned()
    }
}
