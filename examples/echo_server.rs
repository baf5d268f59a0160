//! The seed's threaded echo server, as a greenweave `StreamServer`: one greenlet per
//! connection instead of one OS thread.
//!
//! ```python
//! sock.bind(('127.0.0.1', 9000)); sock.listen(5)
//! def action(conn):
//!     while True:
//!         data = conn.recv(1024); print(data.decode()); conn.send(data.upper())
//! while True:
//!     conn, addr = sock.accept()
//!     Thread(target=action, args=(conn,)).start()
//! ```
//!
//! The seed replies `data.upper()`; this server echoes the bytes unchanged (what
//! `echo_client` verifies) unless given `--upper`.
//!
//! ```text
//! echo_server [ADDR]         listen address (default 127.0.0.1:7000)
//!   --max-conns N            serve at most N connections at once (a pool); the others
//!                            wait in the kernel's backlog until a handler finishes
//!   --upper                  reply upper-cased, as the seed does
//!   --workers N              N OS threads, each with its own hub and its own
//!                            SO_REUSEPORT listener on ADDR (default 1)
//!   --duration SECS          stop after SECS seconds (default: run until killed)
//!   --stats[=SECS]           print each worker's hub statistics every SECS seconds
//!                            (default 1): switches, parks by kind, epoll waits...
//!   -v, --verbose            print every connection
//! ```
//!
//! `cargo run --release --example echo_server -- --workers 2 --duration 3`, with
//! `cargo run --release --example echo_client -- --connections 100 --messages 100`
//! run against it meanwhile, printed (the 101st connection is the client's probe for
//! a running server):
//!
//! ```text
//! worker 0: listening on 127.0.0.1:7000
//! worker 1: listening on 127.0.0.1:7000
//! worker 0: served 50 connections, 5.0 MB
//! worker 1: served 51 connections, 5.2 MB
//! total: 101 connections, 10.2 MB in 3.0 s
//! ```

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use greenweave::net::TcpStream;
use greenweave::server::StreamServer;

#[path = "common/cli.rs"]
mod cli;

/// A cooperative echo server: one greenlet per connection.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Address to listen on.
    #[arg(default_value = "127.0.0.1:7000")]
    addr: String,
    /// Serve at most N connections at once (N >= 1); the others wait until a handler
    /// finishes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_conns: Option<u32>,
    /// Reply upper-cased, as the seed does (`data.upper()`).
    #[arg(long)]
    upper: bool,
    /// OS threads, each with its own hub and SO_REUSEPORT listener (1 to 1024).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: u16,
    /// Stop after this many seconds (more than 0, at most a year; default: run until
    /// killed).
    #[arg(long, value_name = "SECS", value_parser = cli::seconds)]
    duration: Option<Duration>,
    /// Print each worker's hub statistics every SECS seconds (default 1; more than
    /// 0, at most a year): `--stats` or `--stats=0.5`.
    #[arg(
        long,
        value_name = "SECS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "1",
        value_parser = cli::seconds
    )]
    stats: Option<Duration>,
    /// Print every connection.
    #[arg(short, long)]
    verbose: bool,
}

/// Connections and bytes one worker served.
#[derive(Clone, Copy, Default)]
struct Served {
    connections: u64,
    bytes: u64,
}

/// Echoes until the peer closes; returns the bytes echoed.
fn echo(conn: &mut TcpStream, upper: bool) -> std::io::Result<u64> {
    let mut buf = vec![0; 16 * 1024];
    let mut total = 0;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        if upper {
            buf[..n].make_ascii_uppercase();
        }
        conn.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// One worker: a server on this thread's hub until the duration ends (or for ever).
fn serve(worker: usize, args: &Args) -> std::io::Result<Served> {
    let served = Rc::new(Cell::new(Served::default()));
    let (stats, upper, verbose) = (served.clone(), args.upper, args.verbose);
    let handler = move |mut conn: TcpStream, peer: SocketAddr| {
        if verbose {
            println!("worker {worker}: {peer} connected");
        }
        let result = echo(&mut conn, upper);
        let mut s = stats.get();
        s.connections += 1;
        s.bytes += *result.as_ref().unwrap_or(&0);
        stats.set(s);
        if verbose {
            match result {
                Ok(bytes) => println!("worker {worker}: {peer} closed after {bytes} bytes"),
                Err(e) => println!("worker {worker}: {peer} failed: {e}"),
            }
        }
    };
    let mut server = StreamServer::bind(args.addr.as_str(), handler)?
        .name(format!("echo-{worker}"))
        .reuse_port(args.workers > 1);
    if let Some(n) = args.max_conns {
        server = server.pool(n as usize);
    }
    let addr = server.listen()?;
    println!("worker {worker}: listening on {addr}");
    let reporter = args
        .stats
        .map(|every| greenweave::spawn(move || print_stats(worker, every)));
    match args.duration {
        Some(duration) => {
            server.start()?;
            greenweave::sleep(duration);
            server.stop(Duration::from_secs(1));
        }
        None => server.serve_forever()?,
    }
    if let Some(reporter) = reporter {
        reporter.kill();
    }
    Ok(served.get())
}

/// Prints this hub's statistics every `every`, as rates over the interval:
///
/// ```text
/// worker 0: 20512 switches/s, 101 spawns/s, 20330 parks/s (fd 20129, join 101, timer 1), \
///   epoll 10061 waits/s 10163 events/s, asleep 41%, run queue <= 3, 102 greenlets
/// ```
fn print_stats(worker: usize, every: Duration) {
    let mut before = greenweave::stats();
    loop {
        greenweave::sleep(every);
        let now = greenweave::stats();
        let d = now.since(&before);
        before = now;
        let secs = d.uptime.as_secs_f64().max(1e-9);
        let rate = |n: u64| (n as f64 / secs).round();
        let kinds: Vec<String> = greenweave::ParkKind::ALL
            .iter()
            .filter(|&&k| d.parks_of(k) > 0)
            .map(|&k| format!("{} {}", k.name(), rate(d.parks_of(k))))
            .collect();
        println!(
            "worker {worker}: {} switches/s, {} spawns/s, {} parks/s ({}), epoll {} waits/s {} \
             events/s, asleep {:.0}%, run queue <= {}, {} greenlets",
            rate(d.switches),
            rate(d.spawns),
            rate(d.total_parks()),
            kinds.join(", "),
            rate(d.epoll_waits),
            rate(d.epoll_events),
            100.0 * d.epoll_time.as_secs_f64() / secs,
            d.run_queue_high_water,
            d.greenlets,
        );
    }
}

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    let args = Args::parse();
    let start = Instant::now();
    let results = if args.workers <= 1 {
        vec![serve(0, &args)]
    } else {
        let shared = args.clone();
        greenweave::workers(usize::from(args.workers), move |i| serve(i, &shared))
    };
    let mut total = Served::default();
    let mut failed = false;
    for (worker, result) in results.into_iter().enumerate() {
        match result {
            Ok(s) => {
                println!(
                    "worker {worker}: served {} connections, {:.1} MB",
                    s.connections,
                    s.bytes as f64 / 1e6
                );
                total.connections += s.connections;
                total.bytes += s.bytes;
            }
            Err(e) => {
                eprintln!("worker {worker}: {e}");
                failed = true;
            }
        }
    }
    println!(
        "total: {} connections, {:.1} MB in {:.1} s",
        total.connections,
        total.bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    if failed {
        std::process::exit(1);
    }
}
