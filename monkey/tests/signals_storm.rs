//! Signals against everything else a parked greenlet can meet: a storm of handlers
//! while greenlets talk through std (which retries on `EINTR`), and a kill that comes
//! with a signal.

mod common;
use common::signals::{PATIENCE, count_address, errno, install, rt, runs, until_parked};

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use greenweave_runtime::spawn;

#[test]
fn a_storm_of_handlers_loses_and_reorders_nothing_in_std_code() {
    greenweave_monkey::patch_all();
    let sig = rt(25);
    install(sig, count_address(), 0); // no SA_RESTART: every parked call is hit
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let storm = std::thread::spawn(move || {
        let mut sent = 0u32;
        while !s.load(Ordering::SeqCst) {
            // SAFETY: the hub thread lives until it joins this one.
            unsafe { libc::pthread_kill(me, sig) };
            sent += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        sent
    });

    const ROUNDS: u32 = 2_000;
    let (a, b) = UnixStream::pair().unwrap();
    let echo = spawn(move || {
        let mut b = b;
        let mut buf = [0u8; 4];
        for _ in 0..ROUNDS {
            b.read_exact(&mut buf).unwrap();
            b.write_all(&buf).unwrap();
        }
    });
    // std::thread::sleep sleeps the rest after EINTR: whole sleeps, however many hits.
    let sleeper = spawn(|| {
        let start = Instant::now();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(5));
        }
        start.elapsed()
    });
    let mut a = a;
    let mut buf = [0u8; 4];
    for round in 0..ROUNDS {
        a.write_all(&round.to_le_bytes()).unwrap();
        a.read_exact(&mut buf).unwrap();
        assert_eq!(u32::from_le_bytes(buf), round);
    }
    echo.join().unwrap();
    assert!(sleeper.join().unwrap() >= Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let sent = storm.join().unwrap();
    assert!(
        sent > 0 && runs(sig) > 0,
        "{sent} sent, {} handled",
        runs(sig)
    );
}

#[test]
fn a_kill_that_comes_with_a_signal_is_delivered_as_the_kill() {
    greenweave_monkey::patch_all();
    let sig = rt(26);
    install(sig, count_address(), 0);
    let (a, _b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let reader = spawn(move || {
        // SAFETY: a valid buffer.
        let rc = unsafe { libc::read(fd, [0u8; 4].as_mut_ptr().cast(), 4) };
        (rc, errno())
    });
    until_parked(&[reader.id()]);
    reader.kill_nowait();
    common::signals::from_another_thread(sig);
    match reader.join_timeout(PATIENCE) {
        Ok(result) => assert_eq!(result, (-1, libc::ECANCELED)),
        Err(_) => panic!("the killed reader never returned"),
    }
    assert_eq!(runs(sig), 1);
}
