//! `greenweave_runtime::process`: cooperative status/output/wait for std's Command and
//! Child, with real child processes and no patching.

#[path = "common/valgrind.rs"]
mod valgrind;

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::{
    Elapsed, JoinError, JoinHandle, joinall, process, sleep, spawn, with_timeout, yield_now,
};

/// `sh -c script`.
fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    command
}

/// A greenlet counting 1 ms ticks until killed: proof that the thread kept running.
fn ticker() -> (Rc<Cell<u32>>, JoinHandle<()>) {
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let h = spawn(move || {
        loop {
            sleep(Duration::from_millis(1));
            t.set(t.get() + 1);
        }
    });
    (ticks, h)
}

/// Waits (cooperatively, up to 5 s) until no process `pid` exists any more, not even
/// as a zombie: it was killed *and* reaped.
fn assert_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        if rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} is still there");
        sleep(Duration::from_millis(5));
    }
}

#[test]
fn fifty_greenlets_running_status_overlap_and_each_gets_its_exit_code() {
    let (ticks, t) = ticker();
    let start = Instant::now();
    let runs: Vec<_> = (0..50)
        .map(|n| spawn(move || process::status(&mut sh(&format!("sleep 0.3; exit {n}")))))
        .collect();
    for (n, run) in joinall(runs).into_iter().enumerate() {
        assert_eq!(run.unwrap().unwrap().code(), Some(n as i32));
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    if !valgrind::skip_under_valgrind("the 1.5 s bound on fifty overlapping children") {
        assert!(
            elapsed < Duration::from_millis(1500),
            "50 x 0.3 s took {elapsed:?}: serial is 15 s"
        );
    }
    assert!(ticks.get() >= 20, "only {} ticks meanwhile", ticks.get());
    t.kill();
}

#[test]
fn output_reads_a_mebibyte_on_each_stream_whichever_the_child_writes_first() {
    const N: usize = 1 << 20;
    // stderr first: a reader that waited for stdout's end first would deadlock with a
    // child blocked on a full stderr pipe.
    let script = format!("yes err | head -c {N} >&2; yes out | head -c {N}; exit 3");
    let out = process::output(&mut sh(&script)).unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout.len(), N);
    assert_eq!(out.stderr.len(), N);
    assert!(
        out.stdout
            .iter()
            .zip(b"out\n".iter().cycle())
            .all(|(a, b)| a == b)
    );
    assert!(
        out.stderr
            .iter()
            .zip(b"err\n".iter().cycle())
            .all(|(a, b)| a == b)
    );
}

#[test]
fn output_of_children_that_close_their_streams_early_overlaps_across_greenlets() {
    let (ticks, t) = ticker();
    let start = Instant::now();
    let runs: Vec<_> = (0..20)
        .map(|n| {
            spawn(move || {
                let script = if n % 2 == 0 {
                    // stdout ends at once; stderr only when the child is done.
                    format!("echo early{n}; exec >&-; sleep 0.3; echo late >&2; exit {n}")
                } else {
                    // Both end at once; the child keeps running (only the wait waits).
                    format!("echo out{n}; echo err >&2; exec >&- 2>&-; sleep 0.3; exit {n}")
                };
                process::output(&mut sh(&script)).unwrap()
            })
        })
        .collect();
    for (n, out) in joinall(runs).into_iter().enumerate() {
        let out = out.unwrap();
        assert_eq!(out.status.code(), Some(n as i32));
        if n % 2 == 0 {
            assert_eq!(out.stdout, format!("early{n}\n").into_bytes());
            assert_eq!(out.stderr, b"late\n");
        } else {
            assert_eq!(out.stdout, format!("out{n}\n").into_bytes());
            assert_eq!(out.stderr, b"err\n");
        }
    }
    let elapsed = start.elapsed();
    if !valgrind::skip_under_valgrind("the 1.5 s bound on twenty overlapping children") {
        assert!(
            elapsed < Duration::from_millis(1500),
            "20 x 0.3 s took {elapsed:?}"
        );
    }
    assert!(ticks.get() >= 20, "only {} ticks meanwhile", ticks.get());
    t.kill();
}

#[test]
fn wait_timeout_leaves_a_running_child_which_can_then_be_killed_and_reaped() {
    let mut child = Command::new("sleep").arg("10").spawn().unwrap();
    assert_eq!(
        process::wait_timeout(&mut child, Duration::ZERO).unwrap(),
        None
    );
    let start = Instant::now();
    assert_eq!(
        process::wait_timeout(&mut child, Duration::from_millis(50)).unwrap(),
        None
    );
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert_eq!(child.try_wait().unwrap(), None, "still running");
    child.kill().unwrap();
    let status = process::wait(&mut child).unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // Waited for: later calls return the same status at once.
    assert_eq!(
        process::wait_timeout(&mut child, Duration::ZERO).unwrap(),
        Some(status)
    );
}

#[test]
fn wait_timeout_returns_the_status_of_a_child_that_exits_in_time() {
    let mut child = sh("sleep 0.05; exit 7").spawn().unwrap();
    let status = process::wait_timeout(&mut child, Duration::from_secs(10)).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(7));
}

#[test]
fn wait_closes_a_piped_stdin_first_as_std_does() {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        process::wait(&mut child).unwrap().success(),
        "cat saw its end of input"
    );
}

#[test]
fn wait_with_output_reads_what_a_spawned_child_writes() {
    let child = sh("echo hello; echo world >&2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = process::wait_with_output(child).unwrap();
    assert!(out.status.success());
    assert_eq!(
        (&out.stdout[..], &out.stderr[..]),
        (&b"hello\n"[..], &b"world\n"[..])
    );
}

#[test]
fn killing_a_greenlet_in_wait_leaves_the_child_running_and_ours() {
    let child = Rc::new(RefCell::new(
        Command::new("sleep").arg("10").spawn().unwrap(),
    ));
    let c = child.clone();
    let waiter = spawn(move || process::wait(&mut c.borrow_mut()));
    yield_now(); // the waiter parks
    waiter.kill();
    assert!(matches!(waiter.join(), Err(JoinError::Killed)));
    let mut child = child.borrow_mut();
    assert_eq!(child.try_wait().unwrap(), None, "the child still runs");
    child.kill().unwrap();
    assert_eq!(
        process::wait(&mut child).unwrap().signal(),
        Some(libc::SIGKILL)
    );
}

#[test]
fn a_timeout_around_wait_with_output_kills_and_reaps_the_child() {
    let child = Command::new("sleep")
        .arg("10")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    let outcome = with_timeout(Duration::from_millis(50), move || {
        process::wait_with_output(child)
    });
    assert_eq!(outcome.err(), Some(Elapsed));
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_gone(pid);
}

#[test]
fn a_timeout_around_status_kills_and_reaps_the_child() {
    let dir = std::env::temp_dir().join(format!("greenweave-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("status-pid");
    let script = format!("echo $$ > {}; exec sleep 10", pid_file.display());
    let outcome = with_timeout(Duration::from_millis(300), || {
        process::status(&mut sh(&script))
    });
    assert_eq!(outcome.err(), Some(Elapsed));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_gone(pid);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_program_is_not_found() {
    if valgrind::skip_under_valgrind(
        "Valgrind runs posix_spawn's vfork as a fork, so a failed exec shows as exit 127, not an error",
    ) {
        return;
    }
    let missing = || Command::new("/nonexistent/greenweave-no-such-program");
    assert_eq!(
        process::status(&mut missing()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        process::output(&mut missing()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_plain_os_thread_can_use_the_api_too() {
    let code = std::thread::spawn(|| process::status(&mut sh("exit 4")).unwrap().code());
    assert_eq!(code.join().unwrap(), Some(4));
}
