//! The one place that writes to a cgroup memlens did not create: `memlens zombies --reclaim
//! PATH`, and only to the cgroup the user named.
//!
//! - v1: `memory.force_empty` (Documentation/admin-guide/cgroup-v1/memory.rst 5.1): reclaims
//!   every page it can from the cgroup, so a later rmdir does not leave a dying memcg holding
//!   page cache. Anon pages of running tasks cannot be dropped (without swap).
//! - v2: `memory.reclaim` (cgroup-v2.rst "memory.reclaim", Linux 5.19+): proactive reclaim of
//!   the given amount; the write fails with EAGAIN when less could be reclaimed. The best
//!   request the kernel accepts is used ([`reclaim_requests`]); a kernel without the file
//!   (5.10 to 5.18) gets nothing written and an error that says so.

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

/// What to write to v2 memory.reclaim for `amount` bytes, best first. `swappiness=0` ("mm: add
/// swappiness= arg to memory.reclaim"; Debian's 6.12 takes it, measured in tests/vm/run) keeps
/// reclaim to page cache: anon and shmem pages would only move to swap, where they still pin
/// the memcg. Kernels without the argument reject the whole write with EINVAL, so the plain
/// amount comes next.
pub fn reclaim_requests(amount: u64) -> [String; 2] {
    let n = amount.max(1);
    [format!("{n} swappiness=0"), n.to_string()]
}

/// Writes the first of [`reclaim_requests`] the kernel accepts through `write` (which opens
/// memory.reclaim however the caller must); returns the request used and the last write's
/// result (EAGAIN: reclaimed less than asked).
pub fn write_reclaim(
    amount: u64,
    mut write: impl FnMut(&str) -> io::Result<()>,
) -> (String, io::Result<()>) {
    let reqs = reclaim_requests(amount);
    let last = reqs.len() - 1;
    for (i, req) in reqs.into_iter().enumerate() {
        match write(&req) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && i < last => continue,
            r => return (req, r),
        }
    }
    // Unreachable: the last request always returns above.
    (String::new(), Ok(()))
}

/// Reclaims the cgroup at `path`: v1 writes `0` to memory.force_empty, v2 writes `amount` bytes
/// to memory.reclaim (with `swappiness=0` where the kernel takes it). Refuses the root cgroup
/// (the kernel does too, on v1). Returns the outcome and what was written.
///
/// The file is opened relative to a handle on the cgroup directory that [`handle::open`]
/// verified (reached without `..` or symlinks, on cgroupfs), write-only and without
/// `O_CREAT`: a file the kernel does not provide is an error, never created.
pub fn reclaim(
    root: &Root,
    h: &Hierarchy,
    path: &str,
    amount: u64,
) -> io::Result<(Outcome, String)> {
    if path.trim_matches('/').is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to reclaim the root cgroup: name the cgroup to empty",
        ));
    }
    let dir = fs_path(h, path);
    let file = match h.version {
        Version::V1 => "memory.force_empty",
        Version::V2 => "memory.reclaim",
    };
    let p = dir.join(file);
    let fd = handle::open(root, h, path)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let write = |v: &str| {
        nix::fcntl::openat(
            &fd,
            file,
            OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .and_then(|f| std::fs::File::from(f).write_all(v.as_bytes()))
    };
    let (value, res) = match h.version {
        Version::V1 => ("0".to_string(), write("0")),
        Version::V2 => write_reclaim(amount, write),
    };
    match res {
        Ok(()) => Ok((Outcome::Done, value)),
        Err(e) if h.version == Version::V2 && e.raw_os_error() == Some(libc::ENOENT) => {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{} is missing: memory.reclaim arrived in Linux 5.19, and an older kernel has no other way to reclaim a cgroup v2 on request without changing its limits; nothing was written",
                    p.display()
                ),
            ))
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EBUSY)) => {
            Ok((Outcome::Partial(format!("{}: {e}", p.display())), value))
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot write {value:?} to {}: {e}", p.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swappiness_first_then_plain_amount() {
        assert_eq!(reclaim_requests(0), ["1 swappiness=0", "1"]);
        let mut seen = Vec::new();
        // A kernel without the argument (6.12 and older): EINVAL, then the plain amount.
        let (used, r) = write_reclaim(4096, |v| {
            seen.push(v.to_string());
            if v.contains("swappiness") {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                Ok(())
            }
        });
        assert_eq!((used.as_str(), r.is_ok()), ("4096", true));
        assert_eq!(seen, ["4096 swappiness=0", "4096"]);
        // EAGAIN (reclaimed less) on the first request is the answer, not a reason to retry.
        let (used, r) = write_reclaim(4096, |_| Err(io::Error::from_raw_os_error(libc::EAGAIN)));
        assert_eq!(used, "4096 swappiness=0");
        assert_eq!(r.err().and_then(|e| e.raw_os_error()), Some(libc::EAGAIN));
    }
}
