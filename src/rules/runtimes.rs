//! `runtime-heap`: language runtimes whose heap can outgrow the cgroup's limit, or that size
//! themselves from the host's memory instead of the limit (field §4 item 23).
//!
//! Heap bounds, as each runtime computes them:
//! - JVM (HotSpot Arguments::set_heap_size): `-Xmx`/`MaxHeapSize` when given; else
//!   `ram × MaxRAMPercentage` (default 25%) with `ram` = `MaxRAM` when given, the cgroup
//!   limit when container support is on (JDK 10+ and 8u191+, `-XX:+UseContainerSupport`,
//!   default) or the host's RAM otherwise; on small memory (`ram × MinRAMPercentage` (50%)
//!   below the default MaxHeapSize of 96 MiB × 1.3 on 64-bit) the heap is `ram × 50%`.
//! - Go (runtime/debug.SetMemoryLimit): `GOMEMLIMIT` bounds the whole Go runtime's memory;
//!   without it nothing does (GOGC only sets growth between collections).
//! - Node.js (V8): `--max-old-space-size` (MiB) on the command line or in NODE_OPTIONS;
//!   without it V8 picks a limit itself from the memory it sees.
//! - .NET (GC config): `DOTNET_GCHeapHardLimit` (hexadecimal bytes) or
//!   `GCHeapHardLimitPercent` (hexadecimal percent) of the limit; default 75% of the cgroup
//!   limit (container-aware since .NET Core 3.0).

use super::{Evidence, Finding, Sample, Severity};
use crate::proc::runtime::RuntimeProcess;
use crate::render::bytes;
use crate::report::Report;
use serde::Serialize;

/// The heap bound of one process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bound {
    /// The largest heap the runtime will grow to; `None` when nothing bounds it.
    pub max_bytes: Option<u64>,
    /// How it was computed.
    pub basis: String,
    /// True when the runtime sizes itself from the host's RAM, not the cgroup's limit.
    pub sized_from_host: bool,
}

/// A JVM size: `512m`, `1g`, `1024k`, `1073741824`.
pub fn jvm_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let (n, m) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 1u64 << 10),
        'm' | 'M' => (&t[..t.len() - 1], 1 << 20),
        'g' | 'G' => (&t[..t.len() - 1], 1 << 30),
        't' | 'T' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    n.parse::<u64>().ok()?.checked_mul(m)
}

/// A GOMEMLIMIT value: bytes with an optional B, KiB, MiB, GiB or TiB suffix.
pub fn go_size(s: &str) -> Option<u64> {
    let t = s.trim();
    for (suf, m) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ] {
        if let Some(n) = t.strip_suffix(suf) {
            return n.trim().parse::<u64>().ok()?.checked_mul(m);
        }
    }
    t.parse().ok()
}

/// Whether a JVM of `version` (JAVA_VERSION: `17.0.15`, `1.8.0_181`) reads cgroup limits.
pub fn jvm_container_aware(version: &str) -> Option<bool> {
    if let Some(rest) = version.strip_prefix("1.") {
        let mut it = rest.split(['.', '_']);
        let major: u32 = it.next()?.parse().ok()?;
        let update: u32 = version.rsplit('_').next()?.parse().unwrap_or(0);
        return Some(major > 8 || (major == 8 && update >= 191));
    }
    let major: u32 = version.split(['.', '+', '-']).next()?.parse().ok()?;
    Some(major >= 10)
}

fn last<'a>(p: &'a RuntimeProcess, prefix: &str) -> Option<&'a str> {
    p.settings
        .iter()
        .rev()
        .find_map(|(_, t)| t.strip_prefix(prefix))
}

/// HotSpot's default MaxHeapSize on 64-bit: 96 MiB scaled by 1.3 (ScaleForWordSize,
/// gc_globals.hpp); the heap it gives is aligned up to 2 MiB.
const JVM_DEFAULT_MAX_HEAP: u64 = (96 << 20) * 13 / 10;
const JVM_ALIGN: u64 = 2 << 20;

/// The heap bound of `p` under `limit` (the effective cgroup limit) on a host of `host` bytes.
pub fn bound(p: &RuntimeProcess, limit: Option<u64>, host: Option<u64>) -> Bound {
    match p.runtime {
        "jvm" => {
            if let Some(x) = last(p, "-Xmx").or_else(|| last(p, "-XX:MaxHeapSize=")) {
                return Bound {
                    max_bytes: jvm_size(x),
                    basis: format!("-Xmx{x}"),
                    sized_from_host: false,
                };
            }
            let flag_off = p
                .settings
                .iter()
                .rev()
                .find(|(_, t)| t.ends_with("UseContainerSupport"))
                .is_some_and(|(_, t)| t.contains(":-"));
            let aware = !flag_off
                && p.version
                    .as_deref()
                    .and_then(jvm_container_aware)
                    .unwrap_or(true);
            let (ram, from) = if let Some(m) = last(p, "-XX:MaxRAM=").and_then(jvm_size) {
                (Some(m), "MaxRAM".to_string())
            } else if aware && limit.is_some() {
                (limit, "the cgroup limit".into())
            } else {
                (host, "the host's RAM".into())
            };
            let pct = last(p, "-XX:MaxRAMPercentage=")
                .and_then(|v| v.parse::<f64>().ok())
                .or_else(|| {
                    last(p, "-XX:MaxRAMFraction=")
                        .and_then(|v| v.parse::<f64>().ok())
                        .filter(|f| *f > 0.0)
                        .map(|f| 100.0 / f)
                })
                .unwrap_or(25.0);
            let max = ram.map(|r| {
                let reasonable = (r as f64 * pct / 100.0) as u64;
                let min = r / 2;
                if min < JVM_DEFAULT_MAX_HEAP {
                    min
                } else {
                    reasonable.max(JVM_DEFAULT_MAX_HEAP.div_ceil(JVM_ALIGN) * JVM_ALIGN)
                }
            });
            Bound {
                max_bytes: max,
                basis: format!(
                    "{pct}% (MaxRAMPercentage) of {from}{}",
                    if aware { "" } else { " (container support off or JVM too old)" }
                ),
                sized_from_host: from == "the host's RAM" && limit.is_some(),
            }
        }
        "go" => match p
            .settings
            .iter()
            .rev()
            .find_map(|(_, t)| t.strip_prefix("GOMEMLIMIT="))
        {
            Some(v) => Bound {
                max_bytes: go_size(v),
                basis: format!("GOMEMLIMIT={v} (the whole Go runtime's soft limit)"),
                sized_from_host: false,
            },
            None => Bound {
                max_bytes: None,
                basis: "no GOMEMLIMIT: the Go GC does not know the limit (GOGC only paces collections)".into(),
                sized_from_host: false,
            },
        },
        "node" => match last(p, "--max-old-space-size=").or_else(|| last(p, "--max_old_space_size=")) {
            Some(v) => Bound {
                max_bytes: v.parse::<u64>().ok().map(|m| m << 20),
                basis: format!("--max-old-space-size={v} (MiB of V8 old space)"),
                sized_from_host: false,
            },
            None => Bound {
                max_bytes: None,
                basis: "no --max-old-space-size: V8 picks its heap limit itself from the memory it sees".into(),
                sized_from_host: false,
            },
        },
        "dotnet" => {
            let hex = |k: &str| {
                p.settings.iter().rev().find_map(|(_, t)| {
                    let v = t.strip_prefix(k)?;
                    u64::from_str_radix(v.trim_start_matches("0x").trim_start_matches("0X"), 16).ok()
                })
            };
            if let Some(b) = hex("DOTNET_GCHeapHardLimit=").or_else(|| hex("COMPlus_GCHeapHardLimit=")) {
                return Bound {
                    max_bytes: Some(b),
                    basis: "GCHeapHardLimit (hexadecimal bytes)".into(),
                    sized_from_host: false,
                };
            }
            let pct = hex("DOTNET_GCHeapHardLimitPercent=")
                .or_else(|| hex("COMPlus_GCHeapHardLimitPercent="));
            match (pct, limit) {
                (Some(pc), Some(l)) => Bound {
                    max_bytes: Some(l / 100 * pc),
                    basis: format!("GCHeapHardLimitPercent {pc}% of the cgroup limit"),
                    sized_from_host: false,
                },
                (None, Some(l)) => Bound {
                    max_bytes: Some(l / 4 * 3),
                    basis: "75% of the cgroup limit (.NET's default in a container)".into(),
                    sized_from_host: false,
                },
                _ => Bound {
                    max_bytes: None,
                    basis: "no limit, no GCHeapHardLimit".into(),
                    sized_from_host: false,
                },
            }
        }
        _ => Bound {
            max_bytes: None,
            basis: "unknown runtime".into(),
            sized_from_host: false,
        },
    }
}

/// `runtime-heap`.
pub fn runtime_heap(r: &Report, _: Option<Sample<'_>>) -> Option<Finding> {
    let limit = r.derived.limit.bytes?;
    let host = r.host.mem("MemTotal");
    let mut evidence = Vec::new();
    let mut sev = Severity::Info;
    let mut worst = String::new();
    for rp in &r.runtimes {
        let b = bound(rp, Some(limit), host);
        let proc = r.processes.iter().find(|p| p.pid == rp.pid);
        // Resident memory outside anonymous mappings (libraries, mapped files, shmem): a
        // lower bound of what the process needs besides its heap.
        let non_heap = proc.and_then(|p| Some(p.rss_bytes?.saturating_sub(p.rss_anon_bytes?)));
        let budget = limit.saturating_sub(non_heap.unwrap_or(0));
        let (s, what) = match b.max_bytes {
            Some(m) if m >= limit => (Severity::Critical, "its heap alone can exceed the limit"),
            Some(m) if m > budget => (
                Severity::Warn,
                "its heap plus non-heap memory can exceed the limit",
            ),
            None => (Severity::Warn, "nothing bounds its heap below the limit"),
            Some(_) if b.sized_from_host => (Severity::Warn, "it sizes itself from the host's RAM"),
            Some(_) => continue,
        };
        if s > sev || worst.is_empty() {
            worst = format!("{} pid {}: {what}", rp.runtime, rp.pid);
        }
        sev = sev.max(s);
        let settings: Vec<String> = rp
            .settings
            .iter()
            .map(|(w, t)| format!("{w}: {t}"))
            .collect();
        evidence.push(Evidence::size(
            format!(
                "pid {} ({}{}) heap bound",
                rp.pid,
                rp.runtime,
                rp.version
                    .as_deref()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default()
            ),
            b.max_bytes,
            format!(
                "{}{}",
                b.basis,
                if settings.is_empty() {
                    String::new()
                } else {
                    format!("; settings: {}", settings.join(", "))
                }
            ),
        ));
        evidence.push(Evidence::size(
            format!("pid {} non-heap (at least)", rp.pid),
            non_heap,
            "/proc/PID/status VmRSS − RssAnon (mapped files and shmem; anonymous non-heap such as stacks, metaspace, code cache comes on top)",
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    evidence.push(Evidence::size(
        "effective limit",
        Some(limit),
        r.derived.limit.source.clone(),
    ));
    Some(Finding {
        id: "runtime-heap",
        severity: sev,
        title: format!("A runtime is sized against more memory than its limit of {}: {worst}", bytes(Some(limit))),
        evidence,
        meaning: "The runtime's garbage collector will let its heap grow to the bound shown before collecting hard; if that is above what the cgroup allows once the rest of the process is counted, the kernel OOM-kills the process instead of the runtime throwing its own out-of-memory error.".into(),
        advice: "Size the heap from the limit: JVM -XX:MaxRAMPercentage=75 (or -Xmx below the limit minus non-heap) on a container-aware JVM (8u191+/10+); Go GOMEMLIMIT at about 90% of the limit; Node --max-old-space-size in MiB below the limit; .NET DOTNET_GCHeapHardLimitPercent (hex).".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(runtime: &'static str, settings: &[&str], version: Option<&str>) -> RuntimeProcess {
        RuntimeProcess {
            pid: 1,
            runtime,
            settings: settings
                .iter()
                .map(|s| ("cmdline".to_string(), s.to_string()))
                .collect(),
            version: version.map(String::from),
            problems: Vec::new(),
        }
    }

    #[test]
    fn heap_bounds() {
        let g = 1u64 << 30;
        assert_eq!(
            bound(&rp("jvm", &["-Xmx512m"], None), Some(g), None).max_bytes,
            Some(512 << 20)
        );
        assert_eq!(
            bound(&rp("jvm", &[], Some("17.0.15")), Some(g), Some(16 * g)).max_bytes,
            Some(256 << 20)
        );
        let old = bound(&rp("jvm", &[], Some("1.8.0_181")), Some(g), Some(16 * g));
        assert_eq!((old.max_bytes, old.sized_from_host), (Some(4 * g), true));
        assert_eq!(jvm_container_aware("1.8.0_191"), Some(true));
        // What OpenJDK 17 printed (-XX:+PrintFlagsFinal MaxHeapSize) under these limits.
        for (lim, heap) in [
            (100u64, 50u64),
            (200, 100),
            (256, 126),
            (512, 128),
            (3072, 768),
        ] {
            let b = bound(
                &rp("jvm", &[], Some("17.0.15")),
                Some(lim << 20),
                Some(16 * g),
            );
            assert_eq!(b.max_bytes, Some(heap << 20), "limit {lim} MiB");
        }
        assert_eq!(
            bound(
                &rp("jvm", &["-XX:MaxRAMPercentage=75.0"], None),
                Some(g),
                None
            )
            .max_bytes,
            Some(768 << 20)
        );
        assert_eq!(go_size("400MiB"), Some(400 << 20));
        assert!(
            bound(&rp("go", &[], None), Some(g), None)
                .max_bytes
                .is_none()
        );
        assert_eq!(
            bound(
                &rp("node", &["--max-old-space-size=2048"], None),
                Some(g),
                None
            )
            .max_bytes,
            Some(2 * g)
        );
        assert_eq!(
            bound(
                &rp("dotnet", &["DOTNET_GCHeapHardLimit=0x10000000"], None),
                Some(g),
                None
            )
            .max_bytes,
            Some(256 << 20)
        );
        assert_eq!(
            bound(
                &rp("dotnet", &["DOTNET_GCHeapHardLimitPercent=0x32"], None),
                Some(g),
                None
            )
            .max_bytes,
            Some(g / 100 * 50)
        );
    }
}
