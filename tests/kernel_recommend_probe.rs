//! The working-set probe on real memcgs: `run --probe` (v1: memory.limit_in_bytes lowered step
//! by step on memlens's own memcg and put back; v2: memory.reclaim), `memlens probe TARGET`
//! (v2; refused on v1), and `--dry-run` writing nothing. Workloads with a known hot set.
//! (Named kernel_recommend_* so `MEMLENS_VM_FILTER=kernel_recommend` runs it with
//! kernel_recommend in the VM.)

mod common;

use common::{MIB, hier, kstat, release};
use memlens::model::Version;
use std::io::Write;
use std::path::PathBuf;

/// v2 before Linux 5.19 (the 5.10 guest): there is no memory.reclaim, so the v2 probe cannot
/// run; memlens says so and writes nothing.
fn no_memory_reclaim() -> bool {
    hier().version == Version::V2 && !release().at_least(5, 19)
}

/// What memlens says when the v2 probe cannot run for lack of memory.reclaim.
fn says_no_memory_reclaim(msg: &str) -> bool {
    msg.contains("memory.reclaim") && msg.contains("5.19") && msg.contains("nothing was written")
}

/// A file of `mib` MiB on disk, its cache dropped by the workload's `drop=` step.
fn cold_file(tag: &str, mib: u64) -> PathBuf {
    let file = common::disk_dir().join(format!("memlens-test-{tag}-{}", std::process::id()));
    let mut w = std::fs::File::create(&file).unwrap();
    let block = vec![0x5au8; MIB as usize];
    for _ in 0..mib {
        w.write_all(&block).unwrap();
    }
    w.sync_all().unwrap();
    file
}

/// 40 MiB of anon kept hot by a loop, and 200 MiB of page cache read once (cold): the probe
/// takes the cache and stops near the anon; on v1 the limit is put back (here to --limit).
#[test]
fn run_probe_finds_the_hot_set_and_puts_the_limit_back() {
    let file = cold_file("probe-run", 200);
    let f = file.to_str().unwrap().to_string();
    let report = file.with_extension("json");
    let bin = common::bin();
    let (code, _out, err) = common::run(&[
        "--json",
        "run",
        "--limit",
        "1G",
        "--probe",
        "--settle",
        "500ms",
        // Let the workload read its 200 MiB and touch its anon first: a TCG guest on a
        // loaded host had read nothing after 3 s (the probe started at 3 MiB).
        "--probe-after",
        "8s",
        "-o",
        report.to_str().unwrap(),
        "--",
        bin.to_str().unwrap(),
        "__workload",
        &format!("drop={f}"),
        &format!("read={f}:1"),
        "anon=40M",
        "touch=40000",
        "exit",
    ]);
    let _ = std::fs::remove_file(&file);
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let p = &v["probe"];
    eprintln!("{}", serde_json::to_string_pretty(p).unwrap());
    assert_eq!(v["outcome"], "exited");
    assert_eq!(v["events"]["oom_kill"], 0);
    if no_memory_reclaim() {
        // The command ran; the probe did not, and nothing of it is made up.
        let stopped = p["stopped"].as_str().unwrap();
        assert!(
            stopped.contains("did not run") && says_no_memory_reclaim(stopped),
            "{stopped}"
        );
        assert!(p["steps"].as_array().unwrap().is_empty());
        for k in [
            "start_bytes",
            "hot_bytes",
            "cold_bytes",
            "recommended_limit_bytes",
        ] {
            assert!(p[k].is_null(), "{k} on {:?}: {}", release(), p[k]);
        }
        return;
    }
    let steps = p["steps"].as_array().unwrap();
    let start = p["start_bytes"].as_u64().unwrap();
    let hot = p["hot_bytes"].as_u64().unwrap();
    let cold = p["cold_bytes"].as_u64().unwrap();
    assert!(steps.len() >= 3, "{} steps: {}", steps.len(), p["stopped"]);
    // The kdamond pageout scheme may take some cold cache first; most of it is still there.
    assert!(start > 120 * MIB, "start {start}");
    assert!(
        (34 * MIB..=64 * MIB).contains(&hot),
        "hot set {} MiB should be near the 40 MiB of hot anon (stopped: {})",
        hot / MIB,
        p["stopped"]
    );
    assert_eq!(start - hot, cold);
    assert!(p["recommended_limit_bytes"].as_u64().unwrap() >= hot);
    // Every step but the last stayed within the budget (the last may be what stopped it).
    for s in &steps[..steps.len() - 1] {
        assert!(s["result"] == "ok" || s["result"].as_str().unwrap().contains("os error"));
    }
    if hier().version == Version::V1 {
        assert!(
            p["pressure_source"]
                .as_str()
                .unwrap()
                .contains("no per-cgroup PSI"),
            "{}",
            p["pressure_source"]
        );
        // Each step wrote a limit below the usage it saw, and the limit was put back. Without
        // swap no limit goes below the anon (it would OOM-kill). With swap (the VM guests'
        // zram) there is no floor: the step that stopped the probe may go below the hot anon,
        // which the kernel then swaps out and the workload faults back in (5.10's v1
        // memory.stat has no refault counters: its major faults are what stops the probe),
        // and the steps before it may not.
        let swap = p["swap_possible"].as_bool().unwrap();
        for (i, s) in steps.iter().enumerate() {
            let w: u64 = s["wrote"].as_str().unwrap().parse().unwrap();
            assert!(w < s["usage_before_bytes"].as_u64().unwrap());
            if !swap || i + 1 < steps.len() {
                assert!(w >= 40 * MIB, "a limit {w} below the anon (step {})", i + 1);
            }
        }
        if swap {
            let stopped = p["stopped"].as_str().unwrap();
            assert!(stopped.contains("over budget"), "{stopped}");
        }
        assert!(
            p["restored"]
                .as_str()
                .unwrap()
                .contains("put back to 1073741824"),
            "{}",
            p["restored"]
        );
    } else {
        assert!(
            steps[0]["file"]
                .as_str()
                .unwrap()
                .ends_with("memory.reclaim")
        );
        assert!(p["restored"].is_null());
    }
}

/// v1: `memlens probe` refuses a cgroup memlens did not create this run, and writes nothing.
/// v2: `--dry-run` says exactly what it would write and writes nothing (pgsteal unchanged).
#[test]
fn probe_refuses_on_v1_and_dry_run_writes_nothing() {
    let cg = common::cgroup("probe-dry");
    common::limit(&cg, 512 * MIB);
    let w = common::Workload::start(&cg, &["anon=20M"]);
    let limit_file = match hier().version {
        Version::V1 => "memory.limit_in_bytes",
        Version::V2 => "memory.max",
    };
    let limit_before = common::kfile(&cg, limit_file);
    let stat_before = kstat(&cg);
    let path = cg.path().to_string();
    if hier().version == Version::V1 {
        let (code, _out, err) = common::run(&["probe", &path]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("run --probe"), "{err}");
        let (code, _out, err) = common::run(&["probe", &path, "--dry-run"]);
        assert_eq!(code, 2, "{err}");
    } else if no_memory_reclaim() {
        assert!(!cg.dir().join("memory.reclaim").exists());
        // No report possible (exit 1), said with the reason, nothing written.
        let (code, _out, err) = common::run(&["--json", "probe", &path, "--dry-run"]);
        assert_eq!(code, 1, "{err}");
        assert!(says_no_memory_reclaim(&err), "{err}");
        let (code, _out, err) = common::run(&["probe", &path]);
        assert_eq!(code, 1, "{err}");
        assert!(says_no_memory_reclaim(&err), "{err}");
        assert_eq!(stat_before.get("pgsteal"), kstat(&cg).get("pgsteal"));
    } else {
        let (code, out, err) = common::run(&["--json", "probe", &path, "--dry-run"]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["dry_run"], true);
        assert!(v["steps"].as_array().unwrap().is_empty());
        let plan = v["plan"].as_str().unwrap();
        assert!(plan.contains("memory.reclaim"), "{plan}");
        assert!(plan.contains('`'), "the exact first write: {plan}");
        assert!(err.contains("would"), "said before: {err}");
        let after = kstat(&cg);
        assert_eq!(stat_before.get("pgsteal"), after.get("pgsteal"));
        // The root is refused.
        assert_eq!(common::run(&["probe", "/"]).0, 2);
    }
    assert_eq!(common::kfile(&cg, limit_file), limit_before);
    w.finish();
}

/// v2 (the VM): 50 MiB touched in a loop, 200 MiB of cold anon and 300 MiB of cold page cache,
/// zram swap. `memlens probe` finds the hot set within 15% and keeps PSI under its budget.
#[test]
fn probe_finds_the_hot_set_on_v2() {
    if hier().version == Version::V1 {
        eprintln!("skipped: cgroup v1 has no memory.reclaim (run --probe covers v1)");
        return;
    }
    let cg = common::cgroup("probe-v2");
    if no_memory_reclaim() {
        // Before 5.19: refused with the reason, nothing written (asserted in
        // probe_refuses_on_v1_and_dry_run_writes_nothing, on a cgroup holding memory).
        assert!(!cg.dir().join("memory.reclaim").exists());
        let (code, _out, err) = common::run(&["--json", "probe", cg.path()]);
        assert_eq!(code, 1, "{err}");
        assert!(says_no_memory_reclaim(&err), "{err}");
        return;
    }
    let swap = common::swap_total() > 0;
    let file = cold_file("probe-v2", 300);
    let f = file.to_str().unwrap().to_string();
    cg.set_limit(Some(900 * MIB)).unwrap();
    let cold_anon = if swap { "anon=200M" } else { "anon=1M" };
    // Not common::Workload: READY comes after the last step, and the last step is the hot
    // loop that runs while the probe does. Wait for the memory instead.
    let mut cmd = std::process::Command::new(common::bin());
    cmd.arg("__workload")
        .args([
            &format!("drop={f}"),
            &format!("read={f}:1"),
            cold_anon,
            "anon=50M",
            "touch=300000",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    cg.join_before_exec(&mut cmd).unwrap();
    let w = common::Proc(cmd.spawn().unwrap());
    let want = if swap { 500 * MIB } else { 300 * MIB };
    let t = std::time::Instant::now();
    loop {
        let cur: u64 = common::kfile(&cg, "memory.current").trim().parse().unwrap();
        if cur >= want {
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(180),
            "the workload holds {cur} of {want} bytes"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let path = cg.path().to_string();
    let (code, out, err) = common::run(&["--json", "probe", &path, "--max-steps", "40"]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&v).unwrap());
    let hot = v["hot_bytes"].as_u64().unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert!(v["forms"].as_array().unwrap().len() >= 2, "forms asked");
    // 50 MiB of hot anon (+ the binary's text, page tables): within 15% of it, plus 8 MiB.
    assert!(
        hot >= 42 * MIB && hot as f64 <= 50.0 * MIB as f64 * 1.15 + 8.0 * MIB as f64,
        "hot set {} MiB (stopped: {})",
        hot / MIB,
        v["stopped"]
    );
    let budget = v["max_psi_percent"].as_f64().unwrap();
    for s in &steps[..steps.len().saturating_sub(1)] {
        assert!(
            s["psi_some_percent"].as_f64().unwrap_or(0.0) <= budget,
            "{s}"
        );
    }
    assert!(v["stopped"].as_str().unwrap().len() > 3);
    drop(w);
}
