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
    finish(root, h, focus, taken_ms, source, o, extras)
}

/// Reads one snapshot from `root`. `focus`: the cgroup whose full report is read too.
pub fn take(
    root: &Root,
    h: &Hierarchy,
    focus: Option<&str>,
    taken_ms: i64,
    source: &str,
) -> Snapshot {
    let (mut o, extras) =
        overview::collect_with(root, h, true, Level::Metrics, |_, cg| RowExtra::of(cg));
    overview::count_pids(root, h, &mut o);
    finish(root, h, focus, taken_ms, source, o, extras)
}

fn finish(
    root: &Root,
    h: &Hierarchy,
    focus: Option<&str>,
    taken_ms: i64,
    source: &str,
    o: Overview,
    extras: Vec<RowExtra>,
) -> Snapshot {
    let (detail, detail_error) = match focus {
        None => (None, None),
        Some(p) => match report::build(root, h, p, Options::default()) {
            Ok(r) => {
                let findings = crate::rules::evaluate(&r, None);
                (
                    Some(Detail {
                        report: r,
                        findings,
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
    }
}
