//! The seed's UDP chat: one task reads lines from the keyboard and sends them to the
//! peer, another receives datagrams and prints them; here both are greenlets on one OS
//! thread instead of two threads.
//!
//! ```python
//! def send_msg(udp_socket):
//!     while True:
//!         msg = input("\n请输入要发送的数据:")   # + the peer's ip and port
//!         udp_socket.sendto(msg.encode("utf-8"), (dest_ip, dest_port))
//! def recv_msg(udp_socket):
//!     while True:
//!         data, addr = udp_socket.recvfrom(1024)
//!         print(">>>%s:%s" % (str(addr), data.decode("utf-8")))
//! udp_socket.bind(("", 7890))
//! threading.Thread(target=recv_msg, args=(udp_socket,)).start()
//! send_msg(udp_socket)
//! ```
//!
//! ```text
//! udp_chat --port P --peer ADDR   chat with ADDR from 0.0.0.0:P (default port 7890)
//! udp_chat --demo                 two endpoints in this process chat for a few lines
//! ```
//!
//! Reading the keyboard blocks the OS thread, which would stop every greenlet. So each
//! line is read by `threadpool::spawn_blocking` on a pool thread: only the sending
//! greenlet parks until the line is there, and the receiving greenlet keeps printing
//! what arrives meanwhile. End the chat with end-of-file (Ctrl-D).
//!
//! `cargo run --example udp_chat -- --demo` printed:
//!
//! ```text
//! alice on 127.0.0.1:41035, bob on 127.0.0.1:53621
//! alice> hi bob
//! >>> bob got from 127.0.0.1:41035: hi bob
//! bob> hello alice
//! >>> alice got from 127.0.0.1:53621: hello alice
//! alice> how are things?
//! >>> bob got from 127.0.0.1:41035: how are things?
//! bob> fine, all on one thread
//! >>> alice got from 127.0.0.1:53621: fine, all on one thread
//! alice> bye
//! >>> bob got from 127.0.0.1:41035: bye
//! bob> bye
//! >>> alice got from 127.0.0.1:53621: bye
//! demo done: 6 messages exchanged
//! ```

use std::io::BufRead;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use greenweave::net::UdpSocket;

#[path = "common/cli.rs"]
mod cli;

/// Cooperative UDP chat: a sending and a receiving greenlet on one thread.
#[derive(Parser, Debug)]
struct Args {
    /// Local UDP port.
    #[arg(long, default_value_t = 7890)]
    port: u16,
    /// The peer's address (HOST:PORT), resolved at start.
    #[arg(long, required_unless_present = "demo", value_parser = peer_addr)]
    peer: Option<SocketAddr>,
    /// Run two chat endpoints in this process for a few lines, then exit.
    #[arg(long)]
    demo: bool,
}

/// `--peer HOST:PORT` to its first address.
fn peer_addr(peer: &str) -> Result<SocketAddr, String> {
    match peer.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{peer} has no addresses")),
        Err(e) => Err(format!("not a HOST:PORT that resolves ({e})")),
    }
}

/// Prints every datagram (as `>>> ADDR: text`, or `>>> NAME got from ADDR: text`);
/// returns after `limit` of them (never, without a limit).
fn receive(name: Option<&str>, socket: &UdpSocket, limit: Option<usize>) -> std::io::Result<usize> {
    let mut buf = [0; 1024];
    let mut count = 0;
    while limit.is_none_or(|l| count < l) {
        let (n, from) = socket.recv_from(&mut buf)?;
        let text = String::from_utf8_lossy(&buf[..n]);
        match name {
            Some(name) => println!(">>> {name} got from {from}: {text}"),
            None => println!(">>> {from}: {text}"),
        }
        count += 1;
    }
    Ok(count)
}

/// One keyboard line, read on a pool thread so only this greenlet waits; `None` at
/// end of input.
fn read_line() -> Option<String> {
    let line = greenweave::threadpool::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map(|n| (n, line))
    });
    match line {
        Ok((0, _)) | Err(_) => None,
        Ok((_, line)) => Some(line.trim_end().to_owned()),
    }
}

fn chat(port: u16, peer: SocketAddr) -> std::io::Result<()> {
    let socket = Rc::new(UdpSocket::bind(("0.0.0.0", port))?);
    println!(
        "chatting from {} with {peer}; type lines, Ctrl-D to quit",
        socket.local_addr()?
    );
    let s = socket.clone();
    let receiver = greenweave::spawn(move || receive(None, &s, None));
    while let Some(line) = read_line() {
        if !line.is_empty() {
            socket.send_to(line.as_bytes(), peer)?;
        }
    }
    receiver.kill();
    Ok(())
}

/// A scripted endpoint: sends its lines to `peer` (pausing between them) while its
/// receiver greenlet prints the peer's `expect` lines.
fn endpoint(
    name: &'static str,
    socket: UdpSocket,
    peer: SocketAddr,
    lines: &'static [&'static str],
    delay: Duration,
) -> greenweave::JoinHandle<std::io::Result<usize>> {
    greenweave::spawn(move || {
        let socket = Rc::new(socket);
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        let s = socket.clone();
        let expect = lines.len();
        let receiver = greenweave::spawn(move || receive(Some(name), &s, Some(expect)));
        greenweave::sleep(delay);
        for line in lines {
            println!("{name}> {line}");
            socket.send_to(line.as_bytes(), peer)?;
            greenweave::sleep(Duration::from_millis(100));
        }
        receiver.join().expect("the receiver does not panic")
    })
}

fn demo() -> std::io::Result<()> {
    let alice = UdpSocket::bind("127.0.0.1:0")?;
    let bob = UdpSocket::bind("127.0.0.1:0")?;
    let (a, b) = (alice.local_addr()?, bob.local_addr()?);
    println!("alice on {a}, bob on {b}");
    let alice = endpoint(
        "alice",
        alice,
        b,
        &["hi bob", "how are things?", "bye"],
        Duration::ZERO,
    );
    let bob = endpoint(
        "bob",
        bob,
        a,
        &["hello alice", "fine, all on one thread", "bye"],
        Duration::from_millis(50),
    );
    let mut total = 0;
    for side in greenweave::joinall([alice, bob]) {
        total += side.expect("the endpoints do not panic")?;
    }
    println!("demo done: {total} messages exchanged");
    Ok(())
}

#[path = "common/logging.rs"]
mod logging;

fn main() {
    logging::init();
    let args = Args::parse();
    let result = if args.demo {
        demo()
    } else {
        match args.peer {
            Some(peer) => chat(args.port, peer),
            None => cli::invalid("--peer is required without --demo"),
        }
    };
    if let Err(e) = result {
        eprintln!("udp_chat: {e}");
        std::process::exit(1);
    }
}
