//! OOM-killer reports (kernels 3.10 to 6.x) assembled from kernel log lines.
//!
//! Hand-written: no crate parses OOM reports. The kernel prints one report as many separate
//! printk lines, whose wording changed across versions, so the parser works line by line,
//! keys on the stable phrases below, and keeps whatever it understood when lines are missing:
//!
//! * start: `COMM invoked oom-killer: gfp_mask=..., [nodemask=..., ]order=N, oom_score_adj=N`
//! * memcg: `Task in A killed as a result of limit of B` (< 4.19) or
//!   `oom-kill:constraint=...,oom_memcg=B,task_memcg=A,task=..,pid=..,uid=..` (>= 4.19)
//! * counters: `memory:`, `memory+swap:`, `kmem:`, `swap:` `usage NkB, limit NkB, failcnt N`
//! * `Memory cgroup stats for /path: cache:..KB ...` (one line, v1 < 5.x) or the same header
//!   followed by one `key value` line per counter (v2, and v1 on 6.x)
//! * the task table, whose columns are read from its header line
//! * victim: `Killed process ...` with or without `Kill process .. or sacrifice child` before it
//! * end: the victim line, or `oom_reaper: reaped process ...` right after it.
//!
//! Sizes become bytes: `kB`/`KB` values ×1024, task-table page counts ×4096.

use super::log::LogLine;
use serde::Serialize;

const PAGE: u64 = 4096;

/// A process named in a report.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Process {
    pub pid: Option<i32>,
    pub comm: Option<String>,
}

/// The killed process, as the victim line and the constraint line describe it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Victim {
    pub pid: Option<i32>,
    pub comm: Option<String>,
    pub total_vm_bytes: Option<u64>,
    pub anon_rss_bytes: Option<u64>,
    pub file_rss_bytes: Option<u64>,
    pub shmem_rss_bytes: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    pub uid: Option<u32>,
    pub oom_score_adj: Option<i32>,
}

/// What the OOM reaper freed (`oom_reaper: reaped process ...`): what was left afterwards.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Reaped {
    pub pid: Option<i32>,
    pub comm: Option<String>,
    pub anon_rss_bytes: Option<u64>,
    pub file_rss_bytes: Option<u64>,
    pub shmem_rss_bytes: Option<u64>,
}

/// One row of the task table; `None` where this kernel's table lacks the column.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Task {
    pub pid: Option<i32>,
    pub uid: Option<u32>,
    pub tgid: Option<i32>,
    pub total_vm_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
    pub rss_shmem_bytes: Option<u64>,
    /// `pgtables_bytes`, or `(nr_ptes + nr_pmds) × 4096` on kernels that counted pages.
    pub pgtables_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    pub oom_score_adj: Option<i32>,
    pub name: Option<String>,
}

/// One OOM-killer invocation.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct OomReport {
    /// ISO-8601 wall clock of the first line, when the log format gives a full date
    /// (or after [`fill_wall_times`]).
    pub time: Option<String>,
    /// How `time` was completed when the log's own stamp had no year (syslog): which year
    /// was assumed and why (see [`assume_year`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_note: Option<String>,
    /// The first line's wall clock as logged, when it has no year (`Oct 12 19:00:20`).
    #[serde(skip)]
    pub logged_wall: Option<String>,
    pub mono_usec: Option<u64>,
    pub seq: Option<u64>,
    /// The start, the victim and (for a memcg OOM) the stat dump were all seen.
    pub complete: bool,
    /// `CONSTRAINT_MEMCG`, `CONSTRAINT_NONE`, ...; derived from the wording on old kernels.
    pub constraint: Option<String>,
    /// Not limited by a memory cgroup (system-wide, cpuset or mempolicy OOM).
    pub global: bool,
    pub oom_memcg: Option<String>,
    pub task_memcg: Option<String>,
    pub trigger: Process,
    pub gfp_mask: Option<String>,
    pub order: Option<u32>,
    pub oom_score_adj: Option<i32>,
    pub victim: Option<Victim>,
    pub usage_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    pub failcnt: Option<u64>,
    pub memsw_usage_bytes: Option<u64>,
    pub memsw_limit_bytes: Option<u64>,
    pub kmem_usage_bytes: Option<u64>,
    pub kmem_limit_bytes: Option<u64>,
    pub swap_usage_bytes: Option<u64>,
    pub swap_limit_bytes: Option<u64>,
    /// The OOM memcg's `memory.stat` dump, in order; `KB` values converted to bytes, others
    /// as printed. Only the first dump (the OOM memcg; v1 then prints its children).
    #[serde(serialize_with = "crate::model::pairs_as_map")]
    pub stat: Vec<(String, u64)>,
    pub stat_memcg: Option<String>,
    pub tasks: Vec<Task>,
    pub reaped: Option<Reaped>,
    /// The raw kernel lines of this report (without their log prefixes).
    pub lines: Vec<String>,
}

/// Where the parser is inside a report: which multi-line block the next line may continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    None,
    /// After `Memory cgroup stats for /x:` with nothing after the colon.
    Stat,
    Tasks,
}

struct Builder {
    report: OomReport,
    started: bool,
    stat_seen: bool,
    block: Block,
    columns: Vec<String>,
    /// A `Killed process` line was applied (the constraint or `Kill process` lines only name
    /// the victim to be).
    victim_done: bool,
    /// `memory.oom.group` kills every task of a cgroup: later victim lines belong here.
    group_kill: bool,
}

impl Builder {
    fn new(line: &LogLine, started: bool) -> Self {
        let time = line
            .wall
            .as_ref()
            .filter(|w| w.len() >= 19 && w.as_bytes().get(4) == Some(&b'-'))
            .map(|w| rfc3339_zone(w));
        let logged_wall = line.wall.clone().filter(|_| time.is_none());
        let time_note = time
            .as_deref()
            .filter(|t| zone_of(t).is_none())
            .map(|_| NO_ZONE.to_string());
        Builder {
            report: OomReport {
                time,
                time_note,
                logged_wall,
                mono_usec: line.mono_usec,
                seq: line.seq,
                ..OomReport::default()
            },
            started,
            stat_seen: false,
            block: Block::None,
            columns: Vec::new(),
            victim_done: false,
            group_kill: false,
        }
    }

    fn finish(mut self) -> OomReport {
        let r = &mut self.report;
        if r.constraint.is_none() && r.victim.is_some() {
            r.constraint = Some(
                if r.global {
                    "CONSTRAINT_NONE"
                } else {
                    "CONSTRAINT_MEMCG"
                }
                .into(),
            );
        }
        r.complete = self.started && self.victim_done && (r.global || self.stat_seen);
        // A report cut after its stat header still names the memcg: the kernel prints the
        // stats of the memcg whose limit was hit (mem_cgroup_print_oom_meminfo).
        if r.oom_memcg.is_none() && !r.global {
            r.oom_memcg = r.stat_memcg.clone();
        }
        self.report
    }
}

/// Groups log lines into OOM reports, in log order. Never panics; linear in the input.
pub fn parse_reports(lines: &[LogLine]) -> Vec<OomReport> {
    let mut out = Vec::new();
    let mut cur: Option<Builder> = None;
    for line in lines.iter().filter(|l| l.is_kernel()) {
        let text = line.text.trim_start();
        if let Some(start) = text.find(" invoked oom-killer: ") {
            out.extend(cur.take().map(Builder::finish));
            let mut b = Builder::new(line, true);
            parse_invoked(&mut b.report, text, start);
            b.report.lines.push(line.text.clone());
            cur = Some(b);
            continue;
        }
        let kind = classify(text);
        if matches!(kind, Kind::Other) {
            // Lines between start and victim belong to the report (call trace, Mem-Info...).
            if let Some(b) = cur.as_mut().filter(|b| !b.victim_done) {
                b.report.lines.push(line.text.clone());
                handle_other_line(b, text);
            }
            continue;
        }
        // A victim line when the open report already has its victim starts a new one
        // (unless memory.oom.group is killing the whole cgroup).
        let new_victim = matches!(kind, Kind::Victim(_) | Kind::Select(_));
        let closes = cur
            .as_ref()
            .is_some_and(|b| new_victim && b.victim_done && !b.group_kill);
        if closes {
            out.extend(cur.take().map(Builder::finish));
        }
        if matches!(kind, Kind::Reaper) && cur.is_none() {
            continue;
        }
        let b = cur.get_or_insert_with(|| Builder::new(line, false));
        b.report.lines.push(line.text.clone());
        b.block = Block::None;
        let done = apply(b, kind, text);
        if done {
            out.extend(cur.take().map(Builder::finish));
        }
    }
    out.extend(cur.map(Builder::finish));
    out
}

/// Completes the times of reports whose log stamp had no year (syslog's `Oct 12 19:00:20`)
/// with `year`; `why` says where the year comes from (the file's modification time, or the
/// current year), and is kept in [`OomReport::time_note`].
pub fn assume_year(reports: &mut [OomReport], year: i32, why: &str) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    for r in reports.iter_mut().filter(|r| r.time.is_none()) {
        let Some(w) = r.logged_wall.as_deref() else {
            continue;
        };
        let mut it = w.split_whitespace();
        let (Some(mon), Some(day), Some(hms)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let (Some(m), Ok(d)) = (MONTHS.iter().position(|x| *x == mon), day.parse::<u32>()) else {
            continue;
        };
        if hms.len() < 8 || hms.as_bytes().get(2) != Some(&b':') {
            continue;
        }
        r.time = Some(format!("{year:04}-{:02}-{d:02}T{hms}", m + 1));
        r.time_note = Some(format!(
            "the log's time has no year: {year} assumed ({why}); {NO_ZONE}"
        ));
    }
}

/// [`OomReport::time_note`] of a time the log gave without a zone.
pub const NO_ZONE: &str = "the log's time has no zone: the local time of the machine that wrote the log (dmesg -T, journalctl -o short, syslog)";

/// The zone of an ISO-8601 time (`Z`, `+01:00`), if it has one.
pub fn zone_of(t: &str) -> Option<&str> {
    let rest = t.get(19..)?;
    let i = rest.find(['Z', '+', '-'])?;
    rest.get(i..)
}

/// A logged ISO-8601 time in RFC 3339 form: journalctl's `-o short-iso` zone `+0100` written
/// `+01:00` (dmesg's `--time-format iso` and RFC 5424 already are), the zone kept as logged:
/// the log says which zone its times are in, and memlens does not convert them.
fn rfc3339_zone(w: &str) -> String {
    if let Some(z) = zone_of(w)
        && z.len() == 5
        && z[1..].bytes().all(|b| b.is_ascii_digit())
    {
        let head = &w[..w.len() - 5];
        return format!("{head}{}{}:{}", &z[..1], &z[1..3], &z[3..]);
    }
    w.to_string()
}

/// Sets [`OomReport::time`] from the monotonic time where the log gave no wall clock.
pub fn fill_wall_times(reports: &mut [OomReport], boot_time_unix_secs: u64) {
    fill_wall_times_us(reports, boot_time_unix_secs.saturating_mul(1_000_000));
}

/// [`fill_wall_times`] with the boot time in microseconds.
pub fn fill_wall_times_us(reports: &mut [OomReport], boot_time_unix_usec: u64) {
    for r in reports.iter_mut().filter(|r| r.time.is_none()) {
        r.time = r
            .mono_usec
            .map(|m| super::log::wall_time_us(m, boot_time_unix_usec));
    }
}

/// The report lines recognised by their first words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TaskIn,
    Counter(Counter),
    StatHeader,
    TasksHeader,
    Constraint,
    /// `Kill process N (comm) score S or sacrifice child`; bool: memcg.
    Select(bool),
    /// `Killed process N (comm) ...`; `Some(memcg)` when prefixed by the OOM kind.
    Victim(Option<bool>),
    GroupKill,
    Reaper,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Memory,
    MemSw,
    Kmem,
    Swap,
}

const MEMCG_OOM: &str = "Memory cgroup out of memory: ";
const GLOBAL_OOM: &str = "Out of memory";

fn classify(text: &str) -> Kind {
    if text.starts_with("Task in ") && text.contains(" killed as a result of limit of ") {
        return Kind::TaskIn;
    }
    for (prefix, c) in [
        ("memory: usage ", Counter::Memory),
        ("memory+swap: usage ", Counter::MemSw),
        ("kmem: usage ", Counter::Kmem),
        ("swap: usage ", Counter::Swap),
    ] {
        if text.starts_with(prefix) {
            return Kind::Counter(c);
        }
    }
    if text.starts_with("Memory cgroup stats for ") {
        return Kind::StatHeader;
    }
    if text.starts_with('[')
        && text.contains("pid")
        && text.contains("tgid")
        && text.ends_with("name")
    {
        return Kind::TasksHeader;
    }
    if text.starts_with("oom-kill:constraint=") {
        return Kind::Constraint;
    }
    if text.starts_with("Tasks in ") && text.contains("memory.oom.group") {
        return Kind::GroupKill;
    }
    if text.starts_with("oom_reaper: reaped process ") {
        return Kind::Reaper;
    }
    let (memcg, rest) = if let Some(r) = text.strip_prefix(MEMCG_OOM) {
        (Some(true), r)
    } else if let Some(r) = text.strip_prefix(GLOBAL_OOM) {
        // "Out of memory: " or "Out of memory (oom_kill_allocating_task): "
        match r.split_once(": ") {
            Some((why, r)) if why.is_empty() || why.starts_with(" (") => (Some(false), r),
            _ => return Kind::Other,
        }
    } else {
        (None, text)
    };
    if rest.starts_with("Killed process ") {
        return Kind::Victim(memcg);
    }
    if let Some(m) = memcg.filter(|_| rest.starts_with("Kill process ")) {
        return Kind::Select(m);
    }
    Kind::Other
}

/// Applies one recognised line; returns whether it ends the report.
fn apply(b: &mut Builder, kind: Kind, text: &str) -> bool {
    let r = &mut b.report;
    match kind {
        Kind::TaskIn => {
            let rest = text.get("Task in ".len()..).unwrap_or("");
            if let Some((task, oom)) = rest.split_once(" killed as a result of limit of ") {
                r.task_memcg = Some(task.to_string());
                r.oom_memcg = Some(oom.trim().to_string());
            }
            r.global = false;
        }
        Kind::Counter(c) => {
            let (usage, limit, failcnt) = parse_counter(text);
            match c {
                Counter::Memory => {
                    (r.usage_bytes, r.limit_bytes, r.failcnt) = (usage, limit, failcnt)
                }
                Counter::MemSw => (r.memsw_usage_bytes, r.memsw_limit_bytes) = (usage, limit),
                Counter::Kmem => (r.kmem_usage_bytes, r.kmem_limit_bytes) = (usage, limit),
                Counter::Swap => (r.swap_usage_bytes, r.swap_limit_bytes) = (usage, limit),
            }
        }
        Kind::StatHeader => {
            if !b.stat_seen {
                b.stat_seen = true;
                let rest = text.get("Memory cgroup stats for ".len()..).unwrap_or("");
                let (path, stats) = rest.split_once(':').unwrap_or((rest, ""));
                r.stat_memcg = Some(path.to_string());
                if stats.trim().is_empty() {
                    b.block = Block::Stat;
                } else {
                    r.stat = parse_inline_stat(stats);
                }
            }
        }
        Kind::TasksHeader => {
            b.columns = text
                .split_once(']')
                .map_or("", |(_, c)| c)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            b.block = Block::Tasks;
        }
        Kind::Constraint => parse_constraint(r, text),
        Kind::Select(memcg) => {
            r.global = !memcg;
            let rest = text.split_once("Kill process ").map_or("", |(_, r)| r);
            let (pid, comm, _) = pid_comm(rest);
            let v = r.victim.get_or_insert_with(Victim::default);
            v.pid = pid;
            v.comm = comm;
        }
        Kind::Victim(memcg) => {
            if b.group_kill && b.victim_done {
                return false;
            }
            b.victim_done = true;
            if let Some(m) = memcg {
                r.global = !m;
            }
            let rest = text.split_once("Killed process ").map_or("", |(_, r)| r);
            parse_victim(r.victim.get_or_insert_with(Victim::default), rest);
        }
        Kind::GroupKill => b.group_kill = true,
        Kind::Reaper => {
            let rest = text
                .get("oom_reaper: reaped process ".len()..)
                .unwrap_or("");
            let (pid, comm, after) = pid_comm(rest);
            if r.reaped.is_none() {
                r.reaped = Some(Reaped {
                    pid,
                    comm,
                    anon_rss_bytes: kv_kb(after, "anon-rss:"),
                    file_rss_bytes: kv_kb(after, "file-rss:"),
                    shmem_rss_bytes: kv_kb(after, "shmem-rss:"),
                });
            }
            return !b.group_kill;
        }
        Kind::Other => {}
    }
    false
}

/// An unrecognised line inside a report: the trigger's `CPU:` line, or the continuation of a
/// multi-line block (stat dump, task table).
fn handle_other_line(b: &mut Builder, text: &str) {
    if text.starts_with("CPU: ") || text.starts_with("Pid: ") {
        parse_cpu_line(&mut b.report, text);
    }
    match b.block {
        Block::Stat => match parse_stat_line(text) {
            Some(kv) => b.report.stat.push(kv),
            None => b.block = Block::None,
        },
        Block::Tasks => {
            if let Some(t) = parse_task(&b.columns, text) {
                b.report.tasks.push(t);
            } else if !text.starts_with("Tasks state") {
                b.block = Block::None;
            }
        }
        Block::None => {}
    }
}

fn parse_invoked(r: &mut OomReport, text: &str, start: usize) {
    let comm = text.get(..start).unwrap_or("");
    if !comm.is_empty() {
        r.trigger.comm = Some(comm.to_string());
    }
    let args = text
        .get(start + " invoked oom-killer: ".len()..)
        .unwrap_or("");
    r.gfp_mask = field(args, "gfp_mask=").map(str::to_string);
    r.order = field(args, "order=").and_then(|v| v.parse().ok());
    r.oom_score_adj = field(args, "oom_score_adj=").and_then(|v| v.parse().ok());
}

/// `CPU: 1 PID: 116 Comm: x ...` (or 2.6-era `Pid: 1743, comm: sshd ...`) names the trigger.
fn parse_cpu_line(r: &mut OomReport, text: &str) {
    let Some((_, after)) = text
        .split_once("PID: ")
        .or_else(|| text.split_once("Pid: "))
    else {
        return;
    };
    if r.trigger.pid.is_none() {
        r.trigger.pid = leading_int(after);
    }
    if r.trigger.comm.is_none() {
        let comm = after
            .split_once("Comm: ")
            .or_else(|| after.split_once("comm: "));
        r.trigger.comm = comm
            .and_then(|(_, c)| c.split_whitespace().next())
            .map(str::to_string);
    }
}

/// The value of `key=` in a `, `-separated list, up to the next `, ` outside parentheses.
fn field<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    let pos = args
        .match_indices(key)
        .map(|(i, _)| i)
        .find(|&i| i == 0 || matches!(args.get(i - 1..i), Some(" " | ",")))?;
    let val = args.get(pos + key.len()..)?;
    let mut depth = 0i32;
    for (i, c) in val.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => return val.get(..i),
            _ => {}
        }
    }
    Some(val.trim_end())
}

fn leading_int<T: std::str::FromStr>(s: &str) -> Option<T> {
    let s = s.trim_start();
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(s.len(), |(i, _)| i);
    s.get(..end)?.parse().ok()
}

fn kb(n: u64) -> Option<u64> {
    n.checked_mul(1024)
}

/// The number after `key` (up to a non-digit), as bytes when followed by `kB`/`KB`.
fn kv_kb(s: &str, key: &str) -> Option<u64> {
    let after = s.split_once(key)?.1;
    let n: u64 = leading_int(after)?;
    kb(n)
}

/// A limit at or above 2^62 bytes is the kernel's "unlimited" sentinel (PAGE_COUNTER_MAX
/// pages: 9223372036854771712 with 4 KiB pages; 18446744073709550592 on kernels that print
/// the counter's u64 maximum), never a real limit: `None`, as the cgroup readers do.
const UNLIMITED_FLOOR: u64 = 1 << 62;

fn parse_counter(text: &str) -> (Option<u64>, Option<u64>, Option<u64>) {
    let usage = kv_kb(text, "usage ");
    let limit = kv_kb(text, "limit ").filter(|l| *l < UNLIMITED_FLOOR);
    let failcnt = text
        .split_once("failcnt ")
        .and_then(|(_, a)| leading_int(a));
    (usage, limit, failcnt)
}

/// ` cache:64KB rss:53760KB ...` (v1, one line).
fn parse_inline_stat(s: &str) -> Vec<(String, u64)> {
    s.split_whitespace()
        .filter_map(|tok| {
            let (k, v) = tok.split_once(':')?;
            let (num, is_kb) = match v.strip_suffix("KB").or_else(|| v.strip_suffix("kB")) {
                Some(n) => (n, true),
                None => (v, false),
            };
            let n: u64 = num.parse().ok()?;
            Some((k.to_string(), if is_kb { kb(n)? } else { n }))
        })
        .collect()
}

/// `anon 98742272` (one counter per line).
fn parse_stat_line(text: &str) -> Option<(String, u64)> {
    let mut it = text.split_whitespace();
    let (k, v) = (it.next()?, it.next()?);
    if it.next().is_some() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    Some((k.to_string(), v.parse().ok()?))
}

/// `[  116]     0   116  2628942 ... name` against the header's columns.
fn parse_task(columns: &[String], text: &str) -> Option<Task> {
    let rest = text.strip_prefix('[')?;
    let (pid, rest) = rest.split_once(']')?;
    let pid: i32 = pid.trim().parse().ok()?;
    let n = columns.len();
    if n == 0 || columns.last().map(String::as_str) != Some("name") {
        return None;
    }
    let mut t = Task {
        pid: Some(pid),
        ..Task::default()
    };
    let mut rest = rest.trim_start();
    let mut nr_pt: Option<u64> = None;
    for col in columns.iter().take(n - 1) {
        let (tok, after) = rest.split_once(char::is_whitespace)?;
        rest = after.trim_start();
        let num = |scale: u64| tok.parse::<u64>().ok().and_then(|v| v.checked_mul(scale));
        match col.as_str() {
            "uid" => t.uid = tok.parse().ok(),
            "tgid" => t.tgid = tok.parse().ok(),
            "total_vm" => t.total_vm_bytes = num(PAGE),
            "rss" => t.rss_bytes = num(PAGE),
            "rss_anon" => t.rss_anon_bytes = num(PAGE),
            "rss_file" => t.rss_file_bytes = num(PAGE),
            "rss_shmem" => t.rss_shmem_bytes = num(PAGE),
            "pgtables_bytes" => t.pgtables_bytes = num(1),
            "nr_ptes" | "nr_pmds" => {
                nr_pt = nr_pt.unwrap_or(0).checked_add(tok.parse().ok()?);
            }
            "swapents" => t.swap_bytes = num(PAGE),
            "oom_score_adj" => t.oom_score_adj = tok.parse().ok(),
            _ => {}
        }
    }
    if t.pgtables_bytes.is_none() {
        t.pgtables_bytes = nr_pt.and_then(|p| p.checked_mul(PAGE));
    }
    let name = rest.trim();
    if name.is_empty() {
        return None;
    }
    t.name = Some(name.to_string());
    Some(t)
}

fn parse_constraint(r: &mut OomReport, text: &str) {
    let body = text.get("oom-kill:".len()..).unwrap_or("");
    let (mut pid, mut task, mut uid) = (None, None, None);
    let mut global_oom = false;
    for part in body.split(',') {
        match part.split_once('=') {
            Some(("constraint", v)) => r.constraint = Some(v.to_string()),
            Some(("oom_memcg", v)) => r.oom_memcg = Some(v.to_string()),
            Some(("task_memcg", v)) => r.task_memcg = Some(v.to_string()),
            Some(("task", v)) => task = Some(v.to_string()),
            Some(("pid", v)) => pid = v.parse().ok(),
            Some(("uid", v)) => uid = v.parse().ok(),
            None if part == "global_oom" => global_oom = true,
            _ => {}
        }
    }
    r.global = global_oom || r.constraint.as_deref() != Some("CONSTRAINT_MEMCG");
    let v = r.victim.get_or_insert_with(Victim::default);
    v.pid = v.pid.or(pid);
    v.comm = v.comm.take().or(task);
    v.uid = v.uid.or(uid);
}

/// `N (comm)...` → pid, comm and the text after the comm. The comm may itself contain
/// parentheses or spaces, so it ends at the last `)` before the first `:` field.
fn pid_comm(s: &str) -> (Option<i32>, Option<String>, &str) {
    let pid = leading_int(s);
    let Some(open) = s.find(" (") else {
        return (pid, None, s);
    };
    let body = s.get(open + 2..).unwrap_or("");
    let limit = body.find(':').unwrap_or(body.len());
    let close = body.get(..limit).and_then(|b| b.rfind(')'));
    match close {
        Some(c) => (
            pid,
            body.get(..c).map(str::to_string),
            body.get(c + 1..).unwrap_or(""),
        ),
        None => (pid, None, s),
    }
}

/// `N (comm) total-vm:NkB, anon-rss:NkB, ..., UID:N pgtables:NkB oom_score_adj:N`, also the
/// 4.x `N (comm), UID N, total-vm:...` and 2.6 `N, UID N, (comm) total-vm:...` forms.
fn parse_victim(v: &mut Victim, s: &str) {
    let (pid, comm, _) = pid_comm(s);
    v.pid = pid.or(v.pid);
    v.comm = comm.or(v.comm.take());
    v.total_vm_bytes = kv_kb(s, "total-vm:");
    v.anon_rss_bytes = kv_kb(s, "anon-rss:");
    v.file_rss_bytes = kv_kb(s, "file-rss:");
    v.shmem_rss_bytes = kv_kb(s, "shmem-rss:");
    v.pgtables_bytes = kv_kb(s, "pgtables:").or(v.pgtables_bytes);
    let uid = s
        .split_once("UID:")
        .or_else(|| s.split_once("UID "))
        .and_then(|(_, a)| leading_int(a));
    v.uid = uid.or(v.uid);
    v.oom_score_adj = s
        .split_once("oom_score_adj:")
        .and_then(|(_, a)| leading_int(a))
        .or(v.oom_score_adj);
}
