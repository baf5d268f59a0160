//! `fork` under `patch_all`: unmodified blocking code (std sockets, `thread::sleep`,
//! std channels, locks and condvars, `spawn_blocking`) in both processes after the
//! fork. Before each fork the parent has a greenlet parked in every kind of hook; the
//! child wakes them (sends on their channel, notifies their condvar), which must do
//! nothing there, and uses all of it itself with greenlets it spawns; the parent's
//! greenlets all complete. 100 rounds, forking from main and from a spawned greenlet.
//! A second scenario has both processes use one socket the hooks registered with the
//! parent's hub, and recorded the state of, before the fork.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use greenweave_runtime::spawn;
use greenweave_runtime::threadpool::spawn_blocking;

#[path = "../../runtime/tests/common/fork.rs"]
mod forking;
use forking::{
    PATIENCE, ROUNDS, child_verdict, exchange, expect_clean_exit, fork_child, one_fork_at_a_time,
    parent_greenlet_ran, register_then_fork, settle, spawn_echo,
};

type Flag = Arc<(Mutex<bool>, Condvar)>;

/// The child: wakes the parent's parked greenlets (nothing must happen), then uses
/// every kind of hook with greenlets of its own.
fn child_side(go: UnixStream, parents_channel: mpsc::Sender<u8>, parents_flag: Flag) -> i32 {
    let _ = parents_channel.send(9);
    *parents_flag.0.lock().unwrap() = true;
    parents_flag.1.notify_all();
    let outcome = std::panic::catch_unwind(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let reader = spawn(move || {
            let mut buf = [0; 4];
            b.read_exact(&mut buf).unwrap();
            buf
        });
        let writer = spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            a.write_all(b"kid!").unwrap();
        });
        let (tx, rx) = mpsc::channel();
        let receiver = spawn(move || rx.recv().unwrap());
        let flag: Flag = Arc::default();
        let f = flag.clone();
        let waiter = spawn(move || *f.1.wait_while(f.0.lock().unwrap(), |set| !*set).unwrap());
        let notifier = spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            *flag.0.lock().unwrap() = true;
            flag.1.notify_all();
        });
        // Threads work in the child too; this one's send wakes the receiver through
        // the thread's parking word.
        let sender = std::thread::spawn(move || tx.send(5).unwrap());
        let job = spawn(|| spawn_blocking(|| 6 * 7));
        go.set_read_timeout(Some(PATIENCE)).unwrap();
        (&go).write_all(b"r").unwrap();
        (&go).read_exact(&mut [0]).unwrap();
        assert_eq!(&reader.join().unwrap(), b"kid!");
        writer.join().unwrap();
        notifier.join().unwrap();
        sender.join().unwrap();
        assert_eq!(receiver.join().unwrap(), 5);
        assert!(waiter.join().unwrap());
        assert_eq!(job.join().unwrap(), 42);
        // Longer than the parent's sleeper sleeps.
        std::thread::sleep(Duration::from_millis(10));
    });
    child_verdict(outcome)
}

fn stolen(what: &str) -> ! {
    panic!("the parent's {what} never completed")
}

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
        std::thread::sleep(Duration::from_millis(5));
        parent_greenlet_ran();
    });
    let (tx, rx) = mpsc::channel::<u8>();
    let receiver = spawn(move || {
        let got = rx.recv().unwrap();
        parent_greenlet_ran();
        got
    });
    let flag: Flag = Arc::default();
    let f = flag.clone();
    let waiter = spawn(move || {
        drop(f.1.wait_while(f.0.lock().unwrap(), |set| !*set).unwrap());
        parent_greenlet_ran();
    });
    let (open, gate) = mpsc::channel::<()>();
    let pooled = spawn(move || {
        let opened = spawn_blocking(move || gate.recv().is_ok());
        parent_greenlet_ran();
        opened
    });
    settle(5);
    let (go_child, mut go) = UnixStream::pair().unwrap();
    let (t, fl) = (tx.clone(), flag.clone());
    let child = if fork_from_spawned {
        spawn(move || fork_child(move || child_side(go_child, t, fl)))
            .join()
            .unwrap()
    } else {
        fork_child(move || child_side(go_child, t, fl))
    };
    go.set_read_timeout(Some(PATIENCE)).unwrap();
    go.read_exact(&mut [0]).expect("the child says it is ready");
    ours.write_all(b"ping").unwrap();
    go.write_all(b"g").unwrap();
    // From another thread: a greenlet's send to a greenlet of its own thread parked
    // in `recv` is not what this test is about.
    std::thread::spawn(move || tx.send(1).unwrap());
    *flag.0.lock().unwrap() = true;
    flag.1.notify_all();
    open.send(()).unwrap();
    assert_eq!(
        &reader
            .join_timeout(PATIENCE)
            .unwrap_or_else(|_| stolen("read")),
        b"ping"
    );
    sleeper
        .join_timeout(PATIENCE)
        .unwrap_or_else(|_| stolen("sleep"));
    assert_eq!(
        receiver
            .join_timeout(PATIENCE)
            .unwrap_or_else(|_| stolen("recv")),
        1
    );
    waiter
        .join_timeout(PATIENCE)
        .unwrap_or_else(|_| stolen("condvar wait"));
    assert!(
        pooled
            .join_timeout(PATIENCE)
            .unwrap_or_else(|_| stolen("pool job"))
    );
    expect_clean_exit(child);
}

#[test]
fn forking_from_main_under_patch_all() {
    greenweave_monkey::patch_all();
    let _one = one_fork_at_a_time();
    for _ in 0..ROUNDS {
        round(false);
    }
}

#[test]
fn forking_from_a_spawned_greenlet_under_patch_all() {
    greenweave_monkey::patch_all();
    let _one = one_fork_at_a_time();
    for _ in 0..ROUNDS {
        round(true);
    }
}

/// Signals the other side of `go` with `byte`, then waits for its next byte.
fn handshake(mut go: &UnixStream, byte: u8) -> std::io::Result<()> {
    go.write_all(&[byte])?;
    go.read_exact(&mut [0])
}

/// The child of a shared-socket round: once the parent says go, the byte left pending
/// on the socket, an exchange through the parent's echo greenlet, then a read after
/// the parent made the shared description non-blocking, which must say `WouldBlock`
/// at once (the kernel's answer; the record inherited from the parent says blocking,
/// with a read timeout of [`PATIENCE`]); then a sleep and the socket's close.
fn shared_socket_child(ours: TcpStream, go: UnixStream) -> i32 {
    let outcome = (|| -> std::io::Result<()> {
        go.set_read_timeout(Some(PATIENCE))?;
        handshake(&go, b'r')?;
        let mut byte = [0; 1];
        (&ours).read_exact(&mut byte)?;
        if &byte != b"x" {
            return Err(std::io::Error::other("the pending byte was lost"));
        }
        exchange(&ours, b"child")?;
        handshake(&go, b'e')?;
        let start = Instant::now();
        match (&ours).read(&mut byte) {
            Err(e) if e.kind() == ErrorKind::WouldBlock && start.elapsed() < PATIENCE / 2 => {}
            other => {
                return Err(std::io::Error::other(format!(
                    "a read on the description the parent made non-blocking: {other:?} after \
                     {:?}",
                    start.elapsed()
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
        drop(ours);
        Ok(())
    })();
    child_verdict(outcome)
}

/// One shared-socket round under `patch_all`: the forking greenlet (main, or a spawned
/// one) gives a std TCP stream a read timeout and registers it with its hub by an
/// exchange with the parent's echo greenlet, then forks. The parent uses the stream
/// while the child is parked, leaves an echoed byte pending on it and lets the child
/// go; the child reads the byte and makes an exchange, then the parent makes the
/// description non-blocking (the child must see it); once the child has exited, the
/// parent makes it blocking again and makes another exchange.
fn shared_socket_round(fork_from_spawned: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let echo = spawn_echo(listener.accept().unwrap().0);
    let (go_child, go) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(PATIENCE)).unwrap();
    let (child, ours) = register_then_fork(ours, fork_from_spawned, move |ours| {
        shared_socket_child(ours, go_child)
    });
    go.set_read_timeout(Some(PATIENCE)).unwrap();
    (&go)
        .read_exact(&mut [0])
        .expect("the child says it is ready");
    exchange(&ours, b"parent").expect("the parent's exchange while the child is parked");
    (&ours).write_all(b"x").unwrap();
    ours.peek(&mut [0])
        .expect("the echoed byte the child is to read");
    handshake(&go, b'g').expect("the child's exchange");
    ours.set_nonblocking(true).unwrap();
    (&go).write_all(b"n").unwrap();
    expect_clean_exit(child);
    ours.set_nonblocking(false).unwrap();
    exchange(&ours, b"after the child").expect("the parent's exchange after the child's");
    drop(ours);
    echo.join_timeout(PATIENCE)
        .unwrap_or_else(|_| stolen("echo greenlet's end"));
}

#[test]
fn a_socket_main_registered_before_the_fork_serves_the_child_then_the_parent() {
    greenweave_monkey::patch_all();
    let _one = one_fork_at_a_time();
    for _ in 0..ROUNDS {
        shared_socket_round(false);
    }
}

#[test]
fn a_socket_a_spawned_greenlet_registered_before_the_fork_serves_the_child_then_the_parent() {
    greenweave_monkey::patch_all();
    let _one = one_fork_at_a_time();
    for _ in 0..ROUNDS {
        shared_socket_round(true);
    }
}
