//! `greenweave_runtime::queue`: kills at every wait, capacity under stress, no leaked waiters.
//!
//! Greenlets are ordered with joins, queues and `yield_now`, never with sleeps; the few
//! timing checks are generous bounds on timeouts.

#[path = "common/queue.rs"]
mod common;
use common::*;

#[test]
fn killed_getter_leaves_the_queue_working() {
    let q = Rc::new(Queue::new(1));
    let victim = spawn({
        let q = q.clone();
        move || q.get()
    });
    settle();
    assert_eq!(q.waiter_counts(), (1, 0));
    victim.kill();
    assert!(matches!(victim.join(), Err(JoinError::Killed)));
    assert_eq!(q.waiter_counts(), (0, 0));
    let next = spawn({
        let q = q.clone();
        move || q.get()
    });
    q.put(7).unwrap();
    assert_eq!(next.join().unwrap(), Ok(7));
}

#[test]
fn an_item_handed_to_a_getter_killed_before_it_runs_is_not_lost() {
    let q = Rc::new(Queue::unbounded());
    let got = Rc::new(Cell::new(None));
    let first = spawn({
        let (q, got) = (q.clone(), got.clone());
        move || {
            got.set(Some(q.get().unwrap()));
            greenweave_runtime::sleep(Duration::from_secs(60));
        }
    });
    let second = spawn({
        let q = q.clone();
        move || q.get()
    });
    settle();
    q.put(1).unwrap(); // handed to `first`, which has not run since...
    first.kill_nowait(); // ...and is killed before it does
    assert!(
        matches!(first.join(), Err(JoinError::Killed)),
        "the kill lands at its next blocking point"
    );
    assert_eq!(got.get(), Some(1), "the get it was in returned the item");
    assert_eq!(q.waiter_counts(), (1, 0), "`second` still waits");
    q.put(2).unwrap();
    assert_eq!(second.join().unwrap(), Ok(2));
    assert_eq!(q.waiter_counts(), (0, 0));
}

#[test]
fn a_priority_wake_up_consumed_by_a_killed_getter_passes_to_the_next() {
    // Priority (and LIFO) getters are woken, not handed an item: one killed after its
    // wake-up must pass the wake-up on, or the item would sit while a getter sleeps.
    let q = Rc::new(PriorityQueue::unbounded());
    let first = spawn({
        let q = q.clone();
        move || q.get()
    });
    let second = spawn({
        let q = q.clone();
        move || q.get()
    });
    settle();
    q.put(1).unwrap(); // stored, and `first` woken...
    first.kill_nowait(); // ...which dies before it can take the item
    assert!(matches!(first.join(), Err(JoinError::Killed)));
    assert_eq!(second.join().unwrap(), Ok(1));
    assert_eq!((q.len(), q.waiter_counts()), (0, (0, 0)));
}

#[test]
fn killed_putter_drops_its_item_and_the_queue_stays_consistent() {
    let drops = Rc::new(Cell::new(0));
    let q = Rc::new(Queue::new(1));
    q.put(Tracked(1, drops.clone())).unwrap();
    let victim = spawn({
        let (q, drops) = (q.clone(), drops.clone());
        move || q.put(Tracked(2, drops)).map_err(|_| ())
    });
    settle();
    assert_eq!(q.waiter_counts(), (0, 1));
    victim.kill();
    assert_eq!(drops.get(), 1, "the killed putter's item went down with it");
    assert_eq!((q.len(), q.waiter_counts()), (1, (0, 0)));
    assert_eq!(q.get().unwrap().0, 1);
    q.put(Tracked(3, drops.clone())).unwrap();
    assert_eq!(q.get().unwrap().0, 3);
}

#[test]
fn killed_channel_putter_item_is_withdrawn_not_delivered() {
    let drops = Rc::new(Cell::new(0));
    let ch = Rc::new(Channel::new());
    let victim = spawn({
        let (ch, drops) = (ch.clone(), drops.clone());
        move || ch.put(Tracked(1, drops)).map_err(|_| ())
    });
    settle();
    assert_eq!(ch.len(), 1);
    victim.kill();
    assert_eq!((drops.get(), ch.len(), ch.waiter_counts()), (1, 0, (0, 0)));
    assert!(matches!(ch.try_get(), Err(TryGetError::Empty)));
}

#[test]
fn a_timeout_around_a_blocked_get_leaves_no_waiter_behind() {
    let q: Queue<u8> = Queue::new(1);
    assert_eq!(with_timeout(SHORT, || q.get()), Err(Elapsed));
    assert_eq!(q.waiter_counts(), (0, 0));
    q.put(1).unwrap();
    assert_eq!(with_timeout(SHORT, || q.put(2)), Err(Elapsed));
    assert_eq!(q.waiter_counts(), (0, 0));
    assert_eq!(q.drain(), [1]);
}

#[test]
fn capacity_is_never_exceeded_with_twenty_producers_and_consumers() {
    const MAX: usize = 5;
    let q = Rc::new(Queue::new(MAX));
    let peak = Rc::new(Cell::new(0));
    let check = {
        let (q, peak) = (q.clone(), peak.clone());
        move || {
            assert!(q.len() <= MAX, "len {} > maxsize {MAX}", q.len());
            assert_eq!(q.is_full(), q.len() == MAX);
            peak.set(peak.get().max(q.len()));
        }
    };
    let producers: Vec<_> = (0..20u32)
        .map(|p| {
            let (q, check) = (q.clone(), check.clone());
            spawn(move || {
                for i in 0..50u32 {
                    q.put(p * 1000 + i).unwrap();
                    check();
                    if (p + i) % 3 == 0 {
                        yield_now();
                        check();
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..20u32)
        .map(|c| {
            let (q, check) = (q.clone(), check.clone());
            spawn(move || {
                let mut got = Vec::new();
                for item in &*q {
                    check();
                    got.push(item);
                    if (c + item) % 2 == 0 {
                        yield_now();
                        check();
                    }
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    let mut all: Vec<u32> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    let expected: Vec<u32> = (0..20)
        .flat_map(|p| (0..50).map(move |i| p * 1000 + i))
        .collect();
    assert_eq!(all, expected, "every item exactly once");
    assert_eq!(peak.get(), MAX, "the producers did fill the queue");
    assert_eq!(q.waiter_counts(), (0, 0));
}

#[test]
fn repeated_timed_waits_leave_no_waiter_entries() {
    let q: Queue<u32> = Queue::new(1);
    for _ in 0..50 {
        assert_eq!(
            q.get_timeout(Duration::from_millis(1)),
            Err(GetTimeoutError::Timeout)
        );
    }
    assert_eq!(q.waiter_counts(), (0, 0));
    q.put(0).unwrap();
    for i in 0..50 {
        assert_eq!(
            q.put_timeout(i, Duration::from_millis(1)),
            Err(PutTimeoutError::Timeout(i))
        );
    }
    assert_eq!(q.waiter_counts(), (0, 0));
    let ch: Channel<u32> = Channel::new();
    for i in 0..50 {
        assert!(ch.put_timeout(i, Duration::from_millis(1)).is_err());
        assert!(ch.get_timeout(Duration::from_millis(1)).is_err());
    }
    assert_eq!((ch.len(), ch.waiter_counts()), (0, (0, 0)));
}

#[test]
fn blocked_waits_are_described_for_reports() {
    let q: Rc<Queue<u8>> = Rc::new(Queue::new(3));
    let getter = spawn({
        let q = q.clone();
        move || q.get()
    });
    settle();
    let info = greenweave_runtime::greenlets()
        .into_iter()
        .find(|g| g.id == getter.id())
        .unwrap();
    let on = info.waiting_on.unwrap();
    assert!(on.starts_with("get on Queue created at "), "{on}");
    assert!(
        on.contains("queue_kills_capacity.rs:") && on.ends_with("(empty, maxsize 3)"),
        "{on}"
    );
    q.close();
    getter.join().unwrap().unwrap_err();
    // With nobody to put, a get is a deadlock, and the report says on what.
    let lonely: Queue<u8> = Queue::unbounded();
    let report = panic::catch_unwind(AssertUnwindSafe(|| lonely.get())).unwrap_err();
    let report = report.downcast_ref::<String>().unwrap();
    assert!(report.contains("get on Queue created at") && report.contains("(empty, unbounded)"));
}

#[test]
fn errors_display_debug_and_give_items_back_without_debug_items() {
    struct Opaque(u8);
    let e = TryPutError::Full(Opaque(1));
    assert_eq!(format!("{e:?} / {e}"), "Full(..) / the queue is full");
    assert_eq!(e.into_inner().0, 1);
    let e = PutTimeoutError::Timeout(Opaque(2));
    assert_eq!(format!("{e:?}"), "Timeout(..)");
    assert_eq!(e.into_inner().0, 2);
    let e = PutError(Opaque(3));
    assert_eq!(format!("{e:?}: {e}"), "PutError(..): put on a closed queue");
    let boxed: Box<dyn std::error::Error> = Box::new(PutError(Opaque(4)));
    assert_eq!(boxed.to_string(), "put on a closed queue");
    assert_eq!(
        TryGetError::Closed.to_string(),
        "the queue is closed and empty"
    );
    assert_eq!(GetTimeoutError::from(GetError), GetTimeoutError::Closed);
    assert!(TryPutError::from(PutError(5)).is_closed());
    let q: Queue<Opaque> = Queue::new(2);
    let dbg = format!("{q:?}");
    assert!(
        dbg.starts_with("Queue { len: 0, maxsize: Some(2), closed: false"),
        "{dbg}"
    );
}
