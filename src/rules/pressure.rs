//! Rules about time lost to memory: PSI (Documentation/accounting/psi.rst) and refaults
//! between two samples (Documentation/admin-guide/cgroup-v2.rst "memory.stat":
//! workingset_refault_*; mm/workingset.c).

use super::{Evidence, Finding, Sample, Severity};
use crate::model::{Pressure, Version};
use crate::report::Report;

/// `pressure`: tasks stalled waiting for memory (reclaim, refaults, swap-in).
pub fn pressure(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let cgroup_psi_damaged = r
        .cgroup
        .problems
        .iter()
        .any(|x| x.contains("memory.pressure"));
    let (p, src, scope): (Option<&Pressure>, &str, &str) = match r.cgroup.version {
        Version::V2 if r.cgroup.pressure.is_some() || cgroup_psi_damaged => (
            r.cgroup.pressure.as_ref(),
            "memory.pressure",
            "this cgroup's tasks",
        ),
        // v1 has no per-cgroup PSI: the host's is the best there is.
        _ => (
            r.host.pressure.as_ref(),
            "/proc/pressure/memory",
            "tasks on the whole host (v1 has no per-cgroup PSI)",
        ),
    };
    let Some(p) = p else {
        // The file is there but damaged: say what is wrong with it, not that the kernel
        // has no PSI (issue 19 item 9).
        let own = if r.cgroup.version == Version::V2 {
            "memory.pressure"
        } else {
            "/proc/pressure/memory"
        };
        if let Some(problem) = r
            .problems()
            .into_iter()
            .find(|x| x.contains(own) || x.contains("/proc/pressure/memory"))
        {
            return Some(Finding {
                id: "pressure",
                severity: Severity::Info,
                title: "memory pressure (PSI) could not be read".into(),
                evidence: vec![Evidence::value("PSI", "unreadable", problem)],
                meaning: "The kernel provides PSI, but its file could not be read or parsed, so memlens cannot measure the time tasks lose waiting for memory.".into(),
                advice: "See the problem listed: a damaged capture, or a read that failed; read the file again on the live system.".into(),
            });
        }
        return Some(Finding {
            id: "pressure",
            severity: Severity::Info,
            title: "no memory pressure information on this kernel".into(),
            evidence: vec![Evidence::value(
                "PSI",
                "n/a",
                format!("{src} not provided (needs Linux 4.20+ with CONFIG_PSI, and psi=1 where CONFIG_PSI_DEFAULT_DISABLED)"),
            )],
            meaning: "Without PSI, memlens cannot measure the time tasks lose waiting for memory.".into(),
            advice: "Boot with psi=1 to get /proc/pressure/memory (and memory.pressure per cgroup on v2).".into(),
        });
    };
    let sev = if p.full.avg10 >= 10.0 || p.some.avg10 >= 40.0 {
        Severity::Critical
    } else if p.some.avg10 >= 10.0 || p.some.avg60 >= 5.0 || p.full.avg10 >= 2.0 {
        Severity::Warn
    } else {
        return None;
    };
    Some(Finding {
        id: "pressure",
        severity: sev,
        title: format!(
            "{}: some stalled {:.1}% / all stalled {:.1}% of the last 10 s waiting for memory",
            scope, p.some.avg10, p.full.avg10
        ),
        evidence: vec![
            Evidence::value("some avg10 / avg60 / avg300", format!("{:.2}% / {:.2}% / {:.2}%", p.some.avg10, p.some.avg60, p.some.avg300), format!("{src} some")),
            Evidence::value("full avg10 / avg60 / avg300", format!("{:.2}% / {:.2}% / {:.2}%", p.full.avg10, p.full.avg60, p.full.avg300), format!("{src} full")),
        ],
        meaning: "'some' is the share of time at least one task waited for memory (direct reclaim, refaulting evicted pages, swap-in); 'full' is the share when every runnable task did, i.e. the CPU did no useful work for it. Above ~10% some, latency suffers visibly.".into(),
        advice: "Give the workload more memory (raise the limit or memory.high) or reduce its working set; see the thrashing finding (--sample) for refaults.".into(),
    })
}

/// The refault counter of a report's cgroup and its key.
fn refaults(r: &Report) -> Option<(u64, &'static str)> {
    let st = r.cgroup.stat.as_ref()?;
    let keys: &[&'static str] = match r.cgroup.version {
        Version::V1 => &["total_workingset_refault_file", "total_workingset_refault"],
        Version::V2 => &["workingset_refault_file", "workingset_refault"],
    };
    keys.iter().find_map(|k| st.get(k).map(|v| (v, *k)))
}

/// `thrashing` (needs `--sample`): pages evicted and soon read back in.
pub fn thrashing(r: &Report, sample: Option<Sample<'_>>) -> Option<Finding> {
    let s = sample?;
    if s.seconds <= 0.0 {
        return None;
    }
    let (Some((now, key)), Some((then, _))) = (refaults(r), refaults(s.earlier)) else {
        return Some(Finding {
            id: "thrashing",
            severity: Severity::Info,
            title: "this kernel does not count refaults per cgroup".into(),
            evidence: vec![Evidence::value(
                "refaults",
                "n/a",
                "memory.stat workingset_refault(_file) not provided (Linux 4.16+, split anon/file in 5.9)",
            )],
            meaning: "Without refault counts memlens cannot tell cache that is reused from cache that is thrashing.".into(),
            advice: "Use the pressure finding instead.".into(),
        });
    };
    let rate = now.saturating_sub(then) as f64 / s.seconds;
    let mut evidence = vec![Evidence::value(
        "file refaults per second",
        format!("{rate:.0}/s"),
        format!("Δ memory.stat {key} over {:.1} s", s.seconds),
    )];
    let st_now = r.cgroup.stat.as_ref();
    let st_then = s.earlier.cgroup.stat.as_ref();
    for k in ["pgscan", "pgsteal", "total_pgmajfault", "pgmajfault"] {
        if let (Some(a), Some(b)) = (
            st_now.and_then(|x| x.get(k)),
            st_then.and_then(|x| x.get(k)),
        ) {
            evidence.push(Evidence::value(
                format!("{k} per second"),
                format!("{:.0}/s", a.saturating_sub(b) as f64 / s.seconds),
                format!("Δ memory.stat {k}"),
            ));
        }
    }
    // ~1000 pages/s is 4 MiB/s of file data read back only because it was evicted.
    if rate < 1000.0 {
        return None;
    }
    Some(Finding {
        id: "thrashing",
        severity: Severity::Warn,
        title: format!("thrashing: {rate:.0} evicted file pages per second are read back in"),
        evidence,
        meaning: "A refault is a page evicted by reclaim and then needed again soon after (mm/workingset.c): the cgroup's working set does not fit, and it pays with I/O and stalls instead of an OOM kill.".into(),
        advice: "Raise the limit (or memory.high) to the working set, or shrink the data set the workload touches repeatedly.".into(),
    })
}
