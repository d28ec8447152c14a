//! Assembling one cgroup's full report: read (cgroup, proc) → model → views. Front ends call
//! this and render the result; they never read the system themselves.

use crate::cgroup::mount::{self, MountError};
use crate::cgroup::read::{self, Level};
use crate::cgroup::walk;
use crate::identity::{Identity, NodeNames};
use crate::model::{Cgroup, Hierarchy, Host, Process, SysvSegment, TmpfsMount};
use crate::proc;
use crate::sys::{ReadError, Root};
use crate::views::breakdown::Breakdown;
use crate::views::derived::Derived;
use crate::views::processes::{ProcessSums, Reconcile, reconcile};
use crate::views::tools::Tools;
use serde::Serialize;

/// Options of a report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Include the processes of descendant cgroups.
    pub descendants: bool,
}

/// Everything `memlens show` knows about one cgroup.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The memory hierarchy.
    pub hierarchy: Hierarchy,
    /// The cgroup as read.
    pub cgroup: Cgroup,
    /// What the path says it is.
    pub identity: Identity,
    /// The normalised breakdown.
    pub breakdown: Breakdown,
    /// Reclaimable, headroom, effective limit.
    pub derived: Derived,
    /// What other tools would show.
    pub tools: Tools,
    /// The member processes.
    pub processes: Vec<Process>,
    /// Their sums.
    pub sums: ProcessSums,
    /// Process sums against cgroup counters.
    pub reconcile: Vec<Reconcile>,
    /// The host's memory.
    pub host: Host,
    /// Every PID in the cgroup and its descendants (`charged-but-empty` needs "no process
    /// anywhere below"); `None` when a cgroup.procs could not be read.
    pub subtree_pids: Option<Vec<i32>>,
    /// The memory-backed mounts the subtree's processes see, with statfs usage. Read only when
    /// the cgroup holds shmem (the `shmem-held` rule's evidence).
    pub tmpfs_mounts: Vec<TmpfsMount>,
    /// SysV segments created or last used by the subtree's processes; `None` when not read
    /// (no shmem) or the kernel has no SysV IPC.
    pub sysv_segments: Option<Vec<SysvSegment>>,
    /// Problems met reading the mounts and segments.
    pub shm_problems: Vec<String>,
}

impl Report {
    /// Every problem met while reading (files unreadable or garbled), with the file named.
    pub fn problems(&self) -> Vec<String> {
        let mut v = self.cgroup.problems.clone();
        v.extend(self.host.problems.iter().cloned());
        v.extend(self.shm_problems.iter().cloned());
        for p in &self.processes {
            v.extend(p.problems.iter().map(|x| format!("pid {}: {x}", p.pid)));
        }
        v
    }
}

/// Finds the memory hierarchy.
pub fn hierarchy(root: &Root) -> Result<Hierarchy, MountError> {
    mount::memory_hierarchy(root)
}

/// The processes of `cg` (and of its descendants with `descendants`).
pub fn processes(root: &Root, h: &Hierarchy, cg: &Cgroup, descendants: bool) -> Vec<Process> {
    let mut pids: Vec<(i32, String)> = cg
        .procs
        .iter()
        .flatten()
        .map(|p| (*p, cg.path.clone()))
        .collect();
    if descendants {
        for p in walk::all_paths(root, h, &cg.path).into_iter().skip(1) {
            let f = read::fs_path(h, &p).join("cgroup.procs");
            if let Ok(t) = root.read(&f) {
                pids.extend(
                    crate::cgroup::parse::pids(&t)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|x| (x, p.clone())),
                );
            }
        }
    }
    pids.into_iter()
        .filter_map(|(pid, path)| {
            proc::read_process(root, pid).map(|mut p| {
                p.cgroup = Some(path);
                p
            })
        })
        .collect()
}

/// Every PID in `cg` and its descendant cgroups; `None` when a cgroup.procs was unreadable.
pub fn subtree_pids(root: &Root, h: &Hierarchy, cg: &Cgroup) -> Option<Vec<i32>> {
    let mut pids = cg.procs.clone()?;
    for p in walk::all_paths(root, h, &cg.path).into_iter().skip(1) {
        match root.read(&read::fs_path(h, &p).join("cgroup.procs")) {
            Ok(t) => pids.extend(crate::cgroup::parse::pids(&t).ok()?),
            // Removed during the walk: no processes there.
            Err(ReadError::Missing { .. }) => {}
            Err(_) => return None,
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Some(pids)
}

/// Builds the report for the cgroup at `path`.
pub fn build(root: &Root, h: &Hierarchy, path: &str, opts: Options) -> Result<Report, ReadError> {
    let mut cg = read::read_cgroup(root, h, path, Level::Full)?;
    let host = proc::read_host(root);
    read::drop_implausible(&mut cg, &host);
    let ancestors = read::ancestors(root, h, path);
    let root_cg = if cg.is_root() {
        Some(&cg)
    } else {
        ancestors.last()
    };
    let procs = processes(root, h, &cg, opts.descendants);
    let breakdown = Breakdown::of(&cg);
    let derived = Derived::of(&cg, &breakdown, &ancestors);
    let tools = Tools::of(&cg, &breakdown, &derived.limit, root_cg, &host, &procs);
    let sums = ProcessSums::of(&procs);
    let reconcile = reconcile(&sums, &breakdown);
    let subtree = subtree_pids(root, h, &cg);
    let (mut tmpfs, mut sysv, mut shm_problems) = (Vec::new(), None, Vec::new());
    // Only a cgroup that holds shmem needs to know where it lives; reading every member's
    // mountinfo is not free on a busy node.
    if breakdown.shmem.bytes.is_none_or(|s| s > 0) {
        let pids = subtree
            .clone()
            .unwrap_or_else(|| procs.iter().map(|p| p.pid).collect());
        let (t, p1) = proc::shm::tmpfs_mounts(root, &pids);
        let (s, p2) = proc::shm::sysv_segments(root, &pids);
        tmpfs = t;
        sysv = s;
        shm_problems.extend(p1);
        shm_problems.extend(p2);
    }
    // Problems noted while building (a cut file read after the host was) belong here too.
    let mut host = host;
    for p in root.capture_problems() {
        if !host.problems.contains(&p) {
            host.problems.push(p);
        }
    }
    Ok(Report {
        hierarchy: h.clone(),
        identity: {
            let id = Identity::from_path(&cg.path);
            Identity::named(&cg.path, &NodeNames::load(root, id.container_id.as_deref()))
        },
        cgroup: cg,
        breakdown,
        derived,
        tools,
        processes: procs,
        sums,
        reconcile,
        host,
        subtree_pids: subtree,
        tmpfs_mounts: tmpfs,
        sysv_segments: sysv,
        shm_problems,
    })
}
