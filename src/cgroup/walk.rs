//! Listing every cgroup of a hierarchy.

use super::read::{fs_path, normalise};
use crate::model::Hierarchy;
use crate::sys::Root;

/// Every cgroup path under `start` (itself included), depth first, parents before children.
/// A directory that vanishes during the walk is skipped.
pub fn all_paths(root: &Root, h: &Hierarchy, start: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![normalise(start)];
    while let Some(p) = stack.pop() {
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
