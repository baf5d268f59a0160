//! `fork` under `patch_all`: unmodified blocking code (std sockets, `thread::sleep`,
//! std channels, locks and condvars, `spawn_blocking`) in both processes after the
//! fork. Before each fork the parent has a greenlet parked in every kind of hook; the
//! child wakes them (sends on their channel, notifies their condvar), which must do
//! nothing there, and uses all of it itself with greenlets it spawns; the parent's
//! greenlets all complete. 100 rounds, forking from main and from a spawned greenlet.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use greenweave_runtime::spawn;
use greenweave_runtime::threadpool::spawn_blocking;

#[path = "../../runtime/tests/common/fork.rs"]
mod forking;
use forking::{
    PATIENCE, ROUNDS, child_verdict, expect_clean_exit, fork_child, one_fork_at_a_time,
    parent_greenlet_ran, settle,
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
