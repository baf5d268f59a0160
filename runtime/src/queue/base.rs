//! The blocking logic every queue shares, generic over the storage discipline.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::panic::Location;
use std::pin::{Pin, pin};

use crate::hub::Here;
use crate::park::{Record, SlotQueue, WaitQueue, put_back, raise};
use crate::task::{Describe, Interrupt, Wake};

use super::storage::{Holds, Store};
use super::wait::{Deadline, Stop, wait_step};

/// A queue's state: its items in a storage discipline `S`, the greenlets waiting to
/// put and to get, and the task count of `JoinableQueue`.
///
/// Invariants: never more than `maxsize` items (when bounded); every push notifies one
/// waiting getter and every pop one waiting putter, so an item never sits in the queue
/// while a getter sleeps un-notified (and room never stays unused while a putter does).
pub(super) struct Core<S: Holds> {
    items: RefCell<S>,
    /// 0: unbounded (unless `rendezvous`).
    maxsize: usize,
    /// Stores nothing: every item goes from a putter's hand to a getter's.
    rendezvous: bool,
    closed: Cell<bool>,
    /// Getters parked on an empty queue, each with a slot a putter fills.
    getters: SlotQueue<S::Item>,
    /// Putters parked on a full queue, each with its item in a slot a getter empties.
    putters: SlotQueue<S::Item>,
    /// Whether puts count as unfinished tasks (only `JoinableQueue`'s do).
    counts_tasks: bool,
    /// Items put and not yet marked done (`JoinableQueue::task_done`).
    unfinished: Cell<usize>,
    all_done: WaitQueue,
    kind: &'static str,
    created_at: &'static Location<'static>,
}

/// What a greenlet blocked on a queue waits for, for deadlock reports: `get on Queue
/// created at src/main.rs:12:13 (empty, maxsize 10)`.
struct Waiting<'a, S: Holds> {
    core: &'a Core<S>,
    op: Op,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Get,
    Join,
}

impl<S: Store> Describe for Waiting<'_, S> {
    fn kind(&self) -> crate::stats::ParkKind {
        crate::stats::ParkKind::Queue
    }

    fn describe(&self, out: &mut String) {
        let core = self.core;
        out.push_str(match self.op {
            Op::Put => "put on ",
            Op::Get => "get on ",
            Op::Join => "join on ",
        });
        core.describe_self(out);
        out.push_str(" (");
        if self.op == Op::Join {
            let _ = write!(out, "{} unfinished tasks, ", core.unfinished.get());
        }
        if core.rendezvous {
            out.push_str(match self.op {
                Op::Put => "waiting for a getter",
                _ => "no putter waiting",
            });
        } else {
            core.items.borrow().describe(core.maxsize, out);
        }
        out.push(')');
    }
}

impl<S: Store> Core<S> {
    pub(super) fn new(
        maxsize: usize,
        kind: &'static str,
        created_at: &'static Location<'static>,
    ) -> Self {
        Core {
            items: RefCell::new(S::new()),
            maxsize,
            rendezvous: false,
            closed: Cell::new(false),
            getters: SlotQueue::new(),
            putters: SlotQueue::new(),
            counts_tasks: false,
            unfinished: Cell::new(0),
            all_done: WaitQueue::new(),
            kind,
            created_at,
        }
    }

    /// Makes the queue a rendezvous (`Channel`): it stores nothing, so a put waits
    /// until a getter takes its item.
    pub(super) fn rendezvous(mut self) -> Self {
        self.rendezvous = true;
        self
    }

    /// Makes every successful put add an unfinished task (for `JoinableQueue`).
    pub(super) fn counting_tasks(mut self) -> Self {
        self.counts_tasks = true;
        self
    }

    /// Puts `item`, waiting for room until `deadline`; gives the item back on failure.
    ///
    /// For FIFO storage a getter already waiting gets the item handed straight into
    /// its slot (nothing is stored while such getters wait); other storage stores the
    /// item and wakes a getter to take the best one. A putter that has to wait leaves
    /// the item in its own slot, and the getter that makes room moves it into the
    /// queue (or, for a rendezvous, takes it) as it wakes the putter; so a put that
    /// returns `Ok` has always delivered, and a failed one gives back an item nobody
    /// received.
    ///
    /// A thin shell, always inlined into the caller: the item's slot, the wait's
    /// record and the switch stay in the caller's frame; the rest is two steps out
    /// of line, [`put_first`](Self::put_first) before the first switch and
    /// [`put_again`](Self::put_again) after each one (see `park::parking`).
    #[inline(always)]
    #[track_caller]
    pub(super) fn put_until(
        &self,
        item: S::Item,
        deadline: Deadline,
    ) -> Result<(), (S::Item, Stop)> {
        let here = Here::new();
        let slot = Cell::new(Some(item));
        let on = Waiting {
            core: self,
            op: Op::Put,
        };
        let mut record = pin!(Record::new());
        let mut step = self.put_first(&here, &slot, &on, record.as_mut(), deadline);
        loop {
            match step {
                Step::Done => return Ok(()),
                Step::Stopped(stop) => return Err((take_back(&slot), stop)),
                Step::Park => record.as_ref().switch(),
            }
            step = self.put_again(&here, &slot, &on, record.as_mut(), deadline);
        }
    }

    /// What [`put_until`](Self::put_until) does before it first switches: the fast
    /// paths, or the start of a wait. The item is in `slot`, and still there unless
    /// this returns `Done`.
    #[inline(never)]
    #[track_caller]
    fn put_first<'a>(
        &'a self,
        here: &'a Here,
        slot: &'a Cell<Option<S::Item>>,
        on: &'a Waiting<'a, S>,
        record: Pin<&mut Record<'a>>,
        deadline: Deadline,
    ) -> Step {
        if self.closed.get() {
            return Step::Stopped(Stop::Closed);
        }
        if S::HANDS_OFF && self.getters.serve(|theirs| theirs.set(slot.take())) {
            self.accepted();
            return Step::Done;
        }
        if !self.is_full() {
            self.items.borrow_mut().push(take_back(slot));
            self.accepted();
            if !S::HANDS_OFF {
                self.getters.serve(|_| {}); // it takes the best item when it runs
            }
            return Step::Done;
        }
        self.put_wait(here, slot, on, record, deadline)
    }

    /// What [`put_until`](Self::put_until) does after each switch: the end of that
    /// wait. Small, as it runs after every one; a wait that did not deliver the item
    /// goes on in [`put_not_taken`](Self::put_not_taken).
    #[inline(never)]
    #[track_caller]
    fn put_again<'a>(
        &'a self,
        here: &'a Here,
        slot: &'a Cell<Option<S::Item>>,
        on: &'a Waiting<'a, S>,
        mut record: Pin<&mut Record<'a>>,
        deadline: Deadline,
    ) -> Step {
        let result = record.as_mut().finish();
        if slot_is_empty(slot) {
            // A getter took it: that wins over an interrupt that came after, which
            // stays pending for the next blocking point.
            if let Some(Err(interrupt)) = result {
                put_back(interrupt);
            }
            return Step::Done;
        }
        self.put_not_taken(here, slot, on, record, deadline, result)
    }

    /// A putter woken with its item still in `slot`: an interrupt unwinds (the item
    /// goes with the caller's frame), a closed queue ends the put, and otherwise (a
    /// timeout, which the next wait reports) it waits again.
    #[inline(never)]
    #[track_caller]
    fn put_not_taken<'a>(
        &'a self,
        here: &'a Here,
        slot: &'a Cell<Option<S::Item>>,
        on: &'a Waiting<'a, S>,
        record: Pin<&mut Record<'a>>,
        deadline: Deadline,
        result: Option<Result<Wake, Interrupt>>,
    ) -> Step {
        match result {
            Some(Err(interrupt)) => raise(interrupt),
            Some(Ok(_)) if self.closed.get() => Step::Stopped(Stop::Closed),
            _ => self.put_wait(here, slot, on, record, deadline),
        }
    }

    /// A putter's wait for room: started, or why there is none.
    #[inline(always)]
    #[track_caller]
    fn put_wait<'a>(
        &'a self,
        here: &'a Here,
        slot: &'a Cell<Option<S::Item>>,
        on: &'a Waiting<'a, S>,
        record: Pin<&mut Record<'a>>,
        deadline: Deadline,
    ) -> Step {
        let at = match deadline.for_wait() {
            Ok(at) => at,
            Err(stop) => return Step::Stopped(stop),
        };
        if let Err(interrupt) = self.putters.block(record, here, slot, on, at) {
            raise(interrupt); // the item goes with the caller's frame
        }
        Step::Park
    }

    /// Takes the next item, waiting for one until `deadline`. A closed queue still
    /// gives out what it holds.
    ///
    /// A thin shell, as [`put_until`](Self::put_until) is, around
    /// [`get_first`](Self::get_first) and [`get_again`](Self::get_again).
    #[inline(always)]
    #[track_caller]
    pub(super) fn get_until(&self, deadline: Deadline) -> Result<S::Item, Stop> {
        let here = Here::new();
        let slot = Cell::new(None);
        let on = Waiting {
            core: self,
            op: Op::Get,
        };
        let mut record = pin!(Record::new());
        let mut step = self.get_first(&here, &slot, &on, record.as_mut(), deadline);
        loop {
            match step {
                Step::Done => return Ok(take_got(&slot)),
                Step::Stopped(stop) => return Err(stop),
                Step::Park => record.as_ref().switch(),
            }
            step = self.get_again(&here, &slot, &on, record.as_mut(), deadline);
        }
    }

    /// What [`get_until`](Self::get_until) does before it first switches, and again
    /// after a wait that brought nothing: take an item if one needs no waiting (into
    /// `slot`: `Done`), or start a wait.
    #[inline(never)]
    #[track_caller]
    fn get_first<'a>(
        &'a self,
        here: &'a Here,
        slot: &'a Cell<Option<S::Item>>,
        on: &'a Waiting<'a, S>,
        record: Pin<&mut Record<'a>>,
        deadline: Deadline,
    ) -> Step {
        if let Some(item) = self.take_available() {
            slot.set(Some(item));
            return Step::Done;
        }
        if self.closed.get() {
            return Step::Stopped(Stop::Closed);
        }
        let at = match deadline.for_wait() {
            Ok(at) => at,
            Err(stop) => return Step::Stopped(stop),
        };
        if let Err(interrupt) = self.getters.block(record, here, slot, on, at) {
            raise(interrupt);
        }
        Step::Park
    }

    /// What [`get_until`](Self::get_until) does after each switch: the end of that
    /// wait, `Done` with the item handed over into `slot`, or another try. Small, as
    /// it runs after every wait.
    #[inline(never)]
    #[track_caller]
    fn get_again<'a>(
        &'a self,
        here: &'a Here,
        slot: &'a Cell<Option<S::Item>>,
        on: &'a Waiting<'a, S>,
        mut record: Pin<&mut Record<'a>>,
        deadline: Deadline,
    ) -> Step {
        let result = record.as_mut().finish();
        let Some(item) = slot.take() else {
            if let Some(Err(interrupt)) = result {
                self.get_interrupted(interrupt);
            }
            return self.get_first(here, slot, on, record, deadline);
        };
        slot.set(Some(item));
        // Handed over: as for a put, an interrupt that came after stays pending.
        if let Some(Err(interrupt)) = result {
            put_back(interrupt);
        }
        Step::Done
    }

    /// Delivers `interrupt` to a getter woken without an item.
    #[cold]
    #[inline(never)]
    fn get_interrupted(&self, interrupt: Interrupt) -> ! {
        if !S::HANDS_OFF && self.len() > 0 {
            // We may have been woken for an item we now leave: pass it on.
            self.getters.serve(|_| {});
        }
        raise(interrupt)
    }

    /// An item that needs no waiting: the next stored one (letting the longest-waiting
    /// putter's item in, now that there is room), or, with nothing stored, a waiting
    /// putter's (a rendezvous). Always inlined into the get steps: left to itself LLVM
    /// once stopped inlining it into the get path, and the call then cost ping-pong
    /// about 4 ns a round trip (measured).
    #[inline(always)]
    fn take_available(&self) -> Option<S::Item> {
        let stored = self.items.borrow_mut().pop();
        let mut theirs = None;
        self.putters.serve(|slot| theirs = slot.take());
        let Some(item) = stored else {
            theirs.as_ref()?;
            self.accepted();
            return theirs;
        };
        if let Some(theirs) = theirs {
            self.items.borrow_mut().push(theirs);
            self.accepted();
        }
        Some(item)
    }

    /// Counts an item into the queue (or handed to a getter) for `JoinableQueue`.
    fn accepted(&self) {
        if self.counts_tasks {
            self.unfinished.set(self.unfinished.get() + 1);
        }
    }

    /// Closes the queue and wakes every waiter; `false` if it was already closed.
    pub(super) fn close(&self) -> bool {
        if self.closed.replace(true) {
            return false;
        }
        self.getters.wake_all();
        self.putters.wake_all();
        true
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub(super) fn len(&self) -> usize {
        self.items.borrow().len()
    }

    pub(super) fn is_full(&self) -> bool {
        self.rendezvous || (self.maxsize != 0 && self.len() >= self.maxsize)
    }

    pub(super) fn maxsize(&self) -> Option<usize> {
        (self.maxsize != 0).then_some(self.maxsize)
    }

    /// Greenlets blocked in get (not counting those woken and not yet running).
    pub(super) fn waiting_getters(&self) -> usize {
        self.getters.len()
    }

    /// Greenlets blocked in put (not counting those woken and not yet running).
    pub(super) fn waiting_putters(&self) -> usize {
        self.putters.len()
    }

    pub(super) fn unfinished(&self) -> usize {
        self.unfinished.get()
    }

    /// Marks one item as processed; `false` (and no change) if none was unfinished.
    pub(super) fn task_done(&self) -> bool {
        let Some(left) = self.unfinished.get().checked_sub(1) else {
            return false;
        };
        self.unfinished.set(left);
        if left == 0 {
            self.all_done.notify_all();
        }
        true
    }

    /// Waits until every item put has been marked done, or `deadline`.
    #[track_caller]
    pub(super) fn join_until(&self, deadline: Deadline) -> Result<(), Stop> {
        while self.unfinished.get() > 0 {
            wait_step(
                &self.all_done,
                &Waiting {
                    core: self,
                    op: Op::Join,
                },
                deadline,
            )?;
        }
        Ok(())
    }

    /// `Queue created at src/main.rs:12:13`.
    pub(super) fn describe_self(&self, out: &mut String) {
        let _ = write!(out, "{} created at {}", self.kind, self.created_at);
    }

    pub(super) fn created_at(&self) -> &'static Location<'static> {
        self.created_at
    }

    pub(super) fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.kind)
            .field("len", &self.len())
            .field("maxsize", &self.maxsize())
            .field("closed", &self.is_closed())
            .field("created_at", &format_args!("{}", self.created_at))
            .finish_non_exhaustive()
    }
}

/// What a step of a queue call's shell tells it (one byte, returned in a register):
/// the call is done (a get's item in its slot) or stopped (a put's item still in its
/// slot), or it switches away (its record holds the wait) and calls the next step
/// once back.
#[derive(Clone, Copy)]
enum Step {
    Done,
    Stopped(Stop),
    Park,
}

/// Whether a putter's slot was emptied (its item delivered).
#[inline(always)]
fn slot_is_empty<T>(slot: &Cell<Option<T>>) -> bool {
    let item = slot.take();
    let empty = item.is_none();
    slot.set(item);
    empty
}

/// The item a get step left in the caller's slot with `Done`.
#[inline(always)]
fn take_got<T>(slot: &Cell<Option<T>>) -> T {
    slot.take()
        .expect("greenweave: a get that is done left its item in its slot")
}

/// The item of a putter that did not deliver it (its slot still holds it).
#[inline(always)]
fn take_back<T>(slot: &Cell<Option<T>>) -> T {
    slot.take()
        .expect("greenweave: an undelivered item is still in its putter's slot")
}
