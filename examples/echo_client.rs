//! A load generator for `echo_server`: many concurrent connections, each a greenlet,
//! all on one OS thread, every echoed byte verified.
//!
//! The seed's client sends a line typed at a prompt and prints the reply; this one
//! sends generated data instead, from `--connections` greenlets at once.
//!
//! ```text
//! echo_client [ADDR]          server address (default 127.0.0.1:7000)
//!   --connections N           concurrent connections (default 100)
//!   --messages M              messages per connection (default 100)
//!   --size B                  bytes per message (default 1024)
//!   --spawn-server            if nothing listens at ADDR, start an echo server in
//!                             this process (on the same thread) first
//! ```
//!
//! Each connection has a writer greenlet sending its M messages while the connection's
//! own greenlet reads the echo and compares it with what was sent. The last line gives
//! the throughput; the exit status is 1 if any connection failed or any byte differed.
//!
//! `cargo run --release --example echo_client -- --spawn-server --connections 100`
//! printed (MB/s counts the verified bytes, one direction):
//!
//! ```text
//! nothing listens at 127.0.0.1:7000: started an echo server in this process
//! 100 connections x 100 messages x 1024 bytes: all 10240000 bytes verified
//! 100 connections, 10000 messages in 0.085 s: 120.9 MB/s, 118102 msgs/s
//! ```

use std::cell::Cell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use clap::Parser;
use greenweave::net::TcpStream;
use greenweave::server::StreamServer;

#[path = "common/cli.rs"]
mod cli;

/// The most memory the connections' message buffers may take together (each holds
/// three messages: the one written, the one read and the expected one).
const MAX_BUFFERS: u64 = 4 << 30;

/// Concurrent echo clients that verify every byte.
#[derive(Parser, Debug)]
struct Args {
    /// Server address.
    #[arg(default_value = "127.0.0.1:7000")]
    addr: String,
    /// Concurrent connections (1 to 100000).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Messages per connection (1 to 1000000000).
    #[arg(long, value_name = "M", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000_000))]
    messages: u32,
    /// Bytes per message (1 to 16 MiB; with --connections, at most 4 GiB of buffers).
    #[arg(long, value_name = "B", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16 << 20))]
    size: u32,
    /// Start an in-process echo server if nothing listens at ADDR.
    #[arg(long)]
    spawn_server: bool,
}

/// Deterministic data for one message (xorshift64).
fn message(connection: usize, index: usize, size: usize) -> Vec<u8> {
    let mut x = ((connection as u64) << 32 | index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn echo_handler(mut conn: TcpStream, _peer: SocketAddr) {
    let mut buf = vec![0; 16 * 1024];
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// One connection: returns the bytes verified, or what went wrong.
fn run_connection(addr: SocketAddr, id: usize, args: (usize, usize)) -> Result<u64, String> {
    let (messages, size) = args;
    let stream = Rc::new(TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?);
    let s = stream.clone();
    let writer = greenweave::spawn(move || -> io::Result<()> {
        for m in 0..messages {
            (&*s).write_all(&message(id, m, size))?;
        }
        s.shutdown(Shutdown::Write)
    });
    let mut got = vec![0; size];
    let mut verified = 0;
    for m in 0..messages {
        (&*stream)
            .read_exact(&mut got)
            .map_err(|e| format!("message {m}: {e}"))?;
        let want = message(id, m, size);
        if let Some(at) = got.iter().zip(&want).position(|(a, b)| a != b) {
            writer.kill();
            return Err(format!("message {m}: byte {at} differs"));
        }
        verified += size as u64;
    }
    writer
        .join()
        .map_err(|e| format!("writer: {e}"))?
        .map_err(|e| format!("write: {e}"))?;
    match (&*stream).read(&mut [0]) {
        Ok(0) => Ok(verified),
        Ok(_) => Err("the server sent more than was echoed".to_owned()),
        Err(e) => Err(format!("closing: {e}")),
    }
}

/// `HOST:PORT` to one address (IPv4 preferred, where the default server listens).
fn resolve(addr: &str) -> SocketAddr {
    let Some((host, port)) = addr
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse().ok()?)))
    else {
        eprintln!("ADDR must be HOST:PORT, not {addr:?}");
        std::process::exit(2);
    };
    match greenweave::net::lookup_host(host, port, None) {
        Ok(addrs) if !addrs.is_empty() => addrs
            .iter()
            .find(|a| a.is_ipv4())
            .copied()
            .unwrap_or(addrs[0]),
        Ok(_) => {
            eprintln!("{host} has no addresses");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("cannot resolve {host}: {e}");
            std::process::exit(2);
        }
    }
}

/// Starts an echo server at `addr` if nobody listens there and `--spawn-server` says so.
fn ensure_server(addr: SocketAddr, spawn_server: bool) -> Option<StreamServer> {
    match TcpStream::connect(addr) {
        Ok(_) => None,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused && spawn_server => {
            let started = StreamServer::bind(addr, echo_handler)
                .and_then(|server| server.start().map(|()| server));
            match started {
                Ok(server) => {
                    println!("nothing listens at {addr}: started an echo server in this process");
                    Some(server)
                }
                Err(e) => {
                    eprintln!("cannot start an echo server at {addr}: {e}");
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("cannot connect to {addr}: {e} (use --spawn-server to start one here)");
            std::process::exit(1);
        }
    }
}

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    let args = Args::parse();
    let buffers = 3 * u64::from(args.size) * u64::from(args.connections);
    if buffers > MAX_BUFFERS {
        cli::invalid(format!(
            "--connections {} x --size {} needs {buffers} bytes of message buffers; \
             at most {MAX_BUFFERS} are allowed",
            args.connections, args.size
        ));
    }
    let (connections, messages, size) = (
        args.connections as usize,
        args.messages as usize,
        args.size as usize,
    );
    let addr = resolve(&args.addr);
    let server = ensure_server(addr, args.spawn_server);
    let failures = Rc::new(Cell::new(0usize));
    let start = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|id| {
            let failures = failures.clone();
            let shape = (messages, size);
            greenweave::spawn(move || match run_connection(addr, id, shape) {
                Ok(bytes) => bytes,
                Err(e) => {
                    eprintln!("connection {id}: {e}");
                    failures.set(failures.get() + 1);
                    0
                }
            })
        })
        .collect();
    let verified: u64 = greenweave::joinall(clients)
        .into_iter()
        .map(|r| r.expect("client greenlets do not panic"))
        .sum();
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(server) = server {
        server.stop(std::time::Duration::from_secs(1));
    }
    let total_msgs = connections * messages;
    if failures.get() > 0 {
        eprintln!(
            "{} of {} connections failed",
            failures.get(),
            args.connections
        );
    } else {
        println!(
            "{} connections x {} messages x {} bytes: all {verified} bytes verified",
            args.connections, args.messages, args.size
        );
    }
    println!(
        "{} connections, {total_msgs} messages in {elapsed:.3} s: {:.1} MB/s, {:.0} msgs/s",
        args.connections,
        verified as f64 / 1e6 / elapsed,
        total_msgs as f64 / elapsed
    );
    if failures.get() > 0 {
        std::process::exit(1);
    }
}
