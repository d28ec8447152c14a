//! The forecast rule: when the recorded growth of what cannot be reclaimed reaches the
//! limit. Takes the [`Forecast`] computed from the store (rules never read it themselves).

use super::{Evidence, Finding, Severity};
use crate::report::Report;
use crate::trend::Forecast;

/// "At this rate the limit is reached in about 2 h 10 min", only when the fit is trusted
/// (see [`crate::trend::forecast`]); `None` otherwise, so a sawtooth says nothing.
pub fn oom_forecast(_r: &Report, f: Option<&Forecast>) -> Option<Finding> {
    let f = f?;
    let severity = if f.seconds < 3600.0 {
        Severity::Critical
    } else {
        Severity::Warn
    };
    Some(Finding {
        id: "oom-forecast",
        severity,
        title: format!(
            "at the recorded rate ({:+.1} MiB/min) the limit is reached in about {} (around {})",
            f.bytes_per_second * 60.0 / 1_048_576.0,
            human_duration(f.seconds),
            f.at
        ),
        evidence: vec![
            Evidence::size(
                "not reclaimable now",
                Some(f.not_reclaimable_bytes),
                "anon + shmem + unreclaimable kernel (memlens record store)",
            ),
            Evidence::size(
                "effective limit",
                Some(f.limit_bytes),
                "the smallest limit on the path",
            ),
            Evidence::value(
                "growth",
                format!("{:.0} B/s", f.bytes_per_second),
                f.method.clone(),
            ),
        ],
        meaning: "What cannot be reclaimed has grown along a straight line; page cache does not \
                  count (it is reclaimed before an OOM kill). When it meets the limit the kernel \
                  kills a process of this cgroup."
            .into(),
        advice: "Find what grows (memlens history, memlens ps --sort anon) before the limit is \
                 reached; raise the limit only if the growth is expected to stop."
            .into(),
    })
}

/// `2 h 10 min`, `5 min 3 s`, `42 s`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}
