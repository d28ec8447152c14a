//! Kernel log lines in the formats people actually paste or collect.
//!
//! The same OOM report reaches memlens through `/dev/kmsg`, `dmesg`, `dmesg -T`,
//! `journalctl -k` or a syslog file, often mixed in one paste. The prefix is detected per line
//! so a report parser downstream only ever sees the kernel's own text.

use serde::Serialize;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One kernel log message with whatever timing the source format carried.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct LogLine {
    /// `/dev/kmsg` sequence number.
    pub seq: Option<u64>,
    /// Microseconds since boot (`/dev/kmsg`, `dmesg`, syslog with a bracketed time).
    pub mono_usec: Option<u64>,
    /// Wall clock: ISO-8601 (no zone) when the format carries a year, else as printed.
    pub wall: Option<String>,
    /// Syslog host name.
    pub host: Option<String>,
    /// Syslog program tag (`kernel`, `systemd[1]`); `None` for kernel-only formats. Lets the
    /// OOM parser skip user-space lines interleaved in a syslog file.
    pub ident: Option<String>,
    /// The message, without any prefix.
    pub text: String,
}

impl LogLine {
    /// Whether the kernel wrote this line (every line of a kernel-only format does).
    pub fn is_kernel(&self) -> bool {
        self.ident.as_deref().is_none_or(|i| i == "kernel")
    }
}

/// Reads a log file (`-`: stdin) as bytes and decodes it line by line, lossily: syslog mixes
/// other programs' Latin-1 and binary output with the kernel's lines, and one such byte must
/// not make the whole file unreadable (a bad byte becomes U+FFFD in its own line only).
pub fn read_log_file(path: &Path) -> io::Result<String> {
    let bytes = if path.as_os_str() == "-" {
        let mut b = Vec::new();
        io::stdin().lock().read_to_end(&mut b)?;
        b
    } else {
        std::fs::read(path)?
    };
    Ok(decode_lines(&bytes))
}

/// Decodes each line on its own (see [`read_log_file`]); NUL bytes (a log file's preallocated
/// or crash-damaged tail) end nothing and are dropped.
pub fn decode_lines(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let line: Vec<u8> = line.iter().copied().filter(|b| *b != 0).collect();
        out.push_str(&String::from_utf8_lossy(&line));
    }
    out
}

/// Parses a whole log text; `/dev/kmsg` continuation lines (` KEY=value`) are dropped.
pub fn parse_log(text: &str) -> Vec<LogLine> {
    let mut out = Vec::new();
    let mut prev_kmsg = false;
    for raw in text.lines() {
        if prev_kmsg && is_kmsg_continuation(raw) {
            continue;
        }
        let line = parse_line(raw);
        prev_kmsg = line.seq.is_some();
        if prev_kmsg && line.text.contains("\\x") {
            // /dev/kmsg escapes unprintable bytes as \xHH, and a record the kernel printed in
            // one call with embedded newlines (6.x prints the whole memcg stat dump so:
            // "anon 33423360\x0afile 0\x0a...") arrives as one record: unescape and split
            // (Documentation/ABI/testing/dev-kmsg).
            for part in unescape_kmsg(&line.text)
                .split('\n')
                .filter(|p| !p.is_empty())
            {
                out.push(LogLine {
                    text: part.to_string(),
                    ..line.clone()
                });
            }
            continue;
        }
        out.push(line);
    }
    out
}

/// Undoes /dev/kmsg's `\xHH` escaping.
fn unescape_kmsg(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b.get(i + 1) == Some(&b'x')
            && let Some(v) = std::str::from_utf8(&b[i + 2..i + 4])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one line, detecting its format; an unknown format yields the line as `text`.
pub fn parse_line(raw: &str) -> LogLine {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    parse_kmsg(raw)
        .or_else(|| parse_dmesg_t(raw))
        .or_else(|| parse_syslog(raw))
        .unwrap_or_else(|| {
            let (mono_usec, text) = split_mono(raw);
            LogLine {
                mono_usec,
                text: text.to_string(),
                ..LogLine::default()
            }
        })
}

/// ` SUBSYSTEM=...` lines that `/dev/kmsg` appends to a record for device metadata.
fn is_kmsg_continuation(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix(' ') else {
        return false;
    };
    let key_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
        .count();
    key_len > 0 && rest.as_bytes().get(key_len) == Some(&b'=')
}

/// `prio,seq,usec,flags[,...];message` (Documentation/ABI/testing/dev-kmsg).
fn parse_kmsg(raw: &str) -> Option<LogLine> {
    let (head, text) = raw.split_once(';')?;
    let mut fields = head.split(',');
    fields.next()?.parse::<u32>().ok()?;
    let seq = fields.next()?.parse::<u64>().ok()?;
    let usec = fields.next()?.parse::<u64>().ok()?;
    fields.next()?;
    Some(LogLine {
        seq: Some(seq),
        mono_usec: Some(usec),
        text: text.to_string(),
        ..LogLine::default()
    })
}

/// A leading `[ 12345.678901] ` (dmesg, or inside a syslog kernel message), if any.
fn split_mono(s: &str) -> (Option<u64>, &str) {
    let parsed = s.strip_prefix('[').and_then(|rest| {
        let (inside, after) = rest.split_once(']')?;
        let (secs, frac) = inside.trim_start().split_once('.')?;
        if secs.is_empty() || frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let secs: u64 = secs.parse().ok()?;
        // Pad/cut the fraction to microseconds: printk prints 6 digits, other tools fewer.
        let mut usec: u64 = 0;
        for i in 0..6 {
            let d = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
            usec = usec * 10 + d;
        }
        let mono = secs.checked_mul(1_000_000)?.checked_add(usec)?;
        Some((mono, after.strip_prefix(' ').unwrap_or(after)))
    });
    match parsed {
        Some((mono, text)) => (Some(mono), text),
        None => (None, s),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn month_number(name: &str) -> Option<u32> {
    MONTHS.iter().position(|m| *m == name).map(|i| i as u32 + 1)
}

/// `HH:MM:SS` checked for shape, returned as is.
fn clock(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let ok = b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit());
    ok.then_some(s)
}

/// `[Mon Nov 23 07:42:32 2026] message` (dmesg -T: local time, with a year).
fn parse_dmesg_t(raw: &str) -> Option<LogLine> {
    let rest = raw.strip_prefix('[')?;
    let (inside, after) = rest.split_once(']')?;
    let mut it = inside.split_whitespace();
    let _weekday = it.next()?;
    let month = month_number(it.next()?)?;
    let day: u32 = it.next()?.parse().ok()?;
    let time = clock(it.next()?)?;
    let year: u32 = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some(LogLine {
        wall: Some(format!("{year:04}-{month:02}-{day:02}T{time}")),
        text: after.strip_prefix(' ').unwrap_or(after).to_string(),
        ..LogLine::default()
    })
}

/// `Nov 23 07:42:32 host ident: msg` (BSD syslog / `journalctl` short) or
/// `2026-11-23T07:42:32+0000 host ident: msg` (`journalctl -o short-iso`, RFC 3339 syslog).
/// The host may be missing (`Dec 14 17:13:12 kernel: msg`).
fn parse_syslog(raw: &str) -> Option<LogLine> {
    let (wall, rest) = syslog_time(raw)?;
    let rest = rest.trim_start();
    let (first, after_first) = rest.split_once(' ').unwrap_or((rest, ""));
    let (host, ident, msg) = if let Some(ident) = first.strip_suffix(':') {
        (None, ident, after_first)
    } else {
        let (second, msg) = after_first.split_once(' ').unwrap_or((after_first, ""));
        let ident = second.strip_suffix(':')?;
        (Some(first.to_string()), ident, msg)
    };
    if ident.is_empty() {
        return None;
    }
    let (mono_usec, text) = if ident == "kernel" {
        split_mono(msg)
    } else {
        (None, msg)
    };
    Some(LogLine {
        mono_usec,
        wall: Some(wall),
        host,
        ident: Some(ident.to_string()),
        text: text.to_string(),
        ..LogLine::default()
    })
}

/// The syslog timestamp and the rest of the line.
fn syslog_time(raw: &str) -> Option<(String, &str)> {
    // RFC 3339 / short-iso: 2026-11-23T07:42:32[.frac][zone]
    let b = raw.as_bytes();
    if b.len() > 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[..4].iter().all(u8::is_ascii_digit)
    {
        let (stamp, rest) = raw.split_once(' ')?;
        clock(stamp.get(11..19)?)?;
        return Some((stamp.to_string(), rest));
    }
    // BSD: "Nov 23 07:42:32 " with the day space-padded.
    let month = raw.get(0..3)?;
    month_number(month)?;
    let rest = raw.get(3..)?.trim_start();
    let (day, rest) = rest.split_once(' ')?;
    let _: u32 = day.parse().ok()?;
    let time = clock(rest.get(0..8)?)?;
    let rest = rest.get(8..)?.strip_prefix(' ')?;
    Some((format!("{month} {day:>2} {time}"), rest))
}

/// Reads every record currently in the kernel ring buffer through `path` (`/dev/kmsg`)
/// without blocking, as the raw record texts (continuation lines included).
///
/// Each `read()` returns exactly one record; `EAGAIN` means the buffer is drained, and
/// `EPIPE` means records were overwritten while we read, which only loses those records.
pub fn read_kmsg_raw(path: &Path) -> io::Result<Vec<String>> {
    // Bounds the loop even if the kernel logs faster than we read.
    const MAX_RECORDS: usize = 1 << 20;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // A record is at most ~8 KiB (CONSOLE_EXT_LOG_MAX); a short buffer gives EINVAL.
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    while out.len() < MAX_RECORDS {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.push(String::from_utf8_lossy(buf.get(..n).unwrap_or(&[])).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// [`read_kmsg_raw`], parsed.
pub fn read_kmsg(path: &Path) -> io::Result<Vec<LogLine>> {
    Ok(parse_log(&read_kmsg_raw(path)?.concat()))
}

/// Wall-clock time (UTC, ISO-8601 with microseconds) of a monotonic kernel timestamp, given
/// the boot time (`btime` in `/proc/stat`). Approximate: the kernel's log clock does not
/// advance during suspend, so times after a suspend come out early.
pub fn wall_time(mono_usec: u64, boot_time_unix_secs: u64) -> String {
    wall_time_us(mono_usec, boot_time_unix_secs.saturating_mul(1_000_000))
}

/// [`wall_time`] with the boot time in microseconds (see `oom::boot_time_us`: on the live
/// system CLOCK_REALTIME − CLOCK_BOOTTIME, as `dmesg -T` computes it).
pub fn wall_time_us(mono_usec: u64, boot_time_unix_usec: u64) -> String {
    let t = boot_time_unix_usec.saturating_add(mono_usec);
    let secs = t / 1_000_000;
    let usec = t % 1_000_000;
    let days = secs / 86_400;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{usec:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let l = parse_line("6,1234,5678901,-;hello world");
        assert_eq!(
            (l.seq, l.mono_usec, l.text.as_str()),
            (Some(1234), Some(5678901), "hello world")
        );
        let l = parse_line("[12345.678901] msg");
        assert_eq!(
            (l.mono_usec, l.text.as_str()),
            (Some(12_345_678_901), "msg")
        );
        let l = parse_line("[    0.5] x");
        assert_eq!(l.mono_usec, Some(500_000));
        let l = parse_line("[Mon Nov 23 07:42:32 2026] msg");
        assert_eq!(
            (l.wall.as_deref(), l.text.as_str()),
            (Some("2026-11-23T07:42:32"), "msg")
        );
        let l = parse_line("Nov  3 07:42:32 host kernel: [123.456] msg");
        assert_eq!(l.wall.as_deref(), Some("Nov  3 07:42:32"));
        assert_eq!(
            (l.host.as_deref(), l.mono_usec, l.text.as_str()),
            (Some("host"), Some(123_456_000), "msg")
        );
        let l = parse_line("Nov 23 07:42:32 host kernel: msg");
        assert_eq!(
            (l.mono_usec, l.text.as_str(), l.is_kernel()),
            (None, "msg", true)
        );
        let l = parse_line("Dec 14 17:13:12 kernel: msg");
        assert_eq!((l.host, l.text.as_str()), (None, "msg"));
        let l = parse_line("Nov 23 07:42:32 host systemd[1]: Started x.");
        assert_eq!(
            (l.ident.as_deref(), l.is_kernel()),
            (Some("systemd[1]"), false)
        );
        let l = parse_line("2026-11-23T07:42:32+0000 host kernel: msg");
        assert_eq!(
            (l.wall.as_deref(), l.text.as_str()),
            (Some("2026-11-23T07:42:32+0000"), "msg")
        );
        let l = parse_line(" active_file:21362 inactive_file:46137");
        assert_eq!(l.text, " active_file:21362 inactive_file:46137");
    }

    #[test]
    fn kmsg_escaped_newlines_split_into_lines() {
        // A 6.1 record as /dev/kmsg gave it in the cgroup v2 VM (tests/vm/run).
        let l = parse_log("6,1234,5678901,-;anon 33423360\\x0afile 0\\x0akernel 131072\\x0a\n");
        let texts: Vec<&str> = l.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(texts, ["anon 33423360", "file 0", "kernel 131072"]);
        assert!(l.iter().all(|x| x.seq == Some(1234)));
        assert_eq!(unescape_kmsg("a\\x"), "a\\x");
        assert_eq!(unescape_kmsg("\\x4"), "\\x4");
    }

    #[test]
    fn kmsg_continuations_dropped_only_after_kmsg() {
        let lines = parse_log(
            "6,1,2,-;usb 1-1: new device\n SUBSYSTEM=usb\n DEVICE=c189:1\n6,2,3,-;next\n",
        );
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["usb 1-1: new device", "next"]);
        assert_eq!(parse_log("[1.0] a\n KEY=v\n").len(), 2);
    }

    #[test]
    fn wall_time_known_values() {
        assert_eq!(wall_time(0, 0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 is day 11016; 12:34:56.000789 after it.
        let t = wall_time(45_296_000_789, 11_016 * 86_400);
        assert_eq!(t, "2000-02-29T12:34:56.000789Z");
        assert_eq!(
            wall_time(1_500_000, 1_700_000_000),
            "2023-11-14T22:13:21.500000Z"
        );
    }
}
