//! Exact interval peaks from a resettable `memory.peak` (cgroup v2, Linux 6.12+).
//!
//! Since 6.12 ("mm, memcg: cg2 memory{.swap,}.peak write handlers") writing any
//! non-empty string to an open memory.peak resets the high-water mark *of that file
//! descriptor* only: later reads on the same descriptor give the peak since the reset, while
//! other readers still see the lifetime peak (cgroup-v2.rst "memory.peak"). Read, then reset,
//! at each sample, and every interval's true peak is known, however short the spike between
//! two samples. Before 6.12 the file has no write handler: opening it for writing or the write
//! fails (Debian's 6.1: the write, with EINVAL), and callers fall back to the highest sample,
//! saying so.
//!
//! The one kernel file memlens writes without having created the cgroup: `memlens run` on
//! its own cgroup, and the flight recorder on every v2 cgroup, because the reset is local to
//! the descriptor (other readers, the kubelet's or systemd's, still see the lifetime peak)
//! and no kernel resets memory.peak for everyone on a write (before 6.12 the write fails).
//! The descriptor is checked to be on cgroup2 before the first write, so a `--host-root`
//! fixture tree (regular files) is never written. v1's memory.max_usage_in_bytes is never
//! written: its reset is global.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The file in a cgroup's directory under which the recorder stores each sample's interval
/// peak (not a kernel file: `"<bytes>\n"`, or `"unavailable: <reason>\n"`).
pub const RECORDED_FILE: &str = "memlens.interval_peak";

/// The filesystem magic of cgroup2 (linux/magic.h CGROUP2_SUPER_MAGIC).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// An open, resettable memory.peak.
#[derive(Debug)]
pub struct IntervalPeak {
    file: File,
}

impl IntervalPeak {
    /// Opens `dir/memory.peak` for reading and writing and resets it, or says why the kernel
    /// does not allow it.
    pub fn open(dir: &Path) -> Result<IntervalPeak, String> {
        let p = dir.join("memory.peak");
        if !p.exists() {
            return Err(
                "memory.peak is missing (Linux 5.19+): interval peaks are the highest samples"
                    .into(),
            );
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .map_err(|e| {
                format!(
                    "memory.peak cannot be reset per file descriptor on this kernel (6.12+; opening it for writing: {e}): interval peaks are the highest samples"
                )
            })?;
        // SAFETY: a valid descriptor and out pointer.
        let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut sfs) } != 0
            || sfs.f_type as i64 != CGROUP2_SUPER_MAGIC
        {
            return Err(format!(
                "{} is not on a cgroup2 file system: not written; interval peaks are the highest samples",
                p.display()
            ));
        }
        let mut ip = IntervalPeak { file };
        // (6.1 opens it for writing but refuses the write with EINVAL.)
        ip.reset().map_err(|e| {
            format!(
                "memory.peak cannot be reset per file descriptor on this kernel (6.12+; writing to it: {e}): interval peaks are the highest samples"
            )
        })?;
        Ok(ip)
    }

    fn reset(&mut self) -> io::Result<()> {
        self.file.write_all(b"reset\n")
    }

    /// The peak of memory.current since the last call (or the open), then a reset.
    pub fn take(&mut self) -> io::Result<u64> {
        let mut buf = [0u8; 32];
        let n = self.file.read_at(&mut buf, 0)?;
        let v = std::str::from_utf8(buf.get(..n).unwrap_or(&[]))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "memory.peak: not a number")
            })?;
        self.reset()?;
        Ok(v)
    }
}
