//! The one grammar for durations and sizes on the command line (every flag uses these).
//!
//! Hand-written: `humantime` rejects decimals (`0.5s`), which the flags accepted before, and
//! no crate takes sizes with both docker's and kubectl's suffixes.

use std::time::Duration;

/// The duration grammar, for error messages and `--help`.
pub const DURATION_HELP: &str = "a number with a unit: ms, s, m or h (500ms, 5s, 1.5m, 1m30s)";

/// Parses a duration: one or more `NUMBER UNIT` parts (`500ms`, `5s`, `1.5m`, `1m30s`,
/// `2h`). A unit is required: a bare `10` is refused, since `run --interval 10` meant 10 ms
/// and `zombies --sample 10` 10 s before the flags shared this parser.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("empty duration (use {DURATION_HELP})"));
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("bad duration {s:?} (use {DURATION_HELP})"))?;
        let secs = match unit.trim() {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "{s:?}: a unit is required (e.g. {t}s or {t}ms; {DURATION_HELP})"
                ));
            }
            u => return Err(format!("{s:?}: unknown unit {u:?} (use {DURATION_HELP})")),
        };
        total += n * secs;
        rest = next;
    }
    if !total.is_finite() || total <= 0.0 {
        return Err(format!("{s:?}: the duration must be more than 0"));
    }
    if total > 7.0 * 86400.0 {
        return Err(format!("{s:?}: longer than a week"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// A [`parse_duration`] checked against `[min, max]`.
pub fn duration_between(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < min || d > max {
        return Err(format!(
            "{s:?}: must be between {} and {}",
            show_duration(min),
            show_duration(max)
        ));
    }
    Ok(d)
}

/// A duration as a user would type it (`50ms`, `1s`, `1h`).
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 || !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// The size grammar, for error messages and `--help`.
pub const SIZE_HELP: &str = "bytes, or a number (decimals allowed) with K, M, G, T (×1024, as docker), Ki, Mi, Gi, Ti (×1024, as kubectl) or KB, MB, GB, TB (×1000): 512M, 1.5G, 512Mi, 1Gi";

/// Parses a size: `4096`, `512K`, `64M`, `1.5G`, `512Mi`, `1Gi`, `2GB`. K/M/G (and k/m/g)
/// are binary as in docker's `--memory`; Ki/Mi/Gi are binary as in Kubernetes; KB/MB/GB are
/// decimal. (Kubernetes reads a bare `G` as 10^9: memlens follows docker there, and says so
/// in --help.)
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let mult: f64 = match suffix.trim() {
        "" | "B" | "b" => 1.0,
        "K" | "k" | "Ki" | "KiB" => 1024.0,
        "M" | "m" | "Mi" | "MiB" => 1024f64.powi(2),
        "G" | "g" | "Gi" | "GiB" => 1024f64.powi(3),
        "T" | "t" | "Ti" | "TiB" => 1024f64.powi(4),
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        u => return Err(format!("{s:?}: unknown size unit {u:?} (use {SIZE_HELP})")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?} (use {SIZE_HELP})"))?;
    let v = (n * mult).round();
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(v as u64)
}

/// The smallest memory limit `run --limit` accepts. Below a few MiB a process is OOM-killed
/// while it starts (the dynamic loader and libc alone touch that much); docker refuses
/// `--memory` below 6 MiB for the same reason (daemon/daemon_unix.go linuxMinMemory).
pub const MIN_LIMIT: u64 = 6 << 20;

/// A size for a memory limit: [`parse_size`], at least [`MIN_LIMIT`].
pub fn parse_limit(s: &str) -> Result<u64, String> {
    let v = parse_size(s)?;
    if v < MIN_LIMIT {
        return Err(format!(
            "{s:?} is below the 6 MiB minimum: the command would be OOM-killed while it starts (docker refuses less than 6 MiB too)"
        ));
    }
    Ok(v)
}

/// An RFC 3339 UTC time for `ms` since the epoch (millisecond precision): how `history`, the
/// store's messages and the TUI print a recorded moment.
pub fn format_time(ms: i64) -> String {
    let us = (ms.max(0) as u64).saturating_mul(1000);
    let s = crate::kmsg::log::wall_time(us, 0);
    // "…:SS.uuuuuuZ" → "…:SS.mmmZ"
    match s.len().checked_sub(4) {
        Some(cut) => format!("{}Z", &s[..cut]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units_and_mean_the_same_everywhere() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(
            parse_duration("10")
                .unwrap_err()
                .contains("unit is required")
        );
        assert!(parse_duration("500").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("").is_err());
        assert!(
            duration_between("10ms", Duration::from_millis(50), Duration::from_secs(3600)).is_err()
        );
    }

    #[test]
    fn sizes_take_decimals_and_iec_and_si_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("512Mi"), Ok(512 << 20));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert!(parse_size("x").is_err());
        assert!(parse_size("1Q").is_err());
        assert!(parse_limit("1M").unwrap_err().contains("6 MiB"));
        assert_eq!(parse_limit("6M"), Ok(6 << 20));
    }
}
