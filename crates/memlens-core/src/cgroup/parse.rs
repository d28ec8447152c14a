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
    if n >= IMPLAUSIBLE {
        return Err(format!(
            "{n} is implausible for a limit (the kernel's unlimited is below 2^63); unavailable"
        ));
    }
    Ok(if n >= V1_UNLIMITED_FLOOR {
        Limit::Unlimited
    } else {
        Limit::Bytes(n)
    })
}

/// A kernel counter at or above 2^63 is not a real amount: it is a per-CPU-batched counter
/// that went below zero and wrapped (such memcg stats have been printed), or damage. Taken at
/// face value it would wrap every formula it enters; it is a problem and unavailable instead.
pub const IMPLAUSIBLE: u64 = 1 << 63;

/// `Err` with the reason when `v` is implausible (see [`IMPLAUSIBLE`]).
pub fn plausible(v: u64) -> Result<u64, String> {
    if v >= IMPLAUSIBLE {
        Err(format!(
            "{v} is implausible (2^63 or more: a counter that went below zero and wrapped, or damage); unavailable"
        ))
    } else {
        Ok(v)
    }
}

/// Parses a counter file: a [`number`] that is [`plausible`].
pub fn counter(text: &str) -> Result<u64, String> {
    number(text).and_then(plausible)
}

/// Parses a flat keyed file (`key value` per line). Bad lines are reported with their
/// line number and skipped, so one garbled line does not lose the rest of the file. A key
/// printed twice keeps its first value (the one the kernel's order puts first) and is a
/// problem; an implausible value (see [`IMPLAUSIBLE`]) is a problem and left out.
pub fn flat_keyed(text: &str) -> (KeyValues, Vec<String>) {
    let mut kv: Vec<(String, u64)> = Vec::new();
    // The keys kept so far with their line, borrowed from `text`: a linear search while
    // there are few (a memory.stat has 40-70 keys; hashing each with SipHash and growing a
    // map cost more than the parse: this runs for every cgroup of the node and for every
    // sample `history` reads), an index once there are many (a damaged or hostile capture).
    let mut seen: Vec<(&str, usize)> = Vec::new();
    let mut index: Option<std::collections::HashMap<&str, usize>> = None;
    let first_at = |seen: &[(&str, usize)],
                    index: &Option<std::collections::HashMap<&str, usize>>,
                    k: &str| match index {
        Some(m) => m.get(k).copied(),
        None => seen.iter().find(|(s, _)| *s == k).map(|(_, l)| *l),
    };
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(k), Some(_), None)
                if !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                bad.push(format!(
                    "line {}: {:?} is not a kernel key name; the line is ignored",
                    i + 1,
                    truncate(k)
                ))
            }
            (Some(k), Some(_), None) if let Some(first) = first_at(&seen, &index, k) => bad.push(format!(
                "line {}: {k} appears again (first at line {first}); the first value is used",
                i + 1,
            )),
            (Some(k), Some(v), None) => match v.parse::<u64>() {
                Ok(n) if n >= IMPLAUSIBLE => bad.push(format!(
                    "line {}: {k} {n} is implausible (2^63 or more: a counter that went below zero and wrapped); unavailable",
                    i + 1
                )),
                Ok(n) => {
                    match &mut index {
                        Some(m) => {
                            m.insert(k, i + 1);
                        }
                        None => {
                            seen.push((k, i + 1));
                            if seen.len() > 128 {
                                index = Some(seen.drain(..).collect());
                            }
                        }
                    }
                    kv.push((k.to_string(), n));
                }
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

/// Dying memory cgroups below a v2 cgroup from its `cgroup.stat`, and the key used:
/// `nr_dying_subsys_memory` where the kernel has it (6.11+: cgroup.stat lists
/// `nr_subsys_<controller>` and `nr_dying_subsys_<controller>`), which counts only dying cgroups that still hold a
/// memory css; else `nr_dying_descendants`, which also counts cgroups without one (they
/// cost no memory; cgroup-v2.rst "cgroup.stat").
pub fn dying_memory(kv: &KeyValues) -> Option<(u64, &'static str)> {
    kv.get("nr_dying_subsys_memory")
        .map(|n| (n, "nr_dying_subsys_memory"))
        .or_else(|| {
            kv.get("nr_dying_descendants")
                .map(|n| (n, "nr_dying_descendants"))
        })
}

/// Parses a `cgroup.procs` file.
pub fn pids(text: &str) -> Result<Vec<i32>, String> {
    // The kernel prints one positive decimal PID per line, nothing else: an empty file is a
    // cgroup without processes, anything else not a PID is damage.
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            l.parse::<i32>()
                .ok()
                .filter(|p| *p > 0 && l.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("line {}: {:?} is not a PID", i + 1, truncate(l)))
        })
        .collect()
}

/// Parses a PSI file (`some avg10=.. avg60=.. avg300=.. total=..` and `full ...`,
/// Documentation/accounting/psi.rst). Hand-written: procfs-core's parser answers every damage
/// with "Data incomplete"; this one says which line and what is wrong with it.
pub fn pressure(text: &str) -> Result<crate::model::Pressure, String> {
    use crate::model::PressureLine;
    if text.trim().is_empty() {
        return Err("empty file".into());
    }
    let mut some = None;
    let mut full = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| {
            format!(
                "line {}: {why}: expected \"some|full avg10=N avg60=N avg300=N total=N\", found {:?}",
                i + 1,
                truncate(line)
            )
        };
        let mut it = line.split_whitespace();
        let slot = match it.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => return Err(bad("not a some/full line")),
        };
        if slot.is_some() {
            return Err(bad("printed twice"));
        }
        let mut avg = [None::<f32>; 3];
        let mut total = None;
        for f in it {
            let Some((k, v)) = f.split_once('=') else {
                return Err(bad(&format!("{f:?} is not key=value")));
            };
            let pct = |v: &str| {
                v.parse::<f32>()
                    .ok()
                    .filter(|p| p.is_finite() && (0.0..=100.0).contains(p))
            };
            let i = match k {
                "avg10" => 0,
                "avg60" => 1,
                "avg300" => 2,
                "total" => {
                    total = Some(
                        v.parse::<u64>()
                            .map_err(|_| bad(&format!("total={v} is not a count")))?,
                    );
                    continue;
                }
                _ => continue,
            };
            avg[i] = Some(pct(v).ok_or_else(|| bad(&format!("{k}={v} is not a percentage")))?);
        }
        let (Some(a10), Some(a60), Some(a300), Some(t)) = (avg[0], avg[1], avg[2], total) else {
            return Err(bad("a field is missing"));
        };
        *slot = Some(PressureLine {
            avg10: a10,
            avg60: a60,
            avg300: a300,
            total_usec: t,
        });
    }
    match (some, full) {
        (Some(some), Some(full)) => Ok(crate::model::Pressure { some, full }),
        (None, _) => Err("no `some` line (the file is cut or not a PSI file)".into()),
        (_, None) => Err("no `full` line (the file is cut)".into()),
    }
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
                .map_err(|_| format!("num_cgroups is not a number: {:?}", truncate(line)))
                .and_then(plausible);
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
    fn dying_memory_prefers_the_memory_css_count() {
        let (kv, _) = flat_keyed(
            "nr_descendants 3\nnr_dying_descendants 40\nnr_subsys_memory 4\nnr_dying_subsys_memory 2\n",
        );
        assert_eq!(dying_memory(&kv), Some((2, "nr_dying_subsys_memory")));
        let (kv, _) = flat_keyed("nr_descendants 3\nnr_dying_descendants 40\n");
        assert_eq!(dying_memory(&kv), Some((40, "nr_dying_descendants")));
    }

    #[test]
    fn pressure_lines() {
        let p = pressure("some avg10=1.50 avg60=0.20 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5\n").unwrap();
        assert_eq!(p.some.total_usec, 1234);
        assert_eq!(p.full.total_usec, 5);
        assert!(pressure("some garbage").is_err());
        let e = pressure("some avg10=1.50 avg60=0.20 avg300=0.00 total=1234\nfull avg10=x avg60=0.00 avg300=0.00 total=5\n").unwrap_err();
        assert!(e.starts_with("line 2: avg10=x is not a percentage"), "{e}");
        assert!(
            pressure("some avg10=1.50 avg60=0.20 avg300=0.00 total=1234\n")
                .unwrap_err()
                .contains("no `full`")
        );
        assert_eq!(pressure("").unwrap_err(), "empty file");
    }

    proptest! {
        #[test]
        fn flat_keyed_never_panics(s in "\\PC*") {
            let (kv, bad) = flat_keyed(&s);
            prop_assert!(kv.0.len() + bad.len() <= s.lines().count());
        }

        #[test]
        fn flat_keyed_roundtrips(pairs in proptest::collection::btree_map("[a-z_]{1,20}", 0..IMPLAUSIBLE, 0..40)) {
            let pairs: Vec<(String, u64)> = pairs.into_iter().collect();
            let text: String = pairs.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
            let (kv, bad) = flat_keyed(&text);
            prop_assert!(bad.is_empty());
            prop_assert_eq!(kv.0, pairs);
        }

        /// Duplicates keep the first value; implausible values are problems, never figures.
        #[test]
        fn flat_keyed_duplicates_and_wraps(k in "[a-z_]{1,20}", a in 0..IMPLAUSIBLE, b in any::<u64>(), w in IMPLAUSIBLE..) {
            proptest::prop_assume!(k != "wrapped");
            let (kv, bad) = flat_keyed(&format!("{k} {a}\n{k} {b}\nwrapped {w}\n"));
            prop_assert_eq!(kv.get(&k), Some(a));
            prop_assert_eq!(kv.get("wrapped"), None);
            prop_assert_eq!(bad.len(), 2);
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
