//! memlens against real rootful podman (issue 11 items 2, 10): its own storage (`--root`,
//! `--runroot`) under a temp dir, cgroupfs manager, `--network none`. podman's names and
//! images come from containers/storage's containers.json; `podman stats` MEM USAGE (page
//! cache included on v1, SI units) / MEM % equal memlens's podman-stats view, read between
//! two memlens reads (kdamond reclaims cold page cache meanwhile).

mod common;
mod engine;

use engine::Engine;
use std::time::Instant;

fn views(e: &Engine, name: &str) -> (u64, u64, f64, String) {
    let v = e.memlens_json(&["show", name]);
    let w = &v["views"];
    (
        w["podman_stats_bytes"].as_u64().unwrap(),
        w["docker_stats_limit_bytes"].as_u64().unwrap(),
        w["podman_stats_percent"].as_f64().unwrap(),
        w["sources"]["podman_stats"]["formula"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

fn parse_si(s: &str) -> f64 {
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (n, u) = s.split_at(split);
    let m = match u {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => panic!("unit {u:?} in {s:?}"),
    };
    n.parse::<f64>().unwrap() * m
}

#[test]
fn podman() {
    let t0 = Instant::now();
    let Some(e) = Engine::podman() else { return };
    eprintln!(
        "engine: podman storage ready and image imported in {:?}",
        e.started_in
    );
    let p = std::process::id();
    let n = |s: &str| format!("mlt-{s}-{p}");
    let anon = n("anon");
    let aid = e.workload(&anon, &["--memory", "128m"], &["anon=40M"]);
    let cache = n("cache");
    e.workload(
        &cache,
        &["--memory", "128m"],
        &["write=/var/f:24M", "anon=4M"],
    );
    for name in [&anon, &cache] {
        let before = views(&e, name);
        let out = e.ok(&["stats", "--no-stream", "--format", "json", name]);
        let after = views(&e, name);
        let s: serde_json::Value = serde_json::from_str(&out).unwrap();
        let s = &s[0];
        let (usage, limit) = s["mem_usage"].as_str().unwrap().split_once(" / ").unwrap();
        eprintln!(
            "{name}: podman stats {usage} / {limit} {}; memlens {:?} .. {:?}",
            s["mem_percent"], before, after
        );
        assert_eq!(
            limit,
            memlens::views::tools::si_size(before.1),
            "{name}: LIMIT"
        );
        let exact = [
            memlens::views::tools::si_size(before.0),
            memlens::views::tools::si_size(after.0),
        ];
        if !exact.iter().any(|x| x == usage) {
            let d = parse_si(usage);
            let (lo, hi) = (before.0.min(after.0) as f64, before.0.max(after.0) as f64);
            assert!(
                d >= lo - d / 1000.0 && d <= hi + d / 1000.0,
                "{name}: {usage} vs {exact:?}"
            );
        }
        // memlens says what podman prints, in its units.
        assert!(before.3.contains("SI units"), "{}", before.3);
        let pct: f64 = s["mem_percent"]
            .as_str()
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        let (lo, hi) = (before.2.min(after.2), before.2.max(after.2));
        assert!(
            pct >= lo - 0.01 && pct <= hi + 0.01,
            "{name}: {pct}% vs {lo}..{hi}"
        );
    }
    // Names and image from podman's storage: overview, show, targets, runtime podman.
    let (code, out, err) = e.memlens(&["--color", "never"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&anon) && out.contains(&cache), "{out}");
    let v = e.memlens_json(&["show", &anon]);
    assert_eq!(v["identity"]["runtime"], "podman");
    assert_eq!(v["identity"]["container_id"], aid.as_str());
    assert_eq!(v["identity"]["names"]["runtime_name"], anon.as_str());
    assert_eq!(v["identity"]["names"]["image"], e.image.as_str());
    for cmd in ["ps", "explain"] {
        let (code, out, err) = e.memlens(&[cmd, &anon, "--json"]);
        assert_eq!(code, 0, "{cmd}: {err}");
        assert!(out.contains(&aid), "{cmd}: {out}");
    }
    let renamed = n("renamed");
    e.ok(&["rename", &anon, &renamed]);
    let v = e.memlens_json(&["show", &renamed]);
    assert_eq!(v["identity"]["container_id"], aid.as_str());
    e.ok(&["rename", &renamed, &anon]);
    eprintln!("engine: podman test took {:?} in all", t0.elapsed());
}
