//! The kernel's own OOM-kill counters, per cgroup, and being told when they change.
//!
//! Where the counter lives (Documentation/admin-guide/cgroup-v2.rst "memory.events",
//! cgroup-v1/memory.rst "memory.oom_control"; mm/memcontrol.c `memcg_memory_event`):
//! - v2 `memory.events.local` `oom_kill` (5.2+): kills of this cgroup's own tasks.
//!   `memory.events` counts the cgroup and its descendants; on kernels without the `.local`
//!   file the local count is derived from it (own change minus the children's changes).
//!   A change of `memory.events` raises a file-modified event, so v2 is watched with inotify.
//! - v1 `memory.oom_control` `oom_kill` (4.13+): local only, and no file event; v1 is polled.
//!   The v1 eventfd notification would wake faster but needs a write to every cgroup's
//!   `cgroup.event_control`, and memlens writes only to what it created (see `owned`).
//!
//! The kill is counted in the memcg of the victim's mm (`task_memcg` in the kernel's report),
//! not necessarily the memcg whose limit was hit (`oom_memcg`).

use super::read::fs_path;
use crate::model::{Hierarchy, Version};
use crate::sys::Root;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// OOM kills counted by the kernel for each cgroup of a hierarchy, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OomCounts {
    /// cgroup path → kills of its own tasks (`None`: the kernel does not count, pre-4.13).
    pub local: BTreeMap<String, Option<u64>>,
}

/// `oom_kill` from a flat keyed file.
fn oom_kill(root: &Root, file: &Path) -> Option<u64> {
    oom_kill_read(root, file).ok().flatten()
}

/// `oom_kill` from a flat keyed file; `Err` when the file could not be read.
fn oom_kill_read(root: &Root, file: &Path) -> Result<Option<u64>, crate::sys::ReadError> {
    let text = root.read(file)?;
    let (kv, _) = super::parse::flat_keyed(&text);
    Ok(kv.get("oom_kill"))
}

/// Reads the local OOM-kill count of every cgroup in `paths` (parents before children, as
/// [`super::walk::all_paths`] lists them). A cgroup removed meanwhile is left out.
pub fn read_counts(root: &Root, h: &Hierarchy, paths: &[String]) -> OomCounts {
    let mut local = BTreeMap::new();
    let mut hier: BTreeMap<&str, Option<u64>> = BTreeMap::new();
    for p in paths {
        let dir = fs_path(h, p);
        if p == "/" {
            // The root cgroup has no OOM counter of its own (v2 has no memory.events there,
            // and a v1 root limit cannot be set).
            continue;
        }
        match h.version {
            Version::V1 => {
                // The file first: the directory is looked up only when it fails (a cgroup
                // removed meanwhile is left out). One path walk less per cgroup per poll:
                // the recorder and `oom --follow` poll every v1 cgroup.
                match oom_kill_read(root, &dir.join("memory.oom_control")) {
                    Ok(n) => {
                        local.insert(p.clone(), n);
                    }
                    Err(_) if root.exists(&dir) => {
                        local.insert(p.clone(), None);
                    }
                    Err(_) => {}
                }
            }
            Version::V2 => {
                let l = dir.join("memory.events.local");
                if root.exists(&l) {
                    local.insert(p.clone(), oom_kill(root, &l));
                } else if root.exists(&dir) {
                    hier.insert(p, oom_kill(root, &dir.join("memory.events")));
                }
            }
        }
    }
    // Pre-5.2 v2: local = own (hierarchical) count minus the children's.
    for (p, own) in &hier {
        let prefix = format!("{p}/");
        let children: u64 = hier
            .iter()
            .filter(|(c, _)| {
                c.strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
            })
            .filter_map(|(_, v)| *v)
            .sum();
        local.insert(p.to_string(), own.map(|o| o.saturating_sub(children)));
    }
    OomCounts { local }
}

/// The increases from `before` to `after`: (cgroup, new kills). A cgroup that appeared since
/// `before` counts from zero (it may have been created and OOM-killed in between).
pub fn increases(before: &OomCounts, after: &OomCounts) -> Vec<(String, u64)> {
    after
        .local
        .iter()
        .filter_map(|(p, now)| {
            let now = (*now)?;
            let was = before.local.get(p).copied().flatten().unwrap_or(0);
            (now > was).then(|| (p.clone(), now - was))
        })
        .collect()
}

/// File-modified events on the v2 `memory.events` of every watched cgroup.
pub struct EventsWatch {
    inotify: Inotify,
    watches: HashMap<WatchDescriptor, String>,
    by_path: HashMap<String, WatchDescriptor>,
}

impl EventsWatch {
    /// An inotify instance with no watches yet (non-blocking).
    pub fn new() -> nix::Result<Self> {
        Ok(EventsWatch {
            inotify: Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?,
            watches: HashMap::new(),
            by_path: HashMap::new(),
        })
    }

    /// Watches the cgroups of `paths` not yet watched, and forgets the ones not listed (gone).
    /// Returns how many watches could not be added (e.g. `fs.inotify.max_user_watches`).
    pub fn sync(&mut self, root: &Root, h: &Hierarchy, paths: &[String]) -> usize {
        let keep: std::collections::HashSet<&str> = paths.iter().map(String::as_str).collect();
        let gone: Vec<String> = self
            .by_path
            .keys()
            .filter(|p| !keep.contains(p.as_str()))
            .cloned()
            .collect();
        for p in gone {
            if let Some(wd) = self.by_path.remove(&p) {
                self.watches.remove(&wd);
                // The kernel drops the watch itself when the file goes (IN_IGNORED); an error
                // here only means it already did.
                let _ = self.inotify.rm_watch(wd);
            }
        }
        let mut failed = 0;
        for p in paths.iter().filter(|p| p.as_str() != "/") {
            if self.by_path.contains_key(p) {
                continue;
            }
            // The real path: under --host-root the files are below the host's mount.
            let Some(file) = root.real_path(&fs_path(h, p).join("memory.events")) else {
                failed += 1;
                continue;
            };
            match self.inotify.add_watch(&file, AddWatchFlags::IN_MODIFY) {
                Ok(wd) => {
                    self.watches.insert(wd, p.clone());
                    self.by_path.insert(p.clone(), wd);
                }
                Err(_) => failed += 1,
            }
        }
        failed
    }

    /// How many cgroups are watched.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// The cgroups whose `memory.events` changed since the last call (non-blocking).
    pub fn changed(&mut self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                if let Some(p) = self.watches.get(&e.wd)
                    && !out.contains(p)
                {
                    out.push(p.clone());
                }
            }
        }
        out
    }
}

impl AsFd for EventsWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[(&str, Option<u64>)]) -> OomCounts {
        OomCounts {
            local: v.iter().map(|(p, c)| (p.to_string(), *c)).collect(),
        }
    }

    #[test]
    fn increases_count_new_cgroups_from_zero_and_skip_uncounted() {
        let a = counts(&[("/a", Some(1)), ("/b", None), ("/c", Some(2))]);
        let b = counts(&[
            ("/a", Some(2)),
            ("/b", None),
            ("/c", Some(2)),
            ("/new", Some(1)),
        ]);
        assert_eq!(
            increases(&a, &b),
            vec![("/a".to_string(), 1), ("/new".to_string(), 1)]
        );
    }
}
