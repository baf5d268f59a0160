//! The examples' command lines: zero, NaN, huge and contradictory values are a one-line
//! error and a nonzero exit status, never a panic, a backtrace or an allocation abort.
//!
//! Runs the example binaries (built first with one `cargo build --example ...`, a no-op
//! when `cargo test` already built them, so a run never tests stale binaries).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const EXAMPLES: [&str; 7] = [
    "downloader",
    "echo_client",
    "echo_server",
    "folder_copy",
    "scale",
    "switch_profile",
    "udp_chat",
];

/// The path of example `name`, after one `cargo build` of them all per run.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        // Without the variables cargo set for this test: some build scripts rerun when
        // they change (ring's `CARGO_PKG_*`), which would rebuild the examples here and
        // again in the next plain `cargo build`.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let set_for_tests = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|p| key.starts_with(p))
                || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*key);
            if set_for_tests {
                build.env_remove(&*key);
            }
        }
        build.args(["build", "--quiet", "--manifest-path"]);
        build.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if !cfg!(debug_assertions) {
            // The profile this test was built with, whose examples it runs.
            build.arg("--release");
        }
        for e in EXAMPLES {
            build.args(["--example", e]);
        }
        assert!(build.status().expect("run cargo").success(), "cargo build");
    });
    assert!(EXAMPLES.contains(&name));
    // target/debug/deps/examples_cli-HASH -> target/debug/examples/NAME
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

/// Runs example `name` with `args` (stdin closed) and checks it failed with one error
/// line (clap may add its "For more information, try '--help'." hint) that contains
/// each of `expect`.
#[track_caller]
fn assert_fails_cleanly(name: &str, args: &[&str], expect: &[&str]) {
    let out = Command::new(example(name))
        .args(args)
        .stdin(Stdio::null())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run the example");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!("{name} {}", args.join(" "));
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "{what}: exits nonzero (not by a signal): {:?}\n{stderr}",
        out.status
    );
    assert_ne!(out.status.code(), Some(101), "{what}: a panic\n{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .filter(|l| !l.starts_with("Usage:"))
        .collect();
    assert_eq!(lines.len(), 1, "{what}: one error line, got:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{what}: no panic:\n{stderr}");
    for e in expect {
        assert!(
            lines[0].contains(e),
            "{what}: the error names {e:?}:\n{stderr}"
        );
    }
}

#[test]
fn echo_server_rejects_bad_values() {
    let n = "echo_server";
    assert_fails_cleanly(n, &["--max-conns", "0"], &["--max-conns", "0"]);
    assert_fails_cleanly(n, &["--workers", "0"], &["--workers", "0"]);
    for secs in ["nan", "inf", "1e300", "0", "-1", "1e-300", "soon"] {
        let arg = format!("--duration={secs}");
        assert_fails_cleanly(n, &[&arg], &["--duration", secs]);
        let arg = format!("--stats={secs}");
        assert_fails_cleanly(n, &[&arg], &["--stats", secs]);
    }
}

#[test]
fn echo_client_rejects_bad_values() {
    let n = "echo_client";
    for flag in ["--connections", "--messages", "--size"] {
        assert_fails_cleanly(n, &[flag, "0"], &[flag, "0"]);
    }
    assert_fails_cleanly(n, &["--size", "100000000000"], &["--size", "100000000000"]);
    // Each allowed alone, too much memory together.
    let both = ["--size", "16000000", "--connections", "1000"];
    assert_fails_cleanly(n, &both, &["--connections", "--size", "bytes"]);
}

#[test]
fn downloader_rejects_bad_values() {
    let n = "downloader";
    for secs in ["nan", "1e300", "0", "-5"] {
        let arg = format!("--timeout={secs}");
        assert_fails_cleanly(n, &[&arg], &["--timeout", secs]);
    }
    assert_fails_cleanly(n, &["--files", "0"], &["--files", "0"]);
    assert_fails_cleanly(n, &["--files", "100000000"], &["--files"]);
    assert_fails_cleanly(n, &["--concurrency", "0"], &["--concurrency"]);
    let file = std::env::current_exe().unwrap(); // any existing file
    let file = file.to_str().unwrap();
    assert_fails_cleanly(n, &["--out", file], &["--out", file, "file"]);
}

#[test]
fn folder_copy_rejects_bad_folders() {
    let n = "folder_copy";
    let dir = std::env::temp_dir().join(format!("greenweave-cli-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/a"), b"keep me").unwrap();
    std::fs::write(dir.join("file"), b"").unwrap();
    let p = |s: &str| dir.join(s).to_str().unwrap().to_owned();
    let (src, file) = (p("src"), p("file"));
    assert_fails_cleanly(n, &[&src, &file], &["DST", &file, "file"]);
    assert_fails_cleanly(n, &[&file, &p("dst")], &["SRC", "not a folder"]);
    assert_fails_cleanly(n, &[&src, &src], &["same folder"]);
    assert_eq!(std::fs::read(dir.join("src/a")).unwrap(), b"keep me");
    assert_fails_cleanly(
        n,
        &[&src, &p("dst"), "--concurrency", "0"],
        &["--concurrency"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scale_udp_chat_and_switch_profile_reject_bad_values() {
    assert_fails_cleanly("scale", &["0"], &["'0'"]);
    assert_fails_cleanly("scale", &["many"], &["'many'"]);
    assert_fails_cleanly(
        "scale",
        &["10", "99999999999999999999"],
        &["99999999999999999999"],
    );
    assert_fails_cleanly("udp_chat", &["--peer", "no-port"], &["--peer", "no-port"]);
    assert_fails_cleanly("switch_profile", &["yield", "0"], &["N"]);
    assert_fails_cleanly("switch_profile", &["yield", "lots"], &["lots"]);
}
