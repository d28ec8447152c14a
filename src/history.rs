//! Reading the flight recorder's store: times (`3m ago`, `03:12`, RFC 3339), a past moment as
//! a [`Root`] (`--at`), and `memlens history` (the breakdown over time, per step).

use crate::store::codec::{SampleRef, Samples};
use crate::store::{Reader, StoreError};
use crate::sys::Root;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::units::format_time;

/// Parses a span: `90s`, `10m`, `2h`, `7d`, `1w`, `500ms` (a bare number is seconds), in ms.
pub fn parse_span(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let units: [(&str, f64); 6] = [
        ("ms", 1.0),
        ("s", 1e3),
        ("m", 60e3),
        ("h", 3600e3),
        ("d", 86400e3),
        ("w", 7.0 * 86400e3),
    ];
    let (num, mult) = units
        .iter()
        .find_map(|(u, m)| t.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((t, 1e3));
    match num.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok((v * mult) as i64),
        _ => Err(format!("bad duration {s:?} (use e.g. 90s, 10m, 2h, 7d)")),
    }
}

/// Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Local time (the C library's zone) of a broken-down date to ms since the epoch.
fn local_to_ms(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    // SAFETY: tm is zeroed then filled; mktime only reads and normalises it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = (y - 1900) as i32;
    tm.tm_mon = (mo - 1) as i32;
    tm.tm_mday = d as i32;
    tm.tm_hour = h as i32;
    tm.tm_min = mi as i32;
    tm.tm_sec = s as i32;
    tm.tm_isdst = -1;
    // SAFETY: valid pointer to an initialised tm.
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t * 1000)
}

fn local_today(now_ms: i64) -> (i64, i64, i64) {
    let t = (now_ms / 1000) as libc::time_t;
    // SAFETY: localtime_r writes into our tm.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers.
    unsafe { libc::localtime_r(&t, &mut tm) };
    (
        i64::from(tm.tm_year) + 1900,
        i64::from(tm.tm_mon) + 1,
        i64::from(tm.tm_mday),
    )
}

fn hms(s: &str) -> Option<(i64, i64, f64)> {
    let mut it = s.split(':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let sec: f64 = match it.next() {
        Some(x) => x.parse().ok()?,
        None => 0.0,
    };
    (it.next().is_none()
        && (0..24).contains(&h)
        && (0..60).contains(&m)
        && (0.0..61.0).contains(&sec))
    .then_some((h, m, sec))
}

/// Parses a moment: `now`, `3m ago` (any [`parse_span`] then `ago`), `03:12[:05]` (local
/// time today, or yesterday when that is still to come), `2026-12-01T03:12:00Z` (RFC 3339,
/// any offset; without one, local time), or `@UNIX_SECONDS`. Returns ms since the epoch.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    let bad = || {
        format!("bad time {s:?} (use e.g. \"3m ago\", 03:12, 2026-12-01T03:12:00Z, @1764558720)")
    };
    if t == "now" {
        return Ok(now_ms);
    }
    if let Some(span) = t.strip_suffix("ago") {
        return Ok(now_ms - parse_span(span.trim()).map_err(|_| bad())?);
    }
    if let Some(secs) = t.strip_prefix('@') {
        let v: f64 = secs.parse().map_err(|_| bad())?;
        return Ok((v * 1000.0) as i64);
    }
    if let Some((h, m, sec)) = hms(t) {
        let (y, mo, d) = local_today(now_ms);
        let mut ms = local_to_ms(y, mo, d, h, m, sec as i64).ok_or_else(bad)?
            + ((sec.fract()) * 1000.0) as i64;
        if ms > now_ms {
            ms -= 86_400_000;
        }
        return Ok(ms);
    }
    // RFC 3339 (or "DATE TIME").
    let (date, rest) = t.split_at_checked(10).ok_or_else(bad)?;
    let mut dp = date.split('-');
    let (y, mo, d): (i64, i64, i64) = (
        dp.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
        dp.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
        dp.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let rest = rest.strip_prefix(['T', 't', ' ']).unwrap_or(rest);
    if rest.is_empty() {
        return local_to_ms(y, mo, d, 0, 0, 0).ok_or_else(bad);
    }
    let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, Some(0i64))
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (c, o) = rest.split_at(i);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let (oh, om) = o[1..].split_once(':').unwrap_or((&o[1..], "0"));
        let (oh, om): (i64, i64) = (
            oh.parse().map_err(|_| bad())?,
            om.parse().map_err(|_| bad())?,
        );
        (c, Some(sign * (oh * 60 + om) * 60_000))
    } else {
        (rest, None)
    };
    let (h, m, sec) = hms(clock).ok_or_else(bad)?;
    let frac = (sec.fract() * 1000.0).round() as i64;
    match offset {
        Some(off) => {
            let days = days_from_civil(y, mo, d);
            Ok(((days * 86_400 + h * 3600 + m * 60 + sec as i64) * 1000 + frac) - off)
        }
        None => Ok(local_to_ms(y, mo, d, h, m, sec as i64).ok_or_else(bad)? + frac),
    }
}

/// How far back a sample still stands for "now" at a moment: three recording intervals (a
/// missed tick or two is not "gone"), or as the store's meta says.
fn staleness(r: &Reader) -> (i64, i64, i64) {
    let ms = |k: &str, d: i64| r.meta(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(d);
    let interval = ms("interval_ms", 5_000);
    (
        3 * interval,
        ms("pss_interval_ms", 60_000) + 2 * interval,
        ms("full_interval_ms", 0) + 2 * interval,
    )
}

/// Whether a file is read at every recorder tick (else only every full interval). A store
/// written with tiered reads (meta `tiered`) has, of an idle cgroup, only its usage file at
/// every tick: its other files, cgroup.procs and its processes' status every full interval.
fn every_tick(path: &str, tiered: bool) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if tiered {
        let usage = name == "memory.usage_in_bytes" || name == "memory.current";
        let cgroup_file = name.starts_with("memory.") || name == "cgroup.procs";
        let process = path
            .strip_prefix("/proc/")
            .and_then(|r| r.split('/').next())
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        return usage || !(cgroup_file || process);
    }
    !name.starts_with("memory.")
        || read::metrics_files(Version::V1).contains(&name)
        || read::metrics_files(Version::V2).contains(&name)
}

/// A past moment, as files (see [`root_at`]).
pub struct Moment {
    /// The files, by system path.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// Damaged chunks skipped.
    pub problems: Vec<String>,
    /// The moment (ms).
    pub t: i64,
    /// The files whose read had failed then, with the recorded error (`permission denied
    /// (...)`, `not provided by this kernel (or gone)`).
    pub unreadable: BTreeMap<PathBuf, String>,
}

/// The files as they were at `t` (ms): each file's latest sample at or before `t` that is
/// recent enough to stand for that moment (see [`staleness`]), excluding files found absent
/// and cgroups removed in between. Errors name what the store holds when `t` is outside it.
pub fn moment(r: &Reader, t: i64) -> Result<Moment, String> {
    let (stale, pss_stale, full_stale) = staleness(r);
    let tiered = r.meta("tiered").is_some_and(|v| v == "1");
    let pss_stale = pss_stale.max(full_stale);
    let range = r.range().map_err(|e| e.to_string())?;
    let Some((lo, hi)) = range else {
        return Err(format!(
            "the store {} holds no samples yet",
            r.dir().display()
        ));
    };
    if t < lo - stale || t > hi + stale {
        return Err(format!(
            "{} was not recorded: the store {} holds {} to {}",
            format_time(t),
            r.dir().display(),
            format_time(lo),
            format_time(hi)
        ));
    }
    let (latest, problems) = r
        .latest_at(t, stale.max(pss_stale))
        .map_err(|e| e.to_string())?;
    let removed: Vec<(i64, String)> = r
        .events(t - stale.max(pss_stale), t)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|e| e.kind == "cgroup-removed")
        .filter_map(|e| Some((e.t, e.data.get("dir")?.as_str()?.to_string())))
        .collect();
    let mut files = BTreeMap::new();
    let mut unreadable = BTreeMap::new();
    for (path, s) in latest {
        let limit = if path.ends_with("/smaps_rollup") {
            pss_stale
        } else if every_tick(&path, tiered) {
            stale
        } else {
            full_stale.max(stale)
        };
        if s.t < t - limit {
            continue;
        }
        // The recorder's own interval peaks are not a kernel file: `--at` gives back the
        // kernel's files only.
        if path.ends_with(crate::cgroup::peak::RECORDED_FILE) {
            continue;
        }
        let group = crate::store::group_of(&path);
        if removed.iter().any(|(rt, dir)| *rt > s.t && dir == group) {
            continue;
        }
        match r.text(&s) {
            Some(text) => {
                files.insert(PathBuf::from(path), text);
            }
            // Absent then: the error of that read, when the store kept it (format 2).
            None if s.tpl == 0 => {
                if let Some((_, why)) = r.refusal(&path, s.t) {
                    unreadable.insert(PathBuf::from(path), why);
                }
            }
            None => {}
        }
    }
    if files.is_empty() {
        return Err(format!(
            "{} was not recorded (the recorder was not running then)",
            format_time(t)
        ));
    }
    Ok(Moment {
        files,
        problems,
        t,
        unreadable,
    })
}

/// Opens the store at `dir` (or the default) for reading.
pub fn open_store(dir: Option<&Path>) -> Result<Reader, StoreError> {
    let d = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(crate::store::default_dir);
    Reader::open(&d)
}

/// `--at TIME`: the recorded moment as a [`Root`] every command reads unchanged, and the
/// damaged chunks that were skipped (for stderr).
pub fn root_at(dir: Option<&Path>, at: &str) -> Result<(Root, Vec<String>), String> {
    let r = open_store(dir).map_err(|e| e.to_string())?;
    let t = parse_time(at, crate::store::now_ms())?;
    let m = moment(&r, t)?;
    let unreadable = m
        .unreadable
        .into_iter()
        .map(|(p, why)| (p, format!("not recorded: {why}")))
        .collect();
    Ok((
        Root::from_files(m.files).with_unreadable(unreadable),
        m.problems,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        let now = 1_764_558_720_000; // 2025-12-01T03:12:00Z
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("3m ago", now), Ok(now - 180_000));
        assert_eq!(parse_time("2025-12-01T03:12:00Z", now), Ok(now));
        assert_eq!(parse_time("2025-12-01T05:12:00+02:00", now), Ok(now));
        assert_eq!(parse_time("2025-12-01T03:11:59.5Z", now), Ok(now - 500));
        assert_eq!(parse_time("@1764558720", now), Ok(now));
        let hm = parse_time("03:12", now).unwrap();
        assert!(hm <= now && hm > now - 86_400_000);
        assert!(parse_time("yesterday-ish", now).is_err());
        assert_eq!(format_time(now), "2025-12-01T03:12:00.000Z");
        assert_eq!(parse_span("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_span("500ms"), Ok(500));
    }

    /// A busy cgroup's points (memory.stat updated in place between full reads, only the
    /// keys the figures read: `Own::apply`, `stat_read_of`) equal each sample's point read
    /// alone (a window of that one sample: every file parsed from its text), v1 and v2.
    /// Every number of memory.stat moves, most at every sample; v1's hierarchical limit
    /// changes once and one number is implausible once (both read again in full).
    #[test]
    fn busy_points_equal_each_sample_read_alone() {
        use crate::store::{Limits, Writer, codec};
        for (ver, dir) in [("1", "v1-6.18-this-host"), ("2", "v2-6.x-fedora-session")] {
            let fx = |f: &str| {
                std::fs::read(format!(
                    "{}/tests/fixtures/kernel/{dir}/{f}",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap()
            };
            let d = tempfile::tempdir().unwrap();
            let mp = "/sys/fs/cgroup/memory";
            let mut w = Writer::open(
                d.path(),
                Limits {
                    retention_ms: i64::MAX / 4,
                    max_bytes: u64::MAX,
                    chunk_ms: 10_000,
                },
            )
            .unwrap();
            let (tpl, base) = codec::tokenize(&fx("memory.stat"));
            let text = String::from_utf8(fx("memory.stat")).unwrap();
            let key_at = |k: &str| {
                text.lines()
                    .position(|l| l.split_whitespace().next() == Some(k))
                    .unwrap()
            };
            let t0 = (crate::store::now_ms() / 10_000 - 6) * 10_000;
            let c = format!("{mp}/kp/c");
            let ticks = 40u64;
            for s in 0..ticks {
                let mut vals = base.clone();
                for (j, v) in vals.iter_mut().enumerate() {
                    let j = j as u64;
                    if !(s * 7 + j * 3).is_multiple_of(4) && *v < 1 << 50 {
                        *v += ((s * 7919 + j * 31) % 13) * 4096;
                    }
                }
                if ver == "1" && s >= 20 {
                    vals[key_at("hierarchical_memory_limit")] = 256 << 20;
                }
                if s == 30 {
                    let n = vals.len();
                    vals[n - 1] = crate::cgroup::parse::IMPLAUSIBLE;
                }
                let stat = codec::render(&tpl, &vals).unwrap();
                let usage = format!("{}\n", (200 << 20) + s * 8192).into_bytes();
                let mut files = vec![
                    (
                        format!("{mp}/kp/memory.limit_in_bytes"),
                        b"1073741824\n".to_vec(),
                    ),
                    (format!("{mp}/kp/memory.max"), b"1073741824\n".to_vec()),
                    (format!("{c}/memory.stat"), stat),
                    (
                        format!("{c}/cgroup.procs"),
                        format!("{}\n", 100 + s % 3).into_bytes(),
                    ),
                ];
                if ver == "1" {
                    files.extend([
                        (format!("{c}/memory.usage_in_bytes"), usage),
                        (
                            format!("{c}/memory.limit_in_bytes"),
                            b"536870912\n".to_vec(),
                        ),
                        (
                            format!("{c}/memory.failcnt"),
                            format!("{}\n", s / 5).into_bytes(),
                        ),
                        (format!("{c}/memory.oom_control"), fx("memory.oom_control")),
                        (
                            format!("{c}/memory.kmem.usage_in_bytes"),
                            fx("memory.kmem.usage_in_bytes"),
                        ),
                    ]);
                } else {
                    files.extend([
                        (format!("{c}/memory.current"), usage),
                        (format!("{c}/memory.max"), b"536870912\n".to_vec()),
                        (format!("{c}/memory.high"), b"max\n".to_vec()),
                        (format!("{c}/memory.events"), fx("memory.events")),
                    ]);
                }
                w.write(t0 + s as i64 * 1000, &files, &[], &[]).unwrap();
            }
            for (k, v) in [
                ("mount_point", mp),
                ("cgroup_version", ver),
                ("interval_ms", "1000"),
            ] {
                w.set_meta(k, v).unwrap();
            }
            drop(w);
            let r = open_store(Some(d.path())).unwrap();
            let h = recorded_hierarchy(&r).unwrap();
            let (all, problems) = points(&r, &h, "/kp/c", i64::MIN, i64::MAX).unwrap();
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(all.len(), ticks as usize, "v{ver}");
            let json = |p: &Point| serde_json::to_value(p).unwrap();
            let mut moved = 0;
            for (i, p) in all.iter().enumerate() {
                let (one, _) = points(&r, &h, "/kp/c", p.t, p.t).unwrap();
                assert_eq!(one.len(), 1);
                assert_eq!(json(p), json(&one[0]), "v{ver}, sample {i}");
                moved += usize::from(i > 0 && json(p)["values"] != json(&all[i - 1])["values"]);
            }
            assert!(
                moved > ticks as usize / 2,
                "v{ver}: the figures move ({moved})"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// `memlens history`: one cgroup's samples as figures.

use crate::cgroup::read::{self, Level};
use crate::model::{Hierarchy, Limit, Version};
use crate::views::breakdown::Breakdown;
use crate::views::derived::{Derived, EffectiveLimit};
use serde::Serialize;

/// The figures `history` shows per sample, in column order.
pub const COLUMNS: [&str; NCOLUMNS] = [
    "usage",
    "working_set",
    "anon",
    "active_file",
    "inactive_file",
    "shmem",
    "kernel",
    "swap",
    "not_reclaimable",
    "limit",
    "high",
    "usage_interval_peak",
];

/// How many figures a [`Point`] holds.
pub const NCOLUMNS: usize = 12;

/// One sample of a cgroup, as figures (`None`: not provided, never 0). Fixed-size and its
/// process list shared, so a point is no allocation (`recommend` over a day of 1,000
/// cgroups makes 3 million).
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// ms since the epoch.
    pub t: i64,
    /// Values in [`COLUMNS`] order.
    pub values: [Option<u64>; NCOLUMNS],
    /// Limit hits so far (v1 memory.failcnt, v2 memory.events max).
    #[serde(skip)]
    pub limit_hits: Option<u64>,
    /// memory.high events so far (v2).
    #[serde(skip)]
    pub high_events: Option<u64>,
    /// OOM kills so far (v2 memory.events oom_kill, v1 memory.oom_control oom_kill).
    #[serde(skip)]
    pub oom_kills: Option<u64>,
    /// The cgroup's own processes (cgroup.procs).
    #[serde(skip)]
    pub pids: Option<std::sync::Arc<[i32]>>,
    /// Why `usage_interval_peak` is not provided at this point (the recorder's reason: no
    /// memory.peak, reset refused, cgroup v1, descriptor cap), when it is not.
    #[serde(skip)]
    pub interval_peak_why: Option<std::sync::Arc<str>>,
}

impl Point {
    /// The value of column `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        let i = COLUMNS.iter().position(|c| *c == name)?;
        self.values.get(i).copied().flatten()
    }
}

/// The hierarchy the recorder wrote (meta `mount_point`, `cgroup_version`, `mount_root`).
pub fn recorded_hierarchy(r: &Reader) -> Result<Hierarchy, String> {
    let mp = r
        .meta("mount_point")
        .ok_or("the store does not say which cgroup hierarchy it recorded")?;
    let version = match r.meta("cgroup_version") {
        Some("1") => Version::V1,
        _ => Version::V2,
    };
    Ok(Hierarchy {
        version,
        mount_point: PathBuf::from(mp),
        mount_root: r.meta("mount_root").unwrap_or("/").to_string(),
    })
}

/// The cgroups recorded (paths within the hierarchy).
pub fn recorded_cgroups(r: &Reader, h: &Hierarchy) -> Vec<String> {
    let mp = h.mount_point.to_string_lossy().to_string();
    let stat = "memory.stat";
    r.group_names()
        .into_iter()
        .filter(|g| g.starts_with(&mp) && r.has_series(&format!("{g}/{stat}")))
        .map(|g| read::normalise(g.strip_prefix(mp.as_str()).unwrap_or(g)))
        .collect()
}

/// Resolves TARGET among the recorded cgroups, also those that are gone: a path within the
/// hierarchy or absolute, a container ID (prefix), a pod UID (prefix), a container/pod name
/// as recorded (identity events), or a cgroup directory name. Errors: (exit code, message).
pub fn resolve(r: &Reader, h: &Hierarchy, target: &str) -> Result<String, (i32, String)> {
    let all = recorded_cgroups(r, h);
    let t = target.trim();
    let mp = h.mount_point.to_string_lossy().to_string();
    let as_path = read::normalise(t.strip_prefix(mp.as_str()).unwrap_or(t));
    if all.contains(&as_path) && (t.starts_with('/') || t == "/") {
        return Ok(as_path);
    }
    let names: Vec<(String, serde_json::Value)> = r
        .events(i64::MIN, i64::MAX)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.kind == "identity")
        .filter_map(|e| Some((e.cgroup?, e.data)))
        .collect();
    let mut hits: Vec<String> = all
        .iter()
        .filter(|p| {
            let id = crate::identity::Identity::from_path(p);
            let by_id = t.len() >= 4
                && (id.container_id.as_deref().is_some_and(|c| c.starts_with(t))
                    || id.pod_uid.as_deref().is_some_and(|u| u.starts_with(t)));
            let by_dir = p.rsplit('/').next() == Some(t);
            let by_name = names.iter().any(|(c, n)| {
                c == *p
                    && ["pod", "container", "runtime_name"].iter().any(|k| {
                        n["names"][k].as_str() == Some(t)
                            || (k == &"pod"
                                && n["names"]["namespace"]
                                    .as_str()
                                    .zip(n["names"]["pod"].as_str())
                                    .is_some_and(|(ns, pod)| format!("{ns}/{pod}") == t))
                    })
            });
            by_id || by_dir || by_name
        })
        .cloned()
        .collect();
    hits.sort();
    hits.dedup();
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => Err((
            crate::cli::exit::BAD_TARGET,
            format!(
                "{target:?}: no recorded cgroup matches (the store holds {} cgroups; give a path, container ID or name)",
                all.len()
            ),
        )),
        _ => Err((
            crate::cli::exit::BAD_TARGET,
            format!("{target:?} is ambiguous in the store: {}", hits.join(", ")),
        )),
    }
}

/// The files of a cgroup a [`Point`] is computed from: those `read_cgroup` reads at
/// [`Level::Metrics`] for the figures here (usage, memory.stat, kernel, swap, the limit,
/// the limit hits and OOM counters), memory.high, and cgroup.procs. The other recorded
/// files (peaks, soft limits, PSI...) are not decoded: a day of one cgroup reads a third of
/// the series (issue 13: history of a busy cgroup over a day in 1.3 s before).
fn point_files(v: Version) -> &'static [&'static str] {
    match v {
        Version::V1 => &[
            "memory.usage_in_bytes",
            "memory.limit_in_bytes",
            "memory.stat",
            "memory.kmem.usage_in_bytes",
            "memory.oom_control",
            "memory.failcnt",
            "cgroup.procs",
            crate::cgroup::peak::RECORDED_FILE,
        ],
        Version::V2 => &[
            "memory.current",
            "memory.max",
            "memory.high",
            "memory.stat",
            "memory.swap.current",
            "memory.events",
            "cgroup.procs",
            crate::cgroup::peak::RECORDED_FILE,
        ],
    }
}

/// What a file of a [`Point`] is in the [`Cgroup`](crate::model::Cgroup) it is computed
/// from, for [`Own::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Stat,
    Events,
    OomControl,
    Usage,
    Kmem,
    Swap,
    Failcnt,
    High,
    Procs,
    Other,
}

impl Slot {
    fn of(name: &str) -> Slot {
        match name {
            "memory.stat" => Slot::Stat,
            "memory.events" => Slot::Events,
            "memory.oom_control" => Slot::OomControl,
            "memory.usage_in_bytes" | "memory.current" => Slot::Usage,
            "memory.kmem.usage_in_bytes" => Slot::Kmem,
            "memory.swap.current" => Slot::Swap,
            "memory.failcnt" => Slot::Failcnt,
            "memory.high" => Slot::High,
            "cgroup.procs" => Slot::Procs,
            _ => Slot::Other,
        }
    }
}

/// For a keyed file's template (memory.stat, memory.events, memory.oom_control): the index
/// among the template's numbers of each key [`crate::cgroup::parse::flat_keyed`] keeps, in
/// its order. Found by parsing the template filled with distinct markers: the parse depends
/// on the values only through [`crate::cgroup::parse::IMPLAUSIBLE`] (values at or above it
/// are dropped), so for any values below it the parse of the filled text is the keys here
/// with those values. `None` when a kept value is not one of the numbers.
fn keyed_slots(tpl: &[u8]) -> Option<Vec<usize>> {
    const MARK: u64 = 1 << 62;
    let n = crate::store::codec::value_count(tpl)?;
    let marks: Vec<u64> = (0..n as u64).map(|i| MARK + i).collect();
    let text = crate::store::codec::render(tpl, &marks)?;
    let (kv, _) = crate::cgroup::parse::flat_keyed(&String::from_utf8_lossy(&text));
    kv.0.iter()
        .map(|(_, v)| {
            v.checked_sub(MARK)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < n)
        })
        .collect()
}

/// The positions in memory.stat's list of keys that a point reads between two full reads:
/// those [`Breakdown::of_indexed`] reads through `idx` (the same list's index), and v1's
/// hierarchical limits (a change there is read again in full, see [`Own::apply`]). A busy
/// cgroup's memory.stat has some 70 numbers per sample and the figures read about 30.
/// Each with whether it is a hierarchical limit (found here once, not by comparing the key
/// at every change).
fn stat_read_of(
    idx: &crate::views::breakdown::StatIndex,
    st: &crate::model::KeyValues,
) -> Vec<(usize, bool)> {
    let limit = |k: &str| k == "hierarchical_memory_limit" || k == "hierarchical_memsw_limit";
    let mut v: Vec<usize> = idx.positions().collect();
    v.extend(
        st.0.iter()
            .enumerate()
            .filter_map(|(pos, (k, _))| limit(k).then_some(pos)),
    );
    v.sort_unstable();
    v.dedup();
    v.into_iter()
        .map(|pos| (pos, st.0.get(pos).is_some_and(|(k, _)| limit(k))))
        .collect()
}

/// The one-number template (`123\n`: usage, kernel memory, swap, failcnt).
const ONE_NUMBER: &[u8] = b"T\x00\n";

/// One recorded file of the cgroup `points` reads.
struct Own<'a> {
    path: PathBuf,
    slot: Slot,
    samples: &'a Samples,
    /// The latest sample at or before the point's time.
    cur: usize,
    /// The sample the point's figures hold (from the same tick as the point's).
    taken: Option<usize>,
    /// The sample written into the `Root` (rendered only when a full read needs it).
    in_root: Option<usize>,
}

impl Own<'_> {
    /// Puts `s` (this file's new sample) into `cg` without parsing text: the numbers of a
    /// one-number file, or a keyed file's numbers by [`keyed_slots`] when its template is
    /// the one `cg` was read with. The result is what `read_cgroup` would give for the
    /// new text (same parse, see `keyed_slots`); `false` when that cannot be shown (another
    /// template, a value at or above IMPLAUSIBLE, another file): then everything is read
    /// again from the text (so `cg` may be left partly updated).
    fn apply(
        &self,
        s: SampleRef<'_>,
        r: &Reader,
        cg: &mut crate::model::Cgroup,
        cg_tpl: Option<u64>,
        slots: &mut std::collections::HashMap<u64, Option<Vec<usize>>>,
        stat_read: Option<&[(usize, bool)]>,
    ) -> bool {
        use crate::cgroup::parse::IMPLAUSIBLE;
        let one = || {
            (s.vals.len() == 1 && s.vals[0] < IMPLAUSIBLE && r.template(s.tpl) == Some(ONE_NUMBER))
                .then(|| s.vals[0])
        };
        let set = |field: &mut Option<u64>| match one() {
            Some(v) => {
                *field = Some(v);
                true
            }
            None => false,
        };
        match self.slot {
            Slot::Usage => set(&mut cg.usage.current),
            Slot::Kmem if cg.version == Version::V1 => set(&mut cg.usage.kmem),
            Slot::Swap if cg.version == Version::V2 => set(&mut cg.usage.swap),
            Slot::Failcnt if cg.version == Version::V1 => set(&mut cg.events.failcnt),
            Slot::Stat | Slot::Events | Slot::OomControl if cg_tpl == Some(s.tpl) => {
                let Some(map) = slots
                    .entry(s.tpl)
                    .or_insert_with(|| r.template(s.tpl).and_then(keyed_slots))
                    .as_ref()
                else {
                    return false;
                };
                let kv = match self.slot {
                    Slot::Stat => cg.stat.as_mut(),
                    Slot::Events if cg.version == Version::V2 => cg.events.events.as_mut(),
                    Slot::OomControl if cg.version == Version::V1 => cg.events.oom_control.as_mut(),
                    _ => None,
                };
                let Some(kv) = kv else { return false };
                if kv.0.len() != map.len() {
                    return false;
                }
                // One pass that checks and copies (three passes over memory.stat's numbers
                // were a fifth of `recommend`'s day case): a refusal part way leaves `cg`
                // partly updated, and the caller then reads it again from the text.
                let stat = self.slot == Slot::Stat;
                if stat && let Some(read) = stat_read {
                    // Only the keys the figures read (`stat_read`, see `stat_read_of`) are
                    // updated, the others left as the last full read had them (nothing
                    // reads them before the next one, which reads every key again); every
                    // number is still checked, in one pass without a branch per number.
                    if s.vals.iter().fold(false, |a, v| a | (*v >= IMPLAUSIBLE)) {
                        return false;
                    }
                    for &(pos, limit) in read {
                        let (Some((_, old)), Some(&v)) =
                            (kv.0.get_mut(pos), map.get(pos).and_then(|&i| s.vals.get(i)))
                        else {
                            return false;
                        };
                        if *old != v {
                            if limit {
                                return false;
                            }
                            *old = v;
                        }
                    }
                    return true;
                }
                for ((key, old), &i) in kv.0.iter_mut().zip(map) {
                    let Some(&v) = s.vals.get(i).filter(|v| **v < IMPLAUSIBLE) else {
                        return false;
                    };
                    // v1 reads its hierarchical limits from memory.stat: a change there is
                    // read the usual way. (The value compared first: most do not move.)
                    if *old != v {
                        if stat
                            && (key == "hierarchical_memory_limit"
                                || key == "hierarchical_memsw_limit")
                        {
                            return false;
                        }
                        *old = v;
                    }
                }
                true
            }
            _ => false,
        }
    }
}

/// One cgroup's points in `[since, until]` (and the damaged chunks skipped). The effective
/// limit is the smallest of the cgroup's and its recorded ancestors' limits at each sample.
///
/// The figures are those of [`Breakdown`] and [`Derived`] over the cgroup as
/// `read_cgroup` reads the recorded files. A day of a busy cgroup is 17,280 samples at 5 s:
/// rendering and parsing every file of each (about 50 µs) took a second, so a sample whose
/// changed files are numbers in the same template as before updates the figures' input in
/// place ([`Own::apply`]); anything else is rendered and read again.
pub fn points(
    r: &Reader,
    h: &Hierarchy,
    path: &str,
    since: i64,
    until: i64,
) -> Result<(Vec<Point>, Vec<String>), String> {
    let dir = read::fs_path(h, path);
    let dir_s = dir.to_string_lossy().to_string();
    let mut ancestors = Vec::new();
    let mut cur = dir.parent();
    while let Some(a) = cur {
        if !a.starts_with(&h.mount_point) {
            break;
        }
        ancestors.push(a.to_string_lossy().to_string());
        cur = a.parent();
    }
    let mut names: Vec<&str> = vec![dir_s.as_str()];
    names.extend(ancestors.iter().map(String::as_str));
    let limit_file = limit_file(h.version);
    let wanted = point_files(h.version);
    let (series, problems) = r
        .group_samples_where(&names, since, until, |p| {
            let (g, name) = p.rsplit_once('/').unwrap_or(("", p));
            let g = if g.is_empty() { "/" } else { g };
            if g == dir_s {
                wanted.contains(&name)
            } else {
                name == limit_file
            }
        })
        .map_err(|e| e.to_string())?;
    let (own, anc): (BTreeMap<_, _>, BTreeMap<_, _>) = series
        .into_iter()
        .map(|(p, ss)| (p, Samples::from(ss.as_slice())))
        .partition(|(p, _)| crate::store::group_of(p) == dir_s);
    let anc: Vec<&Samples> = anc.values().collect();
    Ok((points_of(r, h, path, &own, &anc), problems))
}

/// The file of a cgroup's own limit (the ancestors' limits [`points_of`] takes).
pub fn limit_file(v: Version) -> &'static str {
    match v {
        Version::V1 => "memory.limit_in_bytes",
        Version::V2 => "memory.max",
    }
}

/// [`points`] from samples already read: `own` the cgroup's series (by path; files other
/// than [`point_files`] are ignored), `anc` its recorded ancestors' limit series
/// ([`limit_file`]), in any order. `recommend` reads every cgroup in one pass
/// ([`Reader::each_group`]) and calls this per cgroup.
pub fn points_of(
    r: &Reader,
    h: &Hierarchy,
    path: &str,
    own: &BTreeMap<String, Samples>,
    anc: &[&Samples],
) -> Vec<Point> {
    let mut out = Vec::new();
    points_of_into(r, h, path, own, anc, &mut out);
    out
}

/// [`points_of`] into `out` (emptied first): `recommend` reuses one vector for every
/// cgroup (a day of a busy cgroup's points is 5 MB, allocated, faulted in and freed per
/// cgroup before).
pub fn points_of_into(
    r: &Reader,
    h: &Hierarchy,
    path: &str,
    own: &BTreeMap<String, Samples>,
    anc: &[&Samples],
    out: &mut Vec<Point>,
) {
    out.clear();
    let wanted = point_files(h.version);
    let peaks = own
        .iter()
        .find(|(p, _)| p.rsplit('/').next() == Some(crate::cgroup::peak::RECORDED_FILE))
        .map(|(_, s)| s);
    let mut own: Vec<Own> = own
        .iter()
        .filter(|(p, _)| {
            let name = p.rsplit('/').next().unwrap_or("");
            wanted.contains(&name) && name != crate::cgroup::peak::RECORDED_FILE
        })
        .map(|(p, samples)| Own {
            slot: Slot::of(p.rsplit('/').next().unwrap_or("")),
            path: PathBuf::from(p),
            samples,
            cur: 0,
            taken: None,
            in_root: None,
        })
        .collect();
    let mut times: Vec<i64> = own
        .iter()
        .find(|f| f.slot == Slot::Stat)
        .map(|f| {
            f.samples
                .iter()
                .filter(|s| s.tpl != 0)
                .map(|s| s.t)
                .collect()
        })
        .unwrap_or_default();
    times.dedup();
    let mut root = Root::from_files(BTreeMap::new());
    // The cgroup the figures are computed from, with the template each file had then.
    let mut cg: Option<crate::model::Cgroup> = None;
    let mut cg_tpl: Vec<Option<u64>> = vec![None; own.len()];
    let mut slots = std::collections::HashMap::new();
    let mut stat_idx: Option<crate::views::breakdown::StatIndex> = None;
    let mut stat_read: Option<Vec<(usize, bool)>> = None;
    let mut high: Option<Limit> = None;
    let mut pids: Option<std::sync::Arc<[i32]>> = None;
    out.reserve(times.len());
    // Per ancestor: its cursor and the limit of the sample under it (parsed once).
    let mut anc_cur: Vec<(usize, Option<Option<u64>>)> = vec![(0, None); anc.len()];
    let mut prev_anc: Option<Option<u64>> = None;
    let text = |f: &Own, i: usize| {
        r.text_of(f.samples.tpl(i), f.samples.vals(i))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    for t in times {
        // The files of this tick whose content changed.
        let mut changed: Vec<usize> = Vec::new();
        for (k, f) in own.iter_mut().enumerate() {
            while f.cur + 1 < f.samples.len() && f.samples.t(f.cur + 1) <= t {
                f.cur += 1;
            }
            let c = f.cur;
            if f.samples.get(c).is_none_or(|s| s.t != t) {
                continue;
            }
            let same = f.taken.is_some_and(|i| f.samples.same(i, c));
            f.taken = Some(c);
            if !same {
                changed.push(k);
            }
        }
        // Ancestors' limits: their latest values at or before t.
        let mut anc_limit: Option<u64> = None;
        for (ss, (c, parsed)) in anc.iter().zip(anc_cur.iter_mut()) {
            let before = *c;
            while *c + 1 < ss.len() && ss.t(*c + 1) <= t {
                *c += 1;
            }
            if *c != before {
                *parsed = None;
            }
            let Some(s) = ss.get(*c).filter(|s| s.t <= t) else {
                continue;
            };
            let v = *parsed.get_or_insert_with(|| {
                r.text_of(s.tpl, s.vals)
                    .and_then(|b| crate::cgroup::parse::limit(&String::from_utf8_lossy(&b)).ok())
                    .and_then(|l| l.bytes())
            });
            if let Some(v) = v {
                anc_limit = Some(anc_limit.map_or(v, |a| a.min(v)));
            }
        }
        // Nothing changed since the last point (an idle cgroup): the same figures.
        if changed.is_empty()
            && prev_anc == Some(anc_limit)
            && let Some(last) = out.last()
        {
            let mut p: Point = Clone::clone(last);
            p.t = t;
            out.push(p);
            continue;
        }
        prev_anc = Some(anc_limit);
        // memory.high and cgroup.procs are not in the Cgroup read below.
        for &k in &changed {
            let f = &own[k];
            let Some(i) = f.taken else { continue };
            match f.slot {
                Slot::High => {
                    high = text(f, i).and_then(|t| crate::cgroup::parse::limit(&t).ok());
                }
                Slot::Procs => {
                    pids = text(f, i)
                        .and_then(|t| crate::cgroup::parse::pids(&t).ok())
                        .map(std::sync::Arc::from);
                }
                _ => {}
            }
        }
        let mut full = cg.is_none();
        if let Some(c) = cg.as_mut() {
            for &k in &changed {
                let f = &own[k];
                if matches!(f.slot, Slot::High | Slot::Procs) {
                    continue;
                }
                let Some(i) = f.taken else { continue };
                let Some(s) = f.samples.get(i) else { continue };
                if !f.apply(s, r, c, cg_tpl[k], &mut slots, stat_read.as_deref()) {
                    full = true;
                    break;
                }
                cg_tpl[k] = Some(s.tpl);
            }
        }
        if full {
            for f in own.iter_mut() {
                if f.taken != f.in_root
                    && let Some(i) = f.taken
                {
                    root.set_file(&f.path, r.text_of(f.samples.tpl(i), f.samples.vals(i)));
                    f.in_root = Some(i);
                }
            }
            cg = read::read_cgroup(&root, h, path, Level::Metrics).ok();
            for (k, f) in own.iter().enumerate() {
                cg_tpl[k] = f.taken.map(|i| f.samples.tpl(i));
            }
            // memory.stat's keys as read now; `apply` changes only their numbers.
            stat_idx = cg
                .as_ref()
                .and_then(|c| c.stat.as_ref())
                .map(crate::views::breakdown::StatIndex::of);
            stat_read = match (&stat_idx, cg.as_ref().and_then(|c| c.stat.as_ref())) {
                (Some(idx), Some(st)) => Some(stat_read_of(idx, st)),
                _ => None,
            };
        }
        let Some(cg) = cg.as_ref() else {
            continue;
        };
        let b = match &stat_idx {
            Some(idx) => Breakdown::of_indexed(cg, idx),
            None => Breakdown::of(cg),
        };
        let own_l = [
            cg.limits.max.and_then(Limit::bytes),
            cg.limits.hierarchical.and_then(Limit::bytes),
        ]
        .into_iter()
        .flatten()
        .min();
        let eff = [own_l, anc_limit].into_iter().flatten().min();
        let d = Derived::with_limit(
            cg,
            &b,
            EffectiveLimit {
                bytes: eff,
                set_by: None,
                source: String::new(),
            },
        );
        let ws = match (b.usage.bytes, b.inactive_file.bytes) {
            (Some(u), Some(i)) => Some(u.saturating_sub(i)),
            _ => None,
        };
        let (hits, high_events) = match h.version {
            Version::V1 => (cg.events.failcnt, None),
            Version::V2 => (
                cg.events.events.as_ref().and_then(|e| e.get("max")),
                cg.events.events.as_ref().and_then(|e| e.get("high")),
            ),
        };
        out.push(Point {
            t,
            values: [
                b.usage.bytes,
                ws,
                b.anon.bytes,
                b.active_file.bytes,
                b.inactive_file.bytes,
                b.shmem.bytes,
                b.kernel.bytes,
                b.swap.bytes,
                d.not_reclaimable.bytes,
                eff,
                high.and_then(Limit::bytes),
                // usage_interval_peak: filled by `interval_peaks`.
                None,
            ],
            limit_hits: hits,
            high_events,
            oom_kills: cg.events.oom_kills(),
            pids: pids.clone(),
            interval_peak_why: None,
        });
    }
    let none = Samples::default();
    interval_peaks(r, peaks.unwrap_or(&none), out);
}

/// Each point's `usage_interval_peak`: the highest of the recorder's interval peaks
/// ([`crate::cgroup::peak::RECORDED_FILE`]) taken after the previous point and up to this
/// one. The recorder takes one at every read of the cgroup, including the reads of its
/// usage alone that make no point, so together they cover the whole interval: exact, no
/// spike between samples missed. A point without one says why (the recorder's reason, the
/// latest one written).
fn interval_peaks(r: &Reader, samples: &Samples, pts: &mut [Point]) {
    let col = COLUMNS.len() - 1;
    let mut i = 0;
    let mut prev_why: Option<(u64, Vec<u64>, std::sync::Arc<str>)> = None;
    // The template of `N\n` (one integer, a newline): its value is taken as it is, not
    // rendered and parsed (a day of 1 s samples is 86,400 of them per cgroup).
    let number = |s: SampleRef<'_>| {
        (r.template(s.tpl)
            == Some(
                &[
                    crate::store::codec::TOKENIZED,
                    crate::store::codec::INT,
                    b'\n',
                ][..],
            )
            && s.vals.len() == 1)
            .then(|| s.vals[0])
    };
    // One text shared by every point of a store without interval peaks (a day of 1,000
    // cgroups is 3 million points), not one allocation each.
    let not_recorded: std::sync::Arc<str> =
        "not recorded (the recorder did not record interval peaks then)".into();
    for p in pts.iter_mut() {
        let mut peak: Option<u64> = None;
        let mut why: Option<std::sync::Arc<str>> = None;
        while let Some(s) = samples.get(i).filter(|s| s.t <= p.t) {
            i += 1;
            // `N\n` is a peak; any other text is the reason there is none.
            if let Some(v) = number(s) {
                peak = Some(peak.map_or(v, |x| x.max(v)));
                continue;
            }
            let text = r.text_of(s.tpl, s.vals);
            match text
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|t| t.trim().parse::<u64>().ok())
            {
                Some(v) => peak = Some(peak.map_or(v, |x| x.max(v))),
                None => {
                    // Reasons repeat sample after sample: rendered once.
                    if let Some((tpl, vals, w)) = &prev_why
                        && *tpl == s.tpl
                        && vals.as_slice() == s.vals
                    {
                        why = Some(w.clone());
                        continue;
                    }
                    let w: std::sync::Arc<str> = match text {
                        Some(t) => String::from_utf8_lossy(&t)
                            .trim()
                            .trim_start_matches("unavailable: ")
                            .into(),
                        None => "memlens.interval_peak not recorded".into(),
                    };
                    prev_why = Some((s.tpl, s.vals.to_vec(), w.clone()));
                    why = Some(w);
                }
            }
        }
        p.values[col] = peak;
        // The recorder writes a reason at full reads only (it does not change): the last
        // one stands for the points in between.
        p.interval_peak_why = match peak {
            Some(_) => None,
            None => Some(
                why.or_else(|| prev_why.as_ref().map(|w| w.2.clone()))
                    .unwrap_or_else(|| not_recorded.clone()),
            ),
        };
    }
}

/// A least-squares line through (seconds, bytes).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Fit {
    /// Bytes per second.
    pub slope: f64,
    /// Value at the first point's time.
    pub intercept: f64,
    /// Coefficient of determination.
    pub r2: f64,
    /// Points fitted.
    pub n: usize,
    /// Seconds covered.
    pub seconds: f64,
    /// The largest fall between two consecutive points, as a fraction of the fitted rise
    /// over the window (a sawtooth's drops make this large).
    pub max_drop: f64,
}

/// Ordinary least squares of `(t ms, v)`; `None` with fewer than 3 points or no time span.
pub fn fit(pts: &[(i64, f64)]) -> Option<Fit> {
    let n = pts.len();
    if n < 3 {
        return None;
    }
    let t0 = pts[0].0;
    let xs: Vec<f64> = pts.iter().map(|(t, _)| (t - t0) as f64 / 1000.0).collect();
    let ys: Vec<f64> = pts.iter().map(|(_, v)| *v).collect();
    let mx = xs.iter().sum::<f64>() / n as f64;
    let my = ys.iter().sum::<f64>() / n as f64;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let syy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let r2 = if syy > 0.0 {
        (sxy * sxy) / (sxx * syy)
    } else {
        1.0
    };
    let seconds = xs.last().copied().unwrap_or(0.0);
    let rise = (slope * seconds).abs().max(1.0);
    let max_drop = ys
        .windows(2)
        .map(|w| (w[0] - w[1]).max(0.0))
        .fold(0.0, f64::max)
        / rise;
    Some(Fit {
        slope,
        intercept,
        r2,
        n,
        seconds,
        max_drop,
    })
}

/// The forecast criterion: a fit is trusted when it explains the points well (R² ≥ 0.9),
/// covers at least 10 points, rises, and nothing fell by more than 10% of its rise between
/// two points (a garbage collector's sawtooth does; a leak does not).
pub fn trusted(f: &Fit) -> bool {
    f.r2 >= 0.9 && f.n >= 10 && f.slope > 0.0 && f.max_drop <= 0.1
}

/// min / max / last of one column over a step (sizes: `_bytes` as everywhere in the JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    /// Smallest.
    #[serde(rename = "min_bytes")]
    pub min: Option<u64>,
    /// Largest.
    #[serde(rename = "max_bytes")]
    pub max: Option<u64>,
    /// The step's last sample.
    #[serde(rename = "last_bytes")]
    pub last: Option<u64>,
}

/// One step of the history.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Start of the step (RFC 3339 UTC).
    pub start: String,
    /// Start, ms since the epoch.
    pub start_ms: i64,
    /// Samples in the step (0: not recorded then).
    pub samples: usize,
    /// Per column (in [`COLUMNS`] order): `{min_bytes, max_bytes, last_bytes}`.
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// An event in the history.
#[derive(Debug, Clone, Serialize)]
pub struct HistEvent {
    /// When (RFC 3339 UTC).
    pub at: String,
    /// ms since the epoch.
    pub t: i64,
    /// `oom-kill`, `limit-hit`, `high-event`, `limit-changed`, `process-started`,
    /// `process-gone`, `cgroup-created`, `cgroup-removed`.
    pub kind: String,
    /// What happened.
    pub detail: String,
}

/// The growth rate of what cannot be reclaimed (anon + shmem + unreclaimable kernel).
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    /// Bytes per second (least-squares slope).
    pub bytes_per_second: f64,
    /// The same in MiB per minute.
    pub mib_per_minute: f64,
    /// The fit (R², points, largest drop).
    pub fit: Fit,
    /// Whether the fit meets the forecast criterion ([`trusted`]).
    pub trusted: bool,
}

/// `memlens history`.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// The target as given.
    pub target: String,
    /// The cgroup (path within the hierarchy).
    pub path: String,
    /// Range shown.
    pub since: String,
    /// Range shown.
    pub until: String,
    /// Step length.
    pub step_seconds: f64,
    /// Samples read.
    pub samples: usize,
    /// The columns of each step.
    pub columns: Vec<&'static str>,
    /// The steps.
    pub steps: Vec<Step>,
    /// Events in the range.
    pub events: Vec<HistEvent>,
    /// The growth of what cannot be reclaimed over the range.
    pub not_reclaimable_growth: Option<Growth>,
    /// When the cgroup was removed (it no longer exists), if recorded.
    pub removed_at: Option<String>,
    /// Whether the `usage_interval_peak` column is exact, and why not where it is not.
    pub usage_interval_peak: PeakSource,
    /// Reads of the cgroup's files that failed (the recorder kept the error), oldest first:
    /// why a step is "not recorded" or a figure missing.
    pub refusals: Vec<Refusal>,
    /// Damaged chunks skipped.
    pub problems: Vec<String>,
}

/// A read of a cgroup file the recorder could not do, from then on until the file was read
/// again.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub at: String,
    pub t: i64,
    /// The file's name (`memory.stat`).
    pub file: String,
    /// The error (`permission denied (...)`, `not provided by this kernel (or gone)`).
    pub reason: String,
}

/// How a range's usage peak is known: `exact` (memory.peak read and reset per descriptor at
/// every sample, Linux 6.12+, cgroup v2), `sampled` (the highest sample: the reasons say
/// why), or `partly exact` (some points each way).
#[derive(Debug, Clone, Serialize)]
pub struct PeakSource {
    pub source: &'static str,
    /// Points with an exact interval peak, and without.
    pub exact_points: usize,
    pub sampled_points: usize,
    /// The distinct reasons of the points without one.
    pub reasons: Vec<String>,
}

impl PeakSource {
    /// Over `pts`.
    pub fn of(pts: &[Point]) -> PeakSource {
        let col = COLUMNS.len() - 1;
        let exact = pts
            .iter()
            .filter(|p| p.values.get(col).copied().flatten().is_some())
            .count();
        let mut reasons: Vec<String> = Vec::new();
        for w in pts.iter().filter_map(|p| p.interval_peak_why.as_deref()) {
            if !reasons.iter().any(|r| r == w) {
                reasons.push(w.to_string());
            }
        }
        let sampled = pts.len() - exact;
        PeakSource {
            source: match (exact, sampled) {
                (_, 0) if exact > 0 => "exact",
                (0, _) => "sampled",
                _ => "partly exact",
            },
            exact_points: exact,
            sampled_points: sampled,
            reasons,
        }
    }
}

/// The arguments of `memlens history`.
#[derive(Debug, Clone)]
pub struct Query {
    /// TARGET.
    pub target: String,
    /// --since.
    pub since: String,
    /// --until.
    pub until: Option<String>,
    /// --step.
    pub step: Option<String>,
}

/// A `--since` value: a span back from now, or a time.
pub fn parse_since(s: &str, now: i64) -> Result<i64, String> {
    match parse_span(s) {
        Ok(span) if !s.contains(':') && !s.contains('-') => Ok(now - span),
        _ => parse_time(s, now),
    }
}

/// Events between consecutive points (counters that rose, limits changed, processes).
pub fn derived_events(pts: &[Point]) -> Vec<HistEvent> {
    let mut out = Vec::new();
    let mut ev = |t: i64, kind: &str, detail: String| {
        out.push(HistEvent {
            at: format_time(t),
            t,
            kind: kind.into(),
            detail,
        })
    };
    for w in pts.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let rose = |x: Option<u64>, y: Option<u64>| match (x, y) {
            (Some(x), Some(y)) if y > x => Some(y - x),
            _ => None,
        };
        if let Some(n) = rose(a.limit_hits, b.limit_hits) {
            ev(b.t, "limit-hit", format!("{n} limit hits"));
        }
        if let Some(n) = rose(a.high_events, b.high_events) {
            ev(b.t, "high-event", format!("{n} memory.high events"));
        }
        if let Some(n) = rose(a.oom_kills, b.oom_kills) {
            ev(b.t, "oom-kill", format!("{n} OOM kills counted"));
        }
        for (col, name) in [("limit", "limit"), ("high", "memory.high")] {
            if a.get(col) != b.get(col) {
                let f = |v: Option<u64>| {
                    v.map_or("unlimited".to_string(), |b| crate::render::bytes(Some(b)))
                };
                ev(
                    b.t,
                    "limit-changed",
                    format!("{name} {} → {}", f(a.get(col)), f(b.get(col))),
                );
            }
        }
        if let (Some(pa), Some(pb)) = (&a.pids, &b.pids) {
            let started: Vec<String> = pb
                .iter()
                .filter(|p| !pa.contains(p))
                .map(|p| p.to_string())
                .collect();
            let gone: Vec<String> = pa
                .iter()
                .filter(|p| !pb.contains(p))
                .map(|p| p.to_string())
                .collect();
            if !started.is_empty() {
                ev(
                    b.t,
                    "process-started",
                    format!("PID {}", started.join(", ")),
                );
            }
            if !gone.is_empty() {
                ev(b.t, "process-gone", format!("PID {}", gone.join(", ")));
            }
        }
    }
    out
}

/// Builds `memlens history` from the store. Errors: (exit code, message).
pub fn history(dir: Option<&Path>, q: &Query) -> Result<History, (i32, String)> {
    let fail = |e: String| (crate::cli::exit::FAILURE, e);
    let r = open_store(dir).map_err(|e| fail(e.to_string()))?;
    let h = recorded_hierarchy(&r).map_err(fail)?;
    let path = resolve(&r, &h, &q.target)?;
    let now = crate::store::now_ms();
    let bad = |e: String| (crate::cli::exit::BAD_TARGET, e);
    let since = parse_since(&q.since, now).map_err(bad)?;
    let until = match &q.until {
        Some(u) => parse_time(u, now).map_err(bad)?,
        None => now,
    };
    if until <= since {
        return Err(bad("--until must be after --since".into()));
    }
    // Nothing before the first sample or after the last: the range stops there (the
    // table would say "not recorded" line after line).
    let (since, until) = match r.range().map_err(|e| fail(e.to_string()))? {
        Some((lo, hi)) => (since.max(lo), until.min(hi + 1000).max(since.max(lo) + 1)),
        None => (since, until),
    };
    let step = match &q.step {
        Some(s) => parse_span(s).map_err(bad)?.max(1),
        None => ((until - since) / 60).max(1000),
    };
    let (pts, problems) = points(&r, &h, &path, since, until).map_err(fail)?;
    let mut steps = Vec::new();
    let mut i = 0;
    let mut s0 = since;
    while s0 < until {
        let s1 = s0 + step;
        let j = pts[i..].iter().take_while(|p| p.t < s1).count() + i;
        let slice = &pts[i..j];
        let mut values = serde_json::Map::new();
        for (k, col) in COLUMNS.iter().enumerate() {
            let vs: Vec<u64> = slice.iter().filter_map(|p| p.values[k]).collect();
            values.insert(
                col.to_string(),
                serde_json::json!(Stat {
                    min: vs.iter().min().copied(),
                    max: vs.iter().max().copied(),
                    last: slice.last().and_then(|p| p.values[k]),
                }),
            );
        }
        steps.push(Step {
            start: format_time(s0),
            start_ms: s0,
            samples: slice.len(),
            values,
        });
        i = j;
        s0 = s1;
    }
    let mut events = derived_events(&pts);
    let dir_s = read::fs_path(&h, &path).to_string_lossy().to_string();
    let mut removed_at = None;
    let stored = r.events(since, until).map_err(|e| fail(e.to_string()))?;
    for e in stored
        .iter()
        .filter(|e| e.cgroup.as_deref() == Some(path.as_str()))
    {
        match e.kind.as_str() {
            "oom-kill" => {
                // The counter's rise is the same kill: the stored event (with the victim) wins.
                events.retain(|x| !(x.kind == "oom-kill" && (x.t - e.t).abs() < 10_000));
                let pm = &e.data["post_mortem"];
                let victim = pm["victim"]["comm"]
                    .as_str()
                    .or(pm["report"]["victim"]["comm"].as_str());
                events.push(HistEvent {
                    at: format_time(e.t),
                    t: e.t,
                    kind: "oom-kill".into(),
                    detail: match victim {
                        Some(v) => format!(
                            "OOM kill of {v} (detected by {})",
                            e.data["detected_by"].as_str().unwrap_or("?")
                        ),
                        None => format!(
                            "OOM kill (detected by {})",
                            e.data["detected_by"].as_str().unwrap_or("?")
                        ),
                    },
                });
            }
            "cgroup-created" | "cgroup-removed" => {
                if e.kind == "cgroup-removed" {
                    removed_at = Some(format_time(e.t));
                }
                events.push(HistEvent {
                    at: format_time(e.t),
                    t: e.t,
                    kind: e.kind.clone(),
                    detail: dir_s.clone(),
                });
            }
            _ => {}
        }
    }
    events.sort_by_key(|e| e.t);
    let nr: Vec<(i64, f64)> = pts
        .iter()
        .filter_map(|p| Some((p.t, p.get("not_reclaimable")? as f64)))
        .collect();
    let growth = fit(&nr).map(|f| Growth {
        bytes_per_second: f.slope,
        mib_per_minute: f.slope * 60.0 / 1_048_576.0,
        trusted: trusted(&f),
        fit: f,
    });
    Ok(History {
        target: q.target.clone(),
        path,
        since: format_time(since),
        until: format_time(until),
        step_seconds: step as f64 / 1000.0,
        samples: pts.len(),
        columns: COLUMNS.to_vec(),
        steps,
        events,
        not_reclaimable_growth: growth,
        removed_at,
        usage_interval_peak: PeakSource::of(&pts),
        refusals: r
            .refusals_of(&dir_s, since, until)
            .into_iter()
            .map(|(t, p, reason)| Refusal {
                at: format_time(t),
                t,
                file: p.rsplit('/').next().unwrap_or(&p).to_string(),
                reason,
            })
            .collect(),
        problems,
    })
}

/// Writes a recorded moment as a capture bundle (the layout of `memlens capture`), with
/// `extra` as `memlens-history.json`.
pub fn write_capture(
    m: &Moment,
    out: &Path,
    label: &str,
    extra: &serde_json::Value,
) -> std::io::Result<()> {
    let secs = (m.t / 1000).max(0) as u64;
    let kernel = m
        .files
        .get(Path::new("/proc/sys/kernel/osrelease"))
        .map(|b| String::from_utf8_lossy(b).trim().to_string());
    let meta = serde_json::json!({
        "format": 1,
        "memlens_version": env!("CARGO_PKG_VERSION"),
        "kernel": kernel,
        "captured_at_unix": secs,
        "target": label,
        "files": m.files.len(),
        "source": "memlens record store",
        "unreadable": m.unreadable.iter().map(|(p, why)| (p.display().to_string(), serde_json::Value::String(format!("{}: {why}", p.display())))).collect::<serde_json::Map<String, serde_json::Value>>(),
    });
    let f = std::fs::File::create(out)?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(secs);
        h.set_cksum();
        tar.append_data(&mut h, name, data)
    };
    add(
        crate::sys::CAPTURE_META,
        &serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?,
    )?;
    add(
        "memlens-history.json",
        &serde_json::to_vec_pretty(extra).map_err(std::io::Error::other)?,
    )?;
    for (p, data) in &m.files {
        let rel = p.strip_prefix("/").unwrap_or(p);
        add(&rel.to_string_lossy(), data)?;
    }
    tar.into_inner()?.finish()?;
    Ok(())
}

/// Every recorded cgroup's points in `[since, until]`, with its identity (as recorded):
/// what `memlens export` writes.
pub struct Export {
    /// (cgroup path, identity, points), by path.
    pub series: Vec<(String, crate::identity::Identity, Vec<Point>)>,
    /// The host's recorded series.
    pub host: HostSeries,
    /// Damaged chunks skipped.
    pub problems: Vec<String>,
}

/// The host's files the recorder stores, as series of (ms, value): /proc/meminfo (the
/// fields serve exports, kB → bytes), /proc/pressure/memory totals (µs), and the dying
/// memory cgroups (v2: the root's cgroup.stat nr_dying_descendants) or, on v1, the kernel's
/// count of memory cgroups live and dying (/proc/cgroups num_cgroups: the live count the
/// recorder subtracts is not stored).
#[derive(Debug, Default)]
pub struct HostSeries {
    /// meminfo field → samples (bytes).
    pub meminfo: BTreeMap<String, Vec<(i64, u64)>>,
    /// Host PSI memory `some` total (µs).
    pub psi_some_usec: Vec<(i64, u64)>,
    /// Host PSI memory `full` total (µs).
    pub psi_full_usec: Vec<(i64, u64)>,
    /// v2: dying memory cgroups.
    pub dying: Vec<(i64, u64)>,
    /// v1: memory cgroups the kernel holds, live and dying.
    pub memory_cgroups: Vec<(i64, u64)>,
}

fn host_series(
    r: &Reader,
    h: &Hierarchy,
    since: i64,
    until: i64,
) -> Result<(HostSeries, Vec<String>), String> {
    let root_stat = read::fs_path(h, "/")
        .join("cgroup.stat")
        .to_string_lossy()
        .into_owned();
    let mp = h.mount_point.to_string_lossy().into_owned();
    let (series, problems) = r
        .group_samples_where(
            &["/proc", "/proc/pressure", mp.as_str()],
            since,
            until,
            |p| {
                matches!(
                    p,
                    "/proc/meminfo" | "/proc/pressure/memory" | "/proc/cgroups"
                ) || p == root_stat
            },
        )
        .map_err(|e| e.to_string())?;
    let mut out = HostSeries::default();
    for (path, samples) in series {
        for s in &samples {
            let Some(text) = r.text(s).map(|b| String::from_utf8_lossy(&b).into_owned()) else {
                continue;
            };
            match path.as_str() {
                "/proc/meminfo" => {
                    let kv = crate::proc::meminfo(&text);
                    for f in crate::metrics::MEMINFO_FIELDS {
                        if let Some(v) = kv.get(f) {
                            out.meminfo.entry(f.to_string()).or_default().push((s.t, v));
                        }
                    }
                }
                "/proc/pressure/memory" => {
                    if let Ok(p) = crate::cgroup::parse::pressure(&text) {
                        out.psi_some_usec.push((s.t, p.some.total_usec));
                        out.psi_full_usec.push((s.t, p.full.total_usec));
                    }
                }
                "/proc/cgroups" => {
                    if let Ok(n) = crate::cgroup::parse::proc_cgroups_memory(&text) {
                        out.memory_cgroups.push((s.t, n));
                    }
                }
                _ => {
                    if let Some((n, _)) = crate::cgroup::parse::dying_memory(
                        &crate::cgroup::parse::flat_keyed(&text).0,
                    ) {
                        out.dying.push((s.t, n));
                    }
                }
            }
        }
    }
    if h.version == Version::V2 {
        out.memory_cgroups.clear();
    }
    Ok((out, problems))
}

/// Reads every recorded cgroup (or those matching `targets`) for `memlens export`.
pub fn export(
    dir: Option<&Path>,
    since: &str,
    until: Option<&str>,
    targets: &[String],
) -> Result<Export, (i32, String)> {
    let fail = |e: String| (crate::cli::exit::FAILURE, e);
    let bad = |e: String| (crate::cli::exit::BAD_TARGET, e);
    let r = open_store(dir).map_err(|e| fail(e.to_string()))?;
    let h = recorded_hierarchy(&r).map_err(fail)?;
    let now = crate::store::now_ms();
    let since = parse_since(since, now).map_err(bad)?;
    let until = match until {
        Some(u) => parse_time(u, now).map_err(bad)?,
        None => now,
    };
    let paths = if targets.is_empty() {
        recorded_cgroups(&r, &h)
    } else {
        targets
            .iter()
            .map(|t| resolve(&r, &h, t))
            .collect::<Result<Vec<_>, _>>()?
    };
    let idents: BTreeMap<String, serde_json::Value> = r
        .events(i64::MIN, i64::MAX)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.kind == "identity")
        .filter_map(|e| Some((e.cgroup?, e.data)))
        .collect();
    let mut series = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        let (pts, pr) = points(&r, &h, &p, since, until).map_err(fail)?;
        problems.extend(pr);
        if pts.is_empty() {
            continue;
        }
        let mut id = crate::identity::Identity::from_path(&p);
        if let Some(v) = idents.get(&p) {
            let s = |k: &str| v["names"][k].as_str().map(str::to_string);
            id.names = crate::identity::Names {
                namespace: s("namespace"),
                pod: s("pod"),
                container: s("container"),
                image: s("image"),
                runtime_name: s("runtime_name"),
            };
        }
        series.push((p, id, pts));
    }
    // The host's series with the whole node's export (not when only some cgroups are asked).
    let host = if targets.is_empty() {
        let (host, pr) = host_series(&r, &h, since, until).map_err(fail)?;
        problems.extend(pr);
        host
    } else {
        HostSeries::default()
    };
    Ok(Export {
        series,
        host,
        problems,
    })
}

/// What `memlens plot` draws: the cgroup, its points, the OOM-kill times (ms).
pub type PlotData = (String, Vec<Point>, Vec<i64>);

/// The points and OOM-kill times `memlens plot` draws. Errors: (exit code, message).
pub fn plot_data(dir: Option<&Path>, q: &Query) -> Result<PlotData, (i32, String)> {
    let fail = |e: String| (crate::cli::exit::FAILURE, e);
    let bad = |e: String| (crate::cli::exit::BAD_TARGET, e);
    let r = open_store(dir).map_err(|e| fail(e.to_string()))?;
    let h = recorded_hierarchy(&r).map_err(fail)?;
    let path = resolve(&r, &h, &q.target)?;
    let now = crate::store::now_ms();
    let since = parse_since(&q.since, now).map_err(bad)?;
    let until = match &q.until {
        Some(u) => parse_time(u, now).map_err(bad)?,
        None => now,
    };
    let (pts, _) = points(&r, &h, &path, since, until).map_err(fail)?;
    let mut kills: Vec<i64> = r
        .events(since, until)
        .map_err(|e| fail(e.to_string()))?
        .into_iter()
        .filter(|e| e.kind == "oom-kill" && e.cgroup.as_deref() == Some(path.as_str()))
        .map(|e| e.t)
        .collect();
    // Kills the counters saw (when no event was stored: the recorder did not follow the log).
    for e in derived_events(&pts) {
        if e.kind == "oom-kill" && !kills.iter().any(|k| (k - e.t).abs() < 10_000) {
            kills.push(e.t);
        }
    }
    Ok((path, pts, kills))
}
