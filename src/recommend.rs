//! `memlens recommend`: a request and a limit from what the recorded history says cannot be
//! reclaimed (field-2026 §4 items 4 and 16), not from the sampled working set krr and the
//! kubelet use (§1.15: that figure holds active page cache and misses spikes between scrapes).
//! Computed from [`crate::history::points`] only; rendering is in `render/recommend.rs`.

use crate::history::{self, Point};
use crate::model::Version;
use crate::store::Reader;
use serde::Serialize;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// The arguments of `memlens recommend`.
#[derive(Debug, Clone)]
pub struct Query {
    /// TARGET; None: every recorded cgroup with processes at some point.
    pub target: Option<String>,
    /// --since (None: the whole store).
    pub since: Option<String>,
    /// --margin, as a fraction (0.15 for 15%).
    pub margin: f64,
    /// --check-limit.
    pub check_limit: Option<u64>,
}

/// Nearest-rank percentiles and the peak of one figure over the samples.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dist {
    /// Samples with the figure.
    pub samples: usize,
    #[serde(rename = "p50_bytes")]
    pub p50: Option<u64>,
    #[serde(rename = "p95_bytes")]
    pub p95: Option<u64>,
    #[serde(rename = "p99_bytes")]
    pub p99: Option<u64>,
    #[serde(rename = "peak_bytes")]
    pub peak: Option<u64>,
}

impl Dist {
    /// Nearest rank (the smallest sample at or above the share): a recorded value, never
    /// an interpolation between two.
    pub fn of(mut v: Vec<u64>) -> Dist {
        v.sort_unstable();
        let q = |p: f64| -> Option<u64> {
            if v.is_empty() {
                return None;
            }
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v.get(rank - 1).copied()
        };
        Dist {
            samples: v.len(),
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
            peak: v.last().copied(),
        }
    }
}

/// What `--check-limit SIZE` concludes.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    #[serde(rename = "limit_bytes")]
    pub limit: u64,
    /// `safe`, `needs-reclaim` or `will-oom`.
    pub verdict: String,
    /// With `needs-reclaim`: how much must be reclaimed first (usage now − SIZE).
    #[serde(rename = "reclaim_bytes")]
    pub reclaim: Option<u64>,
    /// Why, in words, with the figures compared.
    pub reason: String,
}

/// One cgroup's recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// cgroup path within the hierarchy.
    pub cgroup: String,
    /// Container/pod name as recorded (identity events), when known.
    pub name: Option<String>,
    /// First and last sample (ms since the epoch) and the interval between samples.
    pub first_ms: i64,
    pub last_ms: i64,
    pub interval_ms: Option<i64>,
    /// anon + shmem + (kernel − slab_reclaimable) + swap, per sample.
    pub not_reclaimable: Dist,
    /// The formula of [`Self::not_reclaimable`].
    pub not_reclaimable_formula: String,
    /// usage − inactive_file (what krr and the kubelet use), per sample.
    pub working_set: Dist,
    /// usage, per sample.
    pub usage: Dist,
    /// The kernel's own high-water mark of usage (v1 memory.max_usage_in_bytes, v2
    /// memory.peak) at the last sample: exact (no spike missed) but since the cgroup was
    /// created (or the peak last reset), and it includes page cache.
    #[serde(rename = "kernel_usage_peak_bytes")]
    pub kernel_usage_peak: Option<u64>,
    /// Which peaks are exact and which sampled.
    pub peak_note: String,
    /// Counter rises over the range (None: the kernel has no such counter).
    pub limit_hits: Option<u64>,
    pub high_events: Option<u64>,
    pub oom_kills: Option<u64>,
    /// Stall time on memory over the range (memory.pressure some/full total, µs), and the
    /// highest some avg10 seen.
    pub pressure_some_usec: Option<u64>,
    pub pressure_full_usec: Option<u64>,
    pub pressure_some_avg10_max: Option<f32>,
    /// Limit and memory.high at the last sample (None: unlimited or not provided).
    #[serde(rename = "limit_bytes")]
    pub limit: Option<u64>,
    #[serde(rename = "high_bytes")]
    pub high: Option<u64>,
    /// Recommended request (p99 of not_reclaimable, rounded up to a MiB) and limit
    /// (peak of not_reclaimable × (1 + margin), rounded up to a MiB).
    #[serde(rename = "request_bytes")]
    pub request: Option<u64>,
    #[serde(rename = "recommended_limit_bytes")]
    pub rec_limit: Option<u64>,
    pub formula: String,
    pub margin: f64,
    /// recommended − set (negative: the limit can come down).
    #[serde(rename = "limit_change_bytes")]
    pub limit_change: Option<i64>,
    /// What the working-set rule (krr: peak working set + 15%) would give, for comparison.
    #[serde(rename = "krr_style_limit_bytes")]
    pub krr_limit: Option<u64>,
    /// Figures now (the last sample).
    #[serde(rename = "usage_now_bytes")]
    pub usage_now: Option<u64>,
    #[serde(rename = "not_reclaimable_now_bytes")]
    pub not_reclaimable_now: Option<u64>,
    pub check: Option<Check>,
    /// `--prometheus`: the `instance` label the series came from (which node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// The result of `memlens recommend`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub since_ms: i64,
    pub until_ms: i64,
    pub cgroup_version: u8,
    pub recommendations: Vec<Recommendation>,
    pub problems: Vec<String>,
}

fn round_up_mib(b: u64) -> u64 {
    b.div_ceil(MIB).saturating_mul(MIB)
}

/// The counter's rise between the first and last sample that have it (a counter that went
/// down, after a cgroup was re-created, counts from there).
fn rise(pts: &[Point], f: impl Fn(&Point) -> Option<u64>) -> Option<u64> {
    let mut total: Option<u64> = None;
    let mut prev: Option<u64> = None;
    for v in pts.iter().filter_map(&f) {
        let t = total.get_or_insert(0);
        if let Some(p) = prev {
            *t += if v >= p { v - p } else { v };
        }
        prev = Some(v);
    }
    total
}

/// The non-reclaimable figure of one sample: not_reclaimable plus swap when swap is
/// recorded (swapped-out anon is still memory the workload needs; without swap it would be
/// resident).
fn need(p: &Point) -> Option<u64> {
    let n = p.get("not_reclaimable")?;
    Some(n.saturating_add(p.get("swap").unwrap_or(0)))
}

/// `--check-limit SIZE` against the recorded peak and the figures now (§4 item 16).
pub fn check(
    size: u64,
    nr_peak: Option<u64>,
    nr_now: Option<u64>,
    usage_now: Option<u64>,
) -> Check {
    let mib = |b: u64| b as f64 / MIB as f64;
    if let Some(n) = nr_now.filter(|n| *n >= size) {
        return Check {
            limit: size,
            verdict: "will-oom".into(),
            reclaim: None,
            reason: format!(
                "what cannot be reclaimed now ({:.1} MiB) does not fit under {:.1} MiB",
                mib(n),
                mib(size)
            ),
        };
    }
    if let Some(p) = nr_peak.filter(|p| *p >= size) {
        return Check {
            limit: size,
            verdict: "will-oom".into(),
            reclaim: None,
            reason: format!(
                "the recorded peak of what cannot be reclaimed ({:.1} MiB) does not fit under {:.1} MiB: the next such peak is killed",
                mib(p),
                mib(size)
            ),
        };
    }
    match usage_now {
        Some(u) if u > size => Check {
            limit: size,
            verdict: "needs-reclaim".into(),
            reclaim: Some(u - size),
            reason: format!(
                "usage now is {:.1} MiB: {:.1} MiB of reclaimable memory must go first (v2: memory.reclaim; else the kernel reclaims at the new limit, or OOM-kills if it cannot)",
                mib(u),
                mib(u - size)
            ),
        },
        _ => Check {
            limit: size,
            verdict: "safe".into(),
            reclaim: None,
            reason: format!(
                "above the recorded non-reclaimable peak{} and the usage now",
                nr_peak.map_or(String::new(), |p| format!(" ({:.1} MiB)", mib(p)))
            ),
        },
    }
}

/// Stall time some/full (µs) over the range and the highest some avg10.
type Pressure = (Option<u64>, Option<u64>, Option<f32>);

/// Pressure over the range (memory.pressure) and the kernel's usage high-water mark at the
/// last sample (v1 memory.max_usage_in_bytes, v2 memory.peak), from one read of the group.
fn pressure_and_peak(
    r: &Reader,
    dir: &str,
    v: Version,
    since: i64,
    until: i64,
) -> (Pressure, Option<u64>) {
    let Ok((series, _)) = r.group_samples(&[dir], since, until) else {
        return ((None, None, None), None);
    };
    let peak_file = match v {
        Version::V1 => "memory.max_usage_in_bytes",
        Version::V2 => "memory.peak",
    };
    let peak = series
        .get(&format!("{dir}/{peak_file}"))
        .and_then(|ss| ss.last())
        .and_then(|s| r.text(s))
        .and_then(|b| crate::cgroup::parse::number(&String::from_utf8_lossy(&b)).ok());
    let ps: Vec<crate::model::Pressure> = series
        .get(&format!("{dir}/memory.pressure"))
        .map(|ss| {
            ss.iter()
                .filter_map(|s| r.text(s))
                .filter_map(|b| crate::cgroup::parse::pressure(&String::from_utf8_lossy(&b)).ok())
                .collect()
        })
        .unwrap_or_default();
    let (Some(a), Some(b)) = (ps.first(), ps.last()) else {
        return ((None, None, None), peak);
    };
    let avg = ps.iter().map(|p| p.some.avg10).fold(0.0f32, f32::max);
    (
        (
            Some(b.some.total_usec.saturating_sub(a.some.total_usec)),
            Some(b.full.total_usec.saturating_sub(a.full.total_usec)),
            Some(avg),
        ),
        peak,
    )
}

/// The latest recorded name of each cgroup (identity events), read once for all cgroups.
fn names(r: &Reader) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for e in r.events(i64::MIN, i64::MAX).unwrap_or_default() {
        if e.kind != "identity" {
            continue;
        }
        let n = &e.data["names"];
        if let (Some(c), Some(name)) = (
            e.cgroup,
            n["container"]
                .as_str()
                .or(n["runtime_name"].as_str())
                .or(n["pod"].as_str()),
        ) {
            out.insert(c, name.to_string());
        }
    }
    out
}

/// One cgroup's recommendation from its points.
#[allow(clippy::too_many_arguments)]
pub fn from_points(
    cgroup: &str,
    name: Option<String>,
    pts: &[Point],
    interval_ms: Option<i64>,
    margin: f64,
    kernel_usage_peak: Option<u64>,
    pressure: (Option<u64>, Option<u64>, Option<f32>),
    check_limit: Option<u64>,
) -> Option<Recommendation> {
    let first = pts.first()?;
    let last = pts.last()?;
    let not_reclaimable = Dist::of(pts.iter().filter_map(need).collect());
    let working_set = Dist::of(pts.iter().filter_map(|p| p.get("working_set")).collect());
    let usage = Dist::of(pts.iter().filter_map(|p| p.get("usage")).collect());
    let request = not_reclaimable.p99.map(round_up_mib);
    let rec_limit = not_reclaimable
        .peak
        .map(|p| round_up_mib((p as f64 * (1.0 + margin)).ceil() as u64))
        .map(|l| l.max(request.unwrap_or(0)));
    let limit = last.get("limit");
    let limit_change = match (rec_limit, limit) {
        (Some(r), Some(l)) => Some(r as i64 - l as i64),
        _ => None,
    };
    let every = interval_ms.map_or("each sample".to_string(), |i| format!("every {i} ms"));
    let nr_now = need(last);
    Some(Recommendation {
        cgroup: cgroup.to_string(),
        name,
        first_ms: first.t,
        last_ms: last.t,
        interval_ms,
        not_reclaimable,
        not_reclaimable_formula:
            "anon + shmem + (kernel − slab_reclaimable) + swap (memory.stat; Documentation/admin-guide/cgroup-v2.rst \"memory.stat\")"
                .into(),
        working_set: working_set.clone(),
        usage,
        kernel_usage_peak,
        peak_note: format!(
            "the non-reclaimable and working-set peaks are sampled ({every}): a spike between samples is missed; the kernel usage peak is exact but includes page cache"
        ),
        limit_hits: rise(pts, |p| p.limit_hits),
        high_events: rise(pts, |p| p.high_events),
        oom_kills: rise(pts, |p| p.oom_kills),
        pressure_some_usec: pressure.0,
        pressure_full_usec: pressure.1,
        pressure_some_avg10_max: pressure.2,
        limit,
        high: last.get("high"),
        request,
        rec_limit,
        formula: format!(
            "request = p99(not_reclaimable); limit = max(peak(not_reclaimable) × (1 + {:.0}%), request); both rounded up to a MiB",
            margin * 100.0
        ),
        margin,
        limit_change,
        krr_limit: working_set
            .peak
            .map(|p| round_up_mib((p as f64 * 1.15).ceil() as u64)),
        usage_now: last.get("usage"),
        not_reclaimable_now: nr_now,
        check: check_limit.map(|s| check(s, nr_peak_of(pts), nr_now, last.get("usage"))),
        instance: None,
    })
}

fn nr_peak_of(pts: &[Point]) -> Option<u64> {
    pts.iter().filter_map(need).max()
}

/// Builds `memlens recommend` from the store. Errors: (exit code, message).
pub fn recommend(dir: Option<&Path>, q: &Query) -> Result<Report, (i32, String)> {
    let fail = |e: String| (crate::cli::exit::FAILURE, e);
    let bad = |e: String| (crate::cli::exit::BAD_TARGET, e);
    let r = history::open_store(dir).map_err(|e| fail(e.to_string()))?;
    let h = history::recorded_hierarchy(&r).map_err(fail)?;
    let now = crate::store::now_ms();
    let since = match &q.since {
        Some(s) => history::parse_since(s, now).map_err(bad)?,
        None => i64::MIN,
    };
    let (lo, hi) = r
        .range()
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("the store holds no samples yet".into()))?;
    let (since, until) = (since.max(lo), hi);
    let targets = match &q.target {
        Some(t) => vec![history::resolve(&r, &h, t)?],
        None => history::recorded_cgroups(&r, &h)
            .into_iter()
            .filter(|c| c != "/")
            .collect(),
    };
    let interval = r.meta("interval_ms").and_then(|v| v.parse::<i64>().ok());
    let names = names(&r);
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for path in targets {
        let (pts, p) = history::points(&r, &h, &path, since, until).map_err(fail)?;
        problems.extend(p);
        // Without a TARGET, only cgroups that held processes (containers, services), not
        // the empty parents (kubepods.slice, ...).
        if q.target.is_none()
            && !pts
                .iter()
                .any(|p| p.pids.as_ref().is_some_and(|v| !v.is_empty()))
        {
            continue;
        }
        let dir = crate::cgroup::read::fs_path(&h, &path)
            .to_string_lossy()
            .to_string();
        let (psi, kpeak) = pressure_and_peak(&r, &dir, h.version, since, until);
        let rec = from_points(
            &path,
            names.get(&path).cloned(),
            &pts,
            interval,
            q.margin,
            kpeak,
            psi,
            q.check_limit,
        );
        match rec {
            Some(x) => out.push(x),
            None if q.target.is_some() => {
                return Err(fail(format!("{path}: no samples in the range")));
            }
            None => {}
        }
    }
    problems.sort();
    problems.dedup();
    Ok(Report {
        since_ms: since,
        until_ms: until,
        cgroup_version: h.version.number(),
        recommendations: out,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Dist::of((1..=100).collect());
        assert_eq!(
            (d.p50, d.p95, d.p99, d.peak),
            (Some(50), Some(95), Some(99), Some(100))
        );
        assert_eq!(Dist::of(vec![]).peak, None);
        assert_eq!(Dist::of(vec![7]).p99, Some(7));
    }

    #[test]
    fn check_limit_verdicts() {
        let m = MIB;
        assert_eq!(
            check(50 * m, Some(64 * m), Some(60 * m), Some(300 * m)).verdict,
            "will-oom"
        );
        assert_eq!(
            check(62 * m, Some(64 * m), Some(60 * m), Some(300 * m)).verdict,
            "will-oom"
        );
        let c = check(100 * m, Some(64 * m), Some(60 * m), Some(300 * m));
        assert_eq!(
            (c.verdict.as_str(), c.reclaim),
            ("needs-reclaim", Some(200 * m))
        );
        assert_eq!(
            check(400 * m, Some(64 * m), Some(60 * m), Some(300 * m)).verdict,
            "safe"
        );
    }

    #[test]
    fn counter_rise_survives_a_reset() {
        let p = |v: u64| Point {
            t: 0,
            values: vec![],
            limit_hits: Some(v),
            high_events: None,
            oom_kills: None,
            pids: None,
        };
        assert_eq!(rise(&[p(3), p(5), p(1), p(2)], |p| p.limit_hits), Some(4));
        assert_eq!(rise(&[], |p| p.limit_hits), None);
    }
}
