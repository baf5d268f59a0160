//! `greenweave_runtime::queue`: ordering: FIFO with many producers and consumers, LIFO, priority.
//!
//! Greenlets are ordered with joins, queues and `yield_now`, never with sleeps; the few
//! timing checks are generous bounds on timeouts.

#[path = "common/queue.rs"]
mod common;
use common::*;

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
