//! Where a thread's hub lives: a thread-local owner that makes it on first use and
//! tears it down at thread exit (see `thread_exit`), and a destructor-free pointer the
//! blocking paths read it through.

use std::cell::Cell;

use greenweave_greenlet as greenlet;

use super::Hub;

thread_local! {
    /// Owns this thread's hub and tears it down when the thread exits.
    static HUB: HubOwner = const { HubOwner(Cell::new(std::ptr::null_mut())) };

    /// The address of this thread's hub while it exists (null before it is made and
    /// once its teardown is over). It has no destructor, so every blocking call
    /// reaches the hub with one plain thread-local read instead of the registration
    /// checks of a thread-local with a destructor.
    static HUB_PTR: Cell<*const Hub> = const { Cell::new(std::ptr::null()) };
}

/// The hub, boxed (its address never changes) and owned by the `HUB` thread-local.
struct HubOwner(Cell<*mut Hub>);

impl Drop for HubOwner {
    fn drop(&mut self) {
        let hub = self.0.replace(std::ptr::null_mut());
        if hub.is_null() {
            return;
        }
        // The greenlet layer's thread state is still alive (see `first_use`), and
        // `HUB_PTR` still points at the hub, so the greenlets ending now can use it.
        // SAFETY: made by `Box::into_raw` in `first_use` and owned by this value only.
        let ending = crate::thread_exit::shut_down(unsafe { &*hub });
        HUB_PTR.set(std::ptr::null());
        // SAFETY: as above. Nothing reaches the hub any more: `HUB_PTR` is null, the
        // thread's own code is over, and the only frames still holding a reference are
        // on the stacks of abandoned greenlets, which are never resumed (`release`
        // forgets their task records, whose drop could resume them).
        crate::thread_exit::release(unsafe { Box::from_raw(hub) }, ending);
    }
}

/// Runs `f` with this thread's hub, creating it on first use.
///
/// # Panics
///
/// If the thread is exiting and its hub is gone, or the reactor cannot be created.
#[inline]
#[track_caller]
pub(crate) fn with<R>(f: impl FnOnce(&Hub) -> R) -> R {
    f(get())
}

/// This thread's hub, creating it on first use: what [`with`] does, for the blocking
/// paths. A closure handed to `with` may be outlined by LLVM, and every frame between
/// a blocking call and its switch costs a mispredicted return when the greenlet is
/// resumed (the return-stack buffer holds the resumer's calls, not ours), so `park`
/// and `yield_now` use this and stay one frame.
///
/// The reference is only for the caller's own frame: the hub lives until its thread
/// exits, which no frame of the thread outlives.
#[inline(always)]
#[track_caller]
pub(crate) fn get() -> &'static Hub {
    match existing() {
        Some(hub) => hub,
        None => first_use(),
    }
}

/// The hub, if this thread has one that is not being torn down.
#[inline]
pub(crate) fn existing() -> Option<&'static Hub> {
    let ptr = HUB_PTR.get();
    // The `'static` below never outlives the callers' stack frames, which end before
    // the thread (and so the thread-local hub) does.
    // SAFETY: a non-null HUB_PTR points at the hub `HUB` owns (boxed, so it stays
    // put), which is freed only after `HubOwner::drop` has nulled the pointer.
    unsafe { ptr.as_ref() }
}

#[cold]
#[track_caller]
fn first_use() -> &'static Hub {
    // The greenlet layer's thread state comes first, so it is destroyed after the hub
    // (thread-local destructors run newest first): the hub's teardown at thread exit
    // still switches to greenlets to end them (see `thread_exit`).
    drop(greenlet::current());
    let hub = HUB
        .try_with(|owner| {
            if owner.0.get().is_null() {
                owner.0.set(Box::into_raw(Box::new(Hub::new())));
            }
            owner.0.get()
        })
        .ok()
        .filter(|hub| !hub.is_null())
        .unwrap_or_else(|| {
            panic!(
                "greenweave: this thread's hub is gone: the thread is exiting, and code that \
                 runs after greenweave's teardown (a later thread-local destructor) cannot \
                 block or spawn greenlets"
            )
        });
    HUB_PTR.set(hub);
    // SAFETY: as in `existing`.
    unsafe { &*hub }
}

/// Runs `f` with this thread's hub if it has one (never creates it); `None` if there is
/// none or the thread is exiting.
#[inline]
pub(crate) fn try_with_existing<R>(f: impl FnOnce(&Hub) -> R) -> Option<R> {
    existing().map(f)
}
