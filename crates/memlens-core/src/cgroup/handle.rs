//! Naming a cgroup safely: a target path is made canonical *lexically* (no `..`, no `.`, no
//! empty component, no NUL) and, on a live system, opened one component at a time beneath the
//! memory hierarchy's mount point with `O_PATH | O_NOFOLLOW | O_DIRECTORY`, each directory's
//! file system checked with `fstatfs` to be cgroup or cgroup2. So `show ../`,
//! `/../../../../etc`, a symlink planted in a capture or a bind mount of /tmp under the
//! hierarchy never make an ordinary directory look like a cgroup, and the one writer
//! (`reclaim.rs`) opens its file relative to the verified handle, never by path.
//!
//! Hand-written: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` would do the walk in one
//! call, but container seccomp profiles of the 5.x era answer it with ENOSYS/EPERM; the walk
//! by components is as strict and works everywhere.

use crate::model::Hierarchy;
use crate::sys::Root;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::statfs::{CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, fstatfs};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Why a target path was refused. Every case is a bad target (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `""` or only blanks.
    #[error("empty target: name a cgroup path, PID, container or pod (`/` is the root cgroup)")]
    Empty,
    /// A `..` component: a cgroup path never needs one, and it could leave the hierarchy.
    #[error("{0:?}: `..` is not allowed in a cgroup path (name the cgroup by its full path)")]
    DotDot(String),
    /// A NUL byte.
    #[error("{0:?}: the path contains a NUL byte")]
    Nul(String),
    /// Not a directory of the mounted memory hierarchy.
    #[error("{path:?}: not a memory cgroup ({reason})")]
    NotCgroup {
        /// The path as given.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The canonical form of a cgroup path within the hierarchy: `/` or `/a/b`, with `.` and empty
/// components dropped. `..` is refused rather than resolved: resolving it lexically would
/// accept `/a/../../etc` as `/etc`, and the kernel's resolution would follow symlinks.
pub fn canonical(path: &str) -> Result<String, PathError> {
    if path.contains('\0') {
        return Err(PathError::Nul(path.into()));
    }
    let mut out = String::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(PathError::DotDot(path.into())),
            c => {
                out.push('/');
                out.push_str(c);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

fn is_cgroupfs(fd: impl AsFd) -> Result<(), String> {
    let st = fstatfs(fd).map_err(|e| format!("statfs: {e}"))?;
    let t = st.filesystem_type();
    if t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC {
        Ok(())
    } else {
        Err(format!(
            "on a file system of type {:#x}, not cgroup/cgroup2",
            t.0
        ))
    }
}

/// Opens the cgroup directory `path` (canonical, see [`canonical`]) of hierarchy `h` on a live
/// system (`root` live or `--host-root`): an `O_PATH` handle reached from the mount point one
/// component at a time without following symlinks, every step on cgroupfs.
pub fn open(root: &Root, h: &Hierarchy, path: &str) -> Result<OwnedFd, PathError> {
    let not = |reason: String| PathError::NotCgroup {
        path: path.into(),
        reason,
    };
    let mp = root
        .real_path(&h.mount_point)
        .ok_or_else(|| not("a capture archive has no directories to open".into()))?;
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut fd = nix::fcntl::open(&mp, dir_flags, Mode::empty())
        .map_err(|e| not(format!("{}: {e}", mp.display())))?;
    is_cgroupfs(&fd).map_err(|e| not(format!("mount point {}: {e}", mp.display())))?;
    let canon = canonical(path)?;
    let mut sofar = mp.clone();
    for c in canon.split('/').filter(|c| !c.is_empty()) {
        sofar.push(c);
        let next = nix::fcntl::openat(
            &fd,
            Path::new(c),
            dir_flags | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| {
            not(match e {
                nix::errno::Errno::ENOENT => format!("{} does not exist", sofar.display()),
                nix::errno::Errno::ENOTDIR | nix::errno::Errno::ELOOP => {
                    format!("{} is not a directory (or is a symlink)", sofar.display())
                }
                e => format!("{}: {e}", sofar.display()),
            })
        })?;
        is_cgroupfs(&next).map_err(|e| not(format!("{} is {e}", sofar.display())))?;
        fd = next;
    }
    Ok(fd)
}

/// Checks that `path` (canonical) names a cgroup directory: on a live system by [`open`]; in a
/// capture, that something was captured under it (a capture holds only cgroup files, and
/// [`canonical`] already keeps the path inside the capture).
pub fn verify(root: &Root, h: &Hierarchy, path: &str) -> Result<(), PathError> {
    if root.is_system() {
        return open(root, h, path).map(|_| ());
    }
    if root.exists(&super::read::fs_path(h, path)) {
        Ok(())
    } else {
        Err(PathError::NotCgroup {
            path: path.into(),
            reason: "not in the capture".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        assert_eq!(canonical("/").unwrap(), "/");
        assert_eq!(canonical("").unwrap(), "/");
        assert_eq!(canonical("./a//b/./").unwrap(), "/a/b");
        assert_eq!(
            canonical("/../../etc"),
            Err(PathError::DotDot("/../../etc".into()))
        );
        assert!(canonical("../").is_err());
        assert!(canonical("a/..").is_err());
        assert!(canonical("a\0b").is_err());
        // Names that merely contain dots are fine.
        assert_eq!(canonical("/a..b/...").unwrap(), "/a..b/...");
    }

    #[test]
    fn ordinary_directories_are_not_cgroups() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sys/fs/cgroup/memory/a")).unwrap();
        let h = Hierarchy {
            version: crate::model::Version::V1,
            mount_point: "/sys/fs/cgroup/memory".into(),
            mount_root: "/".into(),
        };
        // A --host-root whose "cgroup mount" is a plain directory (tmpfs/ext4): refused.
        let r = Root::host(d.path());
        let e = open(&r, &h, "/a").unwrap_err();
        assert!(e.to_string().contains("not cgroup/cgroup2"), "{e}");
    }
}
