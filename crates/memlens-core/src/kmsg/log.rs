//! Kernel log lines in the formats people actually paste or collect.
//!
//! The same OOM report reaches memlens through `/dev/kmsg`, `dmesg` (with `-x`, `-r`, `-d` and
//! every `--time-format`), `journalctl -k` (every `-o short*`, `cat`, `json`, `json-pretty`), or
//! a syslog file (RFC 3164 or RFC 5424, with or without `<PRI>`, busybox's `kern.warn` field),
//! often mixed in one paste and with Windows line endings. Kernels built with
//! `CONFIG_PRINTK_CALLER` add a caller id (`[ T6736]`, `[    C3]`) after the time. The prefix
//! is detected per line so a report parser downstream only ever sees the kernel's own text.
//! Each format has a fixture in tests/fixtures/oom (SOURCES.md).

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
    /// `CONFIG_PRINTK_CALLER` id: `T<pid>` (task context) or `C<cpu>` (interrupt context).
    pub caller: Option<String>,
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

/// Parses a whole log text; `/dev/kmsg` continuation lines (` KEY=value`) are dropped and
/// `/dev/kmsg` line fragments (flag `+`, kernels before 4.9) are joined to their line.
/// `journalctl -o json-pretty` (objects spanning lines) is read as a JSON stream.
pub fn parse_log(text: &str) -> Vec<LogLine> {
    if let Some(lines) = parse_json_stream(text) {
        return lines;
    }
    let mut out: Vec<LogLine> = Vec::new();
    let mut prev_kmsg = false;
    for raw in text.lines() {
        if prev_kmsg && is_kmsg_continuation(raw) {
            continue;
        }
        if prev_kmsg
            && let Some(fragment) = kmsg_fragment(raw)
            && let Some(last) = out.last_mut()
        {
            // Documentation/ABI/testing/dev-kmsg: 'c' starts a line printed in pieces
            // (KERN_CONT), '+' continues it.
            last.text.push_str(fragment);
            continue;
        }
        let line = parse_line(raw);
        prev_kmsg = line.seq.is_some();
        if line.seq.is_none() && line.text.contains('\n') {
            // journalctl -o json: one MESSAGE may hold several lines.
            for part in line.text.split('\n').filter(|p| !p.is_empty()) {
                out.push(LogLine {
                    text: part.to_string(),
                    ..line.clone()
                });
            }
            continue;
        }
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
    if let Some(l) = parse_kmsg(raw).or_else(|| parse_json_line(raw)) {
        return l;
    }
    // `<PRI>`: dmesg -r, and syslog as sent on the wire or stored by some collectors.
    let raw = strip_pri(raw);
    if let Some(l) = parse_rfc5424(raw) {
        return l;
    }
    // dmesg -x: "kern  :warn  : " before whatever time format was chosen.
    let raw = strip_dmesg_x(raw);
    parse_dmesg_t(raw)
        .or_else(|| parse_dmesg_iso(raw))
        .or_else(|| parse_dmesg_reltime(raw))
        .or_else(|| parse_syslog(raw))
        .unwrap_or_else(|| {
            let (mono_usec, caller, text) = split_mono(raw);
            // journalctl -o short-monotonic: "[  722.507995] host kernel: msg".
            if mono_usec.is_some()
                && let Some((host, msg)) = journal_host_kernel(text)
            {
                let (_, caller2, msg) = split_mono(msg);
                return LogLine {
                    mono_usec,
                    host: Some(host.to_string()),
                    ident: Some("kernel".into()),
                    caller: caller.or(caller2),
                    text: msg.to_string(),
                    ..LogLine::default()
                };
            }
            LogLine {
                mono_usec,
                caller,
                text: text.to_string(),
                ..LogLine::default()
            }
        })
}

/// `HOST kernel: ` at the start of `s` (journalctl's short formats after the time).
fn journal_host_kernel(s: &str) -> Option<(&str, &str)> {
    let (host, rest) = s.split_once(' ')?;
    let msg = rest.strip_prefix("kernel: ")?;
    (!host.is_empty() && !host.ends_with(':')).then_some((host, msg))
}

/// The text of a `/dev/kmsg` record flagged `+` (a fragment continuing the previous line).
fn kmsg_fragment(raw: &str) -> Option<&str> {
    let (head, text) = raw.split_once(';')?;
    let mut fields = head.split(',');
    fields.next()?.parse::<u32>().ok()?;
    fields.next()?.parse::<u64>().ok()?;
    fields.next()?.parse::<u64>().ok()?;
    (fields.next()? == "+").then_some(text)
}

/// Drops a leading syslog `<PRI>` (1 to 3 digits).
fn strip_pri(raw: &str) -> &str {
    if let Some(rest) = raw.strip_prefix('<')
        && let Some((pri, after)) = rest.split_once('>')
        && (1..=3).contains(&pri.len())
        && pri.bytes().all(|b| b.is_ascii_digit())
    {
        return after;
    }
    raw
}

/// `dmesg -x` / `--decode`: `FACILITY:LEVEL : ` with both names padded to 6
/// (util-linux sys-utils/dmesg.c: `"%-6s:%-6s: "`).
fn strip_dmesg_x(raw: &str) -> &str {
    const FACILITIES: [&str; 13] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "local",
    ];
    const LEVELS: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
    ];
    let Some((fac, rest)) = raw.split_once(':') else {
        return raw;
    };
    let Some((lvl, rest)) = rest.split_once(':') else {
        return raw;
    };
    let fac = fac.trim_end();
    let known_fac = FACILITIES
        .iter()
        .any(|f| fac == *f || (f == &"local" && fac.starts_with("local")));
    if known_fac && LEVELS.contains(&lvl.trim_end()) && !fac.contains(' ') {
        return rest.strip_prefix(' ').unwrap_or(rest);
    }
    raw
}

/// `dmesg --time-format iso`: `2026-12-01T08:40:19,507995+00:00 msg` (a comma before the
/// microseconds, which tells it from syslog's RFC 3339 times; no host, no tag).
fn parse_dmesg_iso(raw: &str) -> Option<LogLine> {
    let (stamp, text) = raw.split_once(' ')?;
    let b = stamp.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b',' {
        return None;
    }
    clock(stamp.get(11..19)?)?;
    if !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(LogLine {
        wall: Some(stamp.replacen(',', ".", 1)),
        text: text.to_string(),
        ..LogLine::default()
    })
}

/// `dmesg --time-format reltime`: `[Dec 1 08:40] msg` on a line whose minute changed, then
/// `[  +0.000016] msg` (time since the previous line); `dmesg --time-format delta`:
/// `[<    0.000016>] msg`. Neither carries the boot-relative time.
fn parse_dmesg_reltime(raw: &str) -> Option<LogLine> {
    let rest = raw.strip_prefix('[')?;
    let (inside, after) = rest.split_once(']')?;
    let text = after.strip_prefix(' ').unwrap_or(after).to_string();
    let t = inside.trim();
    let delta = t
        .strip_prefix('+')
        .or_else(|| t.strip_prefix('<').and_then(|x| x.strip_suffix('>')))
        .map(str::trim);
    if let Some(d) = delta {
        let (secs, frac) = d.split_once('.')?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        return (digits(secs) && digits(frac)).then(|| LogLine {
            text,
            ..LogLine::default()
        });
    }
    // "Dec 1 08:40": month, day, HH:MM.
    let mut it = t.split_whitespace();
    let month = it.next()?;
    month_number(month)?;
    let day: u32 = it.next()?.parse().ok()?;
    let hm = it.next()?;
    let hb = hm.as_bytes();
    let ok = hb.len() == 5 && hb[2] == b':' && [0, 1, 3, 4].iter().all(|&i| hb[i].is_ascii_digit());
    if !ok || it.next().is_some() {
        return None;
    }
    Some(LogLine {
        wall: Some(format!("{month} {day:>2} {hm}")),
        text,
        ..LogLine::default()
    })
}

/// RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD|-] MSG` (the `<PRI>` already
/// stripped). Written by rsyslog's `RSYSLOG_SyslogProtocol23Format` and `logger --rfc5424`.
fn parse_rfc5424(raw: &str) -> Option<LogLine> {
    let rest = raw.strip_prefix("1 ")?;
    let mut parts = rest.splitn(6, ' ');
    let stamp = parts.next()?;
    let host = parts.next()?;
    let app = parts.next()?;
    let _procid = parts.next()?;
    let _msgid = parts.next()?;
    let tail = parts.next().unwrap_or("");
    let b = stamp.as_bytes();
    if !(b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T') {
        return None;
    }
    clock(stamp.get(11..19)?)?;
    let msg = skip_structured_data(tail)?;
    // An optional UTF-8 byte order mark opens the message (RFC 5424 6.4).
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    let nil = |s: &str| (s != "-").then(|| s.to_string());
    let ident = nil(app);
    let (mono_usec, caller, text) = if ident.as_deref() == Some("kernel") {
        split_mono(msg)
    } else {
        (None, None, msg)
    };
    Some(LogLine {
        mono_usec,
        wall: Some(stamp.to_string()),
        host: nil(host),
        ident,
        caller,
        text: text.to_string(),
        ..LogLine::default()
    })
}

/// The message after RFC 5424 STRUCTURED-DATA (`-` or `[id k="v" ...]...`, where `\]` and
/// `\"` are escaped inside values).
fn skip_structured_data(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix('-') {
        return Some(rest.strip_prefix(' ').unwrap_or(rest));
    }
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut in_quote = false;
        i += 1;
        loop {
            match b.get(i)? {
                b'\\' if in_quote => i += 1,
                b'"' => in_quote = !in_quote,
                b']' if !in_quote => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    let rest = s.get(i..)?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// One `journalctl -o json` object (one per line).
fn parse_json_line(raw: &str) -> Option<LogLine> {
    let t = raw.trim();
    if !(t.starts_with('{') && t.ends_with('}')) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(t).ok()?;
    journal_entry(&v)
}

/// A journal entry (journalctl -o json / json-pretty / json-sse payload) as a log line:
/// MESSAGE (a string, or an array of bytes when it is not UTF-8), the kernel's own time
/// (`_SOURCE_MONOTONIC_TIMESTAMP`, microseconds since boot), the wall clock
/// (`__REALTIME_TIMESTAMP`, microseconds since the epoch), host and tag
/// (systemd.journal-fields(7)).
fn journal_entry(v: &serde_json::Value) -> Option<LogLine> {
    let obj = v.as_object()?;
    let text = match obj.get("MESSAGE")? {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => {
            let bytes: Vec<u8> = a
                .iter()
                .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => return None,
    };
    let field = |k: &str| obj.get(k).and_then(|x| x.as_str());
    let num = |k: &str| field(k).and_then(|x| x.parse::<u64>().ok());
    let ident = field("SYSLOG_IDENTIFIER")
        .map(str::to_string)
        .or_else(|| (field("_TRANSPORT") == Some("kernel")).then(|| "kernel".to_string()));
    Some(LogLine {
        mono_usec: num("_SOURCE_MONOTONIC_TIMESTAMP"),
        wall: num("__REALTIME_TIMESTAMP").map(|t| wall_time(t, 0)),
        host: field("_HOSTNAME").map(str::to_string),
        ident,
        text: text.trim_end_matches('\n').to_string(),
        ..LogLine::default()
    })
}

/// `journalctl -o json-pretty` (or several `-o json` objects on one line): a stream of JSON
/// objects. `None` unless the whole text is one.
fn parse_json_stream(text: &str) -> Option<Vec<LogLine>> {
    let t = text.trim_start();
    // One object per line is the json format: parse_line takes it line by line.
    if !t.starts_with('{')
        || t.lines()
            .next()
            .is_some_and(|l| l.trim_end().ends_with('}'))
    {
        return None;
    }
    let mut out = Vec::new();
    for v in serde_json::Deserializer::from_str(t).into_iter::<serde_json::Value>() {
        let line = journal_entry(&v.ok()?)?;
        for part in line.text.split('\n').filter(|p| !p.is_empty()) {
            out.push(LogLine {
                text: part.to_string(),
                ..line.clone()
            });
        }
    }
    Some(out)
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

/// `prio,seq,usec,flags[,caller=T123][,...];message` (Documentation/ABI/testing/dev-kmsg).
fn parse_kmsg(raw: &str) -> Option<LogLine> {
    let (head, text) = raw.split_once(';')?;
    let mut fields = head.split(',');
    fields.next()?.parse::<u32>().ok()?;
    let seq = fields.next()?.parse::<u64>().ok()?;
    let usec = fields.next()?.parse::<u64>().ok()?;
    fields.next()?;
    let caller = fields
        .find_map(|f| f.strip_prefix("caller="))
        .map(str::to_string);
    Some(LogLine {
        seq: Some(seq),
        mono_usec: Some(usec),
        caller,
        text: text.to_string(),
        ..LogLine::default()
    })
}

/// A leading `[ 12345.678901] ` (dmesg, or inside a syslog kernel message), if any, with the
/// `CONFIG_PRINTK_CALLER` id after it (`[   49.92][ T6736] `, or dmesg's `[   49.92] [ T6736] `)
/// and dmesg -d's delta inside it (`[  722.507995 <    0.000016>]`).
fn split_mono(s: &str) -> (Option<u64>, Option<String>, &str) {
    let parsed = s.strip_prefix('[').and_then(|rest| {
        let (inside, after) = rest.split_once(']')?;
        let inside = match inside.split_once(" <") {
            Some((t, d)) if d.ends_with('>') => t,
            _ => inside,
        };
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
        Some((mono, after))
    });
    match parsed {
        Some((mono, after)) => {
            let (caller, text) = split_caller(after);
            (Some(mono), caller, text)
        }
        None => (None, None, s),
    }
}

fn caller_at(s: &str) -> Option<(String, &str)> {
    let rest = s.strip_prefix('[')?;
    let (inside, text) = rest.split_once(']')?;
    let id = inside.trim_start();
    let (kind, num) = id.split_at_checked(1)?;
    let ok =
        (kind == "T" || kind == "C") && !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| (id.to_string(), text.strip_prefix(' ').unwrap_or(text)))
}

/// `[ T6736]` / `[    C3]` (kernel/printk/printk.c print_caller: `"[%6s]"`), optionally
/// after one space, then the message.
fn split_caller(after: &str) -> (Option<String>, &str) {
    let plain = after.strip_prefix(' ').unwrap_or(after);
    match caller_at(after).or_else(|| caller_at(plain)) {
        Some((id, text)) => (Some(id), text),
        None => (None, plain),
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
        let (second, mut msg) = after_first.split_once(' ').unwrap_or((after_first, ""));
        let mut second = second;
        // busybox syslogd (without -S) writes "host kern.warn kernel: msg".
        if is_facility_level(second)
            && let Some((third, m)) = msg.split_once(' ')
        {
            second = third;
            msg = m;
        }
        let ident = second.strip_suffix(':')?;
        (Some(first.to_string()), ident, msg)
    };
    if ident.is_empty() {
        return None;
    }
    let (mono_usec, caller, text) = if ident == "kernel" {
        split_mono(msg)
    } else {
        (None, None, msg)
    };
    Some(LogLine {
        mono_usec,
        wall: Some(wall),
        host,
        ident: Some(ident.to_string()),
        caller,
        text: text.to_string(),
        ..LogLine::default()
    })
}

/// `kern.warn`, `daemon.info`: a syslog facility.level pair.
fn is_facility_level(s: &str) -> bool {
    s.split_once('.').is_some_and(|(f, l)| {
        !f.is_empty()
            && f.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && matches!(
                l,
                "emerg" | "alert" | "crit" | "err" | "warn" | "notice" | "info" | "debug"
            )
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
    // journalctl pads the day with a zero ("Dec 01"), syslog with a space ("Dec  1").
    let day: u32 = day.parse().ok()?;
    let time = clock(rest.get(0..8)?)?;
    let mut rest = rest.get(8..)?;
    // journalctl -o short-precise: "Dec 01 08:40:19.791072 host kernel: msg".
    let mut frac = "";
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        frac = r.get(..n)?;
        rest = r.get(n..)?;
    }
    let rest = rest.strip_prefix(' ')?;
    let dot = if frac.is_empty() { "" } else { "." };
    Some((format!("{month} {day:>2} {time}{dot}{frac}"), rest))
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
