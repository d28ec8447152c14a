//! Memory QoS on cgroup v2: throttling at memory.high that has turned into a livelock, and
//! protection (memory.low) breached. KEP-2570 paused its beta because a memory.high below
//! the working set left allocating tasks "stuck indefinitely"; Containarium#1454 lived 90
//! minutes with `high 556267` while the service looked active (field §1.7, §4 item 7).
//!
//! The livelock signature (cgroup-v2.rst "memory.high", mm/memcontrol.c
//! mem_cgroup_handle_over_high: over high the task reclaims, then sleeps up to 2 s per
//! return to user space): usage pinned at memory.high, nothing left to reclaim (clean page
//! cache gone, no swap for anon), PSI `full` above zero (every task stalled at once), and
//! with `--sample` the `high` counter rising fast while reclaim efficiency (pgsteal/pgscan)
//! collapses.

use super::{Evidence, Finding, Sample, Severity, pct};
use crate::model::{Limit, Version};
use crate::render::bytes;
use crate::report::Report;

/// `memory-high-livelock`.
pub fn high_livelock(r: &Report, sample: Option<Sample<'_>>) -> Option<Finding> {
    let cg = &r.cgroup;
    if cg.version != Version::V2 {
        return None;
    }
    let Some(Limit::Bytes(high)) = cg.limits.high else {
        return None;
    };
    let usage = r.breakdown.usage.bytes?;
    let events = cg.events.events.as_ref()?;
    let n_high = events.get("high")?;
    // "At memory.high": within 2% (the kernel lets usage overshoot by a charge batch, and
    // reclaim pulls it a little below).
    let pinned = usage + high / 50 >= high;
    if !pinned || n_high == 0 {
        return None;
    }
    let reclaimable = r.derived.reclaimable.bytes.unwrap_or(0);
    let swap_possible = match cg.limits.swap_max {
        Some(Limit::Bytes(0)) => false,
        _ => r.host.mem("SwapTotal").is_some_and(|s| s > 0),
    };
    let full10 = cg.pressure.map(|p| p.full.avg10);
    let mut evidence = vec![
        Evidence::size("memory.high", Some(high), "memory.high"),
        Evidence::fig("usage", &r.breakdown.usage),
        Evidence::value(
            "memory.high breaches",
            n_high.to_string(),
            "memory.events high",
        ),
        Evidence::fig("reclaimable", &r.derived.reclaimable),
        Evidence::value(
            "swap for anon",
            if swap_possible { "available" } else { "none" },
            "memory.swap.max and /proc/meminfo SwapTotal",
        ),
        Evidence::value(
            "PSI full avg10",
            full10.map_or("n/a".into(), |f| format!("{f:.2}%")),
            "memory.pressure full avg10",
        ),
    ];
    if let Some(peak) = cg.usage.peak {
        evidence.push(Evidence::size(
            "peak usage (memory.high is below it)",
            Some(peak),
            "memory.peak (5.19+): the burst the workload reached",
        ));
    }
    let mut rising = false;
    if let Some(s) = sample {
        let e0 = s
            .earlier
            .cgroup
            .events
            .events
            .as_ref()
            .and_then(|e| e.get("high"));
        if let Some(e0) = e0 {
            let rate = n_high.saturating_sub(e0) as f64 / s.seconds.max(0.001);
            rising = rate >= 1.0;
            evidence.push(Evidence::value(
                "memory.high breaches per second",
                format!("{rate:.1}"),
                "Δ memory.events high / Δt",
            ));
        }
        let d = |k: &str| {
            let a = cg.stat.as_ref()?.get(k)?;
            let b = s.earlier.cgroup.stat.as_ref()?.get(k)?;
            Some(a.saturating_sub(b))
        };
        if let (Some(steal), Some(scan)) = (d("pgsteal"), d("pgscan")) {
            evidence.push(Evidence::value(
                "reclaim efficiency",
                if scan == 0 {
                    "no scan".into()
                } else {
                    format!(
                        "{:.0}% ({steal} of {scan} pages scanned were freed)",
                        pct(steal, scan)
                    )
                },
                "Δ memory.stat pgsteal / Δ pgscan",
            ));
        }
    }
    let nothing_left = reclaimable < usage / 20 && !swap_possible;
    let stalled = full10.is_some_and(|f| f > 0.0) || rising;
    let severity = if nothing_left && stalled {
        Severity::Critical
    } else if nothing_left || stalled {
        Severity::Warn
    } else {
        return None;
    };
    Some(Finding {
        id: "memory-high-livelock",
        severity,
        title: if severity == Severity::Critical {
            format!(
                "livelock at memory.high: usage is pinned at {} with nothing reclaimable and no swap; its tasks are throttled, not killed",
                bytes(Some(high))
            )
        } else {
            format!(
                "usage is pinned at memory.high ({}) and {}",
                bytes(Some(high)),
                if nothing_left {
                    "nothing is left to reclaim"
                } else {
                    "tasks are stalling"
                }
            )
        },
        evidence,
        meaning: "Above memory.high the kernel makes each allocating task reclaim and then sleep; when nothing can be reclaimed the tasks make almost no progress yet are never OOM-killed, so the service looks alive (systemd shows active) while it does nothing. This is the failure that paused Kubernetes Memory QoS (KEP-2570).".into(),
        advice: "Raise memory.high above the working set (or set it to max and let memory.max do the limiting); give the cgroup swap; or lower the working set. As an immediate way out: `echo max > memory.high` in the cgroup.".into(),
    })
}

/// `protection-breached`: memory.events `low` counts reclaim *below* memory.low: the
/// protection was overcommitted (the siblings' memory.low add up to more than the parent
/// has) or the node had nothing else to reclaim (cgroup-v2.rst memory.events "low").
pub fn protection_breached(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let cg = &r.cgroup;
    if cg.version != Version::V2 {
        return None;
    }
    let n = cg.events.events.as_ref()?.get("low")?;
    if n == 0 {
        return None;
    }
    Some(Finding {
        id: "protection-breached",
        severity: Severity::Warn,
        title: format!("memory.low protection was breached {n} times: memory was reclaimed from this cgroup although it was under its protection"),
        evidence: vec![
            Evidence::value("breaches", n.to_string(), "memory.events low"),
            Evidence::size("memory.low", cg.limits.low, "memory.low"),
            Evidence::size("memory.min", cg.limits.min, "memory.min"),
            Evidence::fig("usage", &r.breakdown.usage),
        ],
        meaning: "The kernel reclaims protected memory only when there is nothing unprotected left, or when the protections below a parent add up to more than the parent's own: the workload lost the cache it was promised (expect refaults and latency).".into(),
        advice: "Check that the memory.low of the siblings fit within the parent's memory.low (Kubernetes KEP-2570 sets memory.min from requests: requests above allocatable overcommit it), or use memory.min for what must not be reclaimed.".into(),
    })
}

/// `memory-high-old-kernel`: memory.high set on a kernel before 5.9. Until Chris Down's
/// "mm, memcg: reclaim more aggressively before high allocator throttling" (5.9, b3ff92916af3)
/// a task over memory.high reclaimed only the pages of its own charge batch before it was
/// put to sleep, so a cgroup with plenty of clean page cache was throttled anyway: the
/// livelock KEP-2570 met, and why its beta gates on the kernel version (field §4 item 7).
pub fn high_old_kernel(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let cg = &r.cgroup;
    if cg.version != Version::V2 {
        return None;
    }
    let Some(Limit::Bytes(high)) = cg.limits.high else {
        return None;
    };
    let release = r.host.kernel.as_deref()?;
    let k = crate::kernel::Release::parse(release)?;
    if k.at_least(5, 9) {
        return None;
    }
    Some(Finding {
        id: "memory-high-old-kernel",
        severity: Severity::Warn,
        title: format!(
            "memory.high ({}) is set on kernel {release}, older than 5.9: throttling there can stall tasks even with reclaimable cache",
            bytes(Some(high))
        ),
        evidence: vec![
            Evidence::size("memory.high", Some(high), "memory.high"),
            Evidence::value("kernel", release, "/proc/sys/kernel/osrelease"),
            Evidence::fig("reclaimable", &r.derived.reclaimable),
        ],
        meaning: "Before 5.9 a task above memory.high reclaimed only its own charge batch before the kernel made it sleep (mm/memcontrol.c mem_cgroup_handle_over_high), so reclaim fell behind and tasks were throttled for long stretches although page cache could have been dropped. 5.9's \"mm, memcg: reclaim more aggressively before high allocator throttling\" fixed it; Kubernetes Memory QoS (KEP-2570) requires a newer kernel for this reason.".into(),
        advice: "Upgrade the kernel to 5.9 or later before relying on memory.high, or set memory.high to max and limit with memory.max only.".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Root;

    fn report(kernel: &str, high: Option<Limit>) -> Report {
        let root = Root::from_capture(std::path::Path::new(
            "tests/fixtures/captures/v2-debian-6.1/v2-capture.tar.gz",
        ))
        .expect("v2 fixture capture");
        let h = crate::report::hierarchy(&root).expect("hierarchy");
        let mut r = crate::report::build(
            &root,
            &h,
            "/memlens-test-capture",
            crate::report::Options::default(),
        )
        .expect("report");
        r.host.kernel = Some(kernel.into());
        r.cgroup.limits.high = high;
        r
    }

    #[test]
    fn memory_high_before_5_9_is_flagged() {
        let f = high_old_kernel(&report("5.8.18", Some(Limit::Bytes(64 << 20))), None)
            .expect("flagged on 5.8");
        assert_eq!(f.id, "memory-high-old-kernel");
        assert!(f.title.contains("5.8.18"), "{}", f.title);
        assert!(high_old_kernel(&report("5.9.0", Some(Limit::Bytes(64 << 20))), None).is_none());
        assert!(high_old_kernel(&report("5.4.0-150", Some(Limit::Unlimited)), None).is_none());
        assert!(high_old_kernel(&report("5.4.0-150", None), None).is_none());
        // Through evaluate, as explain runs it.
        let all = crate::rules::evaluate(&report("5.4.0", Some(Limit::Bytes(64 << 20))), None);
        assert!(all.iter().any(|f| f.id == "memory-high-old-kernel"));
    }
}
