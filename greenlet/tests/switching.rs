//! Switching between greenlets: the seed tutorial's ping-pong, the values a switch
//! carries (first argument, replies, return values, typed extraction), and the two
//! special targets, the running greenlet itself and a dead greenlet.

mod common;
use common::{Log, panic_message, push};

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenweave_greenlet::{Greenlet, Value, current};

#[test]
fn seed_ping_pong_interleaves_two_greenlets() {
    let out: Rc<RefCell<Vec<i32>>> = Rc::default();
    let gr2_slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();

    let (o, slot) = (out.clone(), gr2_slot.clone());
    let gr1 = Greenlet::new(move |_| {
        let gr2 = slot
            .borrow()
            .clone()
            .expect("gr2 is published before gr1 starts");
        o.borrow_mut().push(12);
        gr2.switch(());
        o.borrow_mut().push(34);
        gr2.switch(());
        // gr2 finishes and its return goes to its parent (main), so this never runs.
        o.borrow_mut().push(-1);
    });
    let (o, g1) = (out.clone(), gr1.clone());
    let gr2 = Greenlet::new(move |_| {
        o.borrow_mut().push(56);
        g1.switch(());
        o.borrow_mut().push(78);
    });
    *gr2_slot.borrow_mut() = Some(gr2.clone());

    let back = gr1.switch(());
    assert!(back.is::<()>(), "gr2 returned (), got {back:?}");
    assert_eq!(*out.borrow(), [12, 56, 34, 78]);
    assert!(gr2.is_dead());
    assert!(gr1.is_active(), "gr1 is still parked in its second switch");

    // Killing the parked gr1 unwinds it: the line after its last switch never runs.
    drop(gr1);
    assert_eq!(*out.borrow(), [12, 56, 34, 78]);
}

#[test]
fn first_switch_value_becomes_the_function_argument() {
    let g = Greenlet::new(|v: Value| v.get::<String>().len());
    assert_eq!(g.switch(String::from("hello")).get::<usize>(), 5);
    assert!(g.is_dead());
}

#[test]
fn switch_returns_the_value_of_the_next_switch_back() {
    let main = current();
    let log: Log = Rc::default();
    let l = log.clone();
    let g = Greenlet::new(move |v: Value| {
        push(&l, format!("g started with {}", v.get::<i32>()));
        let reply = main.switch("first reply").get::<i32>();
        push(&l, format!("g received {reply}"));
        let reply = main.switch("second reply").get::<i32>();
        push(&l, format!("g received {reply}"));
        "finished"
    });

    assert_eq!(g.switch(1).get::<&str>(), "first reply");
    push(&log, "main resumed 1");
    assert_eq!(g.switch(2).get::<&str>(), "second reply");
    push(&log, "main resumed 2");
    assert_eq!(g.switch(3).get::<&str>(), "finished");
    assert_eq!(
        *log.borrow(),
        [
            "g started with 1",
            "main resumed 1",
            "g received 2",
            "main resumed 2",
            "g received 3",
        ]
    );
}

#[test]
fn return_value_arrives_at_the_parents_pending_switch() {
    let log: Log = Rc::default();
    let l = log.clone();
    // The parent is a greenlet, not main: the child's return must land in it.
    let parent = Greenlet::new(move |_| {
        let l2 = l.clone();
        let child = Greenlet::new(move |_| {
            push(&l2, "child returns 99");
            99_u64
        });
        let got = child.switch(()).get::<u64>();
        push(&l, format!("parent got {got}"));
        got + 1
    });
    assert_eq!(parent.switch(()).get::<u64>(), 100);
    assert_eq!(*log.borrow(), ["child returns 99", "parent got 99"]);
}

#[test]
fn value_get_with_the_wrong_type_panics_naming_both_types() {
    let g = Greenlet::new(|_| 42_i32);
    let v = g.switch(());
    assert_eq!(v.type_name(), "i32");
    let err = panic::catch_unwind(AssertUnwindSafe(|| v.get::<String>()))
        .expect_err("getting an i32 as a String must panic");
    let msg = panic_message(&*err);
    assert!(msg.contains("`alloc::string::String`"), "message: {msg}");
    assert!(msg.contains("`i32`"), "message: {msg}");
}

#[test]
fn value_try_get_gives_a_mismatched_value_back() {
    let g = Greenlet::new(|_| String::from("kept"));
    let v = g.switch(()).try_get::<i64>().expect_err("holds a String");
    assert_eq!(v.get::<String>(), "kept");
}

#[test]
fn unit_values_work_both_ways() {
    let main = current();
    let g = Greenlet::new(move |v: Value| {
        assert!(v.is::<()>(), "argument is {v:?}");
        let reply = main.switch_value(Value::unit());
        reply.get::<()>();
        // A function returning nothing hands its parent `()`.
    });
    assert!(g.switch(()).is::<()>());
    let last = g.switch(());
    last.get::<()>();
    assert!(g.is_dead());
}

#[test]
fn switching_to_yourself_returns_the_value_immediately() {
    // In main.
    assert_eq!(current().switch(5).get::<i32>(), 5);

    // Inside a greenlet: nothing else runs in between.
    let log: Log = Rc::default();
    let l = log.clone();
    let g = Greenlet::new(move |_| {
        push(&l, "before");
        let back = current().switch("to myself").get::<&str>();
        push(&l, format!("after, got '{back}'"));
        7
    });
    assert_eq!(g.switch(()).get::<i32>(), 7);
    push(&log, "main resumed");
    assert_eq!(
        *log.borrow(),
        ["before", "after, got 'to myself'", "main resumed"]
    );
}

#[test]
fn switching_to_a_dead_greenlet_whose_parent_is_main_comes_straight_back() {
    let g = Greenlet::new(|_| ());
    g.switch(());
    assert!(g.is_dead());
    assert_eq!(g.switch(11).get::<i32>(), 11);
    assert!(g.is_dead());
}

#[test]
fn switching_to_a_dead_greenlet_sends_the_value_to_its_parent() {
    let main = current();
    let log: Log = Rc::default();
    let l = log.clone();
    // `p` makes a child that finishes, hands its dead handle to main and waits.
    let p = Greenlet::new(move |_| {
        let child = Greenlet::new(|_| "child done");
        assert_eq!(child.switch(()).get::<&str>(), "child done");
        assert!(child.is_dead());
        let got = main.switch(child).get::<i32>();
        push(&l, format!("parent received {got}"));
        got * 10
    });

    let dead = p.switch(()).get::<Greenlet>();
    assert!(dead.is_dead());
    assert!(dead.parent().is_some_and(|parent| parent == p));
    // The value goes to `p` (the dead child's parent), whose return comes back here.
    assert_eq!(dead.switch(7).get::<i32>(), 70);
    assert_eq!(*log.borrow(), ["parent received 7"]);
    assert!(p.is_dead());
}
