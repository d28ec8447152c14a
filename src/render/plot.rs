//! `memlens plot`: a cgroup's recorded breakdown as a stacked area (anon, active file,
//! inactive file, shmem, kernel, swap) with the limit and memory.high as lines and OOM kills
//! marked, PNG or SVG by the file's extension (plotters).

use crate::history::Point;
use plotters::prelude::*;
use std::path::Path;

/// Fonts tried for the text, in order (MEMLENS_FONT first). plotters' ab_glyph backend draws
/// with a TrueType font we hand it; reading one from the system keeps the binary small.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
];

fn register_font() -> Result<(), String> {
    let env = std::env::var("MEMLENS_FONT").ok();
    let candidates = env.iter().map(String::as_str).chain(FONTS.iter().copied());
    for f in candidates {
        if let Ok(bytes) = std::fs::read(f) {
            // plotters keeps the font for the process: leak it once.
            let b: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, b).is_ok() {
                return Ok(());
            }
        }
    }
    Err(format!(
        "no TrueType font found for the plot's text (tried {}; set MEMLENS_FONT=FILE.ttf, or install fonts-dejavu-core)",
        FONTS.join(", ")
    ))
}

/// Layers of the stacked area, bottom first: (column, label, colour).
const LAYERS: &[(&str, &str, RGBColor)] = &[
    ("anon", "anon", RGBColor(214, 39, 40)),
    ("shmem", "shmem", RGBColor(148, 103, 189)),
    ("kernel", "kernel", RGBColor(140, 86, 75)),
    ("active_file", "active file", RGBColor(31, 119, 180)),
    ("inactive_file", "inactive file", RGBColor(158, 202, 225)),
    ("swap", "swap", RGBColor(127, 127, 127)),
];

/// `bytes` in the binary unit that fits `max`.
fn unit(max: f64) -> (f64, &'static str) {
    const U: [(f64, &str); 4] = [
        (1024.0 * 1024.0 * 1024.0 * 1024.0, "TiB"),
        (1024.0 * 1024.0 * 1024.0, "GiB"),
        (1024.0 * 1024.0, "MiB"),
        (1024.0, "KiB"),
    ];
    U.iter()
        .find(|(d, _)| max >= *d * 2.0)
        .copied()
        .unwrap_or((1.0, "B"))
}

fn hms(ms: i64) -> String {
    let s = crate::history::format_time(ms);
    s.get(11..19).unwrap_or(&s).to_string()
}

/// Draws the plot into `out` (`.png` or `.svg`).
pub fn plot(out: &Path, title: &str, pts: &[Point], kills: &[i64]) -> Result<(), String> {
    if pts.len() < 2 {
        return Err(format!(
            "{} samples in the range: nothing to plot",
            pts.len()
        ));
    }
    register_font()?;
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let size = (1200, 600);
    match ext.as_deref() {
        Some("png") => draw(
            BitMapBackend::new(out, size).into_drawing_area(),
            title,
            pts,
            kills,
        ),
        Some("svg") => draw(
            SVGBackend::new(out, size).into_drawing_area(),
            title,
            pts,
            kills,
        ),
        _ => Err(format!(
            "{}: the file must end in .png or .svg",
            out.display()
        )),
    }
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    pts: &[Point],
    kills: &[i64],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    area.fill(&WHITE).map_err(e)?;
    let (t0, t1) = (pts[0].t, pts[pts.len() - 1].t.max(pts[0].t + 1));
    // Cumulative tops of the layers per point.
    let tops: Vec<Vec<f64>> = pts
        .iter()
        .map(|p| {
            let mut acc = 0.0;
            LAYERS
                .iter()
                .map(|(c, _, _)| {
                    acc += p.get(c).unwrap_or(0) as f64;
                    acc
                })
                .collect()
        })
        .collect();
    let ymax = pts
        .iter()
        .zip(&tops)
        .map(|(p, t)| {
            let stack = t.last().copied().unwrap_or(0.0);
            let usage = p.get("usage").unwrap_or(0) as f64;
            let lim = p.get("limit").map_or(0.0, |l| l as f64);
            stack.max(usage).max(lim)
        })
        .fold(1.0, f64::max)
        * 1.08;
    // Plotted in the unit, so the axis ticks fall on round MiB/GiB.
    let (div, uname) = unit(ymax);
    let ymax = ymax / div;
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(t0..t1, 0.0..ymax)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|t| hms(*t))
        .y_label_formatter(&|v| format!("{v} {uname}"))
        .x_desc("time (UTC)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    // Top layer first, so each lower cumulative area covers its part.
    for (i, (_, label, colour)) in LAYERS.iter().enumerate().rev() {
        let c = *colour;
        chart
            .draw_series(AreaSeries::new(
                pts.iter().zip(&tops).map(|(p, t)| (p.t, t[i] / div)),
                0.0,
                c.mix(0.85),
            ))
            .map_err(e)?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    let line = |col: &'static str| {
        pts.iter()
            .filter_map(move |p| Some((p.t, p.get(col)? as f64 / div)))
            .collect::<Vec<_>>()
    };
    let limit = line("limit");
    if !limit.is_empty() {
        chart
            .draw_series(LineSeries::new(limit, BLACK.stroke_width(2)))
            .map_err(e)?
            .label("limit")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK.stroke_width(2)));
    }
    let high = line("high");
    if !high.is_empty() {
        let orange = RGBColor(255, 127, 14);
        chart
            .draw_series(LineSeries::new(high, orange.stroke_width(2)))
            .map_err(e)?
            .label("memory.high")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], orange.stroke_width(2)));
    }
    let usage = line("usage");
    chart
        .draw_series(LineSeries::new(usage, BLUE.stroke_width(1)))
        .map_err(e)?
        .label("usage")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLUE.stroke_width(1)));
    for k in kills.iter().filter(|k| **k >= t0 && **k <= t1) {
        chart
            .draw_series(std::iter::once(PathElement::new(
                [(*k, 0.0), (*k, ymax)],
                RED.stroke_width(3),
            )))
            .map_err(e)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("OOM kill {}", hms(*k)),
                (*k + (t1 - t0) / 150, ymax * 0.97),
                ("sans-serif", 15).into_font().color(&RED),
            )))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    area.present().map_err(e)?;
    Ok(())
}
