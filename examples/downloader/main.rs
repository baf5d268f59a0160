//! The seed's concurrent downloader (协程并发下载器), done properly: unmodified blocking
//! `ureq` calls in a pool of greenlets, made cooperative by `monkey::patch_all()`.
//!
//! ```python
//! from gevent import monkey; monkey.patch_all()
//! def my_downLoad(file_name, url):
//!     resp = urllib.request.urlopen(url); data = resp.read()
//!     with open(file_name, "wb") as f: f.write(data)
//!     print('%d bytes received from %s.' % (len(data), url))
//! gevent.joinall([gevent.spawn(my_downLoad, "1.mp4", '...'), gevent.spawn(my_downLoad, "2.mp4", '...')])
//! ```
//!
//! Every download is plain blocking code (`agent.get(url).call()`, `read`): after
//! `greenweave::monkey::patch_all()` the socket calls inside `ureq` park the greenlet
//! instead of the thread, so one OS thread keeps `--concurrency` downloads in flight.
//! A `pool::Pool` bounds them; each file's content is checked against its checksum,
//! written through the thread pool, and retried on transient errors; a URL that fails
//! (DNS error, 404, connection refused, timeout) is reported with its reason while the
//! others go on, and the exit status is non-zero.
//!
//! With no URLs it needs no network: it starts an embedded HTTP/1.1 server (a
//! greenweave `StreamServer` on a thread of its own) serving `--files` files of 1 KiB
//! to 256 KiB with `--latency` ms of delay per request, reads its `/manifest` (name,
//! size, FNV-1a checksum) and downloads them all.
//!
//! ```text
//! downloader [URL]... [--file PATH]   URLs to fetch (none: the embedded server's files)
//!   --out DIR            where to write (default: greenweave-downloader in the temp folder)
//!   --concurrency N      downloads at once (default 50)
//!   --retries N          extra attempts after a transient failure (default 2)
//!   --timeout SECS       per request (default 10)
//!   --compare-serial     run the job again one download at a time, report the speed-up
//!   --files N            embedded server: files (default 500)
//!   --latency MS         embedded server: delay per request (default 100)
//!   --with-failures      embedded server: add a 404 and a refused port
//!   --quiet / --verbose  summary only / a line per file, as the seed prints
//! ```
//!
//! Real runs on a 2-core machine (progress bars, shown when stdout is a terminal, left
//! out):
//!
//! ```text
//! $ cargo run --release --example downloader
//! embedded server on http://127.0.0.1:41111: 500 files, 22.74 MiB, 100 ms latency per request
//! downloading 500 URLs into /tmp/greenweave-downloader
//! downloaded 500 of 500 files, 22.74 MiB in 1.06 s (21.37 MiB/s, 470 files/s) with 50 greenlets
//! all 500 checksums verified; 0 files needed a retry
//! failures: none
//!
//! $ cargo run --release --example downloader -- --files 1000 --concurrency 1000 | grep downloaded
//! downloaded 1000 of 1000 files, 44.38 MiB in 0.35 s (126.81 MiB/s, 2858 files/s) with 1000 greenlets
//!
//! $ cargo run --release --example downloader -- --compare-serial | tail -1
//! serial: 500 files, 22.74 MiB in 50.65 s; concurrency 50 was 47.6x faster
//!
//! $ cargo run --release --example downloader -- --with-failures --files 100
//! embedded server on http://127.0.0.1:43159: 100 files, 4.27 MiB, 100 ms latency per request
//! downloading 102 URLs into /tmp/greenweave-downloader
//! FAILED http://127.0.0.1:43159/files/no-such-file.bin: HTTP 404 Not Found (1 attempt)
//! FAILED http://127.0.0.1:46285/files/file-0000.bin: connection refused (3 attempts)
//! downloaded 100 of 102 files, 4.27 MiB in 0.81 s (5.24 MiB/s, 123 files/s) with 50 greenlets
//! all 100 checksums verified; 0 files needed a retry
//! failures: 2
//!   http://127.0.0.1:43159/files/no-such-file.bin: HTTP 404 Not Found
//!   http://127.0.0.1:46285/files/file-0000.bin: connection refused
//! ```
//!
//! (The last run takes 0.8 s rather than 0.2 s because the refused URL is retried
//! twice, after 200 and 400 ms.) Without the socket hooks (`patch_all` not called)
//! every `ureq` call would block the thread and the downloads would run one at a time,
//! as in the serial run.

#[path = "../common/cli.rs"]
mod cli;
mod fetch;
mod jobs;
mod progress;
mod server;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use greenweave::pool::Pool;
use greenweave::queue::Queue;
use greenweave::threadpool::spawn_blocking;
use indicatif::HumanBytes;

use fetch::{Failed, Fetched, Job, Settings};
use progress::{Activity, Display};

/// Download many URLs at once with blocking ureq calls in greenlets.
#[derive(Parser)]
struct Args {
    /// URLs to download (none: files from an embedded local server).
    urls: Vec<String>,
    /// Read more URLs from this file, one per line (`#` starts a comment).
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Folder to write into (default: `greenweave-downloader` in the system's temporary
    /// folder, reused by every run: files of the same name are overwritten).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Downloads in flight at once (greenlets in the pool; 1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// Extra attempts after a transient failure (I/O error, timeout, 5xx, bad checksum).
    #[arg(long, value_name = "N", default_value_t = 2)]
    retries: u32,
    /// Time limit of one request, in seconds (more than 0, at most a year).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = cli::seconds)]
    timeout: Duration,
    /// Also run the job one download at a time and report the speed-up.
    #[arg(long)]
    compare_serial: bool,
    /// Embedded server: how many files it serves (1 to 20000; they average 43 KiB and
    /// are held in memory).
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    files: u32,
    /// Embedded server: delay before answering each request, in milliseconds (at most
    /// an hour).
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(..=3_600_000))]
    latency: u64,
    /// Embedded server: also fetch a missing file (404) and a closed port (refused).
    #[arg(long)]
    with_failures: bool,
    /// No progress bars and no per-URL lines, just the summary.
    #[arg(long, short, conflicts_with = "verbose")]
    quiet: bool,
    /// A line per downloaded file, as the seed prints.
    #[arg(long, short)]
    verbose: bool,
}

/// The result of one run over all jobs.
struct Report {
    wall: Duration,
    fetched: Vec<(usize, Fetched)>,
    failed: Vec<(usize, Failed)>,
}

impl Report {
    fn bytes(&self) -> u64 {
        self.fetched.iter().map(|(_, f)| f.bytes).sum()
    }
}

#[path = "../common/logging.rs"]
mod logging;

fn main() -> ExitCode {
    greenweave::monkey::patch_all(); // first thing, as in the seed
    logging::init();
    let args = Args::parse();
    let timeout = args.timeout;
    let concurrency = args.concurrency as usize;
    // The default folder is reused rather than made and removed on every run: files
    // rewritten in place cost the file system far less than new ones.
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("greenweave-downloader"));
    if out.exists() && !out.is_dir() {
        cli::invalid(format!(
            "--out {} names an existing file, not a folder",
            out.display()
        ));
    }

    let jobs = match jobs::make_jobs(&args, timeout) {
        Ok(jobs) => jobs,
        Err(e) => {
            eprintln!("downloader: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = out.clone();
    if let Err(e) = spawn_blocking(move || std::fs::create_dir_all(dir)) {
        eprintln!("downloader: cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    println!("downloading {} URLs into {}", jobs.len(), out.display());

    let jobs = Rc::new(jobs);
    let settings = Rc::new(Settings {
        agent: fetch::agent(timeout, concurrency),
        retries: args.retries,
        timeout,
        out: out.clone(),
    });
    let report = run(&jobs, &settings, concurrency, &args);
    print_summary(&jobs, &report, concurrency);

    if args.compare_serial {
        let settings = Rc::new(Settings {
            agent: fetch::agent(timeout, 1),
            retries: args.retries,
            timeout,
            out: out.clone(),
        });
        println!("again, one download at a time (--compare-serial):");
        let serial = run(&jobs, &settings, 1, &args);
        println!(
            "serial: {} files, {} in {:.2} s; concurrency {concurrency} was {:.1}x faster",
            serial.fetched.len(),
            HumanBytes(serial.bytes()),
            serial.wall.as_secs_f64(),
            serial.wall.as_secs_f64() / report.wall.as_secs_f64().max(1e-9),
        );
    }

    if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Downloads every job with at most `concurrency` at once; the calling greenlet draws
/// the progress and reports failures as they happen.
fn run(jobs: &Rc<Vec<Job>>, settings: &Rc<Settings>, concurrency: usize, args: &Args) -> Report {
    // Bytes to expect, if the manifest says (URLs without a size count for nothing).
    let known_bytes = jobs
        .iter()
        .any(|j| j.expected.is_some())
        .then(|| jobs.iter().filter_map(|j| j.expected).map(|e| e.size).sum());
    let label = format!("{concurrency} at once");
    let display = Display::new(
        &label,
        jobs.len() as u64,
        known_bytes,
        concurrency.min(4),
        args.quiet,
    );
    let activity = Rc::new(Activity::default());
    let results: Rc<Queue<(usize, Result<Fetched, Failed>)>> = Rc::new(Queue::unbounded());

    let start = Instant::now();
    // A feeder greenlet spawns into the pool (blocking while it is full), so this one
    // is free to draw.
    let pool = Pool::new(concurrency);
    let feeder = greenweave::spawn({
        let (jobs, results, activity) = (jobs.clone(), results.clone(), activity.clone());
        let settings = settings.clone();
        move || {
            for index in 0..jobs.len() {
                let (jobs, results, activity, settings) = (
                    jobs.clone(),
                    results.clone(),
                    activity.clone(),
                    settings.clone(),
                );
                pool.spawn(move || {
                    let job = &jobs[index];
                    let slot = activity.begin(&job.name);
                    // A bug must not leave the main greenlet waiting for this result.
                    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        fetch::download(job, &settings, &slot)
                    }))
                    .unwrap_or_else(|_| {
                        Err(Failed {
                            reason: "the download greenlet panicked".into(),
                            attempts: 0,
                        })
                    });
                    drop(slot);
                    let _ = results.put((index, outcome));
                });
            }
        }
    });

    let mut report = Report {
        wall: Duration::ZERO,
        fetched: Vec::new(),
        failed: Vec::new(),
    };
    let mut done = 0;
    while done < jobs.len() {
        if let Ok((index, outcome)) = results.get_timeout(Duration::from_millis(100)) {
            done += 1;
            let job = &jobs[index];
            match outcome {
                Ok(fetched) => {
                    if args.verbose {
                        display.println(&format!(
                            "{} bytes received from {}.",
                            fetched.bytes, job.url
                        ));
                    }
                    report.fetched.push((index, fetched));
                }
                Err(failed) => {
                    if !args.quiet {
                        display.println(&format!(
                            "FAILED {}: {} ({})",
                            job.url,
                            failed.reason,
                            attempts(failed.attempts)
                        ));
                    }
                    report.failed.push((index, failed));
                }
            }
        }
        display.refresh(&activity, done as u64);
    }
    report.wall = start.elapsed();
    feeder.join().expect("the feeder greenlet");
    display.finish();
    report
}

/// Files, bytes, wall time, throughput, retries and failures of `report`.
fn print_summary(jobs: &[Job], report: &Report, concurrency: usize) {
    let secs = report.wall.as_secs_f64().max(1e-9);
    let bytes = report.bytes();
    println!(
        "downloaded {} of {} files, {} in {:.2} s ({}/s, {:.0} files/s) with {concurrency} greenlets",
        report.fetched.len(),
        jobs.len(),
        HumanBytes(bytes),
        secs,
        HumanBytes((bytes as f64 / secs) as u64),
        report.fetched.len() as f64 / secs,
    );
    let verified = report.fetched.iter().filter(|(_, f)| f.verified).count();
    let retried = report
        .fetched
        .iter()
        .filter(|(_, f)| f.attempts > 1)
        .count();
    let checked = match verified {
        0 => "no checksums to verify (none announced)".to_owned(),
        n if n == report.fetched.len() => format!("all {n} checksums verified"),
        n => format!("{n} checksums verified (the other files had none)"),
    };
    println!("{checked}; {retried} files needed a retry");
    if report.failed.is_empty() {
        println!("failures: none");
    } else {
        println!("failures: {}", report.failed.len());
        let mut failed: Vec<_> = report.failed.iter().collect();
        failed.sort_by_key(|(index, _)| *index);
        for (index, f) in failed {
            println!("  {}: {}", jobs[*index].url, f.reason);
        }
    }
}

/// "1 attempt", "3 attempts".
fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".into()
    } else {
        format!("{n} attempts")
    }
}
