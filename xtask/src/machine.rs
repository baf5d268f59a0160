//! The machine the figures come from.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the report says about the machine and the code.
pub struct Machine {
    /// Logical CPUs (`nproc`).
    pub cpus: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `uname -r`.
    pub kernel: String,
    /// `rustc -V`.
    pub rustc: String,
    /// `git rev-parse --short HEAD`, with `+ uncommitted changes` if the tree is dirty.
    pub commit: String,
    /// The date the report was generated (UTC, `YYYY-MM-DD`).
    pub date: String,
}

/// The first line a command prints, or `"unknown"`.
fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Machine {
    /// Looks the machine up.
    pub fn detect() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(0, usize::from);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .take_while(|l| !l.trim().is_empty()) // the first CPU only
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_owned())
        };
        let mut cpu_model = field("model name").unwrap_or_else(|| "unknown".to_owned());
        if let (Some(family), Some(model)) = (field("cpu family"), field("model")) {
            let _ = write!(cpu_model, " (family {family}, model {model}");
            if let Some(mhz) = field("cpu MHz").and_then(|m| m.parse::<f64>().ok()) {
                let _ = write!(cpu_model, ", {:.1} GHz reported", mhz / 1000.0);
            }
            cpu_model.push(')');
        }
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let rustc = first_line(
            &std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()),
            &["-V"],
        );
        let mut commit = first_line("git", &["rev-parse", "--short", "HEAD"]);
        let dirty = Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty());
        if dirty {
            commit.push_str(" + uncommitted changes");
        }
        Machine {
            cpus,
            cpu_model,
            kernel,
            rustc,
            commit,
            date: utc(SystemTime::now(), false),
        }
    }
}

/// `time` as UTC `YYYY-MM-DD`, or `YYYY-MM-DD HH:MM` with `with_time`.
pub fn utc(time: SystemTime, with_time: bool) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if with_time {
        format!(
            "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
            rem / 3600,
            rem % 3600 / 60
        )
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::utc;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn civil_dates() {
        assert_eq!(utc(UNIX_EPOCH, true), "1970-01-01 00:00 UTC");
        // 2000-03-01 12:34 (after a century leap day).
        let t = UNIX_EPOCH + Duration::from_secs(951_914_040);
        assert_eq!(utc(t, true), "2000-03-01 12:34 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_164_800); // 2024-02-29
        assert_eq!(utc(t, false), "2024-02-29");
    }
}
