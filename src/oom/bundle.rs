//! The OOM reports a capture keeps, so `memlens oom --from BUNDLE` works on a support bundle:
//! the kernel-log records of every OOM report about a captured cgroup, stored raw (the
//! `/dev/kmsg` format the log parser reads) at [`CAPTURE_KMSG`]. Only those records: the rest
//! of the kernel log stays on the node.

use crate::kmsg::log;
use crate::kmsg::oom::parse_reports;
use crate::sys::Root;
use std::path::Path;

/// Where a capture keeps the OOM records (under /proc so archives keep it).
pub const CAPTURE_KMSG: &str = "/proc/memlens-kmsg";

/// Longest run of records one report may take (its stack, meminfo, task list...).
const MAX_REPORT_RECORDS: u64 = 4000;

fn seq_of(raw: &str) -> Option<u64> {
    raw.split(';').next()?.split(',').nth(1)?.parse().ok()
}

/// The raw records of the reports whose memcg is `within` or below it (every report when
/// `within` is `None`), in log order.
pub fn records_for(raw: &[String], within: Option<&str>) -> String {
    let lines = log::parse_log(&raw.concat());
    let reports = parse_reports(&lines);
    let starts: Vec<u64> = reports.iter().filter_map(|r| r.seq).collect();
    let inside = |m: &str| match within {
        None => true,
        Some("/") => true,
        Some(w) => m == w || m.starts_with(&format!("{}/", w.trim_end_matches('/'))),
    };
    let mut ranges = Vec::new();
    for r in &reports {
        let Some(s) = r.seq else { continue };
        let about = [r.oom_memcg.as_deref(), r.task_memcg.as_deref()]
            .iter()
            .flatten()
            .any(|m| inside(m))
            || (within.is_none() && r.global);
        if !about {
            continue;
        }
        let next = starts.iter().copied().find(|x| *x > s).unwrap_or(u64::MAX);
        ranges.push((s, next.min(s + MAX_REPORT_RECORDS)));
    }
    raw.iter()
        .filter(|rec| seq_of(rec).is_some_and(|q| ranges.iter().any(|(a, b)| q >= *a && q < *b)))
        .map(|rec| {
            let mut r = rec.clone();
            if !r.ends_with('\n') {
                r.push('\n');
            }
            r
        })
        .collect()
}

/// Records the OOM reports about `within` from the live /dev/kmsg into the capture being
/// written by `root`; an unreadable log is listed as unreadable, like any file.
pub fn capture(root: &Root, within: Option<&str>) {
    // The boot time turns the records' monotonic stamps into wall times (/proc/stat btime).
    let _ = super::boot_time(root);
    match log::read_kmsg_raw(Path::new("/dev/kmsg")) {
        Ok(raw) => root.record_file(
            Path::new(CAPTURE_KMSG),
            records_for(&raw, within).into_bytes(),
        ),
        Err(e) => root.record_failure(
            Path::new(CAPTURE_KMSG),
            format!("/dev/kmsg: {e} (root or CAP_SYSLOG is needed)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_reports_of_the_captured_cgroup_are_kept() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/oom/this-host-6.18-v1.kmsg"
        ))
        .unwrap();
        let raw: Vec<String> = text.lines().map(|l| format!("{l}\n")).collect();
        let all = super::records_for(&raw, None);
        assert!(all.contains("invoked oom-killer"));
        assert_eq!(super::records_for(&raw, Some("/no-such-cgroup")), "");
    }
}
