//! Sleeping hooks: std::thread::sleep in greenlets becomes cooperative after patch_all.

mod common;

use std::time::{Duration, Instant};

use greenweave_runtime::{joinall, spawn, yield_now};

#[test]
fn a_hundred_greenlets_in_std_thread_sleep_take_the_longest_sleep_not_the_sum() {
    greenweave_monkey::patch_all();
    let start = Instant::now();
    let sleepers: Vec<_> = (0..100)
        .map(|_| spawn(|| std::thread::sleep(Duration::from_millis(200))))
        .collect();
    joinall(sleepers).into_iter().for_each(|r| r.unwrap());
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    if !common::valgrind::skip_under_valgrind("the 1 s bound on 100 overlapping 200 ms sleeps") {
        assert!(
            elapsed < Duration::from_secs(1),
            "100 x 200 ms took {elapsed:?}: the sleeps did not overlap"
        );
    }
}

#[test]
fn a_plain_os_thread_still_sleeps_normally() {
    greenweave_monkey::patch_all();
    let t = std::thread::spawn(|| {
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        (start.elapsed(), greenweave_runtime::coop::can_park())
    });
    let (elapsed, had_hub) = t.join().unwrap();
    assert!(elapsed >= Duration::from_millis(50));
    assert!(!had_hub, "sleeping did not give the plain thread a hub");
}

#[test]
fn every_sleep_function_parks_the_greenlet() {
    greenweave_monkey::patch_all();
    let start = Instant::now();
    let hs = vec![
        // SAFETY: valid arguments to libc sleep functions.
        spawn(|| unsafe {
            libc::usleep(100_000);
        }),
        // SAFETY: valid pointers and values for the libc sleep functions.
        spawn(|| unsafe {
            let req = libc::timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            assert_eq!(libc::nanosleep(&req, std::ptr::null_mut()), 0);
        }),
        // SAFETY: valid pointers and values for the libc sleep functions.
        spawn(|| unsafe {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
            now.tv_nsec += 100_000_000;
            if now.tv_nsec >= 1_000_000_000 {
                now.tv_sec += 1;
                now.tv_nsec -= 1_000_000_000;
            }
            let rc = libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &now,
                std::ptr::null_mut(),
            );
            assert_eq!(rc, 0);
        }),
        // SAFETY: valid pointers and values for the libc sleep functions.
        spawn(|| unsafe {
            assert_eq!(libc::sleep(0), 0);
        }),
    ];
    joinall(hs).into_iter().for_each(|r| r.unwrap());
    let elapsed = start.elapsed();
    if !common::valgrind::skip_under_valgrind("the 280 ms bound on overlapping 100 ms sleeps") {
        assert!(
            elapsed >= Duration::from_millis(100) && elapsed < Duration::from_millis(280),
            "{elapsed:?}"
        );
    }
}

#[test]
fn bad_arguments_get_the_kernels_errors() {
    greenweave_monkey::patch_all();
    spawn(|| {
        let bad = libc::timespec {
            tv_sec: 0,
            tv_nsec: 2_000_000_000,
        };
        // SAFETY: valid pointers; the value is deliberately out of range.
        let rc =
            unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &bad, std::ptr::null_mut()) };
        assert_eq!(rc, libc::EINVAL);
        // SAFETY: as above.
        let rc = unsafe { libc::nanosleep(&bad, std::ptr::null_mut()) };
        assert_eq!(rc, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINVAL)
        );
    })
    .join()
    .unwrap();
}

#[test]
fn killing_a_greenlet_in_std_thread_sleep_ends_the_sleep_once() {
    greenweave_monkey::patch_all();
    let start = Instant::now();
    let h = spawn(|| {
        std::thread::sleep(Duration::from_secs(30)); // ended early by the kill
        let after = Instant::now();
        std::thread::sleep(Duration::from_millis(10)); // a normal sleep
        after.elapsed()
    });
    yield_now();
    h.kill();
    let slept = h.join().expect("the kill was delivered to the sleep");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(slept >= Duration::from_millis(10), "slept only {slept:?}");
}

#[test]
fn the_original_functions_bypass_the_hooks() {
    greenweave_monkey::patch_all();
    let start = Instant::now();
    let ticker = spawn(|| greenweave_runtime::sleep(Duration::from_millis(10)));
    // The real usleep blocks the whole thread: the ticker cannot run meanwhile.
    // SAFETY: plain integer argument.
    unsafe { greenweave_monkey::original::usleep(50_000) };
    assert!(
        !ticker.is_finished(),
        "the real usleep did not switch greenlets"
    );
    ticker.join().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(50));
}
