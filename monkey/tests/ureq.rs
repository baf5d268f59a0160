//! Unmodified `ureq` in greenlets after patch_all: many blocking HTTP requests at once
//! on one thread, against a greenweave `StreamServer` on the same hub (which can only
//! answer if the client's socket calls park instead of blocking the thread).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::valgrind::skip_under_valgrind;
use greenweave_runtime::net::TcpStream;
use greenweave_runtime::server::StreamServer;
use greenweave_runtime::{joinall, spawn};

/// The body served for `/N`: `N * 1009 % 200_000 + 1` bytes of a pattern of N.
fn body(n: u64) -> Vec<u8> {
    let len = (n * 1009 % 200_000 + 1) as usize;
    (0..len).map(|i| (i as u64 * 31 + n) as u8).collect()
}

/// Answers `GET /N` with [`body`] after `latency`, keeping the connection alive.
fn serve(conn: &TcpStream, latency: Duration) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let n: Option<u64> = line
            .split_ascii_whitespace()
            .nth(1)
            .and_then(|path| path.strip_prefix('/'))
            .and_then(|n| n.parse().ok());
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line.trim_end().is_empty() {
                break;
            }
        }
        greenweave_runtime::sleep(latency);
        let (status, payload) = match n {
            Some(n) => ("200 OK", body(n)),
            None => ("404 Not Found", Vec::new()),
        };
        let mut out = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        )
        .into_bytes();
        out.extend_from_slice(&payload);
        let mut writer = conn;
        writer.write_all(&out)?;
    }
}

/// A server on this thread's hub.
fn start_server(latency: Duration) -> (StreamServer, SocketAddr) {
    let server = StreamServer::bind("127.0.0.1:0", move |conn: TcpStream, _| {
        let _ = serve(&conn, latency);
    })
    .unwrap();
    let addr = server.listen().unwrap();
    server.start().unwrap();
    (server, addr)
}

fn agent() -> ureq::Agent {
    // Timeouts only as a safety net: a regression fails instead of hanging.
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(10)))
        .timeout_recv_body(Some(Duration::from_secs(10)))
        .max_idle_connections(200)
        .max_idle_connections_per_host(200)
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, ureq::Error> {
    agent
        .get(url)
        .call()?
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
}

#[test]
fn a_hundred_greenlets_get_with_ureq_at_once_on_one_thread() {
    greenweave_monkey::patch_all();
    let latency = Duration::from_millis(200);
    let (server, addr) = start_server(latency);
    let agent = agent();
    let start = Instant::now();
    let clients: Vec<_> = (0..100u64)
        .map(|n| {
            let (agent, url) = (agent.clone(), format!("http://{addr}/{n}"));
            spawn(move || (n, get(&agent, &url)))
        })
        .collect();
    for result in joinall(clients) {
        let (n, got) = result.unwrap();
        assert_eq!(got.unwrap(), body(n), "the body of /{n}");
    }
    let elapsed = start.elapsed();
    if !skip_under_valgrind("the wall-time bound on 100 overlapping requests") {
        assert!(
            elapsed < Duration::from_secs(2),
            "100 requests of 200 ms each took {elapsed:?}: they did not overlap"
        );
    }
    drop(agent); // closes its pooled connections, ending their handlers
    server.stop(Duration::from_secs(1));
}

#[test]
fn pooled_connections_are_reused_and_localhost_resolves_through_the_hook() {
    greenweave_monkey::patch_all();
    let (server, addr) = start_server(Duration::from_millis(20));
    let agent = agent();
    // Each greenlet makes three requests in a row: the later ones take connections
    // from ureq's pool (probed with a non-blocking read under ureq's lock).
    let clients: Vec<_> = (0..20u64)
        .map(|g| {
            let agent = agent.clone();
            let base = format!("http://localhost:{}", addr.port());
            spawn(move || {
                for k in 0..3 {
                    let n = g * 3 + k;
                    assert_eq!(get(&agent, &format!("{base}/{n}")).unwrap(), body(n));
                }
            })
        })
        .collect();
    joinall(clients).into_iter().for_each(|r| r.unwrap());
    // A 404 is an error, and the greenlet carries on.
    let missing = spawn(move || get(&agent, &format!("http://{addr}/missing")))
        .join()
        .unwrap();
    assert!(matches!(missing, Err(ureq::Error::StatusCode(404))));
    server.stop(Duration::from_secs(1));
}
