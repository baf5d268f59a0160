//! A build with `panic = "abort"` is refused at compile time with an error that names
//! the setting (kills, timeouts and dropped greenlets unwind; under abort each would end
//! the process).
//!
//! Runs `cargo check` of this crate with `-C panic=abort` in a target directory of its
//! own under the test's scratch directory (so the main build is not invalidated, and a
//! second run reuses the checked dependencies).

use std::process::Command;

#[test]
fn panic_abort_build_is_refused_with_a_clear_error() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let target = concat!(env!("CARGO_TARGET_TMPDIR"), "/panic-abort");
    let out = Command::new(cargo)
        .args(["check", "--lib", "--offline", "--quiet", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target)
        // Wins over RUSTFLAGS and any flags from config files.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Cpanic=abort")
        .output()
        .expect("run cargo check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a panic=abort build must not compile; cargo said:\n{stderr}"
    );
    assert!(
        stderr.contains("greenweave needs panic = \"unwind\"")
            && stderr.contains("panic = \"abort\""),
        "the error names the setting; cargo said:\n{stderr}"
    );
}
