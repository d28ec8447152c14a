//! `memlens record`: the flight recorder. Every tick it reads every memory cgroup that is due
//! (all of its memory files, through a recording [`Root`]), the host's files, the top
//! processes by RSS of each cgroup (and their PSS at a lower rate), and writes exactly the
//! bytes it read into the [`crate::store`], so `--at` later reads the same files back.
//!
//! Adaptive resolution: a cgroup whose non-reclaimable memory is within `hot_headroom` of
//! its effective limit, or whose limit was hit or memory.high crossed in the last `hot_for`,
//! is read every `fast_interval` (1 s); the others every `interval`. OOM kills come from
//! [`crate::oom::follow::Follower`] (the kernel log and the counters, as `oom --follow`) and
//! are stored as events; the killed cgroup's window (10 min before, 1 min after) is kept past
//! retention.

use crate::cgroup::peak::{IntervalPeak, RECORDED_FILE};
use crate::cgroup::read::{self, Level};
use crate::cgroup::tier::{TierOptions, Tiers};
use crate::cgroup::walk::Tree;
use crate::identity::{Identity, NodeNames};
use crate::model::{Hierarchy, Limit, Version};
use crate::store::{self, Event, Limits, Writer};
use crate::sys::{LISTING, Root};
use crate::views::breakdown::Breakdown;
use crate::views::derived::{Derived, EffectiveLimit};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The recorder's settings (the flags of `memlens record`).
#[derive(Debug, Clone)]
pub struct Options {
    /// The store directory.
    pub store: PathBuf,
    /// How often an idle cgroup is read.
    pub interval: Duration,
    /// How often a hot cgroup is read.
    pub fast_interval: Duration,
    /// Hot when the non-reclaimable part is within this fraction of the effective limit.
    pub hot_headroom: f64,
    /// Hot for this long after a limit hit or memory.high event.
    pub hot_for: Duration,
    /// How often every memory file of an idle cgroup is read (the others: each interval).
    pub full_interval: Duration,
    /// How often the top processes' PSS (smaps_rollup) is read.
    pub pss_interval: Duration,
    /// Processes kept per cgroup (largest RSS first).
    pub top: usize,
    /// Store bounds.
    pub limits: Limits,
    /// Stop after this long (tests, benchmarks); `None` runs until SIGINT/SIGTERM.
    pub duration: Option<Duration>,
    /// Follow OOM kills (off in the benchmark).
    pub oom: bool,
    /// Stop on SIGINT/SIGTERM (off inside `serve --record`, whose process owns them; the
    /// store is crash-safe, so a killed agent loses at most the tick being written).
    pub signals: bool,
}

/// How long before and after an OOM kill its cgroup's samples are kept past retention.
pub const OOM_WINDOW_BEFORE_MS: i64 = 10 * 60_000;
/// See [`OOM_WINDOW_BEFORE_MS`].
pub const OOM_WINDOW_AFTER_MS: i64 = 60_000;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Asks a running recorder (in this process) to stop after its tick (`serve --record`).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Per-cgroup recorder state.
#[derive(Default)]
struct State {
    next_due: Option<Instant>,
    hot_until: Option<Instant>,
    /// (limit hits, memory.high events) at the last read.
    counters: (Option<u64>, Option<u64>),
    own_limit: Option<u64>,
    hot: bool,
    /// When every memory file was last read (see [`Options::full_interval`]).
    last_full: Option<Instant>,
    /// Usage at the last read of its files.
    usage: Option<u64>,
    /// Usage within twice `hot_headroom` of the effective limit at the last read: its
    /// memory.stat is read every interval, also when usage has not moved (see [`warm`]).
    warm: bool,
}

/// Whether a cgroup's memory.stat is read at every interval even when its usage has not
/// moved (the tiers read only the usage then, until --full-interval): when usage is within
/// twice the hot headroom of the effective limit (60% of it by default). Only memory.stat:
/// the other files' figures do not move while usage stays put. Measured on this v1 host
/// (release build, cgroups of ours at 75% of their limit against the same at 9%, 1 s
/// interval): the whole Metrics read cost about 87 µs of CPU per cgroup and interval more
/// than the tiers' usage read, memory.stat alone about 10 µs (1,000 such cgroups at 10 s:
/// 0.1% of a core). Page cache turning active (a
/// re-read of cached files) moves inactive_file, and with it the working set (usage −
/// inactive_file) that the kubelet and krr compare with the limit, without moving usage by a
/// byte; the tiers then kept a working set up to 60 s old (tests/kernel_record_stale.rs).
/// The working set is at most usage, so far from the limit its lag does not matter there,
/// and those cgroups (most of a node, and all without a limit) stay tiered.
fn warm(usage: Option<u64>, limit: Option<u64>, hot_headroom: f64) -> bool {
    match (usage, limit) {
        (Some(u), Some(l)) if l > 0 => (u as f64) >= (1.0 - 2.0 * hot_headroom) * l as f64,
        _ => false,
    }
}

/// Why a cgroup's interval peak is exact or not: memory.peak held open and reset per
/// descriptor at each sample (Linux 6.12+), or the reason it cannot be.
enum Peak {
    Open(IntervalPeak),
    Unavailable(String),
}

/// The recorder's interval peaks (issue 13/15/17): per cgroup, one more kept-open
/// descriptor (the usage file is the first, [`Tiers`]), within [`Peaks::cap`].
struct Peaks {
    by_cgroup: HashMap<String, Peak>,
    /// At most this many memory.peak descriptors: a quarter of RLIMIT_NOFILE (the tiers' usage
    /// descriptors take half), at most [`crate::cgroup::tier::DEFAULT_FD_CAP`].
    cap: usize,
    open: usize,
    /// Reasons already logged (each once, not once per cgroup).
    logged: HashSet<String>,
}

/// v1's reason. memory.max_usage_in_bytes has a write handler, but it resets the
/// high-water mark for every reader (the kubelet's, another tool's), so it is never written.
const V1_REASON: &str = "cgroup v1: memory.max_usage_in_bytes can only be reset for every reader at once, so the recorder never writes it; the usage peak is the highest sample";

impl Peaks {
    fn new(nofile: u64) -> Self {
        Peaks {
            by_cgroup: HashMap::new(),
            cap: crate::cgroup::tier::DEFAULT_FD_CAP.min((nofile / 4) as usize),
            open: 0,
            logged: HashSet::new(),
        }
    }

    fn forget(&mut self, p: &str) {
        if let Some(Peak::Open(_)) = self.by_cgroup.remove(p) {
            self.open -= 1;
        }
    }

    /// The peak of usage since this cgroup's last sample (then reset), recorded as
    /// [`RECORDED_FILE`] beside its files, together with `carry` (a peak taken earlier in
    /// the same tick); `None`, with the reason recorded when `say_why` (at full reads) or
    /// when it first appears, where the kernel (or the descriptor cap) does not allow it.
    fn sample(
        &mut self,
        root: &Root,
        h: &Hierarchy,
        p: &str,
        mut say_why: bool,
        carry: Option<u64>,
    ) -> Option<u64> {
        // Unavailable (every cgroup on v1) and nothing to record at this read: no path
        // built, no file noted (most of the recorder's reads on v1 are of idle cgroups).
        if !say_why && matches!(self.by_cgroup.get(p), Some(Peak::Unavailable(_))) {
            return None;
        }
        let dir = read::fs_path(h, p);
        let file = dir.join(RECORDED_FILE);
        if !self.by_cgroup.contains_key(p) {
            let peak = if h.version == Version::V1 {
                Peak::Unavailable(V1_REASON.into())
            } else if p == "/" {
                Peak::Unavailable(
                    "the root cgroup has no memory.peak; its usage peak is the highest sample"
                        .into(),
                )
            } else if self.open >= self.cap {
                Peak::Unavailable(format!(
                    "the recorder keeps at most {} memory.peak files open (a quarter of RLIMIT_NOFILE), all in use; this cgroup's usage peak is the highest sample",
                    self.cap
                ))
            } else {
                match root
                    .host_file(&dir)
                    .ok_or_else(|| "not a running system".to_string())
                    .and_then(|d| IntervalPeak::open(&d))
                {
                    Ok(ip) => {
                        self.open += 1;
                        Peak::Open(ip)
                    }
                    Err(e) => Peak::Unavailable(e),
                }
            };
            let why = match &peak {
                Peak::Open(_) => "exact (memory.peak read and reset per descriptor at each sample)",
                Peak::Unavailable(r) => r.as_str(),
            };
            if self.logged.insert(why.to_string()) {
                tracing::info!("interval peaks: {why} (first cgroup: {p})");
            }
            self.by_cgroup.insert(p.to_string(), peak);
            say_why = true;
        }
        let peak = self.by_cgroup.get_mut(p)?;
        let failed = match peak {
            Peak::Open(ip) => match ip.take() {
                Ok(v) => {
                    let v = carry.map_or(v, |c| c.max(v));
                    root.record_file(&file, format!("{v}\n").into_bytes());
                    return Some(v);
                }
                // Gone between the walk and now, or refused from now on: sampled peaks.
                Err(e) => format!(
                    "reading or resetting memory.peak failed ({e}); the usage peak is the highest sample"
                ),
            },
            Peak::Unavailable(r) => {
                if say_why {
                    root.record_file(&file, format!("unavailable: {r}\n").into_bytes());
                }
                return None;
            }
        };
        self.open -= 1;
        root.record_file(&file, format!("unavailable: {failed}\n").into_bytes());
        *peak = Peak::Unavailable(failed);
        None
    }
}

/// Raises the soft open-file limit to the hard one (at most 65536, as `serve` does): the
/// recorder keeps up to two descriptors per cgroup (usage, memory.peak) and the soft default
/// of 1024 would cap it at a few hundred cgroups. Returns the soft limit in force.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    let want = lim.rlim_max.min(65536);
    if lim.rlim_cur < want {
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: valid pointer; raising the soft limit up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            return want;
        }
    }
    lim.rlim_cur
}

/// The docker config with only the fields memlens reads for names (the file also holds the
/// container's environment, which must not be stored).
fn docker_names_only(bytes: &[u8]) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let labels = &v["Config"]["Labels"];
    let keep = [
        "io.kubernetes.pod.namespace",
        "io.kubernetes.pod.name",
        "io.kubernetes.container.name",
    ];
    let l: serde_json::Map<String, serde_json::Value> = keep
        .iter()
        .filter_map(|k| Some((k.to_string(), labels.get(*k)?.clone())))
        .collect();
    serde_json::json!({"Name": v["Name"], "Config": {"Image": v["Config"]["Image"], "Labels": l}})
        .to_string()
        .into_bytes()
}

/// Whether a recorded file is kept in the store: not cgroup directory listings (the
/// cgroups are known from their files), not process command lines (other users' secrets).
fn stored(path: &Path, h: &Hierarchy) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == LISTING {
        return !path.starts_with(&h.mount_point);
    }
    !matches!(name, "cmdline" | "environ")
}

/// The recorder.
pub struct Recorder {
    root: Root,
    h: Hierarchy,
    opts: Options,
    writer: Writer,
    tree: Tree,
    /// The cgroup list as of the last walk (cloned only when it changes).
    paths: Vec<String>,
    /// Tiered reads (issue 20): an idle cgroup whose usage has not moved since its last
    /// read is not read again before its --full-interval; only its usage file is (and
    /// recorded), through a kept-open descriptor.
    tiers: Tiers<()>,
    /// Exact interval peaks where the kernel allows them.
    peaks: Peaks,
    state: HashMap<String, State>,
    known: HashSet<String>,
    identities: HashMap<String, serde_json::Value>,
    last_pss: Option<Instant>,
    last_names: Option<Instant>,
    follower: Option<crate::oom::follow::Follower>,
    /// Ticks written.
    pub ticks: u64,
    /// MEMLENS_RECORD_TRACE: print each committed tick's time on stderr (tests).
    trace: bool,
}

impl Recorder {
    /// Opens the store and the sources. `root` is the live system (or `--host-root`).
    pub fn new(root: Root, h: Hierarchy, opts: Options) -> Result<Self, String> {
        let writer = Writer::open(&opts.store, opts.limits).map_err(|e| e.to_string())?;
        writer
            .set_meta("interval_ms", &opts.interval.as_millis().to_string())
            .map_err(|e| e.to_string())?;
        writer
            .set_meta(
                "pss_interval_ms",
                &opts.pss_interval.as_millis().to_string(),
            )
            .map_err(|e| e.to_string())?;
        for (k, v) in [
            ("mount_point", h.mount_point.to_string_lossy().to_string()),
            ("cgroup_version", h.version.number().to_string()),
            ("mount_root", h.mount_root.clone()),
            (
                "full_interval_ms",
                opts.full_interval.as_millis().to_string(),
            ),
            // Idle cgroups are read in full only every full interval (tiered reads).
            ("tiered", "1".to_string()),
        ] {
            writer.set_meta(k, &v).map_err(|e| e.to_string())?;
        }
        let follower = if opts.oom {
            // The recorder's own root: under --host-root the host's /dev/kmsg and cgroups.
            let at = root.reopen().unwrap_or_else(Root::live);
            // The kernel log reports a kill at once; the counters (a kill whose report the
            // log lost) are read every recording interval, not every 250 ms: on v1 each read
            // is every cgroup's memory.oom_control, and at 1,000 cgroups those reads were 88%
            // of the recorder's CPU (issue 13's 0.5% target). An idle cgroup is recorded at
            // that interval anyway. At most 10 s: the follower matches a counter increase to
            // the report that explains it for 30 s, so a later read would count it twice.
            // On v1 the follower keeps no cgroup list of its own and reads no counter: the
            // recorder gives it its list and the oom_kill counts of its own reads
            // (`Follower::fed`); the poll is left for v2 without a working inotify watch.
            let poll = opts.interval.min(Duration::from_secs(10));
            match crate::oom::follow::Follower::start(at)
                .map(|f| f.with_poll(poll).fed(opts.full_interval + opts.interval))
            {
                Ok(f) => {
                    tracing::info!("OOM kills recorded from {}", f.describe());
                    Some(f)
                }
                Err(e) => {
                    tracing::warn!("OOM kills will not be recorded: {e}");
                    None
                }
            }
        } else {
            None
        };
        let nofile = raise_nofile();
        let full_every = (opts.full_interval.as_millis() / opts.interval.as_millis().max(1))
            .clamp(1, u128::from(u32::MAX)) as u32;
        Ok(Recorder {
            root: root.record(),
            h,
            opts,
            writer,
            tree: Tree::new(),
            paths: Vec::new(),
            tiers: Tiers::new(TierOptions {
                full_every,
                ..Default::default()
            }),
            peaks: Peaks::new(nofile),
            state: HashMap::new(),
            known: HashSet::new(),
            identities: HashMap::new(),
            last_pss: None,
            last_names: None,
            follower,
            ticks: 0,
            trace: std::env::var_os("MEMLENS_RECORD_TRACE").is_some(),
        })
    }

    /// Records until stopped (signal, [`request_stop`] or `duration`); the open chunks are
    /// written on the way out.
    pub fn run(&mut self) -> Result<(), String> {
        if self.opts.signals {
            // SAFETY: the handler only stores to an atomic.
            unsafe {
                libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
                libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
            }
        }
        let start = Instant::now();
        let tick = self.opts.fast_interval.min(self.opts.interval);
        let mut next = Instant::now();
        while !STOP.load(Ordering::SeqCst) {
            if self.opts.duration.is_some_and(|d| start.elapsed() >= d) {
                break;
            }
            let events = self.wait_until(next);
            if STOP.load(Ordering::SeqCst) {
                break;
            }
            if let Err(e) = self.tick(events) {
                tracing::error!("{e}");
            }
            next += tick;
            let now = Instant::now();
            if next < now {
                // Behind (a slow tick): skip the missed ones rather than burst.
                next = now + tick;
            }
        }
        self.writer.flush().map_err(|e| e.to_string())
    }

    /// Sleeps until `at`, collecting OOM kills meanwhile.
    fn wait_until(&mut self, at: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() || STOP.load(Ordering::SeqCst) {
                return out;
            }
            match &mut self.follower {
                Some(f) => {
                    for d in f.next(left.min(Duration::from_millis(500))) {
                        let t = store::now_ms();
                        let cg = d.cgroup.clone();
                        if let Some(c) = &cg {
                            let dir = read::fs_path(&self.h, c).display().to_string();
                            if let Err(e) = self.writer.keep(
                                &dir,
                                t - OOM_WINDOW_BEFORE_MS,
                                t + OOM_WINDOW_AFTER_MS,
                            ) {
                                tracing::error!("{e}");
                            }
                            // The killed cgroup at 1 s from now on, for the minute after.
                            let st = self.state.entry(c.clone()).or_default();
                            st.hot_until = Some(Instant::now() + self.opts.hot_for);
                            st.next_due = None;
                        }
                        out.push(Event {
                            t,
                            kind: "oom-kill".into(),
                            cgroup: cg,
                            data: serde_json::to_value(&d).unwrap_or_default(),
                        });
                    }
                }
                None => std::thread::sleep(left.min(Duration::from_millis(500))),
            }
        }
    }

    /// One tick: reads what is due and writes it in one transaction.
    pub fn tick(&mut self, events: Vec<Event>) -> Result<(), String> {
        let now = Instant::now();
        let t = store::now_ms();
        let (ps, walked) = self.tree.paths_changed(&self.root, &self.h);
        if walked || self.ticks == 0 {
            self.paths = ps.to_vec();
            self.tiers.retain(&self.paths);
            if let Some(f) = self.follower.as_mut() {
                f.feed_paths(&self.paths);
            }
        }
        // Nothing due (no hot cgroup, no cgroup come or gone, no OOM kill): no tick. The
        // loop ticks at the fast interval; at 10,000 cgroups a tick reading and writing the
        // host's files every second would cost more than the cgroups (issue 20).
        if !walked
            && self.ticks > 0
            && events.is_empty()
            && !self
                .state
                .values()
                .any(|s| s.next_due.is_none_or(|d| d <= now))
        {
            return Ok(());
        }
        let paths = std::mem::take(&mut self.paths);
        let r = self.tick_paths(&paths, walked, events, now, t);
        self.paths = paths;
        r
    }

    fn tick_paths(
        &mut self,
        paths: &[String],
        walked: bool,
        mut events: Vec<Event>,
        now: Instant,
        t: i64,
    ) -> Result<(), String> {
        // Created and removed cgroups.
        let mut changed = false;
        if walked || self.ticks == 0 {
            let current: HashSet<String> = paths.iter().cloned().collect();
            for p in paths {
                if !self.known.contains(p) {
                    changed = true;
                    if self.ticks > 0 {
                        events.push(Event {
                            t,
                            kind: "cgroup-created".into(),
                            cgroup: Some(p.clone()),
                            data: serde_json::json!({"dir": read::fs_path(&self.h, p)}),
                        });
                    }
                }
            }
            for p in self.known.difference(&current) {
                changed = true;
                events.push(Event {
                    t,
                    kind: "cgroup-removed".into(),
                    cgroup: Some(p.clone()),
                    data: serde_json::json!({"dir": read::fs_path(&self.h, p)}),
                });
                self.state.remove(p);
                self.peaks.forget(p);
            }
            self.known = current;
        }
        // The hierarchy and the host, every tick (unchanged files cost a byte).
        let _ = crate::report::hierarchy(&self.root);
        let host = crate::proc::read_host(&self.root);
        let _ = read::dying_cgroups(&self.root, &self.h, paths.len());
        let pss_due = self
            .last_pss
            .is_none_or(|l| now.duration_since(l) >= self.opts.pss_interval);
        if pss_due {
            self.last_pss = Some(now);
        }
        let mut drop_status: Vec<PathBuf> = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        // v1 oom_kill counts of this tick's reads, for the OOM follower (`Follower::fed`).
        let mut oom_counts: Vec<(String, u64)> = Vec::new();
        for p in paths {
            // Not due: nothing else per cgroup (no key clone, no walk up the limits).
            if self
                .state
                .get(p.as_str())
                .is_some_and(|st| st.next_due.is_some_and(|d| d > now))
            {
                continue;
            }
            let parent_limit = parent_of(p).and_then(|pp| self.effective(pp));
            let st = self.state.entry(p.clone()).or_default();
            // Every memory file but no readdir of the children (the walk knows them and
            // the store does not keep listings); cgroup.procs read below.
            // The files that move (usage, limit, stat, events, PSI: `Level::Metrics`) at
            // each read; every memory file (settings such as soft limits, swappiness,
            // oom.group rarely change) every --full-interval, and at every read of a hot
            // cgroup, so the minute before an OOM kill has everything at 1 s.
            // Idle and unchanged (tiered reads, issue 20): its usage file alone, read and
            // recorded by `unchanged`. The tiers read it again after full_interval /
            // interval rounds, staggered, and that read is the full one: the full reads of
            // 10,000 cgroups are spread over the full interval, not one burst.
            // The interval peak (6.12+) is taken at every read, this one too: a peak above
            // the usage of the last read means usage moved in between (a spike, or memory
            // charged and freed), so the cgroup is read in full after all.
            let mut carry = None;
            if !st.hot
                && p != "/"
                && st.last_full.is_some()
                && self.tiers.unchanged(&self.root, &self.h, p).is_some()
            {
                carry = self.peaks.sample(&self.root, &self.h, p, false, None);
                if carry.is_none_or(|pk| st.usage.is_none_or(|u| pk <= u)) {
                    // Near its limit: memory.stat too (recorded by the read), the one file
                    // that moves while usage stays put to the byte (see [`warm`]).
                    if st.warm {
                        let _ = self
                            .root
                            .read_bytes(&read::fs_path(&self.h, p).join("memory.stat"));
                    }
                    st.next_due =
                        Some(now + self.opts.interval.saturating_sub(Duration::from_millis(50)));
                    continue;
                }
            }
            // Within half an interval of the full interval counts (the reads fall on ticks).
            let full = st.hot
                || st.last_full.is_none_or(|l| {
                    now.duration_since(l) + self.opts.interval / 2 >= self.opts.full_interval
                });
            let level = if full { Level::Sample } else { Level::Metrics };
            let Ok(mut cg) = read::read_cgroup(&self.root, &self.h, p, level) else {
                continue;
            };
            self.tiers
                .store(&self.root, &self.h, p, cg.usage.current, (), t);
            if let Some(n) = cg
                .events
                .oom_control
                .as_ref()
                .and_then(|e| e.get("oom_kill"))
            {
                oom_counts.push((p.clone(), n));
            }
            st.usage = cg.usage.current;
            // A reason (it does not change) at full reads only: one file per cgroup per
            // --full-interval on the kernels without exact peaks.
            self.peaks.sample(&self.root, &self.h, p, full, carry);
            if full {
                st.last_full = Some(now);
            }
            cg.procs = self
                .root
                .read(&read::fs_path(&self.h, p).join("cgroup.procs"))
                .ok()
                .and_then(|t| crate::cgroup::parse::pids(&t).ok());
            // Hot or not, for the next read.
            let own = cg.limits.max.and_then(Limit::bytes);
            let hier = cg.limits.hierarchical.and_then(Limit::bytes);
            st.own_limit = [own, hier].into_iter().flatten().min();
            let eff = [parent_limit, st.own_limit].into_iter().flatten().min();
            st.warm = warm(cg.usage.current, eff, self.opts.hot_headroom);
            // Near the limit needs a limit: without one (most cgroups of a node) the
            // breakdown, whose figures each format their source, is not computed at all.
            let near = match eff {
                Some(l) if l > 0 => {
                    let b = Breakdown::of(&cg);
                    let d = Derived::with_limit(
                        &cg,
                        &b,
                        EffectiveLimit {
                            bytes: eff,
                            set_by: None,
                            source: String::new(),
                        },
                    );
                    d.not_reclaimable
                        .bytes
                        .is_some_and(|n| (n as f64) >= (1.0 - self.opts.hot_headroom) * l as f64)
                }
                _ => false,
            };
            let (hits, high) = match self.h.version {
                Version::V1 => (cg.events.failcnt, None),
                Version::V2 => (
                    cg.events.events.as_ref().and_then(|e| e.get("max")),
                    cg.events.events.as_ref().and_then(|e| e.get("high")),
                ),
            };
            let rose =
                |a: Option<u64>, b: Option<u64>| matches!((a, b), (Some(x), Some(y)) if y > x);
            if rose(st.counters.0, hits) || rose(st.counters.1, high) {
                st.hot_until = Some(now + self.opts.hot_for);
            }
            st.counters = (hits, high);
            st.hot = near || st.hot_until.is_some_and(|u| u > now);
            let every = if st.hot {
                self.opts.fast_interval.min(self.opts.interval)
            } else {
                self.opts.interval
            };
            // Due again one interval later (a little early, so the tick grid is not missed).
            st.next_due = Some(now + every.saturating_sub(Duration::from_millis(50)));
            if let Some(id) = Identity::from_path(p).container_id {
                ids.push(id);
            }
            // The top processes by RSS (status is cheap), PSS at the lower rate.
            let mut procs: Vec<(u64, i32)> = Vec::new();
            for pid in cg.procs.iter().flatten() {
                let sp = PathBuf::from(format!("/proc/{pid}/status"));
                if let Ok(text) = self.root.read(&sp) {
                    let rss = text
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                        .unwrap_or(0);
                    procs.push((rss, *pid));
                }
            }
            procs.sort_by(|a, b| b.cmp(a));
            for (i, (_, pid)) in procs.iter().enumerate() {
                if i >= self.opts.top {
                    drop_status.push(PathBuf::from(format!("/proc/{pid}/status")));
                } else if pss_due {
                    let _ = self
                        .root
                        .read(&PathBuf::from(format!("/proc/{pid}/smaps_rollup")));
                }
            }
        }
        if let Some(f) = self.follower.as_mut() {
            f.feed_counts(oom_counts);
        }
        let names_due = changed
            || self
                .last_names
                .is_none_or(|l| now.duration_since(l) >= Duration::from_secs(60));
        if names_due {
            self.last_names = Some(now);
            let names = NodeNames::load(&self.root, ids.iter().map(String::as_str));
            // The identity (runtime, ID, pod, names) whenever it changes, so `history` finds a
            // container by name after it is gone.
            for p in paths {
                let id = Identity::named(p, &names);
                if id.runtime.is_none() && id.pod_uid.is_none() && id.unit.is_none() {
                    continue;
                }
                let v = serde_json::to_value(&id).unwrap_or_default();
                if self.identities.get(p) != Some(&v) {
                    self.identities.insert(p.clone(), v.clone());
                    events.push(Event {
                        t,
                        kind: "identity".into(),
                        cgroup: Some(p.clone()),
                        data: v,
                    });
                }
            }
        }
        drop(host);
        let (files, failures) = self.root.take_recorded();
        let drop: HashSet<PathBuf> = drop_status.into_iter().collect();
        let mut present = Vec::with_capacity(files.len());
        for (p, mut b) in files {
            if (!drop.is_empty() && drop.contains(&p)) || !stored(&p, &self.h) {
                continue;
            }
            if p.file_name().is_some_and(|n| n == "config.v2.json") {
                b = docker_names_only(&b);
            }
            // The path's own bytes when they are UTF-8 (always, for kernel files): no copy.
            let p = p
                .into_os_string()
                .into_string()
                .unwrap_or_else(|o| o.to_string_lossy().into_owned());
            present.push((p, b));
        }
        // Each file that could not be read, with the error (without its path): the store
        // keeps the reason, so `--at` and `history` say "not recorded: permission denied".
        let absent: Vec<(String, String)> = failures
            .into_iter()
            .filter(|(p, _)| stored(p, &self.h) && !p.starts_with("/proc/memlens-statfs"))
            .map(|(p, why)| {
                let p = p.to_string_lossy().into_owned();
                let why = why
                    .strip_prefix(p.as_str())
                    .and_then(|w| w.strip_prefix(": "))
                    .map(str::to_string)
                    .unwrap_or(why);
                (p, why)
            })
            .collect();
        self.writer
            .write(t, &present, &absent, &events)
            .map_err(|e| e.to_string())?;
        if self.trace {
            // The crash test's evidence: this tick is committed.
            eprintln!("memlens-record: committed {t}");
        }
        self.ticks += 1;
        Ok(())
    }

    fn effective(&self, p: &str) -> Option<u64> {
        let mut best: Option<u64> = None;
        let mut cur = Some(p);
        while let Some(c) = cur {
            if let Some(l) = self.state.get(c).and_then(|s| s.own_limit) {
                best = Some(best.map_or(l, |b| b.min(l)));
            }
            cur = parent_of(c);
        }
        best
    }

    /// Cgroups read at the fast rate now.
    pub fn hot(&self) -> Vec<&str> {
        self.state
            .iter()
            .filter(|(_, s)| s.hot)
            .map(|(p, _)| p.as_str())
            .collect()
    }
}

fn parent_of(p: &str) -> Option<&str> {
    if p == "/" {
        return None;
    }
    match p.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&p[..i]),
        None => None,
    }
}

/// `memlens record`: opens the recorder and runs it until stopped.
pub fn run(root: Root, h: Hierarchy, opts: Options) -> Result<u64, String> {
    let mut r = Recorder::new(root, h, opts)?;
    r.run()?;
    Ok(r.ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> Hierarchy {
        Hierarchy {
            version: Version::V2,
            mount_point: PathBuf::from("/sys/fs/cgroup"),
            mount_root: "/".into(),
        }
    }

    fn recorded(root: &Root, p: &str) -> String {
        let (files, _) = root.take_recorded();
        files
            .get(&PathBuf::from(p))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }

    /// Past the descriptor cap, and wherever the kernel cannot, the interval peak is
    /// unavailable with its reason (never 0), written at full reads only.
    #[test]
    fn interval_peaks_degrade_with_their_reason() {
        let root = Root::from_files(Default::default()).record();
        let mut p = Peaks::new(0);
        assert_eq!(p.cap, 0);
        assert_eq!(p.sample(&root, &v2(), "/a", true, None), None);
        let t = recorded(&root, "/sys/fs/cgroup/a/memlens.interval_peak");
        assert!(
            t.starts_with("unavailable: the recorder keeps at most 0 memory.peak files open"),
            "{t}"
        );
        // Not written again at a read of the usage alone.
        assert_eq!(p.sample(&root, &v2(), "/a", false, None), None);
        assert_eq!(
            recorded(&root, "/sys/fs/cgroup/a/memlens.interval_peak"),
            ""
        );
        // A capture (not a running system) is never opened for writing.
        let mut p = Peaks::new(1 << 20);
        assert_eq!(p.sample(&root, &v2(), "/b", true, None), None);
        let t = recorded(&root, "/sys/fs/cgroup/b/memlens.interval_peak");
        assert!(t.contains("not a running system"), "{t}");
        assert_eq!(p.open, 0);
        // v1: never, whatever the cap.
        let h1 = Hierarchy {
            version: Version::V1,
            mount_point: PathBuf::from("/sys/fs/cgroup/memory"),
            mount_root: "/".into(),
        };
        assert_eq!(p.sample(&root, &h1, "/c", true, None), None);
        let t = recorded(&root, "/sys/fs/cgroup/memory/c/memlens.interval_peak");
        assert!(t.starts_with("unavailable: cgroup v1"), "{t}");
    }
}
