//! Rules about the limit: how close the cgroup is to it, whether it was hit, OOM kills, and
//! the v2 protections and throttle (Documentation/admin-guide/cgroup-v2.rst "Memory
//! Interface Files"; cgroup-v1/memory.rst 2.5 "Reclaim", 10 "OOM Control").

use super::{Evidence, Finding, Sample, Severity, limit_evidence, pct};
use crate::model::{Limit, Version};
use crate::render::bytes;
use crate::report::Report;

/// `oom-killed`: the kernel killed a process of this cgroup (or below) for memory.
pub fn oom_killed(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let cg = &r.cgroup;
    let (src, n) = match cg.version {
        Version::V2 => ("memory.events oom_kill", cg.events.oom_kills()),
        Version::V1 => ("memory.oom_control oom_kill", cg.events.oom_kills()),
    };
    let Some(n) = n else {
        // v1 before 4.13 does not count kills (the v2 file always does when readable).
        return Some(Finding {
            id: "oom-killed",
            severity: Severity::Info,
            title: "this kernel does not count OOM kills per cgroup".into(),
            evidence: vec![Evidence::value(
                "OOM kill counter",
                "n/a",
                format!("{src} not provided (v1 counts kills from Linux 4.13)"),
            )],
            meaning:
                "memlens cannot tell from the cgroup files whether a process here was OOM-killed."
                    .into(),
            advice:
                "Look for \"Memory cgroup out of memory\" in the kernel log (dmesg, journalctl -k)."
                    .into(),
        });
    };
    if n == 0 {
        return None;
    }
    let mut evidence = vec![
        Evidence::value("OOM kills", n.to_string(), src),
        limit_evidence(r),
    ];
    if let Some(p) = cg.usage.peak {
        evidence.push(Evidence::size(
            "peak usage",
            Some(p),
            match cg.version {
                Version::V1 => "memory.max_usage_in_bytes",
                Version::V2 => "memory.peak",
            },
        ));
    }
    let group = match cg.version {
        Version::V2 => {
            evidence.push(Evidence::value(
                "memory.oom.group",
                cg.limits.oom_group.map_or("n/a".into(), |g| g.to_string()),
                "memory.oom.group",
            ));
            if cg.limits.oom_group == Some(true) {
                " memory.oom.group is 1: the whole cgroup was killed together."
            } else {
                " memory.oom.group is 0: only the largest process was killed, the others run on, possibly in a broken state; set memory.oom.group=1 to kill the workload as a unit."
            }
        }
        Version::V1 => {
            if let Some(oc) = &cg.events.oom_control {
                for k in ["under_oom", "oom_kill_disable"] {
                    if let Some(v) = oc.get(k) {
                        evidence.push(Evidence::value(
                            k,
                            v.to_string(),
                            format!("memory.oom_control {k}"),
                        ));
                    }
                }
            }
            " v1 kills one process (the largest by oom_score); v2's memory.oom.group kills the whole cgroup together."
        }
    };
    Some(Finding {
        id: "oom-killed",
        severity: Severity::Critical,
        title: format!("{n} process(es) in this cgroup were OOM-killed"),
        evidence,
        meaning: format!(
            "Memory that reclaim could not free (anon, shmem, unreclaimable kernel memory) reached the limit, and the kernel's OOM killer chose a victim.{group}"
        ),
        advice: "Raise the limit to the peak the workload needs, or reduce what it pins (heap, tmpfs/emptyDir medium Memory, SysV shm); the kernel log names the victim and the cgroup's figures at that moment.".into(),
    })
}

/// How much of `not reclaimable` swap could take (anon and shmem can be swapped; kernel
/// memory cannot): host SwapFree, capped by the cgroup's swap allowance.
fn swap_room(r: &Report) -> u64 {
    let cg = &r.cgroup;
    let host = r.host.mem("SwapFree").unwrap_or(0);
    let allowed = match cg.version {
        Version::V2 => match cg.limits.swap_max {
            Some(Limit::Bytes(m)) => m.saturating_sub(cg.usage.swap.unwrap_or(0)),
            _ => u64::MAX,
        },
        Version::V1 => {
            if cg.limits.swappiness == Some(0) {
                0
            } else {
                match (cg.limits.memsw, cg.limits.max, cg.usage.memsw) {
                    (Some(Limit::Bytes(ms)), Some(Limit::Bytes(m)), Some(_)) => {
                        ms.saturating_sub(m)
                    }
                    _ => u64::MAX,
                }
            }
        }
    };
    let swappable = r
        .breakdown
        .anon
        .bytes
        .unwrap_or(0)
        .saturating_add(r.breakdown.shmem.bytes.unwrap_or(0));
    host.min(allowed).min(swappable)
}

/// `oom-risk`: what reclaim cannot free (less what swap could take) against the limit, and
/// the kubelet's view (working set against the limit).
pub fn oom_risk(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let l = r.derived.limit.bytes?;
    if l == 0 {
        return None;
    }
    let nr = r.derived.not_reclaimable.bytes?;
    let room = swap_room(r);
    let pinned = nr.saturating_sub(room);
    let share = pct(pinned, l);
    let ws = r
        .tools
        .figures
        .iter()
        .find(|t| t.key == "working_set")
        .map(|t| &t.figure);
    let ws_share = ws.and_then(|f| f.bytes).map(|w| pct(w, l));
    let kernel_sev = if share >= 90.0 {
        Some(Severity::Critical)
    } else if share >= 80.0 {
        Some(Severity::Warn)
    } else {
        None
    };
    let kubelet = ws_share.is_some_and(|s| s >= 90.0);
    if kernel_sev.is_none() && !kubelet {
        return None;
    }
    let mut evidence = vec![
        Evidence::fig("not reclaimable", &r.derived.not_reclaimable),
        Evidence::size(
            "of which swap could take",
            Some(room),
            "min(host SwapFree, cgroup swap allowance, anon + shmem)",
        ),
        limit_evidence(r),
        Evidence::value(
            "pinned share of the limit",
            format!("{share:.1}%"),
            "(not reclaimable − swap room) / effective limit",
        ),
        Evidence::fig("headroom to OOM kill", &r.derived.oom_headroom),
    ];
    if let (Some(f), Some(s)) = (ws, ws_share) {
        evidence.push(Evidence::fig("working set (kubelet, kubectl top)", f));
        evidence.push(Evidence::value(
            "working set share of the limit",
            format!("{s:.1}%"),
            "working set / effective limit",
        ));
    }
    let (severity, title, meaning) = match kernel_sev {
        Some(sev) => (
            sev,
            format!(
                "{share:.0}% of the limit is memory the kernel cannot reclaim: {} left before an OOM kill",
                bytes(Some(l.saturating_sub(pinned)))
            ),
            "At the limit the kernel first drops clean page cache; anon, shmem and unreclaimable kernel memory stay. When they alone fill the limit, the next allocation that reclaim cannot satisfy invokes the OOM killer.".to_string(),
        ),
        None => (
            Severity::Warn,
            format!(
                "the working set is {:.0}% of the limit: the kubelet and dashboards see this cgroup as nearly full",
                ws_share.unwrap_or(0.0)
            ),
            "The kubelet, kubectl top and cAdvisor use working set = usage − inactive_file, which still counts active page cache. The kernel can reclaim that cache, so an OOM kill is not imminent, but alerts and node-pressure eviction ranking use this figure.".to_string(),
        ),
    };
    Some(Finding {
        id: "oom-risk",
        severity,
        title,
        evidence,
        meaning,
        advice: "Raise the limit above the steady-state anon + shmem with margin, or find what grows (memlens ps: RssAnon per process; shmem-held: which tmpfs or segment). Swap (v2 memory.swap.max) only buys time.".into(),
    })
}

/// `reclaimable-near-limit`: usage near the limit, but mostly clean cache: not a problem.
pub fn reclaimable_near_limit(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let l = r.derived.limit.bytes?;
    let u = r.breakdown.usage.bytes?;
    let rec = r.derived.reclaimable.bytes?;
    if l == 0 || pct(u, l) < 90.0 || rec * 2 < u {
        return None;
    }
    Some(Finding {
        id: "reclaimable-near-limit",
        severity: Severity::Info,
        title: format!(
            "not a problem: usage is {:.0}% of the limit, but {} of it is cache the kernel reclaims at the limit",
            pct(u, l),
            bytes(Some(rec))
        ),
        evidence: vec![
            Evidence::fig("usage", &r.breakdown.usage),
            limit_evidence(r),
            Evidence::fig("reclaimable now", &r.derived.reclaimable),
            Evidence::fig("not reclaimable", &r.derived.not_reclaimable),
        ],
        meaning: "Page cache fills any free room under the limit; at the limit the kernel drops clean cache before it considers an OOM kill. Usage near 100% is then normal. The cost is reclaim work in the allocating task (direct reclaim stalls) and re-reading files that were dropped.".into(),
        advice: "Judge the cgroup by 'not reclaimable' (and the working set for kubelet alerts), not by usage. If latency suffers from reclaim stalls (see the pressure finding), raise the limit; on v2, memory.high below memory.max makes reclaim start earlier and in the background of the workload's own allocations.".into(),
    })
}

/// `no-limit`: nothing on the path to the root limits this cgroup.
pub fn no_limit(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    if r.cgroup.is_root() || r.derived.limit.bytes.is_some() {
        return None;
    }
    // A limit file that could not be read is not "no limit".
    r.cgroup.limits.max?;
    let container = r.identity.short().is_some();
    let mut evidence = vec![limit_evidence(r)];
    evidence.push(Evidence::fig("usage", &r.breakdown.usage));
    Some(Finding {
        id: "no-limit",
        severity: if container { Severity::Warn } else { Severity::Info },
        title: "no memory limit on the path to the root: this cgroup can take all of the host's memory".into(),
        evidence,
        meaning: "Without a limit the cgroup's growth is bounded only by the host: when memory runs out the global OOM killer picks a victim anywhere on the node, and page cache from here competes with every other workload. A Kubernetes emptyDir without sizeLimit (or medium: Memory) counts here too.".into(),
        advice: "Set a limit (docker --memory, Kubernetes resources.limits.memory, systemd MemoryMax=), and give emptyDir volumes a sizeLimit.".into(),
    })
}

/// `limit-hits`: usage reached the limit (v1 memory.failcnt, or memory.memsw.failcnt when the
/// memory+swap limit is the one hit: v1 charges memsw first, so with memsw = limit the hits
/// land there; v2 memory.events max).
pub fn limit_hits(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let cg = &r.cgroup;
    let (n, src) = match cg.version {
        Version::V1 => {
            let mem = cg.events.failcnt.unwrap_or(0);
            let memsw = cg.events.memsw_failcnt.unwrap_or(0);
            if cg.events.failcnt.is_none() && cg.events.memsw_failcnt.is_none() {
                return None;
            }
            if memsw > mem {
                (memsw, "memory.memsw.failcnt (the memory+swap limit)")
            } else {
                (mem, "memory.failcnt")
            }
        }
        Version::V2 => (cg.events.events.as_ref()?.get("max")?, "memory.events max"),
    };
    if n == 0 {
        return None;
    }
    Some(Finding {
        id: "limit-hits",
        severity: Severity::Info,
        title: format!("usage reached the limit {n} times; each time the kernel reclaimed"),
        evidence: vec![
            Evidence::value("limit hits", n.to_string(), src),
            limit_evidence(r),
            Evidence::fig("reclaimable now", &r.derived.reclaimable),
            Evidence::value(
                "OOM kills",
                cg.events.oom_kills().map_or("n/a".into(), |k| k.to_string()),
                match cg.version {
                    Version::V1 => "memory.oom_control oom_kill",
                    Version::V2 => "memory.events oom_kill",
                },
            ),
        ],
        meaning: "A charge that would exceed the limit makes the allocating task reclaim first (cache, then swap). With page cache this is routine and not an error: a file copy through a limited cgroup hits the limit constantly. It costs latency in the allocating task.".into(),
        advice: "No action if OOM kills are 0 and pressure is low; if the workload stalls, raise the limit or reduce its cache use (O_DIRECT, posix_fadvise DONTNEED).".into(),
    })
}

/// `high-throttling` (v2): usage went over memory.high and the tasks were throttled.
pub fn high_throttling(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let cg = &r.cgroup;
    if cg.version != Version::V2 {
        return None;
    }
    let n = cg.events.events.as_ref()?.get("high")?;
    if n == 0 {
        return None;
    }
    Some(Finding {
        id: "high-throttling",
        severity: Severity::Warn,
        title: format!("usage went over memory.high {n} times: the tasks were throttled and forced to reclaim"),
        evidence: vec![
            Evidence::value("memory.high breaches", n.to_string(), "memory.events high"),
            Evidence::value(
                "memory.high",
                match cg.limits.high {
                    Some(Limit::Bytes(b)) => bytes(Some(b)),
                    Some(Limit::Unlimited) => "max".into(),
                    None => "n/a".into(),
                },
                "memory.high",
            ),
            Evidence::fig("usage", &r.breakdown.usage),
            Evidence::fig("headroom to memory.high", &r.derived.high_headroom),
        ],
        meaning: "Above memory.high the kernel does not OOM-kill; it makes every allocating task reclaim and, when that is not enough, sleeps it (cgroup-v2.rst \"memory.high\"). The workload slows down instead of dying.".into(),
        advice: "If the slowdown is unwanted, raise memory.high (or set it to max and rely on memory.max); if it is the point (soft cap), check memory.pressure to see how much time is lost.".into(),
    })
}

/// `memory-qos` (v2): memory.min/low/high set: what they do when the node runs short.
pub fn memory_qos(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let cg = &r.cgroup;
    if cg.version != Version::V2 {
        return None;
    }
    let mut evidence = Vec::new();
    if let Some(m) = cg.limits.min.filter(|m| *m > 0) {
        evidence.push(Evidence::size(
            "memory.min (hard protection)",
            Some(m),
            "memory.min",
        ));
    }
    if let Some(l) = cg.limits.low.filter(|l| *l > 0) {
        evidence.push(Evidence::size(
            "memory.low (best-effort protection)",
            Some(l),
            "memory.low",
        ));
    }
    if let Some(Limit::Bytes(h)) = cg.limits.high {
        evidence.push(Evidence::size(
            "memory.high (throttle)",
            Some(h),
            "memory.high",
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    evidence.push(Evidence::fig("usage", &r.breakdown.usage));
    Some(Finding {
        id: "memory-qos",
        severity: Severity::Info,
        title: "memory protections or a throttle are set (v2 memory QoS)".into(),
        evidence,
        meaning: "Under node-wide pressure the kernel does not reclaim this cgroup's memory below memory.min at all, and below memory.low only when no unprotected memory is left elsewhere; protection counts only as far as every ancestor grants it (effective protection). memory.high throttles the cgroup itself before memory.max is reached. Kubernetes sets these with the MemoryQoS feature gate.".into(),
        advice: "Protections shift reclaim (and OOM risk) to other cgroups: keep the sum of memory.min on a node well below its RAM. memory.events low/high count how often they took effect.".into(),
    })
}
