//! `/proc/PID/status` and `/proc/PID/smaps_rollup`, read field by field.
//!
//! Hand-written rather than procfs-core's `Status`/`SmapsRollup`: those parse the whole file
//! or fail, so one field memlens does not use (a garbled `SigQ`, a `Cpus_allowed` of an
//! unexpected width, a file cut after `VmSwap`) lost every RSS figure and the name, with an
//! "Internal error ... please report this procfs bug" that named the crate's build path
//! (issue 19 item 6). Here each line stands alone: a field memlens uses that does not parse
//! is a problem naming the file and the line, and only that figure is unavailable; every
//! other line is ignored.

use crate::model::KeyValues;
use std::path::Path;

/// A `Key:  N kB` value in bytes; `Err` with what was found.
fn kb_value(rest: &str) -> Result<u64, String> {
    let mut it = rest.split_whitespace();
    let n = it.next().ok_or("no value")?;
    let unit = it.next();
    if it.next().is_some() || unit.is_some_and(|u| u != "kB") {
        return Err(format!("expected \"N kB\", found {:?}", rest.trim()));
    }
    let v: u64 = n
        .parse()
        .map_err(|_| format!("expected \"N kB\", found {:?}", rest.trim()))?;
    match unit {
        Some(_) => v
            .checked_mul(1024)
            .ok_or_else(|| format!("{v} kB overflows a byte count (implausible)")),
        None => Ok(v),
    }
}

/// The fields memlens takes from /proc/PID/status.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// `Name`, as the kernel prints it.
    pub name: Option<String>,
    /// `VmSize`, `VmRSS`, `RssAnon`, `RssFile`, `RssShmem`, `VmSwap` in bytes (absent when
    /// the kernel did not print the field: kernel threads, zombies, old kernels).
    pub vm_size: Option<u64>,
    /// VmRSS.
    pub vm_rss: Option<u64>,
    /// RssAnon.
    pub rss_anon: Option<u64>,
    /// RssFile.
    pub rss_file: Option<u64>,
    /// RssShmem.
    pub rss_shmem: Option<u64>,
    /// VmSwap.
    pub vm_swap: Option<u64>,
    /// The real UID (first field of `Uid:`).
    pub uid: Option<u32>,
}

/// Parses /proc/PID/status (`path` names it in problems).
pub fn status(path: &Path, text: &str) -> (Status, Vec<String>) {
    let mut s = Status::default();
    let mut problems = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut fields = 0usize;
    for (i, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            fields += 1;
        }
        let slot = match key {
            "Name" => {
                // The kernel escapes nothing that matters here; the value is the rest of
                // the line after the tab.
                s.name = Some(rest.strip_prefix('\t').unwrap_or(rest).to_string());
                continue;
            }
            "Uid" => {
                match rest.split_whitespace().next().map(str::parse::<u32>) {
                    Some(Ok(u)) => s.uid = Some(u),
                    _ => problems.push(format!(
                        "{} line {}: Uid: expected four numbers, found {:?}",
                        path.display(),
                        i + 1,
                        rest.trim()
                    )),
                }
                continue;
            }
            "VmSize" => &mut s.vm_size,
            "VmRSS" => &mut s.vm_rss,
            "RssAnon" => &mut s.rss_anon,
            "RssFile" => &mut s.rss_file,
            "RssShmem" => &mut s.rss_shmem,
            "VmSwap" => &mut s.vm_swap,
            _ => continue,
        };
        if seen.contains(&key) {
            problems.push(format!(
                "{} line {}: {key} appears twice; the first value is used",
                path.display(),
                i + 1
            ));
            continue;
        }
        seen.push(key);
        match kb_value(rest) {
            Ok(v) => *slot = Some(v),
            Err(e) => problems.push(format!("{} line {}: {key}: {e}", path.display(), i + 1)),
        }
    }
    if fields == 0 {
        problems.push(format!(
            "{} line 1: {:?} is not a \"Key: value\" field, nor is any other line (empty, cut or not a status file): the process's name and memory figures are unavailable",
            path.display(),
            text.lines().next().unwrap_or("").chars().take(40).collect::<String>()
        ));
    } else if s.name.is_none() {
        problems.push(format!(
            "{}: no Name field (the kernel prints it first: the file is cut or damaged)",
            path.display()
        ));
    }
    (s, problems)
}

/// Parses /proc/PID/smaps_rollup into bytes per key (every `Key: N kB` line after the
/// `[rollup]` header). Empty for kernel threads. Each bad line is a problem on its own.
pub fn smaps_rollup(path: &Path, text: &str) -> (KeyValues, Vec<String>) {
    let mut kv: Vec<(String, u64)> = Vec::new();
    let mut problems = Vec::new();
    if text.trim().is_empty() {
        return (KeyValues(kv), problems);
    }
    let mut header = false;
    for (i, line) in text.lines().enumerate() {
        if line.contains("[rollup]") && !header && kv.is_empty() {
            header = true;
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let Some((key, rest)) = line.split_once(':') else {
            problems.push(format!("{}: expected \"Key: N kB\", found {line:?}", at()));
            continue;
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            problems.push(format!("{}: expected \"Key: N kB\", found {line:?}", at()));
            continue;
        }
        if kv.iter().any(|(k, _)| k == key) {
            problems.push(format!(
                "{}: {key} appears twice; the first value is used",
                at()
            ));
            continue;
        }
        match kb_value(rest) {
            Ok(v) => kv.push((key.to_string(), v)),
            Err(e) => problems.push(format!("{}: {key}: {e}", at())),
        }
    }
    if !header {
        problems.push(format!(
            "{}: no [rollup] header line (the file is cut or not an smaps_rollup)",
            path.display()
        ));
    }
    kv.sort();
    (KeyValues(kv), problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/proc/7/status";

    #[test]
    fn one_bad_field_loses_only_itself() {
        let t = "Name:\tcat\nSigQ:\tgarbage/!!\nCpus_allowed:\tzzzz\nVmSize:\t 3060 kB\nVmRSS:\t1576 kB\nRssAnon:\t  x kB\nRssFile:\t1460 kB\nVmSwap:\t0 kB\n";
        let (s, probs) = status(Path::new(P), t);
        assert_eq!(s.name.as_deref(), Some("cat"));
        assert_eq!(s.vm_rss, Some(1576 * 1024));
        assert_eq!(s.rss_file, Some(1460 * 1024));
        assert_eq!(s.rss_anon, None);
        assert_eq!(s.vm_swap, Some(0));
        assert_eq!(probs.len(), 1, "{probs:?}");
        assert!(
            probs[0].starts_with("/proc/7/status line 6: RssAnon:"),
            "{probs:?}"
        );
        // Cut after VmSwap, or mid-line.
        let (s, probs) = status(Path::new(P), "Name:\tx\nVmRSS:\t12 kB\nVmSwap:\t0 kB");
        assert_eq!((s.vm_rss, probs.len()), (Some(12 * 1024), 0));
        let (s, probs) = status(Path::new(P), "Name:\tx\nVmRSS:\t12");
        assert_eq!((s.vm_rss, probs.len()), (Some(12), 0));
        // Near 2^64 kB: a problem, not a wrapped figure.
        let (s, probs) = status(Path::new(P), "VmRSS:\t18446744073709551615 kB\n");
        assert_eq!(s.vm_rss, None);
        assert!(probs[0].contains("overflows"), "{probs:?}");
        let (_, probs) = status(Path::new(P), "VmRSS:\t1 kB\nVmRSS:\t2 kB\n");
        assert!(probs[0].contains("twice"), "{probs:?}");
    }

    #[test]
    fn rollup_lines_stand_alone() {
        let p = Path::new("/proc/7/smaps_rollup");
        let t = "55c4bc634000-7fff603e2000 ---p 00000000 00:00 0    [rollup]\nRss: 1620 kB\nPss: bad kB\nPss_Anon: 112 kB\n\x00\x00\n";
        let (kv, probs) = smaps_rollup(p, t);
        assert_eq!(kv.get("Rss"), Some(1620 * 1024));
        assert_eq!(kv.get("Pss"), None);
        assert_eq!(kv.get("Pss_Anon"), Some(112 * 1024));
        assert_eq!(probs.len(), 2, "{probs:?}");
        assert!(
            probs[0].starts_with("/proc/7/smaps_rollup line 3: Pss:"),
            "{probs:?}"
        );
        assert!(probs[1].contains("line 5"), "{probs:?}");
        assert!(smaps_rollup(p, "").1.is_empty());
        assert!(!smaps_rollup(p, "garbage\n").1.is_empty());
    }
}
