//! Kernel memory by part: what reclaim can free and what it cannot.
//!
//! Per cgroup, v2 memory.stat splits it (Documentation/admin-guide/cgroup-v2.rst
//! "memory.stat": `slab_reclaimable`, `slab_unreclaimable`, `sock`, `kernel_stack`,
//! `pagetables`, `sec_pagetables` (6.1+), `percpu`, `vmalloc` (6.1+)); only reclaimable slab
//! (dentries, inodes: `SLAB_RECLAIM_ACCOUNT` caches with shrinkers) is freed by reclaim, the
//! rest goes only when its objects are released. v1 states only the total
//! (`memory.kmem.usage_in_bytes`) and TCP buffers (`memory.kmem.tcp.usage_in_bytes`, not in
//! the usage); its per-memcg `memory.kmem.slabinfo` is empty since 5.9.
//! Node-wide the same parts are in /proc/meminfo (Documentation/filesystems/proc.rst
//! "meminfo"), the caches in /proc/slabinfo and the dentries in /proc/sys/fs/dentry-state.

use super::Figure;
use crate::cgroup::slabinfo::{DentryState, SlabCache};
use crate::model::{Cgroup, KeyValues, Version};
use serde::Serialize;

/// One part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    /// Name (`slab_reclaimable`, ...).
    pub name: &'static str,
    /// What it is.
    pub what: &'static str,
    /// Freed by reclaim (at the limit, or under node pressure)?
    pub reclaimable: bool,
    /// The figure.
    pub figure: Figure,
}

/// (key, what, reclaimable), in display order.
const PARTS: &[(&str, &str, bool)] = &[
    (
        "slab_reclaimable",
        "dentry and inode caches (shrinkers free them)",
        true,
    ),
    (
        "slab_unreclaimable",
        "other slab objects (freed when released)",
        false,
    ),
    ("sock", "socket buffers", false),
    ("kernel_stack", "kernel stacks (one per thread)", false),
    ("pagetables", "page tables", false),
    (
        "sec_pagetables",
        "secondary page tables (KVM, IOMMU)",
        false,
    ),
    (
        "percpu",
        "per-CPU allocations (each memcg has its own)",
        false,
    ),
    ("vmalloc", "vmalloc", false),
];

/// A cgroup's kernel memory split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupKernel {
    /// The total (v2 memory.stat kernel, v1 memory.kmem.usage_in_bytes).
    pub total: Figure,
    /// The parts (unavailable on v1, with the reason).
    pub parts: Vec<Part>,
    /// Sum of the reclaimable parts (`None` when the split is unavailable).
    pub reclaimable_bytes: Option<u64>,
    /// Sum of the other parts.
    pub unreclaimable_bytes: Option<u64>,
    /// v1 TCP buffers (memory.kmem.tcp.usage_in_bytes; not in the usage).
    pub tcp_bytes: Option<u64>,
    /// v1 memory.kmem.slabinfo, largest first (empty since 5.9).
    pub slab_caches: Vec<SlabCache>,
    /// Why there are no slab caches listed.
    pub slab_caches_note: Option<String>,
}

impl CgroupKernel {
    /// The split of `cg`; `total` is the breakdown's kernel figure, `slabinfo` the parsed
    /// v1 memory.kmem.slabinfo with whether the file was 0 bytes (`Err`: why it gives
    /// none; `None` when not read).
    pub fn of(
        cg: &Cgroup,
        total: &Figure,
        slabinfo: Option<Result<(Vec<SlabCache>, bool), String>>,
    ) -> Self {
        let stat = cg.stat.as_ref();
        let parts: Vec<Part> = PARTS
            .iter()
            .map(|(k, what, rec)| {
                let figure = match cg.version {
                    Version::V1 => Figure::unavailable(
                        "v1 memory.stat does not split kernel memory (only memory.kmem.usage_in_bytes)",
                    ),
                    Version::V2 => match stat.and_then(|s| s.get(k)) {
                        Some(v) => Figure::new(Some(v), format!("memory.stat {k}")),
                        None => Figure::unavailable(format!("memory.stat has no {k} on this kernel")),
                    },
                };
                Part {
                    name: k,
                    what,
                    reclaimable: *rec,
                    figure,
                }
            })
            .collect();
        let sum = |want: bool| -> Option<u64> {
            let v: Vec<u64> = parts
                .iter()
                .filter(|p| p.reclaimable == want)
                .filter_map(|p| p.figure.bytes)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum())
        };
        let (slab_caches, slab_caches_note) = match (cg.version, slabinfo) {
            (Version::V2, _) => (
                Vec::new(),
                Some("v2 has no per-memcg slabinfo".to_string()),
            ),
            (Version::V1, None) => (
                Vec::new(),
                Some("memory.kmem.slabinfo unreadable".to_string()),
            ),
            (Version::V1, Some(Err(why))) => (Vec::new(), Some(why)),
            // 0 bytes, not even the header: since 5.9 (commit 9855609bde03,
            // "mm: memcg/slab: use a single set of kmem_caches for all accounted allocations").
            (Version::V1, Some(Ok((v, true)))) if v.is_empty() => (
                Vec::new(),
                Some("memory.kmem.slabinfo is empty: since 5.9 all memcgs share one set of slab caches".to_string()),
            ),
            // The header alone: a pre-5.9 kernel that has made no per-memcg cache for it yet.
            (Version::V1, Some(Ok((v, false)))) if v.is_empty() => (
                Vec::new(),
                Some("memory.kmem.slabinfo lists no caches: the kernel has made no slab cache of this cgroup's own yet (before 5.9 a memcg gets its own copy of each cache it allocates from)".to_string()),
            ),
            (Version::V1, Some(Ok((mut v, _)))) => {
                v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
                v.truncate(10);
                (v, None)
            }
        };
        CgroupKernel {
            total: total.clone(),
            reclaimable_bytes: sum(true),
            unreclaimable_bytes: sum(false),
            parts,
            tcp_bytes: cg.usage.kmem_tcp,
            slab_caches,
            slab_caches_note,
        }
    }
}

/// A node-wide slab cache with whether reclaim can shrink it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeCache {
    /// The cache.
    #[serde(flatten)]
    pub cache: SlabCache,
    /// SLUB /sys/kernel/slab/NAME/reclaim_account (`None` when unreadable).
    pub reclaimable: Option<bool>,
}

/// The node's kernel memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeKernel {
    /// Parts from /proc/meminfo (and socket pages from /proc/net/sockstat).
    pub parts: Vec<Part>,
    /// /proc/slabinfo, largest first (top 10).
    pub slab_caches: Vec<NodeCache>,
    /// Σ of every cache in /proc/slabinfo (compare meminfo Slab).
    pub slabinfo_total_bytes: Option<u64>,
    /// /proc/sys/fs/dentry-state.
    pub dentries: Option<DentryState>,
}

/// meminfo key → part name.
const NODE_PARTS: &[(&str, &str)] = &[
    ("SReclaimable", "slab_reclaimable"),
    ("SUnreclaim", "slab_unreclaimable"),
    ("KernelStack", "kernel_stack"),
    ("PageTables", "pagetables"),
    ("SecPageTables", "sec_pagetables"),
    ("Percpu", "percpu"),
    ("VmallocUsed", "vmalloc"),
];

impl NodeKernel {
    /// From /proc/meminfo, the sockstat socket pages (bytes), slabinfo and dentry-state.
    pub fn of(
        meminfo: Option<&KeyValues>,
        sock_bytes: Option<u64>,
        slabinfo: Option<Vec<NodeCache>>,
        dentries: Option<DentryState>,
    ) -> Self {
        let mut parts = Vec::new();
        for (name, what, rec) in PARTS {
            let fig = if *name == "sock" {
                match sock_bytes {
                    Some(b) => Figure::new(
                        Some(b),
                        "/proc/net/sockstat (TCP mem + UDP mem) × page size",
                    ),
                    None => Figure::unavailable("/proc/net/sockstat unreadable"),
                }
            } else {
                let key = NODE_PARTS
                    .iter()
                    .find(|(_, n)| n == name)
                    .map(|(k, _)| *k)
                    .unwrap_or("");
                match meminfo.and_then(|m| m.get(key)) {
                    Some(v) => Figure::new(Some(v), format!("/proc/meminfo {key}")),
                    None => Figure::unavailable(format!("/proc/meminfo has no {key}")),
                }
            };
            parts.push(Part {
                name,
                what,
                reclaimable: *rec,
                figure: fig,
            });
        }
        let (slab_caches, slabinfo_total_bytes) = match slabinfo {
            Some(mut v) => {
                let total = v.iter().map(|c| c.cache.bytes).sum();
                v.sort_by(|a, b| {
                    b.cache
                        .bytes
                        .cmp(&a.cache.bytes)
                        .then(a.cache.name.cmp(&b.cache.name))
                });
                v.truncate(10);
                (v, Some(total))
            }
            None => (Vec::new(), None),
        };
        NodeKernel {
            parts,
            slab_caches,
            slabinfo_total_bytes,
            dentries,
        }
    }
}
