//! Direct switches between tasks: a greenlet that parks or yields switches straight to
//! the front of the run queue when that is one corosensei switch, and through the hub
//! otherwise. None of it may show: the run order stays FIFO, chains of hand-offs
//! deeper than the direct-switch limit still work, timers and timeouts still fire
//! while greenlets keep the run queue busy without ever visiting the hub on their
//! own, and kills still unwind parked greenlets.
//!
//! The greenlets that would spin for ever if the hub never got a turn give up after
//! [`GIVE_UP`], so a broken hub fails these tests instead of hanging them.

#[path = "common/valgrind.rs"]
mod valgrind;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_greenlet::Greenlet;
use greenweave_runtime::queue::Channel;
#[path = "common/chain.rs"]
mod chain;
use chain::{SetOnDrop, chain_depth};

use greenweave_runtime::{
    Builder, Elapsed, JoinError, JoinHandle, MAINTENANCE_INTERVAL, sleep, spawn, with_timeout,
    yield_now,
};

/// Longest a spinning greenlet keeps going before it gives up on the hub.
const GIVE_UP: Duration = Duration::from_secs(5);

/// Generous upper bound for a wake-up that is due after tens of milliseconds.
const PROMPT: Duration = Duration::from_secs(2);

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
    if valgrind::skip_under_valgrind(
        "counts round trips within a 50 ms sleep, which Valgrind's slowdown breaks",
    ) {
        return;
    }
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
    if valgrind::skip_under_valgrind(
        "counts yields within a 50 ms sleep, which Valgrind's slowdown breaks",
    ) {
        return;
    }
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
