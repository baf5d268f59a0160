//! System calls per round trip of the request–response clients, as counted with
//! `strace -f -c` by `cargo bench --bench echo` (`target/reqresp_syscalls.json`: per
//! group, per function, a `total` and the `calls` by name).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// The saved counts.
pub struct Syscalls(Value);

impl Syscalls {
    /// Reads `path`; `None` if there is nothing (or nothing readable) there.
    pub fn load(path: &Path) -> Option<Syscalls> {
        crate::data::read_json(path).map(Syscalls)
    }

    /// System calls per round trip of `group/function`.
    pub fn total(&self, group: &str, function: &str) -> Option<f64> {
        self.0[group][function]["total"].as_f64()
    }

    /// `sendto 1.00, recvfrom 1.00, epoll_wait 0.03`: the calls by name, most first.
    fn breakdown(&self, group: &str, function: &str) -> Option<String> {
        let calls = self.0[group][function]["calls"].as_object()?;
        let mut calls: Vec<(&String, f64)> = calls
            .iter()
            .filter_map(|(name, v)| Some((name, v.as_f64()?)))
            .collect();
        calls.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(
            calls
                .iter()
                .map(|(name, v)| format!("`{name}` {v:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

/// The measured text of "`subject` makes at most `peer`'s system calls per round trip"
/// and whether it holds.
pub fn evaluate(
    syscalls: Option<&Syscalls>,
    group: &str,
    subject: &str,
    peer: &str,
) -> Option<(String, bool)> {
    let syscalls = syscalls?;
    let (s, p) = (
        syscalls.total(group, subject)?,
        syscalls.total(group, peer)?,
    );
    // Counts are per round trip over thousands: a hundredth is the resolution.
    let held = s <= p + 0.005;
    Some((format!("{s:.2} against {p:.2}"), held))
}

/// The system-call table of one request–response group.
pub fn render(
    w: &mut String,
    group: &str,
    functions: &[(&str, &str)],
    syscalls: Option<&Syscalls>,
) {
    let _ = writeln!(
        w,
        "\nSystem calls per round trip (client process, all threads; `strace -f -c`, two \
         runs of different lengths differenced so setup cancels out; tracing slows every \
         call, so compare the clients with each other):\n"
    );
    let Some(syscalls) = syscalls else {
        let _ = writeln!(
            w,
            "Not counted: `cargo bench --bench echo` writes `target/reqresp_syscalls.json` \
             when `strace` is installed.\n"
        );
        return;
    };
    let _ = writeln!(
        w,
        "| Function | Calls per round trip | By call |\n|---|---|---|"
    );
    for &(function, _) in functions {
        let total = syscalls
            .total(group, function)
            .map_or("not counted".to_owned(), |t| format!("{t:.2}"));
        let by = syscalls.breakdown(group, function).unwrap_or_default();
        let _ = writeln!(w, "| `{function}` | {total} | {by} |");
    }
}
