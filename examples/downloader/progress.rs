//! What the downloads are doing ([`Activity`], updated by every download greenlet) and
//! how it is shown ([`Display`], driven by the main greenlet alone).
//!
//! Only one greenlet ever touches the terminal: the downloads bump plain counters, and
//! the main greenlet redraws the bars from them every 100 ms. Terminal output and
//! `indicatif`'s internal locks are then never shared between greenlets, so a write to
//! the terminal that parks (patched `write`) cannot leave a lock held for another
//! greenlet of the same thread to block on.

use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::rc::Rc;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Byte counts of the downloads in flight, shared by all download greenlets.
#[derive(Default)]
pub struct Activity {
    /// Bytes received by all downloads so far (failed attempts included).
    received: Cell<u64>,
    /// Downloads in flight, by slot (a freed slot is reused).
    active: RefCell<Vec<Option<Active>>>,
}

struct Active {
    name: String,
    got: u64,
    total: Option<u64>,
}

impl Activity {
    /// Registers a download in flight; it is removed when the [`Slot`] is dropped.
    pub fn begin(self: &Rc<Self>, name: &str) -> Slot {
        let entry = Active {
            name: name.to_owned(),
            got: 0,
            total: None,
        };
        let mut active = self.active.borrow_mut();
        let index = match active.iter().position(Option::is_none) {
            Some(free) => {
                active[free] = Some(entry);
                free
            }
            None => {
                active.push(Some(entry));
                active.len() - 1
            }
        };
        Slot {
            activity: self.clone(),
            index,
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received.get()
    }
}

/// One download in flight.
pub struct Slot {
    activity: Rc<Activity>,
    index: usize,
}

impl Slot {
    fn with(&self, f: impl FnOnce(&mut Active)) {
        if let Some(Some(active)) = self.activity.active.borrow_mut().get_mut(self.index) {
            f(active);
        }
    }

    /// A new attempt starts: nothing received yet, size unknown.
    pub fn restart(&self) {
        self.with(|a| (a.got, a.total) = (0, None));
    }

    /// The response announced its length.
    pub fn set_total(&self, total: Option<u64>) {
        self.with(|a| a.total = total);
    }

    /// `n` more bytes arrived.
    pub fn add(&self, n: u64) {
        self.activity.received.set(self.activity.received.get() + n);
        self.with(|a| a.got += n);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.activity.active.borrow_mut()[self.index] = None;
    }
}

/// The progress bars: one overall bar and a few for downloads in flight, on stdout
/// when it is a terminal (hidden otherwise, and with `--quiet`).
pub struct Display {
    multi: MultiProgress,
    overall: ProgressBar,
    downloads: Vec<ProgressBar>,
    files: u64,
    bytes_known: bool,
    visible: bool,
}

impl Display {
    /// Bars for `files` downloads of `bytes` in all (if known), showing up to `lanes`
    /// downloads in flight.
    pub fn new(label: &str, files: u64, bytes: Option<u64>, lanes: usize, quiet: bool) -> Display {
        let visible = !quiet && std::io::stdout().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stdout_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let (overall, template) = match bytes {
            Some(total) => (
                ProgressBar::new(total),
                "{prefix} [{bar:32.cyan/blue}] {binary_bytes}/{binary_total_bytes} {msg} \
                 {binary_bytes_per_sec} ETA {eta}",
            ),
            None => (
                ProgressBar::new(files),
                "{prefix} [{bar:32.cyan/blue}] {pos}/{len} files {msg} ETA {eta}",
            ),
        };
        let overall = multi.add(overall);
        overall.set_style(
            ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        overall.set_prefix(label.to_owned());
        let lane_style = ProgressStyle::with_template("  {prefix:<24!} [{bar:24}] {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
        let downloads = (0..lanes)
            .map(|_| {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(lane_style.clone());
                bar
            })
            .collect();
        Display {
            multi,
            overall,
            downloads,
            files,
            bytes_known: bytes.is_some(),
            visible,
        }
    }

    /// Redraws from `activity`, `done` downloads having finished.
    pub fn refresh(&self, activity: &Activity, done: u64) {
        if !self.visible {
            return;
        }
        let received = activity.received();
        let in_flight = activity.active.borrow().iter().flatten().count();
        if self.bytes_known {
            self.overall
                .set_position(received.min(self.overall.length().unwrap_or(0)));
            self.overall
                .set_message(format!("{done}/{} files, {in_flight} active", self.files));
        } else {
            self.overall.set_position(done);
            self.overall
                .set_message(format!("({}, {in_flight} active)", HumanBytes(received)));
        }
        let active = activity.active.borrow();
        let mut shown = active.iter().flatten();
        for bar in &self.downloads {
            let Some(a) = shown.next() else {
                bar.set_prefix("");
                bar.set_message("");
                bar.set_length(1);
                bar.set_position(0);
                continue;
            };
            bar.set_prefix(a.name.clone());
            match a.total {
                Some(total) => {
                    bar.set_length(total.max(1));
                    bar.set_position(a.got.min(total));
                    bar.set_message(format!("{}/{}", HumanBytes(a.got), HumanBytes(total)));
                }
                None => {
                    bar.set_length(1);
                    bar.set_position(0);
                    bar.set_message(if a.got == 0 {
                        "waiting for the response".to_owned()
                    } else {
                        HumanBytes(a.got).to_string()
                    });
                }
            }
        }
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: &str) {
        if self.visible {
            let _ = self.multi.println(line);
        } else {
            println!("{line}");
        }
    }

    /// Removes the bars.
    pub fn finish(self) {
        for bar in &self.downloads {
            bar.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}
