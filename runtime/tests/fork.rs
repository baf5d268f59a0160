//! `fork` in a program with a hub (no monkey patching: a plain `libc::fork`). The child
//! goes on with the forking greenlet only, on a fresh hub; the parent's hub and its
//! greenlets are untouched. Each scenario runs 100 times: before the fork the parent
//! has greenlets parked on a socket read and on a timer; after it both processes use
//! sockets and timers of their own, and no readiness event may cross between them.
//! A third scenario has both sides use the *same* socket, registered with the parent's
//! hub before the fork, one after the other.

use std::io::{Read, Write};
use std::time::Duration;

use greenweave_runtime::net::{TcpListener, TcpStream, UnixStream};
use greenweave_runtime::{sleep, spawn};

#[path = "common/fork.rs"]
mod forking;
use forking::{
    PATIENCE, ROUNDS, child_verdict, exchange, expect_clean_exit, fork_child, one_fork_at_a_time,
    parent_greenlet_ran, register_then_fork, settle, spawn_echo,
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

/// The child of a shared-socket round: parked until "go" (so a hub sharing the
/// parent's epoll instance would be waiting in it while the parent uses the socket),
/// then the socket the parent's hub had registered: the byte left pending for it, an
/// exchange, a timer, and the socket's drop (which, on a shared epoll instance, would
/// deregister the parent's registration of the same file).
fn shared_socket_child(ours: TcpStream, go: UnixStream) -> i32 {
    let outcome = (|| -> std::io::Result<()> {
        go.set_read_timeout(Some(PATIENCE))?;
        (&go).write_all(b"r")?;
        let mut byte = [0; 1];
        (&go).read_exact(&mut byte)?;
        ours.set_read_timeout(Some(PATIENCE))?;
        (&ours).read_exact(&mut byte)?;
        if &byte != b"x" {
            return Err(std::io::Error::other("the pending byte was lost"));
        }
        exchange(&ours, b"child")?;
        sleep(Duration::from_millis(1));
        drop(ours);
        Ok(())
    })();
    child_verdict(outcome)
}

/// One shared-socket round: the forking greenlet (main, or a spawned one) registers a
/// TCP stream with its hub by an exchange with the parent's echo greenlet, then forks.
/// The parent uses the stream while the child is parked, leaves an echoed byte pending
/// on it and lets the child go; the child finds the byte and makes an exchange through
/// the parent's echo greenlet (its own copy of which is left behind); once the child
/// has exited, the parent makes another exchange. Every read has a deadline, so a lost
/// registration or readiness fails the round.
fn shared_socket_round(fork_from_spawned: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let echo = spawn_echo(listener.accept().unwrap().0);
    let (go_child, mut go) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(PATIENCE)).unwrap();
    let (child, ours) = register_then_fork(ours, fork_from_spawned, move |ours| {
        shared_socket_child(ours, go_child)
    });
    go.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut ready = [0; 1];
    go.read_exact(&mut ready)
        .expect("the child says it is ready");
    exchange(&ours, b"parent").expect("the parent's exchange while the child is parked");
    (&ours).write_all(b"x").unwrap();
    let mut pending = [0; 1];
    ours.peek(&mut pending)
        .expect("the echoed byte the child is to read");
    go.write_all(b"g").unwrap();
    expect_clean_exit(child);
    exchange(&ours, b"after the child").expect("the parent's exchange after the child's");
    drop(ours);
    echo.join_timeout(PATIENCE)
        .expect("the echo greenlet ends at end of file");
}

#[test]
fn a_socket_main_registered_before_the_fork_serves_the_child_then_the_parent() {
    let _one = one_fork_at_a_time();
    for _ in 0..ROUNDS {
        shared_socket_round(false);
    }
}

#[test]
fn a_socket_a_spawned_greenlet_registered_before_the_fork_serves_the_child_then_the_parent() {
    let _one = one_fork_at_a_time();
    for _ in 0..ROUNDS {
        shared_socket_round(true);
    }
}
