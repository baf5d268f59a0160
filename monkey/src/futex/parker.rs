//! std's `thread::park` word: one per *thread*, shared by every greenlet of it.
//!
//! std parks a thread on a state word in its `Thread` record: EMPTY 0, PARKED -1,
//! NOTIFIED 1. `park` moves it down by one (from NOTIFIED it returns at once, taking
//! the token) and then waits while it is PARKED, re-reading it *before* each wait
//! system call and spinning on its own until it turns NOTIFIED; `park_timeout` waits
//! once; `unpark` sets NOTIFIED and makes the wake system call only if it found
//! PARKED. Shared by greenlets as is, a second greenlet's `park` would move the word to
//! -2 and spin in user space for ever, and an `unpark` would never make a call we see.
//!
//! `thread::park` may return spuriously by contract (mpsc, `reqwest::blocking` and
//! every other user re-check their condition), so the word is virtualised, with one
//! rule: **while a greenlet of the thread runs, the word is EMPTY or NOTIFIED**, so a
//! greenlet's `park` always either takes a token or reaches our hook.
//!
//! - A greenlet reaching the hook (its `park` moved EMPTY to PARKED) is parked in the
//!   table and the word is put back to EMPTY before anything else runs.
//! - While the hub *sleeps* in `epoll_wait` with greenlets parked here, no greenlet
//!   runs, so the word is PARKED: an `unpark` from another thread makes the wake
//!   call, which wakes every greenlet parked on the word (and the hub). The hub's
//!   maintenance hook sets PARKED before the sleep and EMPTY after it.
//! - An `unpark` while greenlets run (from another thread, or from a greenlet of this
//!   one) only leaves NOTIFIED. The next maintenance pass (every 61 greenlet runs, or
//!   when the run queue empties) wakes every parked greenlet for it. A running
//!   greenlet's own `park` may take the token first, unseen; so each parked greenlet
//!   also wakes by itself after a slice (10 ms, longer with many parked: at most about
//!   10,000 such wake-ups a second per thread) and re-checks. An `unpark` is thus never
//!   lost; at worst it is seen a slice late.
//! - Every return from the hook leaves NOTIFIED (which the caller's `park` takes), so
//!   even `park` returns and its caller re-checks; `park_timeout`'s own deadline
//!   returns "timed out".
//!
//! The word's address is learned once per thread, at its first cooperative futex wait:
//! with a flag set, a `park_timeout` of 1 ns reaches our hook with the word (which
//! answers "timed out" without waiting), and an `unpark` afterwards makes up for a
//! token that the probe may have consumed (a spurious wake-up is allowed, a lost one
//! is not). If std ever parks differently the probe finds nothing and the word is not
//! recognised: waits on it are then treated as plain words, and a warning is logged.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use greenweave_runtime::coop::{self, Maintenance};
use libc::c_long;

use super::table::{self, Word};
use super::{Ended, PARKED, fail};

/// std's "no token".
const EMPTY: u32 = 0;
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

/// In a forked child: the greenlets of this thread parked on its word were left behind
/// by the fork (the forking one runs, so the word is EMPTY or NOTIFIED).
pub(super) fn forget_parked_after_fork() {
    PARKED_HERE.set(0);
    LEARNING.set(false);
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
        coop::on_maintenance(keep);
    } else {
        log::warn!(
            target: greenweave_runtime::log_targets::MONKEY,
            "greenweave-monkey: could not find std's thread::park word on this thread; \
             thread::park from several greenlets at once will not be cooperative"
        );
    }
}

/// How long a greenlet waits on the word before it re-checks by itself: 10 ms, or
/// 100 µs per greenlet parked here if that is more (so self-wake-ups stay near
/// 10,000 a second per thread), at most 1 s.
fn slice(parked: usize) -> Duration {
    let per_greenlet = Duration::from_micros(100).saturating_mul(parked as u32);
    per_greenlet.clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// A greenlet's wait on this thread's parking word (its `park` just moved the word
/// from EMPTY to PARKED).
pub(super) fn wait(word: &AtomicU32, deadline: Option<Instant>) -> c_long {
    let addr = word.as_ptr() as usize;
    let Some(joining) =
        table::global().start_wait(addr, || word.load(Ordering::SeqCst) != NOTIFIED)
    else {
        // An unpark came between the caller's `park` and here: it takes the token,
        // and the others re-check.
        table::global().wake(addr, usize::MAX, u32::MAX);
        return fail(libc::EAGAIN);
    };
    let parked = PARKED_HERE.get() + 1;
    PARKED_HERE.set(parked);
    let slice_end = Instant::now() + slice(parked);
    let until = deadline.map_or(slice_end, |d| d.min(slice_end));
    let ended = super::park(
        addr,
        u32::MAX,
        Word::ThreadParker,
        joining,
        Some(until),
        || {
            // Greenlets run while this one is parked: keep the word out of PARKED for them
            // (an unpark that made it NOTIFIED meanwhile stays, for `keep` to see).
            let _ = word.compare_exchange(PARKED, EMPTY, Ordering::SeqCst, Ordering::SeqCst);
        },
    );
    PARKED_HERE.set(PARKED_HERE.get() - 1);
    if ended == Ended::TimedOut && deadline.is_some_and(|d| d <= slice_end) {
        return fail(libc::ETIMEDOUT);
    }
    // Woken, a slice over, or a spurious end: a token for the caller's `park` to take,
    // so that it returns and its caller re-checks. A token already there is an unpark
    // the others have not seen yet: they re-check too.
    if word.swap(NOTIFIED, Ordering::SeqCst) == NOTIFIED {
        table::global().wake(addr, usize::MAX, u32::MAX);
    }
    0
}

/// The hub's maintenance hook: keeps the word's rule (see the module docs) while
/// greenlets are parked on it.
fn keep(phase: Maintenance) {
    let addr = WORD.get();
    if addr <= UNKNOWN || PARKED_HERE.get() == 0 {
        return;
    }
    // SAFETY: the word lives in this thread's `Thread` record, which lives as long as
    // the thread, and so as long as its hub (which runs this hook).
    let word = unsafe { &*(addr as *const AtomicU32) };
    let (from, to) = match phase {
        Maintenance::Pass | Maintenance::AfterSleep => (PARKED, EMPTY),
        Maintenance::BeforeSleep => (EMPTY, PARKED),
    };
    match word.compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => {}
        Err(NOTIFIED) => {
            // An unpark came unseen: everyone parked here re-checks (each returns with
            // a token of its own), and the word goes back to EMPTY.
            table::global().wake(addr, usize::MAX, u32::MAX);
            let _ = word.compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst);
        }
        Err(_) => {}
    }
}
