//! `Greenlet::throw`: raising a payload inside a greenlet at its suspension point.
//! `GreenletExit` ends it quietly, other payloads reach the parent as panics unless the
//! greenlet catches them, and an unstarted greenlet dies without running.

mod common;
use common::{Log, push};

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenweave_greenlet::{Greenlet, GreenletExit, current};

/// Counts its own drops.
struct DropCounter(Rc<Cell<usize>>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A custom payload to throw.
#[derive(Debug, PartialEq)]
struct Interrupt(u32);

#[test]
fn greenlet_exit_unwinds_a_suspended_greenlet_and_comes_back_as_a_value() {
    let main = current();
    let drops = Rc::new(Cell::new(0));
    let log: Log = Rc::default();
    let (d, l) = (drops.clone(), log.clone());
    let g = Greenlet::new(move |_| {
        let _guard = DropCounter(d);
        main.switch("parked");
        push(&l, "resumed normally (must not happen)");
    });

    assert_eq!(g.switch(()).get::<&str>(), "parked");
    assert_eq!(drops.get(), 0);
    let back = g.throw(GreenletExit);
    assert!(back.is::<GreenletExit>(), "got {back:?}");
    assert_eq!(drops.get(), 1, "the greenlet's destructors ran");
    assert!(g.is_dead());
    assert!(log.borrow().is_empty(), "log: {:?}", log.borrow());
}

#[test]
fn uncaught_custom_payload_reaches_the_parent_as_a_panic() {
    let main = current();
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |_| {
        let _guard = DropCounter(d);
        main.switch(());
    });
    g.switch(());

    let err = panic::catch_unwind(AssertUnwindSafe(|| g.throw(Interrupt(9))))
        .expect_err("an uncaught thrown payload comes back as a panic");
    assert_eq!(err.downcast_ref::<Interrupt>(), Some(&Interrupt(9)));
    assert_eq!(drops.get(), 1, "the greenlet unwound on the way");
    assert!(g.is_dead());
}

#[test]
fn greenlet_can_catch_a_thrown_payload_and_switch_back_a_value() {
    let main = current();
    let log: Log = Rc::default();
    let l = log.clone();
    let g = Greenlet::new(move |_| {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch("parked")))
            .expect_err("the throw arrives as an unwind at the pending switch");
        let Interrupt(n) = *caught
            .downcast::<Interrupt>()
            .expect("the payload keeps its type");
        push(&l, format!("caught interrupt {n}"));
        let next = main.switch(n * 2).get::<&str>();
        push(&l, format!("then got '{next}'"));
        "done"
    });

    assert_eq!(g.switch(()).get::<&str>(), "parked");
    assert_eq!(g.throw(Interrupt(21)).get::<u32>(), 42);
    assert!(g.is_active(), "it caught the payload and is alive");
    assert_eq!(g.switch("carry on").get::<&str>(), "done");
    assert_eq!(
        *log.borrow(),
        ["caught interrupt 21", "then got 'carry on'"]
    );
}

#[test]
fn throw_into_an_unstarted_greenlet_never_runs_it() {
    let ran = Rc::new(Cell::new(false));
    let drops = Rc::new(Cell::new(0));
    let (r, guard) = (ran.clone(), DropCounter(drops.clone()));
    let g = Greenlet::new(move |_| {
        let _guard = guard;
        r.set(true);
    });

    assert!(!g.is_started());
    let back = g.throw(GreenletExit);
    assert!(back.is::<GreenletExit>(), "got {back:?}");
    assert!(!ran.get(), "the function never ran");
    assert!(g.is_dead());
    assert_eq!(drops.get(), 1, "the closure and its captures were dropped");
    // A dead greenlet forwards switches to its parent: here main, so it comes right back.
    assert_eq!(g.switch(1).get::<i32>(), 1);
    assert!(!ran.get());
}

#[test]
fn custom_payload_into_an_unstarted_greenlet_reaches_the_parent_as_a_panic() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = Greenlet::new(move |_| r.set(true));
    let err = panic::catch_unwind(AssertUnwindSafe(|| g.throw(Interrupt(1))))
        .expect_err("not GreenletExit, so it is a panic in the parent");
    assert_eq!(err.downcast_ref::<Interrupt>(), Some(&Interrupt(1)));
    assert!(!ran.get());
    assert!(g.is_dead());
}

#[test]
fn child_can_throw_into_its_parent_down_the_chain() {
    let log: Log = Rc::default();
    let l = log.clone();
    // main -> P -> C; C throws into P, which is below it on the resume chain.
    let p = Greenlet::new(move |_| {
        let parent = current();
        let l2 = l.clone();
        let c = Greenlet::new(move |_| {
            push(&l2, "C throws into P");
            parent.throw(Interrupt(5));
            push(&l2, "C resumed (must not happen)");
        });
        let caught = panic::catch_unwind(AssertUnwindSafe(|| c.switch(())))
            .expect_err("the throw lands at P's pending switch");
        let n = caught.downcast_ref::<Interrupt>().map(|i| i.0);
        push(&l, format!("P caught {n:?}"));
        assert!(c.is_active(), "C is parked in its throw");
        "P done"
    });
    assert_eq!(p.switch(()).get::<&str>(), "P done");
    assert_eq!(*log.borrow(), ["C throws into P", "P caught Some(5)"]);
}

#[test]
fn throw_boxed_rethrows_a_caught_panic_elsewhere() {
    let main = current();
    let failing = Greenlet::new(|_| panic!("original failure"));
    let payload: Box<dyn Any + Send> =
        panic::catch_unwind(AssertUnwindSafe(|| failing.switch(()))).expect_err("panics");

    let observer = Greenlet::new(move |_| {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch(())))
            .expect_err("the rethrown panic arrives here");
        caught
            .downcast_ref::<&str>()
            .map(|s| format!("observer saw '{s}'"))
    });
    observer.switch(());
    let seen = observer.throw_boxed(payload).get::<Option<String>>();
    assert_eq!(seen.as_deref(), Some("observer saw 'original failure'"));
    assert!(observer.is_dead());
}
