//! `memlens node` output: the waterfall, the other tools side by side, the kubelet. Human
//! and JSON (the JSON is the [`Node`] model itself: sizes in bytes, `null` unavailable).

use super::{Style, bytes, signed_bytes, table};
use crate::node::Node;
use std::fmt::Write;

/// The JSON form.
pub fn json(n: &Node) -> serde_json::Value {
    serde_json::to_value(n).unwrap_or_default()
}

fn sb(v: Option<i64>) -> String {
    match v {
        Some(x) if x >= 0 => bytes(Some(x as u64)),
        _ => signed_bytes(v),
    }
}

/// The human form.
pub fn human(n: &Node, s: Style) -> String {
    let mut out = String::new();
    let w = &n.waterfall;
    let _ = writeln!(
        out,
        "{}",
        s.head(&format!(
            "Where the RAM went (cgroup v{}, {})",
            n.hierarchy.version.number(),
            n.hierarchy.mount_point.display()
        ))
    );
    let mut rows = vec![vec![
        "MemTotal".to_string(),
        bytes(w.mem_total_bytes),
        String::new(),
        s.dim("/proc/meminfo MemTotal"),
    ]];
    let total = w.mem_total_bytes.unwrap_or(0) as f64;
    for l in &w.lines {
        let pct = match l.bytes {
            Some(b) if total > 0.0 => format!("{:.1}%", b as f64 * 100.0 / total),
            _ => String::new(),
        };
        let what = if l.key == "unattributed" {
            s.warn(&format!("= {}", l.what))
        } else {
            format!("− {}", l.what)
        };
        rows.push(vec![what, sb(l.bytes), pct, s.dim(&l.source)]);
        if l.key == "top_level_cgroups" {
            for t in w.top_level.iter().take(8) {
                rows.push(vec![
                    format!("    {}", t.path),
                    bytes(t.usage_bytes),
                    String::new(),
                    String::new(),
                ]);
            }
            if w.top_level.len() > 8 {
                rows.push(vec![
                    format!("    … {} more", w.top_level.len() - 8),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
        }
    }
    out.push_str(&table(&["", "BYTES", "%", "SOURCE"], &rows, &[0, 3], s));
    for note in &w.notes {
        let _ = writeln!(out, "{}", s.dim(&format!("note: {note}")));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", s.head("The same moment, as others see it"));
    let rows: Vec<Vec<String>> = n
        .compare
        .iter()
        .map(|c| {
            vec![
                c.what.to_string(),
                bytes(c.figure.bytes),
                s.dim(&c.figure.source),
            ]
        })
        .collect();
    out.push_str(&table(&["", "BYTES", "SOURCE"], &rows, &[0, 2], s));
    for c in &n.compare {
        let _ = writeln!(out, "  {}: {}", c.what, c.why);
    }
    let k = &n.kubelet;
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", s.head("The kubelet's memory eviction"));
    match (&k.config.source, &k.config_missing) {
        (Some(src), _) => {
            let _ = writeln!(out, "config: {src}");
        }
        (None, Some(why)) => {
            let _ = writeln!(out, "config: {}", s.dim(why));
        }
        _ => {}
    }
    let mut rows = vec![
        vec![
            "capacity".into(),
            bytes(k.capacity_bytes),
            s.dim("meminfo MemTotal"),
        ],
        vec![
            "memory.available".into(),
            bytes(k.memory_available.bytes),
            s.dim(&k.memory_available.source),
        ],
        vec![
            "  MemAvailable beside it".into(),
            bytes(k.mem_available_bytes),
            s.dim("meminfo MemAvailable"),
        ],
        vec![
            "  active page cache counted as used".into(),
            bytes(k.active_file_counted.bytes),
            s.dim(&k.active_file_counted.source),
        ],
        vec![
            "    of which clean (reclaimable)".into(),
            bytes(k.active_file_reclaimable.bytes),
            s.dim(&k.active_file_reclaimable.source),
        ],
        vec![
            "system-reserved + kube-reserved".into(),
            bytes(Some(
                k.config.system_reserved_bytes.unwrap_or(0)
                    + k.config.kube_reserved_bytes.unwrap_or(0),
            )),
            s.dim("systemReserved.memory + kubeReserved.memory"),
        ],
        vec![
            "node allocatable".into(),
            bytes(k.allocatable_bytes),
            s.dim("capacity − reserved − hard memory.available threshold"),
        ],
        vec![
            "pods cgroup limit (expected)".into(),
            bytes(k.pods_limit_bytes),
            s.dim(&format!(
                "capacity − reserved (set when enforceNodeAllocatable has pods: {:?})",
                k.config.enforce_node_allocatable
            )),
        ],
    ];
    if let Some(pc) = &k.pods_cgroup {
        rows.push(vec![
            format!("  {pc} limit (set)"),
            k.pods_cgroup_limit_bytes
                .map_or("unlimited".into(), |b| bytes(Some(b))),
            s.dim("memory.limit_in_bytes / memory.max"),
        ]);
    }
    rows.push(vec![
        "allocatableMemory.available".into(),
        bytes(k.allocatable_available.bytes),
        s.dim(&k.allocatable_available.source),
    ]);
    out.push_str(&table(&["", "BYTES", "SOURCE"], &rows, &[0, 2], s));
    for (t, (_, _, m)) in k.thresholds.iter().zip(&k.margins) {
        let line = format!(
            "{} threshold {} < {} ({}){}: margin {}",
            t.kind,
            t.signal,
            t.value,
            bytes(Some(t.bytes)),
            t.grace_period
                .as_ref()
                .map(|g| format!(", grace {g}"))
                .unwrap_or_default(),
            signed_bytes(*m)
        );
        let _ = writeln!(
            out,
            "{}",
            if m.is_some_and(|m| m < 0) {
                s.bad(&format!("{line}: EVICTING"))
            } else {
                line
            }
        );
    }
    for f in &k.forecast {
        let _ = writeln!(
            out,
            "forecast: memory.available reaches the {} threshold {} ({}) in {} (at {}): the working set grows {}/s; {}",
            f.kind,
            f.threshold,
            bytes(Some(f.threshold_bytes)),
            crate::rules::forecast::human_duration(f.seconds),
            f.at,
            bytes(Some(f.bytes_per_second.max(0.0) as u64)),
            s.dim(&f.method)
        );
    }
    if let Some(why) = &k.forecast_note {
        let _ = writeln!(out, "forecast: {}", s.dim(why));
    }
    if !k.ranking.is_empty() {
        let _ = writeln!(out, "\nEviction order (first evicted first):");
        let rows: Vec<Vec<String>> = k
            .ranking
            .iter()
            .map(|r| {
                vec![
                    r.rank.to_string(),
                    r.name.clone().unwrap_or_else(|| r.pod.uid.clone()),
                    r.pod.qos.unwrap_or("?").to_string(),
                    bytes(r.pod.working_set_bytes),
                    bytes(r.request_bytes),
                    r.priority.map_or("?".into(), |p| p.to_string()),
                    r.why.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "#",
                "POD",
                "QOS",
                "WORKING SET",
                "REQUEST",
                "PRIORITY",
                "WHY",
            ],
            &rows,
            &[1, 2, 6],
            s,
        ));
    }
    if !k.qos.is_empty() {
        let _ = writeln!(
            out,
            "\nMemory QoS (KEP-2570) and swap (KEP-2400): expected from --pods beside what is set"
        );
        let b = |v: Option<u64>| v.map_or("max".to_string(), |x| bytes(Some(x)));
        let rows: Vec<Vec<String>> = k
            .qos
            .iter()
            .map(|q| {
                vec![
                    format!("{}/{}", q.pod, q.container),
                    q.qos.clone().unwrap_or_default(),
                    format!("{} / {}", b(q.expected_min_bytes), b(q.set_min_bytes)),
                    format!("{} / {}", b(q.expected_high_bytes), b(q.set_high_bytes)),
                    format!(
                        "{} / {}",
                        b(q.expected_swap_max_bytes),
                        b(q.set_swap_max_bytes)
                    ),
                    format!(
                        "{} / {} / {}",
                        bytes(q.oom_headroom_bytes),
                        bytes(q.expected_oom_headroom_with_swap_bytes),
                        bytes(q.oom_headroom_with_swap_bytes)
                    ),
                    if q.differences.is_empty() {
                        "as expected".into()
                    } else {
                        s.warn(&q.differences.join("; "))
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "CONTAINER",
                "QOS",
                "MIN exp/set",
                "HIGH exp/set",
                "SWAP.MAX exp/set",
                "OOM HEADROOM -swap/+exp/+set",
                "",
            ],
            &rows,
            &[0, 1, 6],
            s,
        ));
        let _ = writeln!(
            out,
            "{}",
            s.dim("OOM headroom: effective limit − not reclaimable without swap; + what swapping can still free with the swap KEP-2400 expects, and with memory.swap.max as set (≤ SwapFree; zswap keeps a compressed copy)")
        );
    }
    if let Some(n) = &k.qos_note {
        let _ = writeln!(out, "{}", s.dim(&format!("memory QoS: {n}")));
    }
    for m in &k.missing {
        let _ = writeln!(out, "{}", s.dim(&format!("missing: {m}")));
    }
    if let Some(nn) = &n.noisy_neighbours {
        let _ = writeln!(
            out,
            "\n{}",
            s.head(&format!(
                "Noisy neighbours ({:.1} s apart)",
                n.sample_seconds.unwrap_or(0.0)
            ))
        );
        if nn.is_empty() {
            let _ = writeln!(
                out,
                "none: no cgroup below its limit lost page cache while another grew"
            );
        }
        for x in nn {
            let g: Vec<String> = x
                .growers
                .iter()
                .map(|(p, b)| format!("{p} +{}", bytes(Some(*b))))
                .collect();
            let _ = writeln!(
                out,
                "{} lost {} of page cache{}{} while {} grew: reclaim caused by someone else (protect it with memory.low/min, or limit the grower)",
                x.victim,
                bytes(Some(x.cache_lost_bytes)),
                x.refaults
                    .map(|r| format!(", {r} refaults"))
                    .unwrap_or_default(),
                x.pgsteal
                    .map(|r| format!(", {r} pages stolen"))
                    .unwrap_or_default(),
                g.join(", ")
            );
        }
    }
    for p in &n.problems {
        let _ = writeln!(out, "{}", s.warn(&format!("problem: {p}")));
    }
    out
}

/// The post-mortem lines on which limit fired, the group kill and the victim's role (used by
/// `oom show`; kept here so the OOM renderer gains one call).
pub fn oom_level(p: &crate::oom::PostMortem, s: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  limit that fired: {} ({})",
        s.head(p.limit.level),
        p.limit.text
    );
    if let Some(g) = &p.group_kill {
        let v: Vec<String> = g
            .victims
            .iter()
            .map(|(pid, c)| {
                format!(
                    "{} ({})",
                    pid.map_or("?".into(), |x| x.to_string()),
                    c.as_deref().unwrap_or("?")
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  group kill (memory.oom.group) of {}: {} victims in one event: {}",
            g.cgroup.as_deref().unwrap_or("?"),
            g.victims.len(),
            v.join(", ")
        );
    }
    if let Some(t) = &p.victim_role.text {
        let _ = writeln!(out, "  {}", s.warn(t));
    }
    if !p.levels.is_empty() {
        let rows: Vec<Vec<String>> = p
            .levels
            .iter()
            .map(|l| {
                let n = |v: Option<u64>| v.map_or("n/a".into(), |x| x.to_string());
                vec![
                    format!("  {}", l.path),
                    l.limit_bytes.map_or("unlimited".into(), |b| bytes(Some(b))),
                    n(l.oom_local),
                    n(l.oom_kill_local),
                    n(l.failcnt),
                    n(l.oom_kill),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "  LEVEL (now)",
                "LIMIT",
                "OOM (local)",
                "OOM_KILL (local)",
                "FAILCNT (v1)",
                "OOM_KILL",
            ],
            &rows,
            &[0],
            s,
        ));
    }
    out
}
