//! Greenlets nested several levels deep: switches that jump over several levels of the
//! resume chain, returns that skip dead parents, a deep chain, and a ring of greenlets
//! switching round and round.

mod common;
use common::{Log, push};

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use greenweave_greenlet::{Builder, Greenlet, Value, current};

type Slot = Rc<RefCell<Option<Greenlet>>>;

fn take(slot: &Slot) -> Greenlet {
    slot.borrow_mut()
        .take()
        .expect("the greenlet was published")
}

#[test]
fn innermost_greenlet_jumps_to_main_and_main_resumes_any_level() {
    let main = current();
    let log: Log = Rc::default();
    let (b_slot, c_slot): (Slot, Slot) = Default::default();

    let (l, bs, cs, m) = (log.clone(), b_slot.clone(), c_slot.clone(), main.clone());
    let a = Builder::new().name("A").build(move |v: Value| {
        push(&l, format!("A got {}", v.get::<i32>()));
        let (l2, m2) = (l.clone(), m.clone());
        let b = Builder::new().name("B").build(move |v: Value| {
            push(&l2, format!("B got {}", v.get::<i32>()));
            let (l3, m3) = (l2.clone(), m2.clone());
            let c = Builder::new().name("C").build(move |v: Value| {
                push(&l3, format!("C got {}", v.get::<i32>()));
                // Straight to main, over B and A.
                let v = m3.switch("C to main");
                push(&l3, format!("C got {}", v.get::<i32>()));
                let v = m3.switch("C to main again");
                push(&l3, format!("C got {}", v.get::<i32>()));
                "C done"
            });
            *cs.borrow_mut() = Some(c.clone());
            // Comes back when C returns: C's parent is B.
            let v = c.switch(3);
            push(&l2, format!("B got '{}'", v.get::<&str>()));
            // A is dead by now, so this goes on to main.
            "B done"
        });
        *bs.borrow_mut() = Some(b.clone());
        // Comes back when main switches into A directly.
        let v = b.switch(2);
        push(&l, format!("A got {}", v.get::<i32>()));
        "A done"
    });

    assert_eq!(a.switch(1).get::<&str>(), "C to main");
    let (b, c) = (take(&b_slot), take(&c_slot));
    assert_eq!(c.parent(), Some(b.clone()));
    assert_eq!(b.parent(), Some(a.clone()));
    assert_eq!(a.parent(), Some(main.clone()));
    for g in [&a, &b, &c] {
        assert!(g.is_active() && !g.is_current(), "{g} is parked");
    }
    assert!(main.is_current());

    // Back into the innermost, which jumps out again.
    assert_eq!(c.switch(4).get::<&str>(), "C to main again");
    // Into the outermost, which finishes while B and C stay parked.
    assert_eq!(a.switch(5).get::<&str>(), "A done");
    assert!(a.is_dead() && b.is_active() && c.is_active());
    // C finishes into B, B finishes past dead A into main.
    assert_eq!(c.switch(6).get::<&str>(), "B done");
    assert!(b.is_dead() && c.is_dead());

    assert_eq!(
        *log.borrow(),
        [
            "A got 1",
            "B got 2",
            "C got 3",
            "C got 4",
            "A got 5",
            "C got 6",
            "B got 'C done'",
        ]
    );
}

#[test]
fn return_goes_to_the_parent_even_when_another_greenlet_started_it() {
    let log: Log = Rc::default();
    let l = log.clone();
    // Made by main, so main is its parent.
    let g = Builder::new().name("g").build(move |_| {
        push(&l, "g runs");
        "g done"
    });
    let (l, g2) = (log.clone(), g.clone());
    let starter = Builder::new().name("starter").build(move |_| {
        push(&l, "starter starts g");
        let v = g2.switch(());
        push(&l, format!("starter got '{}'", v.get::<&str>()));
        "starter done"
    });

    // g's return skips the starter (left parked in its switch) and comes to main.
    assert_eq!(starter.switch(()).get::<&str>(), "g done");
    assert!(g.is_dead() && starter.is_active());
    assert_eq!(*log.borrow(), ["starter starts g", "g runs"]);

    // A switch into the starter completes its pending switch with that value.
    assert_eq!(starter.switch("later").get::<&str>(), "starter done");
    assert_eq!(
        *log.borrow(),
        ["starter starts g", "g runs", "starter got 'later'"]
    );
}

/// Body of level `depth` of a chain `max` deep: the deepest parks itself in main,
/// every other level starts a child and returns the child's result plus one.
fn level(depth: usize, max: usize, main: Greenlet, deepest: Slot) -> usize {
    if depth == max {
        *deepest.borrow_mut() = Some(current());
        main.switch("deepest parked");
        return 0;
    }
    let child = Greenlet::new(move |_| level(depth + 1, max, main, deepest));
    child.switch(()).get::<usize>() + 1
}

#[test]
fn a_chain_of_one_hundred_greenlets_unwinds_level_by_level() {
    const DEPTH: usize = 100;
    let main = current();
    let deepest: Slot = Rc::default();
    let (m, d) = (main.clone(), deepest.clone());
    let top = Greenlet::new(move |_| level(1, DEPTH, m, d));

    // The deepest switch crosses all hundred levels at once.
    assert_eq!(top.switch(()).get::<&str>(), "deepest parked");
    let bottom = take(&deepest);

    let mut ancestors = 0;
    let mut g = bottom.parent();
    while let Some(p) = g {
        assert!(p.is_main() || (p.is_active() && !p.is_current()), "{p}");
        ancestors += 1;
        g = p.parent();
    }
    assert_eq!(ancestors, DEPTH, "99 greenlet ancestors plus main");

    // Resuming the deepest lets every level return into the one above it.
    assert_eq!(bottom.switch(()).get::<usize>(), DEPTH - 1);
    assert!(bottom.is_dead() && top.is_dead());
}

#[test]
fn a_ring_of_five_greenlets_passes_control_round_a_thousand_times() {
    const SIZE: usize = 5;
    const ROUNDS: usize = 1_000;
    let ring: Rc<RefCell<Vec<Greenlet>>> = Rc::default();
    let visits: Rc<RefCell<Vec<usize>>> = Rc::default();
    let counts: Rc<[Cell<usize>; SIZE]> = Rc::default();

    for i in 0..SIZE {
        let (r, v, c) = (ring.clone(), visits.clone(), counts.clone());
        ring.borrow_mut().push(Greenlet::new(move |_| {
            let next = r.borrow()[(i + 1) % SIZE].clone();
            drop(r);
            for _ in 0..ROUNDS {
                c[i].set(c[i].get() + 1);
                v.borrow_mut().push(i);
                next.switch(());
            }
            i
        }));
    }
    let members: Vec<Greenlet> = ring.borrow().clone();

    // Member 0 finishes first: its last switch goes round to 4, which switches back
    // into 0, whose return goes to its parent, main.
    assert_eq!(members[0].switch(()).get::<usize>(), 0);
    for (i, c) in counts.iter().enumerate() {
        assert_eq!(c.get(), ROUNDS, "member {i}");
    }
    let visits = visits.borrow();
    assert_eq!(visits.len(), SIZE * ROUNDS);
    assert!(
        visits.iter().enumerate().all(|(k, &i)| i == k % SIZE),
        "control went round the ring in order"
    );
    drop(visits);

    // The others are parked in their last switch; resuming each lets it finish.
    for (i, g) in members.iter().enumerate().skip(1) {
        assert!(g.is_active(), "member {i} is parked");
        assert_eq!(g.switch(()).get::<usize>(), i);
        assert!(g.is_dead());
    }
    ring.borrow_mut().clear();
}
