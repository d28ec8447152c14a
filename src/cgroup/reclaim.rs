//! The one place that writes to a cgroup memlens did not create: `memlens zombies --reclaim
//! PATH`, and only to the cgroup the user named.
//!
//! - v1: `memory.force_empty` (Documentation/admin-guide/cgroup-v1/memory.rst 5.1): reclaims
//!   every page it can from the cgroup, so a later rmdir does not leave a dying memcg holding
//!   page cache. Anon pages of running tasks cannot be dropped (without swap).
//! - v2: `memory.reclaim` (cgroup-v2.rst "memory.reclaim", Linux 5.19+): proactive reclaim of
//!   the given amount; the write fails with EAGAIN when less could be reclaimed.

use super::handle;
use super::read::fs_path;
use crate::model::{Hierarchy, Version};
use crate::sys::Root;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::io::{self, Write};

/// What the write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel reclaimed what was asked.
    Done,
    /// The kernel could not reclaim all of it (v2 EAGAIN, v1 EBUSY after its retries).
    Partial(String),
}

/// Reclaims the cgroup at `path`: v1 writes `0` to memory.force_empty, v2 writes `amount` bytes
/// to memory.reclaim. Refuses the root cgroup (the kernel does too, on v1).
///
/// The file is opened relative to a handle on the cgroup directory that [`handle::open`]
/// verified (reached without `..` or symlinks, on cgroupfs), write-only and without
/// `O_CREAT`: a file the kernel does not provide is an error, never created.
pub fn reclaim(root: &Root, h: &Hierarchy, path: &str, amount: u64) -> io::Result<Outcome> {
    if path.trim_matches('/').is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to reclaim the root cgroup: name the cgroup to empty",
        ));
    }
    let dir = fs_path(h, path);
    let (file, value) = match h.version {
        Version::V1 => ("memory.force_empty", "0".to_string()),
        Version::V2 => ("memory.reclaim", amount.max(1).to_string()),
    };
    let p = dir.join(file);
    let fd = handle::open(root, h, path)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let written = nix::fcntl::openat(
        &fd,
        file,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .and_then(|f| std::fs::File::from(f).write_all(value.as_bytes()));
    match written {
        Ok(()) => Ok(Outcome::Done),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EBUSY)) => {
            Ok(Outcome::Partial(format!("{}: {e}", p.display())))
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot write {value:?} to {}: {e}", p.display()),
        )),
    }
}
