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
//! The one kernel file memlens holds open across reads (the reset is per descriptor, so
//! `sys::Root`'s read-and-close cannot do it), and only on a cgroup memlens created.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

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
