//! Following `/dev/kmsg`: only the records written after it was opened, as they come.
//!
//! A reader of `/dev/kmsg` gets every record still in the ring buffer first; `lseek(SEEK_END)`
//! skips to the end so a follower sees only new ones, and `poll(2)` on the descriptor wakes when
//! the kernel logs again (Documentation/ABI/testing/dev-kmsg).

use super::log::{LogLine, parse_log};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// An open `/dev/kmsg`, positioned after the last record that existed when it was opened.
pub struct KmsgTail {
    file: File,
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
            file,
            // A record is at most ~8 KiB (CONSOLE_EXT_LOG_MAX); a shorter buffer gives EINVAL.
            buf: vec![0u8; 16 * 1024],
            lost: 0,
        })
    }

    /// The records logged since the last call (none when nothing new), parsed.
    pub fn read_new(&mut self) -> io::Result<Vec<LogLine>> {
        // Bounds one call even if the kernel logs faster than we read.
        const MAX_RECORDS: usize = 4096;
        let mut text = String::new();
        for _ in 0..MAX_RECORDS {
            match self.file.read(&mut self.buf) {
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

impl AsFd for KmsgTail {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
