//! A greenlet's life: the state queries through start, suspension and death, and what
//! dropping handles does (a suspended greenlet whose last handle goes is unwound, an
//! unstarted one is discarded without running, a clone keeps a greenlet alive).

mod common;
use common::{Log, push};

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use greenweave_greenlet::{self as greenlet, Greenlet, current, pooled_stacks};

/// Counts its drops, and logs them if given a log.
struct DropGuard {
    drops: Rc<Cell<usize>>,
    log: Option<Log>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
        if let Some(log) = &self.log {
            push(log, "guard dropped");
        }
    }
}

/// Flags reported from inside a greenlet, about itself and main.
#[derive(Debug, PartialEq)]
struct Seen {
    current: bool,
    active: bool,
    started: bool,
    dead: bool,
    main_current: bool,
    main_active: bool,
}

#[test]
fn state_queries_follow_start_suspension_and_death() {
    let main = current();
    let slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let (s, m) = (slot.clone(), main.clone());
    let g = Greenlet::new(move |_| {
        let me = s
            .borrow()
            .clone()
            .expect("published before the first switch");
        let seen = Seen {
            current: me.is_current(),
            active: me.is_active(),
            started: me.is_started(),
            dead: me.is_dead(),
            main_current: m.is_current(),
            main_active: m.is_active(),
        };
        m.switch(seen);
    });
    *slot.borrow_mut() = Some(g.clone());

    assert!(!g.is_started() && !g.is_active() && !g.is_dead() && !g.is_current());
    assert!(!g.is_main());
    assert!(main.is_main() && main.is_started() && main.is_active() && main.is_current());

    let seen = g.switch(()).get::<Seen>();
    assert_eq!(
        seen,
        Seen {
            current: true,
            active: true,
            started: true,
            dead: false,
            main_current: false,
            main_active: true,
        }
    );

    // Parked in its switch to main.
    assert!(g.is_started() && g.is_active() && !g.is_dead() && !g.is_current());
    assert!(main.is_current());

    g.switch(());
    assert!(g.is_started() && !g.is_active() && g.is_dead() && !g.is_current());
    assert!(main.is_current() && main.is_active());
    slot.borrow_mut().take();
}

#[test]
fn dropping_the_last_handle_of_a_suspended_greenlet_runs_its_destructors() {
    let main = current();
    let drops = Rc::new(Cell::new(0));
    let log: Log = Rc::default();
    let (d, l) = (drops.clone(), log.clone());
    let g = Greenlet::new(move |_| {
        let _guard = DropGuard {
            drops: d,
            log: Some(l.clone()),
        };
        main.switch(());
        push(&l, "resumed normally (must not happen)");
    });
    g.switch(());
    assert_eq!(drops.get(), 0);

    let pooled = pooled_stacks();
    push(&log, "dropping");
    drop(g);
    push(&log, "main continues");

    assert_eq!(drops.get(), 1);
    assert_eq!(
        *log.borrow(),
        ["dropping", "guard dropped", "main continues"]
    );
    assert_eq!(
        pooled_stacks(),
        pooled + 1,
        "its stack went back to the pool"
    );
}

#[test]
fn a_greenlet_dropping_the_last_handle_continues_after_the_unwind() {
    let main = current();
    let drops = Rc::new(Cell::new(0));
    let log: Log = Rc::default();

    let (d, l) = (drops.clone(), log.clone());
    let victim = Greenlet::new(move |_| {
        let _guard = DropGuard {
            drops: d,
            log: Some(l),
        };
        main.switch("victim parked");
    });
    assert_eq!(victim.switch(()).get::<&str>(), "victim parked");

    // Another greenlet drops the last handle: the victim unwinds and control comes
    // back to the dropper, not to main.
    let l = log.clone();
    let dropper = Greenlet::new(move |_| {
        push(&l, "dropper drops");
        drop(victim);
        push(&l, "dropper continues");
        "dropper done"
    });
    assert_eq!(dropper.switch(()).get::<&str>(), "dropper done");
    assert_eq!(drops.get(), 1);
    assert_eq!(
        *log.borrow(),
        ["dropper drops", "guard dropped", "dropper continues"]
    );
}

#[test]
fn dropping_an_unstarted_greenlet_drops_its_captures_without_running() {
    let ran = Rc::new(Cell::new(false));
    let drops = Rc::new(Cell::new(0));
    let guard = DropGuard {
        drops: drops.clone(),
        log: None,
    };
    let r = ran.clone();
    // Warm up so that the pool holds a stack of the default size.
    Greenlet::new(|_| ()).switch(());
    let pooled = pooled_stacks();
    let g = Greenlet::new(move |_| {
        let _guard = guard;
        r.set(true);
    });
    assert_eq!(
        pooled_stacks(),
        pooled - 1,
        "creating it took a pooled stack"
    );
    assert_eq!(drops.get(), 0, "captured, not yet dropped");

    drop(g);
    assert!(!ran.get(), "the function never ran");
    assert_eq!(drops.get(), 1, "the closure's captures were dropped");
    assert_eq!(pooled_stacks(), pooled, "its stack went back to the pool");
}

#[test]
fn a_clone_keeps_a_suspended_greenlet_alive() {
    let main = current();
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |_| {
        let _guard = DropGuard {
            drops: d,
            log: None,
        };
        let n = main.switch(()).get::<i32>();
        n + 1
    });
    g.switch(());
    let other = g.clone();
    drop(g);

    assert_eq!(drops.get(), 0, "not killed: a handle remains");
    assert!(other.is_active());
    assert_eq!(other.switch(41).get::<i32>(), 42);
    assert_eq!(drops.get(), 1);
    assert!(other.is_dead());
}

#[test]
fn dropping_a_finished_greenlet_does_nothing_more() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |_| {
        let _guard = DropGuard {
            drops: d,
            log: None,
        };
        3
    });
    assert_eq!(g.switch(()).get::<i32>(), 3);
    assert_eq!(drops.get(), 1);
    let pooled = pooled_stacks();
    drop(g);
    assert_eq!(drops.get(), 1);
    assert_eq!(
        pooled_stacks(),
        pooled,
        "its stack was already returned at death"
    );
}

#[test]
fn dropping_the_last_handle_while_panicking_still_unwinds_the_greenlet() {
    let main = current();
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |_| {
        let _guard = DropGuard {
            drops: d,
            log: None,
        };
        main.switch(());
    });
    g.switch(());

    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _last_handle = g;
        panic!("main fails while holding the last handle");
    }));
    assert!(outcome.is_err());
    assert_eq!(drops.get(), 1, "killed during main's unwind");
}

#[test]
fn dropping_a_parked_child_also_releases_its_parked_parent() {
    let main = current();
    let parent_drops = Rc::new(Cell::new(0));
    let child_drops = Rc::new(Cell::new(0));
    let (pd, cd) = (parent_drops.clone(), child_drops.clone());
    // The parent makes a child and hands it to main without keeping a handle.
    let parent = Greenlet::new(move |_| {
        let _guard = DropGuard {
            drops: pd,
            log: None,
        };
        let m = main.clone();
        let child = Greenlet::new(move |_| {
            let _guard = DropGuard {
                drops: cd,
                log: None,
            };
            m.switch(());
        });
        main.switch(child);
    });
    let child = parent.switch(()).get::<Greenlet>();
    child.switch(());
    assert_eq!(child.parent(), Some(parent.clone()));

    // The child's parent link keeps the parent alive.
    drop(parent);
    assert_eq!(parent_drops.get(), 0);
    // Killing the child releases that link, and with it the parent.
    drop(child);
    assert_eq!(child_drops.get(), 1);
    assert_eq!(parent_drops.get(), 1);
}

#[test]
fn the_tag_belongs_to_its_greenlet_and_current_tag_reads_the_running_ones() {
    let main = greenlet::current();
    assert_eq!(main.tag(), 0, "a greenlet's tag is 0 until set");
    // SAFETY: no runtime reads tags in this test binary.
    unsafe { main.set_tag(7) };
    let child = Greenlet::new(|_| greenlet::current_tag());
    // SAFETY: as above.
    unsafe { child.set_tag(42) };
    assert_eq!(greenlet::current_tag(), 7, "main runs: main's tag");
    assert_eq!(
        child.switch(()).get::<usize>(),
        42,
        "inside the child, current_tag is the child's"
    );
    assert_eq!(greenlet::current_tag(), 7, "back in main: main's tag again");
    // SAFETY: as above.
    unsafe { main.set_tag(0) };
}
