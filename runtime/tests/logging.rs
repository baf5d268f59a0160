//! What greenweave reports goes through `log` on the documented targets, and the
//! monitor falls back to standard error when no logger is set (checked in a child
//! process, which also reads `GREENWEAVE_MONITOR`).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use greenweave_runtime::net::TcpStream;
use greenweave_runtime::server::StreamServer;
use greenweave_runtime::{Builder, sleep, spawn};

#[path = "common/cpu.rs"]
mod cpu;
use cpu::spin_without_yielding;

const CHILD_ENV: &str = "GREENWEAVE_LOGGING_CHILD";

struct Capture(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push((
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

static LOG: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn a_handler_panic_and_the_server_life_cycle_are_logged_on_greenweave_net() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    log::set_logger(&LOG).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    let server = StreamServer::bind("127.0.0.1:0", |_conn: TcpStream, _peer| {
        panic!("the handler fails");
    })
    .unwrap()
    .name("logged");
    let addr = server.listen().unwrap();
    server.start().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The handler panics and its connection is closed: end of stream.
    assert_eq!(client.read(&mut [0; 8]).unwrap(), 0);
    server.stop(Duration::from_secs(1));
    let records = LOG.0.lock().unwrap().clone();
    let net: Vec<_> = records
        .iter()
        .filter(|(_, target, _)| target == "greenweave::net")
        .collect();
    assert!(
        net.iter().any(|(level, _, msg)| *level == log::Level::Error
            && msg.contains("logged: the handler of 127.0.0.1:")
            && msg.contains("panicked (the handler fails); connection closed")),
        "{records:#?}"
    );
    assert!(
        net.iter().any(|(level, _, msg)| *level == log::Level::Debug
            && msg.starts_with("logged: accepting on 127.0.0.1:")),
        "{records:#?}"
    );
    assert!(
        net.iter()
            .any(|(_, _, msg)| msg.starts_with("logged: stopping;")),
        "{records:#?}"
    );
}

/// The child: no logger; `GREENWEAVE_MONITOR` as the parent set it.
#[test]
fn child_stalls_under_the_environment_monitor() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let waiting = spawn(|| sleep(Duration::from_millis(1)));
    Builder::new()
        .name("child-spinner")
        .spawn(|| spin_without_yielding(Duration::from_millis(300)))
        .join()
        .unwrap();
    waiting.join().unwrap();
    // Reports what it saw, the stall's end included, before it returns.
    greenweave_runtime::monitor::stop();
    std::io::stderr().flush().unwrap();
}

fn run_child(monitor: &str) -> String {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let out = Command::new(exe)
        .env(CHILD_ENV, "1")
        .env("GREENWEAVE_MONITOR", monitor)
        .args([
            "--exact",
            "child_stalls_under_the_environment_monitor",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("the test binary runs again");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn greenweave_monitor_reports_on_stderr_without_a_logger() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let stderr = run_child("50ms");
    let stalls = stderr.matches("without switching").count();
    assert_eq!(stalls, 1, "{stderr}");
    assert!(
        stderr.contains(
            "[greenweave::monitor WARN] thread 'child_stalls_under_the_environment_monitor'"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("greenlet 'child-spinner'"), "{stderr}");
    assert!(stderr.contains("spin_without_yielding"), "{stderr}");
    assert!(stderr.contains("ended after about"), "{stderr}");
}

#[test]
fn a_bad_greenweave_monitor_value_is_reported_and_ignored() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let stderr = run_child("fast");
    assert!(
        stderr.contains("GREENWEAVE_MONITOR=\"fast\" ignored")
            && stderr.contains("give a threshold such as 100ms"),
        "{stderr}"
    );
    assert!(!stderr.contains("without switching"), "{stderr}");
}
