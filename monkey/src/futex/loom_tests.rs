//! Model checks (loom) of the futex table: a wake racing a waiter's registration is
//! never lost, the waiter count and its fences let a waker skip the table only when
//! nobody can be parked, and a wait that ends by itself agrees with a racing wake on
//! who was woken. The bucket lock runs on a model of the kernel futex. Each waiting
//! thread stands in for a greenlet's `FUTEX_WAIT` hook, calling the table in the
//! hook's order (`wait_on`, `park`); the waking thread for `FUTEX_WAKE` (`Futex::wake`).

use loom::sync::atomic::AtomicU32;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use super::table::{Table, Waker, Word};
use crate::thread_sync::Ordering;

/// A parked greenlet's `ThreadWaker`: an event its thread waits on.
#[derive(Clone)]
struct Event(Arc<(Mutex<bool>, Condvar)>);

impl Event {
    fn new() -> Event {
        Event(Arc::new((Mutex::new(false), Condvar::new())))
    }

    fn wait(&self) {
        let (set, changed) = &*self.0;
        let mut set = set.lock().unwrap();
        while !*set {
            set = changed.wait(set).unwrap();
        }
    }
}

impl Waker for Event {
    fn wake(&self) {
        let (set, changed) = &*self.0;
        *set.lock().unwrap() = true;
        changed.notify_all();
    }
}

/// How a modelled `FUTEX_WAIT` ended.
#[derive(Debug, PartialEq)]
enum Waited {
    /// The word had changed: `EAGAIN`, no park.
    Changed,
    /// A wake took it off the table.
    Woken,
    /// It left the table by itself (a timeout) before any wake took it.
    LeftFirst,
}

/// A greenlet's `FUTEX_WAIT` on `word` for `expected`: parks until woken, or, with
/// `times_out`, returns at once as if its deadline had passed.
fn futex_wait(table: &Table<Event>, word: &AtomicU32, expected: u32, times_out: bool) -> Waited {
    let addr = word as *const AtomicU32 as usize;
    let Some(joining) = table.start_wait(addr, || word.load(Ordering::SeqCst) == expected) else {
        return Waited::Changed;
    };
    let event = Event::new();
    let id = joining.join(u32::MAX, Word::Ordinary, event.clone());
    if !times_out {
        event.wait();
    }
    if table.leave(addr, id) {
        Waited::LeftFirst
    } else {
        Waited::Woken
    }
}

/// A `FUTEX_WAKE` of up to `max` waiters on `word` made after the waker changed it:
/// returns how many greenlets it woke.
fn futex_wake(table: &Table<Event>, word: &AtomicU32, max: usize) -> usize {
    if !table.anyone_parked() {
        return 0;
    }
    table
        .wake(word as *const AtomicU32 as usize, max, u32::MAX)
        .0
}

/// One waiter (which times out at once if `times_out`) and one waker that changes the
/// word, as std's `Mutex::unlock` does with a release swap, and then wakes: the wake's
/// count says whether it ended the wait.
fn one_waiter_and_a_wake(times_out: bool) {
    loom::model(move || {
        let table = Arc::new(Table::<Event>::new());
        let word = Arc::new(AtomicU32::new(0));
        let waiter = {
            let (table, word) = (table.clone(), word.clone());
            thread::spawn(move || futex_wait(&table, &word, 0, times_out))
        };
        word.swap(1, Ordering::Release);
        let woken = futex_wake(&table, &word, 1);
        let waited = waiter.join().unwrap();
        assert_eq!(woken, usize::from(waited == Waited::Woken), "{waited:?}");
    });
}

/// The waiter either sees the change or is woken, never parked for ever (loom reports
/// a thread blocked for ever as a deadlock).
#[test]
fn a_wake_racing_a_wait_is_never_lost() {
    one_waiter_and_a_wake(false);
}

/// A wait that times out while a wake comes: exactly one of them takes it off the
/// table, and the wake's count says whether it did.
#[test]
fn a_timed_out_wait_and_a_wake_agree_on_who_ended_it() {
    one_waiter_and_a_wake(true);
}

/// Two waiters on one word (one bucket, so its lock is contended and may sleep in the
/// modelled kernel) and a wake for all: both end, and the count is theirs.
#[test]
fn two_waiters_and_a_wake_all_share_the_bucket_lock() {
    loom::model(|| {
        let table = Arc::new(Table::<Event>::new());
        let word = Arc::new(AtomicU32::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (table, word) = (table.clone(), word.clone());
                thread::spawn(move || futex_wait(&table, &word, 0, false))
            })
            .collect();
        word.swap(1, Ordering::Release);
        let woken = futex_wake(&table, &word, usize::MAX);
        let parked_and_woken = waiters
            .into_iter()
            .map(|w| w.join().unwrap())
            .filter(|waited| *waited == Waited::Woken)
            .count();
        assert_eq!(woken, parked_and_woken);
    });
}
