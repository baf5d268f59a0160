//! Unmodified `reqwest::blocking` in greenlets after `patch_all`, against a server on
//! plain OS threads (`common::http_server`).
//!
//! reqwest's blocking client runs a tokio runtime on a thread of its own and waits for
//! it with `thread::park_timeout` (reqwest's `blocking::wait`), woken by `unpark` from
//! that thread. So every greenlet of a thread waits on that thread's one parking word
//! at once: the futex hook's virtualised parker (monkey/src/futex/parker.rs). A
//! client per call (`reqwest::blocking::get`) also starts a runtime thread and joins it
//! when dropped: the `pthread_join` hook.
//!
//! Those waits are shielded: a kill or `Timeout` cannot cut a request short (a futex
//! wait never unwinds out of libc); it lands at the greenlet's next interruptible
//! blocking call after the request. reqwest's own timeout does cut it short, and
//! cooperatively: it is the deadline of the `park_timeout`.
//!
//! Before the park word kept its rule (a running greenlet never sees PARKED), an
//! `unpark` was sometimes lost here (the request then waited out reqwest's timeout) and
//! a greenlet entering `thread::park()` while another was parked spun in std outside
//! the hook; tests/futex_parker_gaps.rs keeps both cases without reqwest.
//!
//! Under Valgrind the shared-client test sometimes took 25-50 s instead of 5 s, and
//! request 0 (the first sent, so the first to reach its deadline) waited out reqwest's
//! timeout. No wake-up was lost: every request completed, late. The test thread spent
//! nearly all its time (17 s of CPU against 2 s for reqwest's runtime thread) on
//! parked greenlets re-checking after their 10 ms slices (46,000 re-checks, against
//! under 2,000 in a normal run), and Valgrind runs one thread at a time. The slices now
//! grow with what a re-check costs; tests/futex_parker_rechecks.rs keeps the case.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::http_server::{ThreadedHttpServer, body};
use common::valgrind::skip_under_valgrind;
use common::watch::{StallMeter, Watchdog};
use greenweave_runtime::{JoinError, joinall, sleep, spawn, with_timeout};

const LATENCY: Duration = Duration::from_millis(300);
/// The longest the hub may go without running the stall meter: well under the server's
/// latency (a call that blocks the hub stalls it for a whole `LATENCY`), generous for a
/// loaded machine (a 50 ms bound failed at load 19 on 2 cores).
const MAX_STALL: Duration = Duration::from_millis(200);

fn client() -> reqwest::blocking::Client {
    // A safety net: a regression fails instead of hanging (the watchdogs allow 60 s).
    // Under Valgrind, which runs one thread at a time 20-50 times slower, 100 requests
    // queued on the client's one runtime thread have taken over 10 s.
    let safety_net = if std::env::var_os("RUNNING_UNDER_VALGRIND").is_some() {
        Duration::from_secs(50)
    } else {
        Duration::from_secs(10)
    };
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(safety_net)
        .build()
        .unwrap()
}

fn get(client: &reqwest::blocking::Client, url: &str) -> reqwest::Result<String> {
    client.get(url).send()?.error_for_status()?.text()
}

/// Checks that every request got its body. A failed request fails the test with every
/// failure and what the server had answered by then (so a request lost on our side is
/// told from one the server never answered).
fn check_bodies(
    results: Vec<Result<(u64, reqwest::Result<String>), JoinError>>,
    server: &ThreadedHttpServer,
) {
    let mut failed = Vec::new();
    for result in results {
        let (id, got) = result.unwrap();
        match got {
            Ok(got) => assert_eq!(got, body(id), "the body of request {id}"),
            Err(e) => failed.push(format!("request {id}: {e:?}")),
        }
    }
    if !failed.is_empty() {
        let mut answered = server.answered_ids();
        answered.sort_unstable();
        panic!(
            "{} request(s) failed:\n{}\nthe server had answered {} request(s), ids {answered:?}",
            failed.len(),
            failed.join("\n"),
            answered.len(),
        );
    }
}

fn check_stalls(meter: StallMeter, what: &str) {
    let stall = meter.stop();
    if !skip_under_valgrind("the bound on the hub's longest stall") {
        assert!(stall.gap < MAX_STALL, "{what}: the hub stalled: {stall:?}");
    }
}

/// Checks that 100 requests of [`LATENCY`] overlapped: they took `elapsed` in all.
fn check_overlap(elapsed: Duration) {
    if !skip_under_valgrind("the wall-time bound on 100 overlapping requests") {
        assert!(
            elapsed < Duration::from_secs(3),
            "100 requests of {LATENCY:?} took {elapsed:?}: they did not overlap"
        );
    }
}

#[test]
fn a_hundred_greenlets_share_one_blocking_client() {
    greenweave_monkey::patch_all();
    let _watchdog = Watchdog::arm(Duration::from_secs(60), "the shared-client test");
    let server = ThreadedHttpServer::start();
    let client = client();
    let meter = StallMeter::start();
    let start = Instant::now();
    let requests: Vec<_> = (0..100_u64)
        .map(|id| {
            let (client, url) = (client.clone(), server.url(LATENCY, id));
            spawn(move || (id, get(&client, &url)))
        })
        .collect();
    check_bodies(joinall(requests), &server);
    let elapsed = start.elapsed();
    check_stalls(meter, "100 requests on one client");
    check_overlap(elapsed);
    assert_eq!(server.answered(), 100);
    drop(client); // joins reqwest's runtime thread (pthread_join hook), closing the pool
}

#[test]
fn a_hundred_greenlets_each_make_a_client_with_reqwest_blocking_get() {
    greenweave_monkey::patch_all();
    let _watchdog = Watchdog::arm(Duration::from_secs(60), "the blocking::get test");
    let server = ThreadedHttpServer::start();
    let meter = StallMeter::start();
    let start = Instant::now();
    // Each call starts a client (a runtime thread, whose start it waits for with
    // thread::park), and drops it with the response (joining that thread).
    let requests: Vec<_> = (0..100_u64)
        .map(|id| {
            let url = server.url(LATENCY, id);
            spawn(move || (id, reqwest::blocking::get(url).and_then(|r| r.text())))
        })
        .collect();
    check_bodies(joinall(requests), &server);
    let elapsed = start.elapsed();
    check_stalls(meter, "100 reqwest::blocking::get");
    check_overlap(elapsed);
}

#[test]
fn a_greenlet_killed_mid_request_dies_after_it_and_the_client_stays_usable() {
    greenweave_monkey::patch_all();
    let _watchdog = Watchdog::arm(Duration::from_secs(60), "the kill test");
    let server = ThreadedHttpServer::start();
    let client = client();
    let meter = StallMeter::start();
    let others: Vec<_> = (0..20_u64)
        .map(|id| {
            let (client, url) = (client.clone(), server.url(LATENCY, id));
            spawn(move || (id, get(&client, &url)))
        })
        .collect();
    let finished_request = Rc::new(Cell::new(false));
    let victim = {
        let (client, url) = (client.clone(), server.url(LATENCY, 1000));
        let finished = finished_request.clone();
        spawn(move || {
            let got = get(&client, &url);
            finished.set(got.is_ok());
            // The first interruptible blocking call: the pending kill lands here.
            sleep(Duration::from_secs(30));
        })
    };
    sleep(LATENCY / 3);
    let start = Instant::now();
    victim.kill(); // waits until the victim has died
    let kill_took = start.elapsed();
    assert!(
        matches!(victim.join(), Err(JoinError::Killed)),
        "the victim was not killed"
    );
    assert!(
        finished_request.get(),
        "the kill cut the request short (futex waits are shielded: it should not)"
    );
    if !skip_under_valgrind("the bound on how long the kill took") {
        assert!(
            kill_took < Duration::from_secs(2),
            "the kill took {kill_took:?}"
        );
    }
    check_bodies(joinall(others), &server);
    // The client carries on.
    let after = spawn(move || get(&client, &server.url(Duration::ZERO, 7)));
    assert_eq!(after.join().unwrap().unwrap(), body(7));
    check_stalls(meter, "a kill mid-request");
}

#[test]
fn with_timeout_around_a_request_neither_panics_nor_hangs_and_reqwests_timeout_cuts_it_short() {
    greenweave_monkey::patch_all();
    let _watchdog = Watchdog::arm(Duration::from_secs(60), "the timeout test");
    let server = ThreadedHttpServer::start();
    let client = client();
    let meter = StallMeter::start();
    let others: Vec<_> = (0..20_u64)
        .map(|id| {
            let (client, url) = (client.clone(), server.url(LATENCY, id));
            spawn(move || (id, get(&client, &url)))
        })
        .collect();

    // greenweave's Timeout: the request's waits are shielded, so it completes, and the
    // expired Timeout is withdrawn when with_timeout returns.
    let (c, url) = (client.clone(), server.url(LATENCY, 500));
    let bounded = spawn(move || {
        let start = Instant::now();
        let got = with_timeout(LATENCY / 3, || get(&c, &url));
        // Nothing is left pending: this sleep is not interrupted.
        sleep(Duration::from_millis(5));
        (got, start.elapsed())
    });
    let (got, took) = bounded.join().unwrap();
    assert_eq!(got.unwrap().unwrap(), body(500));
    assert!(took >= LATENCY, "{took:?}");

    // reqwest's own timeout: the park_timeout's deadline, honoured while others run.
    let (c, url) = (client.clone(), server.url(LATENCY * 10, 501));
    let start = Instant::now();
    let timed_out = spawn(move || c.get(url).timeout(LATENCY / 3).send().map(drop))
        .join()
        .unwrap();
    let took = start.elapsed();
    assert!(
        timed_out.as_ref().is_err_and(reqwest::Error::is_timeout),
        "{timed_out:?}"
    );
    if !skip_under_valgrind("the bound on how long reqwest's timeout took") {
        assert!(took < LATENCY * 3, "reqwest's timeout took {took:?}");
    }

    check_bodies(joinall(others), &server);
    let after = spawn(move || get(&client, &server.url(Duration::ZERO, 8)));
    assert_eq!(after.join().unwrap().unwrap(), body(8));
    check_stalls(meter, "timeouts around requests");
}
