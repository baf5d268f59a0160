//! The ratio bar chart (`docs/bench-ratios.svg`), drawn with plotters' SVG backend.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One bar: greenweave's speed-up over one peer.
pub struct Bar {
    /// `group: subject vs peer`.
    pub label: String,
    /// Peer time ÷ greenweave time.
    pub ratio: f64,
    /// The goal for this ratio, if the project has one.
    pub goal: Option<f64>,
}

/// Bar height, pixels per row.
const ROW: u32 = 24;
/// Width of the label column.
const LABEL_WIDTH: u32 = 400;
/// Width of the whole picture.
const WIDTH: u32 = 1100;

/// Bar colour where greenweave is faster.
const FASTER: RGBColor = RGBColor(46, 139, 87);
/// Bar colour where greenweave is slower.
const SLOWER: RGBColor = RGBColor(205, 92, 92);

/// Draws `bars` (top to bottom) on a log-scale axis centred on 1× and writes the SVG.
pub fn render(bars: &[Bar], path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let n = bars.len().max(1);
    let height = 110 + ROW * n as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    draw(&root, bars, n).map_err(|e| format!("drawing {}: {e}", path.display()))?;
    root.present()
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The x range: whole decades around every ratio, goal and 1×.
fn x_range(bars: &[Bar]) -> (f64, f64) {
    let values = bars
        .iter()
        .flat_map(|b| [Some(b.ratio), b.goal])
        .flatten()
        .filter(|v| v.is_finite() && *v > 0.0)
        .chain([1.0]);
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    // Room on the right for the value labels.
    // A little room left of the lowest decade too, so that its label is drawn.
    (
        10f64.powf(lo.log10().floor()) * 0.7,
        10f64.powf((hi * 3.0).log10().ceil()),
    )
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    bars: &[Bar],
    n: usize,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    root.fill(&WHITE)?;
    let root = root.titled(
        "greenweave's speed-up over each peer (peer time ÷ greenweave time, log scale)",
        ("sans-serif", 18),
    )?;
    let (labels, plot) = root.split_horizontally(LABEL_WIDTH);
    let (lo, hi) = x_range(bars);
    let mut chart = ChartBuilder::on(&plot)
        .margin_right(20)
        .margin_top(5)
        .x_label_area_size(45)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("right of 1×: greenweave faster; left: slower; black tick: the goal")
        .x_label_formatter(&|v| format!("{}×", (v * 1000.0).round() / 1000.0))
        .draw()?;

    // Parity.
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n as f64)],
        BLACK.stroke_width(1),
    )))?;
    let label_style =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    let value_style =
        TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, bar) in bars.iter().enumerate() {
        // Row i from the top.
        let y_mid = n as f64 - i as f64 - 0.5;
        let (y0, y1) = (y_mid - 0.3, y_mid + 0.3);
        let ratio = bar.ratio.clamp(lo, hi);
        let color = if bar.ratio >= 1.0 { FASTER } else { SLOWER };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(1.0, y0), (ratio, y1)],
            color.filled(),
        )))?;
        if let Some(goal) = bar.goal {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(goal, y0 - 0.15), (goal, y1 + 0.15)],
                BLACK.stroke_width(3),
            )))?;
        }
        // The value goes right of the bar, of 1× and of the goal tick.
        let right = ratio.max(1.0).max(bar.goal.unwrap_or(0.0).min(hi));
        let (px, py) = chart.backend_coord(&(right, y_mid));
        plot.draw(&Text::new(
            format_ratio(bar.ratio),
            (
                px - plot.get_base_pixel().0 + 5,
                py - plot.get_base_pixel().1,
            ),
            value_style.clone(),
        ))?;
        let y_label = py - labels.get_base_pixel().1;
        labels.draw(&Text::new(
            bar.label.clone(),
            (LABEL_WIDTH as i32 - 8, y_label),
            label_style.clone(),
        ))?;
    }
    Ok(())
}

/// `12×`, `3.4×`, `0.52×`.
pub fn format_ratio(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}×")
    } else if v >= 10.0 {
        format!("{v:.1}×")
    } else if v >= 0.1 {
        format!("{v:.2}×")
    } else {
        format!("{v:.3}×")
    }
}
