//! `greenweave_runtime::queue`: JoinableQueue's task_done/join and Channel's rendezvous.
//!
//! Greenlets are ordered with joins, queues and `yield_now`, never with sleeps; the few
//! timing checks are generous bounds on timeouts.

#[path = "common/queue.rs"]
mod common;
use common::*;

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
    // Getter first: the put hands the item to the waiting getter and returns at once
    // (the getter holds it from then on, as a Go receiver does after a direct send).
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
        ["got 1", "put 1 returned", "put 2 returned", "got 2"]
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
