//! The standard streams under `patch_all`: `println!`/`eprintln!` from many greenlets
//! into a full pipe never panic and never tear a line; stdin reads pass through; other
//! fds (even a dup of stdout) still park. Each child-process test re-runs this test
//! binary on just itself with `GREENWEAVE_STDIO_CHILD` set.

mod common;
use common::{pipe, ticker};

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::{sleep, spawn, yield_now};

const CHILD_ENV: &str = "GREENWEAVE_STDIO_CHILD";
const GREENLETS: usize = 100;
const LINES: usize = 1000;
const PAD: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Starts exactly the test `name` of this binary in a child, its stdio piped.
fn start_child(name: &str) -> Child {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    Command::new(exe)
        .env(CHILD_ENV, "1")
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary runs again")
}

/// In the child: 100 greenlets each print 1,000 numbered lines with `print_line`,
/// yielding every few lines so their lines interleave.
fn print_from_greenlets(print_line: fn(usize, usize)) {
    greenweave_monkey::patch_all();
    // libtest may have printed "test <name> ... " without a newline: end that line.
    println!("begin");
    eprintln!("begin");
    let printers: Vec<_> = (0..GREENLETS)
        .map(|g| {
            spawn(move || {
                for n in 0..LINES {
                    print_line(g, n);
                    if n % 16 == 0 {
                        yield_now();
                    }
                }
            })
        })
        .collect();
    for p in printers {
        p.join().unwrap();
    }
}

/// Reads `from` slowly at first (small chunks, small pauses: the child's pipe fills
/// and stays full), then at full speed, to the end.
fn read_slowly(mut from: impl Read) -> Vec<u8> {
    let mut all = Vec::new();
    let mut chunk = [0_u8; 256];
    for _ in 0..200 {
        match from.read(&mut chunk).unwrap() {
            0 => return all,
            n => all.extend_from_slice(&chunk[..n]),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    from.read_to_end(&mut all).unwrap();
    all
}

/// Checks that `output` holds every (greenlet, n) line exactly once, each whole.
fn check_lines(output: &[u8]) {
    let text = String::from_utf8(output.to_vec()).expect("whole lines are UTF-8");
    let mut seen = vec![false; GREENLETS * LINES];
    for line in text.lines() {
        if !line.contains("line ") {
            continue; // libtest's own lines ("running 1 test", "test result: ...")
        }
        let parts: Vec<&str> = line.split(' ').collect();
        let parsed = match parts[..] {
            ["line", g, n, pad] if pad == PAD => {
                g.parse::<usize>().ok().zip(n.parse::<usize>().ok())
            }
            _ => None,
        };
        let (g, n) = parsed.unwrap_or_else(|| panic!("a torn line: {line:?}"));
        assert!(g < GREENLETS && n < LINES, "{line:?}");
        assert!(
            !std::mem::replace(&mut seen[g * LINES + n], true),
            "twice: {line:?}"
        );
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{missing} lines missing");
}

/// Runs the child test `name`, reading `slow` (stdout or stderr) slowly and the other
/// stream at full speed; returns (slow stream's bytes, other stream's text).
fn run_printing_child(name: &str, slow_is_stdout: bool) -> (Vec<u8>, String) {
    let mut child = start_child(name);
    drop(child.stdin.take());
    let out: ChildStdout = child.stdout.take().unwrap();
    let err: ChildStderr = child.stderr.take().unwrap();
    let (slow, other) = if slow_is_stdout {
        let other = std::thread::spawn(move || read_all(err));
        (read_slowly(out), other.join().unwrap())
    } else {
        let other = std::thread::spawn(move || read_all(out));
        (read_slowly(err), other.join().unwrap())
    };
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "child failed: {status:?}\nother stream:\n{other}"
    );
    (slow, other)
}

fn read_all(mut from: impl Read) -> String {
    let mut all = Vec::new();
    from.read_to_end(&mut all).unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn println_from_100_greenlets_into_a_full_pipe_never_panics() {
    if in_child() {
        return print_from_greenlets(|g, n| println!("line {g:03} {n:04} {PAD}"));
    }
    let started = Instant::now();
    let (stdout, _) = run_printing_child(
        "println_from_100_greenlets_into_a_full_pipe_never_panics",
        true,
    );
    check_lines(&stdout);
    eprintln!(
        "100,000 println! lines through a slow pipe: {:?}",
        started.elapsed()
    );
}

#[test]
fn eprintln_from_100_greenlets_into_a_full_pipe_never_panics() {
    if in_child() {
        return print_from_greenlets(|g, n| eprintln!("line {g:03} {n:04} {PAD}"));
    }
    let (stderr, _) = run_printing_child(
        "eprintln_from_100_greenlets_into_a_full_pipe_never_panics",
        false,
    );
    check_lines(&stderr);
}

#[test]
fn a_stdin_read_passes_through_and_blocks_the_thread() {
    if in_child() {
        greenweave_monkey::patch_all();
        let (ticks, t) = ticker();
        yield_now(); // the ticker is now asleep on the hub
        println!("ready");
        let started = Instant::now();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        let waited = started.elapsed();
        // Nothing else ran while the read waited: it blocked the thread.
        assert_eq!(ticks.get(), 0, "the stdin read parked ({waited:?})");
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert_eq!(line, "hello\n");
        t.kill();
        return;
    }
    let mut child = start_child("a_stdin_read_passes_through_and_blocks_the_thread");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert_ne!(
            out.read_line(&mut line).unwrap(),
            0,
            "the child ended early"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    drop(stdin);
    let rest = read_all(out);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{rest}\n{stderr}");
}

#[test]
fn a_dup_of_a_full_stdout_pipe_still_parks() {
    const BIG: usize = 256 * 1024;
    if in_child() {
        greenweave_monkey::patch_all();
        // SAFETY: dup of an open fd.
        let copy = unsafe { libc::dup(1) };
        assert!(copy > 2);
        let (ticks, t) = ticker();
        let done = Rc::new(std::cell::Cell::new(false));
        let d = done.clone();
        let writer = spawn(move || {
            let big = vec![b'z'; BIG];
            // SAFETY: a valid buffer on an open fd.
            let n = unsafe { libc::write(copy, big.as_ptr().cast(), big.len()) };
            assert_eq!(n, BIG as isize);
            d.set(true);
        });
        sleep(Duration::from_millis(100));
        // The parent reads nothing until told: the writer is parked on the full pipe.
        assert!(!done.get(), "256 KiB fit in the pipe?");
        common::assert_ticked(&ticks, 10, "the write to the full stdout pipe waited");
        eprintln!("parked");
        writer.join().unwrap();
        assert!(done.get());
        t.kill();
        return;
    }
    let mut child = start_child("a_dup_of_a_full_stdout_pipe_still_parks");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("parked") {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("the child ended early: {:?}", child.wait());
        }
    }
    let out = read_all(child.stdout.take().unwrap());
    let rest = read_all(err);
    assert!(child.wait().unwrap().success(), "{rest}");
    assert_eq!(out.bytes().filter(|&b| b == b'z').count(), BIG);
}

#[test]
fn a_greenlet_writing_to_a_full_plain_pipe_parks() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    let (ticks, t) = ticker();
    let writer = spawn(move || {
        let big = vec![7_u8; 256 * 1024];
        // SAFETY: a valid buffer on an open fd.
        let n = unsafe { libc::write(w.as_raw_fd(), big.as_ptr().cast(), big.len()) };
        assert_eq!(n, big.len() as isize);
    });
    sleep(Duration::from_millis(50));
    assert!(!writer.is_finished());
    common::assert_ticked(&ticks, 5, "the write to the full pipe waited");
    let mut got = Vec::new();
    let mut f = std::fs::File::from(r);
    let mut buf = [0_u8; 65536];
    while got.len() < 256 * 1024 {
        let n = f.read(&mut buf).unwrap(); // parks until the writer refills the pipe
        got.extend_from_slice(&buf[..n]);
    }
    writer.join().unwrap();
    assert!(got.iter().all(|&b| b == 7));
    t.kill();
}
