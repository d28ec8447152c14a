//! Where the live kernel log is read from, and why it could not be.
//!
//! `/dev/kmsg` first (whole records with sequence numbers; under `--host-root` the host's,
//! HOST/dev/kmsg, never the container's own). In a container that device is usually not
//! there (ENOENT: not given with `--device /dev/kmsg`) or not openable (EPERM: the device
//! cgroup allows only the container's own devices, and a bind-mounted or hostPath
//! /dev/kmsg is char 1:11 all the same). The kernel log is not namespaced, so syslog(2)
//! (`SYSLOG_ACTION_READ_ALL`, what `dmesg` uses) reads the same ring buffer without any
//! device: it needs CAP_SYSLOG when `kernel.dmesg_restrict` is 1, which a DaemonSet can
//! grant without `privileged` (deploy/kubernetes/daemonset.yaml). Its text is the dmesg
//! format with a `<PRIORITY>` prefix, so it carries the monotonic stamps the reports need.

use super::log::{LogLine, parse_log, read_kmsg_raw};
use crate::sys::Root;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// The kernel log device: `MEMLENS_KMSG` (tests), else `/dev/kmsg` of the system `root`
/// reads (HOST/dev/kmsg under `--host-root`).
pub fn device_path(root: &Root) -> PathBuf {
    if let Some(p) = std::env::var_os("MEMLENS_KMSG") {
        return PathBuf::from(p);
    }
    root.real_path(Path::new("/dev/kmsg"))
        .unwrap_or_else(|| PathBuf::from("/dev/kmsg"))
}

/// Whether `p` is a character device (a kmsg device given to `--file` must be read one
/// record per read(2): a short read gives EINVAL).
pub fn is_char_device(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device())
}

fn has_cap(bit: u32) -> Option<bool> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    let v = u64::from_str_radix(hex, 16).ok()?;
    Some(v & (1u64 << bit) != 0)
}

/// Says precisely why `path` (a kmsg device) could not be opened or read.
pub fn explain(path: &Path, e: &io::Error) -> String {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_SYSLOG: u32 = 34;
    let restrict = std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict")
        .ok()
        .is_some_and(|s| s.trim() == "1");
    let why = match e.raw_os_error() {
        Some(libc::ENOENT) => "no kernel log device here (in a container: give it the host's with `docker run --device /dev/kmsg`, or mount the host's / and use --host-root)".to_string(),
        Some(libc::EPERM)
            if restrict
                && has_cap(CAP_SYSLOG) == Some(false)
                && has_cap(CAP_SYS_ADMIN) == Some(false) =>
        {
            "kernel.dmesg_restrict is 1 and this process lacks CAP_SYSLOG (run as root, or add the SYSLOG capability; in a container the device cgroup may deny char 1:11 as well, and with CAP_SYSLOG memlens reads the log through syslog(2), which needs no device)".to_string()
        }
        Some(libc::EPERM) => "the device cgroup denies char 1:11 (a bind-mounted or hostPath /dev/kmsg cannot be opened in a container without `--device /dev/kmsg` or privileges); memlens reads the log through syslog(2) instead when it has CAP_SYSLOG".to_string(),
        Some(libc::EACCES) => "permission denied (the device's mode, or a security module; CAP_SYSLOG is needed when kernel.dmesg_restrict is 1)".to_string(),
        Some(libc::EINVAL) => "a read shorter than a log record (EINVAL): read a kmsg device one record per read".to_string(),
        _ => e.to_string(),
    };
    format!("{}: {why} ({e})", path.display())
}

/// Reads the whole ring buffer with syslog(2) `SYSLOG_ACTION_READ_ALL` (does not consume it).
pub fn read_syslog_text() -> io::Result<String> {
    const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
    const SYSLOG_ACTION_SIZE_BUFFER: libc::c_int = 10;
    // SAFETY: SIZE_BUFFER takes no buffer.
    let size = unsafe { libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0) };
    if size < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; usize::try_from(size).unwrap_or(0).max(4096)];
    let len = libc::c_int::try_from(buf.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: buf is writable for len bytes; the kernel writes at most len.
    let n = unsafe { libc::klogctl(SYSLOG_ACTION_READ_ALL, buf.as_mut_ptr().cast(), len) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(usize::try_from(n).unwrap_or(0));
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// syslog(2) text (`<6>[  12.345678] message` per line) as dmesg text for [`parse_log`].
pub fn strip_priorities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for l in text.lines() {
        let body = l
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .filter(|(p, _)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(l, |(_, b)| b);
        out.push_str(body);
        out.push('\n');
    }
    out
}

/// The ring buffer through syslog(2), parsed.
pub fn read_syslog() -> io::Result<Vec<LogLine>> {
    Ok(parse_log(&strip_priorities(&read_syslog_text()?)))
}

/// The live kernel log of the system `root` reads: the device, else syslog(2). `Ok` with
/// the lines and what they came from; `Err` says why neither could be read.
pub fn read_live(root: &Root) -> Result<(Vec<LogLine>, String), String> {
    let dev = device_path(root);
    match read_kmsg_raw(&dev) {
        Ok(recs) => Ok((parse_log(&recs.concat()), dev.display().to_string())),
        Err(e) => {
            let dev_why = explain(&dev, &e);
            match read_syslog() {
                Ok(lines) => Ok((lines, format!("syslog(2) ({dev_why})"))),
                Err(se) => Err(format!(
                    "{dev_why}; syslog(2) failed too: {se} (it needs CAP_SYSLOG when kernel.dmesg_restrict is 1)"
                )),
            }
        }
    }
}

/// A `--file` argument's text: a kmsg device read record by record, else the file.
pub fn read_file(p: &Path) -> io::Result<String> {
    if is_char_device(p) {
        return read_kmsg_raw(p).map(|r| r.concat());
    }
    std::fs::read(p).map(|b| super::log::decode_lines(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_text_becomes_dmesg_text() {
        let t = "<6>[ 1061.692598] memory: usage 32768kB, limit 32768kB, failcnt 1\n<3>[ 1061.700000] Memory cgroup out of memory: Killed process 42 (x)\n";
        let lines = parse_log(&strip_priorities(t));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].mono_usec, Some(1_061_692_598));
        assert!(lines[1].text.starts_with("Memory cgroup out of memory"));
    }

    #[test]
    fn errors_say_what_is_missing() {
        let p = Path::new("/host/dev/kmsg");
        let s = explain(p, &io::Error::from_raw_os_error(libc::ENOENT));
        assert!(s.contains("--device /dev/kmsg"), "{s}");
        let s = explain(p, &io::Error::from_raw_os_error(libc::EACCES));
        assert!(s.contains("CAP_SYSLOG"), "{s}");
    }
}
