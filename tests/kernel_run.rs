//! Real-kernel tests of `memlens run`: exit-status passthrough, an OOM kill, page cache kept
//! under a limit by reclaim, peaks that match what the workload did, and no memcg left behind
//! in any of these cases, including a child killed by a signal and memlens itself getting
//! SIGINT.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `memlens-run-PID` directories whose memlens process is gone: leaks.
fn assert_no_leftover_run_cgroups() {
    for e in std::fs::read_dir(hier().mount_point).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = n.strip_prefix("memlens-run-") {
            assert!(
                Path::new(&format!("/proc/{pid}")).exists(),
                "memcg {n} left behind by a memlens that has exited"
            );
        }
    }
}

/// Runs `memlens run --json -o FILE ARGS` and returns (exit code, report).
fn run_json(args: &[&str]) -> (i32, serde_json::Value) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let out = tmp.path().display().to_string();
    let mut a = vec!["run", "--json", "-o", &out];
    a.extend_from_slice(args);
    let (code, _, err) = run(&a);
    let text = std::fs::read_to_string(tmp.path()).unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}\n{err}"));
    assert_no_leftover_run_cgroups();
    (code, v)
}

fn bin_s() -> String {
    bin().display().to_string()
}

#[test]
fn exit_code_is_passed_through() {
    let (code, _, err) = run(&["run", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("exited with code 7"), "{err}");
    let (code, v) = run_json(&["--", "sh", "-c", "exit 3"]);
    assert_eq!(code, 3);
    assert_eq!(v["outcome"], "exited");
    assert_eq!(v["exit_code"], 3);
    assert!(v["signal"].is_null());
    assert!(v["wall_seconds"].as_f64().unwrap() >= 0.0);
    assert!(
        v["recommendation_formula"]
            .as_str()
            .unwrap()
            .contains("1.15")
    );
}

#[test]
fn oom_kill_is_reported_as_such_with_137() {
    let (code, v) = run_json(&[
        "--limit",
        "64M",
        "--swap",
        "0",
        "--",
        &bin_s(),
        "__workload",
        "grow=100M",
    ]);
    assert_eq!(code, 137, "{v}");
    assert_eq!(v["outcome"], "oom_killed", "{v}");
    assert_eq!(v["signal"], 9);
    assert!(u(&v, "events.oom_kill") >= 1, "{v}");
    if v["cgroup_version"] == 2 {
        assert!(u(&v, "events.max") >= 1, "{v}");
    }
    // (v1 with memsw.limit_in_bytes = limit: this 6.18 host moves neither memory.failcnt nor
    // memory.memsw.failcnt on the way to the OOM kill — observed, so not asserted there.)
    // Usage never went over the limit (the kernel's own high-water mark included).
    assert!(u(&v, "peak.usage_bytes") <= 64 * MIB, "{v}");
    let src = v["peak_source"]["usage"].as_str().unwrap_or_default();
    if v["cgroup_version"] == 2 && !release().at_least(5, 19) {
        // No memory.peak before 5.19: the peak is the highest sample, which can miss the
        // last allocations before the kill.
        assert!(
            src.starts_with("highest of"),
            "sampled on {:?}: {v}",
            release()
        );
    } else {
        assert_eq!(
            u(&v, "peak.usage_bytes"),
            64 * MIB,
            "the kernel's high-water mark: {v}"
        );
        assert!(
            src.contains("memory.peak")
                || src.contains("max_usage_in_bytes")
                || src.starts_with("highest"),
            "{v}"
        );
    }
    // A 50 ms sample can miss the last allocations before the kill, so the recommendation
    // starts from the limit itself.
    assert!(
        u(&v, "recommended_limit_bytes") >= 64 * MIB * 115 / 100,
        "{v}"
    );
}

#[test]
fn page_cache_heavy_command_stays_under_its_limit_by_reclaim() {
    let dir = disk_dir();
    if on_tmpfs(&dir) {
        eprintln!("skipped: {} is tmpfs", dir.display());
        return;
    }
    let f = dir.join(format!("memlens-test-runcache-{}", std::process::id()));
    let (code, v) = run_json(&[
        "--limit",
        "48M",
        "--",
        &bin_s(),
        "__workload",
        &format!("write={}:128M", f.display()),
        &format!("read={}:1", f.display()),
        "exit",
    ]);
    let _ = std::fs::remove_file(&f);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"], "exited");
    assert_eq!(v["events"]["oom_kill"].as_u64(), Some(0), "{v}");
    assert!(u(&v, "events.max") >= 1, "the limit was hit: {v}");
    // (memory.peak can pass memory.max by a little: charges the kernel may not fail are
    // forced past it. Debian's 6.1 in the VM: 212 KiB over a 48 MiB limit.)
    assert!(u(&v, "peak.usage_bytes") <= 48 * MIB + stat_slack(), "{v}");
    assert!(u(&v, "peak.file_bytes") >= 16 * MIB, "{v}");
    // 128 MiB of file went through a 48 MiB memcg: the recommendation ignores page cache.
    assert!(u(&v, "recommended_limit_bytes") < 24 * MIB, "{v}");
}

/// Peaks equal what the workload did: anon 64 MiB and SysV shm 16 MiB, each within
/// [size, size + 8 MiB] (the workload's own heap, stack and page tables come on top; shmem
/// within 1 MiB). The memory is held for 400 ms, 8 sampling intervals.
#[test]
fn json_peaks_match_the_workload() {
    let tl = tempfile::NamedTempFile::new().unwrap();
    let tls = tl.path().display().to_string();
    let (code, v) = run_json(&[
        "--timeline",
        &tls,
        "--",
        &bin_s(),
        "__workload",
        "anon=64M",
        "shm=16M",
        "sleep=400",
        "exit",
    ]);
    assert_eq!(code, 0, "{v}");
    let anon = u(&v, "peak.anon_bytes");
    assert!(
        (64 * MIB - stat_slack()..=72 * MIB).contains(&anon),
        "anon {anon}: {v}"
    );
    let shmem = u(&v, "peak.shmem_bytes");
    assert!(
        (16 * MIB - stat_slack()..=17 * MIB + stat_slack()).contains(&shmem),
        "shmem {shmem}: {v}"
    );
    assert!(u(&v, "peak.usage_bytes") >= 80 * MIB, "{v}");
    assert!(u(&v, "peak.working_set_bytes") >= 80 * MIB, "{v}");
    assert!(
        u(&v, "peak.file_bytes") + stat_slack() >= 16 * MIB,
        "shmem is in file: {v}"
    );
    for k in ["kernel_bytes", "swap_bytes"] {
        assert!(v["peak"].get(k).is_some(), "peak.{k} missing: {v}");
    }
    let rec = u(&v, "recommended_limit_bytes");
    assert!(
        ((80 * MIB) * 115 / 100..=100 * MIB).contains(&rec),
        "{rec}: {v}"
    );
    assert!(u(&v, "samples") >= 8, "{v}");
    let csv = std::fs::read_to_string(tl.path()).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("seconds,usage_bytes,working_set_bytes,anon_bytes")
    );
    assert!(lines.count() >= 8, "{csv}");
}

#[test]
fn child_killed_by_a_signal_gives_128_plus_n_and_no_leftover() {
    let (code, v) = run_json(&["--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(code, 143, "{v}");
    assert_eq!(v["outcome"], "signaled");
    assert_eq!(v["signal"], 15);
    let (code, v) = run_json(&["--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(code, 137);
    assert_eq!(
        v["outcome"], "signaled",
        "SIGKILL without an OOM kill is not an OOM: {v}"
    );
}

#[test]
fn leftover_background_processes_are_killed_and_the_memcg_removed() {
    let (code, v) = run_json(&["--", "sh", "-c", "sleep 30 & exit 0"]);
    assert_eq!(code, 0);
    assert_eq!(u(&v, "cleanup.leftover_processes"), 1, "{v}");
    assert_eq!(v["cleanup"]["removed"], true);
}

#[test]
fn sigint_to_memlens_is_forwarded_and_cleans_up() {
    let child = Command::new(bin())
        .args([
            "run",
            "--",
            &bin_s(),
            "__workload",
            "anon=8M",
            "sleep=30000",
            "exit",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let memlens = child.id();
    let dir = hier().mount_point.join(format!("memlens-run-{memlens}"));
    // Wait until the workload is in the memcg.
    let deadline = Instant::now() + Duration::from_secs(10);
    let workload: i32 = loop {
        let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if let Some(p) = pids.lines().next().and_then(|l| l.trim().parse().ok()) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the workload never appeared in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(memlens as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("SIGINT"), "{err}");
    // SAFETY: probing with signal 0.
    let alive = unsafe { libc::kill(workload, 0) } == 0;
    assert!(!alive, "the workload {workload} survived");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert_no_leftover_run_cgroups();
}

#[test]
fn lingering_page_cache_is_reported_and_reclaim_before_exit_prevents_it() {
    let dir = disk_dir();
    if on_tmpfs(&dir) {
        eprintln!("skipped: {} is tmpfs", dir.display());
        return;
    }
    let f = dir.join(format!("memlens-test-linger-{}", std::process::id()));
    let w = format!("write={}:16M", f.display());
    let (code, v) = run_json(&["--", &bin_s(), "__workload", &w, "exit"]);
    assert_eq!(code, 0);
    assert!(
        u(&v, "cleanup.lingering_bytes") + stat_slack() >= 16 * MIB,
        "{v}"
    );
    assert!(
        v["cleanup"]["message"].as_str().unwrap().contains("dying"),
        "{v}"
    );
    let (code, v) = run_json(&[
        "--reclaim-before-exit",
        "--",
        &bin_s(),
        "__workload",
        &w,
        "exit",
    ]);
    let _ = std::fs::remove_file(&f);
    assert_eq!(code, 0);
    assert!(v["cleanup"]["lingering_bytes"].is_null(), "{v}");
    let how = v["cleanup"]["reclaim"].as_str().unwrap_or_default();
    let want = match (v["cgroup_version"].as_u64(), release().at_least(5, 19)) {
        (Some(1), _) => "memory.force_empty",
        (_, true) => "memory.reclaim",
        // 5.10 to 5.18: no memory.reclaim; our own memcg's memory.high is lowered instead.
        (_, false) => "memory.high lowered to 0",
    };
    assert!(how.starts_with(want), "{want}: {v}");
}

#[test]
fn bad_options_are_explained() {
    if hier().version == memlens::model::Version::V1 {
        let (code, _, err) = run(&["run", "--high", "64M", "--", "true"]);
        assert_eq!(code, 2);
        assert!(err.contains("v2"), "{err}");
    }
    let (code, _, err) = run(&["run", "--", "/no/such/command"]);
    assert_eq!(code, 127, "{err}");
    assert_no_leftover_run_cgroups();
}

/// memory.peak reset per file descriptor (6.12+): the timeline's last interval holds the
/// workload's whole 32 MiB even though the sample after its exit sees almost nothing; older
/// kernels and v1 say why they cannot.
#[test]
fn interval_peaks_from_a_resettable_memory_peak() {
    let tl = std::env::temp_dir().join(format!("memlens-test-timeline-{}.csv", std::process::id()));
    let tls = tl.display().to_string();
    let (code, v) = run_json(&[
        "--interval",
        "5s",
        "--timeline",
        &tls,
        "--",
        &bin_s(),
        "__workload",
        "anon=32M",
        "exit",
    ]);
    assert_eq!(code, 0, "{v}");
    let csv = std::fs::read_to_string(&tl).unwrap_or_default();
    let _ = std::fs::remove_file(&tl);
    let src = v["interval_peak_source"].as_str().unwrap_or_default();
    let header = csv.lines().next().unwrap_or_default();
    assert!(header.ends_with(",usage_interval_peak_bytes"), "{header}");
    let last: Vec<&str> = csv.lines().last().unwrap_or_default().split(',').collect();
    let peak_col = last.last().copied().unwrap_or_default();
    let v2 = v["cgroup_version"] == 2;
    if v2 && release().at_least(6, 12) {
        assert!(src.contains("exact"), "{v}");
        let p: u64 = peak_col.parse().expect("interval peak in the timeline");
        assert!(p >= 32 * MIB, "{csv}");
        assert!(u(&v, "peak.usage_bytes") >= 32 * MIB, "{v}");
    } else {
        assert!(peak_col.is_empty(), "{csv}");
        let why = if !v2 {
            "cgroup v1"
        } else if release().at_least(5, 19) {
            "cannot be reset per file descriptor"
        } else {
            "memory.peak is missing"
        };
        assert!(src.contains(why), "{why}: {v}");
    }
}
