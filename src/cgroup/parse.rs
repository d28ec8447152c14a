//! Parsers for the formats of the memory controller's files.
//!
//! Hand-written because no crate keeps unknown `memory.stat` keys and tells "unlimited" from
//! a number on both versions; the formats are those of Documentation/admin-guide/cgroup-v2.rst
//! ("Format" under "Interface Files") and cgroup-v1/memory.rst section 5.

use crate::model::{KeyValues, Limit};

/// v1 prints "no limit" as the page counter's maximum times the page size
/// (9223372036854771712 with 4 KiB pages, 9223372036854710272 with 64 KiB pages). No real
/// limit comes near 2^62 bytes (kubelet uses the same threshold), so anything above is
/// unlimited whatever the page size.
const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// Parses one number file (`memory.current`, `memory.usage_in_bytes`, ...).
pub fn number(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty file".into());
    }
    t.parse::<u64>()
        .map_err(|_| format!("expected a number, found {:?}", truncate(t)))
}

/// Parses a limit file: `max` (v2), a v1 "unlimited" value, or bytes.
pub fn limit(text: &str) -> Result<Limit, String> {
    let t = text.trim();
    if t == "max" {
        return Ok(Limit::Unlimited);
    }
    // v1 soft limits and some kernels print -1 for "unset".
    if t == "-1" {
        return Ok(Limit::Unlimited);
    }
    let n = number(t)?;
    Ok(if n >= V1_UNLIMITED_FLOOR {
        Limit::Unlimited
    } else {
        Limit::Bytes(n)
    })
}

/// Parses a flat keyed file (`key value` per line). Bad lines are reported with their
/// line number and skipped, so one garbled line does not lose the rest of the file.
pub fn flat_keyed(text: &str) -> (KeyValues, Vec<String>) {
    let mut kv = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(k), Some(v), None) => match v.parse::<u64>() {
                Ok(n) => kv.push((k.to_string(), n)),
                // Negative values occur in some kernels' per-CPU-batched stats; keep them
                // visible as a problem rather than as a huge unsigned number.
                Err(_) => bad.push(format!(
                    "line {}: {:?} is not a count",
                    i + 1,
                    truncate(line)
                )),
            },
            _ => bad.push(format!(
                "line {}: expected \"key value\", found {:?}",
                i + 1,
                truncate(line)
            )),
        }
    }
    (KeyValues(kv), bad)
}

/// Parses a `cgroup.procs` file.
pub fn pids(text: &str) -> Result<Vec<i32>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse::<i32>()
                .map_err(|_| format!("{:?} is not a PID", truncate(l)))
        })
        .collect()
}

/// Parses a PSI file (`some avg10=.. avg60=.. avg300=.. total=..` and `full ...`).
pub fn pressure(text: &str) -> Result<crate::model::Pressure, String> {
    use procfs_core::FromBufRead;
    let p =
        procfs_core::MemoryPressure::from_buf_read(text.as_bytes()).map_err(|e| e.to_string())?;
    let conv = |r: procfs_core::PressureRecord| crate::model::PressureLine {
        avg10: r.avg10,
        avg60: r.avg60,
        avg300: r.avg300,
        total_usec: r.total,
    };
    Ok(crate::model::Pressure {
        some: conv(p.some),
        full: conv(p.full),
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The memory controller's `num_cgroups` from `/proc/cgroups` (columns: subsys_name,
/// hierarchy, num_cgroups, enabled). On v1 it counts every memory cgroup the kernel still
/// holds, live or dying (kernel/cgroup/cgroup-v1.c proc_cgroupstats_show).
pub fn proc_cgroups_memory(text: &str) -> Result<u64, String> {
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"memory") {
            return f
                .get(2)
                .ok_or_else(|| {
                    format!(
                        "memory line has no num_cgroups column: {:?}",
                        truncate(line)
                    )
                })?
                .parse::<u64>()
                .map_err(|_| format!("num_cgroups is not a number: {:?}", truncate(line)));
        }
    }
    Err("no memory line (memory controller not compiled in)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn limits() {
        assert_eq!(limit("max\n"), Ok(Limit::Unlimited));
        assert_eq!(limit("9223372036854771712\n"), Ok(Limit::Unlimited));
        assert_eq!(limit("9223372036854710272\n"), Ok(Limit::Unlimited));
        assert_eq!(limit("134217728\n"), Ok(Limit::Bytes(134217728)));
        assert!(limit("").is_err());
        assert!(limit("12ab").is_err());
    }

    #[test]
    fn flat_keyed_keeps_unknown_keys_and_reports_bad_lines() {
        let (kv, bad) =
            flat_keyed("cache 4096\nbrand_new_key 7\ngarbage\nrss 8192 extra\nrss_huge 0\n");
        assert_eq!(kv.get("brand_new_key"), Some(7));
        assert_eq!(kv.get("rss_huge"), Some(0));
        assert_eq!(kv.0.len(), 3);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].starts_with("line 3"));
    }

    #[test]
    fn pressure_lines() {
        let p = pressure("some avg10=1.50 avg60=0.20 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5\n").unwrap();
        assert_eq!(p.some.total_usec, 1234);
        assert_eq!(p.full.total_usec, 5);
        assert!(pressure("some garbage").is_err());
    }

    proptest! {
        #[test]
        fn flat_keyed_never_panics(s in "\\PC*") {
            let (kv, bad) = flat_keyed(&s);
            prop_assert!(kv.0.len() + bad.len() <= s.lines().count());
        }

        #[test]
        fn flat_keyed_roundtrips(pairs in proptest::collection::vec(("[a-z_]{1,20}", any::<u64>()), 0..40)) {
            let text: String = pairs.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
            let (kv, bad) = flat_keyed(&text);
            prop_assert!(bad.is_empty());
            prop_assert_eq!(kv.0, pairs);
        }

        #[test]
        fn limit_never_panics(s in "\\PC*") {
            let _ = limit(&s);
            let _ = pressure(&s);
            let _ = pids(&s);
        }
    }

    #[test]
    fn proc_cgroups_memory_line() {
        let t =
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\nmemory\t4\t13\t1\n";
        assert_eq!(proc_cgroups_memory(t), Ok(13));
        assert!(proc_cgroups_memory("#subsys_name\n").is_err());
    }
}
