//! The request–response clients measured side by side (`target/reqresp_interleaved.json`,
//! written by `cargo bench --bench echo`: per group, each client's round trips per
//! second in every round, the clients taking turns within each round). A round's
//! ratio compares two clients measured seconds apart; the median over rounds is what
//! the report shows and judges the request–response ratio goals on.

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

    /// The median over the rounds of `subject`'s rate ÷ `peer`'s in the same round.
    pub fn speedup(&self, group: &str, subject: &str, peer: &str) -> Option<f64> {
        let (s, p) = (self.rates(group, subject)?, self.rates(group, peer)?);
        let ratios: Vec<f64> = s.iter().zip(&p).map(|(s, p)| s / p).collect();
        (!ratios.is_empty()).then(|| median(ratios))
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
         host's speed between criterion's runs above does not enter them; the goals are \
         judged on these):\n",
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
                data.speedup(group, subject, function)
                    .map_or_else(|| "—".to_owned(), format_ratio)
            };
            let _ = write!(row, " {cell} |");
        }
        let _ = writeln!(w, "{row}");
    }
}
