//! The blocking logic every queue shares, generic over the storage discipline.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::panic::Location;

use crate::park::{SlotQueue, WaitQueue, put_back, raise};
use crate::task::Describe;

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
    #[inline(always)]
    #[track_caller]
    pub(super) fn put_until(
        &self,
        item: S::Item,
        deadline: Deadline,
    ) -> Result<(), (S::Item, Stop)> {
        if self.closed.get() {
            return Err((item, Stop::Closed));
        }
        let item = if S::HANDS_OFF {
            let mut item = Some(item);
            if self.getters.serve(|slot| slot.set(item.take())) {
                self.accepted();
                return Ok(());
            }
            item.expect("`serve` found no getter, so the item is still ours")
        } else {
            item
        };
        if !self.is_full() {
            self.items.borrow_mut().push(item);
            self.accepted();
            if !S::HANDS_OFF {
                self.getters.serve(|_| {}); // it takes the best item when it runs
            }
            return Ok(());
        }
        let slot = Cell::new(Some(item));
        let on = Waiting {
            core: self,
            op: Op::Put,
        };
        loop {
            let at = match deadline.for_wait() {
                Ok(at) => at,
                Err(stop) => return Err((take_back(&slot), stop)),
            };
            let result = self.putters.wait(&slot, &on, at);
            let Some(item) = slot.take() else {
                // A getter took it: that wins over an interrupt that came after, which
                // stays pending for the next blocking point.
                if let Err(interrupt) = result {
                    put_back(interrupt);
                }
                return Ok(());
            };
            match result {
                Err(interrupt) => raise(interrupt), // the item goes with this frame
                Ok(_) if self.closed.get() => return Err((item, Stop::Closed)),
                Ok(_) => slot.set(Some(item)), // timed out: the next turn says so
            }
        }
    }

    /// Takes the next item, waiting for one until `deadline`. A closed queue still
    /// gives out what it holds.
    #[inline(always)]
    #[track_caller]
    pub(super) fn get_until(&self, deadline: Deadline) -> Result<S::Item, Stop> {
        let slot = Cell::new(None);
        let on = Waiting {
            core: self,
            op: Op::Get,
        };
        loop {
            if let Some(item) = self.take_available() {
                return Ok(item);
            }
            if self.closed.get() {
                return Err(Stop::Closed);
            }
            let result = self.getters.wait(&slot, &on, deadline.for_wait()?);
            if let Some(item) = slot.take() {
                // Handed over: as for a put, an interrupt that came after stays pending.
                if let Err(interrupt) = result {
                    put_back(interrupt);
                }
                return Ok(item);
            }
            if let Err(interrupt) = result {
                if !S::HANDS_OFF && self.len() > 0 {
                    // We may have been woken for an item we now leave: pass it on.
                    self.getters.serve(|_| {});
                }
                raise(interrupt);
            }
        }
    }

    /// An item that needs no waiting: the next stored one (letting the longest-waiting
    /// putter's item in, now that there is room), or, with nothing stored, a waiting
    /// putter's (a rendezvous). Always inlined into `get_until`, as the rest of the
    /// get path: left to itself LLVM stops inlining it once the park path grows, and
    /// the call then costs ping-pong about 4 ns a round trip (measured).
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

/// The item of a putter that did not deliver it (its slot still holds it).
fn take_back<T>(slot: &Cell<Option<T>>) -> T {
    slot.take()
        .expect("greenweave: an undelivered item is still in its putter's slot")
}
