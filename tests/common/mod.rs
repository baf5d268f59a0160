//! A throwaway PostgreSQL server for the tests: `initdb` into a fresh temporary
//! directory, `pg_ctl start` on a free loopback port with trust authentication, and
//! stop + delete when the guard is dropped (also when the test fails).
//!
//! The server binaries are looked up under `/usr/lib/postgresql/*/bin` (Debian's
//! `postgresql` package; `.ci/run` installs it). PostgreSQL refuses to run as root, so
//! under root the server runs as the `postgres` user the package creates.

use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running server; dropping it stops the server and deletes its files.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The user the server runs as, when it is not the current one.
    run_as: Option<&'static str>,
}

const INSTALL_HINT: &str = "PostgreSQL is not installed: `DEBIAN_FRONTEND=noninteractive \
     apt-get install -y postgresql` (Debian; .ci/run does it) provides \
     /usr/lib/postgresql/*/bin/{initdb,pg_ctl}";

impl PgServer {
    /// Starts a server, or returns `None` (saying why on stderr) when PostgreSQL is not
    /// installed and `CI` is not set.
    ///
    /// # Panics
    ///
    /// When PostgreSQL is not installed and `CI` is set; when the server cannot start.
    pub fn start() -> Option<PgServer> {
        let Some(bin) = find_bin_dir() else {
            assert!(std::env::var_os("CI").is_none(), "{INSTALL_HINT}");
            eprintln!("skipping: {INSTALL_HINT}");
            return None;
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "greenweave-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let run_as = if output("id", &["-u"]) == "0" {
            let uid = output("id", &["-u", "postgres"]).parse().unwrap();
            let gid = output("id", &["-g", "postgres"]).parse().unwrap();
            chown(&dir, Some(uid), Some(gid)).unwrap();
            Some("postgres")
        } else {
            None
        };
        // Bind-then-release finds a port that is free now; a clash makes `pg_ctl` fail
        // loudly below, never silently.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = PgServer {
            dir,
            bin,
            port,
            run_as,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=120",
            server.dir.display()
        );
        let log = server.dir.join("server.log").display().to_string();
        let log_path = PathBuf::from(&log);
        if let Err(err) = server.try_run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
            ],
        ) {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("cannot start PostgreSQL: {err}\nserver log:\n{log}");
        }
        Some(server)
    }

    /// The connection string (trust authentication, no password).
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=10",
            self.port
        )
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        if let Err(err) = self.try_run(tool, args) {
            panic!("{err}");
        }
    }

    /// Runs one of the server's tools, as the server's user.
    fn try_run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let tool = self.bin.join(tool);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&tool);
                c
            }
            None => Command::new(&tool),
        };
        let out = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|err| format!("cannot run {}: {err}", tool.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {args:?} failed ({}):\n{}{}",
                tool.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        if let Err(err) = self.try_run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]) {
            eprintln!("warning: {err}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb` and `pg_ctl`.
fn find_bin_dir() -> Option<PathBuf> {
    let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    versions
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            let usable = ["initdb", "pg_ctl"]
                .iter()
                .all(|tool| Path::new(&bin).join(tool).is_file());
            usable.then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

/// The trimmed standard output of a command that must succeed.
fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
