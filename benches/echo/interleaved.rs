//! The request–response clients measured side by side: every client connected to a
//! server of its own (all eight processes up at once, as criterion has one client and
//! its server up), each command run by each client in turn, round after round.
//!
//! Criterion measures one function after another, a few seconds each. On a shared
//! machine the speed of the whole host drifts on that time scale (the same binary reads
//! ±25 % two minutes apart; see docs/bench-notes.md), so the ratio of two functions
//! measured a minute apart carries the drift as well as the difference. Here each
//! round runs the four clients within seconds of each other (starting with a different
//! one each round), so a round's ratio
//! compares clients under the same conditions, and the median over rounds discards
//! the rounds a burst of load hit. `xtask bench-report` shows these medians beside
//! criterion's, and judges the request–response ratio goals on them.
//!
//! Results: `target/reqresp_interleaved.json`, per group, each client's round trips per
//! second in every round (in order).

use super::procs::ClientProcess;
use super::reqresp::KINDS;
use super::syscalls::target_dir;
use super::*;

/// Rounds per group: enough for the median of the rounds' ratios to come with a
/// 90 % confidence interval between the 17th and the 29th of the sorted ratios
/// (`xtask bench-report` prints it), narrow enough to say whether a goal of "at least
/// 1.0×" is met when two clients are within a few per cent of each other; about three
/// minutes for both groups.
const ROUNDS: usize = 45;

/// Round trips per client per round: about half a second of the slowest client's.
fn iters_per_round(conns: usize) -> u64 {
    (60 * conns as u64).max(50_000)
}

/// Measures every client of one group, each against a `server` of its own.
fn measure_group(server: &str, conns: usize) -> serde_json::Value {
    let iters = iters_per_round(conns);
    let servers: Vec<ServerProcess> = KINDS.iter().map(|_| ServerProcess::start(server)).collect();
    let mut clients: Vec<ClientProcess> = KINDS
        .iter()
        .zip(&servers)
        .map(|(&kind, server)| ClientProcess::start(kind, conns, server.addr))
        .collect();
    // Warm-up: every connection registered and every stack touched.
    for client in &mut clients {
        client.run(iters / 4);
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); KINDS.len()];
    for round in 0..ROUNDS {
        // Each round starts with the next client, so none always follows the same one
        // (the thousand threads of `os_threads` leave the caches and the scheduler
        // in a state of their own).
        for i in (0..KINDS.len()).map(|i| (i + round) % KINDS.len()) {
            rates[i].push(iters as f64 / clients[i].run(iters).as_secs_f64());
        }
    }
    for client in clients {
        client.stop();
    }
    for server in servers {
        server.stop();
    }
    let functions: serde_json::Map<String, serde_json::Value> = KINDS
        .iter()
        .zip(&rates)
        .map(|(kind, rates)| {
            let rounded: Vec<f64> = rates.iter().map(|r| r.round()).collect();
            eprintln!(
                "interleaved, {conns} connections, {}: {rounded:?} round trips/s",
                kind.name()
            );
            (kind.name().to_owned(), serde_json::json!(rounded))
        })
        .collect();
    serde_json::json!({ "iters_per_round": iters, "functions": functions })
}

/// Measures every request–response group (each client against a `server` of its own)
/// and writes `target/reqresp_interleaved.json`.
pub(super) fn measure_and_save(server: &str, groups: &[(&str, usize)]) {
    let mut all = serde_json::Map::new();
    for &(group, conns) in groups {
        all.insert(group.to_owned(), measure_group(server, conns));
    }
    let path = target_dir().join("reqresp_interleaved.json");
    let json = serde_json::to_string_pretty(&serde_json::Value::Object(all)).unwrap();
    std::fs::write(&path, json).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    eprintln!("reqresp interleaved: wrote {}", path.display());
}
