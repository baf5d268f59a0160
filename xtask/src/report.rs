//! `bench-report`: BENCHMARKS.md and the ratio chart from the saved figures.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::Options;
use crate::chart::{self, Bar, format_ratio};
use crate::code_size::{self, CodeSize};
use crate::data::{Estimates, memory_table};
use crate::interleaved::{self, Interleaved};
use crate::machine::{Machine, utc};
use crate::spec::{Check, GOALS, GROUPS, Goal, Group, SYSCALL_GROUPS, Unit};
use crate::syscalls::{self, Syscalls};

/// Where the chart goes, relative to the workspace root (and to BENCHMARKS.md).
const CHART: &str = "docs/bench-ratios.svg";
/// The hand-written analysis the report links to.
const NOTES: &str = "docs/bench-notes.md";
/// A median whose 95 % confidence interval is wider than this fraction of it is marked
/// "(noisy)".
const NOISY: f64 = 0.2;

/// Writes the report and the chart.
pub fn bench_report(root: &Path, target: &Path, options: &Options) -> Result<(), String> {
    let names = GROUPS
        .iter()
        .flat_map(|g| g.functions.iter().map(move |&(f, _)| (g.name, f)));
    let estimates = Estimates::load(&target.join("criterion"), names);
    if estimates.is_empty() {
        eprintln!(
            "bench-report: no criterion estimates under {}: run `cargo bench --workspace` first",
            target.join("criterion").display()
        );
    }
    let memory = memory_table(root, &target.join("memory_table.json"), options.skip_memory);
    let syscalls = Syscalls::load(&target.join("reqresp_syscalls.json"));
    let interleaved = Interleaved::load(&target.join("reqresp_interleaved.json"));
    let code_size = code_size::measure(root, target);
    let machine = Machine::detect();

    let bars = chart_bars(&estimates);
    chart::render(&bars, &root.join(CHART))?;
    let figures = Figures {
        estimates: &estimates,
        memory: memory.as_ref(),
        syscalls: syscalls.as_ref(),
        interleaved: interleaved.as_ref(),
        code_size: code_size.as_ref(),
    };
    let markdown = render(&machine, &figures, !bars.is_empty());
    std::fs::write(&options.out, markdown)
        .map_err(|e| format!("writing {}: {e}", options.out.display()))?;
    eprintln!(
        "bench-report: wrote {} and {}",
        options.out.display(),
        root.join(CHART).display()
    );
    Ok(())
}

/// A short name for a function in chart labels.
fn short(function: &str) -> &str {
    match function {
        "greenweave" => "greenweave",
        "greenlet_switch_round_trip" => "switch",
        "greenlet_create_run_finish" => "create+run+finish",
        "greenweave_1hub" => "1 hub",
        "greenweave_workers2" => "workers(2)",
        "greenweave_channel" => "Channel",
        "greenweave_queue1" => "Queue(1)",
        "corosensei_resume_suspend" => "raw corosensei",
        "os_thread_handoff_condvar" => "OS threads, Condvar",
        "os_thread_handoff_sync_channel" => "OS threads, sync_channel",
        other => other,
    }
}

/// The goal factor set for greenweave's speed-up of `subject` over `peer`, if any.
fn goal_factor(group: &str, subject: &str, peer: &str) -> Option<f64> {
    GOALS.iter().find_map(|goal| match goal.check {
        Check::MinSpeedup {
            group: g,
            subject: s,
            peer: p,
            factor,
        } if (g, s, p) == (group, subject, peer) => Some(factor),
        _ => None,
    })
}

/// The chart's bars: each group's charted pairs, then goal pairs not charted yet.
fn chart_bars(estimates: &Estimates) -> Vec<Bar> {
    let mut pairs: Vec<(&str, &str, &str)> = Vec::new();
    for group in GROUPS {
        for (subject, peer) in group.charted_pairs() {
            pairs.push((group.name, subject, peer));
        }
        for goal in GOALS {
            if let Check::MinSpeedup {
                group: g,
                subject,
                peer,
                ..
            } = goal.check
            {
                if g == group.name && !pairs.contains(&(g, subject, peer)) {
                    pairs.push((g, subject, peer));
                }
            }
        }
    }
    pairs
        .into_iter()
        .filter_map(|(group, subject, peer)| {
            let ratio = estimates.speedup(group, subject, peer)?;
            let who = if subject == "greenweave" {
                String::new()
            } else {
                format!("{} ", short(subject))
            };
            Some(Bar {
                label: format!("{group}: {who}vs {}", short(peer)),
                ratio,
                goal: goal_factor(group, subject, peer),
            })
        })
        .collect()
}

/// `2.53 ns`, `30.1 ns`, `19.5 µs`, `1.23 ms`.
fn format_ns(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let digits = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.digits$} {unit}")
}

/// `90,818`: a count with thousands separators.
pub(crate) fn format_count(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `4.61 KiB`, `2.21 MiB`.
fn format_bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2} KiB", b / 1024.0)
    }
}

/// Everything measured: criterion's estimates, the memory table, the system calls,
/// the code size.
struct Figures<'a> {
    estimates: &'a Estimates,
    memory: Option<&'a Value>,
    syscalls: Option<&'a Syscalls>,
    interleaved: Option<&'a Interleaved>,
    code_size: Result<&'a CodeSize, &'a String>,
}

/// A goal's measured value (as text) and whether it is met; `None` without data.
fn evaluate(goal: &Goal, figures: &Figures) -> Option<(String, bool)> {
    let (estimates, memory) = (figures.estimates, figures.memory);
    match goal.check {
        Check::MaxNs {
            group,
            function,
            ns,
        } => {
            let e = estimates.get(group, function)?;
            Some((format_ns(e.median_ns), e.median_ns <= ns))
        }
        Check::MinSpeedup {
            group,
            subject,
            peer,
            factor,
        } => {
            let speedup = estimates.speedup(group, subject, peer)?;
            Some(speedup_result(speedup, factor))
        }
        Check::MinSideBySideSpeedup {
            group,
            subject,
            peer,
            factor,
        } => {
            let side = figures.interleaved?.speedup(group, subject, peer)?;
            let (text, met) = speedup_result(side.median, factor);
            let interval = side.interval_text();
            let sep = if interval.is_empty() {
                ""
            } else {
                ", 90 % interval "
            };
            Some((format!("{text} (side by side{sep}{interval})"), met))
        }
        Check::MaxExtraNs {
            group,
            subject,
            peer,
            ns,
        } => {
            let extra =
                estimates.get(group, subject)?.median_ns - estimates.get(group, peer)?.median_ns;
            Some((format!("{extra:+.1} ns"), extra <= ns))
        }
        Check::MinLiveGreenlets(n) => {
            let live = memory?["max_live_greenlets"].as_u64()?;
            let tried = memory?["max_live_tried"].as_u64().unwrap_or(live);
            Some((
                format!(
                    "{} (tried up to {})",
                    format_count(live as f64),
                    format_count(tried as f64)
                ),
                live >= n,
            ))
        }
        Check::MaxSyscalls {
            group,
            subject,
            peer,
        } => syscalls::evaluate(figures.syscalls, group, subject, peer),
    }
}

/// The text of a measured speed-up against a `factor` goal, and whether it is met.
fn speedup_result(speedup: f64, factor: f64) -> (String, bool) {
    let text = if factor < 1.0 {
        // A bounded slowdown: say how many times slower.
        format!("{} slower", format_ratio(1.0 / speedup))
    } else if speedup >= 1.0 {
        format!("{} faster", format_ratio(speedup))
    } else {
        format!(
            "{} ({} slower)",
            format_ratio(speedup),
            format_ratio(1.0 / speedup)
        )
    };
    (text, speedup >= factor)
}

/// The "Met" cell.
fn met_cell(result: Option<&(String, bool)>) -> &'static str {
    match result {
        Some((_, true)) => "met",
        Some((_, false)) => "**not met**",
        None => "no data",
    }
}

/// The whole Markdown document.
fn render(machine: &Machine, figures: &Figures, has_chart: bool) -> String {
    let estimates = figures.estimates;
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(
        w,
        "<!-- Generated by `cargo run --release -p xtask -- bench-report`. Do not edit: \
         it is rewritten on every run. Hand-written analysis goes in {NOTES}. -->\n"
    );
    let _ = writeln!(w, "# greenweave benchmarks\n");
    let _ = writeln!(
        w,
        "Generated from the figures of the last benchmark run (criterion's saved medians, \
         `examples/memory_table`, and the echo bench's `strace` counts). To measure again and regenerate this file:\n\n\
         ```sh\ncargo bench --workspace && cargo run --release -p xtask -- bench-report\n```\n\n\
         What the figures mean, where the time goes and what would change them: \
         [{NOTES}]({NOTES}) (hand-written). Each bench file's `//!` docs say exactly what \
         every function does and how each peer differs.\n"
    );

    // Machine.
    let _ = writeln!(w, "## Machine\n\n| | |\n|---|---|");
    let _ = writeln!(w, "| CPUs (`nproc`) | {} |", machine.cpus);
    let _ = writeln!(w, "| CPU (`/proc/cpuinfo`) | {} |", machine.cpu_model);
    let _ = writeln!(w, "| Kernel (`uname -r`) | {} |", machine.kernel);
    let _ = writeln!(w, "| rustc | {} |", machine.rustc);
    let _ = writeln!(w, "| Code | commit {} |", machine.commit);
    if let Some((first, last)) = estimates.written_span() {
        let _ = writeln!(
            w,
            "| Benchmarks run | {} to {} (criterion's estimate files) |",
            utc(first, true),
            utc(last, true)
        );
    }
    let _ = writeln!(w, "| Report generated | {} |\n", machine.date);
    let _ = writeln!(
        w,
        "A shared virtual machine gives noisy absolute figures, OS-thread ones most of all; \
         the ratios, taken within one run, are steadier.\n"
    );

    // Goals.
    let _ = writeln!(w, "## Goals\n\n| Goal | Measured | Met |\n|---|---|---|");
    for goal in GOALS {
        let result = evaluate(goal, figures);
        let measured = result.as_ref().map_or("—", |(t, _)| t.as_str());
        let _ = writeln!(
            w,
            "| {} | {measured} | {} |",
            goal.text,
            met_cell(result.as_ref())
        );
    }
    let _ = writeln!(w);

    // Chart.
    if has_chart {
        let _ = writeln!(
            w,
            "## Ratios at a glance\n\n![greenweave's speed-up over each peer, log scale]({CHART})\n\n\
             Each bar is a peer's median time ÷ greenweave's median time in the same group \
             (for the servers, greenweave's throughput ÷ the peer's): right of 1× greenweave \
             is faster. A black tick marks the goal where there is one.\n"
        );
    }

    for group in GROUPS {
        render_group(w, group, figures);
    }
    render_memory(w, figures.memory);
    code_size::render(w, figures.code_size);
    md
}

/// One group's section: functions, medians, ratios, system calls, goals.
fn render_group(w: &mut String, group: &Group, figures: &Figures) {
    let estimates = figures.estimates;
    let _ = writeln!(w, "## {} (`{}`)\n", group.title, group.name);
    let _ = writeln!(
        w,
        "`cargo bench --bench {}`. One iteration: {}. A ratio column gives how many times \
         faster that greenweave function is than the row's (the row's median ÷ its \
         median; below 1 it is slower). \"(noisy)\": the confidence interval is wider \
         than {:.0} % of the median.\n",
        group.bench,
        group.iteration,
        NOISY * 100.0
    );
    let rate = match group.unit {
        Unit::Time => None,
        Unit::Rate(what) => Some(what),
    };
    let mut header = String::from("| Function | What | Median | 95 % CI of the median |");
    let mut rule = String::from("|---|---|---|---|");
    if let Some(what) = rate {
        let _ = write!(header, " {what} |");
        rule.push_str("---|");
    }
    for subject in group.subjects {
        let _ = write!(header, " `{subject}` ratio |");
        rule.push_str("---|");
    }
    let _ = writeln!(w, "{header}\n{rule}");
    for &(function, what) in group.functions {
        let e = estimates.get(group.name, function);
        let mut row = format!("| `{function}` | {what} |");
        match e {
            Some(e) => {
                let noisy = if (e.upper_ns - e.lower_ns) > NOISY * e.median_ns {
                    " (noisy)"
                } else {
                    ""
                };
                let _ = write!(
                    row,
                    " {} | {} – {}{noisy} |",
                    format_ns(e.median_ns),
                    format_ns(e.lower_ns),
                    format_ns(e.upper_ns)
                );
                if rate.is_some() {
                    let _ = write!(row, " {} |", format_count(1e9 / e.median_ns));
                }
            }
            None => {
                row.push_str(" not measured | |");
                if rate.is_some() {
                    row.push_str(" |");
                }
            }
        }
        for subject in group.subjects {
            let cell = if !group.compares(subject, function) {
                "—".to_owned()
            } else {
                estimates
                    .speedup(group.name, subject, function)
                    .map_or_else(|| "—".to_owned(), format_ratio)
            };
            let _ = write!(row, " {cell} |");
        }
        let _ = writeln!(w, "{row}");
    }
    if SYSCALL_GROUPS.contains(&group.name) {
        interleaved::render(
            w,
            group.name,
            group.functions,
            group.subjects,
            figures.interleaved,
        );
        syscalls::render(w, group.name, group.functions, figures.syscalls);
    }
    let goals: Vec<&Goal> = GOALS
        .iter()
        .filter(|g| match g.check {
            Check::MaxNs { group: name, .. }
            | Check::MinSpeedup { group: name, .. }
            | Check::MaxExtraNs { group: name, .. }
            | Check::MinSideBySideSpeedup { group: name, .. }
            | Check::MaxSyscalls { group: name, .. } => name == group.name,
            Check::MinLiveGreenlets(_) => false,
        })
        .collect();
    if !goals.is_empty() {
        let _ = writeln!(w, "\nGoals:\n");
        for goal in goals {
            let result = evaluate(goal, figures);
            let measured = result.as_ref().map_or("no data", |(t, _)| t.as_str());
            let _ = writeln!(
                w,
                "- {}: {measured}: {}",
                goal.text,
                met_cell(result.as_ref())
            );
        }
    }
    let _ = writeln!(w);
}

/// The memory table from `examples/memory_table`'s JSON.
fn render_memory(w: &mut String, memory: Option<&Value>) {
    let _ = writeln!(w, "## Scale and memory (`examples/memory_table`)\n");
    let Some(memory) = memory else {
        let _ = writeln!(
            w,
            "Not measured: `cargo run --release --example memory_table` writes \
             `target/memory_table.json`.\n"
        );
        return;
    };
    let _ = writeln!(
        w,
        "Each row runs in a child process of its own: N tasks that each park at once on a \
         shared wait object (greenweave: `sync::Event`; tokio: `Notify`, `current_thread`; \
         may: a `may::sync::mpmc` channel, one worker; OS threads: `Mutex` + `Condvar`, \
         default 2 MiB stacks). RSS per task is (RSS with all parked − RSS before) ÷ N, \
         from `/proc/self/statm`: user-space memory only (an OS thread's kernel stack is \
         not in it). Mappings are the lines of `/proc/self/maps` with all parked (the \
         kernel's limit, `vm.max_map_count`, is {}). Spawn is until all are parked; total \
         is until all have been woken and finished.\n",
        memory["vm_max_map_count"]
            .as_u64()
            .map_or("unknown".to_owned(), |m| format_count(m as f64))
    );
    let _ = writeln!(
        w,
        "| Peer | Tasks | RSS per task | Virtual per task | Mappings | Spawn | Total |\n\
         |---|---|---|---|---|---|---|"
    );
    for row in memory["rows"].as_array().into_iter().flatten() {
        let peer = row["peer"].as_str().unwrap_or("?");
        let n = row["n"].as_f64().map_or("?".to_owned(), format_count);
        if row["ok"].as_bool() == Some(true) {
            let f = |key: &str| row[key].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                w,
                "| {peer} | {n} | {} | {} | {} | {:.1} ms | {:.1} ms |",
                format_bytes(f("rss_per_task")),
                format_bytes(f("virt_per_task")),
                format_count(f("maps_parked")),
                f("spawn_ms"),
                f("total_ms"),
            );
        } else {
            let reached = row["reached"].as_f64().map_or("?".to_owned(), format_count);
            let maps = row["maps_at_failure"].as_f64().map_or(String::new(), |m| {
                format!(" with {} mappings", format_count(m))
            });
            let error = row["error"].as_str().unwrap_or("unknown error");
            let _ = writeln!(
                w,
                "| {peer} | {n} | failed after {reached}{maps}: `{}` | | | | |",
                error.replace('|', "\\|")
            );
        }
    }
    let live = memory["max_live_greenlets"].as_u64();
    let tried = memory["max_live_tried"].as_u64();
    let _ = writeln!(
        w,
        "\nMost live greenlets reached: **{}** (tried up to {}; goal ≥ 100,000).\n",
        live.map_or("none".to_owned(), |l| format_count(l as f64)),
        tried.map_or("?".to_owned(), |t| format_count(t as f64)),
    );
}

#[cfg(test)]
mod tests {
    use super::{format_count, format_ns};

    #[test]
    fn formats() {
        assert_eq!(format_ns(2.534), "2.53 ns");
        assert_eq!(format_ns(30.08), "30.1 ns");
        assert_eq!(format_ns(19_470.0), "19.5 µs");
        assert_eq!(format_ns(1_234_567.0), "1.23 ms");
        assert_eq!(format_count(90_818.4), "90,818");
        assert_eq!(format_count(999.0), "999");
        assert_eq!(format_count(1_000_000.0), "1,000,000");
    }
}
