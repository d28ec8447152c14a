//! One normalised breakdown for cgroup v1 and v2, in bytes, each figure naming its source.
//!
//! v1 (Documentation/admin-guide/cgroup-v1/memory.rst, 5.2 "stat file"): `rss` is anonymous
//! memory without shmem, `cache` is page cache *including* shmem/tmpfs; the hierarchical
//! `total_*` keys are used (they equal the local ones in a leaf). Kernel memory is charged to
//! `memory.usage_in_bytes` and shown by `memory.kmem.usage_in_bytes`.
//! v2 (Documentation/admin-guide/cgroup-v2.rst, "memory.stat"): `anon` excludes shmem, `file`
//! includes it; `kernel` exists from 5.18 and before that is the sum of `kernel_stack`,
//! `pagetables`, `percpu`, `slab` and `vmalloc`; `sock` is charged to memory.current but is
//! not part of `kernel`.

use super::Figure;
use crate::model::{Cgroup, Version};
use serde::Serialize;
use std::borrow::Cow;

/// The normalised breakdown of one cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    /// v1 `memory.usage_in_bytes`, v2 `memory.current`.
    pub usage: Figure,
    /// Anonymous memory (heap, stacks, anonymous mmap), shmem excluded.
    pub anon: Figure,
    /// Page cache including shmem/tmpfs.
    pub file: Figure,
    /// Page cache on the active LRU (shmem excluded: it lives on the anon LRU).
    pub active_file: Figure,
    /// Page cache on the inactive LRU: reclaimed first.
    pub inactive_file: Figure,
    /// Anonymous memory on the active LRU.
    pub active_anon: Figure,
    /// Anonymous memory (and shmem) on the inactive LRU.
    pub inactive_anon: Figure,
    /// tmpfs, /dev/shm, SysV and shared anonymous memory: counted as cache, not reclaimable
    /// without swap.
    pub shmem: Figure,
    /// Page cache mapped into some process (in their RssFile).
    pub file_mapped: Figure,
    /// Page cache modified and not yet written back.
    pub file_dirty: Figure,
    /// Page cache being written back.
    pub file_writeback: Figure,
    /// Kernel memory charged to the cgroup.
    pub kernel: Figure,
    /// Reclaimable slab (dentries, inodes).
    pub slab_reclaimable: Figure,
    /// Unreclaimable slab.
    pub slab_unreclaimable: Figure,
    /// Socket buffers.
    pub sock: Figure,
    /// Page tables.
    pub pagetables: Figure,
    /// Kernel stacks.
    pub kernel_stack: Figure,
    /// Swap used by the cgroup.
    pub swap: Figure,
    /// Unevictable (mlocked, ramfs) memory.
    pub unevictable: Figure,
    /// Transparent huge pages in anonymous memory (part of anon).
    pub anon_thp: Figure,
    /// `usage − (anon + file + kernel [+ sock on v2])`: what the parts do not explain
    /// (v1 usage is per-CPU batched; kernel memory not broken down). Shown, never hidden.
    /// Signed: the parts can exceed a batched usage.
    pub residual: Option<i64>,
    /// How the residual was computed, or why it could not be.
    pub residual_source: Cow<'static, str>,
}

/// The memory.stat keys the breakdown reads (v2 names and, after [`v1_key`], v1 names),
/// each with its fixed source texts: the breakdown is built some 20 figures at a time for
/// every recorded sample (`history`, `recommend` over a day of 1,000 cgroups), so neither a
/// search per figure nor an allocated source.
struct Key {
    local: &'static str,
    total: &'static str,
    missing: &'static str,
}

macro_rules! stat_keys {
    ($($i:literal => $k:literal),* $(,)?) => {
        const KEYS: &[Key] = &[$(Key {
            local: concat!("memory.stat ", $k),
            total: concat!("memory.stat total_", $k),
            missing: concat!("memory.stat has no ", $k, " on this kernel"),
        }),*];
        /// The names of [`KEYS`], for [`key_at`].
        const NAMES: &[&str] = &[$($k),*];
        /// The index in [`KEYS`] of a memory.stat key.
        fn slot(k: &str) -> Option<usize> {
            match k {
                $($k => Some($i),)*
                _ => None,
            }
        }
    };
}

stat_keys! {
    0 => "anon", 1 => "file", 2 => "active_file", 3 => "inactive_file", 4 => "active_anon",
    5 => "inactive_anon", 6 => "shmem", 7 => "file_mapped", 8 => "file_dirty",
    9 => "file_writeback", 10 => "kernel", 11 => "slab_reclaimable",
    12 => "slab_unreclaimable", 13 => "sock", 14 => "pagetables", 15 => "kernel_stack",
    16 => "swap", 17 => "unevictable", 18 => "anon_thp", 19 => "percpu", 20 => "slab",
    21 => "vmalloc", 22 => "rss", 23 => "cache", 24 => "mapped_file", 25 => "dirty",
    26 => "writeback", 27 => "rss_huge",
}

const NKEYS: usize = 28;

/// The values of [`KEYS`] in one memory.stat, found in one pass: the first line of each
/// key (as `KeyValues::get`), and for v1 the first `total_` line of each.
struct Found {
    local: [Option<u64>; NKEYS],
    total: [Option<u64>; NKEYS],
}

impl Found {
    fn of(s: &crate::model::KeyValues) -> Self {
        let mut f = Found {
            local: [None; NKEYS],
            total: [None; NKEYS],
        };
        for (k, v) in &s.0 {
            if let Some(i) = slot(k) {
                f.local[i].get_or_insert(*v);
            } else if let Some(i) = k.strip_prefix("total_").and_then(slot) {
                f.total[i].get_or_insert(*v);
            }
        }
        f
    }

    fn by_index(s: &crate::model::KeyValues, idx: &StatIndex) -> Self {
        let mut f = Found {
            local: [None; NKEYS],
            total: [None; NKEYS],
        };
        for &(pos, i, total) in &idx.at {
            let v = s.0.get(pos).map(|(_, v)| *v);
            if total {
                f.total[i] = v;
            } else {
                f.local[i] = v;
            }
        }
        f
    }
}

/// Where [`Breakdown::of`] finds the memory.stat keys it reads in one list of keys, for
/// [`Breakdown::of_indexed`]: `history` and `recommend` compute the breakdown for every
/// recorded sample of a cgroup, whose memory.stat has the same keys in the same order from
/// one sample to the next (only the numbers change), so the keys are matched once.
#[derive(Debug, Clone)]
pub struct StatIndex {
    keys: usize,
    /// (position in the list, index in KEYS, a v1 `total_` key): the first of each.
    at: Vec<(usize, usize, bool)>,
}

impl StatIndex {
    /// The positions in the list of keys that [`Breakdown::of_indexed`] reads (no other
    /// number of memory.stat goes into the breakdown).
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.at.iter().map(|&(pos, _, _)| pos)
    }

    /// The index of the keys of `s`.
    pub fn of(s: &crate::model::KeyValues) -> Self {
        let mut seen = [[false; 2]; NKEYS];
        let mut at = Vec::new();
        for (pos, (k, _)) in s.0.iter().enumerate() {
            let hit = match slot(k) {
                Some(i) => Some((i, false)),
                None => k.strip_prefix("total_").and_then(slot).map(|i| (i, true)),
            };
            if let Some((i, total)) = hit
                && !seen[i][usize::from(total)]
            {
                seen[i][usize::from(total)] = true;
                at.push((pos, i, total));
            }
        }
        StatIndex {
            keys: s.0.len(),
            at,
        }
    }
}

/// `a == b`, at compile time.
const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The index in [`KEYS`] of `k`, at compile time (the figures name their keys as literals:
/// a name that is not in KEYS does not compile, and no key is searched per sample).
const fn key_at(k: &str) -> usize {
    let mut i = 0;
    while i < NAMES.len() {
        if same_str(NAMES[i], k) {
            return i;
        }
        i += 1;
    }
    panic!("not a key of KEYS")
}

/// A figure's memory.stat key as indices in [`KEYS`]: its v2 name and its v1 name
/// ([`v1_key`]).
#[derive(Clone, Copy)]
struct StatKey {
    v2: usize,
    v1: usize,
}

impl StatKey {
    const fn of(name: &str) -> Self {
        StatKey {
            v2: key_at(name),
            v1: key_at(v1_key(name)),
        }
    }
}

/// [`StatKey::of`] evaluated at compile time.
macro_rules! key {
    ($k:literal) => {
        const { StatKey::of($k) }
    };
}

fn stat_fig(cg: &Cgroup, found: Option<&Found>, i: usize) -> Figure {
    let Some(k) = KEYS.get(i) else {
        // Every index comes from `key_at`; a figure is never invented.
        return Figure::unavailable("memory.stat key unknown");
    };
    match cg.version {
        Version::V1 => match found {
            None => Figure::unavailable("memory.stat unreadable"),
            Some(f) => {
                if let Some(v) = f.total[i] {
                    Figure::new(Some(v), k.total)
                } else if let Some(v) = f.local[i] {
                    Figure::new(Some(v), k.local)
                } else {
                    Figure::unavailable(k.missing)
                }
            }
        },
        Version::V2 => match found {
            None => Figure::unavailable("memory.stat unreadable (the v2 root has none)"),
            Some(f) => match f.local[i] {
                Some(v) => Figure::new(Some(v), k.local),
                None => Figure::unavailable(k.missing),
            },
        },
    }
}

/// v1 key names for the normalised names.
const fn v1_key(name: &str) -> &str {
    const V1: [(&str, &str); 6] = [
        ("anon", "rss"),
        ("file", "cache"),
        ("file_mapped", "mapped_file"),
        ("file_dirty", "dirty"),
        ("file_writeback", "writeback"),
        ("anon_thp", "rss_huge"),
    ];
    let mut i = 0;
    while i < V1.len() {
        if same_str(V1[i].0, name) {
            return V1[i].1;
        }
        i += 1;
    }
    name
}

fn fig(cg: &Cgroup, found: Option<&Found>, key: StatKey) -> Figure {
    match cg.version {
        Version::V1 => stat_fig(cg, found, key.v1),
        Version::V2 => stat_fig(cg, found, key.v2),
    }
}

/// Sum of figures, `None` if any is unavailable.
pub fn sum(figs: &[&Figure]) -> Option<u64> {
    super::sum_opt(figs.iter().map(|f| f.bytes))
}

impl Breakdown {
    /// Computes the breakdown of `cg`.
    pub fn of(cg: &Cgroup) -> Self {
        Self::of_found(cg, cg.stat.as_ref().map(Found::of).as_ref())
    }

    /// [`Self::of`] with memory.stat's keys found through `idx`, which must be the
    /// [`StatIndex`] of a memory.stat with the same keys in the same order as `cg`'s (the
    /// caller knows when they changed: `history::points_of` makes it after each full read
    /// and updates only the numbers in between). A list of another length is searched.
    pub fn of_indexed(cg: &Cgroup, idx: &StatIndex) -> Self {
        let found = cg.stat.as_ref().map(|s| {
            if s.0.len() == idx.keys {
                debug_assert!(StatIndex::of(s).at == idx.at, "a stale StatIndex");
                Found::by_index(s, idx)
            } else {
                Found::of(s)
            }
        });
        Self::of_found(cg, found.as_ref())
    }

    fn of_found(cg: &Cgroup, found: Option<&Found>) -> Self {
        let v1 = cg.version == Version::V1;
        let fig = |key: StatKey| fig(cg, found, key);
        let usage = match (cg.version, cg.usage.current) {
            (Version::V1, u) => Figure::new(u, "memory.usage_in_bytes"),
            (Version::V2, Some(u)) => Figure::new(Some(u), "memory.current"),
            // The v2 root has no memory.current before 6.x: cAdvisor uses anon + file there.
            (Version::V2, None) => match cg
                .stat
                .as_ref()
                .and_then(|s| s.get("anon")?.checked_add(s.get("file")?))
            {
                Some(v) if cg.is_root() => Figure::new(
                    Some(v),
                    "root has no memory.current: memory.stat anon + file (as cAdvisor)",
                ),
                _ => Figure::unavailable("memory.current unreadable"),
            },
        };
        let kernel = if v1 {
            match cg.usage.kmem {
                Some(k) => Figure::new(Some(k), "memory.kmem.usage_in_bytes"),
                None => Figure::unavailable(
                    "memory.kmem.usage_in_bytes not provided (kernel memory accounting off)",
                ),
            }
        } else {
            let k = fig(key!("kernel"));
            if k.bytes.is_some() {
                k
            } else {
                // Before 5.18 (commit a8c49af3be5f "memcg: add per-memcg total kernel memory stat").
                let parts = ["kernel_stack", "pagetables", "percpu", "slab", "vmalloc"];
                let s = cg.stat.as_ref();
                let present: Vec<(&str, u64)> = parts
                    .iter()
                    .filter_map(|p| s.and_then(|s| s.get(p)).map(|v| (*p, v)))
                    .collect();
                if present.is_empty() {
                    Figure::unavailable("memory.stat has neither kernel nor its parts")
                } else {
                    let total = super::sum_opt(present.iter().map(|(_, v)| Some(*v)));
                    Figure::new(
                        total,
                        format!(
                            "no `kernel` key before 5.18: memory.stat {}",
                            present
                                .iter()
                                .map(|(k, _)| *k)
                                .collect::<Vec<_>>()
                                .join(" + ")
                        ),
                    )
                }
            }
        };
        let sock = if v1 {
            Figure::unavailable("v1 charges socket memory to memory.kmem.tcp, not to memory usage")
        } else {
            fig(key!("sock"))
        };
        let swap = if v1 {
            let f = fig(key!("swap"));
            if f.bytes.is_some() {
                f
            } else {
                Figure::unavailable(
                    "memory.stat has no swap: swap accounting is off (swapaccount=0) or no swap",
                )
            }
        } else {
            match cg.usage.swap {
                Some(s) => Figure::new(Some(s), "memory.swap.current"),
                None => Figure::unavailable(
                    "memory.swap.current not provided (no swap controller/accounting)",
                ),
            }
        };
        let slab = |key: StatKey| {
            if v1 {
                Figure::unavailable("v1 memory.stat does not split slab (see memory.kmem.slabinfo)")
            } else {
                fig(key)
            }
        };
        // The reason a fixed text, not formatted: the breakdown is made for every sample.
        let v1_only_missing = |key: StatKey, v1_reason: &'static str| {
            if v1 {
                Figure::unavailable(v1_reason)
            } else {
                fig(key)
            }
        };
        let anon = fig(key!("anon"));
        let file = fig(key!("file"));
        // The v1 root's usage_in_bytes is not a page counter: mem_cgroup_usage() approximates
        // it as file pages + mapped anon (mm/memcontrol-v1.c), kernel memory excluded. Taking
        // kmem off it would make the residual exactly −kmem.
        let v1_root = v1 && cg.is_root();
        // (A slice of the four, not a vector: no allocation per sample.)
        let all_parts = [&anon, &file, &kernel, &sock];
        let parts = match (v1_root, v1) {
            (true, _) => &all_parts[..2],
            (false, true) => &all_parts[..3],
            (false, false) => &all_parts[..],
        };
        // The v2 root has no memory.current: its usage is anon + file (as cAdvisor), so
        // usage − parts would always be −(kernel + sock), a figure about nothing.
        let v2_root_estimate = !v1 && cg.usage.current.is_none() && cg.is_root();
        let (residual, residual_source) = match (usage.bytes, sum(parts)) {
            _ if v2_root_estimate => (
                None,
                "none for the v2 root: it has no memory.current, and its usage is anon + file (as cAdvisor), so usage − parts would only be −(kernel + sock)".into(),
            ),
            (Some(u), Some(p)) => (
                i64::try_from(u)
                    .ok()
                    .zip(i64::try_from(p).ok())
                    .and_then(|(u, p)| u.checked_sub(p)),
                if v1_root {
                    "memory.usage_in_bytes − (total_rss + total_cache): the v1 root's usage is file pages + mapped anon only (mm/memcontrol-v1.c mem_cgroup_usage()), so its kernel memory is not in usage and not subtracted".into()
                } else if v1 {
                    "memory.usage_in_bytes − (total_rss + total_cache + memory.kmem.usage_in_bytes); usage_in_bytes is per-CPU batched (cgroup-v1/memory.rst 5.5)".into()
                } else {
                    "memory.current − (anon + file + kernel + sock)".into()
                },
            ),
            _ => (
                None,
                "a part is unavailable, so the residual cannot be computed".into(),
            ),
        };
        Breakdown {
            usage,
            anon,
            file,
            active_file: fig(key!("active_file")),
            inactive_file: fig(key!("inactive_file")),
            active_anon: fig(key!("active_anon")),
            inactive_anon: fig(key!("inactive_anon")),
            shmem: fig(key!("shmem")),
            file_mapped: fig(key!("file_mapped")),
            file_dirty: fig(key!("file_dirty")),
            file_writeback: fig(key!("file_writeback")),
            kernel,
            slab_reclaimable: slab(key!("slab_reclaimable")),
            slab_unreclaimable: slab(key!("slab_unreclaimable")),
            sock,
            pagetables: v1_only_missing(key!("pagetables"), "v1 memory.stat has no pagetables"),
            kernel_stack: v1_only_missing(
                key!("kernel_stack"),
                "v1 memory.stat has no kernel_stack",
            ),
            swap,
            unevictable: fig(key!("unevictable")),
            anon_thp: fig(key!("anon_thp")),
            residual,
            residual_source,
        }
    }

    /// The rows in display order: (name, figure).
    pub fn rows(&self) -> Vec<(&'static str, &Figure)> {
        vec![
            ("anon", &self.anon),
            ("  anon_thp", &self.anon_thp),
            ("file (page cache)", &self.file),
            ("  active_file", &self.active_file),
            ("  inactive_file", &self.inactive_file),
            ("  shmem (tmpfs, /dev/shm, SysV)", &self.shmem),
            ("  file_mapped", &self.file_mapped),
            ("  file_dirty", &self.file_dirty),
            ("  file_writeback", &self.file_writeback),
            ("kernel", &self.kernel),
            ("  slab_reclaimable", &self.slab_reclaimable),
            ("  slab_unreclaimable", &self.slab_unreclaimable),
            ("  pagetables", &self.pagetables),
            ("  kernel_stack", &self.kernel_stack),
            ("sock", &self.sock),
            // The anon LRU holds shmem too (swap-backed pages), so it is not a part of anon:
            // active_anon + inactive_anon ≈ anon + shmem (mm/vmscan.c, page_is_file_lru()).
            ("anon LRU (anon + shmem): active_anon", &self.active_anon),
            (
                "anon LRU (anon + shmem): inactive_anon",
                &self.inactive_anon,
            ),
            ("unevictable", &self.unevictable),
            ("swap (not in usage)", &self.swap),
        ]
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Cgroup, KeyValues, Version};

    fn cg(v: Version, stat: &[(&str, u64)]) -> Cgroup {
        Cgroup {
            path: "/x".into(),
            fs_path: "/x".into(),
            version: v,
            limits: Default::default(),
            usage: Default::default(),
            stat: Some(KeyValues(
                stat.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            )),
            events: Default::default(),
            pressure: None,
            cgroup_stat: None,
            procs: None,
            children: vec![],
            hugetlb: vec![],
            problems: vec![],
        }
    }

    /// Each figure read through its key's index in KEYS (`key!`, at compile time) is the
    /// value a search of memory.stat by the figure's name gives (v1: its v1 name, the
    /// `total_` line first), and names that key in its source; every key distinct.
    #[test]
    fn figures_read_the_key_they_name() {
        let names = [
            "anon",
            "file",
            "active_file",
            "inactive_file",
            "active_anon",
            "inactive_anon",
            "shmem",
            "file_mapped",
            "file_dirty",
            "file_writeback",
            "slab_reclaimable",
            "slab_unreclaimable",
            "pagetables",
            "kernel_stack",
            "swap",
            "unevictable",
            "anon_thp",
            "sock",
        ];
        fn v1_name(n: &str) -> &str {
            match n {
                "anon" => "rss",
                "file" => "cache",
                "file_mapped" => "mapped_file",
                "file_dirty" => "dirty",
                "file_writeback" => "writeback",
                "anon_thp" => "rss_huge",
                o => o,
            }
        }
        for v in [Version::V1, Version::V2] {
            let keys: Vec<String> = names
                .iter()
                .map(|n| match v {
                    Version::V1 => format!("total_{}", v1_name(n)),
                    Version::V2 => n.to_string(),
                })
                .collect();
            let stat: Vec<(&str, u64)> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.as_str(), 1000 + i as u64))
                .collect();
            let b = super::Breakdown::of(&cg(v, &stat));
            let figs = [
                &b.anon,
                &b.file,
                &b.active_file,
                &b.inactive_file,
                &b.active_anon,
                &b.inactive_anon,
                &b.shmem,
                &b.file_mapped,
                &b.file_dirty,
                &b.file_writeback,
                &b.slab_reclaimable,
                &b.slab_unreclaimable,
                &b.pagetables,
                &b.kernel_stack,
                &b.swap,
                &b.unevictable,
                &b.anon_thp,
                &b.sock,
            ];
            for ((n, k), f) in names.iter().zip(&keys).zip(figs) {
                // Not from memory.stat: v1 has no such key, v2's swap is memory.swap.current.
                let absent = (v == Version::V1
                    && matches!(
                        *n,
                        "slab_reclaimable"
                            | "slab_unreclaimable"
                            | "pagetables"
                            | "kernel_stack"
                            | "sock"
                    ))
                    || (v == Version::V2 && *n == "swap");
                if absent {
                    assert_eq!(f.bytes, None, "{v:?} {n}");
                    continue;
                }
                let want = stat.iter().find(|(x, _)| x == k).map(|(_, v)| *v);
                assert_eq!(f.bytes, want, "{v:?} {n}");
                assert_eq!(&*f.source, format!("memory.stat {k}"), "{v:?} {n}");
            }
        }
    }

    /// The breakdown through a [`super::StatIndex`] equals the searched one, v1 and v2.
    #[test]
    fn indexed_equals_searched() {
        let stats: [(Version, &[(&str, u64)]); 2] = [
            (
                Version::V1,
                &[
                    ("cache", 2),
                    ("rss", 1),
                    ("total_rss", 5),
                    ("total_rss", 7),
                    ("total_cache", 9),
                    ("swap", 3),
                ],
            ),
            (
                Version::V2,
                &[
                    ("anon", 8),
                    ("file", 3),
                    ("kernel", 4),
                    ("anon", 2),
                    ("slab_reclaimable", 1),
                    ("sock", 6),
                ],
            ),
        ];
        for (v, st) in stats {
            let c = cg(v, st);
            let idx = super::StatIndex::of(c.stat.as_ref().unwrap());
            assert_eq!(
                super::Breakdown::of_indexed(&c, &idx),
                super::Breakdown::of(&c)
            );
        }
    }

    /// The one-pass key table finds what a search per figure found: v1 prefers the first
    /// `total_` line over the local one, a repeated key gives its first value, a missing key
    /// is unavailable with the reason, and each figure names its key.
    #[test]
    fn keys_are_found_as_a_search_per_figure_finds_them() {
        let b = super::Breakdown::of(&cg(
            Version::V1,
            &[
                ("rss", 1),
                ("cache", 2),
                ("total_rss", 5),
                ("total_rss", 7),
                ("mapped_file", 3),
                ("shmem", 4),
                ("shmem", 9),
            ],
        ));
        assert_eq!(
            (b.anon.bytes, &*b.anon.source),
            (Some(5), "memory.stat total_rss")
        );
        assert_eq!(
            (b.file.bytes, &*b.file.source),
            (Some(2), "memory.stat cache")
        );
        assert_eq!(
            (b.file_mapped.bytes, &*b.file_mapped.source),
            (Some(3), "memory.stat mapped_file")
        );
        assert_eq!(b.shmem.bytes, Some(4));
        assert_eq!(
            (b.unevictable.bytes, &*b.unevictable.source),
            (None, "memory.stat has no unevictable on this kernel")
        );
        let b = super::Breakdown::of(&cg(
            Version::V2,
            &[
                ("anon", 8),
                ("total_anon", 1),
                ("anon", 2),
                ("file_dirty", 6),
            ],
        ));
        assert_eq!(
            (b.anon.bytes, &*b.anon.source),
            (Some(8), "memory.stat anon")
        );
        assert_eq!(
            (b.file_dirty.bytes, &*b.file_dirty.source),
            (Some(6), "memory.stat file_dirty")
        );
        assert_eq!(b.file.bytes, None);
    }

    /// active_anon/inactive_anon are the anon LRU, which holds shmem too: they are not parts
    /// of `anon` and must not be listed under it (children up to 800× their parent).
    #[test]
    fn the_anon_lru_is_not_nested_under_anon() {
        let cg = crate::model::Cgroup {
            path: "/x".into(),
            fs_path: "/x".into(),
            version: crate::model::Version::V2,
            limits: Default::default(),
            usage: Default::default(),
            stat: None,
            events: Default::default(),
            pressure: None,
            cgroup_stat: None,
            procs: None,
            children: vec![],
            hugetlb: vec![],
            problems: vec![],
        };
        let b = super::Breakdown::of(&cg);
        let rows = b.rows();
        for (name, _) in &rows {
            if name.contains("active_anon") {
                assert!(!name.starts_with(' '), "{name} nested under anon");
                assert!(name.contains("shmem"), "{name} does not say it holds shmem");
            }
        }
    }
}
