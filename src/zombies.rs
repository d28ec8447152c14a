//! `memlens zombies`: dying memory cgroups, and the live cgroups that will become dying ones.
//!
//! A removed memcg is freed only when the last page charged to it is gone; until then it is
//! "dying" (offline): invisible in the file system but still holding its kernel structures
//! (per-CPU stats, a few hundred KiB each) and its page cache. Thousands of them slow
//! down reclaim and memory.stat reads (Documentation/admin-guide/cgroup-v2.rst "cgroup.stat"
//! nr_dying_descendants; cgroup-v1/memory.rst 5.1 "force_empty").
//!
//! Counting: v2 states it (`cgroup.stat` nr_dying_subsys_memory on 6.11+, which counts only
//! dying cgroups holding a memory css; before, nr_dying_descendants, per subtree). v1 does not:
//! `/proc/cgroups` num_cgroups counts live and dying memcgs together, so
//! dying = num_cgroups − live directories (a walk of the hierarchy).

use crate::cgroup::read::{self, Level};
use crate::cgroup::{parse, walk};
use crate::model::{Hierarchy, Version};
use crate::sys::{ReadError, Root};
use crate::views::breakdown::Breakdown;
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// A live cgroup with no process in it or below that still has memory charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmptyCharged {
    /// Path within the hierarchy.
    pub path: String,
    /// Usage (v1 memory.usage_in_bytes, v2 memory.current).
    pub usage_bytes: Option<u64>,
    /// Page cache (incl. shmem).
    pub file_bytes: Option<u64>,
    /// shmem (not freed by reclaim without swap).
    pub shmem_bytes: Option<u64>,
}

/// A v2 subtree with dying descendants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DyingSubtree {
    /// Path within the hierarchy.
    pub path: String,
    /// cgroup.stat nr_dying_descendants.
    pub dying: u64,
}

/// One memory hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HierarchyZombies {
    /// 1 or 2.
    pub version: u8,
    /// Mount point.
    pub mount: String,
    /// Dying memory cgroups, `None` when it cannot be counted.
    pub dying: Option<u64>,
    /// How `dying` was computed.
    pub dying_source: String,
    /// Live memory cgroups found by the walk.
    pub live: usize,
    /// v2: subtrees (not the root) with dying descendants, largest first.
    pub subtrees: Vec<DyingSubtree>,
    /// Live cgroups that will become dying ones when removed.
    pub empty_charged: Vec<EmptyCharged>,
}

/// The result of `memlens zombies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Zombies {
    /// One entry per memory hierarchy (there is one: the controller is bound to one).
    pub hierarchies: Vec<HierarchyZombies>,
    /// Files that could not be read.
    pub problems: Vec<String>,
}

/// Counts the dying memcgs of `h` and the number of live ones.
pub fn count(root: &Root, h: &Hierarchy) -> (Option<u64>, String, usize, Vec<String>) {
    count_live(root, h, walk::all_paths(root, h, "/").len())
}

/// [`count`] for a caller that has just walked the hierarchy (`top`): `live` memory cgroup
/// directories.
pub fn count_live(
    root: &Root,
    h: &Hierarchy,
    live: usize,
) -> (Option<u64>, String, usize, Vec<String>) {
    let mut problems = Vec::new();
    match h.version {
        Version::V2 => {
            let f = read::fs_path(h, "/").join("cgroup.stat");
            match root.read(&f) {
                Ok(t) => {
                    let (kv, bad) = parse::flat_keyed(&t);
                    problems.extend(bad.into_iter().map(|b| ReadError::parse(&f, b).to_string()));
                    match parse::dying_memory(&kv) {
                        Some((n, key)) => {
                            (Some(n), format!("{} {key}", f.display()), live, problems)
                        }
                        None => (
                            None,
                            format!(
                                "{} has neither nr_dying_subsys_memory nor nr_dying_descendants",
                                f.display()
                            ),
                            live,
                            problems,
                        ),
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    problems.push(why.clone());
                    (None, why, live, problems)
                }
            }
        }
        Version::V1 => {
            let f = Path::new("/proc/cgroups");
            let total = root
                .read(f)
                .and_then(|t| parse::proc_cgroups_memory(&t).map_err(|r| ReadError::parse(f, r)));
            match total {
                Ok(n) => {
                    let mut src = format!(
                        "/proc/cgroups memory num_cgroups ({n}) − live memory cgroup directories ({live})"
                    );
                    if h.mount_root != "/" {
                        src.push_str(&format!(
                            "; the mount shows only {} of the hierarchy, so cgroups outside it count as dying",
                            h.mount_root
                        ));
                    }
                    (Some(n.saturating_sub(live as u64)), src, live, problems)
                }
                Err(e) => {
                    let why = e.to_string();
                    problems.push(why.clone());
                    (None, why, live, problems)
                }
            }
        }
    }
}

/// Collects the dying counts and the empty-but-charged cgroups of `h`.
pub fn collect(root: &Root, h: &Hierarchy) -> Zombies {
    let (dying, dying_source, live, mut problems) = count(root, h);
    let paths = walk::all_paths(root, h, "/");
    // Which cgroups have a process in them or below: parents come before children in the
    // walk, so going backwards every child is settled before its parent.
    let mut busy: HashSet<String> = HashSet::new();
    let mut unknown: HashSet<String> = HashSet::new();
    for p in paths.iter().rev() {
        match root.read(&read::fs_path(h, p).join("cgroup.procs")) {
            Ok(t) => {
                if !parse::pids(&t).unwrap_or_default().is_empty() {
                    busy.insert(p.clone());
                }
            }
            Err(ReadError::Missing { .. }) => {}
            Err(e) => {
                problems.push(e.to_string());
                unknown.insert(p.clone());
            }
        }
        if busy.contains(p) || unknown.contains(p) {
            let mut q = Path::new(p).to_path_buf();
            while let Some(parent) = q.parent().map(Path::to_path_buf) {
                let ps = parent.to_string_lossy().into_owned();
                if busy.contains(p) {
                    busy.insert(ps.clone());
                } else {
                    unknown.insert(ps.clone());
                }
                q = parent;
            }
        }
    }
    let mut empty_charged = Vec::new();
    let mut subtrees = Vec::new();
    for p in &paths {
        if p == "/" {
            continue;
        }
        if h.version == Version::V2
            && let Ok(t) = root.read(&read::fs_path(h, p).join("cgroup.stat"))
            && let Some((n, _)) = parse::dying_memory(&parse::flat_keyed(&t).0)
            && n > 0
        {
            subtrees.push(DyingSubtree {
                path: p.clone(),
                dying: n,
            });
        }
        if busy.contains(p) || unknown.contains(p) {
            continue;
        }
        let Ok(cg) = read::read_cgroup(root, h, p, Level::Overview) else {
            continue;
        };
        problems.extend(cg.problems.iter().cloned());
        let b = Breakdown::of(&cg);
        if b.usage.bytes.is_some_and(|u| u > 0) {
            empty_charged.push(EmptyCharged {
                path: p.clone(),
                usage_bytes: b.usage.bytes,
                file_bytes: b.file.bytes,
                shmem_bytes: b.shmem.bytes,
            });
        }
    }
    empty_charged.sort_by(|a, b| b.usage_bytes.cmp(&a.usage_bytes).then(a.path.cmp(&b.path)));
    subtrees.sort_by(|a, b| b.dying.cmp(&a.dying).then(a.path.cmp(&b.path)));
    Zombies {
        hierarchies: vec![HierarchyZombies {
            version: h.version.number(),
            mount: h.mount_point.display().to_string(),
            dying,
            dying_source,
            live,
            subtrees,
            empty_charged,
        }],
        problems,
    }
}

/// What `--reclaim` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reclaimed {
    /// The cgroup.
    pub path: String,
    /// The file written.
    pub file: String,
    /// Usage before.
    pub usage_before_bytes: Option<u64>,
    /// Usage after.
    pub usage_after_bytes: Option<u64>,
    /// Page cache before.
    pub file_before_bytes: Option<u64>,
    /// Page cache after.
    pub file_after_bytes: Option<u64>,
    /// Set when the kernel could not reclaim everything.
    pub partial: Option<String>,
    /// What was written to the file (v2: `BYTES swappiness=0` where the kernel takes it).
    pub request: String,
}

/// What `--reclaim PATH` is about to do, checked before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimPlan {
    /// The file that will be written.
    pub file: &'static str,
    /// Processes in the cgroup and below (`None`: cgroup.procs unreadable).
    pub pids: Option<Vec<i32>>,
    /// Usage and page cache now.
    pub usage_bytes: Option<u64>,
    /// Page cache now (what reclaim drops first).
    pub file_bytes: Option<u64>,
}

/// Why `--reclaim` refuses (a usage error: exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReclaimRefused {
    /// The hierarchy's root: the whole machine's cache.
    #[error(
        "refusing to reclaim the root cgroup (it would drop the whole machine's page cache): name the cgroup to empty"
    )]
    Root,
    /// Live processes: their cache would be dropped under them, an I/O storm for a running
    /// container.
    #[error(
        "{path} has {n} process(es) (pids {pids}): reclaiming would drop {cache} of page cache they are using and make them read it back from disk; stop them first, or pass --force"
    )]
    Busy {
        /// The cgroup.
        path: String,
        /// How many processes.
        n: usize,
        /// The first PIDs.
        pids: String,
        /// Its page cache.
        cache: String,
    },
    /// cgroup.procs unreadable: whether processes are there is unknown.
    #[error(
        "{0}: cannot tell whether processes are in it (cgroup.procs unreadable); pass --force to reclaim anyway"
    )]
    Unknown(String),
}

/// Checks `--reclaim PATH` before anything is written: the root is refused, and so is a
/// cgroup with processes (in it or below) unless `force`.
pub fn plan_reclaim(
    root: &Root,
    h: &Hierarchy,
    path: &str,
    force: bool,
) -> Result<ReclaimPlan, ReclaimRefused> {
    if path.trim_matches('/').is_empty() {
        return Err(ReclaimRefused::Root);
    }
    let cg = read::read_cgroup(root, h, path, Level::Overview).ok();
    let pids = cg
        .as_ref()
        .and_then(|c| crate::report::subtree_pids(root, h, &procs_of(root, h, c)));
    let b = cg.as_ref().map(Breakdown::of);
    let plan = ReclaimPlan {
        file: match h.version {
            Version::V1 => "memory.force_empty",
            Version::V2 => "memory.reclaim",
        },
        pids: pids.clone(),
        usage_bytes: b.as_ref().and_then(|b| b.usage.bytes),
        file_bytes: b.as_ref().and_then(|b| b.file.bytes),
    };
    if force {
        return Ok(plan);
    }
    match pids {
        None => Err(ReclaimRefused::Unknown(path.to_string())),
        Some(p) if !p.is_empty() => Err(ReclaimRefused::Busy {
            path: path.to_string(),
            n: p.len(),
            pids: {
                let mut s: Vec<String> = p.iter().take(5).map(|x| x.to_string()).collect();
                if p.len() > 5 {
                    s.push("...".into());
                }
                s.join(", ")
            },
            cache: crate::render::bytes(plan.file_bytes),
        }),
        Some(_) => Ok(plan),
    }
}

/// The cgroup with its cgroup.procs read (the overview level does not read it).
fn procs_of(root: &Root, h: &Hierarchy, cg: &crate::model::Cgroup) -> crate::model::Cgroup {
    let mut c = cg.clone();
    c.procs = root
        .read(&read::fs_path(h, &cg.path).join("cgroup.procs"))
        .ok()
        .and_then(|t| crate::cgroup::parse::pids(&t).ok());
    c
}

/// Reclaims the cgroup at `path` on the live system (see [`crate::cgroup::reclaim`]) and
/// reads its usage before and after.
pub fn reclaim(root: &Root, h: &Hierarchy, path: &str) -> std::io::Result<Reclaimed> {
    let read_fig = |root: &Root| -> (Option<u64>, Option<u64>) {
        match read::read_cgroup(root, h, path, Level::Overview) {
            Ok(cg) => {
                let b = Breakdown::of(&cg);
                (b.usage.bytes, b.file.bytes)
            }
            Err(_) => (None, None),
        }
    };
    let (ub, fb) = read_fig(root);
    let (out, request) = crate::cgroup::reclaim::reclaim(root, h, path, ub.unwrap_or(0))?;
    let (ua, fa) = read_fig(root);
    Ok(Reclaimed {
        path: path.to_string(),
        file: match h.version {
            Version::V1 => "memory.force_empty".into(),
            Version::V2 => "memory.reclaim".into(),
        },
        usage_before_bytes: ub,
        usage_after_bytes: ua,
        file_before_bytes: fb,
        file_after_bytes: fa,
        partial: match out {
            crate::cgroup::reclaim::Outcome::Done => None,
            crate::cgroup::reclaim::Outcome::Partial(s) => Some(s),
        },
        request,
    })
}
