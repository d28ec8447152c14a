//! `memlens probe TARGET` (cgroup v2) and `memlens run --probe` (v1 and v2): the true working
//! set, found the way senpai/TMO do it. Take a little memory away, wait, and watch whether the
//! workload notices: memory.pressure (some), workingset refaults (file and anon), pgscan and
//! pgsteal, and memory.current. Stop at a pressure budget, when reclaim takes nothing, or at
//! what cannot be reclaimed without swap. What was taken without pressure was cold; what is
//! left is the hot set, and the recommendation is built from it.
//!
//! The lever, by hierarchy:
//! - v2: write `N` (or `N swappiness=S`, where the kernel accepts it: "mm: add swappiness= arg
//!   to memory.reclaim") to the cgroup's memory.reclaim (cgroup-v2.rst "memory.reclaim", 5.19+).
//!   The limits are never touched. Pressure is the cgroup's own memory.pressure: the reclaim
//!   runs in memlens's task, so its stall is charged to memlens's cgroup, not the target's
//!   (psi.rst "Cgroup2 interface"), and the target's PSI only shows the workload waiting.
//! - v1 has no memory.reclaim and no per-cgroup PSI. Only in a cgroup memlens created itself
//!   (`run --probe`): memory.limit_in_bytes is lowered step by step (the kernel reclaims down
//!   to it before the write returns, or refuses with EBUSY) and put back at the end. The
//!   budget is then on the cgroup's refaults (workingset_refault_* in its memory.stat) and on
//!   the rise of the *host's* /proc/pressure/memory over what it was before the first step,
//!   and the report says so.

use crate::cgroup::read::{self, Level};
use crate::model::{Hierarchy, Version};
use crate::sys::Root;
use serde::Serialize;
use std::io;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// What the probe was asked to do.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Each step asks for this share of memory.current (senpai reclaims a share of the
    /// current size, so steps shrink as the probe nears the hot set).
    pub step: f64,
    /// The smallest step; also the "reclaim took nothing" threshold (half of it).
    pub min_step: u64,
    /// The pressure budget: percent of wall time some task stalled (some), per step window.
    pub max_psi: f64,
    /// v1 only: refaults allowed in one step window, as a share of that step's request.
    pub max_refault: f64,
    /// Time between a step and its readings (the window the budget is checked over).
    pub settle: Duration,
    /// At most this many steps.
    pub max_steps: u32,
    /// Wait before the first reading (`run --probe`: the command's start-up).
    pub after: Duration,
    /// v2: the `swappiness=` argument to pass (0..200 or `max`), when the kernel takes it;
    /// None: the plain amount (the kernel's vm.swappiness), or `swappiness=0` without swap.
    pub swappiness: Option<String>,
    /// Say what would be written, write nothing.
    pub dry_run: bool,
    /// Margin on the hot set for the recommended limit.
    pub margin: f64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            step: 0.10,
            min_step: MIB,
            max_psi: 0.1,
            max_refault: 0.10,
            settle: Duration::from_secs(1),
            max_steps: 60,
            after: Duration::ZERO,
            swappiness: None,
            dry_run: false,
            margin: crate::run::MARGIN,
        }
    }
}

/// One reading of the cgroup (and, on v1, of the host's PSI).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reading {
    #[serde(rename = "usage_bytes")]
    pub usage: Option<u64>,
    #[serde(rename = "not_reclaimable_bytes")]
    pub not_reclaimable: Option<u64>,
    #[serde(rename = "swap_bytes")]
    pub swap: Option<u64>,
    /// memory.stat workingset_refault_anon / _file (pages; 5.9+ on v2).
    pub refault_anon: Option<u64>,
    pub refault_file: Option<u64>,
    /// memory.stat pgscan / pgsteal (pages; v2 only, 5.13+).
    pub pgscan: Option<u64>,
    pub pgsteal: Option<u64>,
    /// memory.stat pgmajfault (v1 and v2): faults that read their page back from swap or disk.
    pub major_faults: Option<u64>,
    /// memory.pressure (v2) or /proc/pressure/memory (v1) some total, µs.
    pub psi_some_total_usec: Option<u64>,
    pub psi_some_avg10: Option<f32>,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// Reads the cgroup at `path` (and the host's PSI on v1).
pub fn reading(root: &Root, h: &Hierarchy, path: &str) -> Result<Reading, String> {
    let c = read::read_cgroup(root, h, path, Level::Sample).map_err(|e| e.to_string())?;
    let s = crate::run::Sample::of(&c, 0.0);
    let psi = match h.version {
        Version::V2 => c.pressure,
        Version::V1 => crate::proc::read_host(root).pressure,
    };
    let mut r = Reading {
        usage: s.usage,
        not_reclaimable: s.not_reclaimable,
        swap: s.swap,
        psi_some_total_usec: psi.map(|p| p.some.total_usec),
        psi_some_avg10: psi.map(|p| p.some.avg10),
        ..Reading::default()
    };
    if let Some(st) = &c.stat {
        r.set_stat(st);
    }
    Ok(r)
}

impl Reading {
    /// The counters the budget uses, from the cgroup's memory.stat (a key the kernel does not
    /// print stays None).
    pub fn set_stat(&mut self, st: &crate::model::KeyValues) {
        self.refault_anon = st.get("workingset_refault_anon");
        self.refault_file = st.get("workingset_refault_file");
        self.pgscan = st.get("pgscan");
        self.pgsteal = st.get("pgsteal");
        self.major_faults = st.get("pgmajfault");
    }
}

/// What the v1 budget counts as the workload reading back what a step took away, in bytes,
/// between two readings: the refaults (memory.stat workingset_refault_anon + _file, pages)
/// where the kernel prints them; else the major faults (pgmajfault: a fault that had to read
/// its page from swap or disk; one page each, fault-around aside). 5.10's v1 memory.stat has
/// no workingset_* keys at all (memcg1_stats), so without this the probe saw no pressure and,
/// with swap, took the hot anon too (the 5.10-v1 guest went to 0.9 MiB of 40 MiB hot anon).
pub fn read_back(prev: &Reading, now: &Reading, page: u64) -> Option<ReadBack> {
    if let Some(p) = sum(
        delta(prev.refault_anon, now.refault_anon),
        delta(prev.refault_file, now.refault_file),
    ) {
        return Some(ReadBack {
            bytes: p * page,
            from: "refaults",
        });
    }
    delta(prev.major_faults, now.major_faults).map(|n| ReadBack {
        bytes: n * page,
        from: "major faults",
    })
}

/// Bytes read back in a window, and the counter they come from (see [`read_back`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadBack {
    pub bytes: u64,
    pub from: &'static str,
}

/// v1: whether a step window is over the budget, and why. `psi_some` is the host's PSI some
/// in the window and `baseline` its level before the probe (percent); the rise counts only
/// in a window where this cgroup read something back, since every other cgroup on the host
/// moves it too.
pub fn v1_over_budget(
    o: &ProbeOptions,
    amount: u64,
    psi_some: f64,
    baseline: f64,
    back: Option<ReadBack>,
) -> Option<String> {
    let b = back?;
    if b.bytes == 0 {
        return None;
    }
    if psi_some - baseline > o.max_psi {
        return Some(format!(
            "pressure over budget: the host's some {psi_some:.2}% ({baseline:.2}% before the probe) rose more than {}% while the cgroup read back {} ({})",
            o.max_psi,
            crate::render::bytes(Some(b.bytes)),
            b.from
        ));
    }
    if b.bytes as f64 > o.max_refault * amount as f64 {
        return Some(format!(
            "{} over budget: {} read back after a step of {}",
            b.from,
            crate::render::bytes(Some(b.bytes)),
            crate::render::bytes(Some(amount))
        ));
    }
    None
}

/// How one step changes the cgroup.
pub enum Lever {
    /// v2 memory.reclaim; `args` is appended to every amount (`swappiness=0`), or empty.
    Reclaim {
        file: crate::cgroup::reclaim::ReclaimFile,
        args: String,
    },
    /// v1 (or v2) limit of a cgroup memlens created, put back to `restore` at the end.
    Limit {
        file: crate::cgroup::owned::LimitFile,
        restore: Option<u64>,
    },
}

impl Lever {
    fn file(&self) -> String {
        match self {
            Lever::Reclaim { file, .. } => file.path().display().to_string(),
            Lever::Limit { file, .. } => file.path().display().to_string(),
        }
    }

    /// The exact text a step of `amount` bytes writes, with memory.current at `usage`.
    fn value(&self, usage: u64, amount: u64) -> String {
        match self {
            Lever::Reclaim { args, .. } if args.is_empty() => amount.to_string(),
            Lever::Reclaim { args, .. } => format!("{amount} {args}"),
            Lever::Limit { .. } => page_floor(usage.saturating_sub(amount)).to_string(),
        }
    }

    fn write(&mut self, value: &str) -> io::Result<()> {
        match self {
            Lever::Reclaim { file, .. } => file.write(value),
            Lever::Limit { file, .. } => match value.parse::<u64>() {
                Ok(v) => file.set(Some(v)),
                Err(_) => Err(io::Error::from(io::ErrorKind::InvalidInput)),
            },
        }
    }

    fn restore(&mut self) -> Option<String> {
        match self {
            Lever::Reclaim { .. } => None,
            Lever::Limit { file, restore } => {
                let v = restore.map_or("unlimited".to_string(), |b| b.to_string());
                Some(match file.set(*restore) {
                    Ok(()) => format!("limit put back to {v} ({})", file.path().display()),
                    Err(e) => format!(
                        "could not put the limit back to {v} ({}): {e}",
                        file.path().display()
                    ),
                })
            }
        }
    }
}

fn page_floor(b: u64) -> u64 {
    let p = page_size();
    b / p * p
}

/// One step and what followed it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub n: u32,
    /// What was written (exactly) and to which file.
    pub wrote: String,
    pub file: String,
    #[serde(rename = "requested_bytes")]
    pub requested: u64,
    /// The write's answer: "ok", or the kernel's error (EAGAIN/EBUSY: took less).
    pub result: String,
    #[serde(rename = "usage_before_bytes")]
    pub usage_before: Option<u64>,
    /// memory.current after the settle window (refaults already back in).
    #[serde(rename = "usage_after_bytes")]
    pub usage_after: Option<u64>,
    /// pgsteal gained (v2): pages the kernel really reclaimed, in bytes.
    #[serde(rename = "stolen_bytes")]
    pub stolen: Option<u64>,
    #[serde(rename = "scanned_bytes")]
    pub scanned: Option<u64>,
    /// Refaults (anon + file) in the window, in bytes.
    #[serde(rename = "refault_bytes")]
    pub refaults: Option<u64>,
    /// memory.stat pgmajfault gained in the window (a count): what the v1 budget uses where
    /// the kernel has no refault counters (see [`read_back`]).
    pub major_faults: Option<u64>,
    /// Share of the window some task stalled (from the some total), percent.
    pub psi_some_percent: Option<f64>,
    pub psi_some_avg10: Option<f32>,
    pub seconds: f64,
}

/// What the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub cgroup: String,
    pub version: Version,
    pub dry_run: bool,
    /// What it writes, in words (printed before the first write).
    pub plan: String,
    /// The forms of the write the kernel was asked about, and its answers (v2). In JSON
    /// objects `{"form", "accepted"}` (one type per field, docs/schema).
    #[serde(serialize_with = "forms_as_objects")]
    pub forms: Vec<(String, Option<bool>)>,
    /// Where pressure comes from, and the budget.
    pub pressure_source: String,
    pub max_psi_percent: f64,
    /// Host PSI before the first step (v1: the budget is on the rise over it).
    pub psi_baseline_percent: Option<f64>,
    pub swap_possible: bool,
    pub steps: Vec<Step>,
    /// Why it stopped.
    pub stopped: String,
    #[serde(rename = "start_bytes")]
    pub start: Option<u64>,
    /// The hot set: the lowest memory.current the workload kept without going over budget
    /// (or what it grew back to).
    #[serde(rename = "hot_bytes")]
    pub hot: Option<u64>,
    /// Taken without pressure: start − hot.
    #[serde(rename = "cold_bytes")]
    pub cold: Option<u64>,
    #[serde(rename = "not_reclaimable_bytes")]
    pub not_reclaimable: Option<u64>,
    /// Refaults over the whole probe, bytes per second.
    pub refault_bytes_per_second: Option<f64>,
    #[serde(rename = "recommended_limit_bytes")]
    pub recommended: Option<u64>,
    pub formula: String,
    /// Put back at the end (v1 limit).
    pub restored: Option<String>,
    pub problems: Vec<String>,
}

fn forms_as_objects<S: serde::Serializer>(
    forms: &[(String, Option<bool>)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(forms.len()))?;
    for (form, accepted) in forms {
        seq.serialize_element(&serde_json::json!({"form": form, "accepted": accepted}))?;
    }
    seq.end()
}

impl ProbeReport {
    /// A report with nothing in it yet.
    pub fn empty() -> Self {
        ProbeReport {
            cgroup: String::new(),
            version: Version::V2,
            dry_run: false,
            plan: String::new(),
            forms: Vec::new(),
            pressure_source: String::new(),
            max_psi_percent: 0.0,
            psi_baseline_percent: None,
            swap_possible: false,
            steps: Vec::new(),
            stopped: String::new(),
            start: None,
            hot: None,
            cold: None,
            not_reclaimable: None,
            refault_bytes_per_second: None,
            recommended: None,
            formula: String::new(),
            restored: None,
            problems: Vec::new(),
        }
    }
}

fn delta(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(b?.saturating_sub(a?))
}

fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

fn psi_percent(a: &Reading, b: &Reading, window: Duration) -> Option<f64> {
    let d = delta(a.psi_some_total_usec, b.psi_some_total_usec)?;
    Some(d as f64 / (window.as_micros().max(1) as f64) * 100.0)
}

/// Whether anon could go anywhere: swap on the host (/proc/meminfo SwapTotal) and, on v2, a
/// memory.swap.max that is not 0.
pub fn swap_possible(root: &Root, h: &Hierarchy, path: &str) -> bool {
    let host = crate::proc::read_host(root);
    let total = host
        .meminfo
        .as_ref()
        .and_then(|m| m.get("SwapTotal"))
        .unwrap_or(0);
    if total == 0 {
        return false;
    }
    match read::read_cgroup(root, h, path, Level::Sample) {
        Ok(c) => !matches!(c.limits.swap_max, Some(crate::model::Limit::Bytes(0))),
        Err(_) => false,
    }
}

/// The forms of the memory.reclaim write asked about, and the kernel's answers (None: not
/// asked, under --dry-run).
pub type Forms = Vec<(String, Option<bool>)>;

/// Asks the kernel which forms of memory.reclaim it takes (0-byte requests: nothing is
/// reclaimed), and picks the arguments: the user's `--swappiness`, else `swappiness=0` when
/// anon has nowhere to go (reclaim then scans page cache only), else none.
pub fn choose_args(
    file: &mut crate::cgroup::reclaim::ReclaimFile,
    wanted: Option<&str>,
    swap: bool,
) -> Result<(String, Forms), String> {
    let mut forms = Vec::new();
    let want = match wanted {
        Some(w) => Some(format!("swappiness={w}")),
        None if !swap => Some("swappiness=0".to_string()),
        None => None,
    };
    let mut ask = vec!["swappiness=60".to_string(), "swappiness=max".to_string()];
    if let Some(w) = &want
        && !ask.contains(w)
    {
        ask.insert(0, w.clone());
    }
    for a in ask {
        let ok = file
            .accepts(&a)
            .map_err(|e| format!("{}: {e}", file.path().display()))?;
        forms.push((format!("N {a}"), Some(ok)));
    }
    forms.insert(0, ("N".to_string(), Some(true)));
    let args = match want {
        Some(w)
            if forms
                .iter()
                .any(|(f, ok)| *f == format!("N {w}") && *ok == Some(true)) =>
        {
            w
        }
        Some(w) if wanted.is_some() => {
            return Err(format!(
                "this kernel does not accept `{w}` in memory.reclaim (EINVAL; the argument is in Linux 6.13+ and `max` later): nothing was reclaimed"
            ));
        }
        _ => String::new(),
    };
    Ok((args, forms))
}

/// Runs the probe. `read` takes a [`Reading`]; `stop` says the workload is gone (run --probe);
/// `progress` is told of each step.
#[allow(clippy::too_many_arguments)]
pub fn probe(
    cgroup: &str,
    version: Version,
    mut lever: Lever,
    forms: Vec<(String, Option<bool>)>,
    swap: bool,
    o: &ProbeOptions,
    mut read: impl FnMut() -> Result<Reading, String>,
    stop: impl Fn() -> bool,
    announce: impl FnOnce(&str),
    mut progress: impl FnMut(&Step),
) -> ProbeReport {
    let mut problems = Vec::new();
    let pressure_source = match version {
        Version::V2 => format!(
            "the cgroup's memory.pressure (some), over each {} ms window; budget {}%",
            o.settle.as_millis(),
            o.max_psi
        ),
        Version::V1 => format!(
            "cgroup v1 has no per-cgroup PSI: the cgroup's refaults (memory.stat workingset_refault_anon/_file), budget {:.0}% of each step; and the host's /proc/pressure/memory (some), its rise over the {} ms before the first step, budget {}%, counted only in a window where the cgroup refaulted (the host's PSI moves with every other cgroup)",
            o.max_refault * 100.0,
            o.settle.as_millis(),
            o.max_psi
        ),
    };
    let floor_txt = if swap {
        "swap is possible, so no floor but pressure"
    } else {
        "never below what cannot be reclaimed without swap (anon + shmem + unreclaimable kernel)"
    };
    let mut rep = ProbeReport {
        cgroup: cgroup.to_string(),
        version,
        dry_run: o.dry_run,
        forms,
        pressure_source,
        max_psi_percent: o.max_psi,
        swap_possible: swap,
        ..ProbeReport::empty()
    };
    if !o.dry_run {
        let until = Instant::now() + o.after;
        while Instant::now() < until && !stop() {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
    }
    let first = match read() {
        Ok(r) => r,
        Err(e) => {
            rep.stopped = format!("cannot read the cgroup: {e}");
            return rep;
        }
    };
    if version == Version::V1 && first.refault_anon.is_none() && first.refault_file.is_none() {
        rep.pressure_source.push_str(if first.major_faults.is_some() {
            "; this kernel's memory.stat has no workingset_refault_anon/_file (5.10's v1 has no workingset keys), so its major faults (pgmajfault, one page each) stand in for the refaults"
        } else {
            "; this kernel's memory.stat has neither workingset_refault_anon/_file nor pgmajfault: only the floor stops the probe"
        });
    }
    let step_of = |u: u64| ((u as f64 * o.step) as u64).max(o.min_step) / page_size() * page_size();
    let u0 = first.usage.unwrap_or(0);
    rep.start = first.usage;
    rep.plan = format!(
        "every {} ms write to {}: {} (now {} = {}% of memory.current {}, at least {}); stop when pressure is over budget, when reclaim takes less than {}, after {} steps, or at the floor ({floor_txt}){}",
        o.settle.as_millis(),
        lever.file(),
        match &lever {
            Lever::Reclaim { .. } => "the amount to reclaim".to_string(),
            Lever::Limit { .. } => "a limit one step below memory usage".to_string(),
        },
        format_args!("`{}`", lever.value(u0, step_of(u0))),
        o.step * 100.0,
        crate::render::bytes(first.usage),
        crate::render::bytes(Some(o.min_step)),
        crate::render::bytes(Some(o.min_step / 2)),
        o.max_steps,
        match &lever {
            Lever::Limit { restore, .. } => format!(
                "; then put the limit back to {}",
                restore.map_or("unlimited".into(), |b| b.to_string())
            ),
            Lever::Reclaim { .. } => "; the limits are not touched".into(),
        }
    );
    announce(&rep.plan);
    if o.dry_run {
        rep.stopped = "dry run: nothing was written".into();
        rep.not_reclaimable = first.not_reclaimable;
        return rep;
    }
    let started = Instant::now();
    // The pressure before the first step (v1: the host's, which other work moves).
    std::thread::sleep(o.settle);
    let mut prev = match read() {
        Ok(r) => r,
        Err(e) => {
            rep.stopped = format!("cannot read the cgroup: {e}");
            return rep;
        }
    };
    rep.psi_baseline_percent = psi_percent(&first, &prev, started.elapsed());
    let baseline = match version {
        Version::V1 => rep.psi_baseline_percent.unwrap_or(0.0),
        Version::V2 => 0.0,
    };
    let origin = prev.clone();
    let origin_at = Instant::now();
    let mut lowest_ok = prev.usage;
    let page = page_size();
    for n in 1..=o.max_steps {
        if stop() {
            rep.stopped = "the command ended".into();
            break;
        }
        let Some(usage) = prev.usage else {
            rep.stopped = "memory usage is unavailable".into();
            break;
        };
        let floor = if swap {
            0
        } else {
            prev.not_reclaimable.unwrap_or(usage)
                + match version {
                    // A v1 limit at the floor OOM-kills at the next allocation: keep a step.
                    Version::V1 => o.min_step.max(4 * MIB),
                    Version::V2 => 0,
                }
        };
        let room = usage.saturating_sub(floor);
        let amount = step_of(usage).min(room);
        if amount < o.min_step {
            rep.stopped = format!(
                "reached the floor: {} left above what cannot be reclaimed without swap",
                crate::render::bytes(Some(room))
            );
            break;
        }
        let value = lever.value(usage, amount);
        let t0 = Instant::now();
        let res = lever.write(&value);
        let left = o.settle.saturating_sub(t0.elapsed());
        std::thread::sleep(left);
        let window = t0.elapsed();
        let now = match read() {
            Ok(r) => r,
            Err(e) => {
                rep.stopped = format!("cannot read the cgroup: {e}");
                break;
            }
        };
        let refaults = sum(
            delta(prev.refault_anon, now.refault_anon),
            delta(prev.refault_file, now.refault_file),
        )
        .map(|p| p * page);
        let back = read_back(&prev, &now, page);
        let step = Step {
            n,
            wrote: value,
            file: lever.file(),
            requested: amount,
            result: match &res {
                Ok(()) => "ok".into(),
                Err(e) => e.to_string(),
            },
            usage_before: prev.usage,
            usage_after: now.usage,
            stolen: delta(prev.pgsteal, now.pgsteal).map(|p| p * page),
            scanned: delta(prev.pgscan, now.pgscan).map(|p| p * page),
            refaults,
            major_faults: delta(prev.major_faults, now.major_faults),
            psi_some_percent: psi_percent(&prev, &now, window),
            psi_some_avg10: now.psi_some_avg10,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress(&step);
        let psi = step.psi_some_percent.unwrap_or(0.0);
        let over = match version {
            Version::V2 => (psi > o.max_psi
                || now.psi_some_avg10.is_some_and(|a| f64::from(a) > o.max_psi))
            .then(|| format!("pressure over budget: some {psi:.2}% > {}%", o.max_psi)),
            Version::V1 => v1_over_budget(o, amount, psi, baseline, back),
        };
        let took = match (step.stolen, prev.usage, now.usage) {
            (Some(s), _, _) => s,
            (None, Some(a), Some(b)) => a.saturating_sub(b),
            _ => 0,
        };
        let hard_error = match &res {
            Err(e) => !matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EBUSY)),
            Ok(()) => false,
        };
        rep.steps.push(step);
        if hard_error {
            if let Err(e) = res {
                rep.stopped = format!("the write failed: {e}");
                problems.push(format!("{}: {e}", lever.file()));
            }
            prev = now;
            break;
        }
        if let Some(why) = over {
            // The workload felt this step: what it holds now (refaults back in) and the level
            // before are both at least its hot set.
            lowest_ok = match (lowest_ok, now.usage) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            rep.stopped = why;
            prev = now;
            break;
        }
        lowest_ok = match (lowest_ok, now.usage) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let partial = res.is_err();
        prev = now;
        if took < o.min_step / 2 {
            rep.stopped = format!(
                "reclaim took nothing more ({} in the last step{})",
                crate::render::bytes(Some(took)),
                if partial { ", the kernel said so" } else { "" }
            );
            break;
        }
        if n == o.max_steps {
            rep.stopped = format!("{} steps done (--max-steps)", o.max_steps);
        }
    }
    rep.restored = lever.restore();
    let secs = origin_at.elapsed().as_secs_f64();
    let total_refaults = sum(
        delta(origin.refault_anon, prev.refault_anon),
        delta(origin.refault_file, prev.refault_file),
    );
    rep.refault_bytes_per_second = total_refaults.map(|p| (p * page) as f64 / secs.max(0.001));
    rep.not_reclaimable = prev.not_reclaimable;
    rep.hot = lowest_ok;
    rep.cold = match (rep.start, rep.hot) {
        (Some(s), Some(h)) => Some(s.saturating_sub(h)),
        _ => None,
    };
    let need = match (rep.hot, if swap { None } else { rep.not_reclaimable }) {
        (Some(h), Some(n)) => Some(h.max(n)),
        (h, n) => h.or(n),
    };
    rep.recommended = need.map(|n| {
        { ((n as f64 * (1.0 + o.margin)).ceil() as u64).div_ceil(MIB) * MIB }
            .max(crate::units::MIN_LIMIT)
    });
    rep.formula = format!(
        "hot set (the lowest memory.current kept within the budget){} × {:.2}, rounded up to MiB",
        if swap {
            ""
        } else {
            ", at least what cannot be reclaimed,"
        },
        1.0 + o.margin
    );
    rep.problems = problems;
    rep
}

/// `memlens probe TARGET` on the live system: v2 only (v1: says why and what to use).
pub fn probe_target(
    root: &Root,
    h: &Hierarchy,
    path: &str,
    o: &ProbeOptions,
    announce: impl FnOnce(&str),
    progress: impl FnMut(&Step),
) -> Result<ProbeReport, (i32, String)> {
    if h.version == Version::V1 {
        return Err((
            2,
            format!(
                "{path}: cgroup v1 has no memory.reclaim, and the only other lever is lowering memory.limit_in_bytes, which can OOM-kill; memlens does that only in a cgroup it created itself and removes afterwards: run the workload under `memlens run --probe -- COMMAND`"
            ),
        ));
    }
    if path.trim_matches('/').is_empty() {
        return Err((
            2,
            "refusing to probe the root cgroup: name one cgroup".into(),
        ));
    }
    let swap = swap_possible(root, h, path);
    let mut file =
        crate::cgroup::reclaim::ReclaimFile::open(root, h, path).map_err(|e| (1, e.to_string()))?;
    let (args, forms) = if o.dry_run {
        // Nothing is written, not even the 0-byte form checks: the plan names the form it
        // would try first.
        let args = match (&o.swappiness, swap) {
            (Some(w), _) => format!("swappiness={w}"),
            (None, false) => "swappiness=0".into(),
            (None, true) => String::new(),
        };
        let mut forms = vec![("N".to_string(), None)];
        if !args.is_empty() {
            forms.push((format!("N {args}"), None));
        }
        (args, forms)
    } else {
        choose_args(&mut file, o.swappiness.as_deref(), swap).map_err(|e| (1, e))?
    };
    let asks = !args.is_empty();
    let mut rep = probe(
        path,
        h.version,
        Lever::Reclaim { file, args },
        forms,
        swap,
        o,
        || reading(root, h, path),
        || false,
        announce,
        progress,
    );
    if o.dry_run && asks {
        rep.plan.push_str(
            "; before the first step it asks the kernel whether it takes the swappiness= argument by writing `0 swappiness=...` (0 bytes: nothing is reclaimed) and, if not, writes the plain amount",
        );
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_510: &str = include_str!("../tests/fixtures/kernel/v1-5.10-debian-guest/memory.stat");
    const V1_618: &str = include_str!("../tests/fixtures/kernel/v1-6.18-this-host/memory.stat");
    const PAGE: u64 = 4096;

    fn reading_of(text: &str) -> Reading {
        let (kv, problems) = crate::cgroup::parse::flat_keyed(text);
        assert!(problems.is_empty(), "{problems:?}");
        let mut r = Reading::default();
        r.set_stat(&kv);
        r
    }

    /// The same memory.stat with `key` (a line of its own) raised by `by`.
    fn raised(text: &str, key: &str, by: u64) -> String {
        text.lines()
            .map(|l| match l.split_once(' ') {
                Some((k, v)) if k == key => format!("{k} {}\n", v.parse::<u64>().unwrap() + by),
                _ => format!("{l}\n"),
            })
            .collect()
    }

    /// 5.10's v1 memory.stat (the guest's, exact) has no refault counters: the hot anon that
    /// a step swapped out and the workload faulted back in shows as major faults, and they
    /// stop the probe. Before, nothing stopped it and it took the hot set down to 0.9 MiB.
    #[test]
    fn on_5_10_v1_major_faults_stand_in_for_the_missing_refaults() {
        let before = reading_of(V1_510);
        assert_eq!((before.refault_anon, before.refault_file), (None, None));
        assert_eq!(before.major_faults, Some(0));
        // A 1 MiB step; the workload read 8 MiB back from swap (2,000 faults).
        let after = reading_of(&raised(V1_510, "pgmajfault", 2000));
        let back = read_back(&before, &after, PAGE);
        assert_eq!(
            back,
            Some(ReadBack {
                bytes: 2000 * PAGE,
                from: "major faults"
            })
        );
        let o = ProbeOptions::default();
        // The host's PSI flat: the read-back alone is over 10% of the step.
        let why = v1_over_budget(&o, MIB, 0.0, 0.0, back).expect("over budget");
        assert!(why.starts_with("major faults over budget"), "{why}");
        // The host's PSI up with it: pressure.
        let why = v1_over_budget(&o, 25 * MIB, 58.2, 0.0, back).expect("over budget");
        assert!(why.starts_with("pressure over budget"), "{why}");
        // Nothing read back: the host's PSI alone (other cgroups) does not stop it.
        let none = read_back(&before, &before, PAGE);
        assert_eq!(none.map(|b| b.bytes), Some(0));
        assert_eq!(v1_over_budget(&o, MIB, 58.2, 0.0, none), None);
        // A few faults within 10% of a large step: within budget.
        let few = reading_of(&raised(V1_510, "pgmajfault", 10));
        assert_eq!(
            v1_over_budget(&o, 25 * MIB, 0.0, 0.0, read_back(&before, &few, PAGE)),
            None
        );
    }

    /// Where v1 memory.stat has the refault counters (6.18), they are the budget's measure,
    /// not the major faults.
    #[test]
    fn where_v1_has_refault_counters_they_are_what_counts() {
        let before = reading_of(V1_618);
        assert_eq!(before.refault_file, Some(656));
        let after = reading_of(&raised(
            &raised(V1_618, "pgmajfault", 2000),
            "workingset_refault_anon",
            3,
        ));
        assert_eq!(
            read_back(&before, &after, PAGE),
            Some(ReadBack {
                bytes: 3 * PAGE,
                from: "refaults"
            })
        );
        let o = ProbeOptions::default();
        assert_eq!(
            v1_over_budget(&o, MIB, 0.0, 0.0, read_back(&before, &after, PAGE)),
            None
        );
    }
}
