//! The node overview: one row per container-like cgroup (or every memory cgroup), plus the
//! host line. Reads only `read::overview_files` per cgroup, so it stays close to the cost of
//! reading those files (see benches/overview.rs).

use crate::cgroup::read::{self, Level};
use crate::cgroup::walk;
use crate::identity::{Identity, NodeNames};
use crate::model::{Cgroup, Hierarchy, Host, Limit, Version};
use crate::proc;
use crate::sys::Root;
use crate::views::Figure;
use crate::views::tools::node_available;
use serde::Serialize;
use std::collections::HashMap;

/// One cgroup's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Path within the hierarchy.
    pub path: String,
    /// Container/pod identity from the path.
    pub identity: Identity,
    /// Effective limit (the smallest on the path to the root), `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// v1 memory.usage_in_bytes, v2 memory.current.
    pub usage_bytes: Option<u64>,
    /// usage − inactive_file (kubectl top).
    pub working_set_bytes: Option<u64>,
    /// anon.
    pub anon_bytes: Option<u64>,
    /// file (page cache incl. shmem).
    pub file_bytes: Option<u64>,
    /// shmem.
    pub shmem_bytes: Option<u64>,
    /// kernel.
    pub kernel_bytes: Option<u64>,
    /// swap.
    pub swap_bytes: Option<u64>,
    /// usage / limit × 100.
    pub percent_of_limit: Option<f64>,
    /// OOM kills (v2 memory.events oom_kill, v1 memory.oom_control oom_kill).
    pub oom_kills: Option<u64>,
    /// Problems reading this cgroup.
    pub problems: Vec<String>,
}

/// The host line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostLine {
    /// /proc/meminfo and pressure.
    pub host: Host,
    /// kubelet's node memory.available.
    pub node_memory_available: Figure,
    /// The root cgroup's usage.
    pub root_usage_bytes: Option<u64>,
}

/// The overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    /// The hierarchy.
    pub hierarchy: Hierarchy,
    /// `containers` or `all`.
    pub filter: &'static str,
    /// True when no container-like cgroup was found and every cgroup is shown instead.
    pub fell_back_to_all: bool,
    /// The rows.
    pub rows: Vec<Row>,
    /// The host.
    pub host: HostLine,
}

/// Columns `--sort` accepts.
pub const SORT_KEYS: &[&str] = &[
    "usage",
    "limit",
    "working-set",
    "anon",
    "file",
    "shmem",
    "kernel",
    "swap",
    "percent",
    "oom",
    "name",
];

/// Collects the overview. `all`: every memory cgroup, else container-like ones.
pub fn collect(root: &Root, h: &Hierarchy, all: bool) -> Overview {
    collect_with(root, h, all, Level::Overview, |_, _| ()).0
}

/// Collects the overview reading each cgroup at `level`, and calls `extra` with every row and
/// the cgroup it was computed from, so a front end that needs more per-cgroup figures (the
/// exporter) computes them in the same pass without keeping 1,000 `Cgroup`s alive. The
/// second result holds `extra`'s values for the returned rows, in the same order. Identities
/// carry the node's names ([`NodeNames`]); `extra` sees the rows before names are added.
pub fn collect_with<T>(
    root: &Root,
    h: &Hierarchy,
    all: bool,
    level: Level,
    extra: impl FnMut(&Row, &Cgroup) -> T,
) -> (Overview, Vec<T>) {
    let paths = walk::all_paths(root, h, "/");
    collect_paths(root, h, &paths, all, level, extra)
}

/// [`collect_with`] over a given list of cgroups (parents before children, as
/// [`walk::all_paths`] and [`walk::Tree`] list them), for a caller that keeps the list.
pub fn collect_paths<T>(
    root: &Root,
    h: &Hierarchy,
    paths: &[String],
    all: bool,
    level: Level,
    mut extra: impl FnMut(&Row, &Cgroup) -> T,
) -> (Overview, Vec<T>) {
    let mut extras = Vec::with_capacity(paths.len());
    let mut limits: HashMap<String, Option<u64>> = HashMap::new();
    let mut rows = Vec::new();
    let mut root_cg = None;
    let host = proc::read_host(root);
    for p in paths {
        let Ok(mut cg) = read::read_cgroup(root, h, p, level) else {
            continue;
        };
        read::drop_implausible(&mut cg, &host);
        let parent_limit = parent(p).and_then(|pp| limits.get(pp).copied().flatten());
        let own = cg.limits.max.and_then(Limit::bytes);
        let hier = cg.limits.hierarchical.and_then(Limit::bytes);
        let eff = [parent_limit, own, hier].into_iter().flatten().min();
        limits.insert(p.clone(), eff);
        // Six figures, not the full sourced breakdown (which formats a source string per
        // figure): the same keys as `Breakdown`, checked equal to the kernel's files by
        // tests/kernel_breakdown.rs.
        let stat = |k: &str| cg.stat_hier(k);
        let v1 = h.version == Version::V1;
        let usage = cg.usage.current.or_else(|| {
            // The v2 root has no memory.current before 6.x: anon + file, as cAdvisor.
            (cg.is_root() && !v1)
                .then(|| stat("anon")?.checked_add(stat("file")?))
                .flatten()
        });
        let (anon, file) = if v1 {
            (stat("rss"), stat("cache"))
        } else {
            (stat("anon"), stat("file"))
        };
        let kernel = if v1 {
            cg.usage.kmem
        } else {
            stat("kernel").or_else(|| {
                let parts = ["kernel_stack", "pagetables", "percpu", "slab", "vmalloc"];
                let v: Vec<u64> = parts.iter().filter_map(|p| stat(p)).collect();
                (!v.is_empty()).then(|| crate::views::add(&v)).flatten()
            })
        };
        let swap = if v1 { stat("swap") } else { cg.usage.swap };
        let ws = match (usage, stat("inactive_file")) {
            (Some(u), Some(i)) => Some(u.saturating_sub(i)),
            _ => None,
        };
        let identity = Identity::from_path(p);
        let row = Row {
            path: p.clone(),
            limit_bytes: eff,
            usage_bytes: usage,
            working_set_bytes: ws,
            anon_bytes: anon,
            file_bytes: file,
            shmem_bytes: stat("shmem"),
            kernel_bytes: kernel,
            swap_bytes: swap,
            percent_of_limit: match (usage, eff) {
                (Some(u), Some(l)) if l > 0 => Some(u as f64 * 100.0 / l as f64),
                _ => None,
            },
            oom_kills: cg.events.oom_kills(),
            problems: cg.problems.clone(),
            identity,
        };
        extras.push(extra(&row, &cg));
        rows.push(row);
        if cg.is_root() {
            root_cg = Some(cg);
        }
    }
    let names = NodeNames::load(
        root,
        // Every container ID, not only `docker` ones: a kubelet on docker (cgroupfs driver)
        // names its containers with bare IDs, and a missing config.v2.json costs one ENOENT.
        rows.iter()
            .filter_map(|r| r.identity.container_id.as_deref()),
    );
    for r in &mut rows {
        if r.identity.container_id.is_some() || r.identity.pod_uid.is_some() {
            r.identity.names = names.names_for(&r.identity);
        }
    }
    let mut host = host;
    for p in root.capture_problems() {
        if !host.problems.contains(&p) {
            host.problems.push(p);
        }
    }
    let node = node_available(root_cg.as_ref(), &host);
    let root_usage = rows
        .first()
        .filter(|r| r.path == "/")
        .and_then(|r| r.usage_bytes);
    let fell_back = !all && !rows.iter().any(|r| r.identity.is_container());
    let (rows, extras) = if all || fell_back {
        (rows, extras)
    } else {
        rows.into_iter()
            .zip(extras)
            .filter(|(r, _)| r.identity.is_container())
            .unzip()
    };
    let o = Overview {
        hierarchy: h.clone(),
        filter: if all { "all" } else { "containers" },
        fell_back_to_all: fell_back,
        rows,
        host: HostLine {
            host,
            node_memory_available: node,
            root_usage_bytes: root_usage,
        },
    };
    (o, extras)
}

impl Overview {
    /// The container-like rows only (what `memlens` shows without `--all`), falling back to
    /// every row when there is none, as `collect` does.
    pub fn containers_only(&self) -> Overview {
        let rows: Vec<Row> = self
            .rows
            .iter()
            .filter(|r| r.identity.is_container())
            .cloned()
            .collect();
        let fell_back = rows.is_empty();
        Overview {
            hierarchy: self.hierarchy.clone(),
            filter: "containers",
            fell_back_to_all: fell_back,
            rows: if fell_back { self.rows.clone() } else { rows },
            host: self.host.clone(),
        }
    }
}

fn parent(p: &str) -> Option<&str> {
    if p == "/" {
        return None;
    }
    match p.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&p[..i]),
        None => None,
    }
}

/// Sorts rows by a `SORT_KEYS` column, largest first (name: alphabetical).
pub fn sort(rows: &mut [Row], key: &str) {
    let k = |r: &Row| -> Option<u64> {
        match key {
            "limit" => r.limit_bytes,
            "working-set" => r.working_set_bytes,
            "anon" => r.anon_bytes,
            "file" => r.file_bytes,
            "shmem" => r.shmem_bytes,
            "kernel" => r.kernel_bytes,
            "swap" => r.swap_bytes,
            "percent" => r.percent_of_limit.map(|p| (p * 1000.0) as u64),
            "oom" => r.oom_kills,
            _ => r.usage_bytes,
        }
    };
    if key == "name" {
        let name = |r: &Row| r.identity.display_name().unwrap_or_else(|| r.path.clone());
        rows.sort_by_cached_key(name);
    } else {
        rows.sort_by(|a, b| k(b).cmp(&k(a)).then_with(|| a.path.cmp(&b.path)));
    }
}
