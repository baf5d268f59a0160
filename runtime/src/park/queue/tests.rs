//! The intrusive queue: order, leaving from anywhere, and notifications that reach
//! waiters whose wait ended another way.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::*;
use crate::park::SlotQueue;
use crate::{JoinError, JoinHandle, spawn, with_timeout, yield_now};

/// Spawns `n` greenlets that each wait once in `queue` (unwinding on interrupts) and
/// then record their index in `woken`, and lets them all park.
fn waiters(
    queue: &Rc<WaitQueue>,
    n: usize,
    woken: &Rc<RefCell<Vec<usize>>>,
) -> Vec<JoinHandle<Wake>> {
    let before = queue.len();
    let handles = (0..n)
        .map(|i| {
            let (queue, woken) = (queue.clone(), woken.clone());
            spawn(move || {
                let why = queue.wait_or_raise(&"test queue", None);
                woken.borrow_mut().push(i);
                why
            })
        })
        .collect();
    yield_now();
    assert_eq!(queue.len(), before + n, "every waiter parked");
    handles
}

#[test]
fn waiters_leave_from_the_front_middle_and_back_and_the_rest_keep_their_order() {
    let queue = Rc::new(WaitQueue::new());
    let woken = Rc::default();
    let hs = waiters(&queue, 5, &woken);
    for i in [0, 2, 4] {
        hs[i].kill();
    }
    assert_eq!(queue.len(), 2, "the killed waiters left");
    // Newcomers join behind the survivors.
    let late = waiters(&queue, 2, &Rc::new(RefCell::new(Vec::new())));
    assert_eq!(queue.len(), 4);
    assert_eq!(queue.notify_all(), 4);
    for (i, h) in hs.into_iter().enumerate() {
        match h.join() {
            Err(JoinError::Killed) => assert!(i % 2 == 0, "waiter {i} was not killed"),
            woke => assert_eq!(woke.unwrap(), Wake::Notified),
        }
    }
    for h in late {
        assert_eq!(h.join().unwrap(), Wake::Notified);
    }
    assert_eq!(
        *woken.borrow(),
        [1, 3],
        "the survivors were woken first come, first served"
    );
    assert!(queue.is_empty());
    assert!(!queue.notify_one(), "nobody is left to wake");
}

#[test]
fn a_notification_skips_a_waiter_whose_wait_ended_and_wakes_the_next() {
    let queue = Rc::new(WaitQueue::new());
    let woken = Rc::default();
    let mut hs = waiters(&queue, 3, &woken).into_iter();
    let (killed, next, last) = (hs.next().unwrap(), hs.next().unwrap(), hs.next().unwrap());
    // Killed: its wait has ended, but it has not run to leave the queue yet.
    killed.kill_nowait();
    assert_eq!(queue.len(), 3);
    assert!(
        queue.notify_one(),
        "the next live waiter takes the notification"
    );
    assert_eq!(
        queue.len(),
        1,
        "the killed waiter was skipped, the next one woken"
    );
    assert!(matches!(killed.join(), Err(JoinError::Killed)));
    assert_eq!(next.join().unwrap(), Wake::Notified);
    yield_now();
    assert!(!last.is_finished(), "the skipped waiter passed nothing on");
    assert_eq!(queue.len(), 1);
    assert!(queue.notify_one());
    assert_eq!(last.join().unwrap(), Wake::Notified);
    assert_eq!(*woken.borrow(), [1, 2]);
}

#[test]
fn a_notification_taken_by_a_waiter_killed_before_it_runs_is_passed_on() {
    let queue = Rc::new(WaitQueue::new());
    let woken = Rc::default();
    let mut hs = waiters(&queue, 2, &woken).into_iter();
    let (first, second) = (hs.next().unwrap(), hs.next().unwrap());
    assert!(queue.notify_one());
    first.kill_nowait(); // after its notification, before it runs
    assert!(matches!(first.join(), Err(JoinError::Killed)));
    assert_eq!(
        second.join().unwrap(),
        Wake::Notified,
        "the killed waiter passed its notification on"
    );
    assert!(queue.is_empty());
}

#[test]
fn a_waiter_unwound_by_a_timeout_leaves_the_queue() {
    let queue = WaitQueue::new();
    let unwound = with_timeout(Duration::from_millis(5), || {
        queue.wait_or_raise(&"test", None)
    });
    assert!(unwound.is_err());
    assert!(queue.is_empty());
    assert!(!queue.notify_one());
}

#[test]
fn a_slot_waiter_is_served_in_place_and_one_that_timed_out_leaves() {
    let queue: Rc<SlotQueue<u32>> = Rc::new(SlotQueue::new());
    let q = queue.clone();
    let getter = spawn(move || {
        let slot = Cell::new(None);
        let why = q.wait(&slot, &"get", None);
        (why, slot.take())
    });
    yield_now();
    assert!(queue.serve(|slot| slot.set(Some(7))));
    assert_eq!(getter.join().unwrap(), (Ok(Wake::Notified), Some(7)));
    let slot = Cell::new(None);
    let deadline = Instant::now() + Duration::from_millis(2);
    assert_eq!(
        queue.wait(&slot, &"get", Some(deadline)),
        Ok(Wake::TimedOut)
    );
    assert_eq!(queue.len(), 0);
    assert!(!queue.serve(|_| unreachable!("nobody waits")));
}
