//! `memlens run --find-limit`: the smallest limit under which a repeatable command still
//! exits the same way and within `--slowdown` of its unlimited wall time. Bisection between
//! the unlimited run's non-reclaimable peak (below it the kernel can only OOM-kill) and its
//! usage peak (it fitted there), each trial a whole [`crate::run::run`] in a fresh memcg.

use crate::run::{Outcome, RunOptions, RunResult, SetupError};
use serde::Serialize;

const MIB: u64 = 1 << 20;
/// Wall-time grace added to the slowdown budget: a short command's time varies by more
/// than 10% from scheduling alone on a shared machine.
const GRACE_SECONDS: f64 = 0.25;

/// One run and what it says.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// None: the unlimited run.
    #[serde(rename = "limit_bytes")]
    pub limit: Option<u64>,
    pub outcome: String,
    pub exit_code: Option<i32>,
    pub wall_seconds: f64,
    #[serde(rename = "usage_peak_bytes")]
    pub usage_peak: Option<u64>,
    #[serde(rename = "not_reclaimable_peak_bytes")]
    pub not_reclaimable_peak: Option<u64>,
    pub psi_some_usec: Option<u64>,
    /// Whether it passed: same exit, no OOM kill, within the slowdown.
    pub ok: bool,
    /// Why not, when it did not pass.
    pub why: Option<String>,
}

/// The result of `run --find-limit`.
#[derive(Debug, Clone, Serialize)]
pub struct FindLimit {
    pub command: Vec<String>,
    pub slowdown: f64,
    /// The smallest limit that passed (None: none below the usage peak did).
    #[serde(rename = "limit_bytes")]
    pub limit: Option<u64>,
    /// The bisection's bounds: the non-reclaimable and the usage peak of the unlimited run.
    #[serde(rename = "lower_bound_bytes")]
    pub lower: u64,
    #[serde(rename = "upper_bound_bytes")]
    pub upper: u64,
    pub trials: Vec<Trial>,
    pub method: String,
}

fn trial(limit: Option<u64>, r: &RunResult, base: Option<&RunResult>, slowdown: f64) -> Trial {
    let why = base.and_then(|b| {
        if r.outcome == Outcome::OomKilled {
            Some("OOM-killed".to_string())
        } else if r.outcome != b.outcome || r.exit_code != b.exit_code {
            Some(format!(
                "ended differently ({} {:?}, unlimited {} {:?})",
                r.outcome.as_str(),
                r.exit_code,
                b.outcome.as_str(),
                b.exit_code
            ))
        } else if r.wall_seconds > b.wall_seconds * (1.0 + slowdown) + GRACE_SECONDS {
            Some(format!(
                "{:.2} s, more than {:.0}% over the unlimited {:.2} s",
                r.wall_seconds,
                slowdown * 100.0,
                b.wall_seconds
            ))
        } else {
            None
        }
    });
    Trial {
        limit,
        outcome: r.outcome.as_str().into(),
        exit_code: r.exit_code,
        wall_seconds: r.wall_seconds,
        usage_peak: r.peak("usage").and_then(|p| p.bytes),
        not_reclaimable_peak: r.peak("not_reclaimable").and_then(|p| p.bytes),
        psi_some_usec: r.psi_some_usec,
        ok: why.is_none(),
        why,
    }
}

/// Runs the bisection. `progress` is told of each trial as it ends (stderr in the CLI).
pub fn find_limit(
    opts: &RunOptions,
    slowdown: f64,
    mut progress: impl FnMut(&Trial),
) -> Result<FindLimit, SetupError> {
    let base_opts = RunOptions {
        limit: None,
        ..opts.clone()
    };
    let base = crate::run::run(&base_opts)?;
    let t0 = trial(None, &base, None, slowdown);
    progress(&t0);
    let mut trials = vec![t0];
    let round = |b: u64| b.div_ceil(MIB) * MIB;
    let nr = base
        .peak("not_reclaimable")
        .and_then(|p| p.bytes)
        .unwrap_or(0);
    let up = base.peak("usage").and_then(|p| p.bytes).unwrap_or(0);
    // The kernel refuses limits below a few MiB (units::parse_limit's floor).
    let mut lo = round(nr).max(6 * MIB);
    let mut hi = round(up).max(lo + MIB);
    let (lower, upper) = (lo, hi);
    let mut best = None;
    // Stop within 1 MiB or 2% of the bound, whichever is larger.
    while hi - lo > MIB.max(hi / 50) {
        let mid = round(lo + (hi - lo) / 2);
        if mid >= hi {
            break;
        }
        let r = crate::run::run(&RunOptions {
            limit: Some(mid),
            ..opts.clone()
        })?;
        let t = trial(Some(mid), &r, Some(&base), slowdown);
        progress(&t);
        if t.ok {
            hi = mid;
            best = Some(mid);
        } else {
            lo = mid;
        }
        trials.push(t);
    }
    Ok(FindLimit {
        command: opts.command.clone(),
        slowdown,
        limit: best.or(Some(hi).filter(|_| upper == hi)),
        lower,
        upper,
        trials,
        method: format!(
            "bisection between the unlimited run's non-reclaimable peak and its usage peak (rounded to MiB); a trial passes when it exits the same way, is not OOM-killed and its wall time is within {:.0}% (+{GRACE_SECONDS} s) of the unlimited run; stops within max(1 MiB, 2%)",
            slowdown * 100.0
        ),
    })
}
