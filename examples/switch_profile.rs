//! A small standalone driver of the `switch` benchmark's hot loops, for profilers.
//!
//! Criterion's own machinery drowns a 40 ns loop in a profile; this runs one loop at a
//! time and prints nanoseconds per operation:
//!
//! ```text
//! cargo run --release --example switch_profile -- [corosensei|switch|create|all] [N]
//! valgrind --tool=callgrind --dump-instr=yes \
//!     target/release/examples/switch_profile switch 100000
//! callgrind_annotate --auto=yes callgrind.out.<pid>
//! ```
//!
//! - `corosensei`: raw `Coroutine::resume` round trips (the floor);
//! - `switch`: `g.switch(())` round trips between the main greenlet and a greenlet that
//!   switches straight back;
//! - `create`: `Greenlet::new` + one switch to completion + drop, with a warm pool.

use std::hint::black_box;
use std::time::Instant;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, Yielder};
use greenweave::greenlet::{self, Greenlet};

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
            black_box(g.switch(()));
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

fn report(what: &str, n: u64, run: impl FnOnce()) {
    let start = Instant::now();
    run();
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{what:<28} {n:>10} iterations  {ns:>8.2} ns/iteration");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "all".into());
    let n: u64 = match args.next() {
        Some(s) => s.parse().expect("N must be a positive integer"),
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
    if !all && !matches!(mode.as_str(), "corosensei" | "switch" | "create") {
        eprintln!("unknown mode {mode:?}: use corosensei, switch, create or all");
        std::process::exit(2);
    }
}
