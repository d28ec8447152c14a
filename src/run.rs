//! `memlens run -- COMMAND`: like `/usr/bin/time -v`, for containers.
//!
//! The command runs in a fresh memcg (`memlens-run-<pid>`) that it joins between fork and
//! exec, so every page it and its children touch is charged there and nowhere else. The memcg
//! is sampled every `--interval` (the same reader and breakdown as `show`), and at the end
//! memlens says how the command ended (an OOM kill is told apart from any other SIGKILL by the
//! memcg's own `oom_kill` counter), the peaks with their time offsets, the limit events, and a
//! limit recommendation built from what the kernel cannot reclaim.
//!
//! Signals: SIGINT/SIGTERM/SIGHUP/SIGQUIT sent to memlens are forwarded to the command (the
//! handler only stores a flag and calls kill(2), both async-signal-safe), and memlens keeps
//! waiting so that it still removes the memcg. A terminal's Ctrl-C already reaches the whole
//! foreground process group, so it is not forwarded a second time.

use crate::cgroup::owned::OwnedCgroup;
use crate::cgroup::read::{self, Level};
use crate::model::{Cgroup, Hierarchy, Version};
use crate::render;
use crate::sys::Root;
use crate::views::breakdown::Breakdown;
use crate::views::derived::Derived;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Exit codes of `memlens run` when the command did not run (as `env` and `timeout` use them).
pub mod exit {
    /// memlens could not set up the memcg (privileges, missing controller files, bad options).
    pub const SETUP: i32 = 125;
    /// The command was found but could not be executed.
    pub const CANNOT_EXECUTE: i32 = 126;
    /// The command was not found.
    pub const NOT_FOUND: i32 = 127;
}

/// The safety margin of the limit recommendation. Robusta krr adds 15% to the working-set
/// peak; memlens adds it to the peak of what cannot be reclaimed, which is what an OOM kill
/// is about (page cache is dropped at the limit instead).
pub const MARGIN: f64 = 0.15;

/// What `memlens run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Memory limit (v1 memory.limit_in_bytes, v2 memory.max).
    pub limit: Option<u64>,
    /// v2 memory.high.
    pub high: Option<u64>,
    /// Swap allowed (v1 memsw = limit + swap, v2 memory.swap.max); 0 forbids swap.
    pub swap: Option<u64>,
    /// Sampling interval.
    pub interval: Duration,
    /// Where to write every sample as CSV.
    pub timeline: Option<PathBuf>,
    /// Reclaim the memcg's memory before removing it, so it does not linger as a dying cgroup.
    pub reclaim_before_exit: bool,
    /// Parent cgroup of the new memcg (within the memory hierarchy); default: see [`default_parent`].
    pub parent: Option<String>,
    /// `run --probe`: probe the command's working set while it runs (crate::probe).
    pub probe: Option<crate::probe::ProbeOptions>,
}

/// Why `memlens run` could not run the command at all.
#[derive(Debug)]
pub struct SetupError {
    /// Exit code ([`exit`]).
    pub code: i32,
    /// What is missing, said so that the user can fix it.
    pub message: String,
}

impl SetupError {
    fn new(code: i32, message: impl Into<String>) -> Self {
        SetupError {
            code,
            message: message.into(),
        }
    }
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It exited with a status code.
    Exited,
    /// A signal killed it (not the memcg's OOM killer).
    Signaled,
    /// SIGKILL while the memcg's `oom_kill` counter rose: the memcg OOM killer.
    OomKilled,
}

impl Outcome {
    /// The JSON/CSV spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Exited => "exited",
            Outcome::Signaled => "signaled",
            Outcome::OomKilled => "oom_killed",
        }
    }
}

/// One sample of the memcg.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the command started.
    pub seconds: f64,
    /// usage (v1 memory.usage_in_bytes, v2 memory.current).
    pub usage: Option<u64>,
    /// usage − inactive_file, as the kubelet computes it.
    pub working_set: Option<u64>,
    /// Anonymous memory.
    pub anon: Option<u64>,
    /// Page cache including shmem.
    pub file: Option<u64>,
    /// shmem/tmpfs.
    pub shmem: Option<u64>,
    /// Kernel memory.
    pub kernel: Option<u64>,
    /// Swap.
    pub swap: Option<u64>,
    /// anon + shmem + (kernel − slab_reclaimable): what an OOM kill is about.
    pub not_reclaimable: Option<u64>,
    /// The exact peak of usage since the previous sample (memory.peak reset per file
    /// descriptor, 6.12+; `None` where the kernel cannot: see `interval_peak_source`).
    pub usage_interval_peak: Option<u64>,
}

/// The figures a sample holds, in timeline column order.
pub const FIGURES: [&str; 8] = [
    "usage",
    "working_set",
    "anon",
    "file",
    "shmem",
    "kernel",
    "swap",
    "not_reclaimable",
];

impl Sample {
    /// Takes a sample of a cgroup already read.
    pub fn of(cg: &Cgroup, seconds: f64) -> Self {
        let b = Breakdown::of(cg);
        let d = Derived::of(cg, &b, &[]);
        let working_set = match (b.usage.bytes, b.inactive_file.bytes) {
            (Some(u), Some(i)) => Some(u.saturating_sub(i)),
            _ => None,
        };
        Sample {
            seconds,
            usage: b.usage.bytes,
            working_set,
            anon: b.anon.bytes,
            file: b.file.bytes,
            shmem: b.shmem.bytes,
            kernel: b.kernel.bytes,
            swap: b.swap.bytes,
            not_reclaimable: d.not_reclaimable.bytes,
            usage_interval_peak: None,
        }
    }

    /// A figure by its name in [`FIGURES`].
    pub fn get(&self, name: &str) -> Option<u64> {
        match name {
            "usage" => self.usage,
            "working_set" => self.working_set,
            "anon" => self.anon,
            "file" => self.file,
            "shmem" => self.shmem,
            "kernel" => self.kernel,
            "swap" => self.swap,
            "not_reclaimable" => self.not_reclaimable,
            _ => None,
        }
    }
}

/// The highest value of one figure.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Peak {
    /// Bytes, `None` when the kernel never provided the figure.
    pub bytes: Option<u64>,
    /// Seconds since the start at which it was seen (`None` for the kernel's own high-water
    /// mark, whose time is unknown).
    pub at_seconds: Option<f64>,
    /// Where it came from.
    pub source: String,
}

/// Event counter deltas over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EventDeltas {
    /// Times usage hit the limit (v1 memory.failcnt, v2 memory.events max).
    pub max: Option<u64>,
    /// v2 memory.events high: times usage went over memory.high (throttled, reclaimed).
    pub high: Option<u64>,
    /// v2 memory.events oom: times reclaim failed at the limit.
    pub oom: Option<u64>,
    /// OOM kills (v1 memory.oom_control oom_kill, v2 memory.events oom_kill).
    pub oom_kill: Option<u64>,
    /// Where each came from, or why it is unavailable.
    pub sources: Vec<String>,
}

/// What cleanup found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cleanup {
    /// Processes still in the memcg after the command ended (killed before removal).
    pub leftover_processes: usize,
    /// usage right before removal (after `--reclaim-before-exit`, if given).
    pub usage_before_removal_bytes: Option<u64>,
    /// Whether memory was reclaimed first, and how.
    pub reclaim: Option<String>,
    /// Whether the memcg directory was removed.
    pub removed: bool,
    /// Bytes still charged when the directory was removed: the memcg lingers as a dying
    /// cgroup until they are reclaimed (seed 004).
    pub lingering_bytes: Option<u64>,
    /// Human explanation.
    pub message: String,
}

/// Everything `memlens run` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The command line.
    pub command: Vec<String>,
    /// The memcg it ran in (path within the hierarchy).
    pub cgroup: String,
    /// cgroup version.
    pub version: Version,
    /// Limits applied.
    pub limit_bytes: Option<u64>,
    /// v2 memory.high applied.
    pub high_bytes: Option<u64>,
    /// Swap allowed.
    pub swap_bytes: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Exit code when it exited.
    pub exit_code: Option<i32>,
    /// Signal number when killed.
    pub signal: Option<i32>,
    /// Wall time from spawn to exit.
    pub wall_seconds: f64,
    /// User CPU time of the command and its waited-for children (wait4 rusage).
    pub user_seconds: f64,
    /// System CPU time, same.
    pub system_seconds: f64,
    /// ru_maxrss: the largest RSS of one process (not the memcg's usage).
    pub max_rss_bytes: u64,
    /// Number of samples taken.
    pub samples: usize,
    /// How interval peaks were measured: memory.peak reset at each sample (exact), or why
    /// the kernel cannot (then the peaks are the highest samples).
    pub interval_peak_source: String,
    /// Sampling interval in milliseconds.
    pub interval_ms: u64,
    /// Peaks by figure (see [`FIGURES`]).
    pub peaks: Vec<(String, Peak)>,
    /// Event deltas.
    pub events: EventDeltas,
    /// v2 memory.pressure some/full total stall time gained, in microseconds.
    pub psi_some_usec: Option<u64>,
    /// Same, `full`.
    pub psi_full_usec: Option<u64>,
    /// Recommended limit.
    pub recommended_limit_bytes: Option<u64>,
    /// How it was computed.
    pub recommendation_formula: String,
    /// A signal memlens received and forwarded.
    pub forwarded_signal: Option<i32>,
    /// The kernel's OOM report for the victim, when available.
    pub oom_report: Option<String>,
    /// Cleanup.
    pub cleanup: Cleanup,
    /// Files that could not be read during the run.
    pub problems: Vec<String>,
    /// `run --probe`: what the probe found.
    pub probe: Option<crate::probe::ProbeReport>,
}

impl RunResult {
    /// The peak of one figure.
    pub fn peak(&self, name: &str) -> Option<&Peak> {
        self.peaks.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// memlens's own exit status: the command's code, or 128 + signal when killed.
    pub fn exit_status(&self) -> i32 {
        match (self.exit_code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 1,
        }
    }
}

/// The kernel's OOM report for `victim_pid` from the kernel log, if one can be found.
///
/// Hook for the kmsg OOM parser (`src/kmsg/`), which is being written separately: until it is
/// wired in this returns `None`, and `run` says that the report is not available yet.
pub fn kernel_oom_report(victim_pid: i32) -> Option<String> {
    crate::oom::report_for_pid(victim_pid)
}

/// The parent of the new memcg when `--parent` is not given: the hierarchy root when running
/// as root; otherwise (v2) the parent of memlens's own cgroup, which is the user's delegated
/// subtree when memlens runs in a `systemd-run --user --scope` (a cgroup with processes in
/// it cannot have memory-controlled children, so memlens's own cgroup cannot be the parent).
pub fn default_parent(h: &Hierarchy) -> String {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 || h.version == Version::V1 {
        return "/".into();
    }
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_else(|| "/".into());
    let own = own
        .strip_prefix(h.mount_root.trim_end_matches('/'))
        .unwrap_or(&own)
        .to_string();
    match own.trim_end_matches('/').rsplit_once('/') {
        Some((p, _)) if !p.is_empty() => p.to_string(),
        _ => "/".into(),
    }
}

fn setup_error(h: &Hierarchy, parent: &str, e: &std::io::Error) -> SetupError {
    let denied = matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    ) || e.raw_os_error() == Some(libc::EPERM);
    let what = match (h.version, denied) {
        (Version::V1, true) => format!(
            "{e}\nmemlens run needs root on cgroup v1: only root may create a memcg under {}",
            h.mount_point.display()
        ),
        (Version::V2, true) | (Version::V2, false)
            if e.kind() != std::io::ErrorKind::AlreadyExists =>
        {
            format!(
                "{e}\nmemlens run needs a writable cgroup v2 subtree with the memory controller delegated (memory in the parent's cgroup.subtree_control), here {parent}. Run as root, or from a delegated scope, e.g.\n  systemd-run --user --scope -p Delegate=yes memlens run -- COMMAND\n(or name a writable, memory-delegating parent with --parent)"
            )
        }
        _ => e.to_string(),
    };
    SetupError::new(exit::SETUP, what)
}

// ---- signals --------------------------------------------------------------------------------

static CHILD: AtomicI32 = AtomicI32::new(0);
static RECEIVED: AtomicI32 = AtomicI32::new(0);
const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    RECEIVED.store(sig, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO; reading si_code is plain.
    let from_tty = !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL;
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 && !from_tty {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Installs the forwarding handlers; restores the previous ones on drop.
struct SignalGuard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    fn install() -> Self {
        let mut old = Vec::new();
        for sig in FORWARDED {
            // SAFETY: a zeroed sigaction is valid; the handler only touches atomics and kill(2).
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &sa, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        SignalGuard { old }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        CHILD.store(0, Ordering::SeqCst);
        for (sig, prev) in &self.old {
            // SAFETY: restoring the action sigaction gave us.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
    }
}

/// A signal's name (`SIGKILL`).
pub fn signal_name(sig: i32) -> String {
    let n = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return format!("signal {sig}"),
    };
    n.to_string()
}

// ---- the run --------------------------------------------------------------------------------

struct Ended {
    status: libc::c_int,
    rusage: libc::rusage,
    at: Instant,
}

fn wait_thread(pid: i32) -> mpsc::Receiver<Result<Ended, String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: zeroed rusage is valid; wait4 fills it.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: valid out pointers; pid is our own child.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            if r == pid {
                let _ = tx.send(Ok(Ended {
                    status,
                    rusage: ru,
                    at: Instant::now(),
                }));
                return;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                let _ = tx.send(Err(format!("wait4({pid}): {e}")));
                return;
            }
        }
    });
    rx
}

struct Tracker {
    peaks: Vec<(String, Peak)>,
    samples: usize,
    timeline: Option<Vec<Sample>>,
}

impl Tracker {
    fn new(keep: bool) -> Self {
        Tracker {
            peaks: FIGURES
                .iter()
                .map(|f| (f.to_string(), Peak::default()))
                .collect(),
            samples: 0,
            timeline: keep.then(Vec::new),
        }
    }

    fn add(&mut self, s: Sample) {
        self.samples += 1;
        for (name, p) in &mut self.peaks {
            if let Some(v) = s.get(name)
                && p.bytes.is_none_or(|b| v > b)
            {
                p.bytes = Some(v);
                p.at_seconds = Some(s.seconds);
            }
        }
        // The exact peak of the interval that ended at this sample (6.12+).
        if let Some(v) = s.usage_interval_peak
            && let Some((_, p)) = self.peaks.iter_mut().find(|(n, _)| n == "usage")
            && p.bytes.is_none_or(|b| v >= b)
        {
            if p.bytes.is_none_or(|b| v > b) {
                p.bytes = Some(v);
                p.at_seconds = Some(s.seconds);
            }
            p.source = "memory.peak read and reset at every sample (6.12+): the exact peak, at the end of its interval".into();
        }
        if let Some(t) = &mut self.timeline {
            t.push(s);
        }
    }
}

fn delta(before: Option<u64>, after: Option<u64>) -> Option<u64> {
    Some(after?.saturating_sub(before.unwrap_or(0)))
}

fn events(first: &Cgroup, last: &Cgroup) -> EventDeltas {
    let mut d = EventDeltas::default();
    match last.version {
        Version::V1 => {
            d.max = delta(first.events.failcnt, last.events.failcnt);
            d.oom_kill = delta(first.events.oom_kills(), last.events.oom_kills());
            d.sources = vec![
                "max: memory.failcnt".into(),
                "high: v1 has no memory.high".into(),
                "oom: v1 counts OOM kills only (memory.oom_control)".into(),
                if d.oom_kill.is_some() {
                    "oom_kill: memory.oom_control oom_kill".into()
                } else {
                    "oom_kill: memory.oom_control has no oom_kill before 4.13".into()
                },
            ];
        }
        Version::V2 => {
            let g = |c: &Cgroup, k: &str| c.events.events.as_ref().and_then(|e| e.get(k));
            d.max = delta(g(first, "max"), g(last, "max"));
            d.high = delta(g(first, "high"), g(last, "high"));
            d.oom = delta(g(first, "oom"), g(last, "oom"));
            d.oom_kill = delta(g(first, "oom_kill"), g(last, "oom_kill"));
            d.sources = vec!["memory.events max, high, oom, oom_kill".into()];
        }
    }
    d
}

/// Runs the command as described by `opts`, prints nothing, and returns what happened.
/// Errors before the command ran are [`SetupError`]s.
pub fn run(opts: &RunOptions) -> Result<RunResult, SetupError> {
    let root = Root::live();
    let h =
        crate::report::hierarchy(&root).map_err(|e| SetupError::new(exit::SETUP, e.to_string()))?;
    if opts.command.is_empty() {
        return Err(SetupError::new(
            2,
            "no command given: memlens run [OPTIONS] -- COMMAND [ARGS...]",
        ));
    }
    if opts.high.is_some() && h.version == Version::V1 {
        return Err(SetupError::new(
            2,
            "--high needs cgroup v2 (memory.high); cgroup v1 has no throttling limit (memory.soft_limit_in_bytes is only a reclaim hint under global pressure)",
        ));
    }
    if opts.swap.is_some() && h.version == Version::V1 && opts.limit.is_none() {
        return Err(SetupError::new(
            2,
            "--swap on cgroup v1 needs --limit: v1 limits memory+swap together (memory.memsw.limit_in_bytes = limit + swap)",
        ));
    }
    let parent = opts.parent.clone().unwrap_or_else(|| default_parent(&h));
    let name = format!("memlens-run-{}", std::process::id());
    let cg = OwnedCgroup::create(&h, &parent, &name).map_err(|e| setup_error(&h, &parent, &e))?;
    let setup = |r: std::io::Result<()>| r.map_err(|e| SetupError::new(exit::SETUP, e.to_string()));
    if opts.limit.is_some() {
        setup(cg.set_limit(opts.limit))?;
    }
    if let Some(hi) = opts.high {
        setup(cg.write("memory.high", &hi.to_string()))?;
    }
    if opts.swap.is_some() {
        let file = match h.version {
            Version::V1 => "memory.memsw.limit_in_bytes",
            Version::V2 => "memory.swap.max",
        };
        if !cg.dir().join(file).exists() {
            return Err(SetupError::new(
                exit::SETUP,
                match h.version {
                    Version::V1 => {
                        "--swap: this kernel has no memory.memsw.* files, so swap is not accounted per cgroup (boot with swapaccount=1, CONFIG_MEMCG_SWAP)"
                    }
                    Version::V2 => {
                        "--swap: this kernel has no memory.swap.max (swap accounting off: CONFIG_MEMCG_SWAP, or swapaccount=0 on the kernel command line)"
                    }
                },
            ));
        }
        setup(cg.set_swap(opts.swap, opts.limit))?;
    }
    let first = read::read_cgroup(&root, &h, cg.path(), Level::Sample)
        .map_err(|e| SetupError::new(exit::SETUP, e.to_string()))?;

    let mut cmd = Command::new(&opts.command[0]);
    cmd.args(&opts.command[1..]);
    setup(cg.join_before_exec(&mut cmd))?;
    let guard = SignalGuard::install();
    let start = Instant::now();
    let child = cmd.spawn().map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            exit::NOT_FOUND
        } else {
            exit::CANNOT_EXECUTE
        };
        SetupError::new(code, format!("cannot run {:?}: {e}", opts.command[0]))
    })?;
    let pid = child.id() as i32;
    // std's Child does not wait on drop; the wait thread reaps it with wait4 for its rusage.
    drop(child);
    CHILD.store(pid, Ordering::SeqCst);
    // A signal that arrived before the pid was known is forwarded now.
    let early = RECEIVED.load(Ordering::SeqCst);
    if early != 0 {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, early) };
    }
    let rx = wait_thread(pid);
    let probe_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = opts
        .probe
        .as_ref()
        .map(|po| start_probe(&root, &h, &cg, opts.limit, po, probe_done.clone()));

    let mut tr = Tracker::new(opts.timeline.is_some());
    let mut problems: Vec<String> = Vec::new();
    let mut ipeak = match h.version {
        Version::V2 => crate::cgroup::peak::IntervalPeak::open(cg.dir()),
        Version::V1 => Err("cgroup v1 resets memory.max_usage_in_bytes for every reader at once: interval peaks are the highest samples".into()),
    };
    let interval_peak_source = match &ipeak {
        Ok(_) => "memory.peak read and reset per file descriptor at every sample (6.12+): exact"
            .to_string(),
        Err(why) => why.clone(),
    };
    let mut next = start;
    let ended = loop {
        match read::read_cgroup(&root, &h, cg.path(), Level::Sample) {
            Ok(c) => {
                for p in &c.problems {
                    if !problems.contains(p) {
                        problems.push(p.clone());
                    }
                }
                let mut smp = Sample::of(&c, start.elapsed().as_secs_f64());
                if let Ok(ip) = &mut ipeak {
                    match ip.take() {
                        Ok(v) => smp.usage_interval_peak = Some(v),
                        Err(e) => problems.push(format!("memory.peak: {e}")),
                    }
                }
                tr.add(smp);
            }
            Err(e) => problems.push(e.to_string()),
        }
        next += opts.interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        match rx.recv_timeout(next - now) {
            Ok(r) => break r,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err("the wait thread ended without a status".into());
            }
        }
    };
    CHILD.store(0, Ordering::SeqCst);
    probe_done.store(true, Ordering::SeqCst);
    // The probe ends before the memcg is removed (it holds its files open).
    let probe = prober.map(|t| match t {
        Ok(t) => t
            .join()
            .unwrap_or_else(|_| probe_failed("the probe thread panicked")),
        Err(e) => probe_failed(&e),
    });
    let ended = ended.map_err(|e| SetupError::new(exit::SETUP, e))?;
    let wall = ended.at.duration_since(start).as_secs_f64();
    // One last sample: the event counters and the kernel's own high-water marks.
    let last = read::read_cgroup(&root, &h, cg.path(), Level::Sample).ok();
    if let Some(l) = &last {
        let mut smp = Sample::of(l, wall);
        if let Ok(ip) = &mut ipeak {
            smp.usage_interval_peak = ip.take().ok();
        }
        tr.add(smp);
        let kernel_peak = l.usage.peak;
        if let (Some(kp), Some((_, p))) =
            (kernel_peak, tr.peaks.iter_mut().find(|(n, _)| n == "usage"))
            && p.bytes.is_none_or(|b| kp > b)
        {
            p.bytes = Some(kp);
            p.at_seconds = None;
            p.source = format!(
                "{} (the kernel's own high-water mark, higher than any sample)",
                if h.version == Version::V1 {
                    "memory.max_usage_in_bytes"
                } else {
                    "memory.peak"
                }
            );
        }
    }
    for (name, p) in &mut tr.peaks {
        if p.source.is_empty() {
            p.source = if p.bytes.is_some() {
                format!("highest of {} samples", tr.samples)
            } else {
                format!("{name} not provided by this kernel")
            };
        }
    }
    let ev = last.as_ref().map(|l| events(&first, l)).unwrap_or_default();
    let (psi_some, psi_full) = match last.as_ref().and_then(|l| l.pressure) {
        Some(p) => {
            let f = first.pressure;
            (
                Some(
                    p.some
                        .total_usec
                        .saturating_sub(f.map_or(0, |x| x.some.total_usec)),
                ),
                Some(
                    p.full
                        .total_usec
                        .saturating_sub(f.map_or(0, |x| x.full.total_usec)),
                ),
            )
        }
        None => (None, None),
    };
    let (exit_code, signal) = if libc::WIFEXITED(ended.status) {
        (Some(libc::WEXITSTATUS(ended.status)), None)
    } else if libc::WIFSIGNALED(ended.status) {
        (None, Some(libc::WTERMSIG(ended.status)))
    } else {
        (None, None)
    };
    let outcome = match signal {
        None => Outcome::Exited,
        Some(s) if s == libc::SIGKILL && ev.oom_kill.unwrap_or(0) > 0 => Outcome::OomKilled,
        Some(_) => Outcome::Signaled,
    };
    let oom_report = if outcome == Outcome::OomKilled {
        kernel_oom_report(pid)
    } else {
        None
    };
    let mut nr = tr.peak_bytes("not_reclaimable");
    // Killed at the limit, the command needed at least the limit; a sample may also have
    // missed the last allocations before the kill.
    if outcome == Outcome::OomKilled
        && let Some(l) = opts.limit
    {
        nr = Some(nr.map_or(l, |n| n.max(l)));
    }
    // Never below the smallest limit `run --limit` accepts: a smaller one kills at start-up.
    let recommended = nr.map(|n| {
        round_up_mib((n as f64 * (1.0 + MARGIN)).ceil() as u64).max(crate::units::MIN_LIMIT)
    });
    let mut formula = format!(
        "peak not reclaimable (anon + shmem + (kernel − slab_reclaimable)) × {:.2}, rounded up to MiB: page cache is left out because the kernel reclaims it at the limit instead of killing",
        1.0 + MARGIN
    );
    if outcome == Outcome::OomKilled {
        formula.push_str(
            "; the command was OOM-killed at the limit, so the limit itself is taken as the peak and the real need is higher still: rerun with a larger --limit to measure it",
        );
    }
    let forwarded = match RECEIVED.swap(0, Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    };
    drop(guard);
    let cleanup = cleanup(&root, &h, cg, opts.reclaim_before_exit);
    if let (Some(path), Some(t)) = (&opts.timeline, &tr.timeline)
        && let Err(e) = write_timeline(path, t)
    {
        problems.push(format!("cannot write timeline {}: {e}", path.display()));
    }
    Ok(RunResult {
        command: opts.command.clone(),
        cgroup: format!("{}/{name}", parent.trim_end_matches('/')),
        version: h.version,
        limit_bytes: opts.limit,
        high_bytes: opts.high,
        swap_bytes: opts.swap,
        outcome,
        exit_code,
        signal,
        wall_seconds: wall,
        user_seconds: tv(ended.rusage.ru_utime),
        system_seconds: tv(ended.rusage.ru_stime),
        max_rss_bytes: (ended.rusage.ru_maxrss.max(0) as u64) * 1024,
        samples: tr.samples,
        interval_peak_source,
        interval_ms: opts.interval.as_millis() as u64,
        peaks: tr.peaks,
        events: ev,
        psi_some_usec: psi_some,
        psi_full_usec: psi_full,
        recommended_limit_bytes: recommended,
        recommendation_formula: formula,
        forwarded_signal: forwarded,
        oom_report,
        cleanup,
        problems,
        probe,
    })
}

type ProbeThread = std::thread::JoinHandle<crate::probe::ProbeReport>;

/// Starts `run --probe`'s probe on memlens's own memcg, in its own thread (the sampling loop
/// keeps its pace). v1: memory.limit_in_bytes lowered step by step and put back to `limit`
/// at the end; v2: memory.reclaim, the limits untouched.
fn start_probe(
    root: &Root,
    h: &Hierarchy,
    cg: &OwnedCgroup,
    limit: Option<u64>,
    po: &crate::probe::ProbeOptions,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<ProbeThread, String> {
    use crate::probe::{Lever, choose_args};
    let swap = crate::probe::swap_possible(root, h, cg.path());
    let (lever, forms) = match h.version {
        Version::V1 => (
            Lever::Limit {
                file: cg.limit_file().map_err(|e| e.to_string())?,
                restore: limit,
            },
            vec![("LIMIT".to_string(), None)],
        ),
        Version::V2 => {
            let mut file = crate::cgroup::reclaim::ReclaimFile::open(root, h, cg.path())
                .map_err(|e| e.to_string())?;
            let (args, forms) = if po.dry_run {
                (String::new(), vec![("N".to_string(), None)])
            } else {
                choose_args(&mut file, po.swappiness.as_deref(), swap)?
            };
            (Lever::Reclaim { file, args }, forms)
        }
    };
    let (h, path, po, version) = (h.clone(), cg.path().to_string(), po.clone(), h.version);
    Ok(std::thread::spawn(move || {
        let root = Root::live();
        crate::probe::probe(
            &path,
            version,
            lever,
            forms,
            swap,
            &po,
            || crate::probe::reading(&root, &h, &path),
            || done.load(Ordering::SeqCst),
            |plan| eprintln!("memlens: probe {path}: {plan}"),
            |s| {
                eprintln!(
                    "memlens: probe step {}: wrote {:?}: {} -> {}, refaults {}, some {}",
                    s.n,
                    s.wrote,
                    render::bytes(s.usage_before),
                    render::bytes(s.usage_after),
                    render::bytes(s.refaults),
                    s.psi_some_percent
                        .map_or("n/a".into(), |p| format!("{p:.2}%"))
                )
            },
        )
    }))
}

fn probe_failed(why: &str) -> crate::probe::ProbeReport {
    let mut r = crate::probe::ProbeReport::empty();
    r.stopped = format!("the probe did not run: {why}");
    r
}

impl Tracker {
    fn peak_bytes(&self, name: &str) -> Option<u64> {
        self.peaks
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, p)| p.bytes)
    }
}

fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

fn round_up_mib(b: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    b.div_ceil(MIB) * MIB
}

fn usage_now(cg: &OwnedCgroup, v: Version) -> Option<u64> {
    let f = match v {
        Version::V1 => "memory.usage_in_bytes",
        Version::V2 => "memory.current",
    };
    std::fs::read_to_string(cg.dir().join(f))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Reclaims what a memcg memlens created holds: v1 `memory.force_empty`, v2 `memory.reclaim`
/// (5.19+, with `swappiness=0` where the kernel takes it), and before 5.19 `memory.high`
/// lowered to 0 and restored: since 5.9 a memory.high write reclaims down to the new value
/// before it returns ("mm: memcontrol: avoid workload stalls when lowering memory.high",
/// 536d3bf261a2), which is the only reclaim on request those kernels have. Only for our own
/// memcgs (no tasks left in them): the user's cgroups are never given a new memory.high.
/// Returns how, or why it could not.
pub fn reclaim(cg: &OwnedCgroup, v: Version) -> String {
    match v {
        Version::V1 => match cg.write("memory.force_empty", "0") {
            Ok(()) => "memory.force_empty".into(),
            Err(e) => format!("memory.force_empty failed: {e}"),
        },
        Version::V2 => {
            if !cg.dir().join("memory.reclaim").exists() {
                if !cg.dir().join("memory.high").exists() {
                    return "memory.reclaim and memory.high are missing: nothing reclaimed".into();
                }
                let lowered = cg.write("memory.high", "0");
                let restored = cg.write("memory.high", "max");
                return match (lowered, restored) {
                    (Ok(()), Ok(())) => {
                        "memory.high lowered to 0 and restored to max (memory.reclaim needs 5.19)"
                            .into()
                    }
                    (Err(e), _) | (_, Err(e)) => format!("memory.high fallback failed: {e}"),
                };
            }
            // Ask for everything; the kernel answers EAGAIN when it could not reclaim it all.
            let want = usage_now(cg, v).unwrap_or(0).max(1 << 20);
            let (req, r) = crate::cgroup::reclaim::write_reclaim(want, |req| {
                std::fs::write(cg.dir().join("memory.reclaim"), req)
            });
            match r {
                Ok(()) => format!("memory.reclaim {req:?}"),
                Err(e) => format!("memory.reclaim {req:?} (partial: {e})"),
            }
        }
    }
}

fn cleanup(root: &Root, h: &Hierarchy, cg: OwnedCgroup, reclaim_first: bool) -> Cleanup {
    let mut c = Cleanup::default();
    // Kill what the command left behind (daemonised children): the memcg cannot be removed
    // while it has tasks.
    for _ in 0..100 {
        let pids = cg.pids();
        if pids.is_empty() {
            break;
        }
        c.leftover_processes = c.leftover_processes.max(pids.len());
        for p in pids {
            // SAFETY: kill(2) on a process in our own memcg.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if reclaim_first {
        c.reclaim = Some(reclaim(&cg, h.version));
    }
    c.usage_before_removal_bytes = usage_now(&cg, h.version);
    // Only pages pin a removed memcg: kernel objects (slab) are reparented when it goes
    // offline (5.9+), so the lingering figure is the page cache (shmem included) left.
    let cache = read::read_cgroup(root, h, cg.path(), Level::Sample)
        .ok()
        .and_then(|c| Breakdown::of(&c).file.bytes);
    let dir = cg.dir().to_path_buf();
    match cg.remove() {
        Ok(()) => {
            c.removed = true;
            match cache {
                Some(u) if u > 0 => {
                    c.lingering_bytes = Some(u);
                    c.message = format!(
                        "memcg removed, but {} of page cache was still charged to it: it lingers as a dying cgroup until that cache is reclaimed{}",
                        render::bytes(Some(u)),
                        if reclaim_first {
                            ""
                        } else {
                            "; --reclaim-before-exit reclaims it first"
                        }
                    );
                }
                _ => {
                    c.message = format!(
                        "memcg removed; no page cache was left charged to it (usage {} of kernel objects is reparented)",
                        render::bytes(c.usage_before_removal_bytes)
                    )
                }
            }
        }
        Err(e) => {
            c.message = format!("could not remove {}: {e}", dir.display());
        }
    }
    c
}

fn write_timeline(path: &std::path::Path, samples: &[Sample]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(f, "seconds")?;
    for n in FIGURES {
        write!(f, ",{n}_bytes")?;
    }
    writeln!(f, ",usage_interval_peak_bytes")?;
    for s in samples {
        write!(f, "{:.3}", s.seconds)?;
        for n in FIGURES {
            match s.get(n) {
                Some(v) => write!(f, ",{v}")?,
                None => write!(f, ",")?,
            }
        }
        match s.usage_interval_peak {
            Some(v) => writeln!(f, ",{v}")?,
            None => writeln!(f, ",")?,
        }
    }
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::run::shell_quote;

    #[test]
    fn echoed_commands_keep_their_quoting() {
        assert_eq!(shell_quote("python3"), "python3");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn rounding_and_names() {
        assert_eq!(round_up_mib(1), 1 << 20);
        assert_eq!(round_up_mib(1 << 20), 1 << 20);
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(64), "signal 64");
    }

    #[test]
    fn tracker_keeps_first_time_of_the_highest_value() {
        let mut t = Tracker::new(true);
        t.add(Sample {
            seconds: 0.1,
            anon: Some(5),
            ..Default::default()
        });
        t.add(Sample {
            seconds: 0.2,
            anon: Some(9),
            ..Default::default()
        });
        t.add(Sample {
            seconds: 0.3,
            anon: Some(9),
            ..Default::default()
        });
        let p = &t.peaks.iter().find(|(n, _)| n == "anon").unwrap().1;
        assert_eq!((p.bytes, p.at_seconds), (Some(9), Some(0.2)));
        assert_eq!(t.peak_bytes("usage"), None);
        assert_eq!(t.samples, 3);
    }

    #[test]
    fn interval_peaks_beat_samples() {
        // A spike between two samples: memory.peak (reset at every sample) saw 50, the samples
        // only 10 and 20.
        let mut t = Tracker::new(false);
        t.add(Sample {
            seconds: 0.1,
            usage: Some(10),
            usage_interval_peak: Some(12),
            ..Default::default()
        });
        t.add(Sample {
            seconds: 0.2,
            usage: Some(20),
            usage_interval_peak: Some(50),
            ..Default::default()
        });
        let p = &t.peaks.iter().find(|(n, _)| n == "usage").unwrap().1;
        assert_eq!((p.bytes, p.at_seconds), (Some(50), Some(0.2)));
        assert!(p.source.contains("reset at every sample"));
    }
}
