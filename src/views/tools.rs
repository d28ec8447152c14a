//! What every other tool would show for the same sample, with its formula and origin, so the
//! user sees why the numbers disagree. The formulas are those of the tools' own sources
//! (shared/reference/what-other-tools-report.md gathers them).

use super::Figure;
use super::breakdown::Breakdown;
use super::derived::EffectiveLimit;
use crate::model::{Cgroup, Host, Process, Version};
use serde::Serialize;

/// One tool's figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolFigure {
    /// Stable key (`docker_stats`, `working_set`, ...).
    pub key: &'static str,
    /// Which tool, which column/metric.
    pub tool: &'static str,
    /// The value and its formula.
    pub figure: Figure,
    /// Where the formula comes from.
    pub origin: &'static str,
}

/// Everything other tools would show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tools {
    /// The figures in display order.
    pub figures: Vec<ToolFigure>,
    /// `docker stats` MEM % (its usage over its limit, the limit capped at host RAM).
    pub docker_percent: Option<f64>,
    /// `podman stats` MEM % (usage, page cache included, over the limit capped at host RAM).
    pub podman_percent: Option<f64>,
    /// What `free` run inside the container prints.
    pub free: Free,
}

/// `podman stats`' size text: go-units `HumanSizeWithPrecision(size, 4)`, decimal (SI)
/// units (`22.32MB`), where docker prints binary ones (`21.29MiB`).
pub fn si_size(b: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", g4(v), UNITS.get(i).copied().unwrap_or("B"))
}

/// C's `%.4g` (Go's `%.4g`) for 0 ≤ v < 1000, where it never uses the exponent form.
fn g4(v: f64) -> String {
    if v <= 0.0 {
        return "0".into();
    }
    let digits = (3 - v.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// What `free` (procps-ng 4) prints inside a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Free {
    /// `total` = MemTotal.
    pub total_bytes: Option<u64>,
    /// `used` = MemTotal − MemAvailable (procps-ng ≥ 4.0.1; the others: `used_variants`).
    pub used_bytes: Option<u64>,
    /// `free` = MemFree.
    pub free_bytes: Option<u64>,
    /// `shared` = Shmem.
    pub shared_bytes: Option<u64>,
    /// `buff/cache` = Buffers + Cached + SReclaimable.
    pub buff_cache_bytes: Option<u64>,
    /// `available` = MemAvailable.
    pub available_bytes: Option<u64>,
    /// Whose memory this is.
    pub note: String,
    /// `used` as each common `free` computes it (they differ by the whole page cache minus
    /// what MemAvailable counts reclaimable: hundreds of MiB on a busy host).
    pub used_variants: Vec<FreeUsed>,
    /// What `free` prints where lxcfs serves the container's /proc/meminfo (LXD, and
    /// Kubernetes/docker with lxcfs mounted): the figures above are the plain case.
    pub lxcfs: FreeLxcfs,
}

/// `free` over the /proc/meminfo lxcfs synthesises from the container's own cgroup files
/// (lxcfs src/proc_fuse.c `proc_meminfo_read`, v1 and v2 alike): MemTotal = the smallest
/// limit up the tree capped at the host's MemTotal; MemFree = MemTotal − usage; MemAvailable
/// = MemFree + page cache; Cached = page cache (v2 memory.stat `file`, v1 `total_cache`);
/// Buffers and SReclaimable 0; Shmem = the cgroup's shmem. With Buffers and SReclaimable 0,
/// every common `free` prints the same `used`: usage − page cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreeLxcfs {
    /// `total` = min(effective limit, host MemTotal).
    pub total_bytes: Option<u64>,
    /// `used` = total − available = usage − page cache (procps-ng 4 and 3.3, BusyBox).
    pub used_bytes: Option<u64>,
    /// `free` = total − usage.
    pub free_bytes: Option<u64>,
    /// `shared` = the cgroup's shmem.
    pub shared_bytes: Option<u64>,
    /// `buff/cache` = the cgroup's page cache.
    pub buff_cache_bytes: Option<u64>,
    /// `available` = total − usage + page cache.
    pub available_bytes: Option<u64>,
    /// The formulas, with the files they come from.
    pub formula: String,
}

impl FreeLxcfs {
    /// From the cgroup's usage and memory.stat, its effective limit and the host's MemTotal.
    pub fn of(cg: &Cgroup, limit: Option<u64>, host_total: Option<u64>) -> Self {
        let stat = |k: &str| cg.stat.as_ref().and_then(|s| s.get(k));
        let (cache, shmem, usage_file, cache_key) = match cg.version {
            Version::V1 => (
                stat("total_cache"),
                stat("total_shmem"),
                "memory.usage_in_bytes",
                "total_cache",
            ),
            Version::V2 => (stat("file"), stat("shmem"), "memory.current", "file"),
        };
        let usage = cg.usage.current;
        // lxcfs: no limit (or an unlimited one) means the host's total.
        let total = match (limit, host_total) {
            (Some(l), Some(h)) => Some(l.min(h)),
            (None, h) => h,
            (Some(l), None) => Some(l),
        };
        let free = total.zip(usage).map(|(t, u)| t.saturating_sub(u));
        let available = free.zip(cache).map(|(f, c)| f + c);
        FreeLxcfs {
            total_bytes: total,
            used_bytes: total.zip(available).map(|(t, a)| t.saturating_sub(a)),
            free_bytes: free,
            shared_bytes: shmem,
            buff_cache_bytes: cache,
            available_bytes: available,
            formula: format!(
                "total = min(smallest limit up the tree, host MemTotal); free = total − {usage_file}; buff/cache = memory.stat {cache_key}; available = free + buff/cache; used = total − available (lxcfs proc_meminfo_read)"
            ),
        }
    }
}

/// One `free` implementation's `used`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreeUsed {
    /// Which `free`.
    pub tool: &'static str,
    /// Its `used` column.
    pub used_bytes: Option<u64>,
    /// Its formula over /proc/meminfo.
    pub formula: &'static str,
}

/// `used` of the common `free` variants from /proc/meminfo. procps-ng 4.0.1+ (Debian 12,
/// Ubuntu 23.04+; checked against 4.0.2 here) prints MemTotal − MemAvailable; procps-ng
/// 3.3.10–4.0.0 and BusyBox (checked against 1.35) print MemTotal − MemFree − buff/cache with
/// buff/cache = Buffers + Cached + SReclaimable.
pub fn free_used_variants(host: &Host) -> Vec<FreeUsed> {
    let m = |k: &str| host.mem(k);
    let new = match (m("MemTotal"), m("MemAvailable")) {
        (Some(t), Some(a)) => Some(t.saturating_sub(a)),
        _ => None,
    };
    let old = match (
        m("MemTotal"),
        m("MemFree"),
        m("Buffers"),
        m("Cached"),
        m("SReclaimable"),
    ) {
        (Some(t), Some(f), Some(b), Some(c), Some(s)) => Some(t.saturating_sub(f + b + c + s)),
        _ => None,
    };
    vec![
        FreeUsed {
            tool: "procps-ng 4.0.1+ free",
            used_bytes: new,
            formula: "MemTotal − MemAvailable",
        },
        FreeUsed {
            tool: "procps-ng 3.3.10–4.0.0 free, BusyBox free",
            used_bytes: old,
            formula: "MemTotal − MemFree − (Buffers + Cached + SReclaimable)",
        },
    ]
}

impl Tools {
    /// Computes every tool's figure. `root` is the hierarchy's root cgroup (for the node-level
    /// kubelet signal), `procs` the member processes.
    pub fn of(
        cg: &Cgroup,
        b: &Breakdown,
        limit: &EffectiveLimit,
        root: Option<&Cgroup>,
        host: &Host,
        procs: &[Process],
    ) -> Self {
        let v1 = cg.version == Version::V1;
        let usage = b.usage.bytes;
        let stat = |k: &str| cg.stat.as_ref().and_then(|s| s.get(k));
        let mut figures = Vec::new();
        let mut push = |key, tool, figure, origin| {
            figures.push(ToolFigure {
                key,
                tool,
                figure,
                origin,
            })
        };

        // docker CLI calculateMemUsageUnixNoCache (20.10+): total_inactive_file if present and
        // below usage, else inactive_file if below usage, else usage.
        let docker = usage.map(|u| {
            if let Some(v) = stat("total_inactive_file").filter(|v| *v < u) {
                (u - v, "usage − total_inactive_file")
            } else if let Some(v) = stat("inactive_file").filter(|v| *v < u) {
                (u - v, "usage − inactive_file")
            } else {
                (u, "usage (inactive_file not below usage)")
            }
        });
        let host_total = host.mem("MemTotal");
        let docker_limit = match (limit.bytes, host_total) {
            (Some(l), Some(t)) => Some(l.min(t)),
            (Some(l), None) => Some(l),
            (None, t) => t,
        };
        let docker_percent = match (docker, docker_limit) {
            (Some((d, _)), Some(l)) if l > 0 => Some(d as f64 * 100.0 / l as f64),
            _ => None,
        };
        let usage_file = if v1 {
            "memory.usage_in_bytes"
        } else if cg.usage.current.is_none() && cg.is_root() {
            "the v2 root has no memory.current: memory.stat anon + file"
        } else {
            "memory.current"
        };
        push(
            "docker_stats",
            "docker stats MEM USAGE (20.10+)",
            match docker {
                Some((d, f)) => Figure::new(Some(d), format!("{f} ({usage_file}, memory.stat)")),
                None => Figure::unavailable("usage unavailable"),
            },
            "docker/cli cli/command/container/stats_helpers.go calculateMemUsageUnixNoCache",
        );
        push(
            "docker_stats_17",
            "docker stats MEM USAGE (17.06–19.03)",
            match (usage, stat("cache")) {
                (Some(u), Some(c)) if v1 => {
                    Figure::new(Some(u.saturating_sub(c)), "usage − cache (local cache key)")
                }
                (Some(u), _) => {
                    Figure::new(Some(u), "usage (no `cache` key on v2: nothing subtracted)")
                }
                _ => Figure::unavailable("usage unavailable"),
            },
            "docker/cli 17.06–19.03 stats_helpers.go",
        );
        push(
            "docker_stats_limit",
            "docker stats LIMIT",
            Figure::new(
                docker_limit,
                "effective limit, capped at host MemTotal (moby daemon stats: machineMemory)",
            ),
            "moby daemon/stats_unix.go",
        );
        // podman 4.x (libpod/stats_linux.go): MemUsage is the cgroup's usage as read, page
        // cache included (v1 memory.usage_in_bytes, v2 memory.current), over the limit
        // capped at the host's RAM (getMemLimit), printed in SI units.
        let podman_percent = match (usage, docker_limit) {
            (Some(u), Some(l)) if l > 0 => Some(u as f64 * 100.0 / l as f64),
            _ => None,
        };
        push(
            "podman_stats",
            "podman stats MEM USAGE (4.x)",
            match usage {
                Some(u) => Figure::new(
                    Some(u),
                    format!(
                        "{usage_file}, page cache included; podman prints {} (SI units)",
                        si_size(u)
                    ),
                ),
                None => Figure::unavailable("usage unavailable"),
            },
            "containers/podman libpod/stats_linux.go (MemUsage, getMemLimit)",
        );
        let inactive = if v1 {
            ("total_inactive_file", stat("total_inactive_file"))
        } else {
            ("inactive_file", stat("inactive_file"))
        };
        let ws = match (usage, inactive.1) {
            (Some(u), Some(i)) => Figure::new(
                Some(u.saturating_sub(i)),
                format!("{usage_file} − {} (clamped at 0)", inactive.0),
            ),
            _ => Figure::unavailable(format!("{usage_file} or {} unavailable", inactive.0)),
        };
        push(
            "working_set",
            "kubectl top / kubelet / cAdvisor container_memory_working_set_bytes",
            ws.clone(),
            "cadvisor lib/container/libcontainer/handler.go setMemoryStats; kubelet pkg/kubelet/stats/helper.go",
        );
        push(
            "kubelet_available",
            "kubelet summary API AvailableBytes",
            match (limit.bytes, ws.bytes) {
                (Some(l), Some(w)) => Figure::new(Some(l.saturating_sub(w)), "limit − working set"),
                _ => Figure::unavailable("only reported when a limit is set"),
            },
            "kubelet pkg/kubelet/stats/helper.go",
        );
        let cad = |key: &'static str, tool: &'static str, v1k: &str, v2k: &str| {
            if v1 {
                let total = format!("total_{v1k}");
                match stat(&total)
                    .map(|v| (v, total.clone()))
                    .or_else(|| stat(v1k).map(|v| (v, v1k.to_string())))
                {
                    Some((v, k)) => (key, tool, Figure::new(Some(v), format!("memory.stat {k}"))),
                    None => (
                        key,
                        tool,
                        Figure::unavailable(format!("memory.stat has no {v1k}")),
                    ),
                }
            } else {
                match stat(v2k) {
                    Some(v) => (
                        key,
                        tool,
                        Figure::new(Some(v), format!("memory.stat {v2k}")),
                    ),
                    None => (
                        key,
                        tool,
                        Figure::unavailable(format!("memory.stat has no {v2k}")),
                    ),
                }
            }
        };
        const CAD: &str = "cadvisor lib/container/libcontainer/handler.go setMemoryStats";
        for (k, t, f) in [
            cad(
                "cadvisor_rss",
                "cAdvisor container_memory_rss",
                "rss",
                "anon",
            ),
            cad(
                "cadvisor_cache",
                "cAdvisor container_memory_cache",
                "cache",
                "file",
            ),
            cad(
                "cadvisor_mapped_file",
                "cAdvisor container_memory_mapped_file",
                "mapped_file",
                "file_mapped",
            ),
        ] {
            push(k, t, f, CAD);
        }
        push(
            "cadvisor_swap",
            "cAdvisor container_memory_swap",
            if v1 {
                cad("", "", "swap", "").2
            } else {
                Figure::new(cg.usage.swap, "memory.swap.current")
            },
            CAD,
        );
        push(
            "cadvisor_usage",
            "cAdvisor container_memory_usage_bytes",
            b.usage.clone(),
            CAD,
        );
        push(
            "cadvisor_failcnt",
            "cAdvisor container_memory_failcnt",
            if v1 {
                Figure::count(cg.events.failcnt, "memory.failcnt (a count, not bytes)")
            } else {
                Figure::count(
                    Some(0),
                    "always 0 on v2 (no failcnt; see memory.events max)",
                )
            },
            CAD,
        );
        push(
            "cadvisor_max_usage",
            "cAdvisor container_memory_max_usage_bytes",
            if v1 {
                Figure::new(cg.usage.peak, "memory.max_usage_in_bytes")
            } else {
                match cg.usage.peak {
                    Some(p) => Figure::new(Some(p), "memory.peak"),
                    None if cg.is_root() => Figure::new(
                        Some(0),
                        "0: the v2 root cgroup has no memory.peak (on any kernel)",
                    ),
                    None => Figure::new(Some(0), "0: memory.peak needs kernel 5.19+"),
                }
            },
            CAD,
        );
        push(
            "cadvisor_kernel",
            "cAdvisor container_memory_kernel_usage",
            if v1 {
                Figure::new(cg.usage.kmem, "memory.kmem.usage_in_bytes")
            } else {
                Figure::new(Some(0), "always 0 on v2")
            },
            CAD,
        );
        push(
            "systemd_cgtop",
            "systemd-cgtop Memory",
            Figure::new(usage, format!("{usage_file} (cache included, swap not)")),
            "systemd src/cgtop/cgtop.c",
        );
        let sums = super::processes::ProcessSums::of(procs);
        push(
            "process_rss_sum",
            "top / ps RES, summed over the member processes",
            if cg.procs.is_none() {
                Figure::unavailable("cgroup.procs unreadable: the member processes are unknown")
            } else {
                Figure::new(
                    sums.rss_bytes,
                    format!(
                        "Σ /proc/PID/status VmRSS over {} processes{}{}",
                        procs.len(),
                        if sums.kernel_threads > 0 {
                            format!(" ({} kernel threads count 0)", sums.kernel_threads)
                        } else {
                            String::new()
                        },
                        if sums.unreadable > 0 {
                            format!(" ({} unreadable, left out)", sums.unreadable)
                        } else {
                            String::new()
                        }
                    ),
                )
            },
            "procps top/ps: RES = VmRSS = RssAnon + RssFile + RssShmem",
        );
        push(
            "node_memory_available",
            "kubelet eviction signal memory.available (node)",
            node_available(root, host),
            "kubelet pkg/kubelet/eviction/helpers.go; documented script MemTotal − (root usage − total_inactive_file)",
        );

        let free = Free {
            total_bytes: host_total,
            used_bytes: match (host_total, host.mem("MemAvailable")) {
                (Some(t), Some(a)) => Some(t.saturating_sub(a)),
                _ => None,
            },
            free_bytes: host.mem("MemFree"),
            shared_bytes: host.mem("Shmem"),
            buff_cache_bytes: match (
                host.mem("Buffers"),
                host.mem("Cached"),
                host.mem("SReclaimable"),
            ) {
                (Some(b), Some(c), Some(s)) => super::add(&[b, c, s]),
                _ => None,
            },
            available_bytes: host.mem("MemAvailable"),
            note: if host.lxcfs_meminfo {
                "lxcfs is mounted over /proc/meminfo here: free shows lxcfs's per-container figures"
                    .into()
            } else {
                "the HOST's /proc/meminfo: /proc is not namespaced for memory, so free and top inside the container show the node, not the container (unless lxcfs is mounted)".into()
            },
            used_variants: free_used_variants(host),
            lxcfs: FreeLxcfs::of(cg, limit.bytes, host_total),
        };
        Tools {
            figures,
            docker_percent,
            podman_percent,
            free,
        }
    }

    /// A figure by key.
    pub fn get(&self, key: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.key == key)
            .map(|f| &f.figure)
    }
}

/// kubelet's node `memory.available` = MemTotal − node working set, where the node working set
/// is the root cgroup's usage − inactive_file (v2 root: anon + file − inactive_file, since the
/// root has no memory.current and cAdvisor uses anon + file).
pub fn node_available(root: Option<&Cgroup>, host: &Host) -> Figure {
    if let Some(why) = &host.container_scope {
        return Figure::unavailable(format!(
            "n/a: {why}; the node's figure needs the host's hierarchy (--host-root)"
        ));
    }
    let Some(total) = host.mem("MemTotal") else {
        return Figure::unavailable("/proc/meminfo MemTotal unavailable");
    };
    let Some(root) = root else {
        return Figure::unavailable("root cgroup unreadable");
    };
    let stat = |k: &str| root.stat.as_ref().and_then(|s| s.get(k));
    match root.version {
        Version::V1 => match (root.usage.current, stat("total_inactive_file")) {
            (Some(u), Some(i)) => Figure::new(
                Some(total.saturating_sub(u.saturating_sub(i))),
                "MemTotal − (root memory.usage_in_bytes − total_inactive_file)",
            ),
            _ => {
                Figure::unavailable("root memory.usage_in_bytes or total_inactive_file unavailable")
            }
        },
        Version::V2 => match (stat("anon"), stat("file"), stat("inactive_file")) {
            (Some(a), Some(f), Some(i)) => Figure::new(
                Some(total.saturating_sub(a.saturating_add(f).saturating_sub(i))),
                "MemTotal − (root anon + file − inactive_file)",
            ),
            _ => Figure::unavailable("root memory.stat unavailable"),
        },
    }
}
