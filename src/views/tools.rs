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
    /// What `free` run inside the container prints.
    pub free: Free,
}

/// What `free` (procps-ng 4) prints inside a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Free {
    /// `total` = MemTotal.
    pub total_bytes: Option<u64>,
    /// `used` = MemTotal − MemAvailable (procps-ng ≥ 4.0.1; older: total − free − buff/cache).
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
        let rss_sum: Option<u64> = if procs.is_empty() {
            None
        } else {
            super::sum_opt(procs.iter().map(|p| p.rss_bytes))
        };
        push(
            "process_rss_sum",
            "top / ps RES, summed over the member processes",
            if procs.is_empty() {
                Figure::unavailable("no member processes read")
            } else {
                Figure::new(
                    rss_sum,
                    format!("Σ /proc/PID/status VmRSS over {} processes", procs.len()),
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
        };
        Tools {
            figures,
            docker_percent,
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
