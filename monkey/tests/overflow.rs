//! Greenweave's own fatal reports write with the raw system call, never through the
//! `write` hook: a greenlet stack overflow under `patch_all` is still reported on
//! stderr. The test re-runs this binary on just itself with `GREENWEAVE_OVERFLOW_CHILD`
//! set; the child overflows, the parent checks how it died and what it printed.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const CHILD_ENV: &str = "GREENWEAVE_OVERFLOW_CHILD";

/// Recurses without end, with a 1 KiB frame per level that the optimizer must keep.
fn recurse_forever(depth: u64) -> u64 {
    let mut frame = [0_u8; 1024];
    frame[0] = depth as u8;
    black_box(&mut frame);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse_forever(depth + 1);
    black_box(&frame);
    below.wrapping_add(u64::from(frame[0]))
}

#[test]
fn a_greenlet_overflow_under_patch_all_is_reported_on_stderr() {
    if std::env::var_os(CHILD_ENV).is_some() {
        greenweave_monkey::patch_all();
        // stderr is a pipe: a cooperative write there would go through the hook.
        eprintln!("child patched");
        let g = greenweave_runtime::Builder::new()
            .name("too-deep")
            .stack_size(64 * 1024)
            .spawn(|| recurse_forever(0));
        let _ = g.join();
        panic!("the child should have died of the overflow");
    }
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let out = Command::new(exe)
        .env(CHILD_ENV, "1")
        .args([
            "--exact",
            "a_greenlet_overflow_under_patch_all_is_reported_on_stderr",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("the test binary runs again");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let describe = format!("status {:?}\nstderr:\n{stderr}", out.status);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{describe}");
    assert!(stderr.contains("child patched"), "{describe}");
    assert!(
        stderr.contains("greenlet 'too-deep' (id ")
            && stderr.contains("has overflowed its stack of 65536 bytes"),
        "{describe}"
    );
    assert!(
        stderr.contains("fatal runtime error: stack overflow"),
        "{describe}"
    );
}
