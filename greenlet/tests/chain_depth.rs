//! `Greenlet::is_one_switch_away`: which greenlets a switch reaches with a single
//! corosensei switch, given where the running greenlet sits on the resume chain (main
//! is depth 0, a greenlet resumed from depth `d` is at `d + 1`), and how the depths
//! follow the chain as it is walked down, re-entered at another level, and as a
//! finished greenlet's return resumes its parent.

use std::cell::RefCell;
use std::rc::Rc;

use greenweave_greenlet::{Builder, Greenlet, current};

type Slot = Rc<RefCell<Option<Greenlet>>>;

fn published(slot: &Slot) -> Greenlet {
    slot.borrow()
        .clone()
        .expect("the greenlet was published before it is needed")
}

/// The limits worth trying: none at all, the ones around the depths these tests build,
/// and no limit.
const LIMITS: [u32; 6] = [0, 1, 2, 3, 4, u32::MAX];

/// The limits for which `g` is one switch away, from the running greenlet.
fn limits_away(g: &Greenlet) -> Vec<u32> {
    LIMITS
        .iter()
        .copied()
        .filter(|&limit| g.is_one_switch_away(limit))
        .collect()
}

/// A greenlet off the chain (suspended or unstarted) is one `resume` away exactly when
/// the running greenlet is less than `max_depth` deep: these are the limits that allow
/// it from `depth`.
fn limits_above(depth: u32) -> Vec<u32> {
    LIMITS.iter().copied().filter(|&l| depth < l).collect()
}

/// Starts a greenlet that parks itself straight back in main: it is `Suspended` from
/// then on, until the test ends.
fn suspended_sibling() -> Greenlet {
    let main = current();
    let g = Builder::new().name("sibling").build(move |_| {
        main.switch("sibling parked");
        "sibling resumed"
    });
    assert_eq!(g.switch(()).get::<&str>(), "sibling parked");
    assert!(g.is_started() && !g.is_dead() && !g.is_current());
    g
}

/// A greenlet that ran to the end.
fn dead_greenlet() -> Greenlet {
    let g = Greenlet::new(|_| "done");
    assert_eq!(g.switch(()).get::<&str>(), "done");
    assert!(g.is_dead());
    g
}

#[test]
fn from_main_an_unstarted_greenlet_needs_a_limit_of_at_least_one() {
    let main = current();
    let g = Greenlet::new(|_| ());
    assert!(!g.is_started());
    assert!(g.is_one_switch_away(1), "main is at depth 0 < 1");
    assert!(g.is_one_switch_away(u32::MAX));
    assert!(
        !g.is_one_switch_away(0),
        "with max_depth 0 nothing may be resumed on top of main"
    );
    assert_eq!(limits_away(&g), limits_above(0));
    // A suspended greenlet counts the same as an unstarted one.
    let s = suspended_sibling();
    assert_eq!(limits_away(&s), limits_above(0));
    // The running greenlet is never one switch away from itself.
    assert!(main.is_current());
    assert_eq!(limits_away(&main), Vec::<u32>::new());
    g.switch(());
    assert!(g.is_dead());
    assert_eq!(
        limits_away(&g),
        Vec::<u32>::new(),
        "a dead greenlet is never one switch away"
    );
}

#[test]
fn inside_a_greenlet_main_is_its_resumer_for_any_limit() {
    let main = current();
    let sibling = suspended_sibling();
    let dead = dead_greenlet();
    let m = main.clone();
    let g = Builder::new().name("g").build(move |_| {
        // Resumed by main: main is the greenlet a switch back reaches with one suspend,
        // whatever the limit, even 0.
        assert_eq!(limits_away(&m), LIMITS.to_vec(), "main resumed g");
        assert_eq!(limits_away(&current()), Vec::<u32>::new(), "g itself");
        // g is at depth 1: resuming the sibling on top of it needs max_depth > 1.
        assert_eq!(limits_away(&sibling), limits_above(1), "suspended sibling");
        let unstarted = Greenlet::new(|_| ());
        assert_eq!(limits_away(&unstarted), limits_above(1), "unstarted");
        assert_eq!(limits_away(&dead), Vec::<u32>::new(), "dead greenlet");
        "g checked"
    });
    assert_eq!(g.switch(()).get::<&str>(), "g checked");
    assert!(g.is_dead());
    assert_eq!(limits_away(&g), Vec::<u32>::new());
}

#[test]
fn two_levels_up_only_the_immediate_resumer_is_one_switch_away() {
    let main = current();
    let sibling = suspended_sibling();
    let dead = dead_greenlet();
    let (m, s, d) = (main.clone(), sibling.clone(), dead.clone());
    let a = Builder::new().name("a").build(move |_| {
        let a_self = current();
        // a at depth 1.
        assert_eq!(limits_away(&m), LIMITS.to_vec(), "inside a: main resumed a");
        assert_eq!(limits_away(&s), limits_above(1), "inside a: sibling");
        let b = Builder::new().name("b").build(move |_| {
            // main -> a -> b: b at depth 2.
            assert_eq!(
                limits_away(&a_self),
                LIMITS.to_vec(),
                "inside b: a resumed b"
            );
            assert_eq!(
                limits_away(&m),
                Vec::<u32>::new(),
                "inside b: main is two levels down (a switch to it walks the chain)"
            );
            assert!(
                s.is_one_switch_away(3),
                "inside b: sibling with depth 2 < 3"
            );
            assert!(
                !s.is_one_switch_away(2),
                "inside b: sibling with depth 2 = 2"
            );
            assert_eq!(limits_away(&s), limits_above(2), "inside b: sibling");
            let unstarted = Greenlet::new(|_| ());
            assert_eq!(
                limits_away(&unstarted),
                limits_above(2),
                "inside b: unstarted"
            );
            assert_eq!(limits_away(&current()), Vec::<u32>::new(), "inside b: b");
            assert_eq!(limits_away(&d), Vec::<u32>::new(), "inside b: dead");
            "b checked"
        });
        // b is unstarted, a at depth 1.
        assert_eq!(
            limits_away(&b),
            limits_above(1),
            "inside a: b before it starts"
        );
        // b's return comes back to its parent, a.
        let back = b.switch(());
        assert!(b.is_dead());
        assert_eq!(limits_away(&b), Vec::<u32>::new(), "inside a: dead b");
        back.get::<&str>()
    });
    assert_eq!(a.switch(()).get::<&str>(), "b checked");
    // The sibling is still parked; from main it needs a limit of at least 1.
    assert_eq!(limits_away(&sibling), limits_above(0));
}

#[test]
fn depths_follow_the_chain_after_a_walk_down_to_main_and_a_re_entry_at_another_level() {
    let main = current();
    let b_slot: Slot = Rc::default();

    let (m, bs) = (main.clone(), b_slot.clone());
    let a = Builder::new().name("a").build(move |_| {
        let a_self = current();
        let m2 = m.clone();
        let b = Builder::new().name("b").build(move |_| {
            // Phase 1: main -> a -> b, b at depth 2.
            assert_eq!(limits_away(&a_self), LIMITS.to_vec(), "b1: a resumed b");
            assert_eq!(
                limits_away(&m2),
                Vec::<u32>::new(),
                "b1: main two levels down"
            );
            // Straight to main, over a: the chain is walked and a and b both end up
            // suspended.
            let v = m2.switch("b walked to main");
            // Phase 2: main resumed b directly, so b is at depth 1 now, and a (still
            // parked inside its switch to b) is off the chain.
            assert_eq!(v.get::<&str>(), "main to b");
            assert_eq!(limits_away(&m2), LIMITS.to_vec(), "b2: main resumed b");
            assert_eq!(limits_away(&a_self), limits_above(1), "b2: a is suspended");
            let v = m2.switch("b back to main");
            // Phase 3: a resumed b again: depth 2, main two levels down again.
            assert_eq!(v.get::<&str>(), "a to b");
            assert_eq!(limits_away(&a_self), LIMITS.to_vec(), "b3: a resumed b");
            assert_eq!(
                limits_away(&m2),
                Vec::<u32>::new(),
                "b3: main two levels down"
            );
            "b done"
        });
        *bs.borrow_mut() = Some(b.clone());
        let v = b.switch(());
        // Main resumed a (which b had left suspended on the walk down): a is at depth 1
        // again, main is its resumer and b is off the chain.
        assert_eq!(v.get::<&str>(), "main to a");
        assert_eq!(limits_away(&m), LIMITS.to_vec(), "a: main resumed a");
        assert_eq!(limits_away(&b), limits_above(1), "a: b is suspended");
        let v = b.switch("a to b");
        // b returned to its parent, a.
        assert_eq!(v.get::<&str>(), "b done");
        "a done"
    });

    assert_eq!(a.switch(()).get::<&str>(), "b walked to main");
    let b = published(&b_slot);
    // Back at depth 0: both are suspended, one resume away with any limit above 0.
    assert!(a.is_started() && !a.is_dead());
    assert!(b.is_started() && !b.is_dead());
    assert_eq!(limits_away(&a), limits_above(0), "main: a after the walk");
    assert_eq!(limits_away(&b), limits_above(0), "main: b after the walk");
    assert_eq!(b.switch("main to b").get::<&str>(), "b back to main");
    assert_eq!(limits_away(&b), limits_above(0), "main: b parked again");
    assert_eq!(a.switch("main to a").get::<&str>(), "a done");
    assert!(a.is_dead() && b.is_dead());
    assert_eq!(limits_away(&a), Vec::<u32>::new());
    assert_eq!(limits_away(&b), Vec::<u32>::new());
}

#[test]
fn a_finished_greenlet_returning_to_a_suspended_parent_resumes_it_one_level_up() {
    // main -> a -> x, where x's parent p is parked off the chain: x's return reaches
    // a, which resumes p on top of itself (depth 2), so inside p, a is the resumer and
    // main is two levels down.
    let main = current();
    let a_slot: Slot = Rc::default();
    let (m, a_of_p) = (main.clone(), a_slot.clone());
    let p = Builder::new().name("p").build(move |_| {
        let v = m.switch("p parked");
        assert_eq!(v.get::<&str>(), "x done");
        let a = published(&a_of_p);
        assert_eq!(limits_away(&a), LIMITS.to_vec(), "p: a resumed p");
        assert_eq!(
            limits_away(&m),
            Vec::<u32>::new(),
            "p: main two levels down"
        );
        let unstarted = Greenlet::new(|_| ());
        assert_eq!(limits_away(&unstarted), limits_above(2), "p: at depth 2");
        // p's parent is main: its return walks down through a.
        "p done"
    });
    assert_eq!(p.switch(()).get::<&str>(), "p parked");

    let x = Builder::new().name("x").parent(&p).build(|_| "x done");
    let a = Builder::new().name("a").build(move |_| {
        // a (depth 1) resumes x (depth 2); x's return goes to p, so this switch only
        // comes back if someone switches to a again, which nobody does.
        x.switch(());
        unreachable!("nobody switches back to a");
    });
    *a_slot.borrow_mut() = Some(a.clone());
    assert_eq!(a.switch(()).get::<&str>(), "p done");
    assert!(p.is_dead());
    // a was left suspended by the walk from p down to main.
    assert!(a.is_started() && !a.is_dead());
    assert_eq!(limits_away(&a), limits_above(0));
}
