//! The `postgres` crate's sync client in greenlets, against a real PostgreSQL server
//! that the test starts (see `common`). Every call of that client runs a tokio
//! current-thread runtime's `block_on` on the calling thread: an event loop of its own,
//! waiting in `epoll_wait`, which `patch_all` does not make cooperative.
//!
//! - Used directly under `patch_all`: every answer is correct and nothing panics (its
//!   sockets are non-blocking, and the hooks give `EAGAIN` back as the kernel does), but
//!   the calls are serial and the hub stalls for each one.
//! - Through `threadpool::Offload`: the calls overlap and the hub never stalls.
//! - Kill and `with_timeout` around an offloaded call: prompt, nothing panics, the
//!   client stays usable or is closed cleanly, and no pool thread is lost.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::PgServer;
use greenweave::threadpool::{Offload, ThreadPool};
use greenweave::{JoinError, JoinHandle, sleep, spawn, with_timeout};
use postgres::{Client, NoTls};

const GREENLETS: i32 = 50;

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|err| panic!("cannot connect to {url}: {err}"))
}

/// A greenlet ticking every 2 ms, to see how long the hub goes without running it;
/// [`Ticker::stop`] returns the longest gap between ticks (up to the stop).
struct Ticker {
    handle: JoinHandle<()>,
    last: Rc<Cell<Instant>>,
    max_gap: Rc<Cell<Duration>>,
}

impl Ticker {
    fn start() -> Ticker {
        let last = Rc::new(Cell::new(Instant::now()));
        let max_gap = Rc::new(Cell::new(Duration::ZERO));
        let (l, gap) = (last.clone(), max_gap.clone());
        let handle = spawn(move || {
            loop {
                sleep(Duration::from_millis(2));
                gap.set(gap.get().max(l.get().elapsed()));
                l.set(Instant::now());
            }
        });
        Ticker {
            handle,
            last,
            max_gap,
        }
    }

    fn stop(self) -> Duration {
        let gap = self.max_gap.get().max(self.last.get().elapsed());
        self.handle.kill();
        gap
    }
}

/// `SELECT $1 + 1` after sleeping `seconds` on the server.
fn plus_one_after(client: &mut Client, input: i32, seconds: f64) -> i32 {
    let sql = format!("SELECT $1::int + 1 FROM pg_sleep({seconds})");
    client.query_one(&sql, &[&input]).unwrap().get(0)
}

#[test]
fn direct_clients_are_correct_but_serial() {
    let Some(server) = PgServer::start() else {
        return;
    };
    greenweave::monkey::patch_all();
    const SLEEP: f64 = 0.1;

    let start = Instant::now();
    let ticker = Ticker::start();
    let greenlets: Vec<_> = (0..GREENLETS)
        .map(|i| {
            let url = server.url();
            spawn(move || {
                let mut client = connect(&url);
                let first = plus_one_after(&mut client, i * 10, SLEEP);
                // Let every other greenlet run (and enter its own runtime) between two
                // calls of this one.
                sleep(Duration::from_millis(1));
                let second = plus_one_after(&mut client, i * 10 + 1, 0.0);
                (first, second)
            })
        })
        .collect();
    for (i, greenlet) in (0..).zip(greenlets) {
        assert_eq!(greenlet.join().unwrap(), (i * 10 + 1, i * 10 + 2));
    }
    let elapsed = start.elapsed();
    let stall = ticker.stop();
    eprintln!(
        "{GREENLETS} direct clients, {SLEEP} s each: {elapsed:?}, longest hub stall {stall:?}"
    );
    // Serial: the sleeps did not overlap, and the hub stalled for a whole call.
    assert!(
        elapsed.as_secs_f64() >= f64::from(GREENLETS) * SLEEP * 0.9,
        "{elapsed:?}"
    );
    assert!(stall.as_secs_f64() >= SLEEP * 0.9, "{stall:?}");

    // A Timeout cannot cut such a call short: the hub, which would fire it, is blocked
    // inside the call until it returns.
    let mut client = connect(&server.url());
    let start = Instant::now();
    let answer = with_timeout(Duration::from_millis(20), || {
        plus_one_after(&mut client, 7, 0.2)
    });
    assert_eq!(answer, Ok(8));
    assert!(start.elapsed() >= Duration::from_millis(180));
}

#[test]
fn offloaded_clients_run_concurrently() {
    let Some(server) = PgServer::start() else {
        return;
    };
    greenweave::monkey::patch_all();
    const SLEEP: f64 = 0.3;
    const ROUNDS: i32 = 3;
    // One pool thread per client that may be in a call at once.
    let pool = Arc::new(ThreadPool::new(GREENLETS as usize));

    let start = Instant::now();
    let ticker = Ticker::start();
    let greenlets: Vec<_> = (0..GREENLETS)
        .map(|i| {
            let url = server.url();
            let pool = pool.clone();
            spawn(move || {
                let client = pool.run(move || connect(&url));
                let mut db = Offload::with_pool(client, pool);
                (0..ROUNDS)
                    .map(|round| {
                        let input = i * 100 + round;
                        (input, db.run(move |c| plus_one_after(c, input, SLEEP)))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for greenlet in greenlets {
        for (input, answer) in greenlet.join().unwrap() {
            assert_eq!(answer, input + 1);
        }
    }
    let elapsed = start.elapsed();
    let stall = ticker.stop();
    eprintln!(
        "{GREENLETS} offloaded clients, {ROUNDS} x {SLEEP} s each: {elapsed:?}, longest hub stall {stall:?}"
    );
    // Serial would take GREENLETS * ROUNDS * SLEEP = 45 s.
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
    // One call on the hub's thread would stall it for SLEEP; what is left is CPU
    // contention on a small machine (typically 5-30 ms, 50 backends forking at once).
    assert!(
        stall.as_secs_f64() < SLEEP / 2.0,
        "the hub stalled for {stall:?}"
    );
    assert!(pool.threads() <= GREENLETS as usize);
}

/// Polls `probe` every 5 ms (other greenlets run meanwhile) until it holds, for at most
/// 10 s.
fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(5));
    }
}

#[test]
fn kill_and_timeout_mid_call_through_offload() {
    let Some(server) = PgServer::start() else {
        return;
    };
    greenweave::monkey::patch_all();
    let pool = Arc::new(ThreadPool::new(2));
    let url = server.url();
    let mut db = Offload::with_pool(pool.run(move || connect(&url)), pool.clone());

    // with_timeout: the caller gets Elapsed at once; the call runs on with the client.
    let start = Instant::now();
    let late = with_timeout(Duration::from_millis(100), || {
        db.run(|c| plus_one_after(c, 1, 0.6))
    });
    assert!(late.is_err());
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(pool.active(), 1, "the abandoned call still runs");
    // The next call waits for it, then the client answers as before.
    assert_eq!(db.run(|c| plus_one_after(c, 41, 0.0)), 42);
    assert!(start.elapsed() >= Duration::from_millis(540));

    // A timeout that expires while waiting for the abandoned call, then an SQL error:
    // the client stays usable through both.
    let _ = with_timeout(Duration::from_millis(50), || {
        db.run(|c| plus_one_after(c, 1, 0.3))
    });
    assert!(with_timeout(Duration::from_millis(50), || db.get_mut().is_closed()).is_err());
    let error = db.run(|c| c.query_one("SELECT no_such_column", &[]).unwrap_err());
    let message = error.as_db_error().map(|db| db.message().to_owned());
    assert!(
        message.unwrap_or_default().contains("no_such_column"),
        "{error:?}"
    );
    assert_eq!(db.run(|c| plus_one_after(c, 99, 0.0)), 100);

    // Kill a greenlet mid-call: it dies at once; its client is closed once the call
    // ends (the server sees its backend go), on the pool thread.
    let backend = Rc::new(Cell::new(0));
    let seen = backend.clone();
    let url = server.url();
    let victim_pool = pool.clone();
    let victim = spawn(move || {
        let mut mine = Offload::with_pool(victim_pool.run(move || connect(&url)), victim_pool);
        seen.set(mine.run(|c| c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0)));
        mine.run(|c| plus_one_after(c, 5, 0.5))
    });
    eventually("the victim is in its long call", || {
        backend.get() != 0 && pool.active() == 1
    });
    let start = Instant::now();
    victim.kill();
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(victim.join(), Err(JoinError::Killed)));
    let pid: i32 = backend.get();
    eventually("the killed greenlet's connection is closed", || {
        let count: i64 = db.run(move |c| {
            c.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .unwrap()
            .get(0)
        });
        count == 0
    });

    // No pool thread was lost: both run again at once.
    eventually("the pool is idle", || pool.active() == 0);
    let start = Instant::now();
    let out = pool.map(
        |i: u64| {
            std::thread::sleep(Duration::from_millis(200));
            i
        },
        0..2,
    );
    assert_eq!(out, [0, 1]);
    assert!(start.elapsed() < Duration::from_millis(390));
    assert_eq!(pool.threads(), 2);
}
