//! Panic propagation: a greenlet's panic resumes in its parent at the parent's pending
//! switch, whether the parent switched into it or is parked off the resume chain.

mod common;
use common::{Log, panic_message, push};

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenweave_greenlet::{Greenlet, Value, current};

#[test]
fn child_panic_resumes_in_the_parent_at_its_pending_switch() {
    let log: Log = Rc::default();
    let l = log.clone();
    let g = Greenlet::new(move |_| {
        push(&l, "child runs");
        panic!("boom in child");
    });

    push(&log, "main before");
    let l = log.clone();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        g.switch(());
        push(&l, "main after switch (must not run)");
    }));
    push(&log, "main after catch");

    let err = outcome.expect_err("the child's panic reaches main");
    assert_eq!(panic_message(&*err), "boom in child");
    assert!(g.is_dead());
    assert_eq!(
        *log.borrow(),
        ["main before", "child runs", "main after catch"]
    );
}

#[test]
fn panic_after_a_later_resume_arrives_at_that_switch() {
    let main = current();
    let g = Greenlet::new(move |_| {
        let n = main.switch("parked").get::<i32>();
        panic!("second run got {n}");
    });
    assert_eq!(g.switch(()).get::<&str>(), "parked");
    let err = panic::catch_unwind(AssertUnwindSafe(|| g.switch(3)))
        .expect_err("the panic arrives at main's second switch");
    assert_eq!(panic_message(&*err), "second run got 3");
    assert!(g.is_dead());
}

#[test]
fn non_string_panic_payloads_keep_their_type() {
    #[derive(Debug, PartialEq)]
    struct Custom(u32);

    let g = Greenlet::new(|_| panic::panic_any(Custom(17)));
    let err = panic::catch_unwind(AssertUnwindSafe(|| g.switch(()))).expect_err("panics");
    assert_eq!(err.downcast_ref::<Custom>(), Some(&Custom(17)));
}

#[test]
fn argument_type_mismatch_inside_a_greenlet_reaches_the_parent() {
    let g = Greenlet::new(|v: Value| v.get::<u8>());
    let err = panic::catch_unwind(AssertUnwindSafe(|| g.switch("not a u8")))
        .expect_err("the mismatch panics inside g and reaches main");
    let msg = panic_message(&*err);
    assert!(
        msg.contains("`u8`") && msg.contains("`&str`"),
        "message: {msg}"
    );
    assert!(g.is_dead());
}

#[test]
fn grandchild_panic_goes_to_its_parent_not_to_main() {
    let log: Log = Rc::default();
    let l = log.clone();
    // main -> A -> B; B panics; A switched into B, so A catches it.
    let a = Greenlet::new(move |_| {
        let l2 = l.clone();
        let b = Greenlet::new(move |_| {
            push(&l2, "B panics");
            panic!("grandchild boom");
        });
        let caught = panic::catch_unwind(AssertUnwindSafe(|| b.switch(())))
            .expect_err("B's panic resumes in A");
        push(&l, format!("A caught '{}'", panic_message(&*caught)));
        assert!(b.is_dead());
        "A recovered"
    });

    // No catch_unwind here: if the panic skipped A and reached main, the test fails.
    assert_eq!(a.switch(()).get::<&str>(), "A recovered");
    assert_eq!(*log.borrow(), ["B panics", "A caught 'grandchild boom'"]);
    assert!(a.is_dead());
}

#[test]
fn grandchild_panic_reaches_its_parked_parent_even_when_main_resumed_it() {
    let main = current();
    let log: Log = Rc::default();
    let b_slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();

    let (l, slot) = (log.clone(), b_slot.clone());
    let a = Greenlet::new(move |_| {
        let (l2, m) = (l.clone(), main.clone());
        let b = Greenlet::new(move |_| {
            // Straight to main, past A: now A and B are both parked.
            m.switch("B parked");
            push(&l2, "B panics");
            panic!("late boom");
        });
        *slot.borrow_mut() = Some(b.clone());
        let caught = panic::catch_unwind(AssertUnwindSafe(|| b.switch(())))
            .expect_err("B's panic resumes in A's pending switch");
        push(&l, format!("A caught '{}'", panic_message(&*caught)));
        "A recovered"
    });

    assert_eq!(a.switch(()).get::<&str>(), "B parked");
    let b = b_slot.borrow_mut().take().expect("A published B");
    // Main resumes B directly; B's parent (A) is off the chain, parked, and still
    // receives the panic; A's return then comes back here as a plain value.
    assert_eq!(b.switch(()).get::<&str>(), "A recovered");
    assert_eq!(*log.borrow(), ["B panics", "A caught 'late boom'"]);
    assert!(a.is_dead() && b.is_dead());
}

#[test]
fn uncaught_panic_climbs_every_level_to_main() {
    // main -> A -> B; neither catches, so both die and main gets the panic.
    let b_slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let slot = b_slot.clone();
    let a = Greenlet::new(move |_| {
        let b = Greenlet::new(|_| panic!("deep boom"));
        *slot.borrow_mut() = Some(b.clone());
        b.switch(());
        unreachable!("B panicked");
    });
    let err = panic::catch_unwind(AssertUnwindSafe(|| a.switch(()))).expect_err("panics");
    assert_eq!(panic_message(&*err), "deep boom");
    let b = b_slot.borrow_mut().take().expect("A published B");
    assert!(a.is_dead() && b.is_dead());
}

#[test]
fn panic_goes_to_the_parent_not_to_the_greenlet_that_started_it() {
    let log: Log = Rc::default();
    // Made by main, so main is its parent; started by `starter`.
    let g = Greenlet::new(|_| panic!("started elsewhere"));
    let (l, g2) = (log.clone(), g.clone());
    let starter = Greenlet::new(move |_| {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| g2.switch(())));
        push(
            &l,
            format!("starter resumed, panicked: {}", outcome.is_err()),
        );
    });

    let err = panic::catch_unwind(AssertUnwindSafe(|| starter.switch(())))
        .expect_err("g's panic reaches main, its parent");
    assert_eq!(panic_message(&*err), "started elsewhere");
    assert!(g.is_dead());
    assert!(
        starter.is_active(),
        "the starter is left parked in its switch"
    );
    assert!(log.borrow().is_empty(), "log: {:?}", log.borrow());

    // The starter's switch completes normally when it is switched to.
    starter.switch(());
    assert_eq!(*log.borrow(), ["starter resumed, panicked: false"]);
}
