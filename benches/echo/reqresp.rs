//! The request–response clients: one connection per client, each sending a 64-byte
//! request and reading the 64-byte response (the echo server's) before the next, the
//! way a blocking protocol client does. The same loop, written four ways:
//!
//! - `std_net_patched`: unmodified blocking `std::net` after `patch_all()`, a greenlet
//!   per connection on one hub;
//! - `greenweave_net`: `greenweave::net::TcpStream`, a greenlet per connection, no
//!   patching;
//! - `tokio_current_thread`: `tokio::net::TcpStream`, a task per connection on a
//!   `current_thread` runtime;
//! - `os_threads`: blocking `std::net`, an OS thread per connection (no greenweave).
//!
//! Each connection's greenlet, task or thread lives as long as the client and waits
//! for its share of each run on a queue (greenweave's `Queue`, tokio's unbounded
//! `mpsc`, std's `mpsc`), so a run times the round trips, not spawning.
//!
//! Every client reads through a 4 KiB buffered reader (std's `BufReader`, tokio's
//! `BufReader`) with `read_exact`, so a response is one read of up to 4 KiB that
//! returns 64 bytes, as in a typical client library. Writes are `write_all` of the
//! request. Every connection has `TCP_NODELAY`.

use std::io::{BufRead, BufReader};

use super::*;

/// Bytes per request (and response).
pub(super) const MSG: usize = 64;
/// The clients' read buffer.
const READ_BUF: usize = 4096;

/// One way of writing the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    StdPatched,
    GreenweaveNet,
    Tokio,
    OsThreads,
}

/// Every client, in report order.
pub(super) const KINDS: [Kind; 4] = [
    Kind::StdPatched,
    Kind::GreenweaveNet,
    Kind::Tokio,
    Kind::OsThreads,
];

impl Kind {
    /// The function name in the bench groups.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::StdPatched => "std_net_patched",
            Kind::GreenweaveNet => "greenweave_net",
            Kind::Tokio => "tokio_current_thread",
            Kind::OsThreads => "os_threads",
        }
    }

    pub(super) fn from_name(name: &str) -> Kind {
        KINDS
            .into_iter()
            .find(|k| k.name() == name)
            .unwrap_or_else(|| panic!("no client kind named {name:?}"))
    }
}

/// The `client` role: connects, says `ready`, then runs the commands on stdin.
pub(super) fn client_main(kind: Kind, conns: usize, addr: SocketAddr) {
    match kind {
        Kind::StdPatched => {
            greenweave::monkey::patch_all();
            greenlet_client(addr, conns, |addr| {
                let c = std::net::TcpStream::connect(addr)?;
                c.set_nodelay(true)?;
                Ok(c)
            });
        }
        Kind::GreenweaveNet => greenlet_client(addr, conns, greenweave_connect),
        Kind::Tokio => tokio_client(addr, conns),
        Kind::OsThreads => threads_client(addr, conns),
    }
}

/// A `greenweave::net` connection with `TCP_NODELAY`.
pub(super) fn greenweave_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    Ok(c)
}

/// Reads `run N` lines from stdin and answers each with the nanoseconds `run(N)` took.
fn serve_commands(mut run: impl FnMut(u64) -> Duration) {
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("reading the bench's commands");
        let iters = line
            .strip_prefix("run ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a command: {line:?}"));
        println!("{}", run(iters).as_nanos());
    }
}

/// The request connection `i` sends.
fn request(i: usize) -> [u8; MSG] {
    std::array::from_fn(|j| (i * 31 + j * 7 + 1) as u8)
}

/// How many of `iters` round trips connection `i` of `n` makes.
fn share(iters: u64, i: usize, n: usize) -> u64 {
    let n = n as u64;
    iters / n + u64::from((i as u64) < iters % n)
}

/// One command of `iters` round trips over the `n` workers of a blocking-style client:
/// `give(i, k)` hands worker `i` its share `k` (those with none get nothing), then
/// `wait_one` returns once per worker given a share, as each reports it done; the time
/// from the first share to the last report.
fn run_shares(
    iters: u64,
    n: usize,
    mut give: impl FnMut(usize, u64),
    mut wait_one: impl FnMut(),
) -> Duration {
    let start = Instant::now();
    let mut active = 0;
    for i in 0..n {
        let k = share(iters, i, n);
        if k > 0 {
            give(i, k);
            active += 1;
        }
    }
    for _ in 0..active {
        wait_one();
    }
    start.elapsed()
}

/// `k` round trips on a blocking-style connection.
fn round_trips<S>(conn: &S, i: usize, k: u64) -> io::Result<()>
where
    for<'a> &'a S: Read + Write,
{
    let req = request(i);
    let mut reader = BufReader::with_capacity(READ_BUF, conn);
    let mut resp = [0; MSG];
    for _ in 0..k {
        (&*conn).write_all(&req)?;
        reader.read_exact(&mut resp)?;
        assert_eq!(resp, req, "the server answered other bytes");
    }
    Ok(())
}

/// Opens `n` connections with `connect`, `CONNECTING_AT_ONCE` at a time, in greenlets
/// (connector `j` opens connections `j`, `j + CONNECTING_AT_ONCE`, ...).
pub(super) fn connect_in_greenlets<S: 'static>(
    addr: SocketAddr,
    n: usize,
    connect: fn(SocketAddr) -> io::Result<S>,
) -> Vec<Rc<S>> {
    let connectors = CONNECTING_AT_ONCE.min(n);
    let jobs: Vec<_> = (0..connectors)
        .map(|j| {
            let mine = (j..n).step_by(connectors).count();
            greenweave::spawn(move || {
                (0..mine)
                    .map(|_| connect(addr).expect("connect to the server"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    greenweave::joinall(jobs)
        .into_iter()
        .flat_map(|r| r.expect("connector greenlets do not panic"))
        .map(Rc::new)
        .collect()
}

/// A greenlet per connection, on this thread's hub, each waiting for its share of a
/// run on a queue.
fn greenlet_client<S: 'static>(addr: SocketAddr, n: usize, connect: fn(SocketAddr) -> io::Result<S>)
where
    for<'a> &'a S: Read + Write,
{
    use greenweave::queue::Queue;
    let done: Rc<Queue<()>> = Rc::new(Queue::unbounded());
    let workers: Vec<Rc<Queue<u64>>> = connect_in_greenlets(addr, n, connect)
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let shares: Rc<Queue<u64>> = Rc::new(Queue::unbounded());
            let (mine, done) = (shares.clone(), done.clone());
            drop(greenweave::spawn(move || {
                while let Ok(k) = mine.get() {
                    round_trips(&*conn, i, k).expect("round trip");
                    done.put(()).expect("the client's main greenlet waits");
                }
            }));
            shares
        })
        .collect();
    serve_commands(|iters| {
        run_shares(
            iters,
            n,
            |i, k| workers[i].put(k).expect("client greenlets live"),
            || done.get().expect("client greenlets live"),
        )
    });
}

/// A task per connection on a `current_thread` runtime, each waiting for its share of
/// a run on a channel.
fn tokio_client(addr: SocketAddr, n: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (done_tx, mut done_rx) = unbounded_channel::<()>();
    let workers: Vec<UnboundedSender<u64>> = rt.block_on(async {
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let mut conn = tokio::net::TcpStream::connect(addr)
                .await
                .expect("connect to the server");
            conn.set_nodelay(true).expect("TCP_NODELAY");
            let (tx, mut shares) = unbounded_channel::<u64>();
            let done = done_tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = conn.split();
                let mut reader = tokio::io::BufReader::with_capacity(READ_BUF, r);
                let req = request(i);
                let mut resp = [0; MSG];
                while let Some(k) = shares.recv().await {
                    for _ in 0..k {
                        w.write_all(&req).await.expect("write");
                        reader.read_exact(&mut resp).await.expect("read");
                        assert_eq!(resp, req, "the server answered other bytes");
                    }
                    done.send(()).expect("the client's main task waits");
                }
            });
            workers.push(tx);
        }
        workers
    });
    serve_commands(|iters| {
        rt.block_on(async {
            let start = Instant::now();
            let mut active = 0;
            for (i, worker) in workers.iter().enumerate() {
                let k = share(iters, i, n);
                if k > 0 {
                    worker.send(k).expect("client tasks live");
                    active += 1;
                }
            }
            for _ in 0..active {
                done_rx.recv().await.expect("client tasks live");
            }
            start.elapsed()
        })
    });
}

/// An OS thread per connection, each waiting for its share of a run on a channel.
fn threads_client(addr: SocketAddr, n: usize) {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let workers: Vec<mpsc::Sender<u64>> = (0..n)
        .map(|i| {
            let conn = std::net::TcpStream::connect(addr).expect("connect to the server");
            conn.set_nodelay(true).expect("TCP_NODELAY");
            let (tx, rx) = mpsc::channel::<u64>();
            let done = done_tx.clone();
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    for k in rx {
                        round_trips(&conn, i, k).expect("round trip");
                        done.send(()).expect("the client's main thread waits");
                    }
                })
                .expect("start a client thread");
            tx
        })
        .collect();
    serve_commands(|iters| {
        run_shares(
            iters,
            n,
            |i, k| workers[i].send(k).expect("client threads live"),
            || done_rx.recv().expect("client threads live"),
        )
    });
}
