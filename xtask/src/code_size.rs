//! The code-size table: what inlined blocking calls cost at their call sites.
//!
//! Builds `examples/code_size` in release and reads two symbol sizes from it with
//! binutils' `nm` (present wherever Rust links), plus the binary's `.text` size from
//! `size -A`. See that example's docs for what the probe functions contain.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// What the probe binary measured.
pub struct CodeSize {
    /// Bytes of `hundred_sites`: 100 `put` + `get` call sites.
    pub hundred_sites: u64,
    /// Bytes of `one_site`: one call site.
    pub one_site: u64,
    /// Bytes of the whole binary's `.text` section.
    pub text: u64,
}

impl CodeSize {
    /// Bytes one more `put` + `get` call site adds.
    pub fn per_site(&self) -> f64 {
        (self.hundred_sites as f64 - self.one_site as f64) / 99.0
    }
}

/// Builds the probe and measures it; `Err` says what was missing.
pub fn measure(root: &Path, target: &Path) -> Result<CodeSize, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--quiet", "--example", "code_size"])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building examples/code_size failed ({status})"));
    }
    let binary = target.join("release/examples/code_size");
    let symbols = run("nm", &["-S", "--defined-only", "-C"], &binary)?;
    let symbol = |name: &str| -> Result<u64, String> {
        symbols
            .lines()
            .find_map(|line| {
                let mut fields = line.split_whitespace();
                let (_addr, size, _kind) = (fields.next()?, fields.next()?, fields.next()?);
                let rest: Vec<&str> = fields.collect();
                let full = rest.join(" ");
                (full == format!("code_size::{name}"))
                    .then(|| u64::from_str_radix(size, 16).ok())
                    .flatten()
            })
            .ok_or_else(|| format!("no sized symbol code_size::{name} in {}", binary.display()))
    };
    let sections = run("size", &["-A"], &binary)?;
    let text = sections
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next()? == ".text").then(|| fields.next()?.parse().ok())?
        })
        .ok_or_else(|| format!("no .text section reported for {}", binary.display()))?;
    Ok(CodeSize {
        hundred_sites: symbol("hundred_sites")?,
        one_site: symbol("one_site")?,
        text,
    })
}

/// Runs a binutils tool on `binary` and returns its standard output.
fn run(tool: &str, args: &[&str], binary: &Path) -> Result<String, String> {
    let out = Command::new(tool)
        .args(args)
        .arg(binary)
        .output()
        .map_err(|e| format!("cannot run {tool} (binutils): {e}"))?;
    if !out.status.success() {
        return Err(format!("{tool} failed on {}", binary.display()));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{tool} printed non-UTF-8"))
}

/// The Markdown section for BENCHMARKS.md.
pub fn render(w: &mut String, size: Result<&CodeSize, &String>) {
    let _ = writeln!(w, "## Code size (`examples/code_size`)\n");
    match size {
        Ok(size) => {
            let _ = writeln!(
                w,
                "`Queue::put` and `Queue::get` are inlined down to the switch at every call \
                 site (docs/DESIGN-NOTES.md). The probe's `hundred_sites` writes out 100 \
                 `put` + `get` pairs and `one_site` one; their symbol sizes in the release \
                 binary give the bytes a call site costs.\n\n\
                 | Measure | Bytes |\n|---|---|\n\
                 | one `put` + `get` call site | {:.0} |\n\
                 | `hundred_sites` (100 sites) | {} |\n\
                 | `one_site` | {} |\n\
                 | whole probe binary, `.text` | {} |\n",
                size.per_site(),
                size.hundred_sites,
                size.one_site,
                size.text,
            );
        }
        Err(why) => {
            let _ = writeln!(w, "Not measured: {why}.\n");
        }
    }
}
