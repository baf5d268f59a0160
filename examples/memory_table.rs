//! What an idle task costs, and how many greenlets fit: greenweave greenlets against
//! tokio tasks, may coroutines and OS threads, each measured in a child process of its
//! own so that the peers do not disturb one another.
//!
//! ```text
//! cargo run --release --example memory_table [-- --json PATH]
//! ```
//!
//! For every row the child process starts N tasks that each park at once on a shared
//! wait object, waits until all are parked, reads its resident set size (field 2 of
//! `/proc/self/statm`) and compares it with the figure from before the first spawn;
//! then it wakes them all and joins them. The row shows:
//!
//! - RSS per task: (RSS with all N parked - RSS before) / N. This is user-space memory
//!   only: an OS thread also costs a kernel stack (16 KiB on x86-64) and scheduler
//!   state that RSS does not show.
//! - virtual memory per task (`VmSize`), and the memory mappings in use with all parked
//!   (lines of `/proc/self/maps`; the kernel's limit is `vm.max_map_count`).
//! - spawn: the time from the first spawn until all N are parked; total: until all N
//!   have been woken and have finished.
//!
//! The peers and what they park on:
//!
//! - `greenweave`: `spawn` (the default 256 KiB stacks, carved from slabs, only touched
//!   pages resident) on the main thread's hub, parked in `sync::Event::wait`.
//! - `tokio`: `tokio::spawn` on a `current_thread` runtime, parked in
//!   `Notify::notified().await` (woken by `notify_waiters`).
//! - `may`: coroutines (may's default 32 KiB stacks, one `mmap` each) with may
//!   configured as `set_workers(1)`, parked in `recv` on a shared `may::sync::mpmc`
//!   channel (woken by N sends).
//! - `os_threads`: `std::thread::spawn` (the default 2 MiB stacks), parked on a
//!   `Mutex` + `Condvar` (woken by `notify_all`); 5,000 of them, not 100,000.
//!
//! The last rows try 100,000 and 200,000 live greenlets; "max live greenlets" is the
//! largest count that worked. A child that fails (a spawn error, a crash, no progress for
//! 20 s) is reported with the count it reached. The results also go to a JSON file
//! (default `target/memory_table.json`), which `cargo run --release -p xtask --
//! bench-report` puts into BENCHMARKS.md.
//!
//! (Inside a child: `memory_table --child PEER N` prints one JSON line.)

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The rows: peer and task count. The greenweave rows at 100,000 and 200,000 also give
/// the maximum live greenlets.
const ROWS: &[(&str, usize)] = &[
    ("greenweave", 10_000),
    ("greenweave", 100_000),
    ("tokio", 10_000),
    ("tokio", 100_000),
    ("may", 10_000),
    ("may", 100_000),
    ("os_threads", 5_000),
    ("greenweave", 200_000),
];

/// A child with no progress for this long is given up.
const STALL: Duration = Duration::from_secs(20);

fn statm_pages(field: usize) -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    statm
        .split_whitespace()
        .nth(field)
        .and_then(|s| s.parse().ok())
        .expect("statm field")
}

/// Resident and virtual size in bytes.
fn memory() -> (usize, usize) {
    // SAFETY: `sysconf` only reads a configuration value.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    (statm_pages(1) * page, statm_pages(0) * page)
}

/// Lines of `/proc/self/maps`, counted through a stack buffer: near `vm.max_map_count`
/// the allocator may be unable to map anything more.
fn mappings() -> usize {
    let Ok(mut maps) = std::fs::File::open("/proc/self/maps") else {
        return 0;
    };
    let mut buf = [0u8; 16 * 1024];
    let mut lines = 0;
    while let Ok(n @ 1..) = maps.read(&mut buf) {
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
    lines
}

/// What a child measured, as the JSON line it prints.
struct Measured {
    n: usize,
    before: (usize, usize),
    parked: (usize, usize),
    maps: usize,
    spawn: Duration,
    total: Duration,
}

impl Measured {
    fn json(&self, peer: &str) -> Value {
        let per = |after: usize, before: usize| after.saturating_sub(before) as f64 / self.n as f64;
        json!({
            "peer": peer,
            "n": self.n,
            "ok": true,
            "reached": self.n,
            "rss_before": self.before.0,
            "rss_parked": self.parked.0,
            "rss_per_task": per(self.parked.0, self.before.0),
            "virt_per_task": per(self.parked.1, self.before.1),
            "maps_parked": self.maps,
            "spawn_ms": self.spawn.as_secs_f64() * 1e3,
            "total_ms": self.total.as_secs_f64() * 1e3,
        })
    }
}

/// Reports a failure (a spawn error, or no progress) and ends the child at once.
fn fail(peer: &str, n: usize, reached: usize, error: &str) -> ! {
    let maps = mappings();
    println!(
        "{}",
        json!({
            "peer": peer, "n": n, "ok": false, "reached": reached, "error": error,
            "maps_at_failure": maps,
        })
    );
    std::process::exit(0);
}

/// Waits until `count()` reaches `n`; gives up (failing the child) after a stall.
fn wait_until(peer: &str, n: usize, count: impl Fn() -> usize) {
    let mut last = (count(), Instant::now());
    while last.0 < n {
        thread::sleep(Duration::from_micros(200));
        let now = count();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > STALL {
            fail(peer, n, now, "no progress: tasks stopped parking");
        }
    }
}

fn child_greenweave(n: usize) -> Measured {
    use greenweave::sync::Event;
    use std::rc::Rc;
    // Warm the hub, so that its own setup is not counted.
    greenweave::spawn(|| ()).join().unwrap();
    let event = Rc::new(Event::new());
    let before = memory();
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let e = event.clone();
        match greenweave::Builder::new().try_spawn(move || e.wait()) {
            Ok(h) => handles.push(h),
            Err(err) => fail("greenweave", n, i, &format!("spawn: {err}")),
        }
    }
    // The spawned greenlets run before the main greenlet comes back: all park.
    while event.waiter_count() < n {
        greenweave::yield_now();
    }
    let spawn = start.elapsed();
    let (parked, maps) = (memory(), mappings());
    event.set();
    for h in handles {
        h.join().expect("no greenlet fails");
    }
    Measured {
        n,
        before,
        parked,
        maps,
        spawn,
        total: start.elapsed(),
    }
}

fn child_tokio(n: usize) -> Measured {
    use tokio::sync::Notify;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        tokio::spawn(async {}).await.unwrap();
        let notify = Arc::new(Notify::new());
        let started = Arc::new(AtomicUsize::new(0));
        let before = memory();
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (notify, started) = (notify.clone(), started.clone());
                tokio::spawn(async move {
                    let notified = notify.notified();
                    started.fetch_add(1, Ordering::Relaxed);
                    // First poll: registered as a waiter, then parked.
                    notified.await;
                })
            })
            .collect();
        // A task counts itself and parks in the same poll: once all have counted, all
        // are parked.
        while started.load(Ordering::Relaxed) < n {
            tokio::task::yield_now().await;
        }
        let spawn = start.elapsed();
        let (parked, maps) = (memory(), mappings());
        notify.notify_waiters();
        for h in handles {
            h.await.expect("no task fails");
        }
        Measured {
            n,
            before,
            parked,
            maps,
            spawn,
            total: start.elapsed(),
        }
    })
}

fn child_may(n: usize) -> Measured {
    may::config().set_workers(1);
    may::config().set_worker_pin(false);
    /// Spawns a may coroutine.
    fn go<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> may::coroutine::JoinHandle<T> {
        // SAFETY: may's `spawn` asks that the coroutine hold no thread-local reference
        // across a blocking point (this one holds none, and with one worker it never
        // moves) and that it fit may's default 32 KiB stack (a counter and a `recv`).
        unsafe { may::coroutine::spawn(f) }
    }
    go(|| ()).join().unwrap();
    let (tx, rx) = may::sync::mpmc::channel::<()>();
    let started = Arc::new(AtomicUsize::new(0));
    let before = memory();
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    // may panics when it cannot map a stack: report how far it got.
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..n {
        let (rx, started) = (rx.clone(), started.clone());
        let spawned = std::panic::catch_unwind(move || {
            go(move || {
                started.fetch_add(1, Ordering::Release);
                let _ = rx.recv();
            })
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(payload) => {
                let why = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                fail("may", n, i, &format!("spawn: {why}"));
            }
        }
    }
    let _ = std::panic::take_hook();
    wait_until("may", n, || started.load(Ordering::Acquire));
    let spawn = start.elapsed();
    let (parked, maps) = (memory(), mappings());
    for _ in 0..n {
        tx.send(()).unwrap();
    }
    for h in handles {
        h.join().expect("no coroutine fails");
    }
    Measured {
        n,
        before,
        parked,
        maps,
        spawn,
        total: start.elapsed(),
    }
}

fn child_os_threads(n: usize) -> Measured {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let parked_count = Arc::new(AtomicUsize::new(0));
    let before = memory();
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (gate, parked_count) = (gate.clone(), parked_count.clone());
        let spawned = thread::Builder::new().spawn(move || {
            let (open, cv) = &*gate;
            let guard = open.lock().unwrap();
            parked_count.fetch_add(1, Ordering::Release);
            // Parked once `wait_while` releases the lock.
            drop(cv.wait_while(guard, |open| !*open).unwrap());
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(err) => fail("os_threads", n, i, &format!("spawn: {err}")),
        }
    }
    wait_until("os_threads", n, || parked_count.load(Ordering::Acquire));
    // The last one to count may still hold the lock: take it once, so all wait.
    drop(gate.0.lock().unwrap());
    let spawn = start.elapsed();
    let (parked, maps) = (memory(), mappings());
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    for h in handles {
        h.join().expect("no thread fails");
    }
    Measured {
        n,
        before,
        parked,
        maps,
        spawn,
        total: start.elapsed(),
    }
}

fn child(peer: &str, n: usize) {
    let measured = match peer {
        "greenweave" => child_greenweave(n),
        "tokio" => child_tokio(n),
        "may" => child_may(n),
        "os_threads" => child_os_threads(n),
        other => panic!("unknown peer {other}"),
    };
    println!("{}", measured.json(peer));
    // Exit without waiting for may's or tokio's threads.
    std::process::exit(0);
}

/// Runs one row in a child process; a failure becomes an `"ok": false` row.
fn run_row(peer: &str, n: usize) -> Value {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args(["--child", peer, &n.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-run this example as a child");
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let last_line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.starts_with('{'))
        .last();
    let status = child.wait().expect("wait for the child");
    let stderr = err_reader.join().unwrap_or_default();
    match last_line.and_then(|l| serde_json::from_str::<Value>(&l).ok()) {
        Some(v) => v,
        None => {
            let why = stderr.lines().rev().find(|l| !l.trim().is_empty());
            json!({
                "peer": peer, "n": n, "ok": false, "reached": null,
                "error": format!("child {status}: {}", why.unwrap_or("no output")),
            })
        }
    }
}

fn default_json_path() -> PathBuf {
    // target/<profile>/examples/memory_table -> target/
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("memory_table.json")
}

fn fmt_bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2} KiB", b / 1024.0)
    }
}

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, peer, n] = &args[..] {
        if flag == "--child" {
            child(peer, n.parse().expect("N is a number"));
            return;
        }
    }
    let json_path = match &args[..] {
        [] => default_json_path(),
        [flag, path] if flag == "--json" => PathBuf::from(path),
        _ => {
            eprintln!("usage: memory_table [--json PATH]");
            std::process::exit(2);
        }
    };

    println!(
        "{:<11} {:>8} {:>12} {:>13} {:>9} {:>11} {:>11}",
        "peer", "tasks", "RSS/task", "virtual/task", "mappings", "spawn", "total"
    );
    let mut rows = Vec::new();
    for &(peer, n) in ROWS {
        let row = run_row(peer, n);
        if row["ok"].as_bool() == Some(true) {
            println!(
                "{:<11} {:>8} {:>12} {:>13} {:>9} {:>8.1} ms {:>8.1} ms",
                peer,
                n,
                fmt_bytes(row["rss_per_task"].as_f64().unwrap_or(0.0)),
                fmt_bytes(row["virt_per_task"].as_f64().unwrap_or(0.0)),
                row["maps_parked"].as_u64().unwrap_or(0),
                row["spawn_ms"].as_f64().unwrap_or(0.0),
                row["total_ms"].as_f64().unwrap_or(0.0),
            );
        } else {
            let reached = row["reached"]
                .as_u64()
                .map_or("?".into(), |r| r.to_string());
            let maps = row["maps_at_failure"]
                .as_u64()
                .map_or(String::new(), |m| format!(", {m} mappings"));
            println!(
                "{:<11} {:>8} failed at {reached}{maps}: {}",
                peer,
                n,
                row["error"].as_str().unwrap_or("?")
            );
        }
        rows.push(row);
    }
    let max_live = rows
        .iter()
        .filter(|r| r["peer"] == "greenweave" && r["ok"] == true)
        .filter_map(|r| r["n"].as_u64())
        .max();
    match max_live {
        Some(n) => println!("max live greenlets: {n} (tried up to 200000)"),
        None => println!("max live greenlets: none of the greenweave rows worked"),
    }
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let out = json!({
        "rows": rows,
        "max_live_greenlets": max_live,
        "max_live_tried": 200_000,
        "vm_max_map_count": max_map_count,
    });
    if let Some(dir) = json_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&json_path, serde_json::to_string_pretty(&out).unwrap()) {
        Ok(()) => println!("wrote {}", json_path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", json_path.display()),
    }
}
