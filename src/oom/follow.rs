//! `memlens oom --follow`: each new OOM kill as it happens, with its post-mortem.
//!
//! Two kernel sources, because each can miss what the other sees:
//! - the kernel log (`/dev/kmsg`, woken by `poll(2)`): the whole report, the moment the kernel
//!   prints the victim line. Needs root or CAP_SYSLOG; a flood can overwrite records before
//!   they are read.
//! - the per-cgroup OOM-kill counters ([`crate::cgroup::events`]): exact, and readable without
//!   privileges, but with no details. v2 wakes through inotify; v1 is polled every
//!   [`V1_POLL`].
//!
//! A kill seen in the log is printed at once. A counter increase that no report explains
//! within [`GRACE`] is printed on its own, so a kill is never missed because the log was
//! unreadable or cut.

use super::{PostMortem, post_mortem};
use crate::cgroup::events::{self, EventsWatch, OomCounts};
use crate::cgroup::mount::{memory_hierarchy, strip_mount_root};
use crate::cgroup::walk::Tree;
use crate::identity::{Identity, NodeNames};
use crate::kmsg::log::{LogLine, wall_time};
use crate::kmsg::oom::{OomReport, fill_wall_times_us, parse_reports};
use crate::kmsg::tail::KmsgTail;
use crate::model::{Hierarchy, Version};
use crate::sys::Root;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;
use std::collections::HashSet;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often v1 counters are read (v1 has no file event for them).
pub const V1_POLL: Duration = Duration::from_millis(250);
/// How long a counter increase waits for the kernel log's report before it is printed alone.
/// The kernel prints the victim line right after counting the kill, so the report normally
/// arrives within milliseconds; the wait only matters when the log is cut.
pub const GRACE: Duration = Duration::from_millis(400);
/// How often the list of cgroups is checked (new containers get watched, removed ones
/// forgotten). Cheap: [`Tree`] walks again only after inotify saw a mkdir or rmdir.
pub const RESCAN: Duration = Duration::from_millis(250);
/// Lines kept while waiting for the end of a report (a report is ~100 lines plus one per
/// task; this bounds memory if the log never completes one).
const MAX_PENDING_LINES: usize = 50_000;

/// One OOM kill, as detected.
#[derive(Debug, Clone, Serialize)]
pub struct Detected {
    /// 1-based, in the order memlens saw the kills.
    pub number: usize,
    /// `kernel-log` (the report was read) or `counter` (only the kernel's counter rose).
    pub detected_by: &'static str,
    /// Wall clock (UTC) when memlens saw it.
    pub detected_at: String,
    /// The cgroup the kill is counted in (the victim's memcg), relative to the hierarchy.
    pub cgroup: Option<String>,
    /// Its container/pod.
    pub identity: Option<Identity>,
    /// Kills this event stands for (a counter can rise by more than one between reads).
    pub kills: u64,
    /// Whether the kernel's counter confirmed the kill when it was printed.
    pub counter_confirmed: bool,
    /// Why there is no post-mortem, for counter events.
    pub note: Option<String>,
    /// The report's post-mortem (the same object as one element of `memlens oom --json`).
    pub post_mortem: Option<PostMortem>,
}

/// A report already printed, waiting for the counter increase it explains.
struct Explained {
    task_memcg: Option<String>,
    oom_memcg: Option<String>,
    at: Instant,
}

/// Follows the kernel log and the OOM counters.
pub struct Follower {
    root: Root,
    hier: Option<Hierarchy>,
    kmsg: Option<KmsgTail>,
    /// The log device (HOST/dev/kmsg under --host-root), for the banner.
    kmsg_path: String,
    /// Why the kernel log is not read (shown once, and in counter events).
    kmsg_problem: Option<String>,
    watch: Option<EventsWatch>,
    watch_problem: Option<String>,
    /// v2 kernels with `memory.events.local` (5.2+): only changed cgroups need a read.
    local_files: bool,
    /// The follower's own cgroup list; `None` when fed by the recorder ([`Follower::fed`]).
    tree: Option<Tree>,
    paths: Vec<String>,
    /// Fed by the recorder: the cgroup list and (v1) the oom_kill counts come from the
    /// recorder's own reads ([`Follower::feed_paths`], [`Follower::feed_counts`]).
    fed: bool,
    /// How long a printed report waits for the counter increase it explains.
    explain_for: Duration,
    counts: OomCounts,
    last_scan: Instant,
    last_poll: Instant,
    /// How often polled counters are read ([`V1_POLL`] unless [`Follower::with_poll`]).
    poll: Duration,
    pending: Vec<LogLine>,
    /// The report whose victim is named but whose `Killed process` line has not come yet,
    /// and since when.
    open_report: Option<(Option<u64>, Instant)>,
    printed: HashSet<(Option<u64>, Option<u64>)>,
    unexplained: Vec<(String, Instant)>,
    explained: Vec<Explained>,
    /// Boot time in unix microseconds ([`super::boot_time_us`]).
    boot_time: Option<u64>,
    number: usize,
    /// Waits done ([`Follower::next`]'s loop turns): the test of the sub-millisecond spin.
    wakes: u64,
}

fn now_wall() -> String {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    wall_time(us, 0)
}

/// How long a report printed from the log waits for the counter increase it explains (then
/// a later increase is a kill of its own).
const EXPLAIN_FOR: Duration = Duration::from_secs(30);

/// How often the kernel log is read again when it comes through syslog(2).
const SYSLOG_POLL: Duration = Duration::from_millis(250);

impl Follower {
    /// Opens the sources on the live system: `/dev/kmsg` positioned at its end, and the OOM
    /// counters of every memory cgroup as the baseline (kills before now are not reported).
    /// Fails only when neither source can be read.
    pub fn start(root: Root) -> Result<Self, String> {
        // MEMLENS_KMSG names another log device: the tests use it to take the log away and
        // check that the counters alone still report every kill.
        // Under --host-root the host's device (HOST/dev/kmsg), never the container's own.
        let kmsg_path = crate::kmsg::source::device_path(&root);
        Self::start_with(root, &kmsg_path)
    }

    /// [`Follower::start`] with the kernel log at `kmsg_path`.
    pub fn start_with(root: Root, kmsg_path: &Path) -> Result<Self, String> {
        let (kmsg, kmsg_problem) = match KmsgTail::open_at_end(kmsg_path) {
            Ok(k) => (Some(k), None),
            // The device is missing or denied (a container): syslog(2) reads the same log,
            // except when a test named its own device (MEMLENS_KMSG) to take the log away.
            Err(e) => {
                let why = crate::kmsg::source::explain(kmsg_path, &e);
                match std::env::var_os("MEMLENS_KMSG") {
                    Some(_) => (None, Some(why)),
                    None => match KmsgTail::syslog_at_end() {
                        Ok(k) => (Some(k), Some(why)),
                        Err(se) => (None, Some(format!("{why}; syslog(2): {se}"))),
                    },
                }
            }
        };
        let hier = memory_hierarchy(&root).ok();
        let boot_time = super::boot_time_us(&root);
        let now = Instant::now();
        let mut f = Follower {
            root,
            hier,
            kmsg,
            kmsg_path: kmsg_path.display().to_string(),
            kmsg_problem,
            watch: None,
            watch_problem: None,
            local_files: false,
            tree: Some(Tree::new()),
            paths: Vec::new(),
            fed: false,
            explain_for: EXPLAIN_FOR,
            counts: OomCounts::default(),
            last_scan: now,
            last_poll: now,
            poll: V1_POLL,
            pending: Vec::new(),
            open_report: None,
            printed: HashSet::new(),
            unexplained: Vec::new(),
            explained: Vec::new(),
            boot_time,
            number: 0,
            wakes: 0,
        };
        if let Some(h) = f.hier.clone() {
            let root = &f.root;
            let mut tree = Tree::new();
            f.paths = tree.paths(root, &h).to_vec();
            f.tree = Some(tree);
            f.counts = events::read_counts(root, &h, &f.paths);
            if h.version == Version::V2 {
                f.local_files = f.paths.iter().find(|p| p.as_str() != "/").is_some_and(|p| {
                    root.exists(&crate::cgroup::read::fs_path(&h, p).join("memory.events.local"))
                });
                match EventsWatch::new() {
                    Ok(mut w) => {
                        let failed = w.sync(&f.root, &h, &f.paths);
                        if failed > 0 {
                            f.watch_problem = Some(format!(
                                "{failed} cgroups could not be watched (fs.inotify.max_user_watches?): they are polled"
                            ));
                        }
                        f.watch = Some(w);
                    }
                    Err(e) => {
                        f.watch_problem =
                            Some(format!("inotify: {e}: the counters are polled instead"))
                    }
                }
            }
        }
        if f.kmsg.is_none() && f.hier.is_none() {
            return Err(format!(
                "nothing to follow: {} and no memory cgroup hierarchy is mounted",
                f.kmsg_problem.as_deref().unwrap_or("/dev/kmsg unreadable")
            ));
        }
        Ok(f)
    }

    /// What is being followed, in one sentence (for the start banner).
    pub fn describe(&self) -> String {
        let log = match (&self.kmsg, &self.kmsg_problem) {
            (Some(k), Some(p)) if k.is_syslog() => {
                format!("the kernel log through syslog(2), read every 250 ms ({p})")
            }
            (Some(_), _) => format!("the kernel log ({})", self.kmsg_path),
            (None, Some(p)) => format!("no kernel log ({p})"),
            (None, None) => "no kernel log".to_string(),
        };
        let counters = match (&self.hier, &self.watch) {
            (None, _) => "no cgroup counters (no memory hierarchy)".to_string(),
            (Some(h), _) if self.fed && h.version == Version::V1 => format!(
                "the oom_kill counters of {} cgroups (memory.oom_control, taken from the recorder's own reads)",
                self.paths.len().saturating_sub(1)
            ),
            (Some(h), Some(w)) if h.version == Version::V2 && !w.is_empty() => format!(
                "the oom_kill counters of {} cgroups (memory.events{}, inotify)",
                w.len(),
                if self.local_files { ".local" } else { "" }
            ),
            (Some(h), _) => format!(
                "the oom_kill counters of {} cgroups ({}, read every {} ms)",
                self.paths.len().saturating_sub(1),
                if h.version == Version::V1 {
                    "memory.oom_control"
                } else {
                    "memory.events"
                },
                self.poll.as_millis()
            ),
        };
        let mut s = format!("{log} and {counters}");
        if let Some(p) = &self.watch_problem {
            s.push_str(&format!("; {p}"));
        }
        s
    }

    /// Waits up to `timeout` for kills and returns those detected (possibly none).
    pub fn next(&mut self, timeout: Duration) -> Vec<Detected> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let wait = self
                .poll_wait()
                .min(deadline.saturating_duration_since(Instant::now()));
            // The log is read on every wake-up (it is non-blocking), so only the watch's
            // readiness matters.
            let watch_ready = self.wait(wait);
            self.read_log(&mut out);
            if watch_ready {
                self.read_watched();
            }
            self.tick();
            self.flush_unexplained(&mut out);
            if !out.is_empty() || Instant::now() >= deadline {
                return out;
            }
        }
    }

    /// Time until the next scheduled read (v1/poll fallback, rescan, grace expiry).
    fn poll_wait(&self) -> Duration {
        let now = Instant::now();
        let mut next = match self.tree {
            Some(_) => self.last_scan + RESCAN,
            None => now + Duration::from_secs(3600),
        };
        if self.polled() {
            next = next.min(self.last_poll + self.poll);
        }
        if let Some((_, t)) = self.unexplained.first() {
            next = next.min(*t + self.grace());
        }
        if let Some((_, t)) = self.open_report {
            next = next.min(t + GRACE);
        }
        next.saturating_duration_since(now)
            .max(Duration::from_millis(1))
    }

    /// Reads polled counters (v1; v2 without inotify) every `d` instead of [`V1_POLL`]: a
    /// front end with a looser deadline spends less (each poll reads every cgroup's
    /// counter file; at 1,000 v1 memcgs 250 ms cost `top` 3.7% of a core). Kills in the
    /// kernel log are seen at once either way.
    pub fn with_poll(mut self, d: Duration) -> Self {
        self.poll = d;
        self
    }

    /// Takes the cgroup list and, on v1, the oom_kill counts from the recorder instead of
    /// keeping its own inotify tree and reading every cgroup's memory.oom_control each poll
    /// (issue 20: 27% of the recorder's CPU at 10,000 v1 memcgs, and its tree's walks a third
    /// of it at 1,000). The recorder reads memory.oom_control with every read of a cgroup:
    /// each interval when its usage moved (an OOM kill frees the victim's memory), at its
    /// full interval otherwise; `full_interval` widens the time a report from the log waits
    /// for that counter increase accordingly, so a kill is counted once. Kills in the kernel
    /// log are still seen at once; v2 keeps its inotify watch on memory.events.
    pub fn fed(mut self, full_interval: Duration) -> Self {
        self.tree = None;
        self.fed = true;
        self.explain_for = EXPLAIN_FOR.max(full_interval + Duration::from_secs(10));
        self
    }

    /// The recorder's cgroup list changed ([`Follower::fed`]): new cgroups' kills count from
    /// zero, removed ones are forgotten; on v2 the watch follows the list.
    pub fn feed_paths(&mut self, paths: &[String]) {
        let Some(h) = self.hier.clone() else { return };
        if paths == self.paths.as_slice() {
            return;
        }
        self.paths = paths.to_vec();
        self.sync_paths(&h);
    }

    /// oom_kill counts the recorder read (v1 memory.oom_control), for the cgroups it read:
    /// increases become kills, matched with the log's reports as the follower's own reads.
    pub fn feed_counts(&mut self, counts: Vec<(String, u64)>) {
        if counts.is_empty() {
            return;
        }
        let now = OomCounts {
            local: counts.into_iter().map(|(p, c)| (p, Some(c))).collect(),
        };
        self.absorb(&now);
    }

    /// Whether the counters are read on a timer (v1, or v2 without working inotify).
    fn polled(&self) -> bool {
        match (&self.hier, &self.watch) {
            (None, _) => false,
            (Some(h), _) if self.fed && h.version == Version::V1 => false,
            (Some(h), Some(_)) if h.version == Version::V2 => self.watch_problem.is_some(),
            _ => true,
        }
    }

    fn grace(&self) -> Duration {
        if self.kmsg.is_some() {
            GRACE
        } else {
            Duration::ZERO
        }
    }

    /// poll(2) on the kernel log and the inotify descriptor; whether the watch has events.
    fn wait(&mut self, d: Duration) -> bool {
        // syslog(2) cannot be polled: wake on a short timer to read it again.
        let d = match &self.kmsg {
            Some(k) if k.is_syslog() => d.min(SYSLOG_POLL),
            _ => d,
        };
        // Rounded up: truncated, the last millisecond before a deadline became poll(0) and
        // `next` spun on it (dozens of polls and log reads each wait: at the recorder's two
        // waits a second that was 0.15% of a core, most of its CPU at 200 idle cgroups).
        let ms = u16::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
        self.wakes += 1;
        let mut fds = Vec::new();
        if let Some(fd) = self.kmsg.as_ref().and_then(|k| k.poll_fd()) {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let watch_at = fds.len();
        if let Some(w) = &self.watch {
            fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
        }
        if fds.is_empty() {
            std::thread::sleep(d);
            return false;
        }
        if poll(&mut fds, PollTimeout::from(ms)).is_err() {
            // EINTR: treat as a timeout, the caller re-reads everything anyway.
            return false;
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        self.watch.is_some() && ready(watch_at)
    }

    /// Reads new log records and turns every report whose victim line has arrived into an
    /// event.
    fn read_log(&mut self, out: &mut Vec<Detected>) {
        let Some(k) = self.kmsg.as_mut() else {
            return;
        };
        match k.read_new() {
            Ok(lines) => self.pending.extend(lines),
            Err(e) => {
                self.kmsg_problem = Some(format!("/dev/kmsg: {e}"));
                self.kmsg = None;
                return;
            }
        }
        if self.pending.is_empty() {
            return;
        }
        let mut reports = parse_reports(&self.pending);
        if let Some(bt) = self.boot_time {
            fill_wall_times_us(&mut reports, bt);
        }
        let now = Instant::now();
        let last = reports.len().saturating_sub(1);
        let mut open: Option<u64> = None;
        for (i, r) in reports.into_iter().enumerate() {
            // The victim is known from the `oom-kill:` line, but its sizes come with the
            // `Killed process` line a record or two later (8 ms later in the 6.1 fixture): wait
            // for it, or for GRACE if it never comes (record lost). A report followed by
            // another one is as complete as it will get.
            let sized = r
                .victim
                .as_ref()
                .is_some_and(|v| v.total_vm_bytes.is_some() || v.anon_rss_bytes.is_some());
            let ready = r.victim.is_some() && (sized || i < last || self.waited(r.seq, now));
            if ready {
                if self.printed.insert((r.seq, r.mono_usec)) {
                    out.push(self.report_event(r));
                }
            } else if i == last {
                open = r.seq;
            }
        }
        // Keep only the lines of a report still waiting for its victim line.
        match open.and_then(|seq| self.pending.iter().position(|l| l.seq == Some(seq))) {
            Some(i) => {
                self.pending.drain(..i);
            }
            None => {
                self.pending.clear();
                self.open_report = None;
            }
        }
        if self.pending.len() > MAX_PENDING_LINES {
            self.pending.clear();
        }
        // Reports are keyed by their first record; old keys cannot recur.
        if self.printed.len() > 10_000 {
            self.printed.clear();
        }
    }

    /// Whether the open report starting at record `seq` has waited [`GRACE`] for its
    /// `Killed process` line (starts the clock the first time it is asked).
    fn waited(&mut self, seq: Option<u64>, now: Instant) -> bool {
        match self.open_report {
            Some((s, t)) if s == seq => now.duration_since(t) >= GRACE,
            _ => {
                self.open_report = Some((seq, now));
                false
            }
        }
    }

    fn rel(&self, p: &str) -> String {
        match &self.hier {
            Some(h) => strip_mount_root(&h.mount_root, p),
            None => p.to_string(),
        }
    }

    fn report_event(&mut self, r: OomReport) -> Detected {
        self.number += 1;
        let task = r.task_memcg.as_deref().map(|p| self.rel(p));
        let oom = r.oom_memcg.as_deref().map(|p| self.rel(p));
        // The counter may already have risen (v2 wakes as fast as the log).
        let confirmed = match self
            .unexplained
            .iter()
            .position(|(p, _)| explains(p, task.as_deref(), oom.as_deref()))
        {
            Some(i) => {
                self.unexplained.remove(i);
                true
            }
            None => {
                self.explained.push(Explained {
                    task_memcg: task.clone(),
                    oom_memcg: oom.clone(),
                    at: Instant::now(),
                });
                false
            }
        };
        let mut pm = post_mortem(self.number, r);
        super::add_names(&self.root, std::slice::from_mut(&mut pm));
        // Now, while the cgroups still exist, the counters of each level and whether the
        // victim's container lives on (oom/level.rs).
        if let (Some(h), Some(t)) = (&self.hier, pm.report.task_memcg.clone()) {
            pm.levels = super::level::levels(&self.root, h, &t);
            let surv = super::level::survivors(&self.root, h, &t);
            pm.victim_role = super::level::victim_role(&pm.report, pm.group_kill.as_ref(), surv);
        }
        Detected {
            number: self.number,
            detected_by: "kernel-log",
            detected_at: now_wall(),
            cgroup: task.or(oom),
            identity: pm.identity.clone(),
            kills: 1,
            counter_confirmed: confirmed,
            note: None,
            post_mortem: Some(pm),
        }
    }

    /// v2: re-reads the counters of the cgroups whose memory.events changed.
    fn read_watched(&mut self) {
        let Some(h) = self.hier.clone() else { return };
        let changed = match self.watch.as_mut() {
            Some(w) => w.changed(),
            None => return,
        };
        if changed.is_empty() {
            return;
        }
        if self.local_files {
            let now = events::read_counts(&self.root, &h, &changed);
            self.absorb(&now);
        } else {
            self.read_all(&h);
        }
    }

    fn read_all(&mut self, h: &Hierarchy) {
        let now = events::read_counts(&self.root, h, &self.paths);
        self.absorb(&now);
        self.last_poll = Instant::now();
    }

    /// Records counter increases from `now` (a subset of cgroups or all of them).
    fn absorb(&mut self, now: &OomCounts) {
        for (p, n) in events::increases(&self.counts, now) {
            for _ in 0..n {
                match self
                    .explained
                    .iter()
                    .position(|e| explains(&p, e.task_memcg.as_deref(), e.oom_memcg.as_deref()))
                {
                    Some(i) => {
                        self.explained.remove(i);
                    }
                    None => self.unexplained.push((p.clone(), Instant::now())),
                }
            }
        }
        for (p, c) in &now.local {
            self.counts.local.insert(p.clone(), *c);
        }
    }

    /// Timed work: polling the counters, refreshing the cgroup list, forgetting old reports.
    fn tick(&mut self) {
        let Some(h) = self.hier.clone() else { return };
        let now = Instant::now();
        if let Some(tree) = self.tree.as_mut()
            && now >= self.last_scan + RESCAN
        {
            self.last_scan = now;
            let paths = tree.paths(&self.root, &h);
            if paths == self.paths.as_slice() {
                return self.after_tick(now, &h);
            }
            self.paths = paths.to_vec();
            self.sync_paths(&h);
        }
        self.after_tick(now, &h);
    }

    /// After the cgroup list changed: the watch follows it; new cgroups' kills so far count
    /// (from zero), removed ones are forgotten.
    fn sync_paths(&mut self, h: &Hierarchy) {
        if let Some(w) = self.watch.as_mut() {
            w.sync(&self.root, h, &self.paths);
        }
        let known: HashSet<&String> = self.counts.local.keys().collect();
        let fresh: Vec<String> = self
            .paths
            .iter()
            .filter(|p| p.as_str() != "/" && !known.contains(p))
            .cloned()
            .collect();
        let keep: HashSet<&String> = self.paths.iter().collect();
        self.counts.local.retain(|p, _| keep.contains(p));
        // Fed on v1: the recorder reads the new cgroups' counters in the same tick.
        let fed_v1 = self.fed && h.version == Version::V1;
        if !fresh.is_empty() && !fed_v1 {
            let c = events::read_counts(&self.root, h, &fresh);
            self.absorb(&c);
        }
    }

    fn after_tick(&mut self, now: Instant, h: &Hierarchy) {
        if self.polled() && now >= self.last_poll + self.poll {
            self.read_all(h);
        }
        self.explained
            .retain(|e| now.duration_since(e.at) < self.explain_for);
    }

    /// Counter increases no report explained within the grace time become events.
    fn flush_unexplained(&mut self, out: &mut Vec<Detected>) {
        let grace = self.grace();
        let now = Instant::now();
        let (due, wait): (Vec<_>, Vec<_>) = self
            .unexplained
            .drain(..)
            .partition(|(_, t)| now.duration_since(*t) >= grace);
        self.unexplained = wait;
        // One event per cgroup, with its count.
        let mut by: Vec<(String, u64)> = Vec::new();
        for (p, _) in due {
            match by.iter_mut().find(|(q, _)| *q == p) {
                Some((_, n)) => *n += 1,
                None => by.push((p, 1)),
            }
        }
        for (p, n) in by {
            self.number += 1;
            let note = match &self.kmsg_problem {
                Some(why) => format!("the kernel counted the kill; its report cannot be read: {why}"),
                None => "the kernel counted the kill but its report was not in the log (cut by the ring buffer, or rate-limited)".to_string(),
            };
            let identity = Some(Identity::from_path(&p))
                .filter(|i| i.short().is_some())
                .map(|mut i| {
                    NodeNames::load(&self.root, i.container_id.as_deref()).apply(&mut i);
                    i
                });
            out.push(Detected {
                number: self.number,
                detected_by: "counter",
                detected_at: now_wall(),
                cgroup: Some(p),
                identity,
                kills: n,
                counter_confirmed: true,
                note: Some(note),
                post_mortem: None,
            });
        }
    }
}

/// Whether a report with these memcgs explains a counter increase in cgroup `p`. A report
/// naming no memcg (old global OOM formats) explains any one increase.
fn explains(p: &str, task: Option<&str>, oom: Option<&str>) -> bool {
    match (task, oom) {
        (None, None) => true,
        _ => {
            task == Some(p)
                || oom == Some(p)
                || oom.is_some_and(|o| o == "/" || p.starts_with(&format!("{o}/")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The VM's 6.1 report arrives record by record; its `Killed process` line comes last.
    fn fixture_lines() -> Vec<String> {
        let f = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/oom/debian-6.1-v2.kmsg"
        );
        std::fs::read_to_string(f)
            .expect("fixture")
            .lines()
            .map(|l| format!("{l}\n"))
            .collect()
    }

    fn follower(log: &Path) -> Follower {
        let empty = tempfile::tempdir().expect("tmp");
        Follower::start_with(Root::dir(empty.path()), log).expect("the log alone is enough")
    }

    /// A wait ending on a deadline that is not a whole number of milliseconds away polls once
    /// more, not in a loop: the recorder waits like this twice a second (issue 13's CPU).
    /// The real /dev/kmsg (a regular file is always ready, so it cannot show the spin).
    #[test]
    fn a_wait_does_not_spin_on_its_last_millisecond() {
        let empty = tempfile::tempdir().expect("tmp");
        let Ok(mut f) = Follower::start_with(Root::dir(empty.path()), Path::new("/dev/kmsg"))
        else {
            eprintln!("/dev/kmsg cannot be read here (not root?): nothing to measure");
            return;
        };
        if f.kmsg.as_ref().and_then(|k| k.poll_fd()).is_none() {
            eprintln!("/dev/kmsg cannot be read here (not root?): nothing to measure");
            return;
        }
        let calls = 20;
        for _ in 0..calls {
            f.next(Duration::from_micros(5_700));
        }
        // A log line now and then may wake a wait early; a spin is hundreds per call.
        assert!(
            f.wakes <= 3 * calls,
            "{} waits for {calls} calls of next(5.7 ms)",
            f.wakes
        );
    }

    #[test]
    fn a_report_waits_for_its_killed_process_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("kmsg");
        std::fs::write(&log, "6,1,1,-;earlier, skipped\n").expect("log");
        let mut f = follower(&log);
        let lines = fixture_lines();
        let (head, tail) = lines.split_at(lines.len() - 1);
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        w.write_all(head.concat().as_bytes()).expect("write");
        // The oom-kill: line names the victim, but its sizes are not there yet.
        assert!(f.next(Duration::from_millis(50)).is_empty());
        w.write_all(tail.concat().as_bytes()).expect("write");
        let ev = f.next(Duration::from_millis(200));
        assert_eq!(ev.len(), 1);
        let v = ev[0]
            .post_mortem
            .as_ref()
            .and_then(|p| p.report.victim.clone());
        let v = v.expect("victim");
        assert_eq!((v.pid, v.total_vm_bytes), (Some(142), Some(34736 * 1024)));
        assert_eq!(ev[0].cgroup.as_deref(), Some("/memlens-test-oom-138-0"));
    }

    #[test]
    fn a_report_whose_killed_line_never_comes_is_printed_after_the_grace_time() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("kmsg");
        std::fs::write(&log, "").expect("log");
        let mut f = follower(&log);
        let lines = fixture_lines();
        let head = lines.get(..lines.len() - 1).expect("lines").concat();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut w| w.write_all(head.as_bytes()))
            .expect("write");
        let t = Instant::now();
        let ev = f.next(GRACE * 3);
        assert_eq!(ev.len(), 1, "after {:?}", t.elapsed());
        assert!(t.elapsed() >= GRACE);
        let v = ev[0]
            .post_mortem
            .as_ref()
            .and_then(|p| p.report.victim.clone());
        assert_eq!(v.and_then(|v| v.pid), Some(142));
    }

    #[test]
    fn a_report_explains_its_task_memcg_or_anything_under_its_oom_memcg() {
        assert!(explains("/a/b", Some("/a/b"), Some("/a")));
        assert!(explains("/a/c", Some("/a/b"), Some("/a")));
        assert!(!explains("/ab", Some("/a/b"), Some("/a")));
        assert!(!explains("/x", Some("/a/b"), Some("/a/b")));
        assert!(explains("/x", None, None));
        assert!(explains("/x", Some("/y"), Some("/")));
    }
}
