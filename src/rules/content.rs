//! Rules about what the charge is made of: shmem and where it lives, dirty pages, kernel
//! memory, swap, a cgroup with charges but no processes, and the usual confusions between
//! process figures and cgroup figures (Documentation/admin-guide/cgroup-v1/memory.rst 2.2,
//! 5.2; cgroup-v2.rst "memory.stat").

use super::{Evidence, Finding, MIB, Sample, Severity, pct, usage_file};
use crate::model::Version;
use crate::render::bytes;
use crate::report::Report;

/// `shmem-held`: tmpfs / SysV / shared anonymous memory: cache that cannot be dropped.
pub fn shmem_held(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let s = r.breakdown.shmem.bytes?;
    let u = r.breakdown.usage.bytes.unwrap_or(0);
    if s < MIB || (s < 16 * MIB && pct(s, u) < 10.0) {
        return None;
    }
    let mut evidence = vec![Evidence::fig("shmem", &r.breakdown.shmem)];
    for m in r
        .tmpfs_mounts
        .iter()
        .filter(|m| m.used_bytes.is_some_and(|b| b > 0))
    {
        evidence.push(Evidence::size(
            format!(
                "{} {} used (seen by pid {})",
                m.fs_type,
                m.mount_point,
                m.pids
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            m.used_bytes,
            m.source.clone(),
        ));
        for (f, b) in &m.largest {
            evidence.push(Evidence::size(
                format!("  file {}/{}", m.mount_point.trim_end_matches('/'), f),
                Some(*b),
                "st_blocks × 512 (bytes allocated) of the largest files in the mount",
            ));
        }
    }
    for g in r.sysv_segments.iter().flatten() {
        evidence.push(Evidence::size(
            format!(
                "SysV shm segment shmid {} key {:#x} (creator pid {}, last pid {}, {} attached)",
                g.shmid, g.key, g.cpid, g.lpid, g.nattch
            ),
            Some(g.rss_bytes),
            "/proc/sysvipc/shm rss",
        ));
    }
    let located = evidence.len() > 1;
    // A lookup that was denied (unprivileged: other users' /proc/PID/mountinfo, statfs
    // through /proc/PID/root, /proc/sysvipc/shm) is not "not found" (issue 19 item 17).
    let denied: Vec<String> = r
        .shm_problems
        .iter()
        .filter(|p| p.contains("permission denied"))
        .cloned()
        .chain(
            r.tmpfs_mounts
                .iter()
                .filter(|m| m.used_bytes.is_none() && m.source.contains("permission denied"))
                .map(|m| m.source.clone()),
        )
        .collect();
    if !located {
        if let Some(first) = denied.first() {
            evidence.push(Evidence::value(
                "where",
                "lookup denied",
                format!(
                    "{} lookup(s) of the members' mounts and segments were denied, e.g. {first}",
                    denied.len()
                ),
            ));
        } else {
            evidence.push(Evidence::value(
                "where",
                "not found",
                "no tmpfs mount seen by the members has used bytes, and no /proc/sysvipc/shm segment belongs to them",
            ));
        }
    }
    Some(Finding {
        id: "shmem-held",
        severity: Severity::Warn,
        title: format!(
            "{} is shmem (tmpfs, /dev/shm, SysV shm): counted as cache, but not reclaimable without swap",
            bytes(Some(s))
        ),
        evidence,
        meaning: format!(
            "Files in tmpfs (/dev/shm, emptyDir medium: Memory, /run) and SysV/POSIX shared memory are charged to the cgroup that first touched them and shown in {} as page cache, yet reclaim cannot drop them: they stay until the file is deleted or the segment removed, even after every process exits.{}",
            if r.cgroup.version == Version::V1 { "total_cache" } else { "file" },
            if located {
                ""
            } else if !denied.is_empty() {
                " memlens was denied the lookup of where it lives (run as root, or with CAP_SYS_PTRACE, to see the members' mounts and segments)."
            } else {
                " The members' mounts and segments do not account for it: it may be a memfd or MAP_SHARED|MAP_ANONYMOUS mapping, a file left by a process that has exited, or a mount in another namespace."
            }
        ),
        advice: "Delete files no longer needed from the mounts listed (ipcrm -m SHMID for segments), give tmpfs/emptyDir a size limit, and count shmem in the memory limit.".into(),
    })
}

/// `dirty-pages`: page cache waiting to be written back is not reclaimable until written.
pub fn dirty_pages(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let d = r.breakdown.file_dirty.bytes?;
    let w = r.breakdown.file_writeback.bytes.unwrap_or(0);
    let t = d.checked_add(w)?;
    let big = t >= 64 * MIB
        || r.derived
            .limit
            .bytes
            .is_some_and(|l| t > 0 && pct(t, l) >= 10.0);
    if !big {
        return None;
    }
    Some(Finding {
        id: "dirty-pages",
        severity: Severity::Warn,
        title: format!("{} of page cache is dirty or under writeback: not reclaimable until written", bytes(Some(t))),
        evidence: vec![
            Evidence::fig("dirty", &r.breakdown.file_dirty),
            Evidence::fig("writeback", &r.breakdown.file_writeback),
            super::limit_evidence(r),
        ],
        meaning: format!(
            "Dirty pages must be written to disk before reclaim can free them, so near the limit the writer stalls on I/O.{}",
            if r.cgroup.version == Version::V1 {
                " On v1 writeback is not cgroup-aware: the global dirty limits (vm.dirty_ratio) apply and a limited cgroup can hit its limit with mostly dirty cache, waiting on writeback in reclaim."
            } else {
                " v2 throttles writers per cgroup against its share of the dirty limit (cgroup-v2.rst \"Writeback\")."
            }
        ),
        advice: "Write in smaller batches with fsync/sync_file_range, lower vm.dirty_bytes/dirty_background_bytes, or raise the limit for the write burst.".into(),
    })
}

/// `kernel-memory`: kernel memory ≥ 25% of usage, and which part.
pub fn kernel_memory(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let b = &r.breakdown;
    let k = b.kernel.bytes?;
    let u = b.usage.bytes?;
    if u < 8 * MIB || pct(k, u) < 25.0 {
        return None;
    }
    let mut parts: Vec<(&str, &crate::views::Figure)> = vec![
        ("reclaimable slab (dentries, inodes)", &b.slab_reclaimable),
        ("unreclaimable slab", &b.slab_unreclaimable),
        ("socket buffers", &b.sock),
        ("page tables", &b.pagetables),
        ("kernel stacks", &b.kernel_stack),
    ];
    parts.retain(|(_, f)| f.bytes.is_some());
    let mut evidence = vec![
        Evidence::fig("kernel", &b.kernel),
        Evidence::fig("usage", &b.usage),
    ];
    let biggest = parts
        .iter()
        .max_by_key(|(_, f)| f.bytes)
        .map(|(n, f)| (*n, f.bytes));
    for (n, f) in &parts {
        evidence.push(Evidence::fig(*n, f));
    }
    if let Some(t) = r.cgroup.usage.kmem_tcp {
        evidence.push(Evidence::size(
            "TCP buffers (not in usage on v1)",
            Some(t),
            "memory.kmem.tcp.usage_in_bytes",
        ));
    }
    let which = match biggest {
        Some((n, b)) => format!("; the largest part is {n} ({})", bytes(b)),
        None => {
            evidence.push(Evidence::value(
                "parts",
                "n/a",
                "v1 memory.stat does not split kernel memory (memory.kmem.slabinfo lists slab caches)",
            ));
            String::new()
        }
    };
    Some(Finding {
        id: "kernel-memory",
        severity: Severity::Warn,
        title: format!("kernel memory is {:.0}% of usage{which}", pct(k, u)),
        evidence,
        meaning: "Kernel memory (slab objects such as dentries and inodes, socket buffers, page tables, kernel stacks) is charged to the cgroup but is in no process's RSS. Reclaimable slab is freed under pressure; the rest only when the objects are released (files closed and deleted, sockets closed, processes exit).".into(),
        advice: "Many files created and deleted (dentries), many sockets or connections, or many processes/threads (page tables, stacks) drive it; count them in the limit.".into(),
    })
}

/// `swap-in-use`: part of the cgroup is in swap.
pub fn swap_in_use(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let s = r.breakdown.swap.bytes?;
    if s == 0 {
        return None;
    }
    let cg = &r.cgroup;
    let mut evidence = vec![Evidence::fig("swap", &r.breakdown.swap)];
    match cg.version {
        Version::V1 => {
            evidence.push(Evidence::value(
                "memory.swappiness",
                cg.limits.swappiness.map_or("n/a".into(), |v| v.to_string()),
                "memory.swappiness",
            ));
            evidence.push(Evidence::value(
                "memory.memsw.limit_in_bytes",
                match cg.limits.memsw {
                    Some(crate::model::Limit::Bytes(b)) => bytes(Some(b)),
                    Some(crate::model::Limit::Unlimited) => "unlimited".into(),
                    None => "n/a (swap accounting off)".into(),
                },
                "memory.memsw.limit_in_bytes (memory + swap)",
            ));
        }
        Version::V2 => {
            evidence.push(Evidence::value(
                "memory.swap.max",
                match cg.limits.swap_max {
                    Some(crate::model::Limit::Bytes(b)) => bytes(Some(b)),
                    Some(crate::model::Limit::Unlimited) => "max".into(),
                    None => "n/a".into(),
                },
                "memory.swap.max",
            ));
        }
    }
    Some(Finding {
        id: "swap-in-use",
        severity: Severity::Info,
        title: format!("{} of this cgroup's memory is in swap (not in usage)", bytes(Some(s))),
        evidence,
        meaning: "Anon and shmem pages that were swapped out are not in the usage figure, so usage understates the workload. Touching them again costs a major fault each. On v1 the memory limit does not bound swap; memory.memsw.limit_in_bytes bounds memory + swap, and memory.swappiness (0 = avoid swap) steers reclaim.".into(),
        advice: "Occasional swap of cold pages is fine; if pressure is high too, the workload needs more memory. To forbid swap: v1 memory.swappiness=0 or memsw = limit, v2 memory.swap.max=0.".into(),
    })
}

/// `charged-but-empty`: no process in the cgroup or below, yet memory is charged to it.
pub fn charged_but_empty(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    if r.cgroup.is_root() {
        return None;
    }
    // Outside the host's PID namespace every cgroup looks empty (proc::foreign_pid_namespace).
    if r.host.foreign_pid_namespace.is_some() {
        return None;
    }
    let pids = r.subtree_pids.as_ref()?;
    let u = r.breakdown.usage.bytes?;
    if !pids.is_empty() || u == 0 {
        return None;
    }
    let reclaim = match r.cgroup.version {
        Version::V1 => {
            "write 0 to its memory.force_empty before removing it (memlens zombies --reclaim PATH)"
        }
        Version::V2 => {
            "write its usage to memory.reclaim before removing it (memlens zombies --reclaim PATH)"
        }
    };
    Some(Finding {
        id: "charged-but-empty",
        severity: Severity::Info,
        title: format!(
            "no process here or below, but {} is still charged: it will become a dying cgroup when removed",
            bytes(Some(u))
        ),
        evidence: vec![
            Evidence::value(
                "processes in the subtree",
                "0",
                "cgroup.procs of the cgroup and every descendant",
            ),
            Evidence::fig("usage", &r.breakdown.usage),
            Evidence::fig("file (page cache)", &r.breakdown.file),
            Evidence::fig("shmem", &r.breakdown.shmem),
        ],
        meaning: format!(
            "Pages stay charged to the cgroup that first touched them after its processes exit (page cache of files they wrote or read, tmpfs files). {} Removing the cgroup then leaves a dying (zombie) memcg that keeps its kernel structures until the last page is reclaimed, which on a busy host can take very long.",
            if usage_file(r) == "memory.usage_in_bytes" {
                "v1 shows it in memory.usage_in_bytes."
            } else {
                "v2 shows it in memory.current."
            }
        ),
        advice: format!(
            "If the cache is not needed, {reclaim}; otherwise it is harmless until memory is short. `memlens zombies` lists such cgroups node-wide."
        ),
    })
}

/// `process-sum-mismatch`: the processes' RSS sum is far from the cgroup's usage; says which
/// reconciliation line explains most of it.
pub fn process_sum_mismatch(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    // A partial sum (some processes unreadable) would overstate the difference.
    if r.processes.is_empty() || r.sums.unreadable > 0 {
        return None;
    }
    let rss = r.sums.rss_bytes?;
    let u = r.breakdown.usage.bytes?;
    let diff = rss.abs_diff(u);
    if diff < 16 * MIB || pct(diff, u.max(rss)) < 20.0 {
        return None;
    }
    let mut lines: Vec<&crate::views::processes::Reconcile> = r
        .reconcile
        .iter()
        .filter(|x| {
            x.processes_bytes.is_some()
                && x.cgroup_bytes.is_some()
                && !x.what.starts_with("Σ RSS vs Σ PSS")
        })
        .collect();
    lines.sort_by_key(|x| {
        std::cmp::Reverse(
            x.processes_bytes
                .unwrap_or(0)
                .abs_diff(x.cgroup_bytes.unwrap_or(0)),
        )
    });
    let top = lines.first()?;
    let mut evidence = vec![
        Evidence::size(
            format!("Σ VmRSS of {} processes", r.sums.count),
            Some(rss),
            "Σ /proc/PID/status VmRSS (what top/ps add up to)",
        ),
        Evidence::fig("cgroup usage", &r.breakdown.usage),
    ];
    for x in lines.iter().take(3) {
        evidence.push(Evidence::value(
            x.what.clone(),
            format!(
                "processes {} / cgroup {}",
                bytes(x.processes_bytes),
                bytes(x.cgroup_bytes)
            ),
            "memlens reconcile (show: WHY THE PROCESSES DO NOT ADD UP)",
        ));
    }
    Some(Finding {
        id: "process-sum-mismatch",
        severity: Severity::Info,
        title: format!(
            "the processes' RSS adds up to {} but the cgroup is charged {}: mostly \"{}\"",
            bytes(Some(rss)),
            bytes(Some(u)),
            top.what
        ),
        evidence,
        meaning: format!("The largest difference: {}.", top.why),
        advice: "Compare like with like: use the cgroup's figures for the container (memlens show), PSS for a fair per-process share (memlens ps --sort pss).".into(),
    })
}

/// `rss-above-working-set`: top/ps RES adds up to far more than the working set that docker
/// stats, kubectl top and the dashboards show. Usually mapped files: RssFile counts every
/// mapped page once per process, while the working set excludes inactive_file and a page
/// charged to another cgroup (first touch) is not in this one's counters at all.
pub fn rss_above_working_set(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    if r.processes.is_empty() || r.sums.unreadable > 0 {
        return None;
    }
    let rss = r.sums.rss_bytes?;
    let ws_fig = r.tools.get("working_set")?;
    let ws = ws_fig.bytes?;
    if rss.saturating_sub(ws) < 32 * MIB || rss < ws.saturating_mul(2) {
        return None;
    }
    let ratio = rss as f64 / ws.max(1) as f64;
    let file = r.sums.rss_file_bytes;
    let mostly_file = file.is_some_and(|f| f * 2 >= rss);
    Some(Finding {
        id: "rss-above-working-set",
        severity: Severity::Info,
        title: format!(
            "top/ps RES adds up to {} ({ratio:.1}× the {} working set docker stats and kubectl top show){}",
            bytes(Some(rss)),
            bytes(Some(ws)),
            if mostly_file { ": mostly mapped files" } else { "" }
        ),
        evidence: vec![
            Evidence::size(
                format!("Σ VmRSS of {} processes", r.sums.count),
                Some(rss),
                "Σ /proc/PID/status VmRSS",
            ),
            Evidence::size("Σ RssFile", file, "Σ /proc/PID/status RssFile"),
            Evidence::size("Σ RssShmem", r.sums.rss_shmem_bytes, "Σ /proc/PID/status RssShmem"),
            Evidence::fig("working set", ws_fig),
            Evidence::fig("inactive_file", &r.breakdown.inactive_file),
            Evidence::fig("file_mapped", &r.breakdown.file_mapped),
        ],
        meaning: "RSS counts every page a process maps, once per process: a file mapped by several processes counts once in each, and a mapped page charged to another cgroup (which touched it first) counts here too. The working set is this cgroup's usage minus its inactive page cache, so mapped files read once (on the inactive list) or charged elsewhere are not in it. The kernel reclaims such clean file pages before an OOM kill.".into(),
        advice: "Size the container from the working set and what cannot be reclaimed (memlens show), not from the RSS sum; PSS (memlens ps --sort pss) divides shared mappings fairly.".into(),
    })
}

/// `virt-not-rss`: a process with a large virtual size it has not touched (seed 002).
pub fn virt_not_rss(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let p = r
        .processes
        .iter()
        .filter_map(|p| Some((p, p.vm_size_bytes?, p.rss_bytes?)))
        .filter(|(_, v, rss)| v.saturating_sub(*rss) >= 256 * MIB && *v >= rss.saturating_mul(4))
        .max_by_key(|(_, v, rss)| v - rss)?;
    let (p, v, rss) = p;
    Some(Finding {
        id: "virt-not-rss",
        severity: Severity::Info,
        title: format!(
            "not a problem: pid {} ({}) has {} virtual but only {} resident",
            p.pid,
            p.comm.as_deref().unwrap_or("?"),
            bytes(Some(v)),
            bytes(Some(rss))
        ),
        evidence: vec![
            Evidence::size(format!("pid {} VmSize", p.pid), Some(v), format!("/proc/{}/status VmSize", p.pid)),
            Evidence::size(format!("pid {} VmRSS", p.pid), Some(rss), format!("/proc/{}/status VmRSS", p.pid)),
        ],
        meaning: "VmSize (top's VIRT) counts every mapping, including address space reserved and never touched (thread stacks, allocator arenas, JIT heaps, mmap'ed files). Only touched pages are charged to the cgroup or count against a limit.".into(),
        advice: "Ignore VIRT for sizing; use RSS/PSS per process and the cgroup's usage for the container.".into(),
    })
}
