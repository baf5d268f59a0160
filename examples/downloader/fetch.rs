//! Downloading one URL with plain blocking `ureq` calls (cooperative thanks to
//! `monkey::patch_all`): retries, checksum verification, and the file written through
//! the thread pool.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use greenweave::threadpool::spawn_blocking;

use crate::progress::Slot;
use crate::server::Fnv1a;

/// One URL to fetch.
pub struct Job {
    /// What to fetch.
    pub url: String,
    /// File name under the output folder.
    pub name: String,
    /// Size and checksum from the manifest, when there is one.
    pub expected: Option<Expected>,
}

/// What the manifest says about a file.
#[derive(Clone, Copy)]
pub struct Expected {
    /// Bytes.
    pub size: u64,
    /// FNV-1a 64 of the content.
    pub checksum: u64,
}

/// How every download is made.
pub struct Settings {
    /// The HTTP client, shared by all downloads (and its connection pool with them).
    pub agent: ureq::Agent,
    /// Extra attempts after a transient failure.
    pub retries: u32,
    /// Time limit of one attempt.
    pub timeout: Duration,
    /// The output folder.
    pub out: PathBuf,
}

/// A file downloaded and written.
pub struct Fetched {
    /// Size of the file.
    pub bytes: u64,
    /// Attempts it took (1: no retry).
    pub attempts: u32,
    /// Whether a checksum (manifest or `X-Checksum`) was checked.
    pub verified: bool,
}

/// A URL given up on.
pub struct Failed {
    /// Why the last attempt failed.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
}

/// The ureq agent: plain blocking HTTP. `timeout` bounds each phase of a request
/// (connect, send, wait for the response, receive the body); the resolve phase gets no
/// ureq timeout, because ureq would then resolve on a thread of its own and wait for
/// it in a way no hook can see; the greenweave `Timeout` around each attempt bounds
/// it instead.
pub fn agent(timeout: Duration, concurrency: usize) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(timeout))
        .timeout_send_request(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_recv_body(Some(timeout))
        .max_idle_connections(concurrency.max(10))
        .max_idle_connections_per_host(concurrency.max(3))
        .user_agent("greenweave-downloader")
        .build()
        .into()
}

/// Why an attempt failed, and whether another one may do better.
struct Problem {
    reason: String,
    retry: bool,
}

impl Problem {
    fn new(reason: impl Into<String>, retry: bool) -> Problem {
        Problem {
            reason: reason.into(),
            retry,
        }
    }
}

impl From<ureq::Error> for Problem {
    fn from(e: ureq::Error) -> Problem {
        match e {
            ureq::Error::StatusCode(code) => {
                let text = ureq::http::StatusCode::from_u16(code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                Problem::new(format!("HTTP {code} {text}"), code >= 500 || code == 429)
            }
            ureq::Error::Io(io) => Problem::from(io),
            ureq::Error::HostNotFound => Problem::new("host not found", false),
            ureq::Error::Timeout(phase) => Problem::new(format!("timed out ({phase})"), true),
            other => Problem::new(other.to_string(), false),
        }
    }
}

impl From<io::Error> for Problem {
    fn from(e: io::Error) -> Problem {
        // Errors from ureq's body reader wrap a `ureq::Error`.
        if e.get_ref().is_some_and(|inner| inner.is::<ureq::Error>()) {
            let inner = e.into_inner().expect("checked above");
            return Problem::from(*inner.downcast::<ureq::Error>().expect("checked above"));
        }
        let text = e.to_string();
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Problem::new("connection refused", true),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Problem::new("timed out", true),
            _ if text.starts_with("failed to lookup address") => {
                Problem::new(format!("DNS: {text}"), false)
            }
            _ => Problem::new(text, true),
        }
    }
}

/// Downloads `job` into the output folder, retrying failed attempts (with a short
/// backoff) up to `settings.retries` times.
pub fn download(job: &Job, settings: &Settings, slot: &Slot) -> Result<Fetched, Failed> {
    let dest = settings.out.join(&job.name);
    let mut attempts = 0;
    loop {
        attempts += 1;
        slot.restart();
        let part = settings.out.join(format!(".{}.part{attempts}", job.name));
        // The whole attempt, name lookup included, within the timeout. An expiry inside
        // a patched call makes it fail with ETIMEDOUT (ureq reports an I/O timeout);
        // at a greenweave wait it unwinds to here.
        let outcome =
            greenweave::with_timeout(settings.timeout, || attempt(job, settings, slot, &part))
                .unwrap_or_else(|_elapsed| Err(Problem::new("timed out", true)));
        let problem = match outcome {
            Ok((sink, bytes, verified)) => match sink.finish(&dest) {
                Ok(()) => {
                    return Ok(Fetched {
                        bytes,
                        attempts,
                        verified,
                    });
                }
                Err(e) => Problem::new(format!("cannot write {}: {e}", dest.display()), false),
            },
            Err(problem) => problem,
        };
        // A part file exists if the attempt got past a megabyte.
        let _ = spawn_blocking(move || std::fs::remove_file(part));
        if !problem.retry || attempts > settings.retries {
            return Err(Failed {
                reason: problem.reason,
                attempts,
            });
        }
        greenweave::sleep(Duration::from_millis(100 << attempts.min(6)));
    }
}

/// One attempt: GET, stream the body into a [`Sink`] while checksumming it, verify.
/// Returns the sink (holding the last part of the file), the size, and whether a
/// checksum was verified.
fn attempt(
    job: &Job,
    settings: &Settings,
    slot: &Slot,
    part: &Path,
) -> Result<(Sink, u64, bool), Problem> {
    let mut response = settings.agent.get(&job.url).call()?;
    let announced = response
        .headers()
        .get("x-checksum")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    let length = response.body().content_length();
    slot.set_total(length.or(job.expected.map(|e| e.size)));

    let mut reader = response.body_mut().as_reader();
    let mut sink = Sink::new(part.to_path_buf());
    let mut sum = Fnv1a::default();
    let mut buf = vec![0; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sum = sum.update(&buf[..n]);
        sink.push(&buf[..n])?;
        got += n as u64;
        slot.add(n as u64);
    }

    if let Some(expected) = job.expected {
        if got != expected.size {
            return Err(Problem::new(
                format!("size {got} bytes, the manifest says {}", expected.size),
                true,
            ));
        }
    }
    let checksum = job.expected.map(|e| e.checksum).or(announced);
    if let Some(want) = checksum {
        if sum.0 != want {
            return Err(Problem::new(
                format!("checksum {:016x}, expected {want:016x}", sum.0),
                true,
            ));
        }
    }
    Ok((sink, got, checksum.is_some()))
}

/// A file being written: bytes are collected in memory and written out through the
/// thread pool a megabyte at a time (file writes would otherwise stall the hub on a
/// slow disk: a regular file is always "ready").
struct Sink {
    part: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
}

impl Sink {
    const FLUSH_AT: usize = 1 << 20;

    fn new(part: PathBuf) -> Sink {
        Sink {
            part,
            file: None,
            buf: Vec::new(),
        }
    }

    fn push(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::FLUSH_AT {
            let (part, file, mut buf) = (
                self.part.clone(),
                self.file.take(),
                std::mem::take(&mut self.buf),
            );
            let file = spawn_blocking(move || -> io::Result<(File, Vec<u8>)> {
                let mut file = match file {
                    Some(file) => file,
                    None => File::create(&part)?,
                };
                file.write_all(&buf)?;
                buf.clear();
                Ok((file, buf))
            })?;
            (self.file, self.buf) = (Some(file.0), file.1);
        }
        Ok(())
    }

    /// Writes what is left and puts the file at `dest`. A file that fitted in memory
    /// is written to `dest` directly (overwriting an earlier download in place, which
    /// spares the file system an inode); a larger one is completed in its part file,
    /// which then replaces `dest`.
    fn finish(self, dest: &Path) -> io::Result<()> {
        let Sink { part, file, buf } = self;
        let dest = dest.to_path_buf();
        spawn_blocking(move || match file {
            None => std::fs::write(&dest, &buf),
            Some(mut file) => {
                file.write_all(&buf)?;
                drop(file);
                std::fs::rename(&part, &dest)
            }
        })
    }
}
