//! Derived figures: what is reclaimable, what is not, the effective limit and the headroom
//! to an OOM kill and to memory.high.
//!
//! Formulas (each shown with its figure):
//! - reclaimable = (active_file + inactive_file − file_dirty − file_writeback) + slab_reclaimable:
//!   clean page cache can be dropped at once when the limit is hit (cgroup-v1/memory.rst 2.5,
//!   cgroup-v2.rst "memory.max"); shmem is not on the file LRUs and is excluded; dirty and
//!   writeback pages must be written first.
//! - not reclaimable without swap = anon + shmem + (kernel − slab_reclaimable).
//! - OOM headroom = effective limit − not reclaimable: how much more the cgroup can pin before
//!   reclaim cannot make room and the OOM killer runs (without swap).
//! - effective limit = the smallest memory limit on the path from the cgroup to the root
//!   (v1 `hierarchical_memory_limit`; v2: every ancestor's memory.max).

use super::Figure;
use super::breakdown::Breakdown;
use crate::model::{Cgroup, Limit, Version};
use serde::Serialize;

/// The limit that actually applies to a cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveLimit {
    /// Bytes, `None` when no cgroup on the path sets one.
    pub bytes: Option<u64>,
    /// The cgroup that sets it (itself or an ancestor).
    pub set_by: Option<String>,
    /// Where it was read.
    pub source: String,
}

/// Derived figures of one cgroup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Derived {
    /// The limit that applies.
    pub limit: EffectiveLimit,
    /// Usage as a percentage of the effective limit.
    pub percent_of_limit: Option<f64>,
    /// Clean page cache + reclaimable slab.
    pub reclaimable: Figure,
    /// anon + shmem + unreclaimable kernel memory.
    pub not_reclaimable: Figure,
    /// Effective limit − not reclaimable.
    pub oom_headroom: Figure,
    /// When `oom_headroom` cannot be exact because the kernel does not say how much of the
    /// page cache is shmem (3.10-era v1 has no `shmem` key): (with no cache reclaimable,
    /// with all of it reclaimable), i.e. limit − (anon + kernel + cache) and
    /// limit − (anon + kernel).
    pub oom_headroom_bounds: Option<(u64, u64)>,
    /// v2 memory.high − usage.
    pub high_headroom: Figure,
}

/// The smallest limit on the path from `cg` up through `ancestors` (nearest first).
pub fn effective_limit(cg: &Cgroup, ancestors: &[Cgroup]) -> EffectiveLimit {
    let own_file = if cg.version == Version::V1 {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    let mut best: Option<(u64, &str)> = None;
    for c in std::iter::once(cg).chain(ancestors.iter()) {
        if let Some(Limit::Bytes(b)) = c.limits.max
            && best.is_none_or(|(v, _)| b < v)
        {
            best = Some((b, c.path.as_str()));
        }
    }
    // v1 states the hierarchical limit itself; prefer it when it is lower (an ancestor we
    // could not read, or use_hierarchy semantics).
    if let Some(Limit::Bytes(h)) = cg.limits.hierarchical
        && best.is_none_or(|(v, _)| h < v)
    {
        return EffectiveLimit {
            bytes: Some(h),
            set_by: None,
            source: "memory.stat hierarchical_memory_limit".into(),
        };
    }
    match best {
        Some((b, p)) => EffectiveLimit {
            bytes: Some(b),
            set_by: Some(p.to_string()),
            source: if p == cg.path {
                own_file.to_string()
            } else {
                format!("{own_file} of ancestor {p}")
            },
        },
        None => EffectiveLimit {
            bytes: None,
            set_by: None,
            source: format!("{own_file} is unlimited here and in every ancestor"),
        },
    }
}

impl Derived {
    /// Computes the derived figures.
    pub fn of(cg: &Cgroup, b: &Breakdown, ancestors: &[Cgroup]) -> Self {
        Self::with_limit(cg, b, effective_limit(cg, ancestors))
    }

    /// Computes the derived figures given the effective limit (the overview walk already
    /// knows it from the parents it read, so the exporter need not read ancestors again).
    pub fn with_limit(cg: &Cgroup, b: &Breakdown, limit: EffectiveLimit) -> Self {
        let percent_of_limit = match (b.usage.bytes, limit.bytes) {
            (Some(u), Some(l)) if l > 0 => Some(u as f64 * 100.0 / l as f64),
            _ => None,
        };
        let clean_cache = match (b.active_file.bytes, b.inactive_file.bytes) {
            (Some(a), Some(i)) => {
                let dirty = super::add(&[
                    b.file_dirty.bytes.unwrap_or(0),
                    b.file_writeback.bytes.unwrap_or(0),
                ]);
                super::add(&[a, i])
                    .zip(dirty)
                    .map(|(c, d)| c.saturating_sub(d))
            }
            _ => None,
        };
        let reclaimable = match (clean_cache, b.slab_reclaimable.bytes) {
            (Some(c), Some(s)) => Figure::new(
                c.checked_add(s),
                "active_file + inactive_file − file_dirty − file_writeback + slab_reclaimable",
            ),
            (Some(c), None) => Figure::new(
                Some(c),
                "active_file + inactive_file − file_dirty − file_writeback (reclaimable slab not reported on this kernel, not included)",
            ),
            _ => Figure::unavailable("active_file/inactive_file unavailable"),
        };
        let not_reclaimable = match (b.anon.bytes, b.shmem.bytes, b.kernel.bytes) {
            (Some(a), Some(s), Some(k)) => match b.slab_reclaimable.bytes {
                Some(sr) => Figure::new(
                    super::add(&[a, s, k.saturating_sub(sr)]),
                    "anon + shmem + (kernel − slab_reclaimable)",
                ),
                None => Figure::new(
                    super::add(&[a, s, k]),
                    "anon + shmem + kernel (kernel counted whole: this kernel does not split out reclaimable slab)",
                ),
            },
            (Some(a), Some(s), None) => Figure::new(
                a.checked_add(s),
                "anon + shmem (kernel memory not reported, not included)",
            ),
            _ => Figure::unavailable("anon or shmem unavailable"),
        };
        // Without a shmem key the page cache may be anything from all reclaimable to all
        // shmem: bound the headroom instead of giving up (issue 19 item 13).
        let mut oom_headroom_bounds = None;
        if not_reclaimable.bytes.is_none()
            && b.shmem.bytes.is_none()
            && let (Some(l), Some(a), Some(f)) = (limit.bytes, b.anon.bytes, b.file.bytes)
        {
            let k = b.kernel.bytes.unwrap_or(0);
            if let (Some(lo_pinned), Some(hi_pinned)) =
                (super::add(&[a, k, f]), super::add(&[a, k]))
            {
                oom_headroom_bounds =
                    Some((l.saturating_sub(lo_pinned), l.saturating_sub(hi_pinned)));
            }
        }
        let oom_headroom = match (limit.bytes, not_reclaimable.bytes) {
            (Some(l), Some(n)) => Figure::new(
                Some(l.saturating_sub(n)),
                format!("effective limit ({}) − not reclaimable", limit.source),
            ),
            (None, _) => Figure::unavailable(
                "no limit: only the host's memory bounds this cgroup (a global OOM)",
            ),
            _ => match oom_headroom_bounds {
                Some((lo, hi)) => Figure::unavailable(format!(
                    "between {} (no page cache reclaimable) and {} (all of it reclaimable): this kernel's memory.stat has no shmem key, so how much of the cache ({}) is shmem, which cannot be reclaimed without swap, is unknown; effective limit ({}) − (anon + kernel [+ cache])",
                    crate::render::bytes(Some(lo)),
                    crate::render::bytes(Some(hi)),
                    crate::render::bytes(b.file.bytes),
                    limit.source
                )),
                None => Figure::unavailable("not-reclaimable figure unavailable"),
            },
        };
        let high_headroom = match (cg.limits.high, b.usage.bytes) {
            (Some(Limit::Bytes(h)), Some(u)) => {
                Figure::new(Some(h.saturating_sub(u)), "memory.high − memory.current")
            }
            (Some(Limit::Unlimited), _) => Figure::unavailable("memory.high is max"),
            _ => Figure::unavailable(if cg.version == Version::V1 {
                "v1 has no memory.high"
            } else {
                "memory.high not provided"
            }),
        };
        Derived {
            limit,
            percent_of_limit,
            reclaimable,
            not_reclaimable,
            oom_headroom,
            oom_headroom_bounds,
            high_headroom,
        }
    }
}
