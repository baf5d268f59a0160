//! The figures: criterion's saved estimates and the memory table's JSON.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use serde_json::Value;

/// One function's median from criterion.
#[derive(Clone, Copy, Debug)]
pub struct Estimate {
    /// Median time per iteration, nanoseconds.
    pub median_ns: f64,
    /// Lower bound of the median's 95 % confidence interval.
    pub lower_ns: f64,
    /// Upper bound of the median's 95 % confidence interval.
    pub upper_ns: f64,
    /// When criterion wrote the file (the end of that function's run).
    pub written: Option<SystemTime>,
}

/// Every estimate found, by `(group, function)`.
#[derive(Default)]
pub struct Estimates {
    by_name: HashMap<(String, String), Estimate>,
}

impl Estimates {
    /// Reads `<criterion_dir>/<group>/<function>/new/estimates.json` for every group and
    /// function named; missing files are simply absent.
    pub fn load<'a>(
        criterion_dir: &Path,
        names: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Estimates {
        let mut by_name = HashMap::new();
        for (group, function) in names {
            let path = criterion_dir
                .join(group)
                .join(function)
                .join("new")
                .join("estimates.json");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<Value>(&text) else {
                eprintln!("bench-report: {} is not JSON; skipped", path.display());
                continue;
            };
            let median = &json["median"];
            let (Some(median_ns), Some(lower_ns), Some(upper_ns)) = (
                median["point_estimate"].as_f64(),
                median["confidence_interval"]["lower_bound"].as_f64(),
                median["confidence_interval"]["upper_bound"].as_f64(),
            ) else {
                eprintln!("bench-report: {} has no median; skipped", path.display());
                continue;
            };
            let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            by_name.insert(
                (group.to_owned(), function.to_owned()),
                Estimate {
                    median_ns,
                    lower_ns,
                    upper_ns,
                    written,
                },
            );
        }
        Estimates { by_name }
    }

    /// The estimate of `group/function`, if it was measured.
    pub fn get(&self, group: &str, function: &str) -> Option<Estimate> {
        self.by_name
            .get(&(group.to_owned(), function.to_owned()))
            .copied()
    }

    /// `peer`'s median ÷ `subject`'s median: how many times faster `subject` is.
    pub fn speedup(&self, group: &str, subject: &str, peer: &str) -> Option<f64> {
        let (s, p) = (self.get(group, subject)?, self.get(group, peer)?);
        (s.median_ns > 0.0).then(|| p.median_ns / s.median_ns)
    }

    /// The oldest and newest time an estimate was written.
    pub fn written_span(&self) -> Option<(SystemTime, SystemTime)> {
        let times = self.by_name.values().filter_map(|e| e.written);
        let min = times.clone().min()?;
        Some((min, times.max()?))
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Runs `examples/memory_table` (unless `skip`) so that it writes `json_path`, then reads
/// that file. `None` if there is no table to read.
pub fn memory_table(root: &Path, json_path: &Path, skip: bool) -> Option<Value> {
    if !skip {
        eprintln!("bench-report: running examples/memory_table (a few seconds)");
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(root)
            .args([
                "run",
                "--release",
                "--quiet",
                "--example",
                "memory_table",
                "--",
            ])
            .arg("--json")
            .arg(json_path)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("bench-report: memory_table failed ({s}); using any saved table"),
            Err(e) => eprintln!("bench-report: cannot run cargo ({e}); using any saved table"),
        }
    }
    read_json(json_path)
}

/// The JSON saved at `path`; `None` if there is nothing (or nothing readable) there.
pub fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("bench-report: {} is not JSON ({e})", path.display());
            None
        }
    }
}
