//! Listing every cgroup of a hierarchy.
//!
//! [`all_paths`] walks the directories (one readdir per cgroup). A node agent that lists the
//! cgroups every few seconds keeps a [`Tree`] instead: it watches every cgroup directory with
//! inotify and walks again only after a cgroup was created or removed (mkdir/rmdir on cgroupfs
//! raise IN_CREATE/IN_DELETE on the parent, as on any file system; cAdvisor discovers
//! containers the same way). With 1,000 cgroups the walk is about a fifth of a collection.

use super::read::{fs_path, normalise};
use crate::model::Hierarchy;
use crate::sys::Root;
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::HashMap;

/// Every cgroup path under `start` (itself included), depth first, parents before children.
/// A directory that vanishes during the walk is skipped.
pub fn all_paths(root: &Root, h: &Hierarchy, start: &str) -> Vec<String> {
    walk(root, h, start, |_| ())
}

/// The walk, calling `before_listing` on each directory before reading it (so a watch is in
/// place before the listing it guards: a child created after the listing raises an event).
fn walk(
    root: &Root,
    h: &Hierarchy,
    start: &str,
    mut before_listing: impl FnMut(&str),
) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![normalise(start)];
    while let Some(p) = stack.pop() {
        before_listing(&p);
        let Ok(children) = root.subdirs(&fs_path(h, &p)) else {
            continue;
        };
        for c in children.iter().rev() {
            stack.push(if p == "/" {
                format!("/{c}")
            } else {
                format!("{p}/{c}")
            });
        }
        out.push(p);
    }
    out
}

/// Cgroups created (or removed) in one [`Tree::paths`] call beyond which it walks the whole
/// hierarchy instead of updating the list one change at a time.
const MAX_INCREMENTAL: usize = 64;

/// The list of cgroups, kept current by inotify (see the module docs). Falls back to a walk
/// on every call when inotify is unavailable, a directory cannot be watched (e.g.
/// `fs.inotify.max_user_watches`), or the root is a capture.
pub struct Tree {
    paths: Vec<String>,
    inotify: Option<Inotify>,
    /// The cgroup each watch is on: a mkdir or rmdir names its parent's watch and the
    /// child, so only that subtree is walked or dropped (issue 20: a full walk of 10,000
    /// cgroups for each container started or stopped was a third of the recorder's CPU on a
    /// node whose cgroups come and go).
    watched: HashMap<WatchDescriptor, String>,
    stale: bool,
    generation: u64,
    walks: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// An empty tree; the first [`Tree::paths`] walks.
    pub fn new() -> Self {
        Tree {
            paths: Vec::new(),
            inotify: Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok(),
            watched: HashMap::new(),
            stale: true,
            generation: 0,
            walks: 0,
        }
    }

    /// Counts the walks: a caller keeping per-cgroup state drops removed cgroups' state
    /// when it changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many times the whole hierarchy was walked (the first call, a queue overflow, a
    /// rename; not a mkdir or rmdir, which walk or drop only their subtree).
    pub fn walks(&self) -> u64 {
        self.walks
    }

    /// Whether the list is maintained by inotify (else every call walks).
    pub fn watched(&self) -> bool {
        self.inotify.is_some()
    }

    /// Every cgroup, parents before children: the cached list, updated when a cgroup was
    /// created (its subtree walked, placed after its parent's) or removed (it and its
    /// descendants dropped) since the last call; walked whole after a queue overflow, a
    /// rename or an event on an unknown watch.
    pub fn paths(&mut self, root: &Root, h: &Hierarchy) -> &[String] {
        let mut created: Vec<String> = Vec::new();
        let mut removed = 0usize;
        let mut changed = false;
        match &self.inotify {
            Some(i) => {
                while let Ok(ev) = i.read_events() {
                    if ev.is_empty() {
                        break;
                    }
                    for e in ev {
                        let m = e.mask;
                        if m.contains(AddWatchFlags::IN_IGNORED) {
                            // The watched directory is gone (its parent reports the rmdir).
                            self.watched.remove(&e.wd);
                            continue;
                        }
                        if !m.contains(AddWatchFlags::IN_ISDIR)
                            && !m.contains(AddWatchFlags::IN_Q_OVERFLOW)
                        {
                            continue;
                        }
                        let child = match (
                            self.watched.get(&e.wd),
                            e.name.as_ref().and_then(|n| n.to_str()),
                        ) {
                            (Some(parent), Some(name))
                                if m.intersects(
                                    AddWatchFlags::IN_CREATE | AddWatchFlags::IN_DELETE,
                                ) =>
                            {
                                if parent == "/" {
                                    format!("/{name}")
                                } else {
                                    format!("{parent}/{name}")
                                }
                            }
                            // Overflow, rename, a name that is not UTF-8, an unknown watch.
                            _ => {
                                self.stale = true;
                                continue;
                            }
                        };
                        changed = true;
                        removed += usize::from(!m.contains(AddWatchFlags::IN_CREATE));
                        if removed > MAX_INCREMENTAL {
                            self.stale = true;
                        }
                        if self.stale {
                            continue;
                        }
                        if m.contains(AddWatchFlags::IN_CREATE) {
                            created.push(child);
                        } else {
                            let under = format!("{child}/");
                            self.paths.retain(|p| *p != child && !p.starts_with(&under));
                            created.retain(|p| *p != child && !p.starts_with(&under));
                        }
                    }
                }
            }
            None => self.stale = true,
        }
        // Each change costs a pass over the list: past this many in one call (a burst of
        // containers started or stopped together), one walk costs less.
        if created.len() > MAX_INCREMENTAL {
            self.stale = true;
        }
        if self.stale {
            self.refresh(root, h);
            return &self.paths;
        }
        for c in created {
            if !self.paths.contains(&c) {
                self.insert_subtree(root, h, &c);
            }
        }
        if changed {
            self.generation += 1;
        }
        if self.stale {
            self.refresh(root, h);
        }
        &self.paths
    }

    /// Walks the new cgroup `p` (watching each directory) and puts it and its descendants
    /// after its parent's subtree.
    fn insert_subtree(&mut self, root: &Root, h: &Hierarchy, p: &str) {
        let mut all_watched = true;
        let (inotify, watched) = (self.inotify.as_ref(), &mut self.watched);
        let sub = walk(root, h, p, |d| {
            all_watched &= watch(inotify, watched, root, h, d);
        });
        if !all_watched {
            self.inotify = None;
            self.stale = true;
            return;
        }
        let parent = match p.rfind('/') {
            Some(0) | None => "/".to_string(),
            Some(i) => p[..i].to_string(),
        };
        let under = if parent == "/" {
            "/".to_string()
        } else {
            format!("{parent}/")
        };
        let at = match self.paths.iter().position(|q| *q == parent) {
            Some(i) => {
                i + 1
                    + self.paths[i + 1..]
                        .iter()
                        .take_while(|q| q.starts_with(&under))
                        .count()
            }
            // The parent went meanwhile (its rmdir is the next event).
            None => return,
        };
        let sub: Vec<String> = sub
            .into_iter()
            .filter(|q| !self.paths.contains(q))
            .collect();
        self.paths.splice(at..at, sub);
    }

    /// [`Tree::paths`], and whether the list was walked again by this call.
    pub fn paths_changed(&mut self, root: &Root, h: &Hierarchy) -> (&[String], bool) {
        let g = self.generation;
        self.paths(root, h);
        (&self.paths, self.generation != g)
    }

    fn refresh(&mut self, root: &Root, h: &Hierarchy) {
        let mut all_watched = true;
        let (inotify, watched) = (self.inotify.as_ref(), &mut self.watched);
        // A watch on a directory already watched returns its descriptor again; watches on
        // removed directories are dropped by the kernel. So re-adding them all is correct.
        self.paths = walk(root, h, "/", |p| {
            all_watched &= watch(inotify, watched, root, h, p);
        });
        if !all_watched {
            // A missed directory would hide its new children: walk every time instead.
            self.inotify = None;
        }
        self.stale = false;
        self.generation += 1;
        self.walks += 1;
    }
}

/// Watches cgroup directory `p` for mkdir/rmdir/rename of its children; whether it is
/// watched (or was removed meanwhile: its parent's IN_DELETE tells).
fn watch(
    inotify: Option<&Inotify>,
    watched: &mut HashMap<WatchDescriptor, String>,
    root: &Root,
    h: &Hierarchy,
    p: &str,
) -> bool {
    let mask = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ONLYDIR;
    match (inotify, root.real_path(&fs_path(h, p))) {
        (Some(i), Some(dir)) => match i.add_watch(&dir, mask) {
            Ok(wd) => {
                watched.insert(wd, p.to_string());
                true
            }
            Err(Errno::ENOENT) => true,
            Err(_) => false,
        },
        _ => false,
    }
}
