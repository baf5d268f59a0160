//! Project chores, run with `cargo run --release -p xtask -- TASK`.
//!
//! Tasks:
//!
//! - `bench-report [--skip-memory] [--out FILE]`: writes `BENCHMARKS.md` (or `FILE`)
//!   and `docs/bench-ratios.svg` from the figures of the last benchmark run. It reads
//!   criterion's saved estimates (`target/criterion/<group>/<function>/new/estimates.json`,
//!   the median point estimate), runs `examples/memory_table` (which writes
//!   `target/memory_table.json`; with `--skip-memory` the saved file is read instead),
//!   and renders one table per benchmark group with the ratio of greenweave to each peer
//!   and the project's goals beside them; the request–response groups also get the
//!   system calls per round trip the echo bench counted with `strace`
//!   (`target/reqresp_syscalls.json`, if it was written) and the clients' rates measured
//!   side by side (`target/reqresp_interleaved.json`), on which their ratio goals are
//!   judged; and it builds
//!   `examples/code_size` to report what an inlined `put` + `get` call site costs in
//!   code. It never edits by hand what it wrote: run it
//!   again to regenerate. The analysis lives in the hand-written `docs/bench-notes.md`.
//!
//! The usual sequence is
//!
//! ```sh
//! cargo bench --workspace && cargo run --release -p xtask -- bench-report
//! ```

mod chart;
mod code_size;
mod data;
mod interleaved;
mod machine;
mod report;
mod spec;
mod syscalls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `bench-report` was asked to do.
struct Options {
    /// Read the saved memory table instead of running the example.
    skip_memory: bool,
    /// Where the Markdown report goes.
    out: PathBuf,
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR` if set, else `<root>/target`).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

fn usage() -> ExitCode {
    eprintln!("usage: cargo run --release -p xtask -- bench-report [--skip-memory] [--out FILE]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        return usage();
    };
    if task != "bench-report" {
        return usage();
    }
    let root = workspace_root();
    let mut options = Options {
        skip_memory: false,
        out: root.join("BENCHMARKS.md"),
    };
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--skip-memory" => options.skip_memory = true,
            "--out" => match rest.next() {
                Some(path) => options.out = PathBuf::from(path),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    match report::bench_report(&root, &target_dir(&root), &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}
