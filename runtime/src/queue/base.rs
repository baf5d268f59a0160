//! The blocking logic every queue shares, generic over the storage discipline.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::panic::Location;

use crate::park::WaitQueue;
use crate::task::Describe;

use super::storage::Store;
use super::wait::{Deadline, Stop, wait_step};

/// A queue's state: its items in a storage discipline `S`, the greenlets waiting to
/// put and to get, and the task count of `JoinableQueue`.
///
/// Invariants: never more than `maxsize` items (when bounded); every push notifies one
/// waiting getter and every pop one waiting putter, so an item never sits in the queue
/// while a getter sleeps un-notified (and room never stays unused while a putter does).
pub(super) struct Core<S> {
    items: RefCell<S>,
    /// 0: unbounded.
    maxsize: usize,
    closed: Cell<bool>,
    getters: WaitQueue,
    putters: WaitQueue,
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
struct Waiting<'a, S> {
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
        core.items.borrow().describe(core.maxsize, out);
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
            closed: Cell::new(false),
            getters: WaitQueue::new(),
            putters: WaitQueue::new(),
            counts_tasks: false,
            unfinished: Cell::new(0),
            all_done: WaitQueue::new(),
            kind,
            created_at,
        }
    }

    /// Makes every successful put add an unfinished task (for `JoinableQueue`).
    pub(super) fn counting_tasks(mut self) -> Self {
        self.counts_tasks = true;
        self
    }

    /// Puts `item`, waiting for room until `deadline`; gives the item back on failure.
    pub(super) fn put_until(
        &self,
        item: S::Item,
        deadline: Deadline,
    ) -> Result<(), (S::Item, Stop)> {
        loop {
            if self.closed.get() {
                return Err((item, Stop::Closed));
            }
            if !self.is_full() {
                self.items.borrow_mut().push(item);
                if self.counts_tasks {
                    self.unfinished.set(self.unfinished.get() + 1);
                }
                self.getters.notify_one();
                return Ok(());
            }
            let on = Waiting {
                core: self,
                op: Op::Put,
            };
            if let Err(stop) = wait_step(&self.putters, &on, deadline) {
                return Err((item, stop));
            }
        }
    }

    /// Takes the next item, waiting for one until `deadline`. A closed queue still
    /// gives out what it holds.
    pub(super) fn get_until(&self, deadline: Deadline) -> Result<S::Item, Stop> {
        loop {
            let item = self.items.borrow_mut().pop();
            if let Some(item) = item {
                self.putters.notify_one();
                return Ok(item);
            }
            if self.closed.get() {
                return Err(Stop::Closed);
            }
            wait_step(
                &self.getters,
                &Waiting {
                    core: self,
                    op: Op::Get,
                },
                deadline,
            )?;
        }
    }

    /// Closes the queue and wakes every waiter; `false` if it was already closed.
    pub(super) fn close(&self) -> bool {
        if self.closed.replace(true) {
            return false;
        }
        self.getters.notify_all();
        self.putters.notify_all();
        true
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub(super) fn len(&self) -> usize {
        self.items.borrow().len()
    }

    pub(super) fn is_full(&self) -> bool {
        self.maxsize != 0 && self.len() >= self.maxsize
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

    /// Direct access to the storage (for `Channel`, which withdraws offers).
    pub(super) fn with_items<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.items.borrow_mut())
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
