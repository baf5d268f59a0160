//! A small HTTP/1.1 server on plain OS threads (std::net, a thread per connection),
//! for clients running in greenlets. Its threads have no hub, so under `patch_all`
//! every call they make passes straight through to libc: the server is a real,
//! independent peer whatever the patching, and cannot be slowed by the greenlets.
//!
//! `GET /<delay_ms>/<id>` answers after `delay_ms` with [`body`]`(id)`, keeping the
//! connection alive unless the request says `Connection: close`. Anything else gets a
//! 404. Request bodies are not expected and not read.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The body served for request `id`: its id on every line, 17 B to 68 KiB long, so each
/// answer is told apart from every other and long ones arrive in several reads.
pub fn body(id: u64) -> String {
    let line = format!("request {id:>8}\n");
    line.repeat((id as usize * 37) % 4096 + 1)
}

/// The server; dropping it stops accepting (open connections end when their client
/// closes them).
pub struct ThreadedHttpServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    answered: Arc<Mutex<Vec<u64>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl ThreadedHttpServer {
    /// Binds 127.0.0.1 on a fresh OS thread (so no hub ever sees the sockets) and starts
    /// accepting there.
    pub fn start() -> ThreadedHttpServer {
        let stopping = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stopping.clone(), answered.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let acceptor = std::thread::spawn(move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let a = a.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &a);
                });
            }
        });
        ThreadedHttpServer {
            addr: rx.recv().unwrap(),
            stopping,
            answered,
            acceptor: Some(acceptor),
        }
    }

    /// The URL of request `id`, answered after `delay`.
    pub fn url(&self, delay: Duration, id: u64) -> String {
        format!("http://{}/{}/{id}", self.addr, delay.as_millis())
    }

    /// How many requests (of the form above; not 404s) got an answer so far.
    pub fn answered(&self) -> usize {
        self.answered.lock().unwrap().len()
    }

    /// The ids of the requests answered so far (every byte of the answer written to
    /// the socket), in the order they were answered.
    pub fn answered_ids(&self) -> Vec<u64> {
        self.answered.lock().unwrap().clone()
    }
}

impl Drop for ThreadedHttpServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees the flag.
        if let Ok(conn) = TcpStream::connect(self.addr) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().unwrap();
        }
    }
}

/// Serves one connection until the client closes it or asks to.
fn serve(conn: TcpStream, answered: &Mutex<Vec<u64>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let target = parse_target(&line);
        let mut close = line.ends_with("HTTP/1.0\r\n");
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if header == "connection: close" {
                close = true;
            }
        }
        let (status, payload) = match target {
            Some((delay, id)) => {
                std::thread::sleep(delay);
                ("200 OK", body(id))
            }
            None => ("404 Not Found", String::new()),
        };
        let connection = if close { "close" } else { "keep-alive" };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: {connection}\r\n\r\n",
            payload.len()
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(payload.as_bytes())?;
        if let Some((_, id)) = target {
            answered.lock().unwrap().push(id);
        }
        if close {
            return writer.shutdown(Shutdown::Both);
        }
    }
}

/// `GET /<delay_ms>/<id> HTTP/1.x` → (delay, id).
fn parse_target(request_line: &str) -> Option<(Duration, u64)> {
    let mut words = request_line.split_ascii_whitespace();
    if words.next()? != "GET" {
        return None;
    }
    let mut parts = words.next()?.strip_prefix('/')?.split('/');
    let delay = Duration::from_millis(parts.next()?.parse().ok()?);
    let id = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((delay, id))
}
