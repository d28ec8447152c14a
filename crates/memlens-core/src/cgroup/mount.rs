//! Finding the memory controller's hierarchy from `/proc/self/mountinfo`.
//!
//! Pure v1 hosts mount a `cgroup` file system with the `memory` super option; pure v2 hosts
//! mount one `cgroup2` whose `cgroup.controllers` lists `memory`; hybrid hosts (this project's
//! CI machine among them) have both, with memory bound to v1 and a controller-less cgroup2 at
//! `/sys/fs/cgroup/unified`. A controller is bound to one hierarchy at a time, so at most one
//! candidate has memory; bind mounts of it elsewhere are ignored in favour of the one whose
//! root is shallowest.

use crate::model::{Hierarchy, Version};
use crate::sys::{ReadError, Root};
use std::path::{Path, PathBuf};

/// A mountinfo line that mounts a cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// v1 or v2.
    pub version: Version,
    /// Mount point.
    pub mount_point: PathBuf,
    /// Root of the mount within the hierarchy.
    pub root: String,
    /// v1: the controllers in the super options (`memory`, `cpu`, `name=systemd`...).
    pub options: Vec<String>,
}

/// Every cgroup mount in a mountinfo text. Lines that do not parse are skipped: a mountinfo
/// has hundreds of lines we do not care about.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    cgroup_mounts_checked(mountinfo).0
}

/// [`cgroup_mounts`], with the lines that do not parse as mountinfo (`line N: ...`).
pub fn cgroup_mounts_checked(mountinfo: &str) -> (Vec<CgroupMount>, Vec<String>) {
    let mut bad = Vec::new();
    let mounts = mountinfo
        .lines()
        .enumerate()
        .filter_map(
            |(i, l)| match procfs_core::process::MountInfo::from_line(l) {
                Ok(m) => Some(m),
                Err(_) => {
                    if !l.trim().is_empty() {
                        bad.push(format!(
                            "line {}: not a mountinfo line: {:?}",
                            i + 1,
                            l.chars().take(60).collect::<String>()
                        ));
                    }
                    None
                }
            },
        )
        .filter_map(|m| {
            let version = match m.fs_type.as_str() {
                "cgroup" => Version::V1,
                "cgroup2" => Version::V2,
                _ => return None,
            };
            let mut options: Vec<String> = m
                .super_options
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            options.sort();
            Some(CgroupMount {
                version,
                mount_point: m.mount_point,
                root: m.root,
                options,
            })
        })
        .collect();
    (mounts, bad)
}

/// Why no memory hierarchy was found.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// /proc/self/mountinfo could not be read.
    #[error("cannot find the cgroup mounts: {0}")]
    Mountinfo(#[from] ReadError),
    /// No mount carries the memory controller.
    #[error(
        "no memory cgroup controller is mounted (looked for a `cgroup` mount with the `memory` option and a `cgroup2` mount whose cgroup.controllers lists `memory`; found: {found})"
    )]
    NoMemory {
        /// Human list of the cgroup mounts that were found.
        found: String,
    },
}

/// Finds the hierarchy holding the memory controller.
pub fn memory_hierarchy(root: &Root) -> Result<Hierarchy, MountError> {
    let path = root.mountinfo_path();
    let text = root.read(path)?;
    if text.trim().is_empty() {
        return Err(MountError::Mountinfo(ReadError::parse(
            path,
            "empty file (the kernel lists at least the root mount)",
        )));
    }
    let (mounts, bad) = cgroup_mounts_checked(&text);
    let n_bad = bad.len();
    for b in bad.into_iter().take(5) {
        root.note_problem(format!("{}: {b}; the line is ignored", path.display()));
    }
    if n_bad > 5 {
        root.note_problem(format!(
            "{}: {} more lines that are not mountinfo",
            path.display(),
            n_bad - 5
        ));
    }
    let mut best: Option<&CgroupMount> = None;
    for m in &mounts {
        let has_memory = match m.version {
            Version::V1 => m.options.iter().any(|o| o == "memory"),
            Version::V2 => match root.read(&m.mount_point.join("cgroup.controllers")) {
                Ok(c) => c.split_whitespace().any(|w| w == "memory"),
                Err(ReadError::Missing { .. }) => false,
                Err(e) => {
                    root.note_problem(format!(
                        "{e} (a cgroup2 mount listed in {}: whether it holds the memory controller is unknown)",
                        path.display()
                    ));
                    false
                }
            },
        };
        if !has_memory {
            continue;
        }
        let depth = |m: &CgroupMount| m.root.matches('/').count();
        if best.is_none_or(|b| depth(m) < depth(b)) {
            best = Some(m);
        }
    }
    match best {
        Some(m) => Ok(Hierarchy {
            version: m.version,
            mount_point: m.mount_point.clone(),
            mount_root: m.root.clone(),
        }),
        None => Err(MountError::NoMemory {
            found: if mounts.is_empty() {
                "none".into()
            } else {
                mounts
                    .iter()
                    .map(|m| {
                        format!(
                            "{} at {} ({})",
                            if m.version == Version::V1 {
                                "cgroup"
                            } else {
                                "cgroup2"
                            },
                            m.mount_point.display(),
                            m.options.join(",")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        }),
    }
}

/// The memory cgroup of a process, from `/proc/PID/cgroup` (`N:memory:/path` on v1,
/// `0::/path` on v2), as a path within the hierarchy *as mounted*: when the mount's root is
/// not `/` (a container seeing its own cgroup bind-mounted, without a cgroup namespace) the
/// mount root is stripped, so the result can be joined to the mount point.
pub fn process_cgroup(root: &Root, h: &Hierarchy, pid: &str) -> Result<String, ReadError> {
    let path = PathBuf::from(format!("/proc/{pid}/cgroup"));
    let text = root.read(&path)?;
    let found = text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_id, ctrls, p) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match h.version {
            Version::V1 => ctrls.split(',').any(|c| c == "memory"),
            Version::V2 => ctrls.is_empty(),
        };
        wanted.then(|| p.to_string())
    });
    let p = found.ok_or_else(|| {
        ReadError::parse(
            &path,
            format!(
                "no {} line (the process is not in the memory hierarchy)",
                if h.version == Version::V1 {
                    "`memory` controller"
                } else {
                    "cgroup v2 (`0::`)"
                }
            ),
        )
    })?;
    Ok(strip_mount_root(&h.mount_root, &p))
}

/// The path of hierarchy path `p` on the host: under a mount whose root is a container's
/// cgroup (v1 inside docker: `/docker/ID`), `p` is relative to it.
pub fn host_path(h: &Hierarchy, p: &str) -> String {
    match (h.mount_root.as_str(), p) {
        ("/", _) => p.to_string(),
        (r, "/") => r.to_string(),
        (r, _) => format!("{}{p}", r.trim_end_matches('/')),
    }
}

/// Why the hierarchy memlens sees is a container's own and not the node's, if it is: a
/// cgroup mount whose root is not `/` (v1 in docker: `/docker/ID`), or, on the live system,
/// a v2 cgroup namespace inside a container (`/.dockerenv`, podman's `/run/.containerenv`),
/// whose host path the kernel hides. Node-level figures (kubelet memory.available, dying
/// cgroups) would be those of the container's subtree, so they are n/a with this reason.
pub fn container_scope(root: &Root, h: &Hierarchy) -> Option<String> {
    if h.mount_root != "/" {
        return Some(format!(
            "memlens sees only the cgroup subtree {} (its mount's root: run inside a container without --host-root)",
            h.mount_root
        ));
    }
    let in_container = root.is_live()
        && (root.exists(Path::new("/.dockerenv")) || root.exists(Path::new("/run/.containerenv")));
    (h.version == Version::V2 && in_container).then(|| {
        "memlens runs in a container with a cgroup namespace: the hierarchy's root is the container's own cgroup (its host path is hidden)".to_string()
    })
}

/// Strips the mount's root from a /proc/PID/cgroup path ("/docker/x/y" under a mount of
/// "/docker/x" is "/y"). Paths outside the mount root are returned unchanged.
pub fn strip_mount_root(mount_root: &str, p: &str) -> String {
    if mount_root == "/" {
        return p.to_string();
    }
    match p.strip_prefix(mount_root) {
        Some("") => "/".into(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => p.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_v1_memory_on_hybrid_host() {
        let m = cgroup_mounts(HYBRID);
        assert_eq!(m.len(), 3);
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proc/self")).unwrap();
        std::fs::write(d.path().join("proc/self/mountinfo"), HYBRID).unwrap();
        let h = memory_hierarchy(&Root::dir(d.path())).unwrap();
        assert_eq!(h.version, Version::V1);
        assert_eq!(h.mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn strips_mount_root() {
        assert_eq!(strip_mount_root("/", "/a/b"), "/a/b");
        assert_eq!(strip_mount_root("/docker/x", "/docker/x"), "/");
        assert_eq!(strip_mount_root("/docker/x", "/docker/x/y"), "/y");
        assert_eq!(strip_mount_root("/docker/x", "/docker/xy"), "/docker/xy");
    }
}
