//! What to download: the URLs given, or the embedded server's files from its manifest.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use indicatif::HumanBytes;

use crate::Args;
use crate::fetch::{self, Expected, Job};
use crate::server;

/// The URLs to fetch: from the command line and `--file`, or the embedded server's.
pub fn make_jobs(args: &Args, timeout: Duration) -> Result<Vec<Job>, String> {
    let mut urls = args.urls.clone();
    if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        urls.extend(
            text.lines()
                .map(|line| line.split('#').next().unwrap_or("").trim())
                .filter(|line| !line.is_empty())
                .map(str::to_owned),
        );
    }
    if !urls.is_empty() {
        let mut taken = HashSet::new();
        return Ok(urls
            .into_iter()
            .map(|url| Job {
                name: file_name(&url, &mut taken),
                url,
                expected: None,
            })
            .collect());
    }

    // No URLs: serve files locally and download those.
    let catalog = Arc::new(server::Catalog::generate(args.files as usize));
    let (count, bytes) = (catalog.files.len(), catalog.bytes());
    let latency = Duration::from_millis(args.latency);
    let addr = server::start(catalog, latency).map_err(|e| format!("embedded server: {e}"))?;
    println!(
        "embedded server on http://{addr}: {count} files, {}, {} ms latency per request",
        HumanBytes(bytes),
        args.latency
    );
    // The manifest, with the same blocking ureq call the downloads make.
    let manifest = fetch::agent(timeout, 1)
        .get(format!("http://{addr}/manifest"))
        .call()
        .and_then(|mut response| response.body_mut().read_to_string())
        .map_err(|e| format!("cannot read the manifest: {e}"))?;
    let mut jobs = Vec::with_capacity(count + 2);
    for line in manifest.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(name), Some(size), Some(sum)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("bad manifest line {line:?}"));
        };
        let expected = size
            .parse()
            .ok()
            .zip(u64::from_str_radix(sum, 16).ok())
            .map(|(size, checksum)| Expected { size, checksum })
            .ok_or_else(|| format!("bad manifest line {line:?}"))?;
        jobs.push(Job {
            url: format!("http://{addr}/files/{name}"),
            name: name.to_owned(),
            expected: Some(expected),
        });
    }
    if args.with_failures {
        // A port nobody listens on: bind one, note it, close it.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?;
        jobs.push(Job {
            url: format!("http://{addr}/files/no-such-file.bin"),
            name: "no-such-file.bin".into(),
            expected: None,
        });
        jobs.push(Job {
            url: format!("http://{closed}/files/file-0000.bin"),
            name: "refused.bin".into(),
            expected: None,
        });
    }
    Ok(jobs)
}

/// A file name for `url`: its last path segment, made safe, and unique in `taken`.
fn file_name(url: &str, taken: &mut HashSet<String>) -> String {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let path = path.split_once("://").map_or(path, |(_, rest)| rest);
    let last = path
        .split_once('/')
        .map_or("", |(_, p)| p)
        .rsplit('/')
        .next()
        .unwrap_or("");
    let mut base: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if base.is_empty() || base.starts_with('.') {
        base = format!("index{base}.html");
    }
    let mut name = base.clone();
    let mut n = 1;
    while !taken.insert(name.clone()) {
        name = format!("{n}-{base}");
        n += 1;
    }
    name
}
