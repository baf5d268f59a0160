//! std's `thread::park` word: one per *thread*, shared by every greenlet of it.
//!
//! std parks a thread on a state word in its `Thread` record: EMPTY 0, PARKED -1,
//! NOTIFIED 1. `park` moves it down by one (NOTIFIED → EMPTY returns at once) and
//! waits while it is PARKED; `park_timeout` returns after one wait, `park` only once
//! it turns NOTIFIED → EMPTY; `unpark` sets NOTIFIED and makes the wake system call
//! only if it found PARKED. With two greenlets of one thread inside `park`, the word
//! would go to -2 and `unpark` would never wake anyone.
//!
//! `thread::park` may return spuriously by contract (mpsc, `reqwest::blocking` and
//! every other user re-check their condition), so the word is virtualised:
//! - while any greenlet of the thread is parked on it, it is kept at PARKED, so an
//!   `unpark` from anywhere makes the wake system call, which wakes *every* greenlet
//!   parked on it; each sees NOTIFIED when it returns (so even `park` returns) and
//!   re-checks its condition;
//! - a greenlet that finds NOTIFIED (an `unpark` that came unseen) returns and wakes
//!   the others;
//! - a greenlet leaving `park` sets the word to EMPTY behind our back while others
//!   may still be parked; the hub's maintenance hook, which runs between greenlet
//!   runs and before the hub blocks, puts it back to PARKED, or, finding NOTIFIED,
//!   wakes them all. So an `unpark` is never lost, only at worst seen at the next
//!   maintenance pass.
//!
//! The word's address is learned once per thread, at its first cooperative futex wait:
//! with a flag set, a `park_timeout` of 1 ns reaches our hook with the word (which
//! answers "timed out" without waiting), and an `unpark` afterwards makes up for a
//! token that the probe may have consumed (a spurious wake-up is allowed, a lost one
//! is not). If std ever parks differently the probe finds nothing and the word is not
//! recognised: waits on it are then treated as plain words.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use greenweave_runtime::coop;
use libc::c_long;

use super::{Ended, PARKED, fail, table};

/// std's "an unpark is pending".
const NOTIFIED: u32 = 1;

/// What is known of this thread's parking word.
const NOT_PROBED: usize = 0;
const UNKNOWN: usize = 1;

thread_local! {
    /// This thread's parking word: its address, [`NOT_PROBED`] or [`UNKNOWN`].
    static WORD: Cell<usize> = const { Cell::new(NOT_PROBED) };
    /// Set while the probe runs.
    static LEARNING: Cell<bool> = const { Cell::new(false) };
    static LEARNED: Cell<usize> = const { Cell::new(0) };
    /// Greenlets of this thread inside a wait on its word (parked or woken but not
    /// yet returned).
    static PARKED_HERE: Cell<usize> = const { Cell::new(0) };
}

/// Whether this thread is probing for its parking word.
pub(super) fn learning() -> bool {
    LEARNING.get()
}

/// A futex wait made while probing: std's parker waits with a bitset and the PARKED
/// value. Answers "timed out" at once.
pub(super) fn learn(addr: usize, command: libc::c_int, expected: u32) -> Option<c_long> {
    if command != libc::FUTEX_WAIT_BITSET || expected != PARKED {
        return None;
    }
    LEARNED.set(addr);
    Some(fail(libc::ETIMEDOUT))
}

/// Whether `addr` is this thread's parking word (probing for it on first use).
pub(super) fn is_parker_word(addr: usize) -> bool {
    if WORD.get() == NOT_PROBED {
        probe();
    }
    WORD.get() == addr
}

fn probe() {
    WORD.set(UNKNOWN);
    LEARNED.set(0);
    LEARNING.set(true);
    let probed = std::panic::catch_unwind(|| {
        for _ in 0..2 {
            // The first call may just consume a pending token without waiting.
            std::thread::park_timeout(Duration::from_nanos(1));
            if LEARNED.get() != 0 {
                break;
            }
        }
        std::thread::current().unpark();
    });
    LEARNING.set(false);
    let learned = LEARNED.get();
    if probed.is_ok() && learned != 0 {
        WORD.set(learned);
        coop::on_maintenance(repair);
    } else {
        log::warn!(
            target: "greenweave::monkey",
            "greenweave-monkey: could not find std's thread::park word on this thread; \
             thread::park from several greenlets at once will not be cooperative"
        );
    }
}

/// A greenlet's wait on this thread's parking word (`expected` PARKED).
pub(super) fn wait(word: &AtomicU32, deadline: Option<Instant>) -> c_long {
    let addr = word.as_ptr() as usize;
    let joining = table::Joining::start(addr);
    loop {
        let value = word.load(Ordering::SeqCst);
        if value == NOTIFIED {
            // An unpark came while other greenlets parked here (or none): this one
            // takes the token, the others re-check.
            drop(joining);
            table::wake(addr, usize::MAX, u32::MAX);
            return fail(libc::EAGAIN);
        }
        let parked = value == PARKED
            || word
                .compare_exchange(value, PARKED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
        if parked {
            break;
        }
    }
    PARKED_HERE.set(PARKED_HERE.get() + 1);
    let ended = super::park(addr, u32::MAX, true, joining, deadline);
    PARKED_HERE.set(PARKED_HERE.get() - 1);
    match ended {
        Ended::Woken => {
            // So that `park` (which returns only on NOTIFIED) returns too.
            word.store(NOTIFIED, Ordering::SeqCst);
            0
        }
        other => other.into_return(),
    }
}

/// The hub's maintenance hook: puts the word back to PARKED while greenlets are
/// parked on it, or wakes them all if an unpark came unseen.
fn repair() {
    let addr = WORD.get();
    if addr <= UNKNOWN || PARKED_HERE.get() == 0 {
        return;
    }
    // SAFETY: the word lives in this thread's `Thread` record, which lives as long as
    // the thread, and so as long as its hub (which runs this hook).
    let word = unsafe { &*(addr as *const AtomicU32) };
    loop {
        match word.load(Ordering::SeqCst) {
            PARKED => return,
            NOTIFIED => {
                table::wake(addr, usize::MAX, u32::MAX);
                return;
            }
            value => {
                if word
                    .compare_exchange(value, PARKED, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return;
                }
            }
        }
    }
}
