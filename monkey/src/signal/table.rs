//! The user's handlers behind the trampoline, readable from signal handlers.
//!
//! A signal whose handler the `sigaction` hook wrapped has the [`trampoline`] as its
//! kernel handler, and an entry here naming the user's handler and flags. Entries are
//! *interned*: each distinct (handler, flags) pair gets a slot once, which is never
//! changed or freed afterwards, and a signal's entry is one atomic index into the
//! slots. A trampoline running on any thread, at any moment, therefore reads a
//! consistent pair, without locks or allocation (both forbidden in a signal handler).
//! Programs install a handful of distinct handlers; past [`SLOTS`] of them, further
//! ones are installed unwrapped (they run, but interrupt no parked greenlet).
//!
//! A signal's entry is never cleared: when its disposition becomes `SIG_DFL` or
//! `SIG_IGN` the kernel no longer calls the trampoline, and a delivery that was
//! already under way still finds the handler it was meant for.

use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU16, AtomicUsize, Ordering};

use libc::{c_int, c_void, siginfo_t};

/// Distinct (handler, flags) pairs that can be wrapped.
const SLOTS: usize = 256;
/// Signal numbers are below this (Linux's `_NSIG`).
pub(super) const NSIG: usize = 65;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const PUBLISHED: u8 = 2;

/// A user's handler and the flags it was installed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Handler {
    /// The function (`sa_sigaction`).
    pub(super) action: usize,
    /// The user's `sa_flags`.
    pub(super) flags: c_int,
}

struct Slot {
    action: AtomicUsize,
    flags: AtomicI32,
    state: AtomicU8,
}

static SLOTS_TABLE: [Slot; SLOTS] = [const {
    Slot {
        action: AtomicUsize::new(0),
        flags: AtomicI32::new(0),
        state: AtomicU8::new(FREE),
    }
}; SLOTS];

/// Each signal's entry: a slot index plus one, 0 for none.
static ENTRIES: [AtomicU16; NSIG] = [const { AtomicU16::new(0) }; NSIG];

impl Slot {
    fn read(&self) -> Option<Handler> {
        (self.state.load(Ordering::Acquire) == PUBLISHED).then(|| Handler {
            action: self.action.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed),
        })
    }
}

/// The slot holding `handler`, publishing it in a free one if none does; `None` when
/// every slot is taken. Lock-free: callers are serialised anyway, but a `sigaction`
/// made from a signal handler could come in between.
fn intern(handler: Handler) -> Option<u16> {
    for (at, slot) in SLOTS_TABLE.iter().enumerate() {
        match slot.read() {
            Some(found) if found == handler => return Some(at as u16),
            Some(_) => continue,
            None => {}
        }
        if slot
            .state
            .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            slot.action.store(handler.action, Ordering::Relaxed);
            slot.flags.store(handler.flags, Ordering::Relaxed);
            slot.state.store(PUBLISHED, Ordering::Release);
            return Some(at as u16);
        }
        // Claimed meanwhile by someone else: it may be ours, look again.
        if slot.read() == Some(handler) {
            return Some(at as u16);
        }
    }
    None
}

/// The entry of `sig` (which is below [`NSIG`]), if it ever had one.
pub(super) fn entry(sig: c_int) -> Option<Handler> {
    let index = ENTRIES[sig as usize].load(Ordering::Acquire);
    let slot = SLOTS_TABLE.get(usize::from(index).checked_sub(1)?)?;
    slot.read()
}

/// Makes `handler` the entry of `sig`; `false` if no slot is left for it.
pub(super) fn set_entry(sig: c_int, handler: Handler) -> bool {
    match intern(handler) {
        Some(at) => {
            ENTRIES[sig as usize].store(at + 1, Ordering::Release);
            true
        }
        None => false,
    }
}

/// Puts back an entry read with [`entry`] (after a failed `sigaction`).
pub(super) fn restore_entry(sig: c_int, previous: Option<Handler>) {
    match previous {
        Some(handler) => {
            set_entry(sig, handler);
        }
        None => ENTRIES[sig as usize].store(0, Ordering::Release),
    }
}

/// The kernel handler of every wrapped signal (installed with `SA_SIGINFO` whatever
/// the user's flags, so it always has the three arguments to pass on): calls the
/// user's handler in the form its flags name, through
/// `greenweave_runtime::coop::run_signal_handler` when the process is patched (which
/// tells the hub of this thread, and keeps the handler's libc calls from parking).
/// Async-signal-safe and `errno`-neutral itself: atomics and one raw `write` system
/// call.
pub(super) extern "C" fn trampoline(sig: c_int, info: *mut siginfo_t, context: *mut c_void) {
    let Some(handler) = usize::try_from(sig)
        .ok()
        .filter(|&sig| sig < NSIG)
        .and_then(|_| entry(sig))
    else {
        // Cannot happen: an entry is made before the trampoline is installed and never
        // cleared. There is no handler to call.
        return;
    };
    let call = || call_user(handler, sig, info, context);
    if crate::state::any_patched() {
        let restarting = handler.flags & libc::SA_RESTART != 0;
        greenweave_runtime::coop::run_signal_handler(restarting, call);
    } else {
        call();
    }
}

/// Calls the user's handler in the form its flags name.
fn call_user(handler: Handler, sig: c_int, info: *mut siginfo_t, context: *mut c_void) {
    if handler.flags & libc::SA_SIGINFO != 0 {
        type Action = extern "C" fn(c_int, *mut siginfo_t, *mut c_void);
        // SAFETY: the user installed this value as an `SA_SIGINFO` handler, a function
        // of this C signature; the kernel gave us its arguments.
        let action: Action = unsafe { std::mem::transmute::<usize, Action>(handler.action) };
        action(sig, info, context);
    } else {
        type Plain = extern "C" fn(c_int);
        // SAFETY: the user installed this value as a plain handler, a function of this C
        // signature.
        let plain: Plain = unsafe { std::mem::transmute::<usize, Plain>(handler.action) };
        plain(sig);
    }
}

/// The trampoline's address, as `sa_sigaction` holds it.
pub(super) fn trampoline_address() -> usize {
    trampoline as *const () as usize
}
