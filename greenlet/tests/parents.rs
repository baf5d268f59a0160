//! Identity and ancestry: `current()`, the parent a greenlet is born with,
//! `set_parent` (cycles and main refused, valid reparenting redirects the return value),
//! ids, and names with their `Display` form.

mod common;
use common::{Log, push};

use std::collections::HashSet;
use std::rc::Rc;

use greenweave_greenlet::{Builder, Greenlet, ParentError, current};

#[test]
fn current_outside_any_greenlet_is_this_threads_main() {
    let main = current();
    assert!(main.is_main() && main.is_current());
    assert!(main.parent().is_none());
    assert_eq!(main.name().as_deref(), Some("main"));
    assert_eq!(main.stack_size(), 0, "main runs on the thread's own stack");
    assert_eq!(current(), main, "the same main greenlet every time");
    assert_eq!(current().id(), main.id());
}

#[test]
fn current_inside_a_greenlet_is_that_greenlet() {
    let g = Greenlet::new(|_| {
        let me = current();
        (me.id(), me.is_main(), me.is_current())
    });
    let (id, is_main, is_current) = g.switch(()).get::<(u64, bool, bool)>();
    assert_eq!(id, g.id());
    assert!(!is_main && is_current);
    assert!(current().is_main(), "back in main afterwards");
}

#[test]
fn parent_is_the_creator() {
    let main = current();
    let outer = Greenlet::new(|_| {
        let outer = current();
        let inner = Greenlet::new(|_| ());
        (inner.parent() == Some(outer), inner)
    });
    assert_eq!(outer.parent(), Some(main.clone()));

    let (inner_parent_is_outer, inner) = outer.switch(()).get::<(bool, Greenlet)>();
    assert!(inner_parent_is_outer);
    // Still `outer`, even though `outer` is dead and main holds `inner` now.
    assert_eq!(inner.parent(), Some(outer.clone()));
    // Starting it from main does not change that; its return skips dead `outer`.
    assert!(inner.switch(()).is::<()>());
    assert_eq!(inner.parent(), Some(outer));
}

#[test]
fn set_parent_to_itself_is_a_cycle() {
    let g = Builder::new().name("loner").build(|_| ());
    let err = g
        .set_parent(&g)
        .expect_err("a greenlet cannot be its own parent");
    assert_eq!(
        err,
        ParentError::Cycle {
            greenlet: g.to_string(),
            parent: g.to_string(),
        }
    );
    assert!(err.to_string().contains("cycle"), "message: {err}");
    assert_eq!(g.parent(), Some(current()), "the parent is unchanged");
}

#[test]
fn set_parent_to_a_descendant_is_refused() {
    let main = current();
    let a = Builder::new().name("a").build(|_| ());
    let b = Builder::new().name("b").build(|_| ());
    let c = Builder::new().name("c").build(|_| ());
    b.set_parent(&a).expect("a is not a descendant of b");
    c.set_parent(&b).expect("b is not a descendant of c");

    // a -> b -> c: both the child and the grandchild are refused.
    for descendant in [&b, &c] {
        let err = a.set_parent(descendant).expect_err("would make a cycle");
        assert!(
            matches!(&err, ParentError::Cycle { greenlet, parent }
                if *greenlet == a.to_string() && *parent == descendant.to_string()),
            "got {err:?}"
        );
        assert!(err.to_string().contains("cycle"), "message: {err}");
    }
    assert_eq!(a.parent(), Some(main));
}

#[test]
fn main_greenlet_cannot_get_a_parent() {
    let main = current();
    let g = Greenlet::new(|_| ());
    let err = main.set_parent(&g).expect_err("main has no parent");
    assert_eq!(
        err,
        ParentError::Main {
            greenlet: main.to_string()
        }
    );
    assert!(err.to_string().contains("main greenlet"), "message: {err}");
    assert!(main.parent().is_none());
}

#[test]
fn reparenting_sends_the_return_value_to_the_new_parent() {
    let main = current();
    let log: Log = Rc::default();

    // The new parent parks in main, then waits for whatever arrives next.
    let l = log.clone();
    let adopter = Builder::new().name("adopter").build(move |_| {
        let got = main.switch(()).get::<i32>();
        push(&l, format!("adopter received {got}"));
        got + 1
    });
    adopter.switch(());

    let l = log.clone();
    let child = Greenlet::new(move |_| {
        push(&l, "child returns 41");
        41
    });
    child.set_parent(&adopter).expect("no cycle");
    assert_eq!(child.parent(), Some(adopter.clone()));

    // 41 goes to the adopter, whose own return (to main) ends this switch.
    assert_eq!(child.switch(()).get::<i32>(), 42);
    assert_eq!(*log.borrow(), ["child returns 41", "adopter received 41"]);
    assert!(child.is_dead() && adopter.is_dead());
}

#[test]
fn ids_are_unique_and_stable() {
    let greenlets: Vec<Greenlet> = (0..100).map(|_| Greenlet::new(|_| ())).collect();
    let mut ids: HashSet<u64> = greenlets.iter().map(Greenlet::id).collect();
    ids.insert(current().id());
    assert_eq!(
        ids.len(),
        101,
        "every greenlet, main included, has its own id"
    );

    let g = &greenlets[7];
    let before = g.id();
    g.switch(());
    assert_eq!(
        g.id(),
        before,
        "an id does not change when the greenlet runs"
    );
    assert_eq!(g.clone().id(), before, "clones share it");
}

#[test]
fn names_come_from_the_builder_and_set_name_and_show_in_display() {
    let named = Builder::new().name("worker").build(|_| ());
    assert_eq!(named.name().as_deref(), Some("worker"));
    assert_eq!(
        named.to_string(),
        format!("greenlet 'worker' (id {})", named.id())
    );

    named.set_name("renamed");
    assert_eq!(named.name().as_deref(), Some("renamed"));
    assert_eq!(
        named.to_string(),
        format!("greenlet 'renamed' (id {})", named.id())
    );

    let anonymous = Greenlet::new(|_| ());
    assert_eq!(anonymous.name(), None);
    assert_eq!(
        anonymous.to_string(),
        format!("greenlet id {}", anonymous.id())
    );
    anonymous.set_name("late");
    assert_eq!(
        anonymous.to_string(),
        format!("greenlet 'late' (id {})", anonymous.id())
    );

    let main = current();
    assert_eq!(
        main.to_string(),
        format!("greenlet 'main' (id {})", main.id())
    );
}

#[test]
fn set_name_inside_the_greenlet_is_seen_outside() {
    let g = Greenlet::new(|_| current().set_name("self-named"));
    g.switch(());
    assert_eq!(g.name().as_deref(), Some("self-named"));
}
