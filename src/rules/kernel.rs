//! Findings about what the kernel does with memory that is not plain anon/file: zswap,
//! hugetlb, and the cgroup v1 controller itself, which is going away.

use super::{Evidence, Finding, Sample, Severity};
use crate::model::{Limit, Version};
use crate::render::bytes;
use crate::report::Report;

/// `zswap-in-use`: part of the cgroup sits compressed in zswap, and that pool is charged.
pub fn zswap_in_use(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let o = &r.offload;
    let z = o.zswap.bytes.filter(|z| *z > 0)?;
    let mut evidence = vec![
        Evidence::fig("zswap pool (compressed)", &o.zswap),
        Evidence::fig("zswapped (uncompressed)", &o.zswapped),
    ];
    if let Some(ratio) = o.compression_ratio {
        evidence.push(Evidence::value(
            "compression ratio",
            format!("{ratio:.2}"),
            o.compression_ratio_source.clone(),
        ));
    }
    evidence.push(Evidence::fig("memory.zswap.max", &o.zswap_max));
    evidence.push(Evidence::fig("swap charged", &o.swap));
    Some(Finding {
        id: "zswap-in-use",
        severity: Severity::Info,
        title: format!(
            "{} of this cgroup's swapped memory is held compressed in zswap ({} of pool, charged to it)",
            bytes(o.zswapped.bytes),
            bytes(Some(z))
        ),
        evidence,
        meaning: "zswap keeps swapped-out pages compressed in RAM. The pool is charged to the cgroup (memory.current, inside memory.stat kernel, cgroup-v2.rst \"memory.zswap.current\"), so it counts toward the limit and is not reclaimable: swapping a page into zswap frees only 1 − 1/ratio of it. The pages themselves also hold swap slots (memory.swap.current).".into(),
        advice: "Cap the pool with memory.zswap.max (0 sends pages straight to the swap device); memory.zswap.writeback (6.8+) decides whether zswap may write them on. A high zswpwb count means the pool is full and pages go to disk after all.".into(),
    })
}

/// `hugetlb-unaccounted`: hugetlb pages are in use but not in memory.current.
pub fn hugetlb_unaccounted(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let o = &r.offload;
    if o.hugetlb_in_usage != Some(false) {
        return None;
    }
    Some(Finding {
        id: "hugetlb-unaccounted",
        severity: Severity::Info,
        title: format!(
            "{} of hugetlb pages are used here but are not in memory.current",
            bytes(o.hugetlb_controller.bytes)
        ),
        evidence: vec![
            Evidence::fig("hugetlb (controller)", &o.hugetlb_controller),
            Evidence::fig("hugetlb in memory.stat", &o.hugetlb),
            Evidence::fig("usage", &r.breakdown.usage),
        ],
        meaning: "HugeTLB pages are charged to the hugetlb controller (hugetlb.<size>.current), not to the memory controller, unless the cgroup2 hierarchy is mounted with memory_hugetlb_accounting (6.6+; cgroup-v2.rst \"memory_hugetlb_accounting\"). So memory.current, and every tool built on it, leaves them out: the cgroup holds more RAM than its usage says, and memory.max does not bound it.".into(),
        advice: "Bound huge pages with hugetlb.<size>.max. To see them in memory.current (and memory.stat hugetlb), remount cgroup2 with -o memory_hugetlb_accounting (6.6+).".into(),
    })
}

/// `cgroup-v1`: this cgroup is on the v1 memory controller, which is going away; and what its
/// figures become on v2.
pub fn cgroup_v1(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    if r.cgroup.version != Version::V1 {
        return None;
    }
    let b = &r.breakdown;
    let cg = &r.cgroup;
    let mut evidence = vec![
        Evidence::value(
            "hierarchy",
            "cgroup v1 memory controller",
            format!(
                "/proc/self/mountinfo: cgroup mount with memory at {}",
                r.hierarchy.mount_point.display()
            ),
        ),
        Evidence::value(
            "kernel",
            r.host.kernel.clone().unwrap_or_else(|| "n/a".into()),
            "/proc/sys/kernel/osrelease",
        ),
        Evidence::size(
            "total_rss → v2 anon",
            b.anon.bytes,
            format!("{} (v2: memory.stat anon)", b.anon.source),
        ),
        Evidence::size(
            "total_cache → v2 file",
            b.file.bytes,
            format!("{} (v2: memory.stat file)", b.file.source),
        ),
        Evidence::size(
            "kmem → v2 kernel",
            cg.usage.kmem,
            "memory.kmem.usage_in_bytes (v2: memory.stat kernel, always accounted, inside memory.current)",
        ),
    ];
    match (cg.usage.memsw, cg.usage.current) {
        (Some(ms), Some(u)) => evidence.push(Evidence::size(
            "memsw → v2 memory.current + memory.swap.current",
            Some(ms),
            format!(
                "memory.memsw.usage_in_bytes = {} memory + {} swap (v2 splits them; memory.swap.max bounds swap alone)",
                bytes(Some(u)),
                bytes(Some(ms.saturating_sub(u)))
            ),
        )),
        _ => evidence.push(Evidence::value(
            "memsw → v2 memory.swap.*",
            "n/a",
            "memory.memsw.* not provided (swap accounting off)",
        )),
    }
    if let Some(t) = cg.usage.kmem_tcp {
        evidence.push(Evidence::size(
            "TCP buffers → v2 sock, charged to usage",
            Some(t),
            "memory.kmem.tcp.usage_in_bytes (not in v1 usage; in v2 memory.current as memory.stat sock)",
        ));
    }
    if let Some(Limit::Bytes(s)) = cg.limits.soft {
        evidence.push(Evidence::size(
            "soft limit → v2 memory.low / memory.high",
            Some(s),
            "memory.soft_limit_in_bytes (deprecated; no v2 file)",
        ));
    }
    Some(Finding {
        id: "cgroup-v1",
        severity: Severity::Info,
        title: "This cgroup is on the cgroup v1 memory controller, which is going away".into(),
        evidence,
        meaning: "The kubelet refuses to start on cgroup v1 from Kubernetes 1.35 (KEP-5573), systemd removed v1 in v258, and the kernel made the v1 memory controller optional (CONFIG_MEMCG_V1, default n, \"mm: memcg: put cgroup v1-specific code under a config option\", e93d4166b40a, 6.11): Debian's 6.12 is built without it. On v2 the same cgroup reads differently: total_rss becomes anon and total_cache file (same pages), memory+swap (memsw) becomes memory.current plus memory.swap.current with separate limits, kernel memory is always charged and shown as memory.stat kernel, socket buffers move into memory.current, and use_hierarchy is always on. Tools move with it: docker stats, kubectl top and cAdvisor's working set use the same usage − inactive_file formula but read v2 files; cAdvisor's container_memory_cache/rss follow file/anon; usage can rise by the socket memory v1 left out; oom_control's oom_kill becomes memory.events oom_kill (and memory.oom.group can kill the whole cgroup).".into(),
        advice: "Plan the move to cgroup v2 (systemd.unified_cgroup_hierarchy=1, or a distribution that defaults to it). Translate limits: memory.limit_in_bytes → memory.max, memsw − limit → memory.swap.max, soft_limit → memory.low or memory.high. `memlens lab` shows the same scenarios on both hierarchies.".into(),
    })
}
