//! Assembling one cgroup's full report: read (cgroup, proc) → model → views. Front ends call
//! this and render the result; they never read the system themselves.

use crate::cgroup::mount::{self, MountError};
use crate::cgroup::read::{self, Level};
use crate::cgroup::walk;
use crate::identity::{Identity, NodeNames};
use crate::model::{Cgroup, Hierarchy, Host, Process};
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
}

impl Report {
    /// Every problem met while reading (files unreadable or garbled), with the file named.
    pub fn problems(&self) -> Vec<String> {
        let mut v = self.cgroup.problems.clone();
        v.extend(self.host.problems.iter().cloned());
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

/// Builds the report for the cgroup at `path`.
pub fn build(root: &Root, h: &Hierarchy, path: &str, opts: Options) -> Result<Report, ReadError> {
    let cg = read::read_cgroup(root, h, path, Level::Full)?;
    let ancestors = read::ancestors(root, h, path);
    let root_cg = if cg.is_root() {
        Some(&cg)
    } else {
        ancestors.last()
    };
    let host = proc::read_host(root);
    let procs = processes(root, h, &cg, opts.descendants);
    let breakdown = Breakdown::of(&cg);
    let derived = Derived::of(&cg, &breakdown, &ancestors);
    let tools = Tools::of(&cg, &breakdown, &derived.limit, root_cg, &host, &procs);
    let sums = ProcessSums::of(&procs);
    let reconcile = reconcile(&sums, &breakdown);
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
    })
}
