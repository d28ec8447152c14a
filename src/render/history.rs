//! `memlens history` as a table or CSV (the model is [`crate::history::History`]).

use super::{Style, bytes, table};
use crate::history::History;

fn last(step: &crate::history::Step, col: &str) -> Option<u64> {
    step.values.get(col).and_then(|v| v["last_bytes"].as_u64())
}

/// A read error's first words (`permission denied`), for a table cell.
fn short_reason(r: &str) -> &str {
    r.split(" (").next().unwrap_or(r)
}

fn range(step: &crate::history::Step, col: &str) -> String {
    let v = step.values.get(col);
    let g = |k: &str| v.and_then(|v| v[k].as_u64());
    match (g("min_bytes"), g("max_bytes")) {
        (Some(a), Some(b)) if a != b => format!("{}–{}", bytes(Some(a)), bytes(Some(b))),
        (Some(a), _) => bytes(Some(a)),
        _ => "n/a".into(),
    }
}

/// Eight columns of the breakdown (last value per step), usage's min–max, and the events
/// of each step under it.
pub fn human(h: &History, st: Style) -> String {
    let mut out = format!(
        "{}\n{} to {}, step {}s, {} samples{}\n",
        st.head(&format!("history of {}", h.path)),
        h.since,
        h.until,
        h.step_seconds,
        h.samples,
        match &h.removed_at {
            Some(t) => format!(" (removed at {t})"),
            None => String::new(),
        }
    );
    // history's figures in its order; memory.high and the usage interval peak are left to
    // the JSON (the one rarely moves, the other is usage's exact max, and the table already
    // needs 160 columns).
    let cols: Vec<&str> = crate::history::COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != "high" && *c != "usage_interval_peak")
        .collect();
    let mut header = vec!["step (UTC)", "usage min–max"];
    header.extend(cols.iter().copied());
    header.push("events");
    let mut rows = Vec::new();
    for (i, s) in h.steps.iter().enumerate() {
        let end = h.steps.get(i + 1).map_or(i64::MAX, |n| n.start_ms);
        let time = s.start.get(11..19).unwrap_or(&s.start).to_string();
        let mut r = vec![time];
        if s.samples == 0 {
            // The reason the recorder met, when it kept one (the figures need memory.stat).
            let why = h.refusals.iter().rfind(|f| {
                f.t < end
                    && (f.file == "memory.stat"
                        || f.file.ends_with("usage_in_bytes")
                        || f.file == "memory.current")
            });
            r.push(match why {
                Some(f) => format!("not recorded: {} on {}", short_reason(&f.reason), f.file),
                None => "not recorded".into(),
            });
            r.extend(cols.iter().map(|_| String::new()));
        } else {
            r.push(range(s, "usage"));
            r.extend(cols.iter().map(|c| bytes(last(s, c))));
        }
        // The step's events, counted by kind.
        let mut kinds: Vec<(&str, usize)> = Vec::new();
        for e in h.events.iter().filter(|e| e.t >= s.start_ms && e.t < end) {
            match kinds.iter_mut().find(|(k, _)| *k == e.kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((&e.kind, 1)),
            }
        }
        let ev: Vec<String> = kinds
            .iter()
            .map(|(k, n)| {
                if *n > 1 {
                    format!("{k} ×{n}")
                } else {
                    k.to_string()
                }
            })
            .collect();
        r.push(st.warn(&ev.join(", ")));
        rows.push(r);
    }
    out.push_str(&table(&header, &rows, &[0, 1, cols.len() + 2], st));
    // Events other than the counters' (limit hits and memory.high events are many: counted
    // in the table above), one line each.
    let listed: Vec<&crate::history::HistEvent> = h
        .events
        .iter()
        .filter(|e| e.kind != "limit-hit" && e.kind != "high-event")
        .collect();
    if !listed.is_empty() {
        out.push_str(&st.head("events\n"));
        for e in listed {
            out.push_str(&format!("  {}  {}: {}\n", e.at, e.kind, e.detail));
        }
    }
    if let Some(g) = &h.not_reclaimable_growth {
        out.push_str(&format!(
            "not reclaimable (anon + shmem + unreclaimable kernel) grows at {:+.2} MiB/min (least squares over {} samples, R² {:.2}{})\n",
            g.mib_per_minute,
            g.fit.n,
            g.fit.r2,
            if g.trusted { "" } else { "; not a steady trend" }
        ));
    }
    for f in &h.refusals {
        out.push_str(&format!(
            "not recorded from {}: {}: {}\n",
            f.at, f.file, f.reason
        ));
    }
    let ip = &h.usage_interval_peak;
    let peak = h
        .steps
        .iter()
        .filter_map(|s| {
            s.values
                .get("usage_interval_peak")?
                .get("max_bytes")?
                .as_u64()
        })
        .max();
    match (ip.source, peak) {
        _ if h.samples == 0 => {}
        ("sampled", _) | (_, None) => out.push_str(&format!(
            "usage peak: sampled (a spike between samples is missed): {}\n",
            ip.reasons.join("; ")
        )),
        (src, Some(pk)) => out.push_str(&format!(
            "usage peak: {} ({src}: memory.peak read and reset at every sample{})\n",
            bytes(Some(pk)),
            if ip.sampled_points > 0 {
                format!(
                    "; {} of {} samples sampled: {}",
                    ip.sampled_points,
                    ip.sampled_points + ip.exact_points,
                    ip.reasons.join("; ")
                )
            } else {
                String::new()
            }
        )),
    }
    for p in &h.problems {
        out.push_str(&st.warn(&format!("problem: {p}\n")));
    }
    out
}

/// One line per step: start, samples, then min,max,last of every column (bytes; empty when
/// unavailable or not recorded); events follow as `# event,TIME,KIND,DETAIL` lines.
pub fn csv(h: &History) -> String {
    let mut out = String::from("start,samples");
    for c in &h.columns {
        for k in ["min", "max", "last"] {
            out.push_str(&format!(",{c}_{k}_bytes"));
        }
    }
    out.push('\n');
    for s in &h.steps {
        out.push_str(&format!("{},{}", s.start, s.samples));
        for c in &h.columns {
            let v = s.values.get(*c);
            for k in ["min", "max", "last"] {
                out.push(',');
                if let Some(x) = v.and_then(|v| v[format!("{k}_bytes")].as_u64()) {
                    out.push_str(&x.to_string());
                }
            }
        }
        out.push('\n');
    }
    for e in &h.events {
        out.push_str(&format!(
            "# event,{},{},\"{}\"\n",
            e.at,
            e.kind,
            e.detail.replace('"', "'")
        ));
    }
    out
}

/// A sparkline of byte values (`▁▂▃▄▅▆▇█`, space where not recorded), scaled min..max.
pub fn sparkline(v: &[Option<u64>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let vals: Vec<u64> = v.iter().flatten().copied().collect();
    let (Some(lo), Some(hi)) = (vals.iter().min(), vals.iter().max()) else {
        return String::new();
    };
    v.iter()
        .map(|x| match x {
            None => ' ',
            Some(x) if hi == lo => BARS[3],
            Some(x) => BARS[(((x - lo) as f64 / (hi - lo) as f64) * 7.0).round() as usize],
        })
        .collect()
}

/// The killed cgroup's recorded minutes under `oom show N` (or why there are none).
pub fn oom_trend(t: &Result<crate::trend::OomTrend, String>, st: Style) -> String {
    let t = match t {
        Ok(t) => t,
        Err(e) => return st.dim(&format!("\nrecorded history: {e}\n")),
    };
    let mut out = format!(
        "\n{}\n",
        st.head(&format!(
            "recorded history of {} (10 min before the kill at {}, {} samples)",
            t.cgroup, t.killed_at, t.samples
        ))
    );
    let nr: Vec<u64> = t.spark.iter().flatten().copied().collect();
    out.push_str(&format!(
        "not reclaimable {} {} → {}\n",
        sparkline(&t.spark),
        bytes(nr.first().copied()),
        bytes(nr.last().copied())
    ));
    let rows: Vec<Vec<String>> = t
        .table
        .iter()
        .map(|r| {
            vec![
                r.at.get(11..19).unwrap_or(&r.at).to_string(),
                bytes(r.usage_bytes),
                bytes(r.anon_bytes),
                bytes(r.file_bytes),
                bytes(r.shmem_bytes),
                bytes(r.kernel_bytes),
                bytes(r.not_reclaimable_bytes),
                bytes(r.limit_bytes),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "time (UTC)",
            "usage",
            "anon",
            "file",
            "shmem",
            "kernel",
            "not reclaimable",
            "limit",
        ],
        &rows,
        &[0],
        st,
    ));
    out.push_str(&format!("trend: {} ({})\n", t.verdict.text, t.verdict.id));
    for p in &t.problems {
        out.push_str(&st.warn(&format!("problem: {p}\n")));
    }
    out
}

/// The exporter's name for each history column (the same families as `serve`, so recorded
/// history and live scrapes join in Prometheus).
fn om_name(col: &str) -> String {
    format!("memlens_memory_{col}_bytes")
}

fn om_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// OpenMetrics 1.0 text of recorded history, for `promtool tsdb create-blocks-from
/// openmetrics`: one gauge family per column, each series' samples in time order with
/// timestamps in seconds, `# EOF` at the end. Hand-written: prometheus-client encodes a
/// registry's current values, not samples with their own timestamps.
pub fn openmetrics(e: &crate::history::Export) -> String {
    let mut out = String::new();
    for (k, col) in crate::history::COLUMNS.iter().enumerate() {
        let name = om_name(col);
        out.push_str(&format!("# TYPE {name} gauge\n# UNIT {name} bytes\n"));
        out.push_str(&format!(
            "# HELP {name} {col} of the cgroup as recorded by memlens record (same formula as memlens show).\n"
        ));
        for (path, id, pts) in &e.series {
            let labels = crate::metrics::labels(path, id);
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", om_escape(v)))
                .collect();
            let l = l.join(",");
            for p in pts {
                if let Some(v) = p.values.get(k).copied().flatten() {
                    out.push_str(&format!(
                        "{name}{{{l}}} {v} {}.{:03}\n",
                        p.t.div_euclid(1000),
                        p.t.rem_euclid(1000)
                    ));
                }
            }
        }
    }
    // The host (same names as serve's /metrics).
    let ts = |t: i64| format!("{}.{:03}", t.div_euclid(1000), t.rem_euclid(1000));
    let host = &e.host;
    if !host.meminfo.is_empty() {
        let name = "memlens_host_meminfo_bytes";
        out.push_str(&format!(
            "# TYPE {name} gauge\n# UNIT {name} bytes\n# HELP {name} Host memory from /proc/meminfo (kB converted to bytes), one series per field.\n"
        ));
        for (field, v) in &host.meminfo {
            for (t, x) in v {
                out.push_str(&format!(
                    "{name}{{field=\"{}\"}} {x} {}\n",
                    om_escape(field),
                    ts(*t)
                ));
            }
        }
    }
    for (kind, v) in [("some", &host.psi_some_usec), ("full", &host.psi_full_usec)] {
        if v.is_empty() {
            continue;
        }
        let name = format!("memlens_host_memory_pressure_{kind}_seconds");
        out.push_str(&format!(
            "# TYPE {name} counter\n# UNIT {name} seconds\n# HELP {name} Host memory pressure ({kind}) stall time from /proc/pressure/memory total.\n"
        ));
        for (t, us) in v {
            out.push_str(&format!(
                "{name}_total {}.{:06} {}\n",
                us / 1_000_000,
                us % 1_000_000,
                ts(*t)
            ));
        }
    }
    for (name, help, v) in [
        (
            "memlens_dying_cgroups",
            "Dying memory cgroups (v2: the root's cgroup.stat nr_dying_descendants).",
            &host.dying,
        ),
        (
            "memlens_host_memory_cgroups",
            "Memory cgroups the kernel holds, live and dying (v1: /proc/cgroups num_cgroups).",
            &host.memory_cgroups,
        ),
    ] {
        if v.is_empty() {
            continue;
        }
        out.push_str(&format!("# TYPE {name} gauge\n# HELP {name} {help}\n"));
        for (t, n) in v {
            out.push_str(&format!("{name} {n} {}\n", ts(*t)));
        }
    }
    out.push_str("# EOF\n");
    out
}
