//! The node overview: one row per container-like cgroup (or every memory cgroup), plus the
//! host line. Reads only `read::overview_files` per cgroup, so it stays close to the cost of
//! reading those files (see benches/overview.rs).

use crate::cgroup::read::{self, Level};
use crate::cgroup::tier::Tiers;
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
    /// anon + shmem + (kernel − slab_reclaimable): what reclaim cannot drop (without swap);
    /// the kernel counted whole where it does not split out reclaimable slab (v1).
    pub not_reclaimable_bytes: Option<u64>,
    /// Effective limit − not reclaimable: what can still be pinned before an OOM kill.
    pub oom_headroom_bytes: Option<u64>,
    /// Processes in the cgroup itself (cgroup.procs); `None` when not read (`--json` of the
    /// exporter) or unreadable.
    pub pids: Option<usize>,
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
    /// Memory cgroups not shown (not container-like; `--all` shows them).
    pub hidden: usize,
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
pub fn collect_with<T: Clone>(
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
pub fn collect_paths<T: Clone>(
    root: &Root,
    h: &Hierarchy,
    paths: &[String],
    all: bool,
    level: Level,
    extra: impl FnMut(&Row, &Cgroup) -> T,
) -> (Overview, Vec<T>) {
    collect_tiered(root, h, paths, all, level, None, extra)
}

/// What the tiers keep of a cgroup's last full read: its row (before names), the front
/// end's extra, and its own limit (so a changed parent limit re-reads it).
#[derive(Debug, Clone)]
pub struct Kept<T> {
    row: Row,
    extra: T,
    own_limit: Option<u64>,
}

/// [`collect_paths`] with tiered reads ([`crate::cgroup::tier`]): a cgroup whose usage has not
/// moved since its last full read, which is not due again, and whose effective limit is the
/// same, is not read again: its last row and extra are reused as they were (exact for that
/// moment; the extra can carry the read time). The root cgroup is always read (the node's
/// memory.available comes from it).
pub fn collect_tiered<T: Clone>(
    root: &Root,
    h: &Hierarchy,
    paths: &[String],
    all: bool,
    level: Level,
    mut tiers: Option<&mut Tiers<Kept<T>>>,
    mut extra: impl FnMut(&Row, &Cgroup) -> T,
) -> (Overview, Vec<T>) {
    if let Some(t) = tiers.as_mut() {
        t.begin();
    }
    let mut extras = Vec::with_capacity(paths.len());
    let mut limits: HashMap<String, Option<u64>> = HashMap::new();
    let mut rows = Vec::new();
    let mut root_cg = None;
    let mut host = proc::read_host(root);
    host.container_scope = crate::cgroup::mount::container_scope(root, h);
    for p in paths {
        let parent_limit = parent(p).and_then(|pp| limits.get(pp).copied().flatten());
        if p != "/"
            && let Some(t) = tiers.as_mut()
            && let Some((k, _)) = t.unchanged(root, h, p)
        {
            let eff = [parent_limit, k.own_limit].into_iter().flatten().min();
            if eff == k.row.limit_bytes {
                limits.insert(p.clone(), eff);
                rows.push(k.row);
                extras.push(k.extra);
                continue;
            }
        }
        let Ok(mut cg) = read::read_cgroup(root, h, p, level) else {
            continue;
        };
        read::drop_implausible(&mut cg, &host);
        let own = cg.limits.max.and_then(Limit::bytes);
        let hier = cg.limits.hierarchical.and_then(Limit::bytes);
        let own_limit = [own, hier].into_iter().flatten().min();
        let eff = [parent_limit, own_limit].into_iter().flatten().min();
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
        // The formula of views::derived (Documentation/admin-guide/cgroup-v2.rst "memory.stat").
        let not_reclaimable = match (anon, stat("shmem"), kernel) {
            (Some(a), Some(sh), k) => Some(
                a + sh
                    + k.map_or(0, |k| {
                        k.saturating_sub(if v1 {
                            0
                        } else {
                            stat("slab_reclaimable").unwrap_or(0)
                        })
                    }),
            ),
            _ => None,
        };
        // The host path: inside a container the mount's root names the container.
        let identity = Identity::from_path(&crate::cgroup::mount::host_path(h, p));
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
            not_reclaimable_bytes: not_reclaimable,
            oom_headroom_bytes: match (eff, not_reclaimable) {
                (Some(l), Some(n)) => Some(l.saturating_sub(n)),
                _ => None,
            },
            pids: None,
            problems: cg.problems.clone(),
            identity,
        };
        let x = extra(&row, &cg);
        if let Some(t) = tiers.as_mut() {
            t.store(
                root,
                h,
                p,
                cg.usage.current,
                Kept {
                    row: row.clone(),
                    extra: x.clone(),
                    own_limit,
                },
                crate::store::now_ms(),
            );
        }
        extras.push(x);
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
            names.apply(&mut r.identity);
        }
    }
    host.problems.extend(names.problems.iter().cloned());
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
    let total = rows.len();
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
        hidden: total - rows.len(),
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
            hidden: if fell_back {
                0
            } else {
                self.rows.len() - rows.len()
            },
            rows: if fell_back { self.rows.clone() } else { rows },
            host: self.host.clone(),
        }
    }
}

/// Fills each row's process count from its cgroup.procs (the CLI's PIDS column; the
/// exporter's walk does not read it).
pub fn count_pids(root: &Root, h: &Hierarchy, o: &mut Overview) {
    for r in &mut o.rows {
        r.pids = pids_of(root, h, &r.path);
    }
}

/// The number of processes in cgroup `path` (its cgroup.procs).
pub fn pids_of(root: &Root, h: &Hierarchy, path: &str) -> Option<usize> {
    root.read(&read::fs_path(h, path).join("cgroup.procs"))
        .ok()
        .and_then(|t| crate::cgroup::parse::pids(&t).ok())
        .map(|v| v.len())
}

/// Puts the rows in hierarchy order (each cgroup under its parent), for the `--all` tree.
pub fn tree_order(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        a.path
            .split('/')
            .filter(|c| !c.is_empty())
            .cmp(b.path.split('/').filter(|c| !c.is_empty()))
    });
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
