//! `memlens oom`: the kernel's OOM reports as post-mortems. Reads the kernel log (the live
//! `/dev/kmsg`, or a file of `dmesg`/`journalctl -k`/syslog text), parses each report with
//! [`crate::kmsg::oom`], names the container from the memcg path ([`crate::identity`]) and
//! says in plain words what filled the memory.

use crate::identity::Identity;
use crate::kmsg::log::{self, LogLine};
use crate::kmsg::oom::{OomReport, fill_wall_times, parse_reports};
use crate::sys::Root;
use serde::Serialize;
use std::path::Path;

pub mod follow;

/// One OOM kill with what memlens makes of it.
#[derive(Debug, Clone, Serialize)]
pub struct PostMortem {
    /// 1-based number in the list (`memlens oom show N`).
    pub number: usize,
    /// The parsed report (its fields are the JSON interface: time, complete, constraint, ...).
    #[serde(flatten)]
    pub report: OomReport,
    /// The container/pod the OOM memcg belongs to.
    pub identity: Option<Identity>,
    /// The biggest tasks in the report's task table, with their share of the table's RSS.
    pub top_tasks: Vec<TopTask>,
    /// The verdict in plain words.
    pub verdict: Verdict,
}

/// A task from the report's table.
#[derive(Debug, Clone, Serialize)]
pub struct TopTask {
    /// PID.
    pub pid: Option<i32>,
    /// Command.
    pub name: Option<String>,
    /// RSS in bytes (pages × 4096).
    pub rss_bytes: Option<u64>,
    /// Share of the summed RSS of the table, in percent.
    pub share_percent: Option<f64>,
}

/// What filled the memory.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Stable id: `global`, `anon-growth`, `shmem`, `kernel-memory`, `memsw-limit`, `dirty-cache`,
    /// `limit-too-small`, `unknown`.
    pub id: &'static str,
    /// One sentence.
    pub text: String,
}

fn stat(r: &OomReport, keys: &[&str]) -> Option<u64> {
    keys.iter()
        .find_map(|k| r.stat.iter().find(|(n, _)| n == k).map(|(_, v)| *v))
}

/// The verdict for one report, from its stat dump (shares of the cgroup's usage at the kill).
pub fn verdict(r: &OomReport) -> Verdict {
    if r.global {
        return Verdict {
            id: "global",
            text: "A global OOM: the whole host ran out of memory (no cgroup limit was hit); the victim was chosen by oom_score across the node, so no container need be at fault.".into(),
        };
    }
    let anon = stat(r, &["anon", "total_rss", "rss"]);
    let shmem = stat(r, &["shmem", "total_shmem"]);
    let kernel = stat(r, &["kernel"]).or_else(|| {
        let parts: Vec<u64> = ["kernel_stack", "pagetables", "slab", "sock", "percpu"]
            .iter()
            .filter_map(|k| stat(r, &[k]))
            .collect();
        (!parts.is_empty()).then(|| parts.iter().sum())
    });
    // Dirty page cache. v2 file_dirty/file_writeback are page cache only; v1 `writeback`
    // also counts anon pages being written to swap (mm/memcontrol.c NR_WRITEBACK is not
    // split by LRU type), so on v1 the figure is capped by the page cache itself: a cgroup
    // with no cache has no dirty cache, whatever its writeback says.
    let cache = stat(r, &["file", "total_cache", "cache"]);
    let dirty_raw = stat(r, &["file_dirty", "total_dirty", "dirty"])
        .unwrap_or(0)
        .saturating_add(stat(r, &["file_writeback", "total_writeback", "writeback"]).unwrap_or(0));
    let dirty = cache.map_or(0, |c| dirty_raw.min(c));
    let usage = r.usage_bytes.or(r.limit_bytes);
    let (Some(usage), Some(anon)) = (usage, anon) else {
        return Verdict {
            id: "unknown",
            text: "The report lacks the memory.stat dump or the usage line (cut by the ring buffer?): memlens cannot say what filled the cgroup.".into(),
        };
    };
    let pct = |v: u64| v as f64 * 100.0 / usage.max(1) as f64;
    let mib = |v: u64| format!("{:.1} MiB", v as f64 / 1048576.0);
    if let Some(s) = shmem.filter(|s| pct(*s) >= 20.0) {
        return Verdict {
            id: "shmem",
            text: format!(
                "shmem (tmpfs, /dev/shm, emptyDir medium: Memory, SysV shm) held {} ({:.0}% of usage): page cache that cannot be reclaimed without swap. Files left in a memory-backed volume count against the limit.",
                mib(s),
                pct(s)
            ),
        };
    }
    if let Some(k) = kernel.filter(|k| pct(*k) >= 20.0) {
        return Verdict {
            id: "kernel-memory",
            text: format!(
                "kernel memory (slab, page tables, sockets) held {} ({:.0}% of usage): look for many files/dentries, sockets or processes.",
                mib(k),
                pct(k)
            ),
        };
    }
    // The memory+swap limit is the cause only when it allows swap (above the memory limit)
    // and is full: with memsw = memory (no swap allowed) both are "hit" and the memory limit
    // is the story.
    if let (Some(u), Some(l)) = (r.memsw_usage_bytes, r.memsw_limit_bytes)
        && l > r.limit_bytes.unwrap_or(u64::MAX)
        && u >= l - l / 100
    {
        return Verdict {
            id: "memsw-limit",
            text: format!(
                "the memory+swap limit was hit ({} of {}, memory.memsw.limit_in_bytes): the cgroup's swap allowance was used up, so anonymous memory ({}) could no longer be pushed out to swap.",
                mib(u),
                mib(l),
                mib(anon)
            ),
        };
    }
    if pct(dirty) >= 10.0 {
        return Verdict {
            id: "dirty-cache",
            text: format!(
                "{} of page cache was dirty or under writeback ({:.0}% of usage): it could not be reclaimed in time because it must be written first.",
                mib(dirty),
                pct(dirty)
            ),
        };
    }
    if pct(anon) >= 70.0 {
        return Verdict {
            id: "anon-growth",
            text: format!(
                "anonymous memory (heap, stacks) was {} ({:.0}% of usage): the program's own allocations filled the limit. If this repeats at a growing rate, suspect a leak; otherwise the limit is below the working set.",
                mib(anon),
                pct(anon)
            ),
        };
    }
    Verdict {
        id: "limit-too-small",
        text: format!(
            "no single kind dominates (anon {}, {:.0}% of usage): the limit is simply smaller than what the workload needs at its peak.",
            mib(anon),
            pct(anon)
        ),
    }
}

fn top_tasks(r: &OomReport) -> Vec<TopTask> {
    let total: u64 = r.tasks.iter().filter_map(|t| t.rss_bytes).sum();
    let mut t: Vec<TopTask> = r
        .tasks
        .iter()
        .map(|t| TopTask {
            pid: t.pid,
            name: t.name.clone(),
            rss_bytes: t.rss_bytes,
            share_percent: t
                .rss_bytes
                .filter(|_| total > 0)
                .map(|b| b as f64 * 100.0 / total as f64),
        })
        .collect();
    t.sort_by_key(|x| std::cmp::Reverse(x.rss_bytes));
    t.truncate(5);
    t
}

/// Boot time (unix seconds) from /proc/stat `btime`, to turn monotonic stamps into wall time.
pub fn boot_time(root: &Root) -> Option<u64> {
    let t = root.read(Path::new("/proc/stat")).ok()?;
    t.lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// Where the log comes from.
pub enum Source<'a> {
    /// The live kernel's /dev/kmsg.
    Kmsg,
    /// Text (a file or stdin) in any of the supported log formats.
    Text(&'a str),
}

/// Reads and parses every OOM report the source holds.
pub fn collect(root: &Root, src: Source<'_>) -> std::io::Result<Vec<PostMortem>> {
    collect_with_year(root, src, None)
}

/// [`collect`], completing yearless syslog times with `year` (the year and why it was
/// chosen: the log file's modification time, or the current year).
pub fn collect_with_year(
    root: &Root,
    src: Source<'_>,
    year: Option<(i32, &str)>,
) -> std::io::Result<Vec<PostMortem>> {
    let (lines, live): (Vec<LogLine>, bool) = match src {
        Source::Kmsg => (log::read_kmsg(Path::new("/dev/kmsg"))?, true),
        Source::Text(t) => (log::parse_log(t), false),
    };
    let mut reports = parse_reports(&lines);
    // Monotonic stamps become wall time only with the boot time of the kernel that wrote
    // them: this host's for /dev/kmsg; a file from elsewhere keeps its own stamps.
    if live && let Some(bt) = boot_time(root) {
        fill_wall_times(&mut reports, bt);
    }
    if let Some((y, why)) = year {
        crate::kmsg::oom::assume_year(&mut reports, y, why);
    }
    Ok(reports
        .into_iter()
        .enumerate()
        .map(|(i, report)| post_mortem(i + 1, report))
        .collect())
}

/// The civil year of a Unix time (proleptic Gregorian, UTC): hand-written because memlens has
/// no date crate and needs only this (H. Hinnant's days-to-civil algorithm).
pub fn year_of(unix_secs: i64) -> i32 {
    let z = unix_secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2)) as i32
}

/// What memlens makes of one parsed report: container identity, top tasks and verdict.
pub fn post_mortem(number: usize, report: OomReport) -> PostMortem {
    let identity = report
        .task_memcg
        .as_deref()
        .or(report.oom_memcg.as_deref())
        .map(Identity::from_path)
        .filter(|id| id.short().is_some());
    PostMortem {
        number,
        top_tasks: top_tasks(&report),
        verdict: verdict(&report),
        identity,
        report,
    }
}

/// A short text of the OOM report that killed `pid`, for `memlens run` (None when the kernel
/// log has none, e.g. /dev/kmsg unreadable).
pub fn report_for_pid(pid: i32) -> Option<String> {
    let all = collect(&Root::live(), Source::Kmsg).ok()?;
    let pm = all
        .into_iter()
        .rev()
        .find(|p| p.report.victim.as_ref().and_then(|v| v.pid) == Some(pid))?;
    let v = pm.report.victim.as_ref()?;
    Some(format!(
        "kernel OOM report: killed {} ({}) anon-rss {} file-rss {} shmem-rss {}; memcg usage {} limit {}; verdict: {}",
        pid,
        v.comm.as_deref().unwrap_or("?"),
        crate::render::bytes(v.anon_rss_bytes),
        crate::render::bytes(v.file_rss_bytes),
        crate::render::bytes(v.shmem_rss_bytes),
        crate::render::bytes(pm.report.usage_bytes),
        crate::render::bytes(pm.report.limit_bytes),
        pm.verdict.text
    ))
}
