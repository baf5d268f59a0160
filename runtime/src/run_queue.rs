//! The hub's run queue: the ready tasks, first come first served.
//!
//! Every yield pushes one task and pops one, so this is on the hottest path the
//! runtime has. It is a ring of strong task pointers (`Rc::into_raw`) with a
//! power-of-two capacity: a push or a pop is a masked index, a store or a load and
//! two counter updates, with no borrow flag (unlike `RefCell<VecDeque<_>>`) and no
//! wrap-around branch.
//!
//! Invariants: `slots.len()` is a power of two (or zero before the first push);
//! the `len` slots from `head` (wrapping) hold pointers that each own one strong count
//! of their task; no reference into `slots` outlives a method call, and no method
//! calls out to code that could reach the queue again while it holds one.

use std::cell::{Cell, UnsafeCell};
use std::rc::Rc;

use crate::task::Task;

pub(crate) struct RunQueue {
    slots: UnsafeCell<Vec<*const Task>>,
    head: Cell<usize>,
    len: Cell<usize>,
}

impl RunQueue {
    pub(crate) const fn new() -> RunQueue {
        RunQueue {
            slots: UnsafeCell::new(Vec::new()),
            head: Cell::new(0),
            len: Cell::new(0),
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.get()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// Slots in the ring.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        // SAFETY: as in `push`.
        unsafe { (*self.slots.get()).len() }
    }

    /// Adds `task` at the back.
    #[inline]
    pub(crate) fn push(&self, task: Rc<Task>) {
        // SAFETY: single-threaded (the hub is not `Sync`), and no reference into the
        // slots is live outside these methods (module invariant).
        let slots = unsafe { &mut *self.slots.get() };
        let len = self.len.get();
        if len == slots.len() {
            self.grow(slots);
        }
        let mask = slots.len() - 1;
        slots[(self.head.get() + len) & mask] = Rc::into_raw(task);
        self.len.set(len + 1);
    }

    /// Puts `task` back at the front (one just [`pop`](Self::pop)ped).
    #[cold]
    pub(crate) fn push_front(&self, task: Rc<Task>) {
        // SAFETY: as in `push`.
        let slots = unsafe { &mut *self.slots.get() };
        if self.len.get() == slots.len() {
            self.grow(slots);
        }
        let head = self.head.get().wrapping_sub(1) & (slots.len() - 1);
        slots[head] = Rc::into_raw(task);
        self.head.set(head);
        self.len.set(self.len.get() + 1);
    }

    /// Takes the task at the front.
    #[inline]
    pub(crate) fn pop(&self) -> Option<Rc<Task>> {
        let len = self.len.get();
        if len == 0 {
            return None;
        }
        // SAFETY: as in `push`.
        let slots = unsafe { &*self.slots.get() };
        let head = self.head.get();
        let ptr = slots[head];
        self.head.set((head + 1) & (slots.len() - 1));
        self.len.set(len - 1);
        // SAFETY: an occupied slot owns one strong count of a live task (module
        // invariant), which we take over; the slot is now outside the occupied range.
        Some(unsafe { Rc::from_raw(ptr) })
    }

    /// Hints the processor to fetch what the next two runs touch first: the stack top
    /// of the task at the front, which runs next, and the greenlet record of the one
    /// after it, which the same call one run later reads to find its stack top (see
    /// `Greenlet::prefetch_stack`). Called as the hub switches to the task before them,
    /// whose run gives the fetches time to land.
    #[inline]
    pub(crate) fn prefetch_next(&self) {
        let len = self.len.get();
        if len == 0 {
            return;
        }
        // SAFETY: as in `push`.
        let slots = unsafe { &*self.slots.get() };
        let head = self.head.get();
        // SAFETY: an occupied slot owns a strong count of a live task (module
        // invariant), and the borrow ends within this call.
        unsafe { &*slots[head] }.greenlet.prefetch_stack();
        if len > 1 {
            let second = slots[(head + 1) & (slots.len() - 1)];
            // SAFETY: as above.
            unsafe { &*second }.greenlet.prefetch_record();
        }
    }

    /// Doubles the capacity (at least 16), moving the occupied slots to the front.
    #[cold]
    fn grow(&self, slots: &mut Vec<*const Task>) {
        let old = std::mem::take(slots);
        let cap = (old.len() * 2).max(16);
        slots.reserve_exact(cap);
        let head = self.head.get();
        slots.extend(old[head..].iter().chain(&old[..head]));
        slots.resize(cap, std::ptr::null());
        self.head.set(0);
    }

    /// Forgets every queued task without dropping it (the hub abandons its tasks at
    /// thread exit when it cannot end them: their stacks may point into the hub).
    pub(crate) fn abandon(&self) {
        self.len.set(0);
        self.head.set(0);
    }

    /// Gives back most of the ring once it is mostly empty (after a burst), moving the
    /// occupied slots to the front of a smaller one. Called between runs, never from
    /// inside a push or pop.
    pub(crate) fn shrink(&self) {
        // SAFETY: as in `push`.
        let slots = unsafe { &mut *self.slots.get() };
        let len = self.len.get();
        if !crate::trim::oversized(slots.len(), len) {
            return;
        }
        let cap = (len * 2).max(16).next_power_of_two();
        let head = self.head.get();
        let mask = slots.len() - 1;
        let mut smaller = Vec::with_capacity(cap);
        smaller.extend((0..len).map(|i| slots[(head + i) & mask]));
        smaller.resize(cap, std::ptr::null());
        *slots = smaller;
        self.head.set(0);
    }
}

impl Drop for RunQueue {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Rc<Task> {
        Rc::new(Task::new(greenweave_greenlet::current(), None))
    }

    #[test]
    fn first_in_first_out_across_growth_and_wrap_around() {
        let q = RunQueue::new();
        let tasks: Vec<Rc<Task>> = (0..40).map(|_| task()).collect();
        // Wrap the ring before it grows: push 10, pop 6, then push the rest.
        for t in &tasks[..10] {
            q.push(t.clone());
        }
        for t in &tasks[..6] {
            assert!(Rc::ptr_eq(&q.pop().unwrap(), t));
        }
        for t in &tasks[10..] {
            q.push(t.clone());
        }
        assert_eq!(q.len(), 34);
        for t in &tasks[6..] {
            assert!(Rc::ptr_eq(&q.pop().unwrap(), t));
        }
        assert!(q.pop().is_none());
        assert!(q.is_empty());
        for t in &tasks {
            assert_eq!(Rc::strong_count(t), 1, "the queue gave back every count");
        }
    }

    #[test]
    fn shrinking_after_a_burst_keeps_the_queued_tasks_in_order() {
        let q = RunQueue::new();
        let tasks: Vec<Rc<Task>> = (0..8200).map(|_| task()).collect();
        let mut expected = std::collections::VecDeque::new();
        for t in &tasks[..8000] {
            q.push(t.clone());
            expected.push_back(t.clone());
        }
        let capacity = || q.capacity();
        assert_eq!(capacity(), 8192);
        // Leave 20 queued, straddling the end of the ring.
        for _ in 0..7990 {
            assert!(Rc::ptr_eq(
                &q.pop().unwrap(),
                &expected.pop_front().unwrap()
            ));
        }
        for t in &tasks[8000..] {
            q.push(t.clone());
            expected.push_back(t.clone());
        }
        for _ in 0..190 {
            assert!(Rc::ptr_eq(
                &q.pop().unwrap(),
                &expected.pop_front().unwrap()
            ));
        }
        assert_eq!(q.len(), 20);
        q.shrink();
        assert_eq!(capacity(), 64);
        while let Some(t) = expected.pop_front() {
            assert!(Rc::ptr_eq(&q.pop().unwrap(), &t));
        }
        assert!(q.is_empty());
        q.shrink();
        assert_eq!(capacity(), 64, "a small ring is left alone");
        for t in &tasks {
            assert_eq!(Rc::strong_count(t), 1, "the queue gave back every count");
        }
    }

    #[test]
    fn dropping_the_queue_releases_its_tasks() {
        let t = task();
        let q = RunQueue::new();
        q.push(t.clone());
        q.push(t.clone());
        assert_eq!(Rc::strong_count(&t), 3);
        drop(q);
        assert_eq!(Rc::strong_count(&t), 1);
    }
}
