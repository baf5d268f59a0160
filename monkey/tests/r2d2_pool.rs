//! An `r2d2` connection pool (parking_lot inside) shared by greenlets under
//! `patch_all`. Its wait for a free connection is a parking_lot condvar wait, which
//! greenlets cannot share (see the `futex` module docs), so it blocks the thread. The
//! documented recipe: take connections on the thread pool (`spawn_blocking`); the
//! connection comes back to the greenlet, which uses it cooperatively and drops it,
//! which returns it to the pool without waiting.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::ticker;
use greenweave_runtime::threadpool::spawn_blocking;
use greenweave_runtime::{joinall, spawn};

/// Connections to a line-echo server: a real `r2d2::ManageConnection`.
struct EchoManager {
    addr: std::net::SocketAddr,
}

impl r2d2::ManageConnection for EchoManager {
    type Connection = BufReader<TcpStream>;
    type Error = std::io::Error;

    fn connect(&self) -> std::io::Result<Self::Connection> {
        Ok(BufReader::new(TcpStream::connect(self.addr)?))
    }

    fn is_valid(&self, conn: &mut Self::Connection) -> std::io::Result<()> {
        ask(conn, "ping").map(drop)
    }

    fn has_broken(&self, _conn: &mut Self::Connection) -> bool {
        false
    }
}

/// One request on a connection: a line out, the echoed line back.
fn ask(conn: &mut BufReader<TcpStream>, line: &str) -> std::io::Result<String> {
    writeln!(conn.get_mut(), "{line}")?;
    let mut answer = String::new();
    conn.read_line(&mut answer)?;
    Ok(answer.trim_end().to_owned())
}

/// A line-echo server on plain OS threads (a thread per connection), which waits
/// `delay` before each answer.
fn echo_server(delay: Duration) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let conn = conn.unwrap();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(conn.try_clone().unwrap());
                let mut out = conn;
                let mut line = String::new();
                while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line.trim_end() != "ping" {
                        std::thread::sleep(delay);
                    }
                    if out.write_all(line.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[test]
fn greenlets_share_a_small_r2d2_pool_by_taking_connections_on_the_thread_pool() {
    greenweave_monkey::patch_all();
    let (ticks, tick) = ticker();
    let pool = r2d2::Pool::builder()
        .max_size(2)
        .connection_timeout(Duration::from_secs(20))
        .build(EchoManager {
            addr: echo_server(Duration::from_millis(50)),
        })
        .unwrap();
    let start = Instant::now();
    let users: Vec<_> = (0..10)
        .map(|i| {
            let pool = pool.clone();
            spawn(move || {
                // Waiting for a free connection happens on a pool thread...
                let mut conn = spawn_blocking(move || pool.get()).unwrap();
                // ...and the request on it in this greenlet (the socket hooks park it);
                // dropping `conn` then gives it back to the pool (no wait).
                ask(&mut conn, &format!("request {i}")).unwrap()
            })
        })
        .collect();
    let answers: Vec<String> = joinall(users).into_iter().map(Result::unwrap).collect();
    let elapsed = start.elapsed();
    let expected: Vec<String> = (0..10).map(|i| format!("request {i}")).collect();
    assert_eq!(answers, expected);
    // Two connections, ten 50 ms requests: about 250 ms; serial waits for a connection
    // on the hub thread would spend the 20 s connection timeout.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    common::assert_ticked(
        &ticks,
        50,
        &format!("greenlets took and returned pooled connections ({elapsed:?})"),
    );
    tick.kill();
}
