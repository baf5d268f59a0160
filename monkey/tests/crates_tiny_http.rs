//! Unmodified `tiny_http` with its handlers in greenlets after `patch_all`, serving
//! requests from another process (this test binary, re-run as the client).
//!
//! tiny_http accepts and parses on threads of its own (an accept thread and a pool,
//! no hub: their calls pass straight through) and hands each request over through a
//! `Mutex<VecDeque>` + `Condvar` queue: `Server::recv` is `Condvar::wait` on the
//! queue's condvar word, which the futex hook parks; the pool threads' `notify_one`
//! wakes one parked greenlet. `Request::respond` takes a std `Mutex` around the
//! socket and writes it (the socket hooks). The `thread::park` word is not involved
//! (it would be for pipelined requests on one connection, which the client does not
//! send).

mod common;

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::watch::{StallMeter, Watchdog};
use greenweave_runtime::{joinall, spawn};

/// Set in the child process: the address to send requests to.
const CLIENT_ENV: &str = "GREENWEAVE_TINY_HTTP_CLIENT_OF";
const REQUESTS: u64 = 200;
const HANDLERS: usize = 100;
const HANDLER_DELAY: Duration = Duration::from_millis(200);

/// The body answered for `/item/N`.
fn body_for(path: &str) -> String {
    format!("answer to {path}: {}\n", path.len() * 7919)
}

#[test]
fn greenlet_handlers_answer_200_requests_from_another_process() {
    if let Ok(addr) = std::env::var(CLIENT_ENV) {
        return run_client(&addr);
    }
    greenweave_monkey::patch_all();
    let _watchdog = Watchdog::arm(Duration::from_secs(60), "the tiny_http test");
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let addr = server.server_addr().to_ip().unwrap();
    let answered = Rc::new(Cell::new(0_u64));
    let handlers: Vec<_> = (0..HANDLERS)
        .map(|_| {
            let (server, answered) = (server.clone(), answered.clone());
            spawn(move || {
                // Err once the test unblocks it: the end of the run.
                while let Ok(request) = server.recv() {
                    std::thread::sleep(HANDLER_DELAY); // the time hook: a greenlet sleep
                    let reply = tiny_http::Response::from_string(body_for(request.url()));
                    request.respond(reply).unwrap();
                    answered.set(answered.get() + 1);
                }
            })
        })
        .collect();
    let meter = StallMeter::start();
    let start = Instant::now();
    // The child's waitpid and pipe reads park this greenlet (process and socket hooks).
    let client = Command::new(std::env::current_exe().unwrap())
        .args([
            "greenlet_handlers_answer_200_requests_from_another_process",
            "--exact",
            "--nocapture",
        ])
        .env(CLIENT_ENV, addr.to_string())
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let stall = meter.stop();
    assert!(
        client.status.success(),
        "the client failed: {}\n{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );
    assert_eq!(answered.get(), REQUESTS);
    if !common::valgrind::skip_under_valgrind("the 2 s wall-time bound") {
        assert!(
            elapsed < Duration::from_secs(2),
            "{REQUESTS} requests of {HANDLER_DELAY:?} on {HANDLERS} greenlets took {elapsed:?}"
        );
    }
    // Generous for a loaded machine (50 ms failed at load 8); a handler that blocked the thread would stall it for its whole 200 ms delay.
    if !common::valgrind::skip_under_valgrind("the bound on the hub's longest stall") {
        assert!(
            stall.gap < Duration::from_millis(150),
            "the hub stalled: {stall:?}"
        );
    }
    for _ in 0..HANDLERS {
        server.unblock(); // a notify_one from this greenlet to a parked one
    }
    joinall(handlers).into_iter().for_each(|r| r.unwrap());
}

/// The child: every request at once, one OS thread and connection each, each body
/// checked.
fn run_client(addr: &str) {
    let clients: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                let path = format!("/item/{n}");
                (path.clone(), get(&addr, &path))
            })
        })
        .collect();
    for client in clients {
        let (path, got) = client.join().unwrap();
        assert_eq!(got.unwrap(), body_for(&path), "the body of {path}");
    }
}

fn get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    assert!(line.starts_with("HTTP/1.1 200"), "{path}: {line:?}");
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(value) = header.strip_prefix("content-length:") {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length.expect("a Content-Length")];
    reader.read_exact(&mut body)?;
    Ok(String::from_utf8(body).unwrap())
}
