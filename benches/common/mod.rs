//! What the benchmarks share: their knobs from the environment, a parent memcg of their own
//! (`memlens-test-bench-TAG-PID`, memory delegated on v2, removed on drop) and the resident
//! size of a process they run.
#![allow(dead_code)]

use memlens::cgroup::owned::OwnedCgroup;
use memlens::model::Hierarchy;

/// The number in the environment variable `k`, or `d`.
pub fn env(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

/// A memcg at the root named `memlens-test-bench-TAG-PID` (`memlens-test-bench-PID` for an
/// empty tag), with the memory controller enabled for its children on v2.
pub fn parent(h: &Hierarchy, tag: &str) -> OwnedCgroup {
    let name = match tag {
        "" => format!("memlens-test-bench-{}", std::process::id()),
        t => format!("memlens-test-bench-{t}-{}", std::process::id()),
    };
    let p = OwnedCgroup::create(h, "/", &name).expect("create parent");
    if h.version == memlens::model::Version::V2 {
        p.write("cgroup.subtree_control", "+memory")
            .expect("delegate memory");
    }
    p
}

/// A `/proc/PID/status` figure in kB (`VmRSS:`, `VmHWM:`), 0 when unreadable.
pub fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
