//! Other runtimes' event loops running on the calling thread.
//!
//! tokio records the runtime a thread has entered (`block_on`, `Runtime::enter`) in a
//! thread-local, and panics if the thread enters a runtime again meanwhile ("Cannot
//! start a runtime from within a runtime"). Greenlets share their thread's
//! thread-locals: if a greenlet inside `block_on` parked (its runtime's condvar wait,
//! a sleep, a socket) and another greenlet of the thread entered tokio meanwhile, that
//! one would panic. So while the calling thread is inside a tokio runtime, the hooks
//! do not park: they make the real, blocking call, and tokio-based clients stay
//! correct (serial; `greenweave::threadpool::Offload` makes them concurrent).
//!
//! With the `tokio` feature (on by default) this asks tokio itself (its `Handle::try_current`,
//! which sees the tokio 1.x of the whole program: cargo builds one); without it, no
//! runtime is ever seen.

/// Whether the calling thread is inside another runtime's event loop now.
#[cfg(feature = "tokio")]
#[inline]
pub(crate) fn inside_event_loop() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Whether the calling thread is inside another runtime's event loop now.
#[cfg(not(feature = "tokio"))]
#[inline]
pub(crate) fn inside_event_loop() -> bool {
    false
}
