//! The request–response clients measured side by side (`target/reqresp_interleaved.json`,
//! written by `cargo bench --bench echo`: per group, each client's round trips per
//! second in every round, the clients taking turns within each round). A round's
//! ratio compares two clients measured seconds apart; the median over rounds is what
//! the report shows and judges the request–response ratio goals on, with a 90 %
//! confidence interval for that median (from the order statistics of the rounds'
//! ratios, which assumes nothing of their distribution but that rounds are
//! independent), so a reader sees whether a goal met or missed by a hair is decided by
//! the data or by chance.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::chart::format_ratio;
use crate::report::format_count;

/// The saved rounds.
pub struct Interleaved(Value);

impl Interleaved {
    /// Reads `path`; `None` if there is nothing (or nothing readable) there.
    pub fn load(path: &Path) -> Option<Interleaved> {
        crate::data::read_json(path).map(Interleaved)
    }

    /// `function`'s round trips per second in each round of `group`.
    fn rates(&self, group: &str, function: &str) -> Option<Vec<f64>> {
        let rates: Vec<f64> = self.0[group]["functions"][function]
            .as_array()?
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        (!rates.is_empty()).then_some(rates)
    }

    /// The median of `function`'s rates in `group`.
    fn median_rate(&self, group: &str, function: &str) -> Option<f64> {
        Some(median(self.rates(group, function)?))
    }

    /// The median over the rounds of `subject`'s rate ÷ `peer`'s in the same round,
    /// with its confidence interval.
    pub fn speedup(&self, group: &str, subject: &str, peer: &str) -> Option<SideBySide> {
        let (s, p) = (self.rates(group, subject)?, self.rates(group, peer)?);
        let mut ratios: Vec<f64> = s.iter().zip(&p).map(|(s, p)| s / p).collect();
        if ratios.is_empty() {
            return None;
        }
        ratios.sort_by(f64::total_cmp);
        let interval = median_interval(ratios.len()).map(|(lo, hi)| (ratios[lo], ratios[hi]));
        Some(SideBySide {
            median: median(ratios),
            interval,
        })
    }

    /// Rounds measured in `group`.
    fn rounds(&self, group: &str) -> usize {
        self.0[group]["functions"]
            .as_object()
            .and_then(|f| f.values().next())
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }
}

/// A side-by-side ratio: the median of the rounds' ratios and, with enough rounds, the
/// 90 % confidence interval for it.
#[derive(Clone, Copy, Debug)]
pub struct SideBySide {
    /// The median of the rounds' ratios.
    pub median: f64,
    /// The interval's ends; `None` with fewer than five rounds, too few for one.
    pub interval: Option<(f64, f64)>,
}

impl SideBySide {
    /// The interval as text, `[0.95×, 0.98×]`, or nothing without one.
    pub fn interval_text(&self) -> String {
        self.interval.map_or_else(String::new, |(lo, hi)| {
            format!("[{}, {}]", format_ratio(lo), format_ratio(hi))
        })
    }
}

/// Confidence level of the intervals.
const CONFIDENCE: f64 = 0.90;

/// The indices, into `n` sorted samples, of the order statistics that bound the
/// population median with at least `CONFIDENCE`: with the largest `k` for which
/// P(Binomial(n, ½) < k) ≤ (1 − `CONFIDENCE`) / 2, the `k`-th smallest and the
/// `k`-th largest sample, `(k − 1, n − k)` counting from 0. `None` when even the
/// extremes cannot reach that confidence (fewer than five samples at 90 %).
fn median_interval(n: usize) -> Option<(usize, usize)> {
    let tail = (1.0 - CONFIDENCE) / 2.0;
    // P(X = i) for X ~ Binomial(n, 1/2), summed from i = 0 while it stays in the tail.
    let mut p = 0.5f64.powi(i32::try_from(n).ok()?);
    let mut below = 0.0;
    let mut k = 0;
    while k < n / 2 && below + p <= tail {
        below += p;
        p *= (n - k) as f64 / (k + 1) as f64;
        k += 1;
    }
    (k > 0).then(|| (k - 1, n - k))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The side-by-side table of one request–response group: each client's median rate and
/// the median round ratios of the `subjects` against it.
pub fn render(
    w: &mut String,
    group: &str,
    functions: &[(&str, &str)],
    subjects: &[&str],
    interleaved: Option<&Interleaved>,
) {
    let Some(data) = interleaved.filter(|d| d.rounds(group) > 0) else {
        let _ = writeln!(
            w,
            "\nSide by side: not measured (`cargo bench --bench echo` writes \
             `target/reqresp_interleaved.json`).\n"
        );
        return;
    };
    let _ = writeln!(
        w,
        "\nSide by side (the four clients, each with a server of its own, all up at once and \
         taking turns: {} rounds, each client running one command per round; the medians over the \
         rounds, and for the ratios the median of each round's ratio, so a drift of the \
         host's speed between criterion's runs above does not enter them; in brackets, the \
         90 % confidence interval of that median; the goals are judged on these \
         medians):\n",
        data.rounds(group)
    );
    let mut header = String::from("| Function | round trips/s (median) |");
    let mut rule = String::from("|---|---|");
    for subject in subjects {
        let _ = write!(header, " `{subject}` ratio |");
        rule.push_str("---|");
    }
    let _ = writeln!(w, "{header}\n{rule}");
    for &(function, _) in functions {
        let rate = data
            .median_rate(group, function)
            .map_or("not measured".to_owned(), format_count);
        let mut row = format!("| `{function}` | {rate} |");
        for subject in subjects {
            let cell = if *subject == function {
                "—".to_owned()
            } else {
                data.speedup(group, subject, function).map_or_else(
                    || "—".to_owned(),
                    |r| format!("{} {}", format_ratio(r.median), r.interval_text()),
                )
            };
            let _ = write!(row, " {cell} |");
        }
        let _ = writeln!(w, "{row}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(X < k) for X ~ Binomial(n, 1/2), by direct summation.
    fn below(n: usize, k: usize) -> f64 {
        let mut c = 1.0;
        let mut sum = 0.0;
        for i in 0..k {
            sum += c;
            c = c * (n - i) as f64 / (i + 1) as f64;
        }
        sum * 0.5f64.powi(n as i32)
    }

    #[test]
    fn the_interval_is_the_widest_whose_tails_stay_under_five_per_cent() {
        for n in 5..=200 {
            let (lo, hi) = median_interval(n).expect("five or more samples have one");
            assert_eq!(lo + hi, n - 1, "symmetric for n = {n}");
            // `lo` samples below the interval: their tail is within 5 %...
            assert!(
                below(n, lo + 1) <= 0.05 + 1e-12,
                "n = {n}: too narrow a tail"
            );
            // ...and one more would exceed it.
            assert!(below(n, lo + 2) > 0.05, "n = {n}: not the widest");
        }
    }

    #[test]
    fn known_intervals_from_binomial_tables() {
        // The classic tables' 90 % (two-sided) ranks, 1-based: n = 15 → 4th and 12th,
        // n = 45 → 17th and 29th.
        assert_eq!(median_interval(15), Some((3, 11)));
        assert_eq!(median_interval(45), Some((16, 28)));
    }

    #[test]
    fn too_few_samples_have_no_interval() {
        for n in 0..5 {
            assert_eq!(median_interval(n), None, "n = {n}");
        }
    }
}
