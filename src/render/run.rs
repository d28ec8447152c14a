//! `memlens run`'s report (human and JSON) from its [`RunResult`]: `run.rs` keeps the
//! orchestration (own memcg, sampling, signals, cleanup), this module the formatting.

use crate::render::{self, Style};
use crate::run::{Outcome, RunResult, signal_name};

/// The JSON object of a run.
pub fn json(r: &RunResult) -> serde_json::Value {
    let mut peak = serde_json::Map::new();
    let mut peak_at = serde_json::Map::new();
    let mut peak_src = serde_json::Map::new();
    for (n, p) in &r.peaks {
        peak.insert(format!("{n}_bytes"), serde_json::json!(p.bytes));
        peak_at.insert(n.clone(), serde_json::json!(p.at_seconds));
        peak_src.insert(n.clone(), serde_json::json!(p.source));
    }
    let mut v = serde_json::json!({
        "command": r.command,
        "cgroup": r.cgroup,
        "cgroup_version": r.version.number(),
        "limit_bytes": r.limit_bytes,
        "high_bytes": r.high_bytes,
        "swap_bytes": r.swap_bytes,
        "outcome": r.outcome.as_str(),
        "exit_code": r.exit_code,
        "signal": r.signal,
        "signal_name": r.signal.map(signal_name),
        "exit_status": r.exit_status(),
        "wall_seconds": r.wall_seconds,
        "user_seconds": r.user_seconds,
        "system_seconds": r.system_seconds,
        "max_rss_bytes": r.max_rss_bytes,
        "samples": r.samples,
        "interval_ms": r.interval_ms,
        "interval_peak_source": r.interval_peak_source,
        "peak": peak,
        "peak_at_seconds": peak_at,
        "peak_source": peak_src,
        "events": {
            "max": r.events.max,
            "high": r.events.high,
            "oom": r.events.oom,
            "oom_kill": r.events.oom_kill,
            "sources": r.events.sources,
        },
        "pressure": {"some_usec": r.psi_some_usec, "full_usec": r.psi_full_usec},
        "recommended_limit_bytes": r.recommended_limit_bytes,
        "recommendation_formula": r.recommendation_formula,
        "working_set_peak_bytes": r.peak("working_set").and_then(|p| p.bytes),
        "forwarded_signal": r.forwarded_signal,
        "oom_report": r.oom_report,
        "cleanup": r.cleanup,
        "problems": r.problems,
    });
    if let (Some(p), Some(o)) = (&r.probe, v.as_object_mut()) {
        o.insert("probe".into(), serde_json::json!(p));
    }
    v
}

/// The human report of a run.
pub fn human(r: &RunResult, s: Style) -> String {
    let mut o = String::new();
    let lim = |b: Option<u64>| b.map_or("none".to_string(), |b| render::bytes(Some(b)));
    let cmd: Vec<String> = r.command.iter().map(|a| shell_quote(a)).collect();
    o.push_str(&s.head(&format!("memlens run: {}\n", cmd.join(" "))));
    o.push_str(&format!(
        "memcg {} (cgroup v{}), limit {}, high {}, swap {}\n",
        r.cgroup,
        r.version.number(),
        lim(r.limit_bytes),
        lim(r.high_bytes),
        r.swap_bytes
            .map_or("not set".into(), |b| render::bytes(Some(b)))
    ));
    let ended = match (r.outcome, r.exit_code, r.signal) {
        (Outcome::OomKilled, _, _) => s.bad(&format!(
            "OOM-killed: SIGKILL from the memcg OOM killer (oom_kill +{}), exit status 137",
            r.events.oom_kill.unwrap_or(0)
        )),
        (Outcome::Exited, Some(c), _) => format!("exited with code {c}"),
        (_, _, Some(sig)) => s.warn(&format!(
            "killed by {} (exit status {})",
            signal_name(sig),
            128 + sig
        )),
        _ => "ended (status unknown)".into(),
    };
    o.push_str(&format!("ended:      {ended}\n"));
    if let Some(sig) = r.forwarded_signal {
        o.push_str(&format!(
            "            memlens received {} and forwarded it to the command\n",
            signal_name(sig)
        ));
    }
    o.push_str(&format!(
        "wall time:  {:.3} s   user {:.3} s   system {:.3} s   max RSS of one process {}\n",
        r.wall_seconds,
        r.user_seconds,
        r.system_seconds,
        render::bytes(Some(r.max_rss_bytes))
    ));
    o.push_str(&format!(
        "samples:    {} every {} ms; interval peaks: {}\n\n",
        r.samples, r.interval_ms, r.interval_peak_source
    ));
    let rows: Vec<Vec<String>> = r
        .peaks
        .iter()
        .map(|(n, p)| {
            vec![
                n.replace('_', " "),
                render::bytes(p.bytes),
                p.at_seconds.map_or("-".into(), |t| format!("+{t:.2}s")),
                s.dim(&p.source),
            ]
        })
        .collect();
    o.push_str(&render::table(
        &["peak", "bytes", "at", "source"],
        &rows,
        &[3],
        s,
    ));
    let n = |v: Option<u64>| v.map_or("n/a".to_string(), |v| format!("+{v}"));
    o.push_str(&format!(
        "\nevents:     limit hit (max) {}   high {}   oom {}   oom_kill {}\n",
        n(r.events.max),
        n(r.events.high),
        n(r.events.oom),
        n(r.events.oom_kill)
    ));
    o.push_str(&s.dim(&format!("            {}\n", r.events.sources.join("; "))));
    match (r.psi_some_usec, r.psi_full_usec) {
        (Some(a), Some(b)) => o.push_str(&format!(
            "pressure:   some +{:.1} ms, full +{:.1} ms stalled on memory (memory.pressure total)\n",
            a as f64 / 1000.0,
            b as f64 / 1000.0
        )),
        _ => o.push_str("pressure:   n/a (per-cgroup memory.pressure is cgroup v2 only)\n"),
    }
    o.push('\n');
    match r.recommended_limit_bytes {
        // Killed at the limit: the need is unknown, only that it is more.
        Some(b) if r.outcome == Outcome::OomKilled => o.push_str(&format!(
            "recommended limit: at least {} (rerun with a larger --limit to measure it)\n{}\n",
            s.head(&render::bytes(Some(b))),
            s.dim(&format!("  = {}", r.recommendation_formula))
        )),
        Some(b) if b <= crate::units::MIN_LIMIT => o.push_str(&format!(
            "recommended limit: {} (the smallest sensible limit; the command needed less)\n",
            s.head(&render::bytes(Some(b))),
        )),
        Some(b) => o.push_str(&format!(
            "recommended limit: {}\n{}\n",
            s.head(&render::bytes(Some(b))),
            s.dim(&format!("  = {}", r.recommendation_formula))
        )),
        None => o.push_str("recommended limit: n/a (not-reclaimable figure unavailable)\n"),
    }
    o.push_str(&format!(
        "working-set peak (what kubectl top / the kubelet would have seen): {}\n",
        render::bytes(r.peak("working_set").and_then(|p| p.bytes))
    ));
    if r.outcome == Outcome::OomKilled {
        match &r.oom_report {
            // The report names itself ("kernel OOM report: killed ..."): print it once.
            Some(rep) => {
                let rep = rep.strip_prefix("kernel OOM report:").unwrap_or(rep).trim();
                o.push_str(&format!("\nkernel OOM report: {rep}\n"))
            }
            None => o.push_str(
                "kernel OOM report: not available yet (see dmesg for the victim's \"Memory cgroup out of memory\" lines)\n",
            ),
        }
    }
    o.push_str(&format!("\ncleanup:    {}\n", r.cleanup.message));
    if r.cleanup.leftover_processes > 0 {
        o.push_str(&format!(
            "            {} process(es) left in the memcg after the command ended were killed\n",
            r.cleanup.leftover_processes
        ));
    }
    if let Some(how) = &r.cleanup.reclaim {
        o.push_str(&format!("            reclaimed first with {how}\n"));
    }
    for p in &r.problems {
        o.push_str(&s.warn(&format!("problem: {p}\n")));
    }
    if let Some(p) = &r.probe {
        o.push('\n');
        o.push_str(&crate::render::recommend::probe(p, s));
    }
    o
}

/// An argument as a shell would need it typed: bare when it is only safe characters, else
/// in single quotes (a `'` inside written as `'\''`), so the echoed command can be pasted.
pub fn shell_quote(a: &str) -> String {
    let safe = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
    if safe {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}
