//! What the TUI shows, taken in one pass by the collector thread: the node overview (every
//! memory cgroup, read at [`Level::Metrics`] so PSI and limit hits come with it), the
//! process counts, and the full report of the cgroup the user drilled into. The UI thread
//! renders from a [`Snapshot`] only; it never reads /sys or /proc itself.

use crate::cgroup::read::Level;
use crate::cgroup::tier::{TierOptions, Tiers};
use crate::cgroup::walk::Tree;
use crate::model::{Cgroup, Hierarchy, Version};
use crate::overview::{self, Kept, Overview};
use crate::report::{self, Options, Report};
use crate::rules::Finding;
use crate::sys::Root;

/// Per-row figures the overview's row does not carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowExtra {
    /// memory.pressure `some avg10` (v2; v1 has no per-cgroup PSI).
    pub psi_some10: Option<f32>,
    /// Limit hits: v1 `memory.failcnt`, v2 `memory.events` `max`.
    pub limit_hits: Option<u64>,
    /// Refaults: memory.stat `workingset_refault_file` (5.9+) or `workingset_refault`.
    pub refaults: Option<u64>,
    /// v2 memory.high in bytes (`None`: v1 or `max`).
    pub high_bytes: Option<u64>,
    /// Processes in the cgroup (cgroup.procs), read with the cgroup's other files.
    pub pids: Option<usize>,
}

impl RowExtra {
    fn of(cg: &Cgroup) -> Self {
        let v1 = cg.version == Version::V1;
        RowExtra {
            psi_some10: cg.pressure.map(|p| p.some.avg10),
            limit_hits: if v1 {
                cg.events.failcnt
            } else {
                cg.events.events.as_ref().and_then(|e| e.get("max"))
            },
            refaults: cg
                .stat_hier("workingset_refault_file")
                .or_else(|| cg.stat_hier("workingset_refault")),
            high_bytes: cg.limits.high.and_then(crate::model::Limit::bytes),
            pids: None,
        }
    }
}

/// The drilled-into cgroup: its full report and findings.
#[derive(Debug, Clone)]
pub struct Detail {
    /// As `memlens show` builds it.
    pub report: Report,
    /// As `memlens explain` evaluates them (without a second sample).
    pub findings: Vec<Finding>,
    /// Usage (ms, bytes) from the flight recorder's store for the minutes before `top`
    /// started, while `memlens record` is writing it (empty otherwise): the sparkline's
    /// past beyond the in-memory ring.
    pub recorded: Vec<(i64, u64)>,
}

/// The node-wide figures of the header: `memlens node`'s waterfall in four sums, and the
/// dying memory cgroups (`memlens zombies`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFigures {
    /// Σ top-level cgroups (waterfall `top_level_cgroups`).
    pub in_cgroups: Option<i64>,
    /// Every waterfall line between the cgroups and free: the root's own pages, dying
    /// cgroups, memory charged to no cgroup (kernel, page cache, hugetlb, zram...).
    pub outside_cgroups: Option<i64>,
    /// MemFree + the per-CPU free lists (MemFree alone when zoneinfo is unknown).
    pub free: Option<i64>,
    /// The signed remainder nothing explains.
    pub unattributed: Option<i64>,
    /// Dying memory cgroups (v2 cgroup.stat, v1 /proc/cgroups − live directories).
    pub dying: Option<u64>,
}

impl NodeFigures {
    /// Sums the waterfall's lines (a line whose counter is unavailable makes its sum n/a).
    pub fn of(w: &crate::views::waterfall::Waterfall, dying: Option<u64>) -> Self {
        let mut f = NodeFigures {
            dying,
            outside_cgroups: Some(0),
            free: Some(0),
            ..Default::default()
        };
        for l in &w.lines {
            match l.key {
                "top_level_cgroups" => f.in_cgroups = l.bytes,
                "unattributed" => f.unattributed = l.bytes,
                "free" => f.free = f.free.zip(l.bytes).map(|(a, b)| a + b),
                // Free pages too; unknown without /proc/zoneinfo (a capture), then free is
                // MemFree alone.
                "pcp_free" => f.free = f.free.map(|a| a + l.bytes.unwrap_or(0)),
                _ => {
                    f.outside_cgroups = f.outside_cgroups.zip(l.bytes).map(|(a, b)| a + b);
                }
            }
        }
        f
    }
}

/// One moment of the node.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Wall time of the moment (ms since the epoch): when it was read, or the recorded time.
    pub taken_ms: i64,
    /// Every memory cgroup (the UI filters containers itself), with PIDs counted.
    pub overview: Overview,
    /// `overview.rows[i]`'s extras.
    pub extras: Vec<RowExtra>,
    /// The focused cgroup, when one is drilled into and still exists.
    pub detail: Option<Detail>,
    /// Why the focused cgroup has no detail (vanished...).
    pub detail_error: Option<String>,
    /// What the figures come from: `live`, `capture PATH`, `replay`.
    pub source: String,
    /// The node's waterfall sums and dying cgroups (None: the root is unreadable).
    pub node: Option<NodeFigures>,
}

/// What the live collector keeps between refreshes (issue 20): the cgroup list (inotify, no
/// walk per refresh) and the tiered reads: a cgroup whose usage has not moved is read in full
/// only every [`FULL_EVERY`] refreshes, its row kept as last read.
pub struct Cache {
    tree: Tree,
    tiers: Tiers<Kept<RowExtra>>,
}

/// At the default 1 s refresh: memory.stat of an idle cgroup at most 10 s old.
pub const FULL_EVERY: u32 = 10;

impl Default for Cache {
    fn default() -> Self {
        Cache {
            tree: Tree::new(),
            tiers: Tiers::new(TierOptions {
                full_every: FULL_EVERY,
                ..Default::default()
            }),
        }
    }
}

/// [`take`] with the [`Cache`]: what the live `top` runs every refresh.
pub fn take_cached(
    root: &Root,
    h: &Hierarchy,
    focus: Option<&str>,
    taken_ms: i64,
    source: &str,
    cache: &mut Cache,
) -> Snapshot {
    let (paths, changed) = cache.tree.paths_changed(root, h);
    let live = paths.len();
    if changed {
        cache.tiers.retain(paths);
    }
    let (mut o, extras) = overview::collect_tiered(
        root,
        h,
        paths,
        true,
        Level::Metrics,
        Some(&mut cache.tiers),
        |r, cg| RowExtra {
            pids: overview::pids_of(root, h, &r.path),
            ..RowExtra::of(cg)
        },
    );
    for (r, x) in o.rows.iter_mut().zip(&extras) {
        r.pids = x.pids;
    }
    finish(root, h, focus, taken_ms, source, o, extras, live)
}

/// Reads one snapshot from `root`. `focus`: the cgroup whose full report is read too.
pub fn take(
    root: &Root,
    h: &Hierarchy,
    focus: Option<&str>,
    taken_ms: i64,
    source: &str,
) -> Snapshot {
    let paths = crate::cgroup::walk::all_paths(root, h, "/");
    let (mut o, extras) =
        overview::collect_paths(root, h, &paths, true, Level::Metrics, |_, cg| {
            RowExtra::of(cg)
        });
    overview::count_pids(root, h, &mut o);
    let live = paths.len();
    finish(root, h, focus, taken_ms, source, o, extras, live)
}

/// The rest of a snapshot from the overview: the node's figures and the focused cgroup.
/// `live`: how many cgroup directories the walk saw (the dying count is /proc/cgroups − live).
#[allow(clippy::too_many_arguments)]
fn finish(
    root: &Root,
    h: &Hierarchy,
    focus: Option<&str>,
    taken_ms: i64,
    source: &str,
    o: Overview,
    extras: Vec<RowExtra>,
    live: usize,
) -> Snapshot {
    let (dying, ..) = crate::zombies::count_live(root, h, live);
    let node = crate::node::waterfall(root, h, &o.host.host)
        .ok()
        .map(|w| NodeFigures::of(&w, dying));
    let (detail, detail_error) = match focus {
        None => (None, None),
        Some(p) => match report::build(root, h, p, Options::default()) {
            Ok(r) => {
                let findings = crate::rules::evaluate(&r, None);
                (
                    Some(Detail {
                        report: r,
                        findings,
                        recorded: Vec::new(),
                    }),
                    None,
                )
            }
            Err(e) => (None, Some(format!("cgroup {p}: {e}"))),
        },
    };
    Snapshot {
        taken_ms,
        overview: o,
        extras,
        detail,
        detail_error,
        source: source.to_string(),
        node,
    }
}

/// The usage of `path` over the last 10 minutes from the store at `dir` (None: the default
/// one), when a recorder is writing it: its newest sample is at most 3 recording intervals
/// (and at least 5 s) old at `now`. Empty when there is no such store or no sample.
pub fn recorded_usage(dir: Option<&std::path::Path>, path: &str, now: i64) -> Vec<(i64, u64)> {
    let Ok(r) = crate::history::open_store(dir) else {
        return Vec::new();
    };
    let every = r
        .meta("interval_ms")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(10_000);
    let recording = r
        .range()
        .ok()
        .flatten()
        .is_some_and(|(_, hi)| now - hi <= (3 * every).max(5_000));
    if !recording {
        return Vec::new();
    }
    let Ok(h) = crate::history::recorded_hierarchy(&r) else {
        return Vec::new();
    };
    crate::history::points(&r, &h, path, now - 600_000, now)
        .map(|(pts, _)| {
            pts.iter()
                .filter_map(|p| Some((p.t, p.get("usage")?)))
                .collect()
        })
        .unwrap_or_default()
}
