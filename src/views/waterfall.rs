//! The node's RAM from MemTotal down to nothing left unexplained: the top-level cgroups
//! (each once: no level below the top is added, so nothing is counted twice), the memory
//! charged to no cgroup (the root's own pages, dying cgroups, kernel memory nobody is charged
//! for, huge pages, zram's pool), free memory, and the remainder, shown as *unattributed*.
//!
//! Kernel references: Documentation/filesystems/proc.rst (meminfo), cgroup-v2.rst
//! (memory.stat), cgroup-v1/memory.rst (5.2 stat file). The identities used:
//! - the root memcg's memory.stat is hierarchical (v2 always; v1 `total_*`), so
//!   `root − Σ top-level` is what the root cgroup itself holds plus what removed (dying)
//!   cgroups still hold;
//! - /proc/meminfo `AnonPages` is NR_ANON_MAPPED and `Cached + Buffers + SwapCached` is
//!   NR_FILE_PAGES, the node counters whose memcg share is `anon` (v1 `rss`) and `file`
//!   (v1 `cache`): the difference is memory charged to no memcg at all;
//! - kernel memory (Slab, KernelStack, PageTables, SecPageTables, Percpu, VmallocUsed) is
//!   charged only when allocated with __GFP_ACCOUNT by a task outside the root cgroup: the
//!   part above the root memcg's kernel counters is charged to nobody.
//! - with CONFIG_VMAP_STACK (the x86-64 and arm64 default) thread stacks are vmalloc'ed and
//!   in both KernelStack and VmallocUsed, so vmalloc is taken as VmallocUsed − KernelStack.
//! - pages on the per-CPU free lists are neither in MemFree nor in any used counter.

use crate::model::{Cgroup, KeyValues, Version};
use crate::proc::node::Zram;
use serde::Serialize;

/// One line of the waterfall: what it is, how much, and where the number comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// Stable key (`top_level_cgroups`, `free`, `unattributed`...).
    pub key: &'static str,
    /// What it is, for a human.
    pub what: String,
    /// Bytes; may be negative for a difference of counters read a moment apart (or a
    /// remainder that is overcounted). `None` when a counter is unavailable.
    #[serde(rename = "value_bytes")]
    pub bytes: Option<i64>,
    /// Files and formula.
    pub source: String,
}

/// A top-level cgroup's share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopCgroup {
    /// Path in the hierarchy.
    pub path: String,
    /// Its usage (v1 memory.usage_in_bytes, v2 memory.current).
    pub usage_bytes: Option<u64>,
}

/// The waterfall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waterfall {
    /// /proc/meminfo MemTotal.
    pub mem_total_bytes: Option<u64>,
    /// The lines subtracted from MemTotal, in order; the last is `unattributed`.
    pub lines: Vec<Line>,
    /// The top-level cgroups, largest first (the first line's parts).
    pub top_level: Vec<TopCgroup>,
    /// Caveats that apply to this node.
    pub notes: Vec<String>,
}

/// What the waterfall is computed from (all read at one moment by `node`).
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// /proc/meminfo.
    pub meminfo: &'a KeyValues,
    /// The root memcg (memory.stat; v1 memory.kmem.usage_in_bytes).
    pub root: &'a Cgroup,
    /// The top-level memcgs.
    pub top: &'a [Cgroup],
    /// zram devices.
    pub zram: &'a [Zram],
    /// Bytes on the per-CPU free lists (None when zoneinfo is unreadable).
    pub pcp_free_bytes: Option<u64>,
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn sub(a: Option<u64>, b: Option<u64>) -> Option<i64> {
    Some(i(a?) - i(b?))
}

/// The kernel memory a v2 cgroup's memory.stat lists (the `kernel` key from 5.18, else the
/// sum of its parts).
fn v2_kernel(cg: &Cgroup) -> Option<u64> {
    let s = cg.stat.as_ref()?;
    s.get("kernel").or_else(|| {
        let parts = ["kernel_stack", "pagetables", "percpu", "slab", "vmalloc"];
        let v: Vec<u64> = parts.iter().filter_map(|p| s.get(p)).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    })
}

fn sum_opt(it: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    let mut t = 0u64;
    for v in it {
        t = t.checked_add(v?)?;
    }
    Some(t)
}

impl Waterfall {
    /// Computes the waterfall.
    pub fn of(inp: Input<'_>) -> Waterfall {
        let m = |k: &str| inp.meminfo.get(k);
        let v1 = inp.root.version == Version::V1;
        let rs = |k: &str| inp.root.stat.as_ref().and_then(|s| s.get(k));
        let mut lines = Vec::new();
        let mut notes = Vec::new();
        let mut line = |key, what: &str, bytes: Option<i64>, source: String| {
            lines.push(Line {
                key,
                what: what.to_string(),
                bytes,
                source,
            })
        };
        let usage_file = if v1 {
            "memory.usage_in_bytes"
        } else {
            "memory.current"
        };
        let mut top: Vec<TopCgroup> = inp
            .top
            .iter()
            .map(|c| TopCgroup {
                path: c.path.clone(),
                usage_bytes: c.usage.current,
            })
            .collect();
        top.sort_by_key(|t| std::cmp::Reverse(t.usage_bytes));
        let top_sum = sum_opt(inp.top.iter().map(|c| c.usage.current));
        line(
            "top_level_cgroups",
            &format!("{} top-level cgroups", inp.top.len()),
            top_sum.map(i),
            format!("Σ top-level {usage_file} (each once: their descendants are inside them)"),
        );
        // What the top-level cgroups hold by type, summed.
        let tsum = |k: &str| sum_opt(inp.top.iter().map(|c| c.stat_hier(k)));
        if v1 {
            let own = match (rs("rss"), rs("cache")) {
                (Some(a), Some(b)) => Some(i(a + b)),
                _ => None,
            };
            line(
                "root_own",
                "root cgroup's own pages (its processes, cache charged to it)",
                own,
                "root memory.stat rss + cache (local)".into(),
            );
            let hier = match (rs("total_rss"), rs("total_cache")) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            let tops = match (tsum("rss"), tsum("cache")) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            let kmem_top = sum_opt(inp.top.iter().map(|c| c.usage.kmem));
            let dying = match (hier, own, tops, inp.root.usage.kmem, kmem_top) {
                (Some(h), Some(o), Some(t), Some(k), Some(kt)) => {
                    Some(i(h) - o - i(t) + i(k) - i(kt))
                }
                _ => None,
            };
            line(
                "dying_cgroups",
                "removed (dying) cgroups still charged",
                dying,
                "root (total_rss + total_cache − rss − cache + memory.kmem.usage_in_bytes) − Σ top-level (total_rss + total_cache + memory.kmem.usage_in_bytes)".into(),
            );
            line(
                "anon_uncharged",
                "anonymous memory charged to no cgroup",
                sub(m("AnonPages"), rs("total_rss")),
                "meminfo AnonPages − root total_rss".into(),
            );
        } else {
            let hier = match (rs("anon"), rs("file"), v2_kernel(inp.root)) {
                (Some(a), Some(f), Some(k)) => Some(a + f + k),
                _ => None,
            };
            let tops = sum_opt(inp.top.iter().map(|c| {
                let s = c.stat.as_ref()?;
                Some(s.get("anon")? + s.get("file")? + v2_kernel(c)?)
            }));
            line(
                "root_own",
                "root cgroup's own pages and removed (dying) cgroups",
                sub(hier, tops),
                "root memory.stat (anon + file + kernel) − Σ top-level (anon + file + kernel); v2 has no local stat for the root, so the two cannot be told apart".into(),
            );
            line(
                "anon_uncharged",
                "anonymous memory charged to no cgroup",
                sub(m("AnonPages"), rs("anon")),
                "meminfo AnonPages − root memory.stat anon".into(),
            );
        }
        let file_pages = match (m("Cached"), m("Buffers"), m("SwapCached")) {
            (Some(c), Some(b), Some(s)) => Some(c + b + s),
            _ => None,
        };
        let (file_key, file_name) = if v1 {
            ("total_cache", "root total_cache")
        } else {
            ("file", "root memory.stat file")
        };
        line(
            "page_cache_uncharged",
            "page cache charged to no cgroup",
            sub(file_pages, rs(file_key)),
            format!("meminfo Cached + Buffers + SwapCached − {file_name}"),
        );
        // Kernel memory.
        let vmalloc = match (m("VmallocUsed"), m("KernelStack")) {
            (Some(v), Some(k)) => Some(v.saturating_sub(k)),
            (v, _) => v,
        };
        if v1 {
            let parts = [
                m("Slab"),
                m("KernelStack"),
                m("PageTables"),
                m("SecPageTables").or(Some(0)),
                m("Percpu").or(Some(0)),
                vmalloc,
            ];
            line(
                "kernel_uncharged",
                "kernel memory charged to no cgroup",
                sub(sum_opt(parts.into_iter()), inp.root.usage.kmem),
                "meminfo (Slab + KernelStack + PageTables + SecPageTables + Percpu + VmallocUsed − KernelStack) − root memory.kmem.usage_in_bytes (v1 charges kernel memory as one total)".into(),
            );
        } else {
            let slab_root = match (rs("slab_reclaimable"), rs("slab_unreclaimable")) {
                (Some(a), Some(b)) => Some(a + b),
                _ => rs("slab"),
            };
            for (key, what, mk, mv, rk, rv) in [
                (
                    "slab_uncharged",
                    "slab charged to no cgroup",
                    "Slab",
                    m("Slab"),
                    "slab_reclaimable + slab_unreclaimable",
                    slab_root,
                ),
                (
                    "kernel_stack_uncharged",
                    "kernel stacks charged to no cgroup",
                    "KernelStack",
                    m("KernelStack"),
                    "kernel_stack",
                    rs("kernel_stack"),
                ),
                (
                    "page_tables_uncharged",
                    "page tables charged to no cgroup",
                    "PageTables",
                    m("PageTables"),
                    "pagetables",
                    rs("pagetables"),
                ),
                (
                    "sec_page_tables_uncharged",
                    "secondary (KVM/IOMMU) page tables charged to no cgroup",
                    "SecPageTables",
                    m("SecPageTables"),
                    "sec_pagetables",
                    rs("sec_pagetables").or(Some(0)),
                ),
                (
                    "percpu_uncharged",
                    "per-CPU allocations charged to no cgroup",
                    "Percpu",
                    m("Percpu"),
                    "percpu",
                    rs("percpu"),
                ),
                (
                    "vmalloc_uncharged",
                    "vmalloc charged to no cgroup",
                    "VmallocUsed − KernelStack",
                    vmalloc,
                    "vmalloc",
                    rs("vmalloc").or(Some(0)),
                ),
            ] {
                if mv.is_none() && key == "sec_page_tables_uncharged" {
                    continue;
                }
                line(
                    key,
                    what,
                    sub(mv, rv),
                    format!("meminfo {mk} − root memory.stat {rk}"),
                );
            }
        }
        // Huge pages: the hugetlb pool is outside every LRU and every other counter; it is
        // charged to memcgs only with the v2 mount option memory_hugetlb_accounting (6.6+),
        // then root memory.stat has `hugetlb`.
        let hugetlb = m("Hugetlb").or_else(|| Some(m("HugePages_Total")? * m("Hugepagesize")?));
        let charged_huge = if v1 { None } else { rs("hugetlb") };
        line(
            "hugetlb",
            if charged_huge.is_some() {
                "hugetlb pool not charged to a cgroup"
            } else {
                "hugetlb pool (charged to no cgroup)"
            },
            sub(hugetlb, charged_huge.or(Some(0))),
            if charged_huge.is_some() {
                "meminfo Hugetlb − root memory.stat hugetlb (memory_hugetlb_accounting)".into()
            } else {
                "meminfo Hugetlb (or HugePages_Total × Hugepagesize)".into()
            },
        );
        let zram: u64 = inp.zram.iter().map(|z| z.mem_used_bytes).sum();
        line(
            "zram",
            &format!("zram pools ({} devices)", inp.zram.len()),
            Some(i(zram)),
            "Σ /sys/block/zram*/mm_stat mem_used_total".into(),
        );
        if let Some(z) = m("Zswap") {
            let charged = if v1 { None } else { rs("zswap") };
            line(
                "zswap_uncharged",
                "zswap pool charged to no cgroup",
                sub(Some(z), charged.or(Some(0))),
                if v1 {
                    "meminfo Zswap (v1 does not show the charged part)".into()
                } else {
                    "meminfo Zswap − root memory.stat zswap".into()
                },
            );
        }
        for (key, what, k) in [
            (
                "balloon",
                "given back to the hypervisor (balloon)",
                "Balloon",
            ),
            (
                "unaccepted",
                "not yet accepted (confidential VM)",
                "Unaccepted",
            ),
            ("hardware_corrupted", "poisoned pages", "HardwareCorrupted"),
            ("writeback_tmp", "FUSE writeback buffers", "WritebackTmp"),
        ] {
            if let Some(v) = m(k) {
                line(key, what, Some(i(v)), format!("meminfo {k}"));
            }
        }
        if let (Some(kr), Some(sr)) = (m("KReclaimable"), m("SReclaimable")) {
            line(
                "other_reclaimable_kernel",
                "other reclaimable kernel memory (not slab)",
                Some(i(kr) - i(sr)),
                "meminfo KReclaimable − SReclaimable".into(),
            );
        }
        line(
            "free",
            "free",
            m("MemFree").map(i),
            "meminfo MemFree".into(),
        );
        line(
            "pcp_free",
            "free pages held on per-CPU lists",
            inp.pcp_free_bytes.map(i),
            "Σ /proc/zoneinfo pagesets count × page size (not in MemFree)".into(),
        );
        let total = m("MemTotal");
        let explained: Option<i64> = lines.iter().map(|l| l.bytes).sum();
        let rem = match (total, explained) {
            (Some(t), Some(e)) => Some(i(t) - e),
            _ => None,
        };
        lines.push(Line {
            key: "unattributed",
            what:
                "unattributed (drivers, page_frag, network buffers, counters read a moment apart)"
                    .into(),
            bytes: rem,
            source: "MemTotal − every line above".into(),
        });
        if v1 {
            notes.push("v1 memory.usage_in_bytes is batched per CPU (up to 64 pages per CPU per cgroup off), so the top-level sum is approximate; memory.stat figures are exact".into());
        }
        if lines.iter().any(|l| l.bytes.is_none()) {
            notes.push("a line is n/a because its counter is unavailable here: the remainder is then n/a too, never guessed".into());
        }
        Waterfall {
            mem_total_bytes: total,
            lines,
            top_level: top,
            notes,
        }
    }

    /// A line by key.
    pub fn get(&self, key: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.key == key)
    }
}
