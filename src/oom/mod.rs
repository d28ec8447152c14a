//! `memlens oom`: the kernel's OOM reports as post-mortems. Reads the kernel log (the live
//! `/dev/kmsg`, or a file of `dmesg`/`journalctl -k`/syslog text), parses each report with
//! [`crate::kmsg::oom`], names the container from the memcg path ([`crate::identity`]) and
//! says in plain words what filled the memory.

use crate::identity::{Identity, NodeNames};
use crate::kmsg::log::{self, LogLine};
use crate::kmsg::oom::{OomReport, fill_wall_times_us, parse_reports};
use crate::sys::Root;
use serde::Serialize;
use std::path::Path;

pub mod bundle;
pub mod follow;
pub mod level;

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
    /// Which level's limit fired (container, pod, qos-class, kubepods, global...).
    pub limit: level::LimitLevel,
    /// The whole-cgroup kill (memory.oom.group) this report is, with every victim.
    pub group_kill: Option<level::GroupKill>,
    /// Whether the victim was the container's main process (and the container lived on).
    pub victim_role: level::VictimRole,
    /// The counters now of every level from the victim's cgroup up (live node only).
    pub levels: Vec<level::LevelCounters>,
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

/// Boot time (unix microseconds) to turn the kernel log's monotonic stamps into wall time.
/// On a running kernel (live or `--host-root`: the same kernel) it is CLOCK_REALTIME −
/// CLOCK_BOOTTIME read back to back, as `dmesg -T` does: /proc/stat `btime` is whole seconds
/// (up to 1 s early). A capture falls back to its btime.
pub fn boot_time_us(root: &Root) -> Option<u64> {
    if root.is_capture() {
        return boot_time(root).map(|s| s.saturating_mul(1_000_000));
    }
    let now = |c| nix::time::clock_gettime(c).ok();
    // Three reads, the realtime one between two boottime ones, the pair kept whose
    // boottime reads were closest (a preemption between them would skew the difference).
    let b1 = now(nix::time::ClockId::CLOCK_BOOTTIME)?;
    let r = now(nix::time::ClockId::CLOCK_REALTIME)?;
    let b2 = now(nix::time::ClockId::CLOCK_BOOTTIME)?;
    let us = |t: nix::sys::time::TimeSpec| {
        i128::from(t.tv_sec()) * 1_000_000 + i128::from(t.tv_nsec()) / 1000
    };
    let boot = us(r) - (us(b1) + us(b2)) / 2;
    u64::try_from(boot).ok()
}

/// Where the log comes from.
pub enum Source<'a> {
    /// The live kernel's /dev/kmsg.
    Kmsg,
    /// Text (a file or stdin) in any of the supported log formats.
    Text(&'a str),
    /// The /dev/kmsg records a capture kept ([`bundle`]): stamped with the captured
    /// machine's boot time, which the capture holds too.
    Captured(&'a str),
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
        Source::Kmsg => (
            crate::kmsg::source::read_live(root)
                .map_err(std::io::Error::other)?
                .0,
            true,
        ),
        Source::Text(t) => (log::parse_log(t), false),
        Source::Captured(t) => (log::parse_log(t), true),
    };
    let mut reports = parse_reports(&lines);
    // Monotonic stamps become wall time only with the boot time of the kernel that wrote
    // them: this host's for /dev/kmsg; a file from elsewhere keeps its own stamps.
    if live && let Some(bt) = boot_time_us(root) {
        fill_wall_times_us(&mut reports, bt);
    }
    if let Some((y, why)) = year {
        crate::kmsg::oom::assume_year(&mut reports, y, why);
    }
    let mut pms: Vec<PostMortem> = reports
        .into_iter()
        .enumerate()
        // The kernel's sequence number when the log has one (/dev/kmsg): it stays the same
        // as the ring rotates, so `oom show N` means the same kill tomorrow; else the position.
        .map(|(i, report)| {
            let n = report.seq.map_or(i + 1, |q| q as usize);
            post_mortem(n, report)
        })
        .collect();
    add_names(root, &mut pms);
    // The live node adds what the log cannot say: the counters of each level, and whether
    // the victim's cgroup still has processes.
    if live && let Ok(h) = crate::report::hierarchy(root) {
        for pm in &mut pms {
            if let Some(t) = pm.report.task_memcg.clone() {
                pm.levels = level::levels(root, &h, &t);
                let surv = level::survivors(root, &h, &t);
                pm.victim_role = level::victim_role(&pm.report, pm.group_kill.as_ref(), surv);
            }
        }
    }
    Ok(pms)
}

/// Why `oom show N` found no kill: kills carry the kernel's sequence number when the log has
/// one (so N is stable as the ring rotates), which is not their position; say which numbers
/// the log holds so the user need not guess.
pub fn no_such_kill(n: usize, all: &[PostMortem]) -> String {
    let nums: Vec<String> = all.iter().map(|p| p.number.to_string()).collect();
    let list = if nums.len() > 6 {
        format!(
            "{}, ..., {}",
            nums[..3].join(", "),
            nums[nums.len() - 3..].join(", ")
        )
    } else {
        nums.join(", ")
    };
    match all.len() {
        0 => format!("no OOM kill number {n}: the log holds no OOM kill"),
        1 => format!(
            "no OOM kill number {n}: the log's one kill is number {list} (kills are numbered by the kernel's sequence number where the log has one; `memlens oom` lists them)"
        ),
        k => format!(
            "no OOM kill number {n}: the log's {k} kills are numbers {list} (kills are numbered by the kernel's sequence number where the log has one; `memlens oom` lists them)"
        ),
    }
}

/// Names the containers of `pms` from the node's files (docker config, podman storage,
/// kubelet listings), which usually outlive the killed process. A report read from a file of
/// another machine gets no names from this one: only a live system's (or `--host-root`'s)
/// files are asked, since a container ID is unique and a stale name is impossible only there.
pub fn add_names(root: &Root, pms: &mut [PostMortem]) {
    let ids: Vec<String> = pms
        .iter()
        .filter_map(|p| p.identity.as_ref()?.container_id.clone())
        .collect();
    if pms.iter().all(|p| p.identity.is_none()) {
        return;
    }
    let names = NodeNames::load(root, ids.iter().map(String::as_str));
    for p in pms {
        if let Some(id) = &mut p.identity {
            names.apply(id);
        }
    }
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

/// Whether kill `p` is about `target`: its memcg path (exactly, as its last component, or
/// below it), a container ID (prefix) or pod UID in that path, or the victim's name.
pub fn matches_target(p: &PostMortem, target: &str, resolved: Option<&str>) -> bool {
    let t = target.trim();
    let paths = [
        p.report.oom_memcg.as_deref(),
        p.report.task_memcg.as_deref(),
    ];
    paths.iter().flatten().any(|m| {
        *m == t
            || m.ends_with(&format!("/{t}"))
            || resolved
                .is_some_and(|r| *m == r || m.starts_with(&format!("{}/", r.trim_end_matches('/'))))
            || m.split('/')
                .any(|c| c.len() >= 4 && t.len() >= 4 && c.contains(t))
    }) || p.identity.as_ref().is_some_and(|i| {
        i.container_id
            .as_deref()
            .is_some_and(|c| t.len() >= 4 && c.starts_with(t))
    }) || p
        .report
        .victim
        .as_ref()
        .is_some_and(|v| v.comm.as_deref() == Some(t))
}

/// What memlens makes of one parsed report: container identity, top tasks and verdict.
pub fn post_mortem(number: usize, report: OomReport) -> PostMortem {
    let identity = report
        .task_memcg
        .as_deref()
        .or(report.oom_memcg.as_deref())
        .map(Identity::from_path)
        .filter(|id| id.short().is_some());
    let group_kill = level::group_kill(&report);
    PostMortem {
        number,
        top_tasks: top_tasks(&report),
        verdict: verdict(&report),
        limit: level::limit_level(&report),
        victim_role: level::victim_role(&report, group_kill.as_ref(), None),
        group_kill,
        levels: Vec::new(),
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

/// The kernel's OOM reports as the exporter keeps them between collections: the log read
/// whole once, then followed ([`crate::kmsg::tail::KmsgTail`]: the device, else syslog(2)),
/// parsed again only when new lines came. Bounded: the last [`KillLog::MAX_LINES`] lines.
pub struct KillLog {
    tail: Option<crate::kmsg::tail::KmsgTail>,
    lines: Vec<LogLine>,
    /// The newest stamp of the first whole read: followed lines older than it are repeats.
    first_max: Option<u64>,
    boot_us: Option<u64>,
    pms: Vec<PostMortem>,
    /// Why the log cannot be read (then only the counters tell of kills).
    pub problem: Option<String>,
}

impl KillLog {
    /// Lines kept (a few OOM reports of 100 lines each, and what lies between).
    pub const MAX_LINES: usize = 50_000;
    /// Kills exported (the newest).
    pub const MAX_KILLS: usize = 100;

    /// Opens the live kernel log of the system `root` reads.
    pub fn open(root: &Root) -> Self {
        use crate::kmsg::tail::KmsgTail;
        let dev = crate::kmsg::source::device_path(root);
        let tail = KmsgTail::open_at_end(&dev)
            .or_else(|_| KmsgTail::syslog_at_end())
            .ok();
        let mut k = KillLog {
            tail,
            lines: Vec::new(),
            first_max: None,
            boot_us: boot_time_us(root),
            pms: Vec::new(),
            problem: None,
        };
        match crate::kmsg::source::read_live(root) {
            Ok((lines, _)) => {
                k.first_max = lines.iter().filter_map(|l| l.mono_usec).max();
                k.lines = lines;
                k.parse(root);
            }
            Err(e) => k.problem = Some(e),
        }
        k
    }

    fn parse(&mut self, root: &Root) {
        let mut reports = parse_reports(&self.lines);
        if let Some(bt) = self.boot_us {
            fill_wall_times_us(&mut reports, bt);
        }
        let skip = reports.len().saturating_sub(Self::MAX_KILLS);
        let mut pms: Vec<PostMortem> = reports
            .into_iter()
            .enumerate()
            .skip(skip)
            .map(|(i, r)| post_mortem(i + 1, r))
            .collect();
        add_names(root, &mut pms);
        self.pms = pms;
    }

    /// The kills in the log now (reads what was logged since the last call).
    pub fn refresh(&mut self, root: &Root) -> &[PostMortem] {
        let new = match self.tail.as_mut().map(|t| t.read_new()) {
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                self.problem = Some(format!("kernel log: {e}"));
                self.tail = None;
                Vec::new()
            }
            None => Vec::new(),
        };
        let fresh: Vec<LogLine> = new
            .into_iter()
            .filter(|l| match (l.mono_usec, self.first_max) {
                (Some(m), Some(f)) => m > f,
                _ => true,
            })
            .collect();
        if !fresh.is_empty() {
            self.lines.extend(fresh);
            let over = self.lines.len().saturating_sub(Self::MAX_LINES);
            self.lines.drain(..over);
            self.parse(root);
        }
        &self.pms
    }
}
