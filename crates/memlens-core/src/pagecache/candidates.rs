//! Which files may hold a cgroup's page cache: those its processes have open
//! (`/proc/PID/fd`) or mapped (`/proc/PID/maps`), deleted ones included (opened through the
//! fd or `/proc/PID/map_files` link, which keeps working after unlink), the files under the
//! memory-backed and volume mounts its processes see (from their mountinfo), and directories
//! the user names (`--path`). The walks are bounded by a file count and a time.
//!
//! The kernel keeps no list of a memcg's files, so this is a search: a file read once by a
//! process that has since closed it is found only by a walk that reaches it.

use crate::sys::{ReadError, Root};
use std::collections::{BTreeSet, HashSet};
use std::os::unix::fs::{DirEntryExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A file to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The name to show (the path the process sees, ` (deleted)` removed).
    pub name: String,
    /// Where memlens opens it (a host path, or a /proc magic link).
    pub open: PathBuf,
    /// How it was found (`fd 4 of PID 123`, `mapped by PID 123`, `walk of /dev/shm`,
    /// `--path /data`).
    pub found: String,
    /// Unlinked but still open or mapped.
    pub deleted: bool,
    /// Device and inode (the same file found twice is scanned once).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// Bounds of the directory walks (the fd and maps lists are always read whole).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Stop walking after this many files in all.
    pub max_files: usize,
    /// Stop walking after this long.
    pub max_time: Duration,
}

/// The candidates and how the search went.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The files, each once.
    pub files: Vec<Candidate>,
    /// The directories walked (as shown), in order.
    pub walked: Vec<String>,
    /// Set when a bound stopped the walks: which and where.
    pub truncated: Option<String>,
    /// What could not be read.
    pub problems: Vec<String>,
}

/// File systems whose files hold no page cache worth naming, or are not files at all.
const SKIP_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "bpf",
    "pstore",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "hugetlbfs",
    "autofs",
    "devtmpfs",
    "nsfs",
    "efivarfs",
    "selinuxfs",
    "rpc_pipefs",
];

/// A mount point and, for an overlay, its layer directories (upper first).
type Mount = (String, Option<Vec<String>>);

struct Search<'a> {
    root: &'a Root,
    /// Per PID, its mounts: (mount point, for an overlay its layer directories upper first).
    overlays: std::collections::HashMap<i32, Vec<Mount>>,
    seen: HashSet<(u64, u64)>,
    /// Walk roots already walked (one tmpfs mounted twice is walked once).
    roots: HashSet<(u64, u64)>,
    out: Found,
    started: Instant,
    bounds: Bounds,
    walked_files: usize,
}

impl Search<'_> {
    /// The file under an overlay mount (a container's `/`) that `name`, as process `pid`
    /// sees it, really is: the first of the upper and lower layers holding it. A file opened
    /// through overlayfs has page cache only on the layer's inode (overlayfs passes reads and
    /// mappings to the real file), so cachestat and mincore must look at that one (and the
    /// walk of the writable layer then finds the same inode, named as the process sees it).
    fn overlay_real(&mut self, pid: i32, name: &str) -> Option<PathBuf> {
        if !self.overlays.contains_key(&pid) {
            let text = self
                .root
                .read(Path::new(&format!("/proc/{pid}/mountinfo")))
                .unwrap_or_default();
            let mut v = Vec::new();
            for line in text.lines() {
                let Ok(m) = procfs_core::process::MountInfo::from_line(line) else {
                    continue;
                };
                let mp = m.mount_point.to_string_lossy().into_owned();
                if m.fs_type != "overlay" {
                    v.push((mp, None));
                    continue;
                }
                let opt = |k: &str| m.super_options.get(k).cloned().flatten();
                let mut layers: Vec<String> = opt("upperdir").into_iter().collect();
                // lowerdir=A:B (a `:` inside a path is written `\:`, rare enough to skip).
                if let Some(l) = opt("lowerdir").filter(|l| !l.contains("\\:")) {
                    layers.extend(l.split(':').map(str::to_string));
                }
                v.push((mp, Some(layers)));
            }
            // Shortest first, mount order kept among equals: searched from the end.
            v.sort_by_key(|(mp, _)| mp.len());
            self.overlays.insert(pid, v);
        }
        let mounts = self.overlays.get(&pid)?;
        // The deepest mount holding the path (a volume or /etc/hosts bind-mounted over the
        // overlay is not in its layers, which may hold an older copy); the last one mounted
        // there when several are.
        let (mp, layers) = mounts
            .iter()
            .rev()
            .find(|(mp, _)| mp == "/" || name == mp || name.starts_with(&format!("{mp}/")))?;
        let layers = layers.as_ref()?;
        let rel = name.strip_prefix(mp.as_str())?.trim_start_matches('/');
        if rel.is_empty() {
            return None;
        }
        // The first layer that has the name decides (an upper whiteout hides the lower copy).
        for l in layers {
            let p = self.real(&Path::new(l).join(rel));
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                return m.file_type().is_file().then_some(p);
            }
        }
        None
    }

    fn real(&self, sys: &Path) -> PathBuf {
        self.root
            .real_path(sys)
            .unwrap_or_else(|| sys.to_path_buf())
    }

    fn add(&mut self, name: String, open: PathBuf, found: String, deleted: bool) {
        let Ok(md) = std::fs::metadata(&open) else {
            return;
        };
        if !md.file_type().is_file() {
            return;
        }
        if self.seen.insert((md.dev(), md.ino())) {
            self.out.files.push(Candidate {
                name,
                open,
                found,
                deleted,
                dev: md.dev(),
                ino: md.ino(),
            });
        }
    }

    fn over(&mut self, at: &str) -> bool {
        if self.out.truncated.is_some() {
            return true;
        }
        if self.walked_files >= self.bounds.max_files {
            self.out.truncated = Some(format!(
                "stopped at --max-files {} (in {at})",
                self.bounds.max_files
            ));
            return true;
        }
        if self.started.elapsed() >= self.bounds.max_time {
            self.out.truncated = Some(format!(
                "stopped at --max-time {:?} (in {at})",
                self.bounds.max_time
            ));
            return true;
        }
        false
    }

    fn fds(&mut self, pid: i32) {
        let dir = PathBuf::from(format!("/proc/{pid}/fd"));
        let names = match self.root.entries(&dir) {
            Ok(n) => n,
            Err(ReadError::Missing { .. }) => return,
            Err(e) => {
                self.out.problems.push(e.to_string());
                return;
            }
        };
        for n in names {
            let link = self.real(&dir.join(&n));
            let Ok(target) = std::fs::read_link(&link) else {
                continue;
            };
            let t = target.to_string_lossy();
            if !t.starts_with('/') {
                // socket:[..], pipe:[..], anon_inode:[..]
                continue;
            }
            let (name, deleted) = strip_deleted(&t);
            let open = if deleted {
                None
            } else {
                self.overlay_real(pid, &name)
            };
            self.add(
                name,
                open.unwrap_or(link),
                format!("fd {n} of PID {pid}"),
                deleted,
            );
        }
    }

    fn maps(&mut self, pid: i32) {
        let p = PathBuf::from(format!("/proc/{pid}/maps"));
        let text = match self.root.read(&p) {
            Ok(t) => t,
            Err(ReadError::Missing { .. }) => return,
            Err(e) => {
                self.out.problems.push(e.to_string());
                return;
            }
        };
        let mut done = BTreeSet::new();
        for line in text.lines() {
            let mut it = line.splitn(6, char::is_whitespace);
            let range = it.next().unwrap_or("");
            let path = it.nth(4).map(str::trim_start).unwrap_or("");
            if !path.starts_with('/') || !done.insert(path.to_string()) {
                continue;
            }
            let (name, deleted) = strip_deleted(path);
            // A deleted mapping is reachable only through map_files; others through the
            // process's root (its mount namespace).
            let open = if deleted {
                self.real(Path::new(&format!("/proc/{pid}/map_files/{range}")))
            } else if let Some(p) = self.overlay_real(pid, &name) {
                p
            } else {
                self.real(
                    &Path::new(&format!("/proc/{pid}/root")).join(name.trim_start_matches('/')),
                )
            };
            self.add(name, open, format!("mapped by PID {pid}"), deleted);
        }
    }

    /// Walks `dir` (a real path) without crossing into other file systems, naming files
    /// `shown` + the relative path.
    fn walk(&mut self, dir: &Path, shown: &str, found: &str) {
        if self.over(shown) {
            return;
        }
        let Ok(top) = std::fs::symlink_metadata(dir) else {
            return;
        };
        if !self.roots.insert((top.dev(), top.ino())) {
            return;
        }
        self.out.walked.push(shown.to_string());
        if top.file_type().is_file() {
            self.walked_files += 1;
            self.add(
                shown.to_string(),
                dir.to_path_buf(),
                found.to_string(),
                false,
            );
            return;
        }
        let dev = top.dev();
        let mut stack = vec![(dir.to_path_buf(), shown.trim_end_matches('/').to_string())];
        while let Some((d, s)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for ent in rd.flatten() {
                if self.over(shown) {
                    return;
                }
                let Ok(ft) = ent.file_type() else { continue };
                let name = format!("{s}/{}", ent.file_name().to_string_lossy());
                if ft.is_dir() {
                    if let Ok(md) = ent.metadata()
                        && md.dev() == dev
                    {
                        stack.push((ent.path(), name));
                    }
                } else if ft.is_file() {
                    self.walked_files += 1;
                    let key = (dev, ent.ino());
                    if self.seen.insert(key) {
                        self.out.files.push(Candidate {
                            name,
                            open: ent.path(),
                            found: found.to_string(),
                            deleted: false,
                            dev,
                            ino: ent.ino(),
                        });
                    }
                } else if ft.is_fifo() || ft.is_socket() {
                    continue;
                }
            }
        }
    }
}

fn strip_deleted(p: &str) -> (String, bool) {
    match p.strip_suffix(" (deleted)") {
        Some(n) => (n.to_string(), true),
        None => (p.to_string(), false),
    }
}

/// The mount namespace of a process (`/proc/PID/ns/mnt` link text), to walk each once.
fn mnt_ns(root: &Root, pid: &str) -> Option<String> {
    let p = root.real_path(&PathBuf::from(format!("/proc/{pid}/ns/mnt")))?;
    std::fs::read_link(p)
        .ok()
        .map(|t| t.to_string_lossy().into_owned())
}

/// Finds the candidate files of the processes `pids`, of `paths` (the user's, system paths)
/// and of `dirs` (memlens's own choice of directories). `walk_mounts`: also walk the mounts
/// the processes see (see [`walk_plan`]).
pub fn collect(
    root: &Root,
    pids: &[i32],
    paths: &[PathBuf],
    dirs: &[PathBuf],
    walk_mounts: bool,
    bounds: Bounds,
) -> Found {
    collect_with(root, pids, paths, &[], dirs, walk_mounts, bounds)
}

/// [`collect`], with `labelled` directories walked first, each with how it was found (a
/// stopped container's writable layer or volume, `zombies --why`).
pub fn collect_with(
    root: &Root,
    pids: &[i32],
    paths: &[PathBuf],
    labelled: &[(PathBuf, String)],
    dirs: &[PathBuf],
    walk_mounts: bool,
    bounds: Bounds,
) -> Found {
    let mut s = Search {
        root,
        overlays: std::collections::HashMap::new(),
        seen: HashSet::new(),
        roots: HashSet::new(),
        out: Found::default(),
        started: Instant::now(),
        bounds,
        walked_files: 0,
    };
    for &pid in pids {
        s.fds(pid);
        s.maps(pid);
    }
    for p in paths {
        let real = s.real(p);
        let shown = p.display().to_string();
        s.walk(&real, &shown, &format!("--path {shown}"));
    }
    for (p, found) in labelled {
        let real = s.real(p);
        s.walk(&real, &p.display().to_string(), found);
    }
    for p in dirs {
        let real = s.real(p);
        let shown = p.display().to_string();
        s.walk(&real, &shown, &format!("walk of {shown}"));
    }
    if walk_mounts {
        let own = mnt_ns(root, "self");
        let mut done_ns = HashSet::new();
        for &pid in pids {
            let ns = mnt_ns(root, &pid.to_string());
            if !done_ns.insert(ns.clone()) {
                continue;
            }
            let mi = PathBuf::from(format!("/proc/{pid}/mountinfo"));
            let Ok(text) = root.read(&mi) else { continue };
            let foreign = ns.is_some() && ns != own;
            for (mp, upper) in walk_plan(&text, foreign) {
                match upper {
                    // The writable layer: a host path (the runtime mounted the overlay in
                    // the host's namespace).
                    Some(u) => {
                        let real = s.real(Path::new(&u));
                        s.walk(&real, &u, &format!("writable layer of PID {pid}'s /"));
                    }
                    None => {
                        let via = Path::new(&format!("/proc/{pid}/root"))
                            .join(mp.trim_start_matches('/'));
                        let real = s.real(&via);
                        s.walk(&real, &mp, &format!("walk of {mp} (PID {pid})"));
                    }
                }
            }
        }
    }
    s.out
}

/// The mounts worth walking in one mountinfo: every tmpfs (shmem: files that only go away
/// when deleted), and in a mount namespace other than memlens's own (a container) its
/// volumes (other mounts except `/` and pseudo file systems) and the overlay root's upperdir
/// (the writable layer). Returns (mount point, Some(upperdir) for the layer).
pub fn walk_plan(mountinfo: &str, foreign: bool) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Ok(m) = procfs_core::process::MountInfo::from_line(line) else {
            continue;
        };
        let mp = m.mount_point.to_string_lossy().into_owned();
        let fs = m.fs_type.as_str();
        if SKIP_FS.contains(&fs) || mp.starts_with("/proc") || mp.starts_with("/sys") {
            continue;
        }
        if fs == "tmpfs" || fs == "shm" {
            out.push((mp, None));
        } else if foreign {
            if mp == "/" {
                if fs == "overlay"
                    && let Some(Some(u)) = m.super_options.get("upperdir")
                {
                    out.push((mp, Some(u.clone())));
                }
            } else {
                out.push((mp, None));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_from_a_container_mountinfo() {
        // A docker container's mountinfo (6.18 host, overlay2), trimmed.
        let mi = "\
1200 1100 0:120 / / rw,relatime master:500 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work
1201 1200 0:123 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1202 1200 0:124 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
1206 1202 0:125 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k
1207 1200 254:0 /var/lib/docker/volumes/data/_data /data rw,relatime - ext4 /dev/vda rw
1208 1200 0:126 / /sys/fs/cgroup ro - tmpfs tmpfs rw
";
        let p = walk_plan(mi, true);
        assert_eq!(
            p,
            vec![
                (
                    "/".to_string(),
                    Some("/var/lib/docker/overlay2/abc/diff".to_string())
                ),
                ("/dev".to_string(), None),
                ("/dev/shm".to_string(), None),
                ("/data".to_string(), None),
            ]
        );
        // In memlens's own namespace only the tmpfs mounts.
        let own = walk_plan(mi, false);
        assert_eq!(own.len(), 2);
    }
}
