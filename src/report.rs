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
    /// Swap, zswap, THP and hugetlb (the newest counters).
    pub offload: crate::views::offload::Offload,
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
    /// The member processes that are JVM, Go, Node.js or .NET, with their heap settings
    /// (the `runtime-heap` rule's input).
    pub runtimes: Vec<proc::runtime::RuntimeProcess>,
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
    // User names for the USER column: the node's /etc/passwd (under --host-root, the host's).
    let users: std::collections::HashMap<u32, String> = root
        .read(std::path::Path::new("/etc/passwd"))
        .map(|t| {
            t.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    pids.into_iter()
        .filter_map(|(pid, path)| {
            proc::read_process(root, pid).map(|mut p| {
                // A capture holds /proc/PID of every member it listed: a PID without one
                // came from a damaged cgroup.procs (or left while the capture was taken),
                // so the problem names the file the PID came from.
                if root.is_capture() && !root.exists(std::path::Path::new(&format!("/proc/{pid}"))) {
                    p.problems.push(format!(
                        "{}: lists pid {pid}, but the capture holds no /proc/{pid} (the file is damaged, or the process exited while the capture was taken)",
                        read::fs_path(h, &path).join("cgroup.procs").display()
                    ));
                }
                p.cgroup = Some(path);
                p.user = p.uid.and_then(|u| users.get(&u).cloned());
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
    let mut host = proc::read_host(root);
    host.container_scope = crate::cgroup::mount::container_scope(root, h);
    read::drop_implausible(&mut cg, &host);
    let ancestors = read::ancestors(root, h, path);
    let root_cg = if cg.is_root() {
        Some(&cg)
    } else {
        ancestors.last()
    };
    // The host path: inside a container the mount's root names the container.
    let host_path = crate::cgroup::mount::host_path(h, &cg.path);
    let names = NodeNames::load(
        root,
        Identity::from_path(&host_path).container_id.as_deref(),
    );
    host.problems.extend(names.problems.iter().cloned());
    let procs = processes(root, h, &cg, opts.descendants);
    let breakdown = Breakdown::of(&cg);
    let mut derived = Derived::of(&cg, &breakdown, &ancestors);
    derived.cap_at_host(host.mem("MemTotal"));
    let offload = crate::views::offload::Offload::of(&cg, &host, derived.oom_headroom.bytes);
    let tools = Tools::of(&cg, &breakdown, &derived.limit, root_cg, &host, &procs);
    let sums = if cg.procs.is_none() {
        ProcessSums::unknown()
    } else {
        ProcessSums::of(&procs)
    };
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
    for p in root.capture_problems() {
        if !host.problems.contains(&p) {
            host.problems.push(p);
        }
    }
    let runtimes = procs
        .iter()
        .filter_map(|p| proc::runtime::read(root, p.pid))
        .collect();
    Ok(Report {
        runtimes,
        hierarchy: h.clone(),
        identity: Identity::named(&host_path, &names),
        cgroup: cg,
        breakdown,
        derived,
        offload,
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
