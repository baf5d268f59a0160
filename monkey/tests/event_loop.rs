//! `epoll_wait`/`epoll_pwait` under `patch_event_loops`: several greenlets each waiting
//! in their own `mio::Poll` at once, with the right events and timeouts; off under
//! `patch_all` alone (checked in a child process, since patching is process-wide).

mod common;
use common::ticker;

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::{sleep, spawn, yield_now};
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};

const CHILD_ENV: &str = "GREENWEAVE_EVENT_LOOP_CHILD";

fn patch() {
    if std::env::var_os(CHILD_ENV).is_none() {
        greenweave_monkey::patch_all();
        greenweave_monkey::patch_event_loops();
    }
}

/// A poll watching the read end of a fresh socket pair for `token`; the write end.
fn watched(token: usize) -> (Poll, UnixStream, UnixStream) {
    let poll = Poll::new().unwrap();
    let (mut rx, tx) = UnixStream::pair().unwrap();
    poll.registry()
        .register(&mut rx, Token(token), Interest::READABLE)
        .unwrap();
    (poll, rx, tx)
}

#[test]
fn ten_greenlets_each_wait_in_their_own_mio_poll_at_once() {
    patch();
    let (ticks, t) = ticker();
    let start = Instant::now();
    let mut writers = Vec::new();
    let waiters: Vec<_> = (0..10)
        .map(|i| {
            let (mut poll, rx, mut tx) = watched(100 + i);
            // Each peer writes at its own time, the last waiter's first.
            writers.push(spawn(move || {
                sleep(Duration::from_millis(20 * (10 - i as u64)));
                tx.write_all(b"x").unwrap();
                tx
            }));
            spawn(move || {
                let mut events = Events::with_capacity(8);
                poll.poll(&mut events, Some(Duration::from_secs(5)))
                    .unwrap();
                let got: Vec<_> = events
                    .iter()
                    .map(|e| (e.token().0, e.is_readable()))
                    .collect();
                drop(rx);
                (got, Instant::now())
            })
        })
        .collect();
    let mut woke = Vec::new();
    for (i, w) in waiters.into_iter().enumerate() {
        let (got, at) = w.join().unwrap();
        assert_eq!(got, [(100 + i, true)], "greenlet {i} got another's events");
        woke.push(at);
    }
    // Woken in the order their peers wrote: greenlet 9 first, 0 last.
    assert!(woke.windows(2).all(|w| w[0] >= w[1]), "wake order");
    let elapsed = start.elapsed();
    if !common::valgrind::skip_under_valgrind("the 1.5 s wall-time bound") {
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    }
    common::assert_ticked(&ticks, 50, "ten greenlets waited in their mio polls");
    writers.into_iter().for_each(|w| drop(w.join().unwrap()));
    t.kill();
}

#[test]
fn fifty_overlapping_poll_timeouts_are_honoured() {
    patch();
    let start = Instant::now();
    let waiters: Vec<_> = (0..50)
        .map(|i| {
            spawn(move || {
                let (mut poll, _rx, _tx) = watched(i);
                let mut events = Events::with_capacity(8);
                let began = Instant::now();
                poll.poll(&mut events, Some(Duration::from_millis(300)))
                    .unwrap();
                (events.is_empty(), began.elapsed())
            })
        })
        .collect();
    for w in waiters {
        let (empty, waited) = w.join().unwrap();
        assert!(empty);
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
    }
    let elapsed = start.elapsed();
    if !common::valgrind::skip_under_valgrind("the 1.5 s wall-time bound") {
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    }
}

#[test]
fn events_already_ready_come_at_once_and_zero_timeouts_pass_through() {
    patch();
    let (mut poll, _rx, mut tx) = watched(7);
    let mut events = Events::with_capacity(8);
    poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty());
    tx.write_all(b"x").unwrap();
    let start = Instant::now();
    poll.poll(&mut events, None).unwrap();
    assert_eq!(events.iter().map(|e| e.token().0).collect::<Vec<_>>(), [7]);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_killed_poller_gets_ecanceled() {
    patch();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let h = spawn(move || {
        let (mut poll, _rx, _tx) = watched(1);
        let mut events = Events::with_capacity(8);
        let err = poll.poll(&mut events, None).unwrap_err();
        s.set(err.raw_os_error());
        sleep(Duration::from_millis(1)); // delivered once: this sleeps
    });
    yield_now();
    h.kill();
    h.join().unwrap();
    assert_eq!(seen.get(), Some(libc::ECANCELED));
}

#[test]
fn epoll_pwait_with_a_signal_mask_passes_through() {
    patch();
    let (poll, _rx, _tx) = watched(1);
    let (ticks, t) = ticker();
    yield_now(); // the ticker is now asleep on the hub
    // SAFETY: an initialised empty set.
    let mask = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    };
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
    let epfd = std::os::fd::AsRawFd::as_raw_fd(&poll);
    // SAFETY: a valid epoll fd, event array and mask.
    let n = unsafe { libc::epoll_pwait(epfd, events.as_mut_ptr(), 4, 100, &mask) };
    assert_eq!(n, 0);
    assert_eq!(ticks.get(), 0, "it parked");
    t.kill();
}

#[test]
fn patch_all_alone_leaves_epoll_wait_blocking() {
    if std::env::var_os(CHILD_ENV).is_some() {
        greenweave_monkey::patch_all();
        assert!(!greenweave_monkey::is_patched(
            greenweave_monkey::Area::EventLoop
        ));
        let (mut poll, _rx, _tx) = watched(1);
        let (ticks, t) = ticker();
        yield_now();
        let mut events = Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        assert_eq!(ticks.get(), 0, "epoll_wait parked under patch_all alone");
        t.kill();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .env(CHILD_ENV, "1")
        .args([
            "--exact",
            "patch_all_alone_leaves_epoll_wait_blocking",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 passed"), "{text}");
}
