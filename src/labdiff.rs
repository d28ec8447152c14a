//! `memlens lab --compare A.json B.json`: two `lab --json` reports side by side, scenario by
//! scenario and counter by counter (A's delta, B's delta, B − A). Made for the same kernel on
//! cgroup v1 and v2 (the VM matrix's 5.10 and 5.10-v1 guests): the counters are memlens's
//! normalised names, so what moves differently is the hierarchy's doing, and the counters
//! that read different kernel files on v1 and v2 say which.

use crate::render::{self, Style};
use serde_json::Value;
use std::collections::BTreeSet;

/// What one side of the comparison ran on, from its report.
#[derive(Debug, Clone)]
pub struct Side {
    pub file: String,
    pub kernel: Option<String>,
    pub hierarchy: Option<String>,
}

/// One counter of one scenario on both sides.
#[derive(Debug, Clone)]
pub struct Row {
    pub counter: String,
    pub a: Option<i64>,
    pub b: Option<i64>,
}

impl Row {
    /// B − A; None when either side lacks the counter.
    pub fn difference(&self) -> Option<i64> {
        Some(self.b? - self.a?)
    }
}

/// One scenario found in both reports.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub a_verdict: String,
    pub b_verdict: String,
    pub rows: Vec<Row>,
}

/// The comparison.
#[derive(Debug, Clone)]
pub struct Compare {
    pub a: Side,
    pub b: Side,
    pub scenarios: Vec<Scenario>,
    /// Scenarios only one side has, and the like.
    pub problems: Vec<String>,
}

/// Counters that read a different kernel file on v1 than on v2, so a difference between the
/// hierarchies is partly a difference of definition (cgroup-v1/memory.rst, cgroup-v2.rst).
pub fn definition_differs(counter: &str) -> Option<&'static str> {
    let base = counter.rsplit_once('.').map_or(counter, |(_, b)| b);
    let key = if counter.contains("events.") {
        format!("events.{base}")
    } else {
        format!("cgroup.{base}")
    };
    match key.as_str() {
        "events.max" => Some(
            "v2 memory.events max (times usage hit memory.max and reclaim ran) vs v1 memory.failcnt (charges that failed at the limit, one per retry)",
        ),
        "cgroup.kernel" => {
            Some("v2 memory.stat kernel (5.18+, else its parts) vs v1 memory.kmem.usage_in_bytes")
        }
        "cgroup.usage" => Some(
            "v2 memory.current vs v1 memory.usage_in_bytes (per-CPU batched, up to 64 pages per CPU behind)",
        ),
        "cgroup.swap" => Some("v2 memory.swap.current vs v1 memsw.usage − usage"),
        _ => None,
    }
}

fn side(file: &str, v: &Value) -> Side {
    let s = |k: &str| v[k].as_str().map(str::to_string);
    Side {
        file: file.to_string(),
        kernel: s("kernel"),
        hierarchy: s("hierarchy"),
    }
}

/// Compares two parsed `lab --json` reports (`a_file`, `b_file` name them). `Err` when either
/// is not a lab report.
pub fn compare(a_file: &str, a: &Value, b_file: &str, b: &Value) -> Result<Compare, String> {
    for (f, v) in [(a_file, a), (b_file, b)] {
        if v["kind"] != "lab" || !v["scenarios"].is_array() {
            return Err(format!(
                "{f}: not a `memlens lab --json` report (kind {}, want \"lab\")",
                v["kind"]
            ));
        }
    }
    let list = |v: &Value| v["scenarios"].as_array().cloned().unwrap_or_default();
    let (sa, sb) = (list(a), list(b));
    let find = |l: &[Value], n: &str| l.iter().find(|s| s["name"] == n).cloned();
    let mut problems = Vec::new();
    let mut scenarios = Vec::new();
    for s in &sa {
        let name = s["name"].as_str().unwrap_or("?").to_string();
        let Some(t) = find(&sb, &name) else {
            problems.push(format!("scenario {name} is only in {a_file}"));
            continue;
        };
        let keys: BTreeSet<String> = [s, &t]
            .iter()
            .filter_map(|x| x["counters"].as_object())
            .flat_map(|o| o.keys().cloned())
            .collect();
        let rows = keys
            .into_iter()
            .map(|k| Row {
                a: s["counters"][&k]["delta"].as_i64(),
                b: t["counters"][&k]["delta"].as_i64(),
                counter: k,
            })
            .collect();
        let verdict = |x: &Value| x["verdict"].as_str().unwrap_or("?").to_string();
        scenarios.push(Scenario {
            name,
            a_verdict: verdict(s),
            b_verdict: verdict(&t),
            rows,
        });
    }
    for t in &sb {
        let name = t["name"].as_str().unwrap_or("?");
        if find(&sa, name).is_none() {
            problems.push(format!("scenario {name} is only in {b_file}"));
        }
    }
    Ok(Compare {
        a: side(a_file, a),
        b: side(b_file, b),
        scenarios,
        problems,
    })
}

fn is_count(counter: &str) -> bool {
    counter.contains("events.") || counter.contains("dying")
}

fn fmt(counter: &str, v: Option<i64>) -> String {
    if is_count(counter) {
        v.map_or("n/a".into(), |d| format!("{d:+}"))
    } else {
        render::signed_bytes(v)
    }
}

fn about(s: &Side) -> String {
    format!(
        "{} (kernel {}, cgroup {})",
        s.file,
        s.kernel.as_deref().unwrap_or("not recorded"),
        s.hierarchy.as_deref().unwrap_or("not recorded")
    )
}

/// The side-by-side table.
pub fn human(c: &Compare, st: Style) -> String {
    let mut o = format!("A = {}\nB = {}\n\n", about(&c.a), about(&c.b));
    let hierarchies_differ = c.a.hierarchy.is_some() && c.a.hierarchy != c.b.hierarchy;
    let mut notes = BTreeSet::new();
    for s in &c.scenarios {
        o.push_str(&format!(
            "{}  A {}  B {}\n",
            st.head(&s.name),
            s.a_verdict,
            s.b_verdict
        ));
        let rows: Vec<Vec<String>> = s
            .rows
            .iter()
            .map(|r| {
                let mut name = format!("  {}", r.counter);
                if hierarchies_differ && definition_differs(&r.counter).is_some() {
                    name.push_str(" *");
                    notes.insert(r.counter.rsplit('.').next().unwrap_or("").to_string());
                }
                vec![
                    name,
                    fmt(&r.counter, r.a),
                    fmt(&r.counter, r.b),
                    fmt(&r.counter, r.difference()),
                ]
            })
            .collect();
        o.push_str(&render::table(
            &["  counter (delta)", "A", "B", "B − A"],
            &rows,
            &[],
            st,
        ));
        o.push('\n');
    }
    if !notes.is_empty() {
        o.push_str("* the hierarchies define this counter differently:\n");
        let mut seen = BTreeSet::new();
        for s in &c.scenarios {
            for r in &s.rows {
                if let Some(d) = definition_differs(&r.counter)
                    && seen.insert(d)
                {
                    o.push_str(&st.dim(&format!("  {}: {d}\n", r.counter)));
                }
            }
        }
    }
    for p in &c.problems {
        o.push_str(&st.warn(&format!("{p}\n")));
    }
    o
}

/// The JSON form (`kind` "lab-compare").
pub fn json(c: &Compare) -> Value {
    let side = |s: &Side| serde_json::json!({"file": s.file, "kernel": s.kernel, "hierarchy": s.hierarchy});
    serde_json::json!({
        "a": side(&c.a),
        "b": side(&c.b),
        "scenarios": c.scenarios.iter().map(|s| serde_json::json!({
            "name": s.name,
            "a_verdict": s.a_verdict,
            "b_verdict": s.b_verdict,
            "counters": s.rows.iter().map(|r| (r.counter.clone(), serde_json::json!({
                "a": r.a,
                "b": r.b,
                "difference": r.difference(),
                "definition_differs": definition_differs(&r.counter),
            }))).collect::<serde_json::Map<String, Value>>(),
        })).collect::<Vec<_>>(),
        "problems": c.problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(kernel: &str, h: &str, anon: i64, max: i64) -> Value {
        serde_json::json!({
            "schema": 1, "kind": "lab", "kernel": kernel, "hierarchy": h,
            "scenarios": [
                {"name": "touched-anon", "verdict": "as_expected", "reason": "", "expected": "",
                 "counters": {"cgroup.anon": {"before": 0, "after": anon, "delta": anon}}},
                {"name": "reclaim-at-limit", "verdict": "as_expected", "reason": "", "expected": "",
                 "counters": {"events.max": {"before": 0, "after": max, "delta": max}}},
            ],
            "summary": {}, "problems": []
        })
    }

    #[test]
    fn deltas_side_by_side_with_the_difference() {
        let a = report("5.10.0-32-amd64", "v2", 64 << 20, 153);
        let mut b = report("5.10.0-32-amd64", "v1", (64 << 20) + 4096, 2232);
        b["scenarios"].as_array_mut().unwrap().pop();
        let c = compare("v2.json", &a, "v1.json", &b).unwrap();
        assert_eq!(c.scenarios.len(), 1);
        assert_eq!(c.scenarios[0].rows[0].difference(), Some(4096));
        assert_eq!(c.problems, ["scenario reclaim-at-limit is only in v2.json"]);
        let out = human(&c, Style { color: false });
        assert!(out.contains("kernel 5.10.0-32-amd64, cgroup v2"), "{out}");
        assert!(out.contains("+4 KiB") || out.contains("+4.0 KiB"), "{out}");
        let j = json(&c);
        assert_eq!(
            j["scenarios"][0]["counters"]["cgroup.anon"]["difference"],
            4096
        );
        assert!(compare("x", &serde_json::json!({"kind": "show"}), "y", &b).is_err());
    }

    #[test]
    fn counters_defined_differently_are_marked() {
        let a = report("5.10", "v2", 1, 153);
        let b = report("5.10", "v1", 1, 2232);
        let c = compare("a", &a, "b", &b).unwrap();
        let out = human(&c, Style { color: false });
        assert!(out.contains("events.max *"), "{out}");
        assert!(out.contains("memory.failcnt"), "{out}");
        assert!(definition_differs("once.cgroup.anon").is_none());
        assert!(definition_differs("charged.events.max").is_some());
    }
}
