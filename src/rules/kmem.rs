//! `kernel-split`: the verdict on a cgroup's kernel memory (`memlens kernel`): the part
//! reclaim frees (dentry and inode caches) is harmless at the limit; the rest is freed only
//! when its objects are released, so while it grows it heads for an OOM kill.

use super::{Evidence, Finding, Severity, pct};
use crate::render::bytes;
use crate::views::kernel::CgroupKernel;

const MIB: u64 = 1 << 20;

/// The verdict. `limit`: the effective limit (bytes, with its source); `earlier`: the same
/// split `seconds` before (for growth).
pub fn verdict(
    k: &CgroupKernel,
    limit: Option<(u64, &str)>,
    earlier: Option<(&CgroupKernel, f64)>,
) -> Finding {
    let mut evidence = vec![Evidence::fig("kernel", &k.total)];
    for p in &k.parts {
        if p.figure.bytes.is_some() {
            evidence.push(Evidence::fig(p.name, &p.figure));
        }
    }
    if let Some((l, src)) = limit {
        evidence.push(Evidence::size("effective limit", Some(l), src));
    }
    let (Some(r), Some(u)) = (k.reclaimable_bytes, k.unreclaimable_bytes) else {
        return Finding {
            id: "kernel-split",
            severity: Severity::Info,
            title: format!(
                "kernel memory {}: this kernel does not split it per cgroup",
                bytes(k.total.bytes)
            ),
            evidence,
            meaning: "cgroup v1 states only the total; which part is dentries (reclaimable) and which is not is unknown for this cgroup. The node-wide split below shows what dominates.".into(),
            advice: "On v2 memory.stat splits it. On v1, compare the node's reclaimable slab (SReclaimable) with the rest.".into(),
        };
    };
    if let Some((e, secs)) = earlier
        && let Some(u0) = e.unreclaimable_bytes
        && secs > 0.0
        && u > u0 + MIB
    {
        let rate = (u - u0) as f64 / secs;
        evidence.push(Evidence::value(
            "unreclaimable growth",
            format!("{}/s over {secs:.1} s", bytes(Some(rate as u64))),
            "two samples of the unreclaimable parts",
        ));
        let eta = limit.map(|(l, _)| {
            let used = k.total.bytes.unwrap_or(u);
            (l.saturating_sub(used)) as f64 / rate
        });
        return Finding {
            id: "kernel-split",
            severity: Severity::Critical,
            title: format!(
                "unreclaimable kernel memory growing at {}/s: it will OOM{}",
                bytes(Some(rate as u64)),
                eta.map_or(String::new(), |s| format!(
                    " (the limit is {:.0} s away at this rate)",
                    s
                ))
            ),
            evidence,
            meaning: "Reclaim cannot free these objects (slab not marked reclaimable, socket buffers, page tables, stacks, per-CPU data); only releasing them does.".into(),
            advice: "Find what is created and never freed: sockets or connections left open, threads, mappings; `slabtop` (node) names the cache.".into(),
        };
    }
    let limit_share = limit.map(|(l, _)| pct(u, l));
    if limit_share.is_some_and(|p| p >= 25.0) && u >= 8 * MIB {
        return Finding {
            id: "kernel-split",
            severity: Severity::Warn,
            title: format!(
                "unreclaimable kernel memory is {:.0}% of the limit ({})",
                limit_share.unwrap_or(0.0),
                bytes(Some(u))
            ),
            evidence,
            meaning: "This part is not freed at the limit: the cgroup has that much less for its processes.".into(),
            advice: "Count it in the limit; if it keeps growing, take two samples (`--sample 10s`).".into(),
        };
    }
    if r >= u {
        return Finding {
            id: "kernel-split",
            severity: Severity::Info,
            title: format!(
                "dentry and inode caches ({} of {}): reclaimed at the limit, harmless",
                bytes(Some(r)),
                bytes(k.total.bytes)
            ),
            evidence,
            meaning: "Reclaimable slab is freed by the shrinkers before any OOM kill; it inflates usage, not risk.".into(),
            advice: "Nothing to do; tools that add it to the working set overstate the need.".into(),
        };
    }
    Finding {
        id: "kernel-split",
        severity: Severity::Info,
        title: format!(
            "kernel memory {}: {} not reclaimable, {} reclaimable",
            bytes(k.total.bytes),
            bytes(Some(u)),
            bytes(Some(r))
        ),
        evidence,
        meaning: "The unreclaimable part is freed only when its objects are released.".into(),
        advice: "Take two samples (`--sample 10s`) to see whether it grows.".into(),
    }
}
