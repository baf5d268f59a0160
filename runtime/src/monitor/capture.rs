//! A look at what a hub's thread is doing *right now*, taken on that thread: which
//! greenlet runs there and its stack, for stall reports and for `dump_all` of a hub
//! that does not answer.
//!
//! Another thread cannot walk a running thread's stack, so the requester sends the
//! hub's thread a signal ([`SIGNAL`], `SIGURG`, whose default action is to ignore it
//! and which nothing else in a program usually uses: Go's runtime made the same
//! choice) and waits. The handler, on the hub's thread, does only what is allowed
//! there: it reads memory (the running greenlet's id, name, tag and spawn site) and
//! walks its own stack with `backtrace::trace_unsynchronized`, writing instruction
//! pointers into a buffer allocated once ([`Slot`]). The requester then symbolizes
//! them on its own thread, where allocating is fine.
//!
//! # Residual risk
//!
//! Walking the stack runs libgcc's unwinder (`_Unwind_Backtrace`, what std's own
//! backtraces use). It allocates nothing, but it finds unwind tables through the
//! dynamic loader: with glibc 2.35 and later and libgcc 12 and later that is
//! `_dl_find_object`, which takes no lock; older systems use `dl_iterate_phdr`, whose
//! loader lock could be held by the very code the signal interrupted (a `dlopen` in
//! progress), and an unwinder working on tables being changed may crash. A stall that
//! is a `dlopen` is rare, and only processes that started the monitor or asked for a
//! dump ever get the signal. The handler also reads the greenlet's name while the
//! interrupted code might be renaming it (it then skips the name), and runs on the
//! thread's alternate signal stack if it has one, which std gives every thread it
//! starts (a few KiB; the walk needs well under that, see the tests).
//!
//! # Protocol
//!
//! One request at a time ([`REQUESTS`]). The slot's `state` packs a request number
//! and a phase: the requester publishes `REQUESTED` for a thread id, signals it and
//! polls; the handler of that thread, and only it, moves `REQUESTED` to `WRITING`
//! with a compare-and-swap (so a late signal from an abandoned request, or a signal
//! another process sent, finds nothing to do and is passed to the handler installed
//! before ours), fills the slot and publishes `DONE`. A requester that gives up moves
//! `REQUESTED` back to `IDLE` with a compare-and-swap; if that fails the handler is
//! writing, which never blocks, and it waits for `DONE`.

use std::cell::UnsafeCell;
use std::io;
use std::panic::Location;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::registry::{self, HubEntry};
use super::sys;
use crate::dump::Backtrace;
use crate::task::Task;

/// The signal that asks a hub's thread for a look at itself.
pub(crate) const SIGNAL: libc::c_int = libc::SIGURG;

/// Frames kept from one stack walk.
const MAX_FRAMES: usize = 128;
/// Stack the handler must have left to walk the stack: the walk takes about 8 KiB in
/// a debug build, the kernel's signal frame included (see the tests).
const WALK_ROOM: usize = 16 * 1024;
/// Bytes kept of the running greenlet's name.
const NAME_BYTES: usize = 128;

const IDLE: u64 = 0;
const REQUESTED: u64 = 1;
const WRITING: u64 = 2;
const DONE: u64 = 3;
const PHASE: u64 = 3;

/// What the handler writes: plain data, no pointers to free.
#[derive(Clone, Copy)]
struct Raw {
    ips: [usize; MAX_FRAMES],
    frames: usize,
    /// The handler had too little stack left to walk the stack safely.
    cramped: bool,
    /// The instruction the signal interrupted (0 if unknown).
    pc: usize,
    greenlet: Option<greenweave_greenlet::Interrupted>,
    name: [u8; NAME_BYTES],
    spawned_at: Option<&'static Location<'static>>,
    registered: bool,
    /// The hub's number of greenlets at that moment.
    greenlets: usize,
}

const EMPTY: Raw = Raw {
    ips: [0; MAX_FRAMES],
    frames: 0,
    cramped: false,
    pc: 0,
    greenlet: None,
    name: [0; NAME_BYTES],
    spawned_at: None,
    registered: false,
    greenlets: 0,
};

/// The one buffer requests are answered in.
struct Slot {
    /// `(request number << 2) | phase`.
    state: AtomicU64,
    /// The thread the current request is for.
    target: AtomicI32,
    /// Its hub's greenlet count (`HubEntry::greenlets`), which the requester keeps
    /// alive until the request ends.
    greenlets: AtomicPtr<AtomicUsize>,
    raw: UnsafeCell<Raw>,
}

// SAFETY: `raw` is written only by the handler that moved `state` to WRITING and read
// only by the requester once it saw DONE (Release/Acquire on `state`), so its accesses
// never overlap.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot {
    state: AtomicU64::new(IDLE),
    target: AtomicI32::new(0),
    greenlets: AtomicPtr::new(std::ptr::null_mut()),
    raw: UnsafeCell::new(EMPTY),
};

/// Held for the whole of a request: one at a time.
pub(super) static REQUESTS: Mutex<u64> = Mutex::new(0);

/// The action our handler replaced, once installed (or why it could not be).
static PREVIOUS: OnceLock<Result<libc::sigaction, String>> = OnceLock::new();

/// What the hub's thread was doing when the signal arrived.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    /// The running greenlet, if the thread had greenlets.
    pub(crate) greenlet: Option<Running>,
    /// Its stack, innermost frame first.
    pub(crate) backtrace: Backtrace,
}

/// The greenlet a [`Snapshot`] caught running.
#[derive(Clone, Debug)]
pub(crate) struct Running {
    pub(crate) id: u64,
    pub(crate) name: Option<String>,
    pub(crate) is_main: bool,
    /// Where it was spawned (runtime tasks only).
    pub(crate) spawned_at: Option<&'static Location<'static>>,
}

/// Why no snapshot came.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The handler could not be installed.
    NoHandler(String),
    /// The hub's thread has exited.
    Gone,
    /// Sending the signal failed.
    Signal(io::Error),
    /// The thread did not run the handler in time (the signal is blocked there, or
    /// the thread is not scheduled).
    NoAnswer(Duration),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoHandler(e) => write!(f, "cannot install the SIGURG handler: {e}"),
            Failure::Gone => f.write_str("its thread has exited"),
            Failure::Signal(e) => write!(f, "cannot signal its thread: {e}"),
            Failure::NoAnswer(waited) => write!(
                f,
                "its thread did not answer SIGURG within {waited:?} (is the signal blocked there?)"
            ),
        }
    }
}

/// Installs the handler (once per process).
fn install() -> Result<(), Failure> {
    let installed = PREVIOUS.get_or_init(|| {
        sys::install_handler(SIGNAL, on_signal, sys::InterruptedCalls::Restart)
            .map_err(|e| e.to_string())
    });
    installed
        .as_ref()
        .map(|_| ())
        .map_err(|e| Failure::NoHandler(e.clone()))
}

/// What the handler recorded, copied out of the slot: cheap to take, symbolized later
/// (on another thread if need be) by [`resolve`](Captured::resolve).
pub(crate) struct Captured(Box<Raw>);

impl Captured {
    /// Whether the greenlet that was running is one of the hub's greenlets (a
    /// spawned or adopted one, as opposed to the hub's own loop or an unadopted
    /// main greenlet).
    pub(crate) fn running_is_registered(&self) -> bool {
        self.0.registered
    }

    /// How many greenlets the hub had.
    pub(crate) fn greenlets(&self) -> usize {
        self.0.greenlets
    }

    /// Why the stack was not walked, if it was not.
    pub(crate) fn no_stack(&self) -> Option<&'static str> {
        self.0.cramped.then_some(
            "the signal handler had too little stack left to walk the stack safely \
             (a greenlet near the end of its stack, or a small alternate signal stack)",
        )
    }

    /// The greenlet that was running.
    pub(crate) fn running(&self) -> Option<Running> {
        running(&self.0)
    }

    /// The running greenlet and its symbolized stack.
    pub(crate) fn resolve(&self) -> Snapshot {
        Snapshot {
            greenlet: self.running(),
            backtrace: backtrace(&self.0),
        }
    }
}

/// Takes a look at `entry`'s thread, waiting at most `patience` for it.
pub(crate) fn take(entry: &Arc<HubEntry>, patience: Duration) -> Result<Captured, Failure> {
    install()?;
    let mut number = REQUESTS.lock().unwrap_or_else(PoisonError::into_inner);
    *number += 1;
    let requested = (*number << 2) | REQUESTED;
    SLOT.target.store(entry.tid(), Ordering::Relaxed);
    let greenlets: *const AtomicUsize = &entry.greenlets;
    SLOT.greenlets
        .store(greenlets.cast_mut(), Ordering::Relaxed);
    SLOT.state.store(requested, Ordering::Release);
    let sent = registry::with_live(entry, |e| sys::signal_thread(e.tid(), SIGNAL));
    let failure = match sent {
        None => Some(Failure::Gone),
        Some(Err(e)) => Some(Failure::Signal(e)),
        Some(Ok(())) => None,
    };
    if let Some(failure) = failure {
        SLOT.state.store(*number << 2 | IDLE, Ordering::Release);
        return Err(failure);
    }
    let start = Instant::now();
    let done = (*number << 2) | DONE;
    loop {
        if SLOT.state.load(Ordering::Acquire) == done {
            break;
        }
        if start.elapsed() >= patience {
            let gave_up = SLOT.state.compare_exchange(
                requested,
                *number << 2 | IDLE,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if gave_up.is_ok() {
                return Err(Failure::NoAnswer(patience));
            }
            // The handler is writing: it finishes without blocking.
            while SLOT.state.load(Ordering::Acquire) != done {
                std::hint::spin_loop();
            }
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    // SAFETY: DONE was published with Release after the handler's last write, and
    // nothing writes the slot again before we publish IDLE below (REQUESTS is held).
    let raw = Box::new(unsafe { *SLOT.raw.get() });
    SLOT.state.store(*number << 2 | IDLE, Ordering::Release);
    drop(number);
    Ok(Captured(raw))
}

/// The symbolized stack (on the requester's thread).
fn backtrace(raw: &Raw) -> Backtrace {
    let ips = &raw.ips[..raw.frames];
    // Frames inside the handler and the signal trampoline come first: start at the
    // interrupted instruction when the walk found it.
    let start = ips.iter().position(|&ip| ip == raw.pc);
    let exact_first = start.is_some();
    Backtrace::from_ips(&ips[start.unwrap_or(0)..], exact_first)
}

/// The running greenlet, as owned data.
fn running(raw: &Raw) -> Option<Running> {
    raw.greenlet.map(|g| Running {
        id: g.id,
        name: (g.name_len > 0)
            .then(|| String::from_utf8_lossy(&raw.name[..g.name_len]).into_owned()),
        is_main: g.is_main,
        spawned_at: raw.spawned_at,
    })
}

/// The handler: answers a request for this thread, or passes the signal on.
extern "C" fn on_signal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let state = SLOT.state.load(Ordering::Acquire);
    let mine = state & PHASE == REQUESTED
        && SLOT.target.load(Ordering::Relaxed) == sys::gettid()
        && SLOT
            .state
            .compare_exchange(
                state,
                state & !PHASE | WRITING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok();
    if mine {
        // SAFETY: winning the move to WRITING gives this handler the slot alone until
        // it publishes DONE; `context` is the kernel's ucontext for this signal.
        unsafe { record(&mut *SLOT.raw.get(), context) };
        SLOT.state.store(state & !PHASE | DONE, Ordering::Release);
        return;
    }
    if let Some(Ok(previous)) = PREVIOUS.get() {
        // SAFETY: we are a signal handler passing on our own arguments. The capture
        // signal's default action is to ignore it: nothing more to do if it was that.
        unsafe { sys::chain(previous, signal, info, context) };
    }
}

/// Fills `raw` with the running greenlet and the stack (async-signal-safe: reads and
/// writes memory, walks the stack; see the module docs).
///
/// # Safety
///
/// Called only from [`on_signal`] with its context, holding the slot.
unsafe fn record(raw: &mut Raw, context: *mut libc::c_void) {
    // SAFETY: the caller passes the handler's context.
    raw.pc = unsafe { sys::interrupted_ip(context) };
    raw.greenlet = greenweave_greenlet::interrupted_greenlet(&mut raw.name);
    raw.frames = 0;
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let limit = raw.greenlet.map_or(0, |g| g.stack_limit);
    raw.cramped = sys::stack_room(sp, limit) < WALK_ROOM;
    if !raw.cramped {
        walk(raw);
    }
    raw.spawned_at = None;
    raw.registered = false;
    let tag = raw.greenlet.map_or(0, |g| g.tag);
    if tag != 0 {
        // SAFETY: a non-zero tag is the address of the running greenlet's task
        // record, which its context or the hub's registry keeps alive while the
        // greenlet runs (see `Task::attach`); only plain fields set at spawn are read.
        let task = unsafe { &*(tag as *const Task) };
        raw.spawned_at = task.location;
        raw.registered = task.key() != usize::MAX;
    }
    let greenlets = SLOT.greenlets.load(Ordering::Relaxed);
    // SAFETY: set by the requester, which holds the hub's entry (and so this atomic)
    // until the request ends, before it published the request we hold.
    raw.greenlets = unsafe { greenlets.as_ref() }.map_or(0, |g| g.load(Ordering::Relaxed));
}

/// Walks the stack into `raw` (in the handler; see the module docs).
fn walk(raw: &mut Raw) {
    let mut frames = 0;
    let ips = &mut raw.ips;
    // SAFETY: the unsynchronized walk shares no state with other walks of the
    // `backtrace` crate that this handler may have interrupted (it only calls
    // `_Unwind_Backtrace`), and the closure never panics (it stops at MAX_FRAMES).
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            ips[frames] = frame.ip() as usize;
            frames += 1;
            frames < MAX_FRAMES
        });
    }
    raw.frames = frames;
}
