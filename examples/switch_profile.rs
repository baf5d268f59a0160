//! A small standalone driver of the `switch` benchmark's hot loops, for profilers.
//!
//! Criterion's own machinery drowns a 40 ns loop in a profile; this runs one loop at a
//! time and prints nanoseconds per operation:
//!
//! ```text
//! cargo run --release --example switch_profile -- [MODE|all] [N]
//! valgrind --tool=callgrind --dump-instr=yes \
//!     target/release/examples/switch_profile switch 100000
//! callgrind_annotate --auto=yes callgrind.out.<pid>
//! ```
//!
//! - `corosensei`: raw `Coroutine::resume` round trips (the floor);
//! - `switch`: `g.switch(())` round trips between the main greenlet and a greenlet that
//!   switches straight back;
//! - `create`: `Greenlet::new` + one switch to completion + drop, with a warm pool;
//! - `spawn`: `greenweave::spawn` + `join` of a trivial task (the runtime bench's
//!   `spawn_join`);
//! - `yield`: two tasks calling `yield_now` in turn; one iteration is one yield;
//! - `channel` / `queue1`: round trips through two `Channel`s / two `Queue::new(1)`s
//!   between the main greenlet and an echoing task (the runtime bench's `ping_pong`);
//! - `event` / `semaphore`: the same round trip through two `Event`s (set, wait,
//!   clear) / two `Semaphore(0)`s (release, acquire): a park and a notify each way;
//! - `mutex`: two tasks each holding one `Mutex` across a `yield_now` and yielding
//!   again after unlocking, so every lock parks on the contended mutex and every
//!   unlock wakes the other (one iteration is one lock of the main greenlet).

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, Yielder};
use greenweave::greenlet::{self, Greenlet};
use greenweave::queue::{Channel, Queue};
use greenweave::sync::{Event, Mutex, Semaphore};

#[path = "../benches/common/handoff.rs"]
mod handoff;
use handoff::{Handoff, greenweave_ping_pong};

fn corosensei_round_trips(n: u64) {
    let mut coroutine = Coroutine::with_stack(
        DefaultStack::default(),
        |yielder: &Yielder<(), ()>, ()| -> () {
            loop {
                yielder.suspend(());
            }
        },
    );
    coroutine.resume(());
    report("corosensei resume+suspend", n, || {
        for _ in 0..n {
            black_box(coroutine.resume(()));
        }
    });
}

fn greenlet_round_trips(n: u64) {
    let main = greenlet::current();
    let g = Greenlet::new(move |_| -> () {
        loop {
            main.switch(());
        }
    });
    g.switch(());
    report("greenlet switch round trip", n, || {
        for _ in 0..n {
            black_box(g.switch(()).is::<()>());
        }
    });
    drop(g);
}

fn greenlet_create_run_finish(n: u64) {
    let once = || {
        let g = Greenlet::new(|_| black_box(1_i32));
        black_box(g.switch(()));
    };
    once();
    report("greenlet create+run+finish", n, || {
        for _ in 0..n {
            once();
        }
    });
}

fn spawn_join(n: u64) {
    let once = || black_box(greenweave::spawn(|| black_box(1_i32)).join().unwrap());
    once();
    report("spawn+join", n, || {
        for _ in 0..n {
            once();
        }
    });
}

fn yields(n: u64) {
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let partner = greenweave::spawn(move || {
        while !s.get() {
            greenweave::yield_now();
        }
    });
    greenweave::yield_now();
    // Each of our yields lets the partner yield once: two yields per round.
    let rounds = n.div_ceil(2);
    report("yield_now", 2 * rounds, || {
        for _ in 0..rounds {
            greenweave::yield_now();
        }
    });
    stop.set(true);
    partner.join().unwrap();
}

/// Round trips between the main greenlet and a partner through two one-way signals:
/// `signal(i)` raises signal `i`, `await_(i)` waits for it (and consumes it).
fn signal_round_trips<S: 'static>(
    what: &str,
    n: u64,
    signals: S,
    signal: fn(&S, usize),
    await_: fn(&S, usize),
) {
    let signals = Rc::new(signals);
    let stop = Rc::new(Cell::new(false));
    let (s, st) = (signals.clone(), stop.clone());
    let partner = greenweave::spawn(move || {
        loop {
            await_(&s, 0);
            if st.get() {
                return;
            }
            signal(&s, 1);
        }
    });
    report(what, n, || {
        for _ in 0..n {
            signal(&signals, 0);
            await_(&signals, 1);
        }
    });
    stop.set(true);
    signal(&signals, 0);
    partner.join().unwrap();
}

fn event_round_trips(n: u64) {
    signal_round_trips(
        "round trip Event",
        n,
        [Event::new(), Event::new()],
        |e, i| e[i].set(),
        |e, i| {
            e[i].wait();
            e[i].clear();
        },
    );
}

fn semaphore_round_trips(n: u64) {
    signal_round_trips(
        "round trip Semaphore",
        n,
        [Semaphore::new(0), Semaphore::new(0)],
        |s, i| s[i].release(),
        |s, i| s[i].acquire(),
    );
}

fn contended_mutex(n: u64) {
    let mutex = Rc::new(Mutex::new(()));
    let stop = Rc::new(Cell::new(false));
    let (m, s) = (mutex.clone(), stop.clone());
    let partner = greenweave::spawn(move || {
        while !s.get() {
            let guard = m.lock();
            greenweave::yield_now();
            drop(guard);
            // Without this the unlocking task would take the lock straight back
            // (wake-and-recheck), and the other would never get it.
            greenweave::yield_now();
        }
    });
    greenweave::yield_now();
    report("contended Mutex lock", n, || {
        for _ in 0..n {
            let guard = mutex.lock();
            greenweave::yield_now();
            drop(guard);
            greenweave::yield_now();
        }
    });
    stop.set(true);
    partner.join().unwrap();
}

fn ping_pong<Q: Handoff + 'static>(what: &str, n: u64, make: impl Fn() -> Q) {
    print_line(what, n, greenweave_ping_pong(n, make));
}

fn report(what: &str, n: u64, run: impl FnOnce()) {
    let start = Instant::now();
    run();
    print_line(what, n, start.elapsed());
}

fn print_line(what: &str, n: u64, elapsed: Duration) {
    let ns = elapsed.as_nanos() as f64 / n as f64;
    println!("{what:<28} {n:>10} iterations  {ns:>8.2} ns/iteration");
}

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "all".into());
    let n: u64 = match args.next() {
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("error: invalid value {s:?} for N: not a positive integer");
                std::process::exit(2);
            }
        },
        None => 10_000_000,
    };
    let all = mode == "all";
    if all || mode == "corosensei" {
        corosensei_round_trips(n);
    }
    if all || mode == "switch" {
        greenlet_round_trips(n);
    }
    if all || mode == "create" {
        greenlet_create_run_finish(n);
    }
    if all || mode == "spawn" {
        spawn_join(n / 10);
    }
    if all || mode == "yield" {
        yields(n);
    }
    if all || mode == "channel" {
        ping_pong("ping-pong Channel", n / 4, Channel::new);
    }
    if all || mode == "queue1" {
        ping_pong("ping-pong Queue(1)", n / 4, || Queue::new(1));
    }
    if all || mode == "event" {
        event_round_trips(n / 4);
    }
    if all || mode == "semaphore" {
        semaphore_round_trips(n / 4);
    }
    if all || mode == "mutex" {
        contended_mutex(n / 4);
    }
    const MODES: [&str; 10] = [
        "corosensei",
        "switch",
        "create",
        "spawn",
        "yield",
        "channel",
        "queue1",
        "event",
        "semaphore",
        "mutex",
    ];
    if !all && !MODES.contains(&mode.as_str()) {
        eprintln!("unknown mode {mode:?}: use one of {MODES:?} or all");
        std::process::exit(2);
    }
}
