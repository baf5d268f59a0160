//! Cost of a greenlet switch, compared with its building block and with OS threads.
//!
//! All functions are in one criterion group, `switch`, so they are measured in the same
//! run on the same machine state:
//!
//! - `corosensei_resume_suspend`: the floor. A raw corosensei `Coroutine<(), (), ()>`
//!   on a `DefaultStack` that suspends forever; one iteration is one `resume` (into the
//!   coroutine and back out of its `suspend`), i.e. two context switches.
//! - `greenlet_switch_round_trip`: two greenlets ping-ponging. The bench thread's main
//!   greenlet switches to `g`, which switches straight back; one iteration is one
//!   `g.switch(())`, i.e. main → g → main. `g` is made once, outside the timing loop,
//!   and killed (its last handle dropped, which sends it `GreenletExit`) at the end.
//!   The iteration checks the value that comes back (`is::<()>()`), as a caller does;
//!   `black_box` on the 16-byte `Value` itself would add a spill and a reload that
//!   stalls on store forwarding (about 5 ns on the reference machine, see
//!   docs/bench-notes.md), which is not part of a switch.
//! - `greenlet_create_run_finish`: the whole life of a short greenlet with a warm stack
//!   pool: `Greenlet::new`, one switch into it, its function returns to the parent,
//!   the handle is dropped.
//! - `os_thread_handoff_condvar`: the same round trip as `greenlet_switch_round_trip`
//!   between two OS threads, handing a turn flag over with a `Mutex` and a `Condvar`.
//! - `os_thread_handoff_sync_channel`: the same with two rendezvous channels
//!   (`sync_channel(0)`): send to the partner, then receive its reply.
//! - `thread_spawn_join`: `std::thread::spawn` of a trivial closure and `join`, the OS
//!   counterpart of `greenlet_create_run_finish`.
//!
//! Targets (see BENCHMARKS.md for the figures):
//!
//! - `greenlet_switch_round_trip` ≤ 3 × `corosensei_resume_suspend`;
//! - `greenlet_switch_round_trip` ≥ 500 × faster than `os_thread_handoff_*`;
//! - `greenlet_create_run_finish` ≤ 150 ns and ≥ 100 × faster than `thread_spawn_join`.
//!
//! Run with `cargo bench --bench switch -- --warm-up-time 1 --measurement-time 3`.

// `criterion_group!` and `criterion_main!` generate public items without doc comments,
// which the workspace's `missing_docs = "deny"` would reject.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, Yielder};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use greenweave::greenlet::{self, Greenlet};

type Group<'a> = BenchmarkGroup<'a, WallTime>;

fn corosensei_resume_suspend(group: &mut Group) {
    let mut coroutine = Coroutine::with_stack(
        DefaultStack::default(),
        |yielder: &Yielder<(), ()>, ()| -> () {
            loop {
                yielder.suspend(());
            }
        },
    );
    group.bench_function("corosensei_resume_suspend", |b| {
        b.iter(|| black_box(coroutine.resume(())))
    });
    // Dropping a suspended coroutine unwinds its stack.
    drop(coroutine);
}

fn greenlet_switch_round_trip(group: &mut Group) {
    let main = greenlet::current();
    let g = Greenlet::new(move |_| -> () {
        loop {
            main.switch(());
        }
    });
    // Start it outside the timing loop, so every measured switch resumes a parked `g`.
    g.switch(());
    group.bench_function("greenlet_switch_round_trip", |b| {
        b.iter(|| g.switch(()).is::<()>())
    });
    // The last handle: `g` is sent `GreenletExit`, unwinds and comes back here.
    drop(g);
}

fn greenlet_create_run_finish(group: &mut Group) {
    fn create_run_finish() {
        let g = Greenlet::new(|_| black_box(1_i32));
        black_box(g.switch(()));
        debug_assert!(g.is_dead());
    }
    // Warm the stack pool (and make the main greenlet) before measuring.
    create_run_finish();
    group.bench_function("greenlet_create_run_finish", |b| b.iter(create_run_finish));
}

fn os_thread_handoff_condvar(group: &mut Group) {
    group.bench_function("os_thread_handoff_condvar", |b| {
        b.iter_custom(|iters| {
            // `true` while it is thread B's turn.
            let turn = Arc::new((Mutex::new(false), Condvar::new()));
            let partner = {
                let turn = turn.clone();
                thread::spawn(move || {
                    let (flag, cv) = &*turn;
                    // One extra round trip: the warm-up one below.
                    for _ in 0..=iters {
                        let mut b_turn = cv.wait_while(flag.lock().unwrap(), |b| !*b).unwrap();
                        *b_turn = false;
                        cv.notify_one();
                    }
                })
            };
            let (flag, cv) = &*turn;
            let round_trip = || {
                let mut b_turn = flag.lock().unwrap();
                *b_turn = true;
                cv.notify_one();
                drop(cv.wait_while(b_turn, |b| *b).unwrap());
            };
            // Untimed warm-up round trip: the partner is now running and waiting.
            round_trip();
            let start = Instant::now();
            for _ in 0..iters {
                round_trip();
            }
            let elapsed = start.elapsed();
            partner.join().unwrap();
            elapsed
        })
    });
}

fn os_thread_handoff_sync_channel(group: &mut Group) {
    group.bench_function("os_thread_handoff_sync_channel", |b| {
        b.iter_custom(|iters| {
            let (to_b, from_a) = sync_channel::<u64>(0);
            let (to_a, from_b) = sync_channel::<u64>(0);
            let partner = thread::spawn(move || {
                for _ in 0..=iters {
                    let n = from_a.recv().unwrap();
                    to_a.send(n).unwrap();
                }
            });
            let round_trip = |i: u64| {
                to_b.send(black_box(i)).unwrap();
                black_box(from_b.recv().unwrap());
            };
            // Untimed warm-up round trip, as above.
            round_trip(0);
            let start = Instant::now();
            for i in 0..iters {
                round_trip(i);
            }
            let elapsed = start.elapsed();
            partner.join().unwrap();
            elapsed
        })
    });
}

fn thread_spawn_join(group: &mut Group) {
    group.bench_function("thread_spawn_join", |b| {
        b.iter(|| thread::spawn(|| black_box(1_i32)).join().unwrap())
    });
}

fn bench_switch(c: &mut Criterion) {
    let mut group = c.benchmark_group("switch");
    corosensei_resume_suspend(&mut group);
    greenlet_switch_round_trip(&mut group);
    greenlet_create_run_finish(&mut group);
    os_thread_handoff_condvar(&mut group);
    os_thread_handoff_sync_channel(&mut group);
    thread_spawn_join(&mut group);
    group.finish();
}

#[path = "common/config.rs"]
mod config;

criterion_group! {
    name = switch;
    config = config::standard();
    targets = bench_switch
}
criterion_main!(switch);
