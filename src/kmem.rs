//! `memlens kernel [TARGET]`: kernel memory by part, for a cgroup and for the node, with the
//! verdict (see [`crate::views::kernel`] and [`crate::rules::kmem`]). Reads through
//! [`Root`], so it works on captures too.

use crate::cgroup::read::{self, Level};
use crate::cgroup::slabinfo;
use crate::model::{Hierarchy, Version};
use crate::proc::kpage::page_size;
use crate::rules::Finding;
use crate::sys::{ReadError, Root};
use crate::views::breakdown::Breakdown;
use crate::views::derived;
use crate::views::kernel::{CgroupKernel, NodeCache, NodeKernel};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The result of `memlens kernel`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelReport {
    /// The cgroup (when a target was given).
    pub cgroup: Option<String>,
    /// Its split.
    pub split: Option<CgroupKernel>,
    /// The verdict on it.
    pub finding: Option<Finding>,
    /// The node.
    pub node: NodeKernel,
    /// What could not be read.
    pub problems: Vec<String>,
}

fn note(problems: &mut Vec<String>, e: ReadError) {
    if !matches!(e, ReadError::Missing { .. }) {
        problems.push(e.to_string());
    }
}

/// The cgroup's split (and its effective limit) now.
fn split(
    root: &Root,
    h: &Hierarchy,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<(CgroupKernel, Option<(u64, String)>)> {
    let cg = match read::read_cgroup(root, h, path, Level::Full) {
        Ok(c) => c,
        Err(e) => {
            problems.push(e.to_string());
            return None;
        }
    };
    problems.extend(cg.problems.iter().cloned());
    let b = Breakdown::of(&cg);
    let slab = if h.version == Version::V1 {
        let f = read::fs_path(h, path).join("memory.kmem.slabinfo");
        match root.read(&f) {
            Ok(t) => {
                let (c, bad) = slabinfo::parse(&t, page_size());
                problems.extend(bad.into_iter().map(|b| ReadError::parse(&f, b).to_string()));
                Some(Ok((c, t.trim().is_empty())))
            }
            // The kernel answers EIO for a memcg whose kernel memory it does not account (seen on
            // 3.10, tests/fixtures/kernel/slabinfo/SOURCE): a state, not a failure.
            Err(e) if e.to_string().contains("os error 5)") => Some(Err(
                "memory.kmem.slabinfo: EIO, kernel memory is not accounted for this cgroup (before 4.6 only once memory.kmem.limit_in_bytes was set; later kernels booted with cgroup.memory=nokmem)".to_string(),
            )),
            Err(e) => {
                note(problems, e);
                Some(Err("memory.kmem.slabinfo unreadable".to_string()))
            }
        }
    } else {
        None
    };
    let ancestors = read::ancestors(root, h, path);
    let lim = derived::effective_limit(&cg, &ancestors);
    Some((
        CgroupKernel::of(&cg, &b.kernel, slab),
        lim.bytes.map(|l| (l, lim.source)),
    ))
}

fn node(root: &Root, problems: &mut Vec<String>) -> NodeKernel {
    let meminfo = match root.read(Path::new("/proc/meminfo")) {
        Ok(t) => Some(crate::proc::meminfo(&t)),
        Err(e) => {
            note(problems, e);
            None
        }
    };
    // sockstat: "TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 257" (pages), "UDP: inuse 0 mem 0".
    let sock = root.read(Path::new("/proc/net/sockstat")).ok().map(|t| {
        t.lines()
            .filter(|l| l.starts_with("TCP:") || l.starts_with("UDP:"))
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.iter()
                    .position(|x| *x == "mem")
                    .and_then(|i| w.get(i + 1)?.parse::<u64>().ok())
            })
            .sum::<u64>()
            * page_size()
    });
    let ps = page_size();
    let slab = match root.read(Path::new("/proc/slabinfo")) {
        Ok(t) => {
            let (c, bad) = slabinfo::parse(&t, ps);
            problems.extend(
                bad.into_iter()
                    .take(3)
                    .map(|b| ReadError::parse(Path::new("/proc/slabinfo"), b).to_string()),
            );
            Some(c)
        }
        Err(e) => {
            note(problems, e);
            None
        }
    };
    // Which of the largest caches reclaim can shrink (SLUB sysfs); only the top ones are
    // looked up.
    let slab = slab.map(|mut v| {
        v.sort_by_key(|c| std::cmp::Reverse(c.bytes));
        v.into_iter()
            .enumerate()
            .map(|(i, c)| {
                let reclaimable = if i < 10 {
                    root.read(&PathBuf::from(format!(
                        "/sys/kernel/slab/{}/reclaim_account",
                        c.name
                    )))
                    .ok()
                    .map(|t| t.trim() == "1")
                } else {
                    None
                };
                NodeCache {
                    cache: c,
                    reclaimable,
                }
            })
            .collect()
    });
    let dentries = match root.read(Path::new("/proc/sys/fs/dentry-state")) {
        Ok(t) => match slabinfo::dentry_state(&t) {
            Ok(d) => Some(d),
            Err(r) => {
                problems
                    .push(ReadError::parse(Path::new("/proc/sys/fs/dentry-state"), r).to_string());
                None
            }
        },
        Err(e) => {
            note(problems, e);
            None
        }
    };
    NodeKernel::of(meminfo.as_ref(), sock, slab, dentries)
}

/// Builds the report; with `sample`, the cgroup is read twice that far apart (live only).
pub fn collect(
    root: &Root,
    h: &Hierarchy,
    path: Option<&str>,
    sample: Option<std::time::Duration>,
) -> KernelReport {
    let mut problems = Vec::new();
    let (split_now, finding) = match path {
        None => (None, None),
        Some(p) => {
            let first = split(root, h, p, &mut problems);
            let (now, earlier) = match (sample, first) {
                (Some(d), Some(f)) => {
                    let t = std::time::Instant::now();
                    crate::progress::wait(d, "second sample");
                    let second = split(root, h, p, &mut problems);
                    (second, Some((f, t.elapsed().as_secs_f64())))
                }
                (_, f) => (f, None),
            };
            match now {
                Some((k, lim)) => {
                    let f = crate::rules::kmem::verdict(
                        &k,
                        lim.as_ref().map(|(b, s)| (*b, s.as_str())),
                        earlier.as_ref().map(|((e, _), s)| (e, *s)),
                    );
                    (Some(k), Some(f))
                }
                None => (None, None),
            }
        }
    };
    KernelReport {
        cgroup: path.map(str::to_string),
        split: split_now,
        finding,
        node: node(root, &mut problems),
        problems,
    }
}
