//! Memory cgroups memlens creates and owns: the only code in memlens that writes to /sys.
//!
//! Used by the real-kernel tests (`memlens-test-*`), `memlens run` and `memlens lab`. A cgroup
//! is created only under a name that starts with `memlens-`, written only while owned, and
//! removed on drop (after killing whatever is still in it), so a panicking test or an
//! interrupted run leaves nothing behind.

use super::read::fs_path;
use crate::model::{Hierarchy, Version};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A memory cgroup created by memlens. Removed when dropped.
#[derive(Debug)]
pub struct OwnedCgroup {
    version: Version,
    path: String,
    dir: PathBuf,
    removed: bool,
}

impl OwnedCgroup {
    /// Creates `parent/name` in hierarchy `h`. `name` must start with `memlens-`. On v2 the
    /// parent must already delegate the memory controller (`memory` in its
    /// `cgroup.subtree_control`); memlens never changes a cgroup it did not create.
    pub fn create(h: &Hierarchy, parent: &str, name: &str) -> io::Result<Self> {
        if !name.starts_with("memlens-") || name.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "refusing to create cgroup {name:?}: memlens only creates cgroups named memlens-*"
                ),
            ));
        }
        let parent_dir = fs_path(h, parent);
        if h.version == Version::V2 {
            let ctl = std::fs::read_to_string(parent_dir.join("cgroup.subtree_control"))
                .unwrap_or_default();
            if !ctl.split_whitespace().any(|c| c == "memory") {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "{} does not delegate the memory controller to its children (no `memory` in cgroup.subtree_control); memlens will not change a cgroup it did not create",
                        parent_dir.display()
                    ),
                ));
            }
        }
        let path = if parent.trim_matches('/').is_empty() {
            format!("/{name}")
        } else {
            format!("/{}/{name}", parent.trim_matches('/'))
        };
        let dir = fs_path(h, &path);
        std::fs::create_dir(&dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
        Ok(OwnedCgroup {
            version: h.version,
            path,
            dir,
            removed: false,
        })
    }

    /// Creates a child with any name *inside* this cgroup: tests build real runtime layouts
    /// (`docker/<64 hex>`, `kubepods.slice/...`, `system.slice/nginx.service`) under a
    /// `memlens-*` parent. The top level stays `memlens-*` only ([`OwnedCgroup::create`]), and
    /// an `OwnedCgroup` exists only for a cgroup memlens created, so every cgroup this creates
    /// is inside one of ours. On v2 the caller delegates `memory` first (`write`
    /// `cgroup.subtree_control`). Drop children before their parent.
    pub fn create_child(&self, name: &str) -> io::Result<Self> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid cgroup name {name:?}"),
            ));
        }
        let dir = self.dir.join(name);
        std::fs::create_dir(&dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
        Ok(OwnedCgroup {
            version: self.version,
            path: format!("{}/{name}", self.path),
            dir,
            removed: false,
        })
    }

    /// Path within the hierarchy.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// System path of its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `value` to one of its files.
    pub fn write(&self, file: &str, value: &str) -> io::Result<()> {
        let p = self.dir.join(file);
        std::fs::write(&p, value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot write {value:?} to {}: {e}", p.display()),
            )
        })
    }

    /// Sets the memory limit (`None`: unlimited): v1 `memory.limit_in_bytes`, v2 `memory.max`.
    pub fn set_limit(&self, bytes: Option<u64>) -> io::Result<()> {
        match self.version {
            Version::V1 => self.write(
                "memory.limit_in_bytes",
                &bytes.map_or("-1".into(), |b| b.to_string()),
            ),
            Version::V2 => self.write("memory.max", &bytes.map_or("max".into(), |b| b.to_string())),
        }
    }

    /// Sets how much swap the cgroup may use (`None`: unlimited). v1 has only a memory+swap
    /// limit, so this writes `memsw.limit_in_bytes = limit + swap` and must come after
    /// `set_limit` (the kernel refuses memsw < limit). Fails on v1 without swap accounting.
    pub fn set_swap(&self, swap: Option<u64>, limit: Option<u64>) -> io::Result<()> {
        match self.version {
            Version::V1 => {
                let v = match (swap, limit) {
                    (Some(s), Some(l)) => (l + s).to_string(),
                    _ => "-1".into(),
                };
                self.write("memory.memsw.limit_in_bytes", &v)
            }
            Version::V2 => self.write(
                "memory.swap.max",
                &swap.map_or("max".into(), |b| b.to_string()),
            ),
        }
    }

    /// Moves process `pid` into the cgroup.
    pub fn add_pid(&self, pid: u32) -> io::Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// Makes `cmd`'s child join this cgroup between fork and exec, so every page it touches is
    /// charged here from its first instruction. The file is opened before the fork and the
    /// child only calls write(2), which is async-signal-safe; writing "0" moves the writer.
    pub fn join_before_exec(&self, cmd: &mut Command) -> io::Result<()> {
        let procs: File = OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))?;
        let fd = procs.as_raw_fd();
        // SAFETY: the closure only calls write(2) on an fd owned by `procs`, which the closure
        // keeps alive; no allocation or locking happens between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let _keep = &procs;
                let buf = b"0\n";
                if libc::write(fd, buf.as_ptr().cast(), buf.len()) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(())
    }

    /// The PIDs in the cgroup now.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|t| super::parse::pids(&t).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Kills what is left in the cgroup and removes it. Retries for a short while: the kernel
    /// refuses rmdir until the last task has exited.
    pub fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        remove_dir(&self.dir)
    }
}

fn remove_dir(dir: &Path) -> io::Result<()> {
    let mut last = None;
    for attempt in 0..100 {
        if !dir.exists() {
            return Ok(());
        }
        if let Ok(t) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in super::parse::pids(&t).unwrap_or_default() {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(if attempt < 10 { 10 } else { 50 }));
    }
    Err(last.unwrap_or_else(|| io::Error::other("rmdir failed")))
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        if !self.removed
            && let Err(e) = remove_dir(&self.dir)
        {
            let _ = writeln!(
                io::stderr(),
                "memlens: could not remove {}: {e}",
                self.dir.display()
            );
        }
    }
}
