//! Direct switches between tasks: a greenlet that parks or yields switches straight to
//! the front of the run queue when that is one corosensei switch, and through the hub
//! otherwise. None of it may show: the run order stays FIFO, chains of hand-offs
//! deeper than the direct-switch limit still work, timers and timeouts still fire
//! while greenlets keep the run queue busy without ever visiting the hub on their
//! own, and kills still unwind parked greenlets.
//!
//! The greenlets that would spin for ever if the hub never got a turn give up after
//! [`GIVE_UP`], so a broken hub fails these tests instead of hanging them.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_greenlet::Greenlet;
use greenweave_runtime::queue::{Channel, GetError};
use greenweave_runtime::{
    Builder, Elapsed, JoinError, JoinHandle, MAINTENANCE_INTERVAL, sleep, spawn, with_timeout,
    yield_now,
};

/// Longest a spinning greenlet keeps going before it gives up on the hub.
const GIVE_UP: Duration = Duration::from_secs(5);

/// Generous upper bound for a wake-up that is due after tens of milliseconds.
const PROMPT: Duration = Duration::from_secs(2);

/// Sets a flag when dropped, to prove a greenlet unwound.
struct SetOnDrop(Rc<Cell<bool>>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// How deep the running greenlet sits on the resume chain (main is 0), read through
/// `probe`, an unstarted greenlet: it is one switch away exactly while the running
/// depth is below the limit.
fn chain_depth(probe: &Greenlet) -> u32 {
    assert!(!probe.is_started());
    (0..1024)
        .find(|&d| probe.is_one_switch_away(d + 1))
        .expect("the resume chain is less than 1024 greenlets deep")
}

/// Two greenlets bouncing a counter through two channels, so that the run queue never
/// empties and every hand-off is a park: they run until killed (or until [`GIVE_UP`],
/// when they return `"gave up"`).
struct PingPong {
    ping: JoinHandle<&'static str>,
    pong: JoinHandle<&'static str>,
    /// Round trips so far.
    trips: Rc<Cell<u64>>,
}

impl PingPong {
    fn start() -> PingPong {
        let give_up = Instant::now() + GIVE_UP;
        let to_pong: Rc<Channel<u64>> = Rc::new(Channel::new());
        let to_ping: Rc<Channel<u64>> = Rc::new(Channel::new());
        let trips = Rc::new(Cell::new(0));
        let ping = Builder::new().name("ping").spawn({
            let (to_pong, to_ping, trips) = (to_pong.clone(), to_ping.clone(), trips.clone());
            move || {
                let mut n = 0;
                while Instant::now() < give_up {
                    to_pong.put(n).unwrap();
                    let back = to_ping.get().unwrap();
                    assert_eq!(back, n + 1, "pong answers with the next number");
                    n = back;
                    trips.set(trips.get() + 1);
                }
                "gave up"
            }
        });
        let pong = Builder::new().name("pong").spawn(move || {
            while Instant::now() < give_up {
                let n = to_pong.get().unwrap();
                to_ping.put(n + 1).unwrap();
            }
            "gave up"
        });
        PingPong { ping, pong, trips }
    }

    /// Kills both and checks they died of it (rather than giving up or panicking).
    fn kill(self) {
        self.ping.kill();
        self.pong.kill();
        assert!(
            matches!(self.ping.join(), Err(JoinError::Killed)),
            "ping joins as killed"
        );
        assert!(
            matches!(self.pong.join(), Err(JoinError::Killed)),
            "pong joins as killed"
        );
    }
}

/// Two greenlets that do nothing but `yield_now`, until killed (or [`GIVE_UP`]).
fn spinners(count: &Rc<Cell<u64>>) -> Vec<JoinHandle<&'static str>> {
    let give_up = Instant::now() + GIVE_UP;
    (0..2)
        .map(|i| {
            let count = count.clone();
            Builder::new().name(format!("spinner {i}")).spawn(move || {
                while Instant::now() < give_up {
                    count.set(count.get() + 1);
                    yield_now();
                }
                "gave up"
            })
        })
        .collect()
}

fn kill_all_and_check(handles: Vec<JoinHandle<&'static str>>) {
    for h in &handles {
        h.kill();
    }
    for h in handles {
        let name = h.name().unwrap_or("?").to_owned();
        assert!(
            matches!(h.join(), Err(JoinError::Killed)),
            "{name} joins as killed"
        );
    }
}

#[test]
fn yield_now_runs_every_other_ready_greenlet_first_in_fifo_order() {
    const GREENLETS: usize = 5;
    const ROUNDS: usize = 5;
    let log: Rc<RefCell<Vec<(usize, usize)>>> = Rc::default();
    let handles: Vec<_> = (0..GREENLETS)
        .map(|id| {
            let log = log.clone();
            spawn(move || {
                for round in 0..ROUNDS {
                    log.borrow_mut().push((id, round));
                    if round + 1 < ROUNDS {
                        yield_now();
                    }
                }
                id
            })
        })
        .collect();
    for (id, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), id);
    }
    let expected: Vec<(usize, usize)> = (0..ROUNDS)
        .flat_map(|round| (0..GREENLETS).map(move |id| (id, round)))
        .collect();
    assert_eq!(*log.borrow(), expected);
}

/// Who wrote a log entry, in the round-robin test with main taking part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Main,
    Spawned(usize),
}

#[test]
fn main_yielding_among_spawned_greenlets_takes_its_turn_in_fifo_order() {
    // Main (depth 0) is part of the rotation, so it resumes greenlets directly, and
    // they switch back to it directly.
    const GREENLETS: usize = 5;
    const ROUNDS: usize = 5;
    let log: Rc<RefCell<Vec<(Who, usize)>>> = Rc::default();
    let handles: Vec<_> = (0..GREENLETS)
        .map(|id| {
            let log = log.clone();
            spawn(move || {
                for round in 0..ROUNDS {
                    log.borrow_mut().push((Who::Spawned(id), round));
                    yield_now();
                }
            })
        })
        .collect();
    for round in 0..ROUNDS {
        log.borrow_mut().push((Who::Main, round));
        yield_now();
    }
    for h in handles {
        h.join().unwrap();
    }
    let expected: Vec<(Who, usize)> = (0..ROUNDS)
        .flat_map(|round| {
            std::iter::once((Who::Main, round))
                .chain((0..GREENLETS).map(move |id| (Who::Spawned(id), round)))
        })
        .collect();
    assert_eq!(*log.borrow(), expected);
}

/// Runs a ring of `size` greenlets for `hops` hops: greenlet i takes a counter from
/// channel i and puts the next value to channel i + 1 (mod `size`), main starts it with
/// 0 and takes the last value. Every hop parks one greenlet and wakes the next, so the
/// direct switches would stack the greenlets up along the resume chain unless a
/// greenlet too deep to resume the next one goes back through the hub. Checks the
/// counter arrives in order, every greenlet joins and nobody is left parked; returns
/// the deepest chain depth any ring greenlet ran at.
fn ring(size: usize, hops: u64) -> u32 {
    assert_eq!(hops % size as u64, 0);
    let rounds = hops / size as u64;
    let chans: Rc<Vec<Channel<u64>>> = Rc::new((0..size).map(|_| Channel::new()).collect());
    let done: Rc<Channel<u64>> = Rc::new(Channel::new());
    let max_depth = Rc::new(Cell::new(0));
    let handles: Vec<_> = (0..size)
        .map(|i| {
            let (chans, done, max_depth) = (chans.clone(), done.clone(), max_depth.clone());
            Builder::new().name(format!("ring {i}")).spawn(move || {
                let probe = Greenlet::new(|_| ());
                for round in 0..rounds {
                    let v = chans[i].get().unwrap();
                    assert_eq!(
                        v,
                        round * size as u64 + i as u64,
                        "ring {i}: hop out of order"
                    );
                    max_depth.set(max_depth.get().max(chain_depth(&probe)));
                    let next = v + 1;
                    if next == hops {
                        done.put(next).unwrap();
                    } else {
                        chans[(i + 1) % size].put(next).unwrap();
                    }
                }
                rounds
            })
        })
        .collect();
    chans[0].put(0).unwrap();
    assert_eq!(done.get().unwrap(), hops);
    for h in handles {
        assert_eq!(h.join().unwrap(), rounds);
    }
    for ch in chans.iter() {
        assert_eq!(ch.waiter_counts(), (0, 0), "nobody is left parked");
    }
    max_depth.get()
}

#[test]
fn a_ring_of_four_channels_passes_ten_thousand_hops_in_order() {
    // With four greenlets ready in turn, the hub loop runs them round robin (a direct
    // switch only pays between two): every one runs at depth 2 (main 0, hub 1) or,
    // after a hand-off to the greenlet that resumed it, lower.
    let deepest = ring(4, 10_000);
    assert!(deepest <= 3, "the resume chain grew to depth {deepest}");
}

#[test]
fn two_greenlets_handing_off_resume_each_other_directly() {
    // Two spawned greenlets ping-pong while main waits: the hub runs the first at depth
    // 2, and from then on they hand off to each other without the hub (the second runs
    // at depth 3, resumed by the first, which it then suspends back to).
    let chans: Rc<[Channel<u32>; 2]> = Rc::new([Channel::new(), Channel::new()]);
    let depths: Rc<RefCell<Vec<u32>>> = Rc::default();
    let side = |me: usize| {
        let (chans, depths) = (chans.clone(), depths.clone());
        spawn(move || {
            let probe = Greenlet::new(|_| ());
            if me == 0 {
                chans[1].put(0).unwrap();
            }
            loop {
                let v = chans[me].get().unwrap();
                depths.borrow_mut().push(chain_depth(&probe));
                if v == 200 {
                    return v; // the last hop
                }
                chans[1 - me].put(v + 1).unwrap();
                if v + 1 == 200 {
                    return v + 1; // handed over the last hop
                }
            }
        })
    };
    let (a, b) = (side(0), side(1));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!((a, b), (200, 200), "every hop arrived");
    let depths = depths.borrow();
    assert!(
        depths.contains(&3),
        "one greenlet resumed the other directly (depths {depths:?})"
    );
    assert!(
        depths.iter().all(|&d| d <= 3),
        "the chain stays short (depths {depths:?})"
    );
}

#[test]
fn a_ring_of_sixteen_keeps_the_resume_chain_short() {
    // With 16 greenlets handing off round the ring, unlimited direct switches would
    // stack up to 16 of them on the chain; the limit of 3 direct levels (plus the hub
    // and the task it runs, when a greenlet falls back to the hub from there) keeps it
    // far shorter.
    let deepest = ring(16, 1_600);
    assert!(
        deepest <= 8,
        "the resume chain grew to depth {deepest} instead of falling back to the hub"
    );
}

#[test]
fn timers_fire_while_ping_pong_keeps_the_run_queue_busy() {
    let pp = PingPong::start();
    let start = Instant::now();
    sleep(Duration::from_millis(50));
    let slept = start.elapsed();
    let trips = pp.trips.get();
    assert!(slept >= Duration::from_millis(50), "woke early: {slept:?}");
    assert!(
        slept < PROMPT,
        "a 50 ms sleep took {slept:?} while two greenlets ping-ponged"
    );
    assert!(
        trips > u64::from(MAINTENANCE_INTERVAL),
        "the ping-pong ran {trips} round trips while main slept"
    );
    assert!(!pp.ping.is_finished() && !pp.pong.is_finished());
    pp.kill();
}

#[test]
fn timers_fire_while_two_greenlets_yield_to_each_other() {
    let count = Rc::new(Cell::new(0));
    let spin = spinners(&count);
    let start = Instant::now();
    sleep(Duration::from_millis(50));
    let slept = start.elapsed();
    assert!(slept >= Duration::from_millis(50), "woke early: {slept:?}");
    assert!(
        slept < PROMPT,
        "a 50 ms sleep took {slept:?} while two greenlets yielded"
    );
    assert!(
        count.get() > u64::from(MAINTENANCE_INTERVAL),
        "the spinners ran {} times while main slept",
        count.get()
    );
    kill_all_and_check(spin);
}

#[test]
fn with_timeout_ends_a_yield_loop_while_others_ping_pong() {
    let pp = PingPong::start();
    let start = Instant::now();
    let looper = Builder::new().name("looper").spawn(move || {
        let give_up = Instant::now() + GIVE_UP;
        let outcome = with_timeout(Duration::from_millis(50), || {
            while Instant::now() < give_up {
                yield_now();
            }
            "gave up"
        });
        (outcome, start.elapsed())
    });
    let (outcome, took) = looper.join().unwrap();
    assert_eq!(outcome, Err(Elapsed));
    assert!(took >= Duration::from_millis(50), "fired early: {took:?}");
    assert!(took < PROMPT, "a 50 ms timeout fired after {took:?}");
    pp.kill();
}

#[test]
fn with_timeout_in_main_ends_its_yield_loop_while_others_ping_pong() {
    // Main takes part in the direct switches itself (it is at the bottom of the chain).
    let pp = PingPong::start();
    let give_up = Instant::now() + GIVE_UP;
    let start = Instant::now();
    let outcome = with_timeout(Duration::from_millis(50), || {
        while Instant::now() < give_up {
            yield_now();
        }
        "gave up"
    });
    let took = start.elapsed();
    assert_eq!(outcome, Err(Elapsed));
    assert!(took >= Duration::from_millis(50), "fired early: {took:?}");
    assert!(took < PROMPT, "a 50 ms timeout fired after {took:?}");
    pp.kill();
}

#[test]
fn with_timeout_ends_a_channel_get_nobody_serves_while_others_ping_pong() {
    let pp = PingPong::start();
    let ch: Rc<Channel<u32>> = Rc::new(Channel::new());
    let start = Instant::now();
    let c = ch.clone();
    let getter = Builder::new().name("getter").spawn(move || {
        let outcome = with_timeout(Duration::from_millis(50), || c.get());
        (outcome, start.elapsed())
    });
    let (outcome, took) = getter.join().unwrap();
    assert!(
        matches!(outcome, Err(Elapsed)),
        "the get should time out, got {outcome:?}"
    );
    assert!(took >= Duration::from_millis(50), "fired early: {took:?}");
    assert!(took < PROMPT, "a 50 ms timeout fired after {took:?}");
    assert_eq!(ch.waiter_counts(), (0, 0), "the timed-out getter left");
    pp.kill();
}

#[test]
fn kill_unwinds_a_greenlet_parked_in_a_channel_get_while_others_ping_pong() {
    let pp = PingPong::start();
    let ch: Rc<Channel<u32>> = Rc::new(Channel::new());
    let unwound = Rc::new(Cell::new(false));
    let (c, u) = (ch.clone(), unwound.clone());
    let victim = Builder::new().name("victim").spawn(move || {
        let _guard = SetOnDrop(u);
        c.get()
    });
    // Let it reach its get (the ping-pong runs meanwhile).
    for _ in 0..100 {
        if ch.waiter_counts().0 == 1 {
            break;
        }
        yield_now();
    }
    assert_eq!(ch.waiter_counts(), (1, 0), "the victim is parked in get");
    assert!(!unwound.get());
    let trips_before = pp.trips.get();
    victim.kill();
    assert!(unwound.get(), "the victim's destructors ran");
    assert!(victim.is_finished());
    assert!(matches!(victim.join(), Err(JoinError::Killed)));
    assert_eq!(
        ch.waiter_counts(),
        (0, 0),
        "the killed getter left the channel"
    );
    // The ping-pong is unharmed and still going.
    for _ in 0..1000 {
        if pp.trips.get() > trips_before {
            break;
        }
        yield_now();
    }
    assert!(pp.trips.get() > trips_before, "the ping-pong stopped");
    assert!(!pp.ping.is_finished() && !pp.pong.is_finished());
    pp.kill();
}

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
