//! `memlens recommend` for people: a table per cgroup (what cannot be reclaimed, the
//! working set krr would use, events, pressure), the recommendation with its formula, and
//! ready-to-apply snippets (kubectl, strategic-merge patch, VPA, compose, systemd).

use super::Style;
use super::bytes;
use super::escape::term;
use crate::recommend::{Recommendation, Report};
use std::fmt::Write;

fn mib(b: u64) -> String {
    format!("{}Mi", b.div_ceil(1 << 20))
}

fn count(v: Option<u64>) -> String {
    v.map_or("n/a (the kernel has no such counter)".into(), |n| {
        n.to_string()
    })
}

/// The snippets for one recommendation (empty without a recommendation).
pub fn snippets(r: &Recommendation) -> String {
    let (Some(req), Some(lim)) = (r.request, r.rec_limit) else {
        return String::new();
    };
    let name = term(r.name.as_deref().unwrap_or("CONTAINER")).into_owned();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  kubectl:  kubectl set resources deployment/DEPLOYMENT -c {name} --requests=memory={} --limits=memory={}",
        mib(req),
        mib(lim)
    );
    let _ = writeln!(
        s,
        "  patch:    {{\"spec\":{{\"template\":{{\"spec\":{{\"containers\":[{{\"name\":\"{name}\",\"resources\":{{\"requests\":{{\"memory\":\"{}\"}},\"limits\":{{\"memory\":\"{}\"}}}}}}]}}}}}}}}",
        mib(req),
        mib(lim)
    );
    let _ = writeln!(
        s,
        "  VPA:      status: {{recommendation: {{containerRecommendations: [{{containerName: {name}, target: {{memory: {}}}, upperBound: {{memory: {}}}}}]}}}}",
        mib(req),
        mib(lim)
    );
    let _ = writeln!(
        s,
        "  compose:  mem_reservation: {}m\n            mem_limit: {}m",
        req.div_ceil(1 << 20),
        lim.div_ceil(1 << 20)
    );
    let _ = writeln!(
        s,
        "  systemd:  MemoryHigh={}M\n            MemoryMax={}M",
        // memory.high at the request's level would throttle the steady state: halfway.
        (req + (lim - req) / 2).div_ceil(1 << 20),
        lim.div_ceil(1 << 20)
    );
    s
}

fn one(r: &Recommendation, st: Style, out: &mut String) {
    let mut title = match &r.name {
        Some(n) => format!("{} ({n})", r.cgroup),
        None => r.cgroup.clone(),
    };
    if let Some(i) = &r.instance {
        title.push_str(&format!(" on {i}"));
    }
    let _ = writeln!(out, "{}", st.head(&term(&title)));
    let _ = writeln!(
        out,
        "  {} samples from {} to {}",
        r.not_reclaimable.samples,
        crate::history::format_time(r.first_ms),
        crate::history::format_time(r.last_ms)
    );
    let _ = writeln!(
        out,
        "  {:<28} {:>10} {:>10} {:>10} {:>10}",
        "", "p50", "p95", "p99", "peak"
    );
    for (label, d) in [
        ("not reclaimable (+ swap)", &r.not_reclaimable),
        ("working set (krr, kubelet)", &r.working_set),
        ("usage", &r.usage),
    ] {
        let _ = writeln!(
            out,
            "  {:<28} {:>10} {:>10} {:>10} {:>10}",
            label,
            bytes(d.p50),
            bytes(d.p95),
            bytes(d.p99),
            bytes(d.peak)
        );
    }
    let _ = writeln!(
        out,
        "  kernel usage peak (exact, with cache): {}",
        bytes(r.kernel_usage_peak)
    );
    let _ = writeln!(out, "  note: {}", r.peak_note);
    let _ = writeln!(
        out,
        "  limit hits {}, memory.high events {}, OOM kills {}",
        count(r.limit_hits),
        count(r.high_events),
        count(r.oom_kills)
    );
    let _ = writeln!(
        out,
        "  pressure: some {}, full {}, highest some avg10 {}",
        r.pressure_some_usec
            .map_or("n/a".into(), |u| format!("{:.2} s", u as f64 / 1e6)),
        r.pressure_full_usec
            .map_or("n/a".into(), |u| format!("{:.2} s", u as f64 / 1e6)),
        r.pressure_some_avg10_max
            .map_or("n/a".into(), |a| format!("{a:.2}%"))
    );
    let set = r.limit.map_or("unlimited".into(), |l| bytes(Some(l)));
    let _ = writeln!(
        out,
        "  set now: limit {set}, memory.high {}",
        r.high.map_or("unlimited".into(), |l| bytes(Some(l)))
    );
    let _ = writeln!(
        out,
        "  {} request {}, limit {}{}",
        st.head("recommended:"),
        bytes(r.request),
        bytes(r.rec_limit),
        r.limit_change.map_or(String::new(), |c| format!(
            " ({}{} against the limit set)",
            if c < 0 { "−" } else { "+" },
            bytes(Some(c.unsigned_abs()))
        ))
    );
    let _ = writeln!(out, "  formula: {}", r.formula);
    let _ = writeln!(
        out,
        "  krr-style (peak working set + 15%) would say {}",
        bytes(r.krr_limit)
    );
    if let Some(c) = &r.check {
        let _ = writeln!(
            out,
            "  check-limit {}: {}: {}",
            bytes(Some(c.limit)),
            match c.verdict.as_str() {
                "safe" => st.head("safe"),
                "needs-reclaim" => st.warn("needs reclaim first"),
                _ => st.bad("will OOM"),
            },
            c.reason
        );
    }
    out.push_str(&snippets(r));
}

/// The human report.
pub fn human(rep: &Report, st: Style) -> String {
    let mut out = String::new();
    if rep.recommendations.is_empty() {
        out.push_str("No recorded cgroup with processes in the range.\n");
    }
    for (i, r) in rep.recommendations.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        one(r, st, &mut out);
    }
    for p in &rep.problems {
        let _ = writeln!(out, "problem: {}", term(p));
    }
    out
}

/// `run --find-limit` for people: each trial, then the answer.
pub fn find_limit(f: &crate::findlimit::FindLimit, st: Style) -> String {
    let mut out = format!(
        "{}\n  {:>10}  {:<11} {:>5} {:>8} {:>10} {:>16}  result\n",
        st.head(&format!("find-limit for {}", term(&f.command.join(" ")))),
        "limit",
        "outcome",
        "exit",
        "wall",
        "peak",
        "not reclaimable"
    );
    for t in &f.trials {
        let _ = writeln!(
            out,
            "  {:>10}  {:<11} {:>5} {:>7.2}s {:>10} {:>16}  {}",
            t.limit.map_or("unlimited".into(), |l| bytes(Some(l))),
            t.outcome,
            t.exit_code.map_or("-".into(), |c| c.to_string()),
            t.wall_seconds,
            bytes(t.usage_peak),
            bytes(t.not_reclaimable_peak),
            if t.limit.is_none() {
                "baseline".to_string()
            } else if t.ok {
                "ok".to_string()
            } else {
                t.why.clone().unwrap_or_default()
            }
        );
    }
    let _ = writeln!(
        out,
        "{} {} ({} trials; searched {} to {})\n  method: {}",
        st.head("smallest limit:"),
        f.limit
            .map_or("none below the usage peak passed".into(), |l| bytes(Some(
                l
            ))),
        f.trials.len(),
        bytes(Some(f.lower)),
        bytes(Some(f.upper)),
        f.method
    );
    out
}

/// `memlens probe` / `run --probe`: the plan, each step, why it stopped, hot and cold.
pub fn probe(p: &crate::probe::ProbeReport, style: Style) -> String {
    let mut s = String::new();
    s.push_str(&style.head(&format!(
        "memlens probe: {} (cgroup v{}){}\n",
        term(&p.cgroup),
        p.version.number(),
        if p.dry_run { ", dry run" } else { "" }
    )));
    let _ = writeln!(s, "  plan:      {}", p.plan);
    if !p.forms.is_empty() {
        let f: Vec<String> = p
            .forms
            .iter()
            .map(|(f, ok)| {
                format!(
                    "`{f}` {}",
                    match ok {
                        Some(true) => "accepted",
                        Some(false) => "refused (EINVAL)",
                        None => "not asked",
                    }
                )
            })
            .collect();
        let _ = writeln!(s, "  forms:     {}", f.join(", "));
    }
    let _ = writeln!(s, "  pressure:  {}", p.pressure_source);
    if !p.steps.is_empty() {
        let rows: Vec<Vec<String>> = p
            .steps
            .iter()
            .map(|t| {
                vec![
                    t.n.to_string(),
                    t.wrote.clone(),
                    t.result.clone(),
                    bytes(t.usage_before),
                    bytes(t.usage_after),
                    bytes(t.stolen),
                    bytes(t.refaults),
                    t.psi_some_percent
                        .map_or("n/a".into(), |v| format!("{v:.2}%")),
                ]
            })
            .collect();
        s.push_str(&super::table(
            &[
                "STEP", "WROTE", "RESULT", "BEFORE", "AFTER", "PGSTEAL", "REFAULTS", "SOME",
            ],
            &rows,
            &[1, 2],
            style,
        ));
    }
    let _ = writeln!(s, "  stopped:   {}", p.stopped);
    if let Some(r) = &p.restored {
        let _ = writeln!(s, "  restored:  {r}");
    }
    if !p.dry_run {
        let _ = writeln!(
            s,
            "  start {}, hot set {}, cold (taken without pressure) {}, not reclaimable {}",
            bytes(p.start),
            bytes(p.hot),
            bytes(p.cold),
            bytes(p.not_reclaimable)
        );
        let _ = writeln!(
            s,
            "  refaults:  {}/s over the probe",
            bytes(p.refault_bytes_per_second.map(|v| v as u64))
        );
        if let Some(r) = p.recommended {
            let _ = writeln!(s, "  limit:     {} = {}", bytes(Some(r)), p.formula);
        }
    }
    for pr in &p.problems {
        s.push_str(&style.warn(&format!("problem: {pr}\n")));
    }
    s
}
