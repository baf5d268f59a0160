//! The blocking monitor and `dump_all` across `fork`: the forking thread's hub, rebuilt
//! in the child, is one of the child's hubs (and the parent's other hubs are not), and
//! a fork while another thread starts or stops the monitor leaves the child a monitor
//! it can start and stop.
//!
//! Each child reports through a pipe (`fork::report_from_child`), not its exit status,
//! which under Valgrind is memcheck's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use greenweave_runtime::{monitor, sleep, spawn, yield_now};

#[path = "common/fork.rs"]
mod fork;
use fork::{one_fork_at_a_time, report_from_child};

fn gettid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

#[test]
fn the_forking_threads_hub_is_the_childs_and_its_parents_other_hubs_are_not() {
    let _one = one_fork_at_a_time();
    // A hub on another thread, with a parked greenlet.
    let (ready, wait) = std::sync::mpsc::channel::<i32>();
    let (done, finish) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let parked = spawn(|| sleep(Duration::from_secs(3600)));
        yield_now();
        ready.send(gettid()).unwrap();
        finish.recv().unwrap();
        parked.kill();
    });
    let other_tid = wait.recv().unwrap();
    // And one on this thread.
    let here = spawn(|| sleep(Duration::from_secs(3600)));
    yield_now();
    let in_parent = monitor::dump_all();
    assert!(in_parent.hubs.iter().any(|h| h.tid == other_tid));
    assert!(in_parent.hubs.iter().any(|h| h.tid == gettid()));

    let (code, _) = report_from_child(|| {
        let hubs = monitor::dump_all().hubs;
        let mut code = 0;
        if hubs.iter().any(|h| h.tid == other_tid) {
            code |= 1;
        }
        if !hubs
            .iter()
            .any(|h| h.tid == gettid() && h.unresponsive.is_none())
        {
            code |= 2;
        }
        if hubs.len() != 1 {
            code |= 4;
        }
        code
    });
    here.kill();
    done.send(()).unwrap();
    other.join().unwrap();
    assert_eq!(
        code, 0,
        "1: the parent's other hub was listed in the child; 2: the child's own hub (the \
         forking thread's, rebuilt) was not, or did not answer; 4: not exactly one hub"
    );
}

#[test]
fn a_fork_while_another_thread_starts_and_stops_the_monitor_leaves_the_child_one() {
    let _one = one_fork_at_a_time();
    yield_now(); // this thread's hub, for `Child::wait`
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) {
                monitor::start(Duration::from_millis(50 + u64::from(rounds % 2)));
                monitor::stop();
                rounds += 1;
            }
            rounds
        })
    };
    for round in 0..20 {
        // A child forked while `churn` held the monitor's lock would never get it.
        let (code, _) = report_from_child(|| {
            monitor::start(Duration::from_millis(20));
            let started = monitor::threshold() == Some(Duration::from_millis(20));
            monitor::stop();
            let stopped = monitor::threshold().is_none();
            u8::from(!started) | (u8::from(!stopped) << 1)
        });
        assert_eq!(
            code, 0,
            "round {round}: 1: the child's monitor did not start; 2: it did not stop"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = churn.join().unwrap();
    assert!(
        rounds > 0,
        "the other thread started and stopped the monitor"
    );
    monitor::stop();
}
