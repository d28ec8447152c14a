//! Findings: the report turned into statements a user can act on. Each rule is one small
//! function from a [`Report`] (and, for rates, an earlier sample) to at most one
//! [`Finding`]; rules never read /sys or /proc. A finding always carries its evidence: the
//! figure, its value and the file or formula it came from. When a rule needs a counter the
//! kernel does not provide, it says so in an `info` finding instead of guessing.

mod content;
pub mod forecast;
mod kernel;
pub mod kmem;
mod limits;
mod pressure;
mod qos;
pub mod runtimes;

use crate::render::bytes;
use crate::report::Report;
use crate::views::Figure;
use serde::Serialize;

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; often "this is not a problem".
    Info,
    /// Likely to hurt (stalls, evictions, a limit that does not protect the node).
    Warn,
    /// An OOM kill happened or is close.
    Critical,
}

impl Severity {
    /// `info`, `warn`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Critical => "critical",
        }
    }
}

/// One piece of evidence: what was looked at, its value, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// What the figure is.
    pub what: String,
    /// Its value as shown to a human (`60.0 MiB`, `3`, `12.5%`).
    pub value: String,
    /// The value in bytes when it is a size (for scripts), else `None`.
    #[serde(rename = "value_bytes")]
    pub bytes: Option<u64>,
    /// The value as a number when it is one but not a size (a count, a percentage, a rate,
    /// a setting), for scripts; else `None`.
    #[serde(rename = "value_number")]
    pub number: Option<f64>,
    /// The kernel file or the formula.
    pub source: String,
}

impl Evidence {
    /// A size.
    pub fn size(what: impl Into<String>, b: Option<u64>, source: impl Into<String>) -> Self {
        Evidence {
            what: what.into(),
            value: bytes(b),
            bytes: b,
            number: None,
            source: source.into(),
        }
    }

    /// A size from a [`Figure`] (its source is the figure's).
    pub fn fig(what: impl Into<String>, f: &Figure) -> Self {
        Self::size(what, f.bytes, f.source.clone())
    }

    /// Any other value (a count, a percentage, a setting).
    pub fn value(
        what: impl Into<String>,
        value: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        let value = value.into();
        Evidence {
            what: what.into(),
            number: leading_number(&value),
            value,
            bytes: None,
            source: source.into(),
        }
    }
}

/// The number a value shown to a human starts with (`3`, `12.5%`, `0.25/s`, `2 kills`),
/// when the whole value is that number and a unit word; `None` for prose or several
/// numbers (`processes 1.0 MiB / cgroup 2.0 MiB`).
fn leading_number(v: &str) -> Option<f64> {
    let t = v.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    let n: f64 = t[..end].parse().ok()?;
    let rest = &t[end..];
    // A second number means this is not one value.
    if rest.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(n)
}

/// A finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable identifier (scripts and docs refer to it).
    pub id: &'static str,
    /// info, warn or critical.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// The figures the finding rests on (never empty).
    pub evidence: Vec<Evidence>,
    /// What it means.
    pub meaning: String,
    /// What to do.
    pub advice: String,
}

/// An earlier report of the same cgroup, for rules about rates (`--sample`).
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The report taken first.
    pub earlier: &'a Report,
    /// Seconds between the two reports.
    pub seconds: f64,
}

type Rule = fn(&Report, Option<Sample<'_>>) -> Option<Finding>;

/// Every rule, in the order findings of equal severity are listed.
const RULES: &[Rule] = &[
    limits::oom_killed,
    limits::oom_risk,
    limits::reclaimable_near_limit,
    limits::no_limit,
    limits::limit_hits,
    limits::high_throttling,
    pressure::pressure,
    pressure::thrashing,
    content::shmem_held,
    content::dirty_pages,
    content::kernel_memory,
    content::swap_in_use,
    content::charged_but_empty,
    content::process_sum_mismatch,
    content::rss_above_working_set,
    content::virt_not_rss,
    limits::memory_qos,
    kernel::zswap_in_use,
    kernel::hugetlb_unaccounted,
    kernel::cgroup_v1,
    runtimes::runtime_heap,
    qos::high_livelock,
    qos::protection_breached,
    qos::high_old_kernel,
];

/// The ids of every rule (stable).
pub const IDS: &[&str] = &[
    "oom-killed",
    "oom-risk",
    "reclaimable-near-limit",
    "no-limit",
    "limit-hits",
    "high-throttling",
    "pressure",
    "thrashing",
    "shmem-held",
    "dirty-pages",
    "kernel-memory",
    "swap-in-use",
    "charged-but-empty",
    "process-sum-mismatch",
    "rss-above-working-set",
    "virt-not-rss",
    "memory-qos",
    "zswap-in-use",
    "hugetlb-unaccounted",
    "cgroup-v1",
    "runtime-heap",
    "memory-high-livelock",
    "protection-breached",
    "memory-high-old-kernel",
];

/// Runs every rule on `r`; most severe first. `sample` enables the rate rules (thrashing).
pub fn evaluate(r: &Report, sample: Option<Sample<'_>>) -> Vec<Finding> {
    let mut v: Vec<Finding> = RULES
        .iter()
        .filter_map(|rule| rule(r, sample))
        .filter(|f| !f.evidence.is_empty())
        .collect();
    // Stable sort keeps the rule order within a severity.
    v.sort_by_key(|f| std::cmp::Reverse(f.severity));
    v
}

/// `part / whole` in percent.
pub(crate) fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The usage file's name on this version.
pub(crate) fn usage_file(r: &Report) -> &'static str {
    match r.cgroup.version {
        crate::model::Version::V1 => "memory.usage_in_bytes",
        crate::model::Version::V2 if r.cgroup.usage.current.is_none() && r.cgroup.is_root() => {
            "memory.stat anon + file (the v2 root has no memory.current)"
        }
        crate::model::Version::V2 => "memory.current",
    }
}

/// Evidence of the effective limit.
pub(crate) fn limit_evidence(r: &Report) -> Evidence {
    Evidence::size(
        "effective limit",
        r.derived.limit.bytes,
        r.derived.limit.source.clone(),
    )
}

const MIB: u64 = 1 << 20;
