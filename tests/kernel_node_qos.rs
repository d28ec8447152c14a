//! A real memory.high livelock (cgroup v2; tests/vm/run): a memcg of ours with memory.high
//! far below what its workload touches and no swap. The task is throttled at memory.high,
//! never OOM-killed; `memlens explain --sample` must call it a livelock. On v1 (no
//! memory.high) the test says so and passes.

mod common;
use common::*;
use memlens::model::Version;
use std::process::{Command, Stdio};

#[test]
fn a_real_memory_high_livelock_is_detected() {
    if hier().version != Version::V2 {
        eprintln!("skipped: memory.high is cgroup v2 only (this host is v1)");
        return;
    }
    let cg = cgroup("livelock");
    limit(&cg, 512 * MIB); // also memory.swap.max = 0
    cg.write("memory.high", &(32 * MIB).to_string()).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["__workload", "grow=256M"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cg.join_before_exec(&mut cmd).unwrap();
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let v = json(&["explain", cg.path(), "--sample", "3s"]);
    let _ = child.kill();
    let _ = child.wait();
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "memory-high-livelock")
        .unwrap_or_else(|| panic!("no livelock finding: {v:#}"))
        .clone();
    assert_eq!(f["severity"], "critical", "{f:#}");
    let ev = |w: &str| {
        f["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["what"] == w)
            .unwrap_or_else(|| panic!("no evidence {w}"))["value"]
            .clone()
    };
    assert_eq!(ev("swap for anon"), "none");
    assert!(ev("memory.high breaches per second").as_str().is_some());
}

/// A real breach of memory.low (cgroup v2): a child whose memory.low is `max` fills its
/// parent's memory.max with page cache. The parent's limit reclaim finds only protected
/// memory, so the kernel retries ignoring memory.low and counts each such reclaim in the
/// child's memory.events `low` (mm/vmscan.c shrink_node_memcgs, memcg_low_reclaim). `explain`
/// must report `protection-breached` with that count.
#[test]
fn a_real_memory_low_breach_is_reported() {
    if hier().version != Version::V2 {
        eprintln!("skipped: memory.low is cgroup v2 only (this host is v1)");
        return;
    }
    let parent = cgroup("protect");
    limit(&parent, 48 * MIB);
    parent.write("cgroup.subtree_control", "+memory").unwrap();
    let child = parent.create_child("memlens-protected").unwrap();
    child.write("memory.low", "max").unwrap();
    let file = disk_dir().join(format!("memlens-test-protect-{}", std::process::id()));
    let f = file.to_string_lossy().to_string();
    let w = Workload::start(
        &child,
        &[&format!("write={f}:128M"), &format!("read={f}:2")],
    );
    let low = |cg: &memlens::cgroup::owned::OwnedCgroup| {
        kfile(cg, "memory.events")
            .lines()
            .find_map(|l| l.strip_prefix("low "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("memory.events low")
    };
    let n = low(&child);
    let v = json(&["explain", child.path()]);
    let n_after = low(&child);
    w.finish();
    let _ = std::fs::remove_file(&file);
    assert!(
        n > 0,
        "the kernel counted no memory.low breach: {}",
        kfile(&child, "memory.events")
    );
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "protection-breached")
        .unwrap_or_else(|| panic!("no protection-breached finding: {v:#}"))
        .clone();
    let breaches: u64 = f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["what"] == "breaches")
        .and_then(|e| e["value"].as_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no breaches evidence: {f:#}"));
    assert!(
        (n..=n_after).contains(&breaches),
        "breaches {breaches} not within memory.events low {n}..={n_after}"
    );
    drop(child);
}
