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
