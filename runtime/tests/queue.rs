//! `greenweave_runtime::queue`: ordering, blocking, timeouts, close, kills, capacity.
//!
//! Greenlets are ordered with joins, queues and `yield_now`, never with sleeps; the few
//! timing checks are generous bounds on timeouts.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::queue::{
    Channel, GetError, GetTimeoutError, JoinableQueue, LifoQueue, PriorityQueue, PutError,
    PutTimeoutError, Queue, TryGetError, TryPutError,
};
use greenweave_runtime::{Elapsed, JoinError, JoinHandle, spawn, with_timeout, yield_now};

const SHORT: Duration = Duration::from_millis(20);

/// Lets every ready greenlet run until it blocks (a few rounds, for chains of wake-ups).
fn settle() {
    for _ in 0..5 {
        yield_now();
    }
}

/// Counts how many times it was dropped.
struct Tracked(u32, Rc<Cell<u32>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.set(self.1.get() + 1);
    }
}

#[test]
fn bounded_queue_single_producer_many_consumers_gives_each_item_once_in_order() {
    let q = Rc::new(Queue::new(3));
    let taken = Rc::new(RefCell::new(Vec::new()));
    let consumers: Vec<JoinHandle<Vec<u32>>> = (0..4)
        .map(|_| {
            let (q, taken) = (q.clone(), taken.clone());
            spawn(move || {
                let mut mine = Vec::new();
                for item in &*q {
                    assert!(q.len() <= 3);
                    taken.borrow_mut().push(item);
                    mine.push(item);
                    yield_now();
                }
                mine
            })
        })
        .collect();
    let producer = spawn({
        let q = q.clone();
        move || {
            for i in 0..200 {
                q.put(i).unwrap();
                assert!(q.len() <= 3, "capacity exceeded: {}", q.len());
            }
            q.close();
        }
    });
    producer.join().unwrap();
    let mut total = 0;
    for c in consumers {
        let mine = c.join().unwrap();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "a consumer saw {mine:?}"
        );
        total += mine.len();
    }
    assert_eq!(total, 200);
    assert_eq!(
        *taken.borrow(),
        (0..200).collect::<Vec<_>>(),
        "taken in put order"
    );
}

#[test]
fn several_producers_each_keep_their_order_and_nothing_is_lost_or_duplicated() {
    let q = Rc::new(Queue::new(4));
    let producers: Vec<_> = (0..5u32)
        .map(|p| {
            let q = q.clone();
            spawn(move || {
                for i in 0..100u32 {
                    q.put((p, i)).unwrap();
                    if i % 7 == 0 {
                        yield_now();
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            spawn(move || q.iter().collect::<Vec<_>>())
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    let mut all = Vec::new();
    for c in consumers {
        let got = c.join().unwrap();
        for p in 0..5 {
            let seq: Vec<u32> = got.iter().filter(|x| x.0 == p).map(|x| x.1).collect();
            assert!(seq.windows(2).all(|w| w[0] < w[1]), "producer {p}: {seq:?}");
        }
        all.extend(got);
    }
    all.sort_unstable();
    let expected: Vec<_> = (0..5).flat_map(|p| (0..100).map(move |i| (p, i))).collect();
    assert_eq!(all, expected);
}

#[test]
fn lifo_queue_gives_newest_first() {
    let q = LifoQueue::unbounded();
    for i in 1..=4 {
        q.put(i).unwrap();
    }
    assert_eq!(q.get(), Ok(4));
    q.put(5).unwrap();
    assert_eq!(q.drain(), [5, 3, 2, 1]);
    assert_eq!(q.try_get(), Err(TryGetError::Empty));
}

#[test]
fn priority_queue_gives_smallest_first_and_reverse_gives_largest() {
    let q = PriorityQueue::new(10);
    for x in [5, 1, 4, 1, 3, 9, 2] {
        q.put(x).unwrap();
    }
    assert_eq!(q.drain(), [1, 1, 2, 3, 4, 5, 9]);

    let jobs = PriorityQueue::unbounded();
    for (prio, name) in [(2, "b"), (3, "c"), (1, "a")] {
        jobs.put((Reverse(prio), name)).unwrap();
    }
    let names: Vec<_> = jobs.try_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["c", "b", "a"]);
}

#[test]
fn priority_queue_blocked_getter_gets_smallest_of_what_was_put_meanwhile() {
    let q = Rc::new(PriorityQueue::new(3));
    let getter = spawn({
        let q = q.clone();
        move || {
            let first = q.get().unwrap(); // blocks: empty
            let rest: Vec<_> = q.try_iter().collect();
            (first, rest)
        }
    });
    settle();
    assert_eq!(q.waiter_counts(), (1, 0));
    for x in [7, 3, 5] {
        q.put(x).unwrap(); // no switch: all three are in before the getter runs
    }
    assert!(q.is_full());
    assert_eq!(q.try_put(1), Err(TryPutError::Full(1)));
    assert_eq!(getter.join().unwrap(), (3, vec![5, 7]));
}

#[test]
fn joinable_queue_join_waits_for_task_done_not_just_for_empty() {
    let q = Rc::new(JoinableQueue::new(2));
    let release = Rc::new(Channel::new());
    let worker = spawn({
        let (q, release) = (q.clone(), release.clone());
        move || {
            for item in &*q {
                release.get().unwrap(); // hold the task until main says so
                let _ = item;
                q.task_done();
            }
        }
    });
    q.put("job").unwrap();
    settle();
    assert!(q.is_empty(), "the worker took the job");
    assert_eq!(q.unfinished_tasks(), 1);
    assert_eq!(q.join_timeout(SHORT), Err(Elapsed), "taken but not done");
    release.put(()).unwrap(); // returns once the worker has it
    q.join();
    assert_eq!(q.unfinished_tasks(), 0);
    q.close();
    worker.join().unwrap();
}

#[test]
fn joinable_queue_join_returns_only_after_every_task_done() {
    let q = Rc::new(JoinableQueue::new(5));
    let done = Rc::new(Cell::new(0));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (q, done) = (q.clone(), done.clone());
            spawn(move || {
                for n in &*q {
                    for _ in 0..n % 4 {
                        yield_now(); // "work"
                    }
                    done.set(done.get() + 1);
                    q.task_done();
                }
            })
        })
        .collect();
    let joiners: Vec<_> = (0..2)
        .map(|_| {
            let (q, done) = (q.clone(), done.clone());
            spawn(move || {
                q.join();
                done.get()
            })
        })
        .collect();
    for n in 0..20u32 {
        q.put(n).unwrap();
    }
    q.join();
    assert_eq!(done.get(), 20);
    assert_eq!(q.unfinished_tasks(), 0);
    for j in joiners {
        assert_eq!(j.join().unwrap(), 20, "a joiner returned early");
    }
    q.close();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        JoinableQueue::<u8>::unbounded().join_timeout(Duration::ZERO),
        Ok(())
    );
}

#[test]
#[should_panic(expected = "task_done() called more times than items were put on JoinableQueue")]
fn joinable_queue_task_done_too_many_times_panics() {
    let q = JoinableQueue::unbounded();
    q.put(1).unwrap();
    assert_eq!(q.get(), Ok(1));
    q.task_done();
    q.task_done();
}

#[test]
fn channel_put_returns_only_after_a_getter_took_the_item() {
    let ch = Rc::new(Channel::new());
    let log = Rc::new(RefCell::new(Vec::new()));
    // Putter first: it waits for a getter.
    let putter = spawn({
        let (ch, log) = (ch.clone(), log.clone());
        move || {
            ch.put(1).unwrap();
            log.borrow_mut().push("put 1 returned");
        }
    });
    settle();
    assert!(log.borrow().is_empty(), "put returned with nobody getting");
    assert_eq!((ch.len(), ch.waiter_counts()), (1, (0, 1)));
    assert_eq!(ch.get(), Ok(1));
    log.borrow_mut().push("got 1");
    putter.join().unwrap();
    // Getter first: the putter still returns only after the take.
    let getter = spawn({
        let (ch, log) = (ch.clone(), log.clone());
        move || {
            let x = ch.get().unwrap();
            log.borrow_mut().push("got 2");
            x
        }
    });
    settle();
    assert!(!ch.is_full(), "a getter waits");
    ch.put(2).unwrap();
    log.borrow_mut().push("put 2 returned");
    assert_eq!(getter.join().unwrap(), 2);
    assert_eq!(
        *log.borrow(),
        ["got 1", "put 1 returned", "got 2", "put 2 returned"]
    );
    assert_eq!((ch.len(), ch.maxsize()), (0, Some(0)));
}

#[test]
fn channel_try_forms_need_a_waiting_partner() {
    let ch = Rc::new(Channel::new());
    assert_eq!(ch.try_put(1), Err(TryPutError::Full(1)));
    assert_eq!(ch.try_get(), Err(TryGetError::Empty));
    let getter = spawn({
        let ch = ch.clone();
        move || ch.get()
    });
    settle();
    assert_eq!(ch.try_put(2), Ok(()));
    assert_eq!(
        ch.try_put(3),
        Err(TryPutError::Full(3)),
        "only one getter waits"
    );
    assert_eq!(getter.join().unwrap(), Ok(2));
    let putter = spawn({
        let ch = ch.clone();
        move || ch.put(4)
    });
    settle();
    assert_eq!(ch.try_get(), Ok(4));
    assert_eq!(putter.join().unwrap(), Ok(()));
}

#[test]
fn channel_put_timeout_returns_the_item_undelivered() {
    let ch = Rc::new(Channel::new());
    let start = Instant::now();
    assert_eq!(
        ch.put_timeout("x", SHORT),
        Err(PutTimeoutError::Timeout("x"))
    );
    assert!(start.elapsed() >= SHORT && start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        ch.try_get(),
        Err(TryGetError::Empty),
        "the item was withdrawn"
    );
    // A getter that arrives later does not receive it either.
    let late = spawn({
        let ch = ch.clone();
        move || ch.get_timeout(SHORT)
    });
    assert_eq!(late.join().unwrap(), Err(GetTimeoutError::Timeout));
    assert_eq!((ch.len(), ch.waiter_counts()), (0, (0, 0)));
    assert_eq!(
        ch.put_timeout("y", Duration::ZERO),
        Err(PutTimeoutError::Timeout("y"))
    );
}

#[test]
fn timeouts_return_errors_with_the_item_and_respect_the_deadline() {
    let q = Queue::new(1);
    let start = Instant::now();
    assert_eq!(q.get_timeout(SHORT), Err(GetTimeoutError::Timeout));
    let waited = start.elapsed();
    assert!(
        waited >= SHORT && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    q.put_timeout(1, Duration::ZERO).unwrap(); // room: no waiting needed
    let start = Instant::now();
    let err = q.put_timeout(2, SHORT).unwrap_err();
    assert!(err.is_timeout() && start.elapsed() >= SHORT);
    assert_eq!(err.into_inner(), 2);
    assert_eq!((q.len(), q.get_timeout(Duration::ZERO)), (1, Ok(1)));
    assert_eq!(q.get_timeout(Duration::ZERO), Err(GetTimeoutError::Timeout));
    // A timeout too large to represent never expires; the item arrives first.
    let q = Rc::new(Queue::new(1));
    let putter = spawn({
        let q = q.clone();
        move || q.put_timeout(9, Duration::MAX)
    });
    assert_eq!(q.get_timeout(Duration::MAX), Ok(9));
    assert_eq!(putter.join().unwrap(), Ok(()));
}

#[test]
fn timed_get_takes_an_item_that_arrives_before_the_deadline() {
    let q = Rc::new(Queue::unbounded());
    let getter = spawn({
        let q = q.clone();
        move || q.get_timeout(Duration::from_secs(30))
    });
    settle();
    q.put('a').unwrap();
    assert_eq!(getter.join().unwrap(), Ok('a'));
}

#[test]
fn try_forms_never_wait() {
    let q = Queue::new(2);
    assert_eq!(q.try_get(), Err(TryGetError::Empty));
    assert_eq!((q.try_put(1), q.try_put(2)), (Ok(()), Ok(())));
    assert!(q.is_full() && q.len() == 2 && q.maxsize() == Some(2));
    let err = q.try_put(3).unwrap_err();
    assert!(err.is_full());
    assert_eq!(err.into_inner(), 3);
    assert_eq!(q.try_get(), Ok(1));
    q.close();
    assert_eq!(q.try_put(4), Err(TryPutError::Closed(4)));
    assert_eq!(q.try_get(), Ok(2), "queued items outlive close");
    assert_eq!(q.try_get(), Err(TryGetError::Closed));
    assert_eq!(Queue::<()>::unbounded().maxsize(), None);
}

#[test]
fn close_wakes_blocked_getters_with_closed() {
    let q: Rc<Queue<u8>> = Rc::new(Queue::new(1));
    let getters: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            spawn(move || q.get())
        })
        .collect();
    let timed = spawn({
        let q = q.clone();
        move || q.get_timeout(Duration::from_secs(30))
    });
    settle();
    assert_eq!(q.waiter_counts(), (4, 0));
    assert!(q.close());
    assert!(!q.close(), "already closed");
    for g in getters {
        assert_eq!(g.join().unwrap(), Err(GetError));
    }
    assert_eq!(timed.join().unwrap(), Err(GetTimeoutError::Closed));
    assert_eq!(q.put(1), Err(PutError(1)));
}

#[test]
fn close_wakes_blocked_putters_with_their_items_and_queued_items_still_drain() {
    let q = Rc::new(Queue::new(2));
    q.put(0).unwrap();
    q.put(1).unwrap();
    let putters: Vec<_> = (2..5)
        .map(|i| {
            let q = q.clone();
            spawn(move || q.put(i))
        })
        .collect();
    let timed = spawn({
        let q = q.clone();
        move || q.put_timeout(5, Duration::from_secs(30))
    });
    settle();
    assert_eq!(q.waiter_counts(), (0, 4));
    q.close();
    for (p, i) in putters.into_iter().zip(2..) {
        assert_eq!(p.join().unwrap().unwrap_err().into_inner(), i);
    }
    assert_eq!(timed.join().unwrap(), Err(PutTimeoutError::Closed(5)));
    assert!(q.is_closed());
    assert_eq!(q.iter().collect::<Vec<_>>(), [0, 1], "ends once drained");
    assert_eq!(q.get(), Err(GetError));
}

#[test]
fn channel_close_gives_blocked_putters_their_items_back() {
    let ch = Rc::new(Channel::new());
    let putter = spawn({
        let ch = ch.clone();
        move || ch.put(String::from("kept"))
    });
    let getter_ch: Rc<Channel<String>> = Rc::new(Channel::new());
    let getter = spawn({
        let ch = getter_ch.clone();
        move || ch.get()
    });
    settle();
    ch.close();
    getter_ch.close();
    assert_eq!(putter.join().unwrap(), Err(PutError(String::from("kept"))));
    assert_eq!(getter.join().unwrap(), Err(GetError));
    assert_eq!(ch.try_get(), Err(TryGetError::Closed));
    assert_eq!(ch.put("late".into()), Err(PutError(String::from("late"))));
}

#[test]
fn iteration_ends_on_close_and_try_iter_takes_only_what_is_there() {
    let q = Rc::new(Queue::new(2));
    let consumer = spawn({
        let q = q.clone();
        move || q.iter().collect::<String>()
    });
    for c in "hello".chars() {
        q.put(c).unwrap();
    }
    q.close();
    assert_eq!(consumer.join().unwrap(), "hello");

    let q = Queue::unbounded();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.try_iter().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        q.try_iter().next(),
        None,
        "open and empty: try_iter does not wait"
    );
    q.put(3).unwrap();
    assert_eq!(q.drain(), [3]);
}

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
fn a_wake_up_consumed_by_a_killed_getter_passes_to_the_next() {
    let q = Rc::new(Queue::unbounded());
    let first = spawn({
        let q = q.clone();
        move || q.get()
    });
    let second = spawn({
        let q = q.clone();
        move || q.get()
    });
    settle();
    q.put(1).unwrap(); // wakes `first`...
    first.kill_nowait(); // ...which dies before it can take the item
    assert!(matches!(first.join(), Err(JoinError::Killed)));
    assert_eq!(second.join().unwrap(), Ok(1));
    assert_eq!(q.waiter_counts(), (0, 0));
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
        on.contains("queue.rs:") && on.ends_with("(empty, maxsize 3)"),
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
