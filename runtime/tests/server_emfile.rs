//! A `StreamServer` out of file descriptors logs, backs off and recovers.
//!
//! This binary holds a single test: it lowers the process's open-files limit, which
//! would break tests running in parallel threads.

#[path = "common/valgrind.rs"]
mod valgrind;

use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use greenweave_runtime::net::TcpStream;
use greenweave_runtime::server::StreamServer;
use greenweave_runtime::{sleep, yield_now};

/// Collects the warnings the server logs.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static LOG: Capture = Capture(Mutex::new(Vec::new()));

fn warnings() -> Vec<String> {
    LOG.0.lock().unwrap().clone()
}

fn nofile_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0);
    limit
}

fn set_nofile_limit(limit: &libc::rlimit) {
    // SAFETY: setrlimit only reads the struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) };
    assert_eq!(rc, 0);
}

#[test]
fn accept_out_of_fds_is_logged_and_backed_off_and_the_server_recovers() {
    if valgrind::skip_under_valgrind(
        "Valgrind keeps file descriptors of its own and refuses setrlimit(RLIMIT_NOFILE)",
    ) {
        return;
    }
    log::set_logger(&LOG).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    yield_now(); // this thread's hub exists before the limit drops

    let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _| {
        let mut b = [0];
        conn.read_exact(&mut b).unwrap();
        conn.write_all(&b).unwrap();
    })
    .unwrap();
    let addr = server.listen().unwrap();
    // Three clients wait in the backlog (the kernel completes their handshakes).
    let mut clients: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();

    // Use up every fd below a lowered limit.
    let original = nofile_limit();
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    set_nofile_limit(&libc::rlimit {
        rlim_cur: highest + 8,
        rlim_max: original.rlim_max,
    });
    let mut fillers = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        fillers.push(f);
    }
    assert!(!fillers.is_empty());

    server.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while warnings().len() < 3 && Instant::now() < deadline {
        sleep(Duration::from_millis(5));
    }
    let seen = warnings();
    assert!(seen.len() >= 3, "the server kept retrying: {seen:?}");
    assert!(seen[0].contains("accept failed"), "{}", seen[0]);
    assert!(seen[0].contains("Too many open files"), "{}", seen[0]);
    assert!(seen[0].ends_with("retrying in 10ms"), "{}", seen[0]);
    assert!(
        seen[1].ends_with("retrying in 20ms"),
        "backs off: {}",
        seen[1]
    );
    assert!(
        seen[2].ends_with("retrying in 40ms"),
        "backs off: {}",
        seen[2]
    );
    assert!(server.is_running(), "the server did not give up");

    drop(fillers);
    set_nofile_limit(&original);
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client.write_all(&[i as u8]).unwrap();
        let mut b = [0];
        client.read_exact(&mut b).unwrap();
        assert_eq!(b, [i as u8], "served once fds were available again");
    }
    server.stop(Duration::from_secs(5));
}
