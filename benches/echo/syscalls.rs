//! System calls per round trip of the request–response clients, counted with
//! `strace -f -c` (every thread of the client process; the server is not traced).
//!
//! Each client is run twice under `strace`, with `k1` and `k2` round trips after the
//! same setup (start, connections, one command each), and the counts are
//! differenced: (calls in run 2 − calls in run 1) ÷ (k2 − k1) is what one round trip
//! costs, setup and start-up cancelling out. Tracing slows every system call, which
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
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the bench binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the bench binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Calls by system call name over one traced client run of `iters` round trips.
fn traced_run(kind: Kind, conns: usize, addr: SocketAddr, iters: u64) -> BTreeMap<String, u64> {
    let out = target_dir().join(format!("strace-{}-{conns}-{iters}.txt", kind.name()));
    let wrapper: Vec<String> = ["strace", "-f", "-c", "-o"]
        .into_iter()
        .map(String::from)
        .chain([out.display().to_string(), "--".to_owned()])
        .collect();
    let mut client = ClientProcess::start(kind, conns, addr, &wrapper);
    client.run(iters);
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
    let k1 = (2 * conns as u64).max(2_000);
    let k2 = k1 + (20 * conns as u64).max(20_000);
    let mut group = serde_json::Map::new();
    for kind in KINDS {
        let (a, b) = (
            traced_run(kind, conns, addr, k1),
            traced_run(kind, conns, addr, k2),
        );
        let per = |name: &str| {
            let (x, y) = (
                a.get(name).copied().unwrap_or(0),
                b.get(name).copied().unwrap_or(0),
            );
            (y as f64 - x as f64) / (k2 - k1) as f64
        };
        let by_call: serde_json::Map<String, serde_json::Value> = b
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
