//! Greenlets and OS threads: every thread has its own main greenlet and its own stack
//! pool, greenlets on different threads do not interfere, and greenlets still parked
//! when their thread ends are unwound.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use greenweave_greenlet::{Greenlet, current, pooled_stacks};

/// Counts its drops across threads.
struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local! {
    static PARKED: RefCell<Option<Greenlet>> = const { RefCell::new(None) };
}

/// Starts a greenlet that holds a `DropCounter` and parks in main; returns it.
fn park_with_guard(drops: Arc<AtomicUsize>) -> Greenlet {
    let main = current();
    let g = Greenlet::new(move |_| {
        let _guard = DropCounter(drops);
        main.switch(());
    });
    g.switch(());
    g
}

#[test]
fn each_thread_has_its_own_main_greenlet() {
    let here = current();
    assert!(here.is_main());

    let (id, again, is_main, is_current, has_parent) = thread::spawn(|| {
        let main = current();
        (
            main.id(),
            current().id(),
            main.is_main(),
            main.is_current(),
            main.parent().is_some(),
        )
    })
    .join()
    .expect("no panic");

    assert!(is_main && is_current && !has_parent);
    assert_eq!(id, again, "current() on that thread is always its main");
    assert_ne!(
        id,
        here.id(),
        "a different main greenlet from this thread's"
    );
    assert!(here.is_current(), "this thread's main is unaffected");

    let other = thread::spawn(|| current().id()).join().expect("no panic");
    assert_ne!(other, id);
    assert_ne!(other, here.id());
}

#[test]
fn greenlets_on_another_thread_run_while_ours_is_parked() {
    let main = current();
    let parked = Greenlet::new(move |v| {
        let n = v.get::<u32>();
        let m = main.switch(n).get::<u32>();
        n + m
    });
    assert_eq!(parked.switch(10_u32).get::<u32>(), 10);
    let pooled = pooled_stacks();

    let (result, pool_before, pool_after) = thread::spawn(|| {
        let before = pooled_stacks();
        let main = current();
        let g = Greenlet::new(move |_| {
            let got = main.switch("inner parked").get::<&str>();
            format!("other thread got '{got}'")
        });
        assert_eq!(g.switch(()).get::<&str>(), "inner parked");
        let result = g.switch("hello").get::<String>();
        (result, before, pooled_stacks())
    })
    .join()
    .expect("no panic");

    assert_eq!(result, "other thread got 'hello'");
    assert_eq!(pool_before, 0, "a new thread starts with an empty pool");
    assert_eq!(
        pool_after, 1,
        "its greenlet's stack went to that thread's pool"
    );
    assert_eq!(pooled_stacks(), pooled, "this thread's pool is untouched");

    assert!(parked.is_active());
    assert_eq!(parked.switch(5_u32).get::<u32>(), 15);
}

#[test]
fn a_parked_greenlet_held_by_the_thread_closure_is_unwound_when_the_thread_ends() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    thread::spawn(move || {
        let _parked = park_with_guard(d);
        // The thread ends with the greenlet parked; its handle goes with the closure.
    })
    .join()
    .expect("no panic");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_parked_greenlet_in_a_later_thread_local_is_unwound_at_thread_exit() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    thread::spawn(move || {
        // The greenlet state is set up first, the thread-local after it.
        let g = park_with_guard(d);
        PARKED.with(|slot| *slot.borrow_mut() = Some(g));
    })
    .join()
    .expect("no panic");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_parked_greenlet_in_an_earlier_thread_local_is_unwound_at_thread_exit() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    thread::spawn(move || {
        // The thread-local is set up before the greenlet state, so it is destroyed
        // after it: the last handle goes when no switch is possible any more.
        PARKED.with(|_| ());
        let g = park_with_guard(d);
        PARKED.with(|slot| *slot.borrow_mut() = Some(g));
    })
    .join()
    .expect("no panic");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the parked greenlet's destructors must run at thread exit"
    );
}
