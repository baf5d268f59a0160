//! Direct switches stack greenlets up on the resume chain (each resumed by the one
//! before it): a deadlock report must still reach main down through the chain, and a
//! greenlet must be able to kill the greenlet that resumed it.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

#[path = "common/chain.rs"]
mod chain;
use chain::{SetOnDrop, chain_depth};

use greenweave_greenlet::Greenlet;
use greenweave_runtime::queue::{Channel, GetError};
use greenweave_runtime::{Builder, JoinError, JoinHandle, yield_now};

#[test]
fn a_deadlock_reaches_main_after_greenlets_parked_one_on_top_of_another() {
    // Each greenlet spawns the next and parks: with just that one ready, it resumes it
    // directly, so they stack up on the resume chain, and the last one, with nothing
    // ready, resumes the hub on top of them all. Then main blocks too and nothing can
    // ever wake anyone: the report must still reach main, down through the chain.
    yield_now(); // the first switch goes through the hub, which starts it
    let chans: Rc<Vec<Channel<u32>>> = Rc::new((0..3).map(|_| Channel::new()).collect());
    let depths: Rc<RefCell<Vec<u32>>> = Rc::default();
    let handles: Rc<RefCell<Vec<JoinHandle<GetResult>>>> = Rc::default();
    fn stuck(
        i: usize,
        chans: Rc<Vec<Channel<u32>>>,
        depths: Rc<RefCell<Vec<u32>>>,
        handles: Rc<RefCell<Vec<JoinHandle<GetResult>>>>,
    ) -> JoinHandle<GetResult> {
        Builder::new().name(format!("stuck {i}")).spawn(move || {
            let probe = Greenlet::new(|_| ());
            depths.borrow_mut().push(chain_depth(&probe));
            if i + 1 < chans.len() {
                let next = stuck(i + 1, chans.clone(), depths, handles.clone());
                handles.borrow_mut().push(next);
            }
            chans[i].get()
        })
    }
    let first = stuck(0, chans.clone(), depths.clone(), handles.clone());
    let blocked = panic::catch_unwind(AssertUnwindSafe(|| first.wait()));
    assert_eq!(
        *depths.borrow(),
        [1, 2, 3],
        "precondition: each greenlet was resumed by the one before it"
    );
    for ch in chans.iter() {
        assert_eq!(
            ch.waiter_counts(),
            (1, 0),
            "every greenlet is parked in its get"
        );
    }
    let payload = blocked.expect_err("main's join of a greenlet nobody can wake must fail");
    let report = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(report.contains("deadlock"), "unexpected panic: {report}");
    for i in 0..3 {
        assert!(
            report.contains(&format!("stuck {i}")),
            "stuck {i} is listed: {report}"
        );
    }
    let mut parked = vec![first];
    parked.extend(handles.borrow_mut().drain(..));
    for h in &parked {
        h.kill();
    }
    for h in parked {
        assert!(matches!(h.join(), Err(JoinError::Killed)));
    }
}

type GetResult = Result<u32, GetError>;

/// A greenlet `x` that publishes its raw greenlet and parks for good in a channel get
/// (a drop guard records its unwinding), and a greenlet `y` spawned right after it, so
/// that `x` parking resumes `y` directly. `y` gets `x`'s handle and greenlet, and
/// checks it was resumed by `x` itself: `x`'s greenlet is then one switch away even
/// with a limit of 0.
struct ResumerAndResumed {
    ch: Rc<Channel<u32>>,
    unwound: Rc<Cell<bool>>,
    x: Rc<RefCell<Option<JoinHandle<GetResult>>>>,
    x_greenlet: Rc<RefCell<Option<Greenlet>>>,
}

impl ResumerAndResumed {
    fn spawn_x() -> ResumerAndResumed {
        let ch: Rc<Channel<u32>> = Rc::new(Channel::new());
        let unwound = Rc::new(Cell::new(false));
        let x_greenlet: Rc<RefCell<Option<Greenlet>>> = Rc::default();
        let (c, u, xg) = (ch.clone(), unwound.clone(), x_greenlet.clone());
        let x = Builder::new().name("x").spawn(move || {
            *xg.borrow_mut() = Some(greenweave_greenlet::current());
            let _guard = SetOnDrop(u);
            c.get()
        });
        ResumerAndResumed {
            ch,
            unwound,
            x: Rc::new(RefCell::new(Some(x))),
            x_greenlet,
        }
    }

    /// In `y`: whether `x` resumed it, and `x`'s handle.
    fn in_y(
        x: &RefCell<Option<JoinHandle<GetResult>>>,
        x_greenlet: &RefCell<Option<Greenlet>>,
    ) -> (bool, JoinHandle<GetResult>) {
        let g = x_greenlet.borrow().clone().expect("x ran before y");
        let resumed_by_x = g.is_one_switch_away(0);
        (resumed_by_x, x.borrow_mut().take().expect("x's handle"))
    }
}

#[test]
fn a_greenlet_kills_the_greenlet_that_resumed_it_directly_and_waits_for_it() {
    let rr = ResumerAndResumed::spawn_x();
    let (x, xg) = (rr.x.clone(), rr.x_greenlet.clone());
    let y = Builder::new().name("y").spawn(move || {
        let (resumed_by_x, x) = ResumerAndResumed::in_y(&x, &xg);
        // Parks y in the wait; x, woken by the kill, is next, and is y's resumer.
        x.kill();
        (resumed_by_x, matches!(x.join(), Err(JoinError::Killed)))
    });
    let (resumed_by_x, killed) = y.join().unwrap();
    assert!(
        resumed_by_x,
        "precondition: x resumed y directly when it parked"
    );
    assert!(killed, "x joins as killed");
    assert!(rr.unwound.get(), "x unwound");
    assert_eq!(rr.ch.waiter_counts(), (0, 0), "x left the channel");
}

#[test]
fn a_greenlet_finishing_on_top_of_the_resumer_it_killed_lets_it_unwind() {
    // y asks x (its resumer, parked below it on the chain) to die and finishes at once:
    // x, the next ready greenlet, takes over from the finished y and unwinds.
    let rr = ResumerAndResumed::spawn_x();
    let (x, xg) = (rr.x.clone(), rr.x_greenlet.clone());
    let y_greenlet: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let yg = y_greenlet.clone();
    let y = Builder::new().name("y").spawn(move || {
        *yg.borrow_mut() = Some(greenweave_greenlet::current());
        let (resumed_by_x, x) = ResumerAndResumed::in_y(&x, &xg);
        x.kill_nowait();
        assert!(!x.is_finished(), "kill_nowait does not wait");
        (resumed_by_x, x)
    });
    let (resumed_by_x, x) = y.join().unwrap();
    assert!(
        resumed_by_x,
        "precondition: x resumed y directly when it parked"
    );
    // The runtime hands a finishing greenlet's return straight to its resumer when that
    // is the next to run, by making it the parent.
    let y_parent = y_greenlet.borrow().as_ref().and_then(Greenlet::parent);
    let x_greenlet = rr.x_greenlet.borrow().clone();
    assert!(
        y_parent.is_some() && y_parent == x_greenlet,
        "precondition: y's return went straight to x"
    );
    // x was woken by the kill before main was woken by y's end: it ran first.
    assert!(rr.unwound.get(), "x unwound before main ran again");
    assert!(x.is_finished());
    assert!(matches!(x.join(), Err(JoinError::Killed)));
    assert_eq!(rr.ch.waiter_counts(), (0, 0), "x left the channel");
}
