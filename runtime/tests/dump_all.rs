//! `monitor::dump_all()` across several hubs, one of them stuck in a CPU loop, and
//! the dump printed on a signal by a separate process.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use greenweave_runtime::sync::Event;
use greenweave_runtime::{Builder, TaskState, monitor, sleep};

#[path = "common/valgrind.rs"]
mod valgrind;

const CHILD_ENV: &str = "GREENWEAVE_DUMP_SIGNAL_CHILD";

/// Burns CPU without reaching a blocking point until `stop` is set.
#[inline(never)]
fn busy_loop_until(stop: &AtomicBool) -> u64 {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n = std::hint::black_box(n.wrapping_add(1));
    }
    n
}

/// Starts `hubs` threads named `dump-hub-N`, each with a hub whose greenlets
/// `parked-N-0` and `parked-N-1` wait on an event; in the last one a greenlet
/// `cpu-loop` spins until `stop`. Returns once every hub is set up (the spinner
/// spinning), with the threads' handles and the events to release them.
fn start_hubs(hubs: usize, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let (ready, wait) = mpsc::channel::<()>();
    let threads = (0..hubs)
        .map(|n| {
            let ready = ready.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("dump-hub-{n}"))
                .spawn(move || {
                    let release = std::rc::Rc::new(Event::new());
                    let parked: Vec<_> = (0..2)
                        .map(|i| {
                            let release = release.clone();
                            Builder::new()
                                .name(format!("parked-{n}-{i}"))
                                .spawn(move || release.wait())
                        })
                        .collect();
                    greenweave_runtime::yield_now();
                    if n == hubs - 1 {
                        let spinner = Builder::new().name("cpu-loop").spawn(move || {
                            ready.send(()).unwrap();
                            busy_loop_until(&stop);
                        });
                        spinner.join().unwrap();
                    } else {
                        ready.send(()).unwrap();
                        // Park until the test is done with us (the hub sleeps in
                        // epoll_wait meanwhile, and answers dump requests).
                        while !stop.load(Ordering::Relaxed) {
                            sleep(Duration::from_millis(5));
                        }
                    }
                    release.set();
                    for p in parked {
                        p.join().unwrap();
                    }
                })
                .unwrap()
        })
        .collect();
    for _ in 0..hubs {
        wait.recv().unwrap();
    }
    threads
}

#[test]
fn dump_all_lists_every_hub_and_looks_into_the_stuck_one() {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = start_hubs(4, &stop);
    let started = Instant::now();
    let all = monitor::dump_all();
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let mut ours: Vec<_> = all
        .hubs
        .iter()
        .filter(|h| h.thread.starts_with("dump-hub-"))
        .collect();
    ours.sort_by_key(|h| h.thread.clone());
    assert_eq!(ours.len(), 4, "{all}");
    for hub in &ours[..3] {
        if hub.unresponsive.is_some()
            && valgrind::skip_under_valgrind(
                "a sleeping hub's answer within dump_all's 250 ms: Valgrind runs one \
                 thread at a time, so a hub woken out of epoll_wait may not get to run \
                 within it (it did not in one CI run that took 57 s)",
            )
        {
            continue;
        }
        assert!(hub.unresponsive.is_none(), "{hub}");
        let n = hub.thread.trim_start_matches("dump-hub-");
        for i in 0..2 {
            let name = format!("parked-{n}-{i}");
            let g = hub
                .greenlets
                .iter()
                .find(|g| g.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("{name} in {hub}"));
            assert_eq!(g.state, TaskState::Blocked);
            assert!(
                g.waiting_on.as_deref().unwrap().starts_with("Event"),
                "{hub}"
            );
            assert_eq!(g.parked_at.unwrap().file(), "runtime/tests/dump_all.rs");
        }
        assert!(hub.stats.is_some());
    }
    let stuck = ours[3];
    assert_eq!(stuck.thread, "dump-hub-3");
    assert!(stuck.unresponsive.is_some(), "{stuck}");
    let running = stuck.running.as_ref().expect("the greenlet holding it");
    assert_eq!(running.name.as_deref(), Some("cpu-loop"));
    assert!(running.backtrace.mentions("busy_loop_until"), "{stuck}");
    let text = all.to_string();
    assert!(text.contains("greenlet 'cpu-loop'"), "{text}");
    assert!(text.contains("did not switch greenlets"), "{text}");
    // Bounded: the answering hubs are quick, the stuck one costs the patience.
    if !valgrind::skip_under_valgrind(
        "the 5 s bound on dump_all: Valgrind runs one thread at a time, 20-50 times \
         slower, so four hubs' answers took 5.08 s there in CI",
    ) {
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}

/// The child process: hubs as above, the dump on SIGQUIT, "ready" on stdout.
#[test]
fn child_prints_the_dump_on_sigquit() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only in the child process the parent starts
    }
    monitor::install_dump_signal(libc::SIGQUIT).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let _threads = start_hubs(2, &stop);
    println!("\nready");
    // Until the parent kills us.
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn sigquit_prints_every_hub_from_a_separate_process() {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let mut child = Command::new(exe)
        .env(CHILD_ENV, "1")
        .args([
            "--exact",
            "child_prints_the_dump_on_sigquit",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary runs again");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "child ended early"
        );
        if line.trim() == "ready" {
            break;
        }
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGQUIT) }, 0);
    // Read stderr until the dump is complete (the stuck hub comes last).
    let (text_tx, text_rx) = mpsc::channel::<String>();
    let mut stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            if all.contains("did not switch greenlets") && all.contains("busy_loop_until") {
                let _ = text_tx.send(all.clone());
            }
        }
    });
    let text = text_rx.recv_timeout(Duration::from_secs(30));
    child.kill().unwrap();
    child.wait().unwrap();
    let text = text.expect("the dump on the child's stderr within 30 s");
    assert!(text.contains("thread 'dump-hub-0'"), "{text}");
    assert!(text.contains("greenlet 'parked-0-1'"), "{text}");
    assert!(text.contains("thread 'dump-hub-1' (tid "), "{text}");
    assert!(text.contains("greenlet 'cpu-loop'"), "{text}");
}
