//! What the recorded history tells: the trend before an OOM kill (`oom show N` with a store)
//! and the forecast of when the limit is reached (`explain`, `memlens_oom_forecast_seconds`).
//! Computed from [`crate::history::points`] only; rendering is in `render/history.rs`.

use crate::history::{Fit, Point, fit, format_time, points, trusted};
use crate::model::Hierarchy;
use crate::store::Reader;
use serde::Serialize;

/// When the limit will be reached at the recorded rate.
#[derive(Debug, Clone, Serialize)]
pub struct Forecast {
    /// Seconds from the last sample until what cannot be reclaimed reaches the limit.
    pub seconds: f64,
    /// The moment that is (RFC 3339 UTC).
    pub at: String,
    /// Growth of what cannot be reclaimed, bytes per second.
    pub bytes_per_second: f64,
    /// Effective limit at the last sample.
    pub limit_bytes: u64,
    /// Not reclaimable at the last sample.
    pub not_reclaimable_bytes: u64,
    /// The fit used (least squares over the longest trusted window).
    pub fit: Fit,
    /// Window fitted, seconds.
    pub window_seconds: f64,
    /// How the forecast was made, in words.
    pub method: String,
}

/// Windows tried for the forecast, longest first: the longest window whose fit meets the
/// criterion wins, so a leak that began after a long plateau is still seen.
const WINDOWS_S: &[i64] = &[600, 300, 120, 60, 20];

/// The forecast for the cgroup at `path` from the samples up to `at` (ms): `None` unless
/// some window (covered for at least 80% of it, so at least 16 s of samples) whose
/// least-squares fit of not-reclaimable memory meets [`trusted`] (R² ≥ 0.9,
/// ≥ 10 points, rising, no drop above 10% of the rise: a sawtooth is silent) and there is a
/// limit above the last value.
pub fn forecast(r: &Reader, h: &Hierarchy, path: &str, at: i64) -> Option<Forecast> {
    let (pts, _) = points(r, h, path, at - WINDOWS_S[0] * 1000, at).ok()?;
    forecast_from(&pts)
}

/// [`forecast`] over points already read.
pub fn forecast_from(pts: &[Point]) -> Option<Forecast> {
    let last = pts.last()?;
    let limit = last.get("limit")?;
    let nr = last.get("not_reclaimable")?;
    let xy: Vec<(i64, f64)> = pts
        .iter()
        .filter_map(|p| Some((p.t, p.get("not_reclaimable")? as f64)))
        .collect();
    let (secs, f) = rise_to(&xy, limit)?;
    Some(Forecast {
        seconds: secs,
        at: format_time(last.t + (secs * 1000.0) as i64),
        bytes_per_second: f.slope,
        limit_bytes: limit,
        not_reclaimable_bytes: nr,
        window_seconds: f.seconds,
        method: method(&f, "not-reclaimable memory"),
        fit: f,
    })
}

/// The forecast's criterion over a series of (ms, bytes), oldest first: the longest window
/// of [`WINDOWS_S`] (covered for at least 80% of it) whose least-squares fit meets
/// [`trusted`]; returns the seconds from the last point until the line reaches `ceiling`,
/// and the fit. `None` when the last value is at or above `ceiling` or no window is trusted.
/// The one forecast of memlens: the OOM forecast (not reclaimable → the limit) and the
/// kubelet's eviction forecast (`node`: the root's working set → MemTotal − threshold).
pub fn rise_to(xy: &[(i64, f64)], ceiling: u64) -> Option<(f64, Fit)> {
    let &(last_t, last_v) = xy.last()?;
    if last_v >= ceiling as f64 {
        return None;
    }
    for w in WINDOWS_S {
        let from = last_t - w * 1000;
        let win: Vec<(i64, f64)> = xy.iter().filter(|p| p.0 >= from).copied().collect();
        // The window must be covered (not only its last seconds): a few seconds of any
        // growth look linear, the first rise of a sawtooth too.
        if win.first().is_none_or(|f| last_t - f.0 < w * 1000 * 8 / 10) {
            continue;
        }
        let Some(f) = fit(&win) else { continue };
        if !trusted(&f) {
            continue;
        }
        return Some(((ceiling as f64 - last_v) / f.slope, f));
    }
    None
}

/// How a forecast was made, in words (`what`: the series fitted).
pub fn method(f: &Fit, what: &str) -> String {
    format!(
        "least-squares line through {what} over the last {:.0} s ({} samples, R² {:.3} ≥ 0.9, largest drop {:.0}% ≤ 10% of the rise)",
        f.seconds,
        f.n,
        f.r2,
        f.max_drop * 100.0
    )
}

/// The killed cgroup's last minutes, and what they say.
#[derive(Debug, Clone, Serialize)]
pub struct OomTrend {
    /// The cgroup.
    pub cgroup: String,
    /// The kill (RFC 3339 UTC).
    pub killed_at: String,
    /// Samples from 10 min before to 1 min after.
    pub samples: usize,
    /// One row per 30 s before the kill (last values), for the table.
    pub table: Vec<TrendRow>,
    /// Not-reclaimable memory over the window, for the sparkline (one value per bucket).
    pub spark: Vec<Option<u64>>,
    /// The verdict.
    pub verdict: TrendVerdict,
    /// Damaged chunks skipped.
    pub problems: Vec<String>,
}

/// One row of the trend table.
#[derive(Debug, Clone, Serialize)]
pub struct TrendRow {
    /// Time (RFC 3339 UTC).
    pub at: String,
    /// usage, anon, file, shmem, kernel, not reclaimable, limit (bytes).
    pub usage_bytes: Option<u64>,
    /// anon.
    pub anon_bytes: Option<u64>,
    /// page cache (active + inactive file).
    pub file_bytes: Option<u64>,
    /// shmem.
    pub shmem_bytes: Option<u64>,
    /// kernel.
    pub kernel_bytes: Option<u64>,
    /// not reclaimable.
    pub not_reclaimable_bytes: Option<u64>,
    /// effective limit.
    pub limit_bytes: Option<u64>,
}

/// What filled the memory before the kill.
#[derive(Debug, Clone, Serialize)]
pub struct TrendVerdict {
    /// `steady-anon-growth`, `sudden-spike`, `shmem-growth`, `kernel-growth`,
    /// `limit-lowered`, `cache-not-reclaimed`, `unclear`, `not-recorded`.
    pub id: &'static str,
    /// One sentence.
    pub text: String,
    /// The slope of the figure named (MiB per minute), when the verdict rests on one.
    pub mib_per_minute: Option<f64>,
    /// The fit behind it.
    pub fit: Option<Fit>,
}

fn series(pts: &[Point], col: &str) -> Vec<(i64, f64)> {
    pts.iter()
        .filter_map(|p| Some((p.t, p.get(col)? as f64)))
        .collect()
}

fn mib(b: f64) -> f64 {
    b / 1_048_576.0
}

/// The trend of `path` before the kill at `kill_t` (ms).
pub fn oom_trend(r: &Reader, h: &Hierarchy, path: &str, kill_t: i64) -> Result<OomTrend, String> {
    let since = kill_t - crate::record::OOM_WINDOW_BEFORE_MS;
    let (all, problems) = points(
        r,
        h,
        path,
        since,
        kill_t + crate::record::OOM_WINDOW_AFTER_MS,
    )?;
    let before: Vec<Point> = all.iter().filter(|p| p.t <= kill_t).cloned().collect();
    let mut table = Vec::new();
    let mut next = since;
    for p in &before {
        if p.t >= next {
            table.push(TrendRow {
                at: format_time(p.t),
                usage_bytes: p.get("usage"),
                anon_bytes: p.get("anon"),
                file_bytes: match (p.get("active_file"), p.get("inactive_file")) {
                    (Some(a), Some(i)) => Some(a + i),
                    _ => None,
                },
                shmem_bytes: p.get("shmem"),
                kernel_bytes: p.get("kernel"),
                not_reclaimable_bytes: p.get("not_reclaimable"),
                limit_bytes: p.get("limit"),
            });
            next = p.t + 30_000;
        }
    }
    let buckets = 60;
    let mut spark = vec![None; buckets];
    for p in &before {
        let i =
            ((p.t - since) * buckets as i64 / (kill_t - since).max(1)).clamp(0, buckets as i64 - 1);
        spark[i as usize] = p.get("not_reclaimable").or(spark[i as usize]);
    }
    let verdict = verdict(&before, kill_t);
    Ok(OomTrend {
        cgroup: path.to_string(),
        killed_at: format_time(kill_t),
        samples: all.len(),
        table,
        spark,
        verdict,
        problems,
    })
}

/// The verdict from the samples before the kill (see [`TrendVerdict`] for the order).
pub fn verdict(before: &[Point], kill_t: i64) -> TrendVerdict {
    let v = |id, text: String, slope: Option<f64>, fit: Option<Fit>| TrendVerdict {
        id,
        text,
        mib_per_minute: slope,
        fit,
    };
    let (Some(first), Some(last)) = (before.first(), before.last()) else {
        return v(
            "not-recorded",
            "the store holds no samples of this cgroup before the kill".into(),
            None,
            None,
        );
    };
    if before.len() < 3 {
        return v(
            "not-recorded",
            format!("only {} samples before the kill", before.len()),
            None,
            None,
        );
    }
    // A lowered limit.
    for w in before.windows(2) {
        if let (Some(a), Some(b)) = (w[0].get("limit"), w[1].get("limit"))
            && b < a
        {
            return v(
                "limit-lowered",
                format!(
                    "the limit was lowered from {} to {} at {}, {:.0} s before the kill",
                    crate::render::bytes(Some(a)),
                    crate::render::bytes(Some(b)),
                    format_time(w[1].t),
                    (kill_t - w[1].t) as f64 / 1000.0
                ),
                None,
                None,
            );
        }
    }
    let nr = series(before, "not_reclaimable");
    let rise = |s: &[(i64, f64)]| match (s.first(), s.last()) {
        (Some(a), Some(b)) => b.1 - a.1,
        _ => 0.0,
    };
    let total = rise(&nr);
    // A sudden spike: most of the window's growth in its last 30 s.
    let recent: Vec<(i64, f64)> = nr
        .iter()
        .copied()
        .filter(|(t, _)| *t >= last.t - 30_000)
        .collect();
    let span_s = (last.t - first.t) as f64 / 1000.0;
    if span_s > 90.0 && total > 0.0 && rise(&recent) > 0.5 * total {
        return v(
            "sudden-spike",
            format!(
                "a sudden spike: not-reclaimable memory rose {:.1} MiB in the last {:.0} s before the kill, after a steadier {:.0} s",
                mib(rise(&recent)),
                (last.t - recent.first().map_or(last.t, |r| r.0)) as f64 / 1000.0,
                span_s
            ),
            None,
            None,
        );
    }
    // Steady growth of one part: the part with the largest rise, if its fit is trusted.
    let parts = [
        ("anon", "steady-anon-growth", "anon"),
        ("shmem", "shmem-growth", "shmem/tmpfs"),
        ("kernel", "kernel-growth", "kernel memory"),
    ];
    let mut best: Option<(f64, &str, &str, Fit, i64)> = None;
    for (col, id, name) in parts {
        let s = series(before, col);
        // Growth since the last time the part was at its minimum (a leak's start).
        let start = s
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map_or(0, |(i, _)| i);
        let tail = &s[start..];
        if let Some(f) = fit(tail)
            && rise(tail) > 0.0
            && best.as_ref().is_none_or(|b| rise(tail) > b.0)
        {
            best = Some((rise(tail), id, name, f, tail[0].0));
        }
        let _ = id;
    }
    if let Some((r, id, name, f, since)) = best
        && r > 0.25 * total.max(1.0)
        && f.r2 >= 0.9
        && f.n >= 5
    {
        let per_min = mib(f.slope * 60.0);
        let leak = if id == "steady-anon-growth" {
            " (leak-like)"
        } else {
            ""
        };
        return v(
            id,
            format!(
                "steady growth of {name} at {per_min:.1} MiB/min since {}{leak}: +{:.1} MiB in {:.0} s, R² {:.3}",
                format_time(since),
                mib(r),
                f.seconds,
                f.r2
            ),
            Some(per_min),
            Some(f),
        );
    }
    // Page cache that could not be reclaimed in time: most of usage was cache, and what
    // cannot be reclaimed stayed well below the limit.
    if let (Some(u), Some(a), Some(i), Some(n), Some(l)) = (
        last.get("usage"),
        last.get("active_file"),
        last.get("inactive_file"),
        last.get("not_reclaimable"),
        last.get("limit"),
    ) && (a + i) * 2 > u
        && (n as f64) < 0.8 * l as f64
    {
        return v(
            "cache-not-reclaimed",
            format!(
                "page cache ({}) filled most of the usage and what cannot be reclaimed was {} of a {} limit: the cache could not be reclaimed in time (dirty or writeback pages, or a burst faster than reclaim)",
                crate::render::bytes(Some(a + i)),
                crate::render::bytes(Some(n)),
                crate::render::bytes(Some(l))
            ),
            None,
            None,
        );
    }
    v(
        "unclear",
        format!(
            "no steady trend in the {:.0} s recorded before the kill (not-reclaimable changed by {:+.1} MiB)",
            span_s,
            mib(total)
        ),
        None,
        None,
    )
}

/// The kill's cgroup and wall time (ms), from its report.
fn kill_point(pm: &crate::oom::PostMortem) -> Result<(String, i64), String> {
    let cg = pm
        .report
        .oom_memcg
        .clone()
        .or_else(|| pm.report.task_memcg.clone())
        .ok_or("the report names no memory cgroup")?;
    let t = pm
        .report
        .time
        .as_deref()
        .ok_or("the report has no wall time")
        .and_then(|t| {
            crate::history::parse_time(t, crate::store::now_ms())
                .map_err(|_| "the report's time does not parse")
        })?;
    Ok((crate::cgroup::read::normalise(&cg), t))
}

/// The trend for one post-mortem, from the store (`oom show N`).
pub fn for_kill(
    dir: Option<&std::path::Path>,
    pm: &crate::oom::PostMortem,
) -> Result<OomTrend, String> {
    let r = crate::history::open_store(dir).map_err(|e| e.to_string())?;
    let h = crate::history::recorded_hierarchy(&r)?;
    let (cg, t) = kill_point(pm)?;
    oom_trend(&r, &h, &cg, t)
}

/// Writes the recorded moment just before the kill as a capture bundle (`--from` reads it),
/// plus `memlens-history.json`: the killed cgroup's points from 10 min before to 1 min after.
pub fn capture_kill(
    dir: Option<&std::path::Path>,
    pm: &crate::oom::PostMortem,
    out: &std::path::Path,
) -> Result<String, String> {
    let r = crate::history::open_store(dir).map_err(|e| e.to_string())?;
    let h = crate::history::recorded_hierarchy(&r)?;
    let (cg, t) = kill_point(pm)?;
    // The last sample before the kill: the moment the capture shows.
    let m = crate::history::moment(&r, t - 1)?;
    let (pts, _) = points(
        &r,
        &h,
        &cg,
        t - crate::record::OOM_WINDOW_BEFORE_MS,
        t + crate::record::OOM_WINDOW_AFTER_MS,
    )?;
    let hist = serde_json::json!({
        "cgroup": cg,
        "killed_at": format_time(t),
        "columns": crate::history::COLUMNS,
        "points": pts.iter().map(|p| serde_json::json!({"t": format_time(p.t), "values": p.values})).collect::<Vec<_>>(),
        "post_mortem": pm,
    });
    crate::history::write_capture(&m, out, &format!("oom kill {} of {cg}", pm.number), &hist)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(format!(
        "wrote {} ({} files at {}, {} samples of {cg}); analyse with: memlens --from {} show {cg}",
        out.display(),
        m.files.len(),
        format_time(m.t),
        pts.len(),
        out.display()
    ))
}

/// The store `serve --record` writes, for the `memlens_oom_forecast_seconds` metric.
static SERVE_STORE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Sets the store the exporter's forecast metric reads (`serve --record`).
pub fn set_serve_store(dir: std::path::PathBuf) {
    let _ = SERVE_STORE.set(dir);
}

/// The name of the forecast metric family.
pub const FORECAST_METRIC: &str = "memlens_oom_forecast_seconds";

/// Adds `memlens_oom_forecast_seconds` to an exporter snapshot, for the cgroups with a limit
/// whose non-reclaimable memory the store shows growing along a trusted fit (the forecast
/// rule's criterion); nothing without `serve --record`. Only cgroups above half their limit
/// are fitted, so the cost stays a few chunk reads per collection.
pub fn add_forecast_family(snap: &mut crate::metrics::Snapshot, h: &Hierarchy) {
    let Some(dir) = SERVE_STORE.get() else {
        return;
    };
    let Ok(r) = Reader::open(dir) else {
        return;
    };
    let now = crate::store::now_ms();
    let mut samples = Vec::new();
    for row in &snap.overview.rows {
        if row.percent_of_limit.is_none_or(|p| p < 50.0) {
            continue;
        }
        if let Some(f) = forecast(&r, h, &row.path, now) {
            samples.push(crate::metrics::Sample {
                labels: crate::metrics::labels(&row.path, &row.identity),
                value: crate::metrics::Value::Float(f.seconds),
            });
        }
    }
    snap.families.push(crate::metrics::Family {
        name: FORECAST_METRIC,
        help: "Seconds until the cgroup's non-reclaimable memory (anon + shmem + unreclaimable kernel) reaches its effective limit at the rate recorded by `serve --record`: a least-squares line over the longest window (20 s to 10 min) with R^2 >= 0.9, >= 10 samples and no drop above 10% of the rise; absent when no fit is that good (a sawtooth).",
        kind: crate::metrics::Kind::Gauge,
        samples,
    });
}

/// `memlens oom forget [N]`: without N, the windows kept past retention (numbered); with
/// N, releases that window ([`crate::store::forget_kept`]). Errors: (exit code, message).
pub fn forget(dir: Option<&std::path::Path>, n: Option<i64>) -> Result<String, (i32, String)> {
    let fail = |e: String| (crate::cli::exit::FAILURE, e);
    let r = crate::history::open_store(dir).map_err(|e| fail(e.to_string()))?;
    let list = |ws: &[crate::store::KeptWindow]| -> String {
        ws.iter()
            .map(|w| {
                format!(
                    "  {:>4}  {}  {} to {}\n",
                    w.n,
                    w.group,
                    crate::units::format_time(w.t0),
                    crate::units::format_time(w.t1)
                )
            })
            .collect()
    };
    let ws = r.kept_windows().map_err(|e| fail(e.to_string()))?;
    let Some(n) = n else {
        if ws.is_empty() {
            return Ok(format!(
                "The store {} keeps no window past retention.\n",
                r.dir().display()
            ));
        }
        return Ok(format!(
            "Windows kept past retention in {} (release one with `memlens oom forget N`):\n{}",
            r.dir().display(),
            list(&ws)
        ));
    };
    match crate::store::forget_kept(r.dir(), n).map_err(|e| fail(e.to_string()))? {
        Some(w) => Ok(format!(
            "Released window {} ({} {} to {}): its samples go with retention.\n",
            w.n,
            w.group,
            crate::units::format_time(w.t0),
            crate::units::format_time(w.t1)
        )),
        None => Err((
            crate::cli::exit::BAD_TARGET,
            if ws.is_empty() {
                format!(
                    "no kept window {n}: the store {} keeps none",
                    r.dir().display()
                )
            } else {
                format!("no kept window {n}; the store keeps:\n{}", list(&ws))
            },
        )),
    }
}
