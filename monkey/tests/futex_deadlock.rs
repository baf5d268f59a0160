//! A cycle of greenlets waiting on each other's std locks, in a process with no other
//! thread, gets the hub's deadlock report instead of a hang.
//!
//! The report needs a process with one thread (with other threads, any of them might
//! still release a lock, so the hub waits), and the test harness runs tests on threads
//! of its own: so this test has no harness. Its `main` runs each scenario in a child
//! process (itself, re-run with `GREENWEAVE_FUTEX_CYCLE` set) and checks how it died.

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use greenweave_runtime::{Builder, sleep};

const SCENARIO: &str = "GREENWEAVE_FUTEX_CYCLE";

fn main() {
    match std::env::var(SCENARIO).as_deref() {
        Ok("main-joins") => main_joins_two_greenlets_in_a_lock_cycle(),
        Ok("main-in-the-cycle") => main_is_itself_in_the_lock_cycle(),
        Ok(other) => panic!("unknown scenario {other}"),
        Err(_) => {
            a_cycle_reports_to_main_blocked_in_join();
            a_cycle_through_main_aborts_with_the_report();
            println!("futex_deadlock: 2 scenarios passed");
        }
    }
}

fn run(scenario: &str) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(exe)
        .env(SCENARIO, scenario)
        .output()
        .expect("the scenario runs");
    assert!(
        !output.status.success(),
        "{scenario}: the cycle went unnoticed"
    );
    output
}

/// Two greenlets each hold one std `Mutex` and want the other's; main waits in `join`.
fn a_cycle_reports_to_main_blocked_in_join() {
    let output = run("main-joins");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A Rust-level wait (main's join) gets the report as a panic.
    assert_eq!(output.status.code(), Some(101), "{stderr}");
    for expected in ["deadlock", "'left'", "'right'", "futex word"] {
        assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
    }
}

/// Main holds one lock and waits for the other, held by a greenlet that waits for
/// main's: the report cannot unwind out of the futex hook, so the process aborts with it.
fn a_cycle_through_main_aborts_with_the_report() {
    let output = run("main-in-the-cycle");
    let stderr = String::from_utf8_lossy(&output.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{stderr}");
    for expected in ["deadlock", "'other'", "futex word", "aborting"] {
        assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
    }
}

fn locks() -> (Arc<Mutex<()>>, Arc<Mutex<()>>) {
    (Arc::new(Mutex::new(())), Arc::new(Mutex::new(())))
}

fn main_joins_two_greenlets_in_a_lock_cycle() {
    greenweave_monkey::patch_all();
    let (a, b) = locks();
    let (a2, b2) = (a.clone(), b.clone());
    let left = Builder::new().name("left").spawn(move || {
        let _a = a2.lock().unwrap();
        sleep(Duration::from_millis(10));
        let _b = b2.lock().unwrap();
    });
    let right = Builder::new().name("right").spawn(move || {
        let _b = b.lock().unwrap();
        sleep(Duration::from_millis(10));
        let _a = a.lock().unwrap();
    });
    let _ = left.join();
    let _ = right.join();
    unreachable!("the cycle ended");
}

fn main_is_itself_in_the_lock_cycle() {
    greenweave_monkey::patch_all();
    let (a, b) = locks();
    let (a2, b2) = (a.clone(), b.clone());
    let _other = Builder::new().name("other").spawn(move || {
        let _b = b2.lock().unwrap();
        sleep(Duration::from_millis(10));
        let _a = a2.lock().unwrap();
    });
    let _a = a.lock().unwrap();
    sleep(Duration::from_millis(5));
    let _b = b.lock().unwrap();
    unreachable!("the cycle ended");
}
