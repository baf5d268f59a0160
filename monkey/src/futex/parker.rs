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
//!   also wakes by itself after a slice and re-checks. An `unpark` is thus never lost;
//!   at worst it is seen a slice late (at most 1 s).
//! - Those self-wake-ups are kept to about a tenth of the thread's time, whatever a
//!   re-check costs: the slice is 10 ms, or per greenlet parked here 100 µs or ten
//!   times what a re-check took lately on this thread (measured from a slice's end to
//!   the same greenlet's next wait), whichever is more. A fixed rate would not do:
//!   under Valgrind a re-check (a `reqwest` poll) costs some 0.3 ms, so 100 greenlets
//!   at 10 ms slices would take more than all of the thread's time, and the threads
//!   that would answer them (`reqwest`'s runtime thread) would starve.
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
    /// The greenlet (id) re-checking after its slice ended, and since when.
    static RECHECKING: Cell<Option<(u64, Instant)>> = const { Cell::new(None) };
    /// What a re-check after a slice costs on this thread, smoothed (see [`slice`]).
    static RECHECK_COST: Cell<Duration> = const { Cell::new(Duration::ZERO) };
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

/// How long a greenlet waits on the word before it re-checks by itself, with `parked`
/// greenlets parked here and re-checks costing `recheck_cost`: 10 ms, or per greenlet
/// 100 µs or ten times `recheck_cost` if that is more (so self-wake-ups take at most
/// about a tenth of the thread's time, and stay under 10,000 a second), at most 1 s.
fn slice(parked: usize, recheck_cost: Duration) -> Duration {
    let per_greenlet = Duration::from_micros(100).max(recheck_cost.saturating_mul(10));
    let parked = u32::try_from(parked).unwrap_or(u32::MAX);
    per_greenlet
        .saturating_mul(parked)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// The longest re-check sample taken: more is a greenlet that went on to other work
/// (its wait was over) before it waited here again, not the cost of a re-check.
const LONGEST_RECHECK: Duration = Duration::from_millis(10);

/// At a wait's start: if the same greenlet's slice ended last on this thread, the time
/// since is what its re-check cost; folded into [`RECHECK_COST`] (a quarter weight).
fn measure_recheck(greenlet: u64, now: Instant) {
    if let Some((who, since)) = RECHECKING.take()
        && who == greenlet
    {
        let sample = now.saturating_duration_since(since).min(LONGEST_RECHECK);
        let cost = RECHECK_COST.get();
        RECHECK_COST.set((cost.saturating_mul(3) + sample) / 4);
    }
}

/// A greenlet's wait on this thread's parking word (its `park` just moved the word
/// from EMPTY to PARKED).
pub(super) fn wait(word: &AtomicU32, deadline: Option<Instant>) -> c_long {
    let addr = word.as_ptr() as usize;
    let greenlet = greenweave_greenlet::current().id();
    let now = Instant::now();
    measure_recheck(greenlet, now);
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
    let slice_end = now + slice(parked, RECHECK_COST.get());
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
    if ended == Ended::TimedOut {
        if deadline.is_some_and(|d| d <= slice_end) {
            return fail(libc::ETIMEDOUT);
        }
        RECHECKING.set(Some((greenlet, Instant::now())));
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
