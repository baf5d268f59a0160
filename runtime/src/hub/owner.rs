//! Where a thread's hub lives: a thread-local owner that makes it on first use and
//! tears it down at thread exit (see `thread_exit`), and a destructor-free pointer the
//! blocking paths read it through.

use std::cell::Cell;
use std::marker::PhantomData;

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
        // Nothing reaches the hub any more: `HUB_PTR` is null, the thread's own code is
        // over, and the only frames still holding a reference are on the stacks of
        // abandoned greenlets, which are never resumed (`release` forgets their task
        // records, whose drop could resume them).
        // SAFETY: as above, and nothing else reaches it (just said).
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
    f(get(&Here::new()))
}

/// A frame's claim on this thread's hub: a zero-sized local whose borrow bounds the
/// `&Hub` that [`get`] hands out, and the current task's `TaskRef` borrowed through
/// it, so the compiler keeps both inside the frame that made it. Neither `Send` nor
/// `Sync`: the hub belongs to this thread. Make it as a local (`let here =
/// Here::new();`), never in anything that outlives the frame.
///
/// The hub lives until its thread exits, and no frame that still runs outlives that:
/// the thread's exit ends its greenlets first, and those it abandons are never resumed
/// (see `thread_exit`).
pub(crate) struct Here(PhantomData<*const ()>);

impl Here {
    #[inline(always)]
    pub(crate) const fn new() -> Here {
        Here(PhantomData)
    }
}

/// What bounds a borrow to the current frame: a [`Here`], or the hub borrowed through
/// one (see `Task::current_borrowed`).
pub(crate) trait InFrame {}

impl InFrame for Here {}

impl InFrame for Hub {}

/// This thread's hub, creating it on first use: what [`with`] does, for the blocking
/// paths. A closure handed to `with` may be outlined by LLVM, and every frame between
/// a blocking call and its switch costs a mispredicted return when the greenlet is
/// resumed (the return-stack buffer holds the resumer's calls, not ours), so `park`
/// and `yield_now` use this and stay one frame.
///
/// The reference lives as long as the borrow of `here`: the caller's own frame.
#[inline(always)]
#[track_caller]
pub(crate) fn get(here: &Here) -> &Hub {
    match existing(here) {
        Some(hub) => hub,
        None => first_use(here),
    }
}

/// The hub, if this thread has one that is not being torn down, for as long as `here`
/// is borrowed.
#[inline]
pub(crate) fn existing(_here: &Here) -> Option<&Hub> {
    let ptr = HUB_PTR.get();
    // A non-null HUB_PTR points at the hub `HUB` owns (boxed, so it stays put), which
    // is freed only after `HubOwner::drop` has nulled the pointer, once the thread's
    // own code is over and its greenlets ended or abandoned (never to run again).
    // SAFETY: so the hub is alive; the reference is bounded by the borrow of a
    // `Here`, a local of a frame of this thread that runs now, so it ends before that.
    unsafe { ptr.as_ref() }
}

#[cold]
#[track_caller]
fn first_use(_here: &Here) -> &Hub {
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
    existing(&Here::new()).map(f)
}
