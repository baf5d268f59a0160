//! System calls per round trip of the request–response clients, counted with
//! `strace -f -c` (every thread of the client process; the server is not traced).
//!
//! Each client is started and warmed up (two round trips per connection, so every
//! connection has made its first exchange, which registers it, and whose first read
//! may or may not find the response there yet), then `strace -f -c -p` attaches to all
//! of its threads for one command of `k` round trips and detaches: calls ÷ `k` is what
//! a round trip costs (the command's own two lines on the pipe are noise below 0.001
//! per round trip). Tracing slows every system call, which
//! changes the timing (more responses are waiting per `epoll_wait`, say), so the
//! figures are for comparing the clients with each other, as the issue that asked for
//! them measured. The results go to `target/reqresp_syscalls.json` for
//! `xtask bench-report`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::procs::ClientProcess;
use super::reqresp::{KINDS, Kind};
use super::*;

/// Whether `strace` can be run here.
pub(super) fn strace_available() -> bool {
    std::process::Command::new("strace")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Cargo's target directory, from this binary's path (`target/<profile>/deps/echo-…`).
pub(super) fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the bench binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the bench binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Calls by system call name over `iters` round trips of a warmed-up client.
fn traced_run(kind: Kind, conns: usize, addr: SocketAddr, iters: u64) -> BTreeMap<String, u64> {
    use std::io::BufRead;
    let mut client = ClientProcess::start(kind, conns, addr);
    client.run(2 * conns as u64);
    let out = target_dir().join(format!("strace-{}-{conns}.txt", kind.name()));
    let mut strace = std::process::Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .args(["-p", &client.pid().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting strace");
    // "Process N attached with M threads": every thread is traced from here on.
    let mut messages = std::io::BufReader::new(strace.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    while !line.contains("attached") {
        line.clear();
        let n = messages
            .read_line(&mut line)
            .expect("reading strace's messages");
        assert!(
            n > 0,
            "strace exited before attaching (ptrace not allowed here?)"
        );
    }
    client.run(iters);
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(strace.id() as libc::pid_t, libc::SIGINT) };
    // It detaches, writes the summary, and ends by the same signal.
    strace.wait().expect("waiting for strace");
    drop(messages);
    client.stop();
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("strace wrote no summary to {}: {e}", out.display()));
    let _ = std::fs::remove_file(&out);
    parse_summary(&text)
}

/// The `calls` column of an `strace -c` summary, by name (the `total` row included).
fn parse_summary(text: &str) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] name
        if !(5..=6).contains(&fields.len()) {
            continue;
        }
        if let Ok(n) = fields[3].parse::<u64>() {
            calls.insert(fields[fields.len() - 1].to_owned(), n);
        }
    }
    calls
}

/// Counts every client at `conns` connections against the server at `addr`: per
/// client, calls per round trip, in total and by name (those of at least 0.005).
fn count_group(addr: SocketAddr, conns: usize) -> serde_json::Value {
    let iters = (50 * conns as u64).max(50_000);
    let mut group = serde_json::Map::new();
    for kind in KINDS {
        let calls = traced_run(kind, conns, addr, iters);
        let per = |name: &str| calls.get(name).copied().unwrap_or(0) as f64 / iters as f64;
        let by_call: serde_json::Map<String, serde_json::Value> = calls
            .keys()
            .filter(|name| *name != "total")
            .map(|name| (name.clone(), per(name)))
            .filter(|(_, v)| *v >= 0.005)
            .map(|(name, v)| (name, serde_json::json!((v * 1000.0).round() / 1000.0)))
            .collect();
        let total = per("total");
        eprintln!(
            "syscalls per round trip, {conns} connections, {}: {total:.3} {by_call:?}",
            kind.name()
        );
        group.insert(
            kind.name().to_owned(),
            serde_json::json!({ "total": total, "calls": by_call }),
        );
    }
    serde_json::Value::Object(group)
}

/// Counts every request–response group and writes `target/reqresp_syscalls.json`.
pub(super) fn count_and_save(server: &str, groups: &[(&str, usize)]) {
    if !strace_available() {
        eprintln!("reqresp syscalls: strace not found; not counted (apt-get install strace)");
        return;
    }
    let server = ServerProcess::start(server);
    let mut all = serde_json::Map::new();
    for &(group, conns) in groups {
        all.insert(group.to_owned(), count_group(server.addr, conns));
    }
    server.stop();
    let path = target_dir().join("reqresp_syscalls.json");
    let json = serde_json::to_string_pretty(&serde_json::Value::Object(all)).unwrap();
    std::fs::write(&path, json).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    eprintln!("reqresp syscalls: wrote {}", path.display());
}
