//! The embedded HTTP/1.1 server the downloader fetches from when given no URLs: a
//! greenweave `StreamServer` on its own OS thread (its own hub), serving a catalog of
//! deterministic files after a fixed latency per request.
//!
//! Routes: `GET /manifest` (one `name size checksum` line per file), `GET /files/NAME`
//! (the file, with `X-Checksum: <fnv1a-64 hex>`), anything else 404. Keep-alive unless
//! the client sends `Connection: close`.

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use greenweave::net::TcpStream;
use greenweave::server::StreamServer;

/// One file the server offers.
pub struct File {
    /// `file-NNNN.bin`.
    pub name: String,
    /// The content.
    pub data: Vec<u8>,
    /// [`fnv1a64`] of the content.
    pub checksum: u64,
}

/// The files the server offers, generated from their index alone.
pub struct Catalog {
    /// In index order.
    pub files: Vec<File>,
}

impl Catalog {
    /// `count` files of 1 KiB to 256 KiB (sizes spread over powers of two), content
    /// from a PRNG seeded by the file's index.
    pub fn generate(count: usize) -> Catalog {
        let files = (0..count)
            .map(|i| {
                let seed = (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
                let mut rng = XorShift(seed | 1);
                let kib = 1usize << (rng.next() % 9); // 1, 2, 4, ... 256 KiB
                let size = (kib * 1024 - (rng.next() % (kib as u64 * 512)) as usize).max(1024);
                let data = rng.bytes(size);
                File {
                    name: format!("file-{i:04}.bin"),
                    checksum: fnv1a64(&data),
                    data,
                }
            })
            .collect();
        Catalog { files }
    }

    /// Total size of all files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.data.len() as u64).sum()
    }

    /// The `/manifest` body: `name size checksum` per line.
    fn manifest(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("{} {} {:016x}\n", f.name, f.data.len(), f.checksum))
            .collect()
    }
}

/// 64-bit FNV-1a, the checksum the server announces and the client verifies.
pub fn fnv1a64(data: &[u8]) -> u64 {
    Fnv1a::default().update(data).0
}

/// Incremental 64-bit FNV-1a; `.0` is the hash so far.
#[derive(Clone, Copy)]
pub struct Fnv1a(pub u64);

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// The hash extended by `data`.
    pub fn update(mut self, data: &[u8]) -> Fnv1a {
        for &byte in data {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }
}

/// Starts the server on 127.0.0.1 (port chosen by the kernel) on a new OS thread with
/// its own hub, and returns its address. The thread serves until the process exits.
///
/// Its own thread, rather than a greenlet next to the downloads, so that the example
/// also works when the client's socket calls block (no socket hooks): a blocking
/// client on the same hub would wait for a server that can never run.
pub fn start(catalog: Arc<Catalog>, latency: Duration) -> io::Result<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("embedded-http".into())
        .spawn(move || {
            let handler = move |conn: TcpStream, _peer: SocketAddr| {
                let _ = serve_connection(&conn, &catalog, latency);
            };
            let server = match StreamServer::bind("127.0.0.1:0", handler) {
                Ok(server) => server.name("embedded-http").backlog(8192),
                Err(e) => return drop(tx.send(Err(e))),
            };
            let _ = tx.send(server.listen());
            if let Err(e) = server.serve_forever() {
                eprintln!("downloader: embedded server stopped: {e}");
            }
        })?;
    rx.recv()
        .unwrap_or_else(|_| Err(io::Error::other("the server thread died")))
}

/// Serves requests on one connection until the client closes it or asks to.
fn serve_connection(conn: &TcpStream, catalog: &Catalog, latency: Duration) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        // The request line, then headers up to the empty line.
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(()); // the client closed the connection
        }
        let mut parts = line.split_ascii_whitespace();
        let (method, path, version) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut close = version != "HTTP/1.1";
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("connection") {
                    close = value.trim().eq_ignore_ascii_case("close");
                }
            }
        }

        greenweave::sleep(latency); // the "network" latency of this request

        let manifest;
        let (status, body, checksum): (&str, &[u8], Option<u64>) = match path.as_str() {
            _ if method != "GET" && method != "HEAD" => ("405 Method Not Allowed", b"", None),
            "/manifest" => {
                manifest = catalog.manifest();
                ("200 OK", manifest.as_bytes(), None)
            }
            p => match p
                .strip_prefix("/files/")
                .and_then(|name| catalog.files.iter().find(|f| f.name == name))
            {
                Some(file) => ("200 OK", &file.data, Some(file.checksum)),
                None => ("404 Not Found", b"not found\n", None),
            },
        };
        let mut response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n",
            body.len()
        );
        if let Some(sum) = checksum {
            response.push_str(&format!("X-Checksum: {sum:016x}\r\n"));
        }
        response.push_str(if close {
            "Connection: close\r\n\r\n"
        } else {
            "Connection: keep-alive\r\n\r\n"
        });
        let mut out = response.into_bytes();
        if method != "HEAD" {
            out.extend_from_slice(body);
        }
        let mut writer = conn;
        writer.write_all(&out)?;
        if close {
            return Ok(());
        }
    }
}

/// xorshift64: deterministic content without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
