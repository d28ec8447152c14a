//! `memlens recommend`: a request and a limit from what the recorded history says cannot be
//! reclaimed (field-2026 §4 items 4 and 16), not from the sampled working set krr and the
//! kubelet use (§1.15: that figure holds active page cache and misses spikes between scrapes).
//! Computed from [`crate::history::points`] only; rendering is in `render/recommend.rs`.

use crate::history::{self, Point};
use crate::model::Version;
use crate::store::Reader;
use crate::store::codec::{SampleRef, Samples};
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
    /// Whether the usage and working-set peaks come from the recorder's exact interval
    /// peaks (memory.peak reset per descriptor, 6.12+) or the samples, and why not.
    pub peak_source: history::PeakSource,
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
/// last sample (v1 memory.max_usage_in_bytes, v2 memory.peak), from the group's samples.
fn pressure_and_peak(
    r: &Reader,
    series: &std::collections::BTreeMap<String, Samples>,
    dir: &str,
    v: Version,
) -> (Pressure, Option<u64>) {
    let peak = series
        .get(&format!("{dir}/{}", peak_file(v)))
        .and_then(|ss| ss.last())
        .and_then(|s| r.text_of(s.tpl, s.vals))
        .and_then(|b| crate::cgroup::parse::number(&String::from_utf8_lossy(&b)).ok());
    // An unchanged sample is not rendered and parsed again (most are, in an idle cgroup).
    let mut ps: Vec<crate::model::Pressure> = Vec::new();
    let mut prev: Option<SampleRef> = None;
    for s in series
        .get(&format!("{dir}/memory.pressure"))
        .into_iter()
        .flat_map(Samples::iter)
    {
        if prev.is_some_and(|p| p.tpl == s.tpl && p.vals == s.vals) {
            continue;
        }
        prev = Some(s);
        if let Some(p) = r
            .text_of(s.tpl, s.vals)
            .and_then(|b| crate::cgroup::parse::pressure(&String::from_utf8_lossy(&b)).ok())
        {
            ps.push(p);
        }
    }
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

fn peak_file(v: Version) -> &'static str {
    match v {
        Version::V1 => "memory.max_usage_in_bytes",
        Version::V2 => "memory.peak",
    }
}

/// The files a recommendation reads of each cgroup: what [`history::points_of`] needs
/// (the metrics files, memory.high, cgroup.procs), memory.pressure and the kernel peak. The
/// others (numa_stat, slabinfo, settings) are neither decoded nor kept.
fn wanted_file(v: Version, path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    crate::cgroup::read::metrics_files(v).contains(&name)
        || [
            "memory.high",
            "memory.pressure",
            "cgroup.procs",
            peak_file(v),
            history::limit_file(v),
            crate::cgroup::peak::RECORDED_FILE,
        ]
        .contains(&name)
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
    let mut working_set = Dist::of(pts.iter().filter_map(|p| p.get("working_set")).collect());
    let mut usage = Dist::of(pts.iter().filter_map(|p| p.get("usage")).collect());
    // The exact usage peak (each interval's, from memory.peak) where recorded; the working
    // set at that peak is the peak less inactive_file at the interval's closing sample.
    let peak_source = history::PeakSource::of(pts);
    let exact = |f: &dyn Fn(&Point) -> Option<u64>| pts.iter().filter_map(f).max();
    if let Some(ip) = exact(&|p| p.get("usage_interval_peak")) {
        usage.peak = usage.peak.max(Some(ip));
    }
    if let Some(ip) = exact(&|p| {
        Some(
            p.get("usage_interval_peak")?
                .saturating_sub(p.get("inactive_file")?),
        )
    }) {
        working_set.peak = working_set.peak.max(Some(ip));
    }
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
        peak_note: match peak_source.source {
            "exact" => format!(
                "the usage and working-set peaks are exact (memory.peak read and reset per descriptor at each sample, Linux 6.12+: no spike between samples missed; the working set at a peak is the peak less inactive_file at the interval's closing sample); the non-reclaimable peak is sampled ({every}), since memory.peak counts page cache too and the kernel keeps no peak of anon + shmem + kernel"
            ),
            "partly exact" => format!(
                "the usage and working-set peaks are exact for {} of {} samples (memory.peak reset per descriptor) and sampled ({every}) for the rest ({}); the non-reclaimable peak is sampled, since memory.peak counts page cache too",
                peak_source.exact_points,
                peak_source.exact_points + peak_source.sampled_points,
                peak_source.reasons.join("; ")
            ),
            _ => format!(
                "the usage, working-set and non-reclaimable peaks are sampled ({every}): a spike between samples is missed ({}); the kernel usage peak is exact but includes page cache",
                if peak_source.reasons.is_empty() {
                    "no interval peaks recorded".to_string()
                } else {
                    peak_source.reasons.join("; ")
                }
            ),
        },
        peak_source,
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
    // One pass over the store (issue 17's benchmark: 1,000 containers): every recorded
    // ancestor's limit series read once, then each cgroup's own series, the frames not yet
    // compacted decoded once for all (`Reader::each_group`), not twice per cgroup.
    let v = h.version;
    let dirs: Vec<String> = targets
        .iter()
        .map(|p| {
            crate::cgroup::read::fs_path(&h, p)
                .to_string_lossy()
                .to_string()
        })
        .collect();
    let ancestors_of = |dir: &str| -> Vec<String> {
        let mut v = Vec::new();
        let mut cur = Path::new(dir).parent();
        while let Some(a) = cur {
            if !a.starts_with(&h.mount_point) {
                break;
            }
            v.push(a.to_string_lossy().to_string());
            cur = a.parent();
        }
        v
    };
    let all_anc: std::collections::BTreeSet<String> =
        dirs.iter().flat_map(|d| ancestors_of(d)).collect();
    let anc_names: Vec<&str> = all_anc.iter().map(String::as_str).collect();
    let limit_file = history::limit_file(v);
    let mut anc_limits: std::collections::HashMap<String, Samples> = Default::default();
    r.each_group(
        &anc_names,
        since,
        until,
        &|p| p.ends_with(limit_file),
        |name, (ss, p)| {
            problems.append(p);
            if let Some(l) = ss.remove(&format!("{name}/{limit_file}")) {
                anc_limits.insert(name.to_string(), l);
            }
        },
    )
    .map_err(|e| fail(e.to_string()))?;
    let dir_names: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let by_dir: std::collections::HashMap<&str, &str> = dir_names
        .iter()
        .copied()
        .zip(targets.iter().map(String::as_str))
        .collect();
    // The cgroups a reader is handed, read through `rd`: (index of the cgroup in
    // `dir_names`, recommendation), problems, a TARGET without samples.
    type Part = (Vec<(usize, Recommendation)>, Vec<String>, Option<String>);
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Cgroups handed out at a time: consecutive groups share the store's pages (a reader's
    // page cache), and the last batch is what one reader may still work on alone.
    const BATCH: usize = 8;
    let claim = || {
        let i = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
        (i < dir_names.len()).then(|| i..(i + BATCH).min(dir_names.len()))
    };
    let part_of = |rd: &Reader| -> Result<Part, String> {
        let (mut out, mut problems, mut missing) = (Vec::new(), Vec::new(), None);
        // One cgroup's points after another in the same memory.
        let mut pts: Vec<Point> = Vec::new();
        rd.each_group_claimed(
            &dir_names,
            claim,
            since,
            until,
            &|p| wanted_file(v, p),
            |ix, dir, (own, p)| {
                problems.append(p);
                let Some(path) = by_dir.get(dir).copied() else {
                    return;
                };
                let anc_dirs = ancestors_of(dir);
                let anc: Vec<&Samples> =
                    anc_dirs.iter().filter_map(|a| anc_limits.get(a)).collect();
                history::points_of_into(rd, &h, path, own, &anc, &mut pts);
                // Without a TARGET, only cgroups that held processes (containers, services),
                // not the empty parents (kubepods.slice, ...).
                if q.target.is_none()
                    && !pts
                        .iter()
                        .any(|p| p.pids.as_ref().is_some_and(|v| !v.is_empty()))
                {
                    return;
                }
                let (psi, kpeak) = pressure_and_peak(rd, own, dir, v);
                match from_points(
                    path,
                    names.get(path).cloned(),
                    &pts,
                    interval,
                    q.margin,
                    kpeak,
                    psi,
                    q.check_limit,
                ) {
                    Some(x) => out.push((ix, x)),
                    None if q.target.is_some() => missing = Some(path.to_string()),
                    None => {}
                }
            },
        )
        .map_err(|e| e.to_string())?;
        Ok((out, problems, missing))
    };
    // The cgroups are independent: on a machine with cores to spare, readers (at most one
    // per core, and one per 64 cgroups) take batches of them from one counter, each
    // through its own connection (a Reader is one SQLite connection), the first on this
    // thread: a reader done with its cgroups takes the next, so none is left alone with
    // the busy ones (a fixed share each was). The output is put back in the store's order.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(dir_names.len().div_ceil(64))
        .max(1);
    let store_dir = r.dir().to_path_buf();
    let results: Vec<Result<Part, String>> = std::thread::scope(|sc| {
        let part_of = &part_of;
        let store_dir = &store_dir;
        let handles: Vec<_> = (1..workers)
            .map(|_| {
                sc.spawn(move || {
                    let rd = Reader::open(store_dir).map_err(|e| e.to_string())?;
                    part_of(&rd)
                })
            })
            .collect();
        let mut res = vec![part_of(&r)];
        res.extend(handles.into_iter().map(|h| {
            h.join()
                .unwrap_or_else(|_| Err("a recommend worker panicked".to_string()))
        }));
        res
    });
    let mut missing: Option<String> = None;
    let mut indexed = Vec::new();
    for res in results {
        let (o, p, m) = res.map_err(fail)?;
        indexed.extend(o);
        problems.extend(p);
        missing = missing.or(m);
    }
    indexed.sort_unstable_by_key(|(ix, _)| *ix);
    out.extend(indexed.into_iter().map(|(_, x)| x));
    if let Some(path) = missing {
        return Err(fail(format!("{path}: no samples in the range")));
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
            values: [None; history::NCOLUMNS],
            limit_hits: Some(v),
            high_events: None,
            oom_kills: None,
            pids: None,
            interval_peak_why: None,
        };
        assert_eq!(rise(&[p(3), p(5), p(1), p(2)], |p| p.limit_hits), Some(4));
        assert_eq!(rise(&[], |p| p.limit_hits), None);
    }
}

/// The one-pass read (`Reader::each_group`, ancestors' limits read once) against the
/// per-cgroup read it replaced (`history::points` and a `group_samples` per cgroup), on a
/// store with compacted chunks and frames not yet compacted, a limiting parent, moving
/// counters and a file recommend does not read.
#[cfg(test)]
mod one_pass {
    use super::*;
    use crate::store::{Limits, Writer};

    const FX: &str = "../tests/fixtures/kernel/v2-6.x-fedora-session";

    fn fixture(name: &str) -> String {
        match name {
            "memory.stat" => {
                include_str!("../tests/fixtures/kernel/v2-6.x-fedora-session/memory.stat")
            }
            "memory.events" => {
                include_str!("../tests/fixtures/kernel/v2-6.x-fedora-session/memory.events")
            }
            "memory.pressure" => {
                include_str!("../tests/fixtures/kernel/v2-6.x-fedora-session/memory.pressure")
            }
            "memory.numa_stat" => {
                include_str!("../tests/fixtures/kernel/v2-6.x-fedora-session/memory.numa_stat")
            }
            _ => unreachable!("{FX}/{name}"),
        }
        .to_string()
    }

    /// The fixture's text with the first number after `key ` (or `key=`) replaced.
    fn set(text: &str, key: &str, v: u64) -> String {
        text.lines()
            .map(|l| match l.split_once(' ') {
                Some((k, _)) if k == key => format!("{k} {v}"),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    fn files(mp: &str, tick: u64) -> Vec<(String, Vec<u8>)> {
        let mib = 1 << 20;
        let mut v = vec![
            (format!("{mp}/kp/memory.max"), b"104857600\n".to_vec()),
            (
                format!("{mp}/kp/memory.stat"),
                fixture("memory.stat").into_bytes(),
            ),
        ];
        for (i, c) in ["a", "b", "idle"].iter().enumerate() {
            let moving = *c != "idle";
            let anon = (20 + i as u64 * 10 + if moving { tick * 3 % 17 } else { 0 }) * mib;
            let file = (5 + if moving { tick % 7 } else { 0 }) * mib;
            let stat = set(&set(&fixture("memory.stat"), "anon", anon), "file", file);
            let stat = set(&stat, "inactive_file", file / 2);
            let d = format!("{mp}/kp/{c}");
            let ev = set(
                &fixture("memory.events"),
                "max",
                if moving { tick / 4 } else { 0 },
            );
            let psi = fixture("memory.pressure").replace(
                "total=1736583",
                &format!("total={}", 1_736_583 + if moving { tick * 1000 } else { 0 }),
            );
            v.extend([
                (
                    format!("{d}/memory.current"),
                    format!("{}\n", anon + file).into_bytes(),
                ),
                (format!("{d}/memory.max"), b"max\n".to_vec()),
                (format!("{d}/memory.high"), b"max\n".to_vec()),
                (format!("{d}/memory.stat"), stat.into_bytes()),
                (format!("{d}/memory.events"), ev.into_bytes()),
                (format!("{d}/memory.pressure"), psi.into_bytes()),
                (
                    format!("{d}/memory.peak"),
                    format!("{}\n", 90 * mib + tick).into_bytes(),
                ),
                (
                    format!("{d}/memory.numa_stat"),
                    fixture("memory.numa_stat").into_bytes(),
                ),
                (
                    format!("{d}/cgroup.procs"),
                    format!("{}\n", 100 + i).into_bytes(),
                ),
            ]);
        }
        v
    }

    /// A whole-node recommend, read by several workers taking batches of cgroups from one
    /// counter when there are cores (`Reader::each_group_claimed`, then put back in order),
    /// equals each cgroup's own `recommend TARGET` (one reader, one pass), in the store's
    /// order.
    #[test]
    fn shares_equal_one_target_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let mp = "/sys/fs/cgroup";
        let mut w = Writer::open(
            d.path(),
            Limits {
                retention_ms: i64::MAX / 4,
                max_bytes: u64::MAX,
                chunk_ms: 10_000,
            },
        )
        .unwrap();
        let t0 = (crate::store::now_ms() / 10_000 - 4) * 10_000;
        for s in 0..25u64 {
            let mut v = vec![(format!("{mp}/kp/memory.max"), b"104857600\n".to_vec())];
            for c in 0..150u64 {
                let anon = (c + s * (c % 3)) << 20;
                let d = format!("{mp}/kp/c{c}");
                v.extend([
                    (
                        format!("{d}/memory.current"),
                        format!("{}\n", anon + 4096).into_bytes(),
                    ),
                    (
                        format!("{d}/memory.stat"),
                        set(&fixture("memory.stat"), "anon", anon).into_bytes(),
                    ),
                    (
                        format!("{d}/cgroup.procs"),
                        format!("{}\n", 100 + c).into_bytes(),
                    ),
                ]);
            }
            w.write(t0 + s as i64 * 1000, &v, &[], &[]).unwrap();
        }
        for (k, v) in [
            ("mount_point", mp),
            ("cgroup_version", "2"),
            ("interval_ms", "1000"),
        ] {
            w.set_meta(k, v).unwrap();
        }
        drop(w);
        let q = |target: Option<String>| Query {
            target,
            since: None,
            margin: 0.15,
            check_limit: None,
        };
        let all = recommend(Some(d.path()), &q(None)).unwrap();
        assert_eq!(all.recommendations.len(), 150);
        let r = history::open_store(Some(d.path())).unwrap();
        let h = history::recorded_hierarchy(&r).unwrap();
        let order: Vec<String> = history::recorded_cgroups(&r, &h)
            .into_iter()
            .filter(|c| c.starts_with("/kp/c"))
            .collect();
        let got: Vec<&str> = all
            .recommendations
            .iter()
            .map(|x| x.cgroup.as_str())
            .collect();
        assert_eq!(got, order);
        for rec in &all.recommendations {
            let one = recommend(Some(d.path()), &q(Some(rec.cgroup.clone()))).unwrap();
            assert_eq!(
                serde_json::to_value(rec).unwrap(),
                serde_json::to_value(&one.recommendations[0]).unwrap(),
                "{}",
                rec.cgroup
            );
        }
    }

    #[test]
    fn equals_the_per_cgroup_read() {
        let d = tempfile::tempdir().unwrap();
        let mp = "/sys/fs/cgroup";
        let mut w = Writer::open(
            d.path(),
            Limits {
                retention_ms: i64::MAX / 4,
                max_bytes: u64::MAX,
                chunk_ms: 10_000,
            },
        )
        .unwrap();
        // 10 s chunks, a sample a second: 4 chunks compacted, 5 samples left in frames.
        let t0 = (crate::store::now_ms() / 10_000 - 10) * 10_000;
        for s in 0..45 {
            w.write(t0 + s * 1000, &files(mp, s as u64), &[], &[])
                .unwrap();
        }
        for (k, v) in [
            ("mount_point", mp),
            ("cgroup_version", "2"),
            ("interval_ms", "1000"),
        ] {
            w.set_meta(k, v).unwrap();
        }
        drop(w);
        let q = Query {
            target: None,
            since: None,
            margin: 0.15,
            check_limit: None,
        };
        let got = recommend(Some(d.path()), &q).unwrap();
        assert_eq!(
            got.recommendations
                .iter()
                .map(|r| r.cgroup.as_str())
                .collect::<Vec<_>>(),
            ["/kp/a", "/kp/b", "/kp/idle"]
        );
        // The per-cgroup read, as recommend did it before.
        let r = history::open_store(Some(d.path())).unwrap();
        let h = history::recorded_hierarchy(&r).unwrap();
        let (lo, hi) = r.range().unwrap().unwrap();
        for rec in &got.recommendations {
            let (pts, _) = history::points(&r, &h, &rec.cgroup, lo, hi).unwrap();
            assert_eq!(pts.len(), 45, "{}", rec.cgroup);
            let dir = format!("{mp}{}", rec.cgroup);
            let (all, _) = r.group_samples(&[&dir], lo, hi).unwrap();
            let all = all
                .into_iter()
                .map(|(p, ss)| (p, Samples::from(ss.as_slice())))
                .collect();
            let want = from_points(
                &rec.cgroup,
                None,
                &pts,
                Some(1000),
                0.15,
                pressure_and_peak(&r, &all, &dir, Version::V2).1,
                pressure_and_peak(&r, &all, &dir, Version::V2).0,
                None,
            )
            .unwrap();
            assert_eq!(
                serde_json::to_value(rec).unwrap(),
                serde_json::to_value(&want).unwrap(),
                "{}",
                rec.cgroup
            );
            // The parent's 100 MiB limit is the effective one.
            assert_eq!(rec.limit, Some(100 << 20), "{}", rec.cgroup);
        }
        let a = &got.recommendations[0];
        assert!(a.pressure_some_usec.is_some_and(|p| p > 0));
        assert!(a.limit_hits.is_some_and(|h| h > 0));
        assert_eq!(a.kernel_usage_peak, Some((90 << 20) + 44));
    }
}
