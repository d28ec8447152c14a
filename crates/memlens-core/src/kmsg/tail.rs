//! Following the kernel log: only the records written after it was opened, as they come.
//!
//! A reader of `/dev/kmsg` gets every record still in the ring buffer first; `lseek(SEEK_END)`
//! skips to the end so a follower sees only new ones, and `poll(2)` on the descriptor wakes when
//! the kernel logs again (Documentation/ABI/testing/dev-kmsg). Where the device cannot be
//! opened (a container: see [`super::source`]), syslog(2) is read again on each call and only
//! the lines after the last stamp seen are kept; it cannot be polled, so the caller wakes on
//! a short timer ([`KmsgTail::poll_fd`] is `None`).

use super::log::{LogLine, parse_log};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

enum Backend {
    Device(File),
    /// syslog(2): the last stamp seen and the texts logged at that stamp (several records
    /// can share one microsecond).
    Syslog {
        last: Option<u64>,
        at_last: Vec<String>,
    },
}

/// An open kernel log, positioned after the last record that existed when it was opened.
pub struct KmsgTail {
    backend: Backend,
    buf: Vec<u8>,
    /// Records the kernel overwrote before we read them (EPIPE), so a report may be cut.
    pub lost: u64,
}

impl KmsgTail {
    /// Opens `path` (normally `/dev/kmsg`) non-blocking and skips the records already there.
    pub fn open_at_end(path: &Path) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(KmsgTail {
            backend: Backend::Device(file),
            // A record is at most ~8 KiB (CONSOLE_EXT_LOG_MAX); a shorter buffer gives EINVAL.
            buf: vec![0u8; 16 * 1024],
            lost: 0,
        })
    }

    /// Follows the log through syslog(2) from now on (see the module docs).
    pub fn syslog_at_end() -> io::Result<Self> {
        let lines = super::source::read_syslog()?;
        let last = lines.iter().filter_map(|l| l.mono_usec).max();
        let at_last = lines
            .iter()
            .filter(|l| l.mono_usec.is_some() && l.mono_usec == last)
            .map(|l| l.text.clone())
            .collect();
        Ok(KmsgTail {
            backend: Backend::Syslog { last, at_last },
            buf: Vec::new(),
            lost: 0,
        })
    }

    /// True when following through syslog(2) rather than the device.
    pub fn is_syslog(&self) -> bool {
        matches!(self.backend, Backend::Syslog { .. })
    }

    /// The descriptor to poll(2) for new records; `None` for syslog(2).
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.backend {
            Backend::Device(f) => Some(f.as_fd()),
            Backend::Syslog { .. } => None,
        }
    }

    /// The records logged since the last call (none when nothing new), parsed.
    pub fn read_new(&mut self) -> io::Result<Vec<LogLine>> {
        // Bounds one call even if the kernel logs faster than we read.
        const MAX_RECORDS: usize = 4096;
        let file = match &mut self.backend {
            Backend::Device(f) => f,
            Backend::Syslog { last, at_last } => {
                let lines = super::source::read_syslog()?;
                let new: Vec<LogLine> = lines
                    .into_iter()
                    .filter(|l| match (l.mono_usec, *last) {
                        (Some(m), Some(t)) => m > t || (m == t && !at_last.contains(&l.text)),
                        (Some(_), None) => true,
                        // Without stamps (printk.time=0) lines cannot be told apart.
                        (None, _) => false,
                    })
                    .collect();
                if let Some(m) = new.iter().filter_map(|l| l.mono_usec).max() {
                    if Some(m) != *last {
                        at_last.clear();
                    }
                    *last = Some(m);
                    at_last.extend(
                        new.iter()
                            .filter(|l| l.mono_usec == Some(m))
                            .map(|l| l.text.clone()),
                    );
                }
                return Ok(new);
            }
        };
        let mut text = String::new();
        for _ in 0..MAX_RECORDS {
            match file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => text.push_str(&String::from_utf8_lossy(self.buf.get(..n).unwrap_or(&[]))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    self.lost += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(parse_log(&text))
    }
}
