//! Noisy neighbours: a cgroup below its own limit that lost page cache between two samples
//! while another cgroup (not its ancestor or descendant) grew: reclaim driven by someone
//! else's growth, at a shared parent's limit or node-wide (field §4 item 21; the motivation
//! of KEP-2570's memory.min/low). v2 adds the refaults (memory.stat workingset_refault_file)
//! and pages stolen (pgsteal) as evidence; v1 has only the cache counter.
//! Computed from two samples of the same cgroups; nothing here reads the system.

use crate::model::Cgroup;
use serde::Serialize;

/// A cgroup that lost cache while others grew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Noisy {
    /// The cgroup that lost cache.
    pub victim: String,
    /// Page cache lost: Δ (v1 total_cache, v2 file), bytes.
    pub cache_lost_bytes: u64,
    /// v2 Δ workingset_refault_file (pages): what it had to read back.
    pub refaults: Option<u64>,
    /// v2 Δ pgsteal (pages).
    pub pgsteal: Option<u64>,
    /// Who grew meanwhile, largest first: (path, bytes); in JSON objects
    /// `{path, growth_bytes}` (one type per field, not a tuple).
    #[serde(serialize_with = "growers_json")]
    pub growers: Vec<(String, u64)>,
}

fn growers_json<S: serde::Serializer>(g: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(g.len()))?;
    for (path, bytes) in g {
        seq.serialize_element(&serde_json::json!({"path": path, "growth_bytes": bytes}))?;
    }
    seq.end()
}

fn related(a: &str, b: &str) -> bool {
    let under = |x: &str, y: &str| y == "/" || x == y || x.starts_with(&format!("{y}/"));
    under(a, b) || under(b, a)
}

fn usage(c: &Cgroup) -> Option<u64> {
    c.usage.current
}

fn cache(c: &Cgroup) -> Option<u64> {
    match c.version {
        crate::model::Version::V1 => c.stat_hier("cache"),
        crate::model::Version::V2 => c.stat_hier("file"),
    }
}

/// Compares `before` and `after` (the same walk, twice). `limits` gives each path's
/// effective limit. A victim lost more than `min` bytes of cache while below 90% of its limit
/// (or unlimited); a grower grew by more than `min`.
pub fn find(
    before: &[Cgroup],
    after: &[Cgroup],
    limit_of: impl Fn(&str) -> Option<u64>,
    min: u64,
) -> Vec<Noisy> {
    let prev = |p: &str| before.iter().find(|c| c.path == p);
    let mut growth: Vec<(String, u64)> = after
        .iter()
        .filter(|c| !c.is_root())
        .filter_map(|c| {
            let g = usage(c)?.checked_sub(usage(prev(&c.path)?)?)?;
            (g > min).then(|| (c.path.clone(), g))
        })
        .collect();
    growth.sort_by_key(|g| std::cmp::Reverse(g.1));
    let mut out = Vec::new();
    for c in after.iter().filter(|c| !c.is_root()) {
        let Some(p) = prev(&c.path) else { continue };
        let (Some(c0), Some(c1)) = (cache(p), cache(c)) else {
            continue;
        };
        let lost = c0.saturating_sub(c1);
        if lost <= min {
            continue;
        }
        let below = match (usage(c), limit_of(&c.path)) {
            (Some(u), Some(l)) => (u as f64) < l as f64 * 0.9,
            _ => true,
        };
        if !below {
            continue;
        }
        let growers: Vec<(String, u64)> = growth
            .iter()
            .filter(|(g, _)| !related(g, &c.path))
            .take(3)
            .cloned()
            .collect();
        if growers.is_empty() {
            continue;
        }
        let d = |k: &str| {
            Some(
                c.stat
                    .as_ref()?
                    .get(k)?
                    .saturating_sub(p.stat.as_ref()?.get(k)?),
            )
        };
        let v2 = c.version == crate::model::Version::V2;
        out.push(Noisy {
            victim: c.path.clone(),
            cache_lost_bytes: lost,
            refaults: if v2 {
                d("workingset_refault_file")
            } else {
                None
            },
            pgsteal: if v2 { d("pgsteal") } else { None },
            growers,
        });
    }
    // Only the deepest victims: a parent that lost cache did so through its children.
    let paths: Vec<String> = out.iter().map(|n| n.victim.clone()).collect();
    out.retain(|n| {
        !paths
            .iter()
            .any(|p| p != &n.victim && p.starts_with(&format!("{}/", n.victim)))
    });
    out
}
