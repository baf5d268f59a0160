//! `fork` in a program with a hub (no monkey patching: a plain `libc::fork`). The child
//! goes on with the forking greenlet only, on a fresh hub; the parent's hub and its
//! greenlets are untouched. Each scenario runs 100 times: before the fork the parent
//! has greenlets parked on a socket read and on a timer; after it both processes use
//! sockets and timers of their own, and no readiness event may cross between them.

use std::io::{Read, Write};
use std::time::Duration;

use greenweave_runtime::net::UnixStream;
use greenweave_runtime::{sleep, spawn};

#[path = "common/fork.rs"]
mod forking;
use forking::{
    PATIENCE, ROUNDS, child_verdict, expect_clean_exit, fork_child, one_fork_at_a_time,
    parent_greenlet_ran, settle,
};

/// What the child does: a socket pair and a timer of its own, with greenlets spawned
/// after the fork, while it waits (parked on its hub) for the parent's "go". It tells
/// the parent it is about to park, and the parent wakes its own reader then, so a hub
/// sharing the parent's epoll instance would be waiting in it when the parent's
/// readiness event arrives.
fn child_side(go: UnixStream) -> i32 {
    let outcome = (|| -> std::io::Result<()> {
        let (mut a, mut b) = UnixStream::pair()?;
        let reader = spawn(move || {
            let mut buf = [0; 4];
            b.read_exact(&mut buf).map(|()| buf)
        });
        let writer = spawn(move || {
            sleep(Duration::from_millis(2));
            a.write_all(b"kid!")
        });
        go.set_read_timeout(Some(PATIENCE))?;
        (&go).write_all(b"r")?;
        let mut byte = [0; 1];
        (&go).read_exact(&mut byte)?;
        writer.join().expect("the child's writer")?;
        let got = reader.join().expect("the child's reader")?;
        assert_eq!(&got, b"kid!");
        // Longer than the parent's sleeper sleeps: its timer would fire here if the
        // child had kept it.
        sleep(Duration::from_millis(10));
        Ok(())
    })();
    child_verdict(outcome)
}

/// One round: parent greenlets parked on a read and a timer, a fork (from main, or
/// from a spawned greenlet), then both sides at work.
fn round(fork_from_spawned: bool) {
    forking::new_round();
    let (mut theirs, mut ours) = UnixStream::pair().unwrap();
    let reader = spawn(move || {
        let mut buf = [0; 4];
        theirs.read_exact(&mut buf).unwrap();
        parent_greenlet_ran();
        buf
    });
    let sleeper = spawn(|| {
        sleep(Duration::from_millis(5));
        parent_greenlet_ran();
    });
    let (go_child, mut go) = UnixStream::pair().unwrap();
    settle(2);
    let child = if fork_from_spawned {
        spawn(move || fork_child(move || child_side(go_child)))
            .join()
            .unwrap()
    } else {
        fork_child(move || child_side(go_child))
    };
    go.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut ready = [0; 1];
    go.read_exact(&mut ready)
        .expect("the child says it is ready");
    ours.write_all(b"ping").unwrap();
    go.write_all(b"g").unwrap();
    let got = reader
        .join_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("the parent's read never completed: its event was stolen"));
    assert_eq!(&got, b"ping");
    sleeper
        .join_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("the parent's timer never fired"));
    expect_clean_exit(child);
}

#[test]
fn forking_from_main_leaves_both_hubs_their_own_events() {
    let _one = one_fork_at_a_time();
    for _ in 0..ROUNDS {
        round(false);
    }
}

#[test]
fn forking_from_a_spawned_greenlet_leaves_both_hubs_their_own_events() {
    let _one = one_fork_at_a_time();
    for _ in 0..ROUNDS {
        round(true);
    }
}
