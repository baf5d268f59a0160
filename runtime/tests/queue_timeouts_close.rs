//! `greenweave_runtime::queue`: timeouts, try_ forms, close and iteration.
//!
//! Greenlets are ordered with joins, queues and `yield_now`, never with sleeps; the few
//! timing checks are generous bounds on timeouts.

#[path = "common/queue.rs"]
mod common;
use common::*;

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
fn a_put_whose_item_is_taken_after_its_deadline_passed_but_before_it_ran_succeeds() {
    // The deadline of the putter's wait (`put_timeout`), and the `Timeout` around a
    // plain `put`, both pass while the thread is blocked (a std sleep: no greenlet
    // runs, so the timers fire only afterwards); then a getter takes the putter's item
    // before the putter runs again. The put delivered: it says so, and the `Timeout`
    // lands at the putter's next blocking point.
    if std::env::var_os("RUNNING_UNDER_VALGRIND").is_some() {
        // Both putters must park before their 200 ms pass, which Valgrind's slowdown
        // (.ci/valgrind) does not guarantee.
        return;
    }
    const DEADLINE: Duration = Duration::from_millis(200);
    let q = Rc::new(Queue::new(1));
    q.put(0).unwrap();
    let timed = spawn({
        let q = q.clone();
        move || q.put_timeout(1, DEADLINE)
    });
    let put = Rc::new(Cell::new(None));
    let interrupted = spawn({
        let (q, put) = (q.clone(), put.clone());
        move || {
            with_timeout(DEADLINE, || {
                put.set(Some(q.put(2)));
                greenweave_runtime::sleep(Duration::from_secs(60)); // the Timeout ends it
            })
        }
    });
    settle();
    assert_eq!(q.waiter_counts(), (0, 2), "both putters wait for room");
    std::thread::sleep(DEADLINE + SHORT); // both deadlines pass
    assert_eq!(q.get(), Ok(0)); // lets the first putter's item in...
    assert_eq!(q.get(), Ok(1)); // ...takes it, and lets the second one's in
    assert_eq!(timed.join().unwrap(), Ok(()), "the timed put delivered");
    assert!(interrupted.join().unwrap().is_err(), "the Timeout fired");
    assert_eq!(put.get(), Some(Ok(())), "the interrupted put delivered");
    assert_eq!(q.get_timeout(Duration::ZERO), Ok(2));
    assert_eq!(q.waiter_counts(), (0, 0));
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
