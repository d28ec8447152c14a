//! Reading one cgroup's memory files into a [`Cgroup`].
//!
//! Each file is read on its own: a file the kernel does not have leaves its counter `None`
//! (unavailable), a file that exists but cannot be read or parsed adds a line to
//! `Cgroup::problems`, and the rest of the cgroup is still read.

use super::parse;
use crate::model::{
    Cgroup, Events, Hierarchy, HugetlbSize, KeyValues, Limit, Limits, Usage, Version,
};
use crate::sys::{DirFiles, ReadError, Root};
use std::path::{Path, PathBuf};

/// How much of a cgroup to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The files the node overview needs (usage, limit, stat, kernel/swap, OOM kills): kept
    /// small because the overview reads every cgroup on the node.
    Overview,
    /// The overview's files plus what the exporter's extra metrics need: v1 memory.failcnt
    /// (cAdvisor's container_memory_failcnt), v2 memory.pressure (per-cgroup PSI).
    Metrics,
    /// Every memory file (`show`, `capture`).
    Full,
    /// Every memory file except the member list and the children (`run` samples its own
    /// leaf memcg 20 times a second: cgroup.procs and a readdir per sample would be wasted).
    Sample,
}

/// The files `Level::Metrics` reads, per version (the serve benchmark's floor).
pub fn metrics_files(v: Version) -> &'static [&'static str] {
    match v {
        Version::V1 => &[
            "memory.usage_in_bytes",
            "memory.limit_in_bytes",
            "memory.stat",
            "memory.kmem.usage_in_bytes",
            "memory.oom_control",
            "memory.failcnt",
        ],
        Version::V2 => &[
            "memory.current",
            "memory.max",
            "memory.stat",
            "memory.swap.current",
            "memory.events",
            "memory.pressure",
        ],
    }
}

/// The files `Level::Overview` reads, per version. The overview benchmark's floor reads
/// exactly these.
pub fn overview_files(v: Version) -> &'static [&'static str] {
    match v {
        Version::V1 => &[
            "memory.usage_in_bytes",
            "memory.limit_in_bytes",
            "memory.stat",
            "memory.kmem.usage_in_bytes",
            "memory.oom_control",
        ],
        Version::V2 => &[
            "memory.current",
            "memory.max",
            "memory.stat",
            "memory.swap.current",
            "memory.events",
        ],
    }
}

/// The system path of a cgroup given its path within the hierarchy.
pub fn fs_path(h: &Hierarchy, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        h.mount_point.clone()
    } else {
        h.mount_point.join(rel)
    }
}

struct Reader<'a> {
    files: DirFiles<'a>,
    dir: PathBuf,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn text(&mut self, name: &str) -> Option<String> {
        match self.files.read(name) {
            Ok(t) => Some(t),
            Err(ReadError::Missing { .. }) => None,
            Err(e) => {
                self.problems.push(e.to_string());
                None
            }
        }
    }

    fn parsed<T>(&mut self, name: &str, f: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let t = self.text(name)?;
        match f(&t) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.problems
                    .push(ReadError::parse(&self.dir.join(name), reason).to_string());
                None
            }
        }
    }

    fn number(&mut self, name: &str) -> Option<u64> {
        self.parsed(name, parse::counter)
    }

    fn limit(&mut self, name: &str) -> Option<Limit> {
        self.parsed(name, parse::limit)
    }

    fn keyed(&mut self, name: &str) -> Option<KeyValues> {
        let t = self.text(name)?;
        let path = self.dir.join(name);
        if t.trim().is_empty() {
            // The kernel always prints its keys here: an empty file is damage (a cut
            // capture, a failed read), not "this kernel has none of them".
            self.problems.push(
                ReadError::parse(&path, "empty file (the kernel always prints its keys here)")
                    .to_string(),
            );
            return None;
        }
        let (kv, bad) = parse::flat_keyed(&t);
        for b in bad {
            self.problems.push(ReadError::parse(&path, b).to_string());
        }
        if kv.0.is_empty() && !t.trim().is_empty() {
            return None;
        }
        Some(kv)
    }
}

/// Reads the cgroup at `path` (within hierarchy `h`). Fails only when the cgroup itself does
/// not exist (or vanished while being read); every other failure is a problem in the result.
pub fn read_cgroup(
    root: &Root,
    h: &Hierarchy,
    path: &str,
    level: Level,
) -> Result<Cgroup, ReadError> {
    let dir = fs_path(h, path);
    let full = matches!(level, Level::Full | Level::Sample);
    let members = level == Level::Full;
    let metrics = level == Level::Metrics;
    // Listing the children costs a readdir; the overview walk lists them already.
    let children = if members {
        root.subdirs(&dir)?
    } else {
        Vec::new()
    };
    let mut r = Reader {
        files: root.open_dir(&dir),
        dir: dir.clone(),
        problems: Vec::new(),
    };
    let mut limits = Limits::default();
    let mut usage = Usage::default();
    let mut events = Events::default();
    let stat = r.keyed("memory.stat");
    let (mut pressure, mut cgroup_stat, mut procs) = (None, None, None);
    let mut hugetlb = Vec::new();
    match h.version {
        Version::V1 => {
            usage.current = r.number("memory.usage_in_bytes");
            limits.max = r.limit("memory.limit_in_bytes");
            usage.kmem = r.number("memory.kmem.usage_in_bytes");
            events.oom_control = r.keyed("memory.oom_control");
            if full {
                usage.peak = r.number("memory.max_usage_in_bytes");
                usage.memsw = r.number("memory.memsw.usage_in_bytes");
                usage.memsw_peak = r.number("memory.memsw.max_usage_in_bytes");
                usage.kmem_tcp = r.number("memory.kmem.tcp.usage_in_bytes");
                limits.soft = r.limit("memory.soft_limit_in_bytes");
                limits.memsw = r.limit("memory.memsw.limit_in_bytes");
                limits.kmem = r.limit("memory.kmem.limit_in_bytes");
                limits.swappiness = r.number("memory.swappiness");
                limits.use_hierarchy = r.number("memory.use_hierarchy").map(|v| v == 1);
                events.failcnt = r.number("memory.failcnt");
                events.memsw_failcnt = r.number("memory.memsw.failcnt");
            } else if metrics {
                events.failcnt = r.number("memory.failcnt");
                // cAdvisor's container_memory_max_usage_bytes.
                usage.peak = r.number("memory.max_usage_in_bytes");
            }
            if let Some(s) = &stat {
                let lim = |k: &str| {
                    s.get(k)
                        .map(|v| parse::limit(&v.to_string()).unwrap_or(Limit::Bytes(v)))
                };
                limits.hierarchical = lim("hierarchical_memory_limit");
                limits.hierarchical_memsw = lim("hierarchical_memsw_limit");
            }
        }
        Version::V2 => {
            usage.current = r.number("memory.current");
            limits.max = r.limit("memory.max");
            usage.swap = r.number("memory.swap.current");
            events.events = r.keyed("memory.events");
            if full {
                usage.peak = r.number("memory.peak");
                usage.swap_peak = r.number("memory.swap.peak");
                limits.high = r.limit("memory.high");
                limits.low = r.number("memory.low");
                limits.min = r.number("memory.min");
                limits.swap_max = r.limit("memory.swap.max");
                usage.zswap = r.number("memory.zswap.current");
                limits.zswap_max = r.limit("memory.zswap.max");
                limits.zswap_writeback = r.number("memory.zswap.writeback").map(|v| v == 1);
                hugetlb = hugetlb_sizes(root)
                    .into_iter()
                    .filter_map(|size| {
                        let current = r.number(&format!("hugetlb.{size}.current"));
                        let max = r.limit(&format!("hugetlb.{size}.max"));
                        let events_max = r
                            .keyed(&format!("hugetlb.{size}.events"))
                            .and_then(|e| e.get("max"));
                        (current.is_some() || max.is_some()).then_some(HugetlbSize {
                            size,
                            current,
                            max,
                            events_max,
                        })
                    })
                    .collect();
                limits.oom_group = r.number("memory.oom.group").map(|v| v == 1);
                events.events_local = r.keyed("memory.events.local");
                events.swap_events = r.keyed("memory.swap.events");
                pressure = r.parsed("memory.pressure", parse::pressure);
                cgroup_stat = r.keyed("cgroup.stat");
            } else if metrics {
                pressure = r.parsed("memory.pressure", parse::pressure);
                // cAdvisor's container_memory_max_usage_bytes (5.19+).
                usage.peak = r.number("memory.peak");
            }
        }
    }
    if members {
        procs = r.parsed("cgroup.procs", parse::pids);
    }
    // A cgroup removed while we read it: every file went missing. (At overview level the
    // first file's absence is enough, which spares a stat per cgroup.)
    let vanished = if members {
        !root.exists(&dir)
    } else {
        stat.is_none() && usage.current.is_none() && !root.exists(&dir)
    };
    if vanished {
        return Err(ReadError::Missing {
            path: dir.display().to_string(),
        });
    }
    Ok(Cgroup {
        path: normalise(path),
        fs_path: dir,
        version: h.version,
        limits,
        usage,
        stat,
        hugetlb,
        events,
        pressure,
        cgroup_stat,
        procs,
        children,
        problems: r.problems,
    })
}

/// memory.stat keys that are amounts of memory (v1 with or without `total_`), as opposed to
/// event counters such as pgfault that may legitimately grow large.
const SIZE_KEYS: &[&str] = &[
    "anon",
    "file",
    "kernel",
    "kernel_stack",
    "pagetables",
    "percpu",
    "sock",
    "vmalloc",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "swapcached",
    "anon_thp",
    "file_thp",
    "shmem_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "slab",
    "rss",
    "cache",
    "rss_huge",
    "mapped_file",
    "dirty",
    "writeback",
    "swap",
];

/// Drops the amounts of `cg` that no machine can hold: more than the host's MemTotal +
/// SwapTotal (damage, or a wrapped counter below 2^63). Each is a problem, and the figures
/// that depend on it become unavailable. Skipped when the host's totals are unknown or
/// not the host's (lxcfs serves a container's limit as MemTotal).
pub fn drop_implausible(cg: &mut Cgroup, host: &crate::model::Host) {
    if host.lxcfs_meminfo {
        return;
    }
    let Some(mi) = host.meminfo.as_ref() else {
        return;
    };
    let Some(max) = mi
        .get("MemTotal")
        .map(|t| t.saturating_add(mi.get("SwapTotal").unwrap_or(0)))
    else {
        return;
    };
    let why = |what: &str, v: u64| {
        format!(
            "{}: {what} {v} is implausible: more than the host's RAM + swap (MemTotal + SwapTotal = {max}); it and the figures computed from it are unavailable",
            cg.fs_path.display()
        )
    };
    let mut problems = Vec::new();
    if let Some(s) = cg.stat.as_mut() {
        s.0.retain(|(k, v)| {
            let key = k.strip_prefix("total_").unwrap_or(k);
            let bad = *v > max && SIZE_KEYS.contains(&key);
            if bad {
                problems.push(why(&format!("memory.stat {k}"), *v));
            }
            !bad
        });
    }
    for (name, slot) in [
        ("usage", &mut cg.usage.current),
        ("kernel memory usage", &mut cg.usage.kmem),
        ("swap usage", &mut cg.usage.swap),
    ] {
        if let Some(v) = *slot
            && v > max
        {
            problems.push(why(name, v));
            *slot = None;
        }
    }
    cg.problems.extend(problems);
}

/// The huge page sizes of this host as the hugetlb controller names them in its files
/// (`/sys/kernel/mm/hugepages/hugepages-2048kB` -> `2MB`; mm/hugetlb_cgroup.c mem_fmt).
fn hugetlb_sizes(root: &Root) -> Vec<String> {
    let Ok(dirs) = root.subdirs(Path::new("/sys/kernel/mm/hugepages")) else {
        return Vec::new();
    };
    let mut sizes: Vec<(u64, String)> = dirs
        .iter()
        .filter_map(|d| {
            let kb: u64 = d
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let name = if kb >= 1 << 20 {
                format!("{}GB", kb >> 20)
            } else if kb >= 1 << 10 {
                format!("{}MB", kb >> 10)
            } else {
                format!("{kb}KB")
            };
            Some((kb, name))
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, n)| n).collect()
}

/// `/a/b` form of a cgroup path (leading slash, no trailing slash, `/` for the root).
pub fn normalise(path: &str) -> String {
    let t = path.trim_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        format!("/{t}")
    }
}

/// Memory cgroups the kernel still holds after their directory was removed (they keep pages
/// charged until those are reclaimed; a growing number is a leak of kernel memory): v2 the
/// root's `cgroup.stat` nr_dying_descendants; v1 `/proc/cgroups` num_cgroups of `memory`
/// minus the `live` directories (only when the whole hierarchy is visible: mount root `/`).
pub fn dying_cgroups(root: &Root, h: &Hierarchy, live: usize) -> Option<u64> {
    // Inside a container the count would be the container subtree's, not the node's.
    if super::mount::container_scope(root, h).is_some() {
        return None;
    }
    match h.version {
        Version::V2 => {
            let t = root.read(&fs_path(h, "/").join("cgroup.stat")).ok()?;
            parse::dying_memory(&parse::flat_keyed(&t).0).map(|(n, _)| n)
        }
        Version::V1 => {
            if h.mount_root != "/" {
                return None;
            }
            let t = root.read(Path::new("/proc/cgroups")).ok()?;
            let total: u64 = t.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&"memory")).then(|| f.get(2)?.parse().ok())?
            })?;
            Some(total.saturating_sub(live as u64))
        }
    }
}

/// Reads the ancestors of `path` (nearest first) at overview level: the effective limit of a
/// cgroup is the smallest on the way to the root (v2 has no hierarchical_memory_limit key).
pub fn ancestors(root: &Root, h: &Hierarchy, path: &str) -> Vec<Cgroup> {
    let mut out = Vec::new();
    let mut p = Path::new(&normalise(path)).to_path_buf();
    while let Some(parent) = p.parent().map(Path::to_path_buf) {
        if let Ok(cg) = read_cgroup(root, h, &parent.to_string_lossy(), Level::Overview) {
            out.push(cg);
        }
        p = parent;
    }
    out
}
