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
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

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

/// The list of cgroups, kept current by inotify (see the module docs). Falls back to a walk
/// on every call when inotify is unavailable, a directory cannot be watched (e.g.
/// `fs.inotify.max_user_watches`), or the root is a capture.
pub struct Tree {
    paths: Vec<String>,
    inotify: Option<Inotify>,
    stale: bool,
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
            stale: true,
        }
    }

    /// Whether the list is maintained by inotify (else every call walks).
    pub fn watched(&self) -> bool {
        self.inotify.is_some()
    }

    /// Every cgroup, parents before children: the cached list, or a new walk when a cgroup
    /// was created or removed since the last call (any event, including a queue overflow).
    pub fn paths(&mut self, root: &Root, h: &Hierarchy) -> &[String] {
        match &self.inotify {
            Some(i) => {
                while let Ok(ev) = i.read_events() {
                    if ev.is_empty() {
                        break;
                    }
                    self.stale = true;
                }
            }
            None => self.stale = true,
        }
        if self.stale {
            self.refresh(root, h);
        }
        &self.paths
    }

    fn refresh(&mut self, root: &Root, h: &Hierarchy) {
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_ONLYDIR;
        let mut all_watched = true;
        let inotify = self.inotify.as_ref();
        // A watch on a directory already watched returns its descriptor again; watches on
        // removed directories are dropped by the kernel. So re-adding them all is correct.
        self.paths = walk(root, h, "/", |p| {
            all_watched &= match (inotify, root.real_path(&fs_path(h, p))) {
                // Removed meanwhile: its parent's IN_DELETE makes the next call walk again.
                (Some(i), Some(dir)) => {
                    matches!(i.add_watch(&dir, mask), Ok(_) | Err(Errno::ENOENT))
                }
                _ => false,
            };
        });
        if !all_watched {
            // A missed directory would hide its new children: walk every time instead.
            self.inotify = None;
        }
        self.stale = false;
    }
}
