//! Symmetric greenlets for Rust, with Python greenlet's semantics.
//!
//! A [`Greenlet`] is a coroutine with its own stack on the current OS thread. Any
//! greenlet can [`switch`](Greenlet::switch) to any other, passing a value; the switch
//! returns when someone switches back. This is the seed tutorial's ping-pong:
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use greenweave_greenlet::Greenlet;
//!
//! let out = Rc::new(RefCell::new(Vec::new()));
//! let gr2_slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
//!
//! let (o, slot) = (out.clone(), gr2_slot.clone());
//! let gr1 = Greenlet::new(move |_| {
//!     let gr2 = slot.borrow().clone().unwrap();
//!     o.borrow_mut().push(12);
//!     gr2.switch(());
//!     o.borrow_mut().push(34);
//!     gr2.switch(());
//! });
//! let (o, g1) = (out.clone(), gr1.clone());
//! let gr2 = Greenlet::new(move |_| {
//!     o.borrow_mut().push(56);
//!     g1.switch(());
//!     o.borrow_mut().push(78);
//! });
//! *gr2_slot.borrow_mut() = Some(gr2.clone());
//!
//! gr1.switch(());
//! assert_eq!(*out.borrow(), [12, 56, 34, 78]);
//! ```
//!
//! # Semantics
//!
//! - [`Greenlet::new`]`(f)`: the parent is the current greenlet; `f` starts on the first
//!   switch and receives that switch's value. When `f` returns, its value is switched
//!   to the parent; when `f` panics, the panic resumes in the parent at its pending
//!   switch.
//! - [`Greenlet::throw`] raises a payload inside a greenlet; [`GreenletExit`] ends it
//!   quietly.
//! - Dropping the last handle of a suspended greenlet sends it `GreenletExit`, so its
//!   destructors run.
//! - [`current`], [`Greenlet::parent`], [`Greenlet::set_parent`] (cycles are refused),
//!   [`Greenlet::is_started`], [`Greenlet::is_dead`].
//! - Each OS thread has its own main greenlet (its original stack) and greenlets never
//!   leave their thread: handles are `!Send`.
//!
//! # Stacks
//!
//! Stacks come from a per-thread pool of guard-paged stacks ([`DEFAULT_STACK_SIZE`]
//! by default; see [`Builder::stack_size`] and [`set_default_stack_size`]), so creating
//! a greenlet after warm-up makes no system call. A greenlet that overflows its stack
//! is reported by name and size and the process aborts, like std does for threads.
//!
//! For that report, the first greenlet stack of the process installs a `SIGSEGV`
//! handler (faults that are not a greenlet overflow go on to the handler installed
//! before), and each thread that makes greenlets gets a 64 KiB alternate signal stack
//! if its own is smaller. [`set_overflow_handler`]`(false)`, called before, leaves both
//! to the application.
//!
//! The pool keeps a warm set of [`HOT_STACKS`] free stacks per size; beyond it, memory
//! goes back to the kernel: mostly when a stack is returned, entirely once it has gone
//! unused for a whole period of [`trim_stack_pool`] calls and [`release_idle_stacks`]
//! gets to it (slabs whose stacks are all free are unmapped). A thread's exit unmaps
//! every slab whose stacks are all back.
//!
//! # Cost
//!
//! A switch costs one corosensei context switch in the common cases (see the `switch`
//! module's notes on the resume chain): a greenlet and the greenlet that resumed it,
//! or two greenlets ping-ponging, trade control with one `suspend` or `resume` each way.
//!
//! # `panic = "unwind"` only
//!
//! [`GreenletExit`] and [`Greenlet::throw`] unwind the greenlet's stack, and so does
//! dropping a suspended greenlet (so its destructors run). Under `panic = "abort"` each
//! of these would abort the process, so a build with `panic = "abort"` (in a Cargo
//! profile, or `-C panic=abort`) is refused at compile time with an error that says so.
#![warn(unsafe_op_in_unsafe_fn)]

// Kills, timeouts and dropping a suspended greenlet unwind the greenlet's stack; with
// `panic = "abort"` each would abort the whole process instead. Refused, not supported.
#[cfg(panic = "abort")]
compile_error!(
    "greenweave needs panic = \"unwind\": kills, timeouts and dropping a suspended greenlet \
     unwind its stack (GreenletExit), which would abort the process under panic = \"abort\"; \
     remove `panic = \"abort\"` from the Cargo profile (or `-C panic=abort` from RUSTFLAGS)"
);

/// The `log` target of this crate's messages (greenweave-runtime's `log_targets` lists
/// every crate's).
const LOG_TARGET: &str = "greenweave::greenlet";

mod error;
mod greenlet;
mod overflow;
mod stack;
mod switch;
mod sys;
mod thread;
mod value;

pub use error::{GreenletExit, ParentError};
pub use greenlet::{Builder, Greenlet};
pub use overflow::set_overflow_handler;
pub use stack::{DEFAULT_STACK_SIZE, HOT_STACKS, MAX_STACK_SIZE, MIN_STACK_SIZE};
pub use thread::{
    default_stack_size, pooled_stacks, release_idle_stacks, set_default_stack_size, surplus_stacks,
    trim_stack_pool,
};
pub use value::Value;

/// Writes all of `bytes` to `fd` with the raw `write` system call, never through the C
/// library's `write` (which greenweave-monkey hooks). Async-signal-safe; retries on
/// `EINTR` and partial writes, gives up silently on other errors. Not part of the
/// public API: it is for greenweave's own fatal-error paths.
#[doc(hidden)]
pub fn raw_write(fd: i32, bytes: &[u8]) {
    sys::raw_write(fd, bytes);
}

/// Signal handlers that pass on what is not theirs (the overflow handler, the
/// runtime's blocking monitor). Not part of the public API.
#[doc(hidden)]
pub mod signal {
    pub use crate::sys::{InterruptedCalls, SigInfoHandler, chain, install_handler};
}

/// What a signal handler may learn about the greenlet its thread was running: see
/// [`interrupted_greenlet`]. Not part of the public API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Interrupted {
    /// The greenlet's id.
    pub id: u64,
    /// Its [tag](Greenlet::tag).
    pub tag: usize,
    /// Whether it is the thread's main greenlet.
    pub is_main: bool,
    /// How many bytes of its name were copied (0 if it has none).
    pub name_len: usize,
    /// The lowest address its stack may use (the top of its guard region); 0 for a
    /// main greenlet, whose stack is the thread's.
    pub stack_limit: usize,
}

/// For a signal handler (the runtime's blocking monitor): the greenlet running on the
/// calling thread, its name copied into `name` (cut at `name.len()` bytes, or left
/// out if a rename was in progress). Reads memory only: no allocation, no lock, no
/// greenlet made (`None` on a thread without greenlets or during its teardown), so it
/// is async-signal-safe. Not part of the public API.
#[doc(hidden)]
pub fn interrupted_greenlet(name: &mut [u8]) -> Option<Interrupted> {
    thread::peek_current(|cur| {
        let cur = cur?;
        let name_len = cur.copy_name_if_idle(name);
        Some(Interrupted {
            id: cur.id,
            tag: cur.tag.get(),
            is_main: cur.is_main(),
            name_len,
            stack_limit: cur.stack_bounds.1,
        })
    })
}

/// The greenlet running now (Python's `greenlet.getcurrent()`); on a thread that never
/// used greenlets, this makes its main greenlet.
#[track_caller]
pub fn current() -> Greenlet {
    Greenlet::from_inner(thread::current_inner())
}

/// The [tag](Greenlet::tag) of the running greenlet, without making a handle: one
/// thread-local read and one load. A runtime keeps a pointer to its per-greenlet
/// record here to find it on every blocking call.
#[inline]
#[track_caller]
#[doc(hidden)] // runtime plumbing (greenweave's hub and hooks), not a user API
pub fn current_tag() -> usize {
    // SAFETY: the running greenlet is alive while it runs (see `thread::current_ptr`).
    unsafe { (*thread::current_ptr()).tag.get() }
}

/// Whether this thread's greenlet state still exists: false only while the thread's
/// thread-locals are being destroyed, when no greenlet may be switched to any more.
pub fn thread_alive() -> bool {
    thread::alive()
}

/// Which technique guards greenlet stacks on this machine, once the first stack is made:
/// `"madvise"` (`MADV_GUARD_INSTALL`, no extra kernel mapping per stack) or
/// `"mprotect"` (two mappings per stack).
pub fn guard_technique() -> Option<&'static str> {
    sys::guard_kind().map(|k| match k {
        sys::GuardKind::Madvise => "madvise",
        sys::GuardKind::Mprotect => "mprotect",
    })
}
