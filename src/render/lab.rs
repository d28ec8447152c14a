//! `memlens lab`'s report (human and JSON) and its `--list`, from the [`LabResult`]s and
//! scenarios `lab.rs` runs and defines.

use crate::lab::{DISRUPTIVE, LabResult, Verdict, scenarios};
use crate::render::{self, Style};

/// "N as expected, M differ, K not run, J skipped".
pub fn summary(results: &[LabResult]) -> String {
    let n = |v| results.iter().filter(|r| r.verdict == v).count();
    format!(
        "{} as expected, {} differ, {} not run, {} skipped",
        n(Verdict::AsExpected),
        n(Verdict::Differs),
        n(Verdict::NotRun),
        n(Verdict::Skipped)
    )
}

/// `--list`.
pub fn list() -> String {
    let all = scenarios();
    let w = all.iter().map(|s| s.name.len()).max().unwrap_or(0);
    all.iter()
        .map(|s| format!("{:w$}  {}\n", s.name, s.about))
        .collect()
}

/// The human report.
pub fn human(results: &[LabResult], st: Style) -> String {
    let mut o = String::new();
    for r in results {
        let v = match r.verdict {
            Verdict::AsExpected => r.verdict.as_str().to_string(),
            Verdict::Differs => st.bad(r.verdict.as_str()),
            Verdict::Skipped => st.warn(r.verdict.as_str()),
            Verdict::NotRun => st.bad(r.verdict.as_str()),
        };
        o.push_str(&format!("{}  {v}\n", st.head(&r.name)));
        o.push_str(&st.dim(&format!("  expected: {}\n", r.expected)));
        if !r.counters.is_empty() {
            let rows: Vec<Vec<String>> = r
                .counters
                .iter()
                .map(|(k, c)| {
                    let n = |v: Option<u64>| v.map_or("n/a".into(), |v| v.to_string());
                    if k.contains("dying") || k.contains("events.") {
                        vec![
                            format!("  {k}"),
                            n(c.before),
                            n(c.after),
                            c.delta.map_or("n/a".into(), |d| format!("{d:+}")),
                        ]
                    } else {
                        vec![
                            format!("  {k}"),
                            render::bytes(c.before),
                            render::bytes(c.after),
                            render::signed_bytes(c.delta),
                        ]
                    }
                })
                .collect();
            o.push_str(&render::table(
                &["  counter", "before", "after", "delta"],
                &rows,
                &[],
                st,
            ));
        }
        o.push_str(&format!("  {}: {}\n\n", r.verdict.as_str(), r.reason));
    }
    o.push_str(&summary(results));
    o.push('\n');
    o
}

/// The JSON report: the scenarios and their counts by verdict; `about` is
/// [`crate::lab::Lab::about`] (kernel release, hierarchy), so two reports can be compared.
pub fn json(results: &[LabResult], about: &(Option<String>, String)) -> serde_json::Value {
    let n = |v| results.iter().filter(|r| r.verdict == v).count();
    serde_json::json!({
        "kernel": about.0,
        "hierarchy": about.1,
        "scenarios": serde_json::to_value(results).unwrap_or_default(),
        "summary": {
            "as_expected": n(Verdict::AsExpected),
            "differs": n(Verdict::Differs),
            "not_run": n(Verdict::NotRun),
            "skipped": n(Verdict::Skipped),
        },
        "problems": results
            .iter()
            .filter(|r| r.verdict == Verdict::NotRun)
            .map(|r| format!("{}: {}", r.name, r.reason))
            .collect::<Vec<_>>(),
    })
}

/// `--list --json`: the scenarios with what each does and expects.
pub fn list_json() -> serde_json::Value {
    serde_json::json!({
        "scenarios": scenarios()
            .iter()
            .map(|s| serde_json::json!({
                "name": s.name,
                "about": s.about,
                "expected": s.expected,
                "disruptive": DISRUPTIVE.contains(&s.name),
            }))
            .collect::<Vec<_>>(),
        "problems": [],
    })
}
