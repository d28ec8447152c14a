//! Memory that moved out of the plain anon/file picture: swap, zswap (the compressed pool in
//! front of swap), transparent huge pages and hugetlb, with the newest memcg counters.
//!
//! Every figure is the kernel's own value or unavailable with the reason (a counter this
//! kernel does not have is never 0). The first kernel with each key (cgroup-v2.rst
//! "memory.stat"; checked on Debian's 5.10, 6.1 and 6.12 and this host's 6.18 by
//! tests/kernel_counters.rs):
//! - `zswap`, `zswapped`, `memory.zswap.current`, `memory.zswap.max` (5.19, f4840ccfca25
//!   "zswap: memcg accounting"), `zswpin`, `zswpout` (5.19), `zswpwb` and
//!   `memory.zswap.writeback` (6.8);
//! - `swpin_zero`, `swpout_zero` (6.14), per-memcg `pswpin`, `pswpout` (6.15, 15ff4d409e1a);
//! - `sec_pagetables` (6.1), `file_thp`, `shmem_thp` (5.10? see the test), `anon_thp` (5.x);
//! - `hugetlb` in memory.stat (6.6, only with the `memory_hugetlb_accounting` mount option);
//!   `hugetlb.<size>.{current,max,events}` (the hugetlb controller, when enabled).
//!
//! zswap's pool is charged to the cgroup (memory.current, and inside memory.stat `kernel`):
//! compressed pages still cost memory, so they stay in "not reclaimable", and every page
//! pushed into zswap frees only `1 − 1/ratio` of itself. The ratio is `zswapped / zswap`.

use super::Figure;
use crate::model::{Cgroup, Host, Limit, Version};
use serde::Serialize;

/// Event counters (not bytes) of swap and zswap in memory.stat.
pub const EVENTS: [&str; 7] = [
    "zswpin",
    "zswpout",
    "zswpwb",
    "swpin_zero",
    "swpout_zero",
    "pswpin",
    "pswpout",
];

/// Swap, zswap, THP and hugetlb of one cgroup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offload {
    /// memory.stat `zswap`: the compressed pool (charged to the cgroup).
    pub zswap: Figure,
    /// memory.stat `zswapped`: what that pool holds, uncompressed.
    pub zswapped: Figure,
    /// `zswapped / zswap`.
    pub compression_ratio: Option<f64>,
    /// How the ratio was computed, or why not.
    pub compression_ratio_source: String,
    /// `memory.zswap.current`.
    pub zswap_current: Figure,
    /// `memory.zswap.max` (`None`: file absent; a limit of `max` is serialised as null bytes).
    pub zswap_max: Figure,
    /// `memory.zswap.writeback` (6.8+).
    pub zswap_writeback: Option<bool>,
    /// Swap charged to the cgroup: v2 `memory.swap.current` (zswap'd pages hold swap slots
    /// too), v1 `memsw − usage`.
    pub swap: Figure,
    /// Room left to swap into: v2 `memory.swap.max − memory.swap.current`, bounded by the
    /// host's SwapFree.
    pub swap_room: Figure,
    /// Headroom to the OOM killer counting swap: OOM headroom + what swapping can free
    /// (all of `swap_room`, or `swap_room × (1 − 1/ratio)` while zswap keeps the pages).
    pub oom_headroom_with_swap: Figure,
    /// memory.stat event counters ([`EVENTS`]), in that order; `None`: not on this kernel.
    pub events: Vec<(String, Option<u64>)>,
    /// memory.stat `anon_thp` (v1 `total_rss_huge`).
    pub anon_thp: Figure,
    /// memory.stat `file_thp`.
    pub file_thp: Figure,
    /// memory.stat `shmem_thp`.
    pub shmem_thp: Figure,
    /// memory.stat `sec_pagetables` (KVM secondary / IOMMU page tables).
    pub sec_pagetables: Figure,
    /// memory.stat `hugetlb` (charged to memory.current only when the hierarchy was mounted
    /// with `memory_hugetlb_accounting`).
    pub hugetlb: Figure,
    /// `hugetlb.<size>.current` summed over the sizes (the hugetlb controller's own count).
    pub hugetlb_controller: Figure,
    /// Whether hugetlb pages are part of memory.current here (`Some(false)`: in use but not
    /// accounted, so memory.current does not add up to what the cgroup holds).
    pub hugetlb_in_usage: Option<bool>,
}

fn v2_stat(cg: &Cgroup, key: &str, since: &str) -> Figure {
    if cg.version == Version::V1 {
        return Figure::unavailable(format!("cgroup v1 memory.stat has no {key}"));
    }
    match cg.stat.as_ref() {
        None => Figure::unavailable("memory.stat unreadable"),
        Some(s) => match s.get(key) {
            Some(v) => Figure::new(Some(v), format!("memory.stat {key}")),
            None => Figure::unavailable(format!("memory.stat has no {key} (Linux {since}+)")),
        },
    }
}

impl Offload {
    /// Computes the figures; `oom_headroom` is [`super::derived::Derived`]'s.
    pub fn of(cg: &Cgroup, host: &Host, oom_headroom: Option<u64>) -> Self {
        let v1 = cg.version == Version::V1;
        let zswap = v2_stat(cg, "zswap", "5.19");
        let zswapped = v2_stat(cg, "zswapped", "5.19");
        let (compression_ratio, compression_ratio_source) = match (zswap.bytes, zswapped.bytes) {
            (Some(z), Some(d)) if z > 0 => (
                Some(d as f64 / z as f64),
                "memory.stat zswapped / zswap".to_string(),
            ),
            (Some(_), Some(_)) => (None, "zswap pool empty: no ratio yet".to_string()),
            _ => (None, zswap.source.to_string()),
        };
        let zswap_current = match cg.usage.zswap {
            Some(v) => Figure::new(Some(v), "memory.zswap.current"),
            None if v1 => Figure::unavailable("cgroup v1 has no memory.zswap.current"),
            None => Figure::unavailable("memory.zswap.current not provided (Linux 5.19+)"),
        };
        let zswap_max = match cg.limits.zswap_max {
            Some(Limit::Bytes(b)) => Figure::new(Some(b), "memory.zswap.max"),
            Some(Limit::Unlimited) => Figure::unavailable("memory.zswap.max is max"),
            None if v1 => Figure::unavailable("cgroup v1 has no memory.zswap.max"),
            None => Figure::unavailable("memory.zswap.max not provided (Linux 5.19+)"),
        };
        let swap = if v1 {
            match (cg.usage.memsw, cg.usage.current) {
                (Some(m), Some(u)) => Figure::new(
                    Some(m.saturating_sub(u)),
                    "memory.memsw.usage_in_bytes − memory.usage_in_bytes",
                ),
                _ => Figure::unavailable("memory.memsw.* not provided (swap accounting off)"),
            }
        } else {
            match cg.usage.swap {
                Some(s) => Figure::new(Some(s), "memory.swap.current"),
                None => Figure::unavailable("memory.swap.current not provided"),
            }
        };
        let host_free = host.mem("SwapFree");
        let swap_limit_room = if v1 {
            match (cg.limits.memsw, cg.usage.memsw, cg.limits.max) {
                (Some(Limit::Bytes(ms)), Some(mu), Some(Limit::Bytes(l))) => Some((
                    Some(ms.saturating_sub(mu).min(ms.saturating_sub(l))),
                    "min(memory.memsw.limit_in_bytes − memsw usage, memsw limit − memory limit)",
                )),
                (Some(Limit::Unlimited), _, _) | (None, _, _) => {
                    Some((None, "memsw unlimited: the host's SwapFree bounds it"))
                }
                _ => None,
            }
        } else {
            match (cg.limits.swap_max, cg.usage.swap) {
                (Some(Limit::Bytes(m)), Some(u)) => Some((
                    Some(m.saturating_sub(u)),
                    "memory.swap.max − memory.swap.current",
                )),
                (Some(Limit::Unlimited), _) => Some((
                    None,
                    "memory.swap.max is max: the host's SwapFree bounds it",
                )),
                _ => None,
            }
        };
        let swap_room = match (swap_limit_room, host_free) {
            (Some((Some(r), f)), Some(h)) => {
                Figure::new(Some(r.min(h)), format!("min({f}, /proc/meminfo SwapFree)"))
            }
            (Some((None, f)), Some(h)) => Figure::new(Some(h), f),
            (Some((Some(r), f)), None) => Figure::new(Some(r), f),
            (_, None) => Figure::unavailable("/proc/meminfo SwapFree unavailable"),
            (None, _) => Figure::unavailable("the cgroup's swap limit is not provided"),
        };
        let zswap_on = zswap.bytes.is_some_and(|z| z > 0);
        let oom_headroom_with_swap = match (oom_headroom, swap_room.bytes) {
            (Some(h), Some(room)) => match compression_ratio {
                Some(ratio) if zswap_on && ratio > 1.0 => Figure::new(
                    Some(h + (room as f64 * (1.0 - 1.0 / ratio)) as u64),
                    format!(
                        "OOM headroom + swap room × (1 − 1/{ratio:.2}): zswap keeps each page compressed in memory, charged to the cgroup"
                    ),
                ),
                _ => Figure::new(Some(h + room), "OOM headroom + swap room"),
            },
            (None, _) => Figure::unavailable("no OOM headroom (no limit)"),
            _ => Figure::unavailable(swap_room.source.clone()),
        };
        let events = EVENTS
            .iter()
            .map(|k| {
                let v = if v1 {
                    None
                } else {
                    cg.stat.as_ref().and_then(|s| s.get(k))
                };
                (k.to_string(), v)
            })
            .collect();
        let anon_thp = if v1 {
            match cg.stat.as_ref().and_then(|s| s.get("total_rss_huge")) {
                Some(v) => Figure::new(Some(v), "memory.stat total_rss_huge"),
                None => Figure::unavailable("memory.stat has no total_rss_huge"),
            }
        } else {
            v2_stat(cg, "anon_thp", "4.?")
        };
        let hugetlb = v2_stat(cg, "hugetlb", "6.6 with memory_hugetlb_accounting");
        let hugetlb_controller = if cg.hugetlb.is_empty() {
            Figure::unavailable(if v1 {
                "cgroup v1 keeps hugetlb in its own hierarchy"
            } else {
                "no hugetlb.<size>.current here (hugetlb controller not enabled, or no huge page sizes)"
            })
        } else {
            let vals: Vec<u64> = cg.hugetlb.iter().filter_map(|h| h.current).collect();
            Figure::new(
                Some(vals.iter().sum()),
                format!(
                    "sum of {}",
                    cg.hugetlb
                        .iter()
                        .map(|h| format!("hugetlb.{}.current", h.size))
                        .collect::<Vec<_>>()
                        .join(" + ")
                ),
            )
        };
        let hugetlb_in_usage = match (hugetlb_controller.bytes, hugetlb.bytes) {
            (Some(0), _) => None,
            (Some(_), Some(_)) => Some(true),
            (Some(_), None) => Some(false),
            _ => None,
        };
        Offload {
            zswap,
            zswapped,
            compression_ratio,
            compression_ratio_source,
            zswap_current,
            zswap_max,
            zswap_writeback: cg.limits.zswap_writeback,
            swap,
            swap_room,
            oom_headroom_with_swap,
            events,
            anon_thp,
            file_thp: v2_stat(cg, "file_thp", "5.x"),
            shmem_thp: v2_stat(cg, "shmem_thp", "5.x"),
            sec_pagetables: v2_stat(cg, "sec_pagetables", "6.1"),
            hugetlb,
            hugetlb_controller,
            hugetlb_in_usage,
        }
    }
}
