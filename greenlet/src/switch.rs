//! Symmetric switching on top of corosensei's asymmetric coroutines.
//!
//! # The resume chain
//!
//! corosensei offers two moves: `resume` (enter a coroutine, nesting it on top of the
//! caller) and `suspend` (leave the running coroutine, returning to whoever resumed
//! it). At any moment the greenlets of a thread that are not suspended form a chain:
//!
//! ```text
//! main ──resume──▶ A ──resume──▶ B (running)
//! ```
//!
//! `main` (the thread's own stack) is always at the bottom. Every greenlet below the
//! running one is [`State::Resuming`]: its stack is blocked inside
//! `Coroutine::resume`, and that call holds the coroutine object of the greenlet
//! above it. Greenlets off the chain are [`State::Suspended`] (parked in
//! `Yielder::suspend`, their coroutine object back in [`Inner::coroutine`]),
//! [`State::Unstarted`] or [`State::Dead`].
//!
//! # Invariants
//!
//! 1. Exactly one greenlet per thread is `Running`, and the thread state's `current`
//!    points at it.
//! 2. Only the greenlet that resumes another touches its coroutine, and only while
//!    the other is `Unstarted` or `Suspended` (then resumes it in place, in its
//!    `UnsafeCell`); while a greenlet is on the chain nobody else can reach its
//!    coroutine, so it is never resumed twice or dropped while running.
//! 3. A `Transfer` leaving a coroutine (suspend or return) is always aimed at a
//!    greenlet on the chain below it, or (on return) at the finished greenlet's first
//!    live parent, which may be off the chain.
//! 4. A greenlet's yielder pointer is only dereferenced by that greenlet while it runs,
//!    i.e. while its coroutine body (which owns the yielder) is live on its stack.
//! 5. A greenlet's `inbox` holds the payload of the switch aimed at it, from the moment
//!    that switch starts until the greenlet runs and takes it: at most one at a time,
//!    since only a transfer toward a greenlet fills it and that greenlet empties it
//!    before it can be switched to again. An empty inbox means `()`. Keeping the payload
//!    out of the `Transfer` makes the `Transfer` one word, which corosensei passes in a
//!    register.
//! 6. The target of a `Transfer` is alive while the transfer is under way, without the
//!    transfer owning it: a greenlet on the chain is held by the frame that resumed it
//!    (the caller's handle in `switch_to`, an `Rc` in `switch_slow`) or, for main, by
//!    the thread state; the parent a finished greenlet returns to is held through the
//!    finished greenlet's parent links, and the finished greenlet by its resumer.
//!    Whoever receives a transfer for someone else takes a strong reference before
//!    letting anything else go.
//! 7. A greenlet on the chain knows its depth: main is 0 and `resume` gives its target
//!    the resumer's depth plus one. The chain holds one greenlet per depth, so the
//!    `Resuming` greenlet one below the running one's depth is the one that resumed
//!    it (`Greenlet::is_one_switch_away` relies on this). Off the chain the depth is
//!    stale and unused.
//!
//! # Cost
//!
//! `switch(target)` from the running greenlet `cur` is:
//!
//! - `target` is `cur`: no switch at all;
//! - `target` is off the chain (suspended or unstarted): one nested `resume`;
//! - `target` is the greenlet that resumed `cur`: one `suspend`;
//! - `target` is further down the chain: one `suspend` per level, each intermediate
//!   greenlet passing the transfer on (and becoming `Suspended` itself).
//!
//! So the handoffs that matter (a greenlet and the hub that runs it, two greenlets
//! ping-ponging) cost one corosensei switch each way.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use corosensei::{Coroutine, CoroutineResult};

use crate::error::GreenletExit;
use crate::greenlet::{Inner, State};
use crate::stack::PooledStack;
use crate::sys;
use crate::thread;
use crate::value::Value;

/// What a switch carries: a value, or a panic payload to raise at the other end.
pub(crate) enum Payload {
    Value(Value),
    Throw(Box<dyn Any + Send>),
}

/// The greenlet a switch is for; the payload waits in the target's `inbox`. One word,
/// so corosensei hands it over in a register instead of through memory.
///
/// The pointer is borrowed, not owned: the target is kept alive by whoever holds it
/// on the chain (invariant 6), so no reference count changes hands on a switch.
pub(crate) struct Transfer {
    target: *const Inner,
}

impl Transfer {
    #[inline(always)]
    fn to(target: &Inner) -> Transfer {
        Transfer { target }
    }
}

/// Resuming a greenlet carries nothing: whoever resumes a greenlet resumes it for
/// itself (the transfer it acts on is always aimed at the greenlet it resumes), so
/// a greenlet coming back from `suspend` knows it is the target. With a unit input,
/// corosensei's `Result<(), ForcedUnwind>` fits in a register too.
pub(crate) type Yielder = corosensei::Yielder<(), Transfer>;
pub(crate) type Coro = Coroutine<(), Transfer, Transfer, PooledStack>;

/// A new strong reference to a greenlet that a [`Transfer`] points at.
///
/// # Safety
///
/// `ptr` must point at a live `Inner` allocated by an `Rc` (invariant 6 says which
/// transfer targets are live).
unsafe fn upgrade(ptr: *const Inner) -> Rc<Inner> {
    // SAFETY: the caller guarantees `ptr` came from a live `Rc<Inner>`, so adding a
    // strong count and taking ownership of it is sound.
    unsafe {
        Rc::increment_strong_count(ptr);
        Rc::from_raw(ptr)
    }
}

/// Builds the coroutine that runs `f` as a greenlet's body.
pub(crate) fn new_coroutine<F, R>(stack: PooledStack, f: F) -> Coro
where
    F: FnOnce(Value) -> R + 'static,
    R: Any,
{
    Coroutine::with_stack(stack, move |yielder: &Yielder, ()| -> Transfer {
        // The body keeps its own greenlet alive for as long as it runs or is
        // suspended, whoever else lets go of it.
        // SAFETY: `resume` made this greenlet current, and the frame that resumes
        // it holds it alive (invariant 6).
        let me = unsafe { upgrade(thread::current_ptr()) };
        me.yielder.set(yielder);
        let first_payload = me.inbox.take().unwrap_or(Payload::Value(Value::unit()));
        let outcome = match first_payload {
            Payload::Value(v) => panic::catch_unwind(AssertUnwindSafe(move || Value::new(f(v)))),
            // Thrown into before it ever ran: it dies without running `f`.
            Payload::Throw(e) => Err(e),
        };
        let payload = match outcome {
            // `()` leaves the parent's inbox empty, which means `()` (invariant 5): the
            // parent then has nothing to take out and drop.
            Ok(v) if v.is::<()>() => None,
            Ok(v) => Some(Payload::Value(v)),
            Err(e) => Some(match e.downcast::<GreenletExit>() {
                Ok(exit) => Payload::Value(Value::new(*exit)),
                Err(e) => Payload::Throw(e),
            }),
        };
        // No thread-local access from here on: during thread exit corosensei may be
        // force-unwinding this stack after our thread state is gone.
        let target = live_parent(&me);
        put_inbox(&target, payload);
        // `me` goes now; the frame that resumed us still holds it (invariant 6),
        // and `target` is held through `me`'s parent links.
        Transfer::to(&target)
    })
}

/// The first ancestor of `g` that is not dead (a main greenlet never is).
fn live_parent(g: &Inner) -> Rc<Inner> {
    let mut p = g
        .parent
        .borrow()
        .as_ref()
        .map(|p| p.inner().clone())
        .expect("a greenlet with a stack has a parent");
    while p.state.get() == State::Dead {
        let next = p
            .parent
            .borrow()
            .as_ref()
            .map(|g| g.inner().clone())
            .expect("a dead greenlet has a parent");
        p = next;
    }
    p
}

/// Switches from the running greenlet to `target`; returns (or raises) what comes back.
///
/// Inlined into the caller, so that the two common cases run corosensei's switch in
/// the caller's own frame: switching back to the greenlet that resumed us is one
/// `suspend`, and switching to a suspended or unstarted greenlet is one `resume`. With
/// no frame in between, the register saves of the switch merge with the caller's
/// (hoisted out of its loops) and the return-stack buffer stays balanced. Everything
/// else (a walk down the chain, a dead target, a switch to ourselves) is `switch_slow`.
#[inline(always)]
pub(crate) fn switch_to(target: &Rc<Inner>, payload: Option<Payload>) -> Value {
    let cur_ptr = thread::current_ptr();
    // SAFETY: the running greenlet outlives this call: it is kept alive by its resumer's
    // frame (or by the thread state for main) for as long as it runs or is on the chain.
    let cur = unsafe { &*cur_ptr };
    put_inbox(target, payload);
    match switch_fast(cur, target) {
        Back::Here => take_inbox(cur),
        Back::Elsewhere(next) => switch_slow(cur, next),
    }
}

/// [`switch_to`] with a unit payload and what comes back dropped, for a caller that
/// switches only to be resumed later (the runtime's blocking calls): only the switch
/// itself is inline; a value that comes back is dropped out of line, a thrown payload
/// still unwinds from here.
#[inline(always)]
pub(crate) fn switch_to_discarding(target: &Rc<Inner>) {
    let cur_ptr = thread::current_ptr();
    // SAFETY: as in `switch_to`.
    let cur = unsafe { &*cur_ptr };
    match switch_fast(cur, target) {
        Back::Here => {
            // SAFETY: only this thread touches the inbox, and no reference to it is live.
            if unsafe { (*cur.inbox.as_ptr()).is_some() } {
                discard_payload(cur);
            }
        }
        Back::Elsewhere(next) => switch_slow_discarding(cur, next),
    }
}

/// Takes the payload switched to `cur` and drops it (a thrown one unwinds).
#[inline(never)]
fn discard_payload(cur: &Inner) {
    drop(take_payload(cur));
}

/// [`switch_slow`], dropping what comes back.
#[inline(never)]
fn switch_slow_discarding(cur: &Inner, target: Rc<Inner>) {
    drop(switch_slow(cur, target));
}

/// Where control went once a switch of `cur` came back to its frame.
enum Back {
    /// To `cur`: it runs again, its inbox holding what was switched to it.
    Here,
    /// To this greenlet, for [`switch_slow`] to carry on with.
    Elsewhere(Rc<Inner>),
}

/// The switch both entries share: the common cases (one `suspend`, one `resume`)
/// inline, the others sent to [`switch_slow`]. The payload is in `target`'s inbox.
#[inline(always)]
fn switch_fast(cur: &Inner, target: &Rc<Inner>) -> Back {
    let back = match target.state.get() {
        State::Resuming => {
            suspending(cur);
            // SAFETY: as in switch_slow's `Resuming` arm.
            unsafe { &*cur.yielder.get() }.suspend(Transfer::to(target));
            // Whoever resumed us did so for us, and made us `Running` and current.
            return Back::Here;
        }
        // SAFETY: `target` is off the chain and our caller's handle holds it for this
        // whole call (invariants 2 and 6).
        State::Suspended | State::Unstarted => unsafe { resume(cur, target) },
        State::Running | State::Dead => return Back::Elsewhere(target.clone()),
    };
    if std::ptr::eq(back.target, cur) {
        return Back::Here;
    }
    // SAFETY: a transfer that reaches us is aimed at a live greenlet (invariant 6).
    Back::Elsewhere(unsafe { upgrade(back.target) })
}

/// Bytes below the stack pointer a greenlet left at that [`prefetch_stack`] brings in:
/// where the switch back pushes, and the calls it makes first.
const PREFETCH_BELOW: usize = 128;
/// Bytes above it: the registers the switch saved and the frames it returns through.
const PREFETCH_ABOVE: usize = 512;
/// Cache line size on the processors we run on.
const CACHE_LINE: usize = 64;

/// Prefetches the stack lines around where `g` left off (see `Greenlet::prefetch_stack`).
#[inline]
pub(crate) fn prefetch_stack(g: &Inner) {
    let sp = g.left_at.get();
    if sp != 0 {
        prefetch_lines(sp.saturating_sub(PREFETCH_BELOW), sp + PREFETCH_ABOVE);
    }
}

/// Prefetches the lines of `g`'s record (see `Greenlet::prefetch_record`).
#[inline]
pub(crate) fn prefetch_record(g: &Inner) {
    let start = std::ptr::from_ref(g) as usize;
    prefetch_lines(start, start + std::mem::size_of::<Inner>());
}

/// Prefetches every cache line that holds a byte of `from..to`.
#[inline(always)]
fn prefetch_lines(from: usize, to: usize) {
    let mut line = from & !(CACHE_LINE - 1);
    while line < to {
        sys::prefetch(line);
        line += CACHE_LINE;
    }
}

/// Marks `cur`, about to suspend itself, suspended, and records where it leaves off
/// (for `prefetch_stack`).
#[inline(always)]
fn suspending(cur: &Inner) {
    cur.state.set(State::Suspended);
    cur.left_at.set(sys::stack_pointer());
}

/// Resumes `target` (unstarted or suspended) from `cur`; returns the transfer that
/// brings control back to `cur`.
///
/// # Safety
///
/// `target` must be off the chain, and stay alive for the whole call.
#[inline(always)]
unsafe fn resume(cur: &Inner, target: &Inner) -> Transfer {
    // Invariant 2: nobody else touches an unstarted or suspended greenlet's coroutine
    // until it is off the chain again (its state changes below, and dropping or
    // killing an abandoned greenlet needs it suspended).
    // SAFETY: as just said, and the caller keeps `target` alive.
    let Some(coroutine) = (unsafe { &mut *target.coroutine.get() }) else {
        unreachable!("an unstarted or suspended greenlet holds its coroutine (invariant 2)")
    };
    cur.state.set(State::Resuming);
    target.state.set(State::Running);
    target.depth.set(cur.depth.get() + 1);
    thread::set_current(target);
    let result = coroutine.resume(());
    thread::set_current(cur);
    cur.state.set(State::Running);
    match result {
        // It suspended itself (and set its own state) on the way out.
        CoroutineResult::Yield(next) => next,
        CoroutineResult::Return(next) => {
            finished(target);
            next
        }
    }
}

/// Marks a greenlet whose function returned as dead and gives its stack back to the
/// pool now rather than when the last handle goes.
#[inline(never)]
fn finished(g: &Inner) {
    g.state.set(State::Dead);
    // SAFETY: it has finished, so nothing will touch its coroutine again, and only
    // this thread can reach it.
    if let Some(done) = unsafe { (*g.coroutine.get()).take() } {
        drop(done.into_stack());
    }
}

/// Leaves `payload` for `g`, whose inbox is empty: written without reading the old
/// contents (reading them back right after the receiver's `take` would stall on
/// store-to-load forwarding).
#[inline(always)]
fn put_inbox(g: &Inner, payload: Option<Payload>) {
    let Some(payload) = payload else {
        // `()`: an empty inbox means unit, nothing to write.
        return;
    };
    debug_assert!(
        // SAFETY: only this thread touches the inbox, and no reference to it is live.
        unsafe { (*g.inbox.as_ptr()).is_none() },
        "a greenlet's inbox holds at most one payload"
    );
    // SAFETY: as above; the old contents are `None`, which needs no drop.
    unsafe { g.inbox.as_ptr().write(Some(payload)) };
}

#[inline(always)]
fn take_inbox(cur: &Inner) -> Value {
    // SAFETY: only this thread touches the inbox, and no reference to it is live.
    if unsafe { (*cur.inbox.as_ptr()).is_none() } {
        return Value::unit();
    }
    take_payload(cur)
}

#[inline(never)]
fn take_payload(cur: &Inner) -> Value {
    match cur.inbox.take() {
        Some(Payload::Value(v)) => v,
        Some(Payload::Throw(e)) => panic::resume_unwind(e),
        None => Value::unit(),
    }
}

/// The general switch: walks until control comes back to `cur`.
#[inline(never)]
fn switch_slow(cur: &Inner, mut target: Rc<Inner>) -> Value {
    loop {
        if std::ptr::eq(Rc::as_ptr(&target), cur) {
            return take_inbox(cur);
        }
        let next = match target.state.get() {
            State::Resuming => {
                // Further down the chain: leave `cur` and let our resumer carry on.
                // The chain holds `target` (invariant 6): let go of our reference, so
                // that a greenlet that is never resumed again does not keep it.
                let ptr = Rc::as_ptr(&target);
                drop(target);
                suspending(cur);
                let yielder = cur.yielder.get();
                // SAFETY: `cur` runs and is not main (nothing below main is `Resuming`): a
                // started coroutine whose body set this pointer and lives on this stack (inv. 4).
                unsafe { &*yielder }.suspend(Transfer { target: ptr });
                // Someone resumed us, for us: they made us `Running` and current.
                return take_inbox(cur);
            }
            // SAFETY: off the chain, and we hold `target` for the whole call.
            State::Unstarted | State::Suspended => unsafe { resume(cur, &target) },
            State::Dead => {
                // Python semantics: a switch to a dead greenlet goes to its parent.
                let parent = live_parent(&target);
                parent.inbox.set(target.inbox.take());
                target = parent;
                continue;
            }
            State::Running => {
                unreachable!(
                    "only the current greenlet is running, and it was handled above (invariant 1)"
                )
            }
        };
        // SAFETY: a transfer that reaches us is aimed at a live greenlet (invariant 6).
        target = unsafe { upgrade(next.target) };
    }
}

#[cfg(test)]
mod tests {
    use crate::Greenlet;

    /// The usable stack range of `g`: `[guard end, guard end + size)`.
    fn stack_range(g: &Greenlet) -> std::ops::Range<usize> {
        let (_, end, size) = g.inner().stack_bounds;
        end..end + size
    }

    #[test]
    fn a_suspended_greenlet_left_at_an_address_in_its_own_stack() {
        let g = Greenlet::new(|_| {
            crate::current().parent().expect("a parent").switch(());
            crate::current().parent().expect("a parent").switch(());
        });
        assert_eq!(g.inner().left_at.get(), 0, "nothing recorded before it ran");
        g.prefetch_stack(); // does nothing yet
        g.prefetch_record();
        for suspension in 1..=2 {
            g.switch(());
            let at = g.inner().left_at.get();
            assert!(
                stack_range(&g).contains(&at),
                "suspension {suspension}: {at:#x} outside its stack"
            );
            g.prefetch_stack();
        }
        g.switch(());
        assert!(g.is_dead());
        // Its stack went back to the pool: a prefetch of where it was cannot fault.
        g.prefetch_stack();
        g.prefetch_record();
    }
}
