//! Stack overflow reports. Each test re-runs this test binary on just itself with
//! `GREENWEAVE_OVERFLOW_CHILD` set; in that child process the test provokes the fault,
//! and the parent checks how the child died and what it printed.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use greenweave_greenlet::{Builder, DEFAULT_STACK_SIZE, Greenlet};

const CHILD_ENV: &str = "GREENWEAVE_OVERFLOW_CHILD";

/// Whether this process is a child started by one of the tests below.
fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs exactly the test `name` of this binary in a child process.
fn run_child(name: &str) -> Output {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    Command::new(exe)
        .env(CHILD_ENV, "1")
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .output()
        .expect("the test binary runs again")
}

/// The id the child printed on stdout before faulting, so the report can be checked
/// for it.
fn reported_id(out: &Output) -> u64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        // libtest may print "test <name> ... " on the same line first.
        .find_map(|line| line.split_once("child greenlet id ").map(|(_, id)| id))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child names its greenlet; stdout:\n{stdout}"))
}

/// Recurses without end, with a 1 KiB frame per level that the optimizer must keep.
fn recurse_forever(depth: u64) -> u64 {
    let mut frame = [0_u8; 1024];
    frame[0] = depth as u8;
    black_box(&mut frame);
    // Never true; hidden from the compiler so the recursion is not provably endless.
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse_forever(depth + 1);
    black_box(&frame);
    below.wrapping_add(u64::from(frame[0]))
}

/// In the child: runs `g`, which must kill the process.
fn run_in_child(g: Greenlet) -> ! {
    println!("child greenlet id {}", g.id());
    g.switch(());
    panic!("the child should have died inside {g}");
}

fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn named_greenlet_overflow_is_reported_and_aborts() {
    if in_child() {
        run_in_child(
            Builder::new()
                .name("deep-recursion")
                .stack_size(64 * 1024)
                .build(|_| recurse_forever(0)),
        );
    }
    let out = run_child("named_greenlet_overflow_is_reported_and_aborts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(out.status.signal(), Some(6), "SIGABRT; {}", describe(&out));
    assert!(
        stderr.contains("greenlet 'deep-recursion'"),
        "{}",
        describe(&out)
    );
    assert!(
        stderr.contains("has overflowed its stack of 65536 bytes"),
        "{}",
        describe(&out)
    );
    let id = reported_id(&out);
    assert!(
        stderr.contains(&format!(
            "greenlet 'deep-recursion' (id {id}) has overflowed its stack of 65536 bytes"
        )),
        "{}",
        describe(&out)
    );
    assert!(
        stderr.contains("fatal runtime error: stack overflow"),
        "{}",
        describe(&out)
    );
}

#[test]
fn unnamed_greenlet_overflow_is_reported_by_id_and_default_size() {
    if in_child() {
        run_in_child(Greenlet::new(|_| recurse_forever(0)));
    }
    let out = run_child("unnamed_greenlet_overflow_is_reported_by_id_and_default_size");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "SIGABRT; {}", describe(&out));
    let id = reported_id(&out);
    assert!(
        stderr.contains(&format!(
            "greenlet (id {id}) has overflowed its stack of {DEFAULT_STACK_SIZE} bytes"
        )),
        "{}",
        describe(&out)
    );
}

#[test]
fn other_faults_in_a_greenlet_are_not_reported_as_overflows() {
    if in_child() {
        run_in_child(Builder::new().name("null-writer").build(|_| {
            // SAFETY: not sound, on purpose: this test needs a real SIGSEGV that is not
            // a stack overflow, and writing to the null page faults. The process dies
            // of it before anything could observe the write.
            unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u8>(), 1) };
        }));
    }
    let out = run_child("other_faults_in_a_greenlet_are_not_reported_as_overflows");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(out.status.signal(), Some(11), "SIGSEGV; {}", describe(&out));
    // The child did get as far as running its greenlet.
    reported_id(&out);
    assert!(
        !stderr.contains("has overflowed its stack"),
        "{}",
        describe(&out)
    );
    assert!(
        !stderr.contains("greenlet 'null-writer'"),
        "{}",
        describe(&out)
    );
}

#[test]
fn greenlet_overflow_on_a_spawned_thread_is_reported() {
    if in_child() {
        let worker = std::thread::Builder::new()
            .name("worker".into())
            .spawn(|| {
                run_in_child(
                    Builder::new()
                        .name("deep-on-worker")
                        .stack_size(32 * 1024)
                        .build(|_| recurse_forever(0)),
                );
            })
            .expect("a thread can be spawned");
        let _ = worker.join();
        panic!("the child should have died on the worker thread");
    }
    let out = run_child("greenlet_overflow_on_a_spawned_thread_is_reported");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "SIGABRT; {}", describe(&out));
    let id = reported_id(&out);
    assert!(
        stderr.contains(&format!(
            "greenlet 'deep-on-worker' (id {id}) has overflowed its stack of 32768 bytes"
        )),
        "{}",
        describe(&out)
    );
}

#[test]
fn thread_stack_overflow_is_still_reported_by_std() {
    if in_child() {
        let worker = std::thread::Builder::new()
            .name("plain-thread".into())
            .stack_size(256 * 1024)
            .spawn(|| {
                // Using a greenlet installs the overflow handler, which must pass
                // faults on the thread's own stack on to std's handler.
                let g = Greenlet::new(|_| ());
                g.switch(());
                println!("child greenlet id {}", g.id());
                recurse_forever(0)
            })
            .expect("a thread can be spawned");
        let _ = worker.join();
        panic!("the child should have died on the worker thread");
    }
    let out = run_child("thread_stack_overflow_is_still_reported_by_std");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "SIGABRT; {}", describe(&out));
    reported_id(&out);
    // std's report: "thread 'plain-thread' (<tid>) has overflowed its stack".
    let report = stderr
        .lines()
        .find(|line| line.starts_with("thread 'plain-thread'"))
        .unwrap_or_else(|| panic!("std names the thread; {}", describe(&out)));
    assert!(
        report.ends_with("has overflowed its stack"),
        "{}",
        describe(&out)
    );
    assert!(!stderr.contains("greenlet"), "{}", describe(&out));
}
