//! Values that must never be dropped, kept for the life of the process: the records
//! of greenlets that will never run again but whose stacks may still refer to them,
//! or whose drop could resume them or run their destructors (what a forked child
//! leaves behind of its parent's greenlets, see `fork`; greenlets abandoned at a
//! thread's exit, see `thread_exit`).
//!
//! Reachable, not merely forgotten: a leak checker (Valgrind's memcheck, which the CI
//! runs every runtime test under, forked children included) then reports them as
//! kept, not lost, and a real leak stays visible. The list is lock-free: it is filled
//! inside a forked child's fork handler too, where a lock held by a thread of the
//! parent would never be released.

use std::any::Any;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// One kept value, linked to the ones kept before it.
struct Node {
    _value: Box<dyn Any>,
    next: *mut Node,
}

/// The most recently kept value (a push-only list; nodes are never freed).
static HEAD: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());

/// Keeps `value` for the life of the process, never dropping it (`coop::keep_for_ever`
/// for other crates: the monkey layer's futex table keeps its waiters of a forked
/// child's parent with it). Lock-free: callable in a fork handler.
pub fn keep<T: 'static>(value: T) {
    let mut node = Box::new(Node {
        _value: Box::new(value),
        next: ptr::null_mut(),
    });
    let mut head = HEAD.load(Ordering::Acquire);
    loop {
        node.next = head;
        let at: *mut Node = &mut *node;
        match HEAD.compare_exchange_weak(head, at, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // Published: the list owns the node now.
                Box::leak(node);
                return;
            }
            Err(now) => head = now,
        }
    }
}
