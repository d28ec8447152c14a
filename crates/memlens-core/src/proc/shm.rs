//! Where a cgroup's shmem lives: the tmpfs mounts its processes see (with statfs usage) and
//! the SysV shared memory segments they created or last used.
//!
//! shmem is counted in the cgroup's page cache but cannot be dropped without swap
//! (Documentation/admin-guide/cgroup-v1/memory.rst 2.2.1, cgroup-v2.rst "memory.stat":
//! `shmem`), so "which mount, which segment" is the useful answer. A page is charged to the
//! cgroup that first touched it, so a mount's usage is evidence, not a per-cgroup figure.

use crate::model::{SysvSegment, TmpfsMount};
use crate::sys::{ReadError, Root};
use procfs_core::FromBufRead;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File system types whose pages are shmem.
const SHMEM_FS: &[&str] = &["tmpfs", "shm", "devtmpfs"];

/// The memory-backed mounts the processes `pids` see, one per file system instance
/// (`major:minor`), with statfs(2) usage taken through `/proc/PID/root` so a container's mounts
/// are measured from the host. Returns the mounts and the problems met.
pub fn tmpfs_mounts(root: &Root, pids: &[i32]) -> (Vec<TmpfsMount>, Vec<String>) {
    let mut by_dev: BTreeMap<String, TmpfsMount> = BTreeMap::new();
    let mut problems = Vec::new();
    for &pid in pids {
        let path = PathBuf::from(format!("/proc/{pid}/mountinfo"));
        let text = match root.read(&path) {
            Ok(t) => t,
            Err(ReadError::Missing { .. }) => continue,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        if text.trim().is_empty() {
            problems.push(format!(
                "{}: empty (every process sees at least its root mount): its mounts are unknown",
                path.display()
            ));
        }
        // Every mount's parent is listed, but the root's (outside the process's root): more
        // than one orphan means lines were spliced or damaged (proc_pid_mountinfo(5)).
        let parsed: Vec<(usize, procfs_core::process::MountInfo)> = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| Some((i + 1, procfs_core::process::MountInfo::from_line(l).ok()?)))
            .collect();
        let ids: std::collections::HashSet<i32> = parsed.iter().map(|(_, m)| m.mnt_id).collect();
        // Roots: mounts whose parent is not listed, or is themselves (the namespace root).
        let roots: Vec<usize> = parsed
            .iter()
            .filter(|(_, m)| !ids.contains(&m.pid) || m.pid == m.mnt_id)
            .map(|(n, _)| *n)
            .collect();
        if let Some(second) = roots.get(1) {
            problems.push(format!(
                "{} line {second}: a second mount without a listed parent ({} in all; a mount namespace has one root): the file is damaged; its mounts may be wrong",
                path.display(),
                roots.len()
            ));
        }
        if ids.len() < parsed.len() {
            problems.push(format!(
                "{}: {} duplicate mount IDs: the file is damaged; its mounts may be wrong",
                path.display(),
                parsed.len() - ids.len()
            ));
        }
        let mut bad_lines = 0usize;
        for (i, line) in text.lines().enumerate() {
            if procfs_core::process::MountInfo::from_line(line).is_err() && !line.trim().is_empty()
            {
                bad_lines += 1;
                if bad_lines <= 3 {
                    problems.push(format!(
                        "{} line {}: not a mountinfo line: {:?}; ignored",
                        path.display(),
                        i + 1,
                        line.chars().take(60).collect::<String>()
                    ));
                }
            }
        }
        let mounts: Vec<procfs_core::process::MountInfo> =
            parsed.into_iter().map(|(_, m)| m).collect();
        for (i, m) in mounts.iter().enumerate() {
            if !SHMEM_FS.contains(&m.fs_type.as_str()) {
                continue;
            }
            // Over-mounted (a later mount at the same point hides it): statfs through its
            // path would measure the mount on top, counting that one twice.
            if mounts[i + 1..]
                .iter()
                .any(|later| later.mount_point == m.mount_point)
            {
                continue;
            }
            let mp = m.mount_point.to_string_lossy().into_owned();
            if let Some(t) = by_dev.get_mut(&m.majmin) {
                if !t.pids.contains(&pid) {
                    t.pids.push(pid);
                }
                // Prefer the well-known name when one instance is mounted twice.
                if mp == "/dev/shm" {
                    t.mount_point = mp;
                }
                continue;
            }
            let seen_from =
                Path::new(&format!("/proc/{pid}/root")).join(mp.trim_start_matches('/'));
            let (size_bytes, used_bytes, source) = match root.statfs(&seen_from) {
                Ok((blocks, bfree, bsize)) => (
                    Some(blocks.saturating_mul(bsize)),
                    Some(blocks.saturating_sub(bfree).saturating_mul(bsize)),
                    format!(
                        "statfs({}): (f_blocks − f_bfree) × f_bsize",
                        seen_from.display()
                    ),
                ),
                Err(e) => {
                    if !matches!(e, ReadError::Missing { .. }) {
                        problems.push(e.to_string());
                    }
                    (
                        None,
                        None,
                        format!("statfs({}) failed: {e}", seen_from.display()),
                    )
                }
            };
            // Name the largest files of a mount that holds something (what to delete).
            let largest = if used_bytes.is_some_and(|u| u >= 1 << 20) {
                root.largest_files(&seen_from, 3).unwrap_or_default()
            } else {
                Vec::new()
            };
            by_dev.insert(
                m.majmin.clone(),
                TmpfsMount {
                    mount_point: mp,
                    fs_type: m.fs_type.clone(),
                    device: m.majmin.clone(),
                    pids: vec![pid],
                    size_bytes,
                    used_bytes,
                    source,
                    largest,
                },
            );
        }
    }
    let mut v: Vec<TmpfsMount> = by_dev.into_values().collect();
    v.sort_by(|a, b| {
        b.used_bytes
            .cmp(&a.used_bytes)
            .then(a.mount_point.cmp(&b.mount_point))
    });
    (v, problems)
}

/// The SysV shm segments (/proc/sysvipc/shm) whose creator or last user is one of `pids`.
/// `None` when the kernel has no SysV IPC (CONFIG_SYSVIPC off). Only the reader's IPC
/// namespace is listed: a container with its own IPC namespace shows none from the host.
pub fn sysv_segments(root: &Root, pids: &[i32]) -> (Option<Vec<SysvSegment>>, Vec<String>) {
    let path = Path::new("/proc/sysvipc/shm");
    let text = match root.read(path) {
        Ok(t) => t,
        Err(ReadError::Missing { .. }) => return (None, Vec::new()),
        Err(e) => return (None, vec![e.to_string()]),
    };
    if !text.trim_start().starts_with("key") {
        return (
            None,
            vec![
                ReadError::parse(
                    path,
                    "no header line (the kernel always prints one): the file is cut or damaged",
                )
                .to_string(),
            ],
        );
    }
    match parse_sysv(&text) {
        Ok(all) => (
            Some(
                all.into_iter()
                    .filter(|s| pids.contains(&s.cpid) || pids.contains(&s.lpid))
                    .collect(),
            ),
            Vec::new(),
        ),
        Err(e) => (None, vec![ReadError::parse(path, e).to_string()]),
    }
}

/// Parses /proc/sysvipc/shm (procfs-core's parser; the header line is skipped).
pub fn parse_sysv(text: &str) -> Result<Vec<SysvSegment>, String> {
    let segs = procfs_core::SharedMemorySegments::from_buf_read(text.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(segs
        .0
        .into_iter()
        .map(|s| SysvSegment {
            shmid: s.shmid,
            key: s.key,
            size_bytes: s.size,
            rss_bytes: s.rss,
            swap_bytes: s.swap,
            cpid: s.cpid,
            lpid: s.lpid,
            nattch: s.nattch,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysv_text_from_6_18() {
        let t = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n         0          5   600              33554432  4242  4242      1     0     0     0     0 1700000000          0 1700000000              33554432                     0\n";
        let v = parse_sysv(t).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].rss_bytes, 32 << 20);
        assert_eq!(v[0].cpid, 4242);
    }
}
