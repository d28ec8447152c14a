//! The breakdown on files captured from real kernels (tests/fixtures/kernel/*, each with a
//! SOURCE naming where it came from), read through `--from`. The expected values were worked
//! out by hand from the fixture text and the documented formulas, not by running memlens.
//! Only the mountinfo line that points memlens at the files is written here.

mod common;
use common::run;
use std::fs;
use std::path::Path;

fn tree(v2: bool, dir: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let mi = if v2 {
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
    } else {
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    };
    fs::create_dir_all(r.join("proc/self")).unwrap();
    fs::write(r.join("proc/self/mountinfo"), mi).unwrap();
    let base = if v2 {
        r.join("sys/fs/cgroup")
    } else {
        r.join("sys/fs/cgroup/memory")
    };
    fs::create_dir_all(base.join(dir)).unwrap();
    if v2 {
        fs::write(
            base.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
    }
    for (name, text) in files {
        fs::write(base.join(dir).join(name), text).unwrap();
    }
    d
}

fn show(d: &Path, target: &str) -> serde_json::Value {
    let (code, out, err) = run(&["show", target, "--from", &d.display().to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

macro_rules! fx {
    ($dir:literal, $f:literal) => {
        ($f, include_str!(concat!("fixtures/kernel/", $dir, "/", $f)))
    };
}

#[test]
fn v2_before_5_18_sums_the_kernel_parts() {
    let d = tree(
        true,
        "fx",
        &[
            fx!("v2-5.13-5.17-sysinfo-1219", "memory.stat"),
            fx!("v2-5.13-5.17-sysinfo-1219", "memory.current"),
            fx!("v2-5.13-5.17-sysinfo-1219", "memory.max"),
        ],
    );
    let v = show(d.path(), "/fx");
    assert_eq!(v["cgroup"]["version"], 2);
    assert_eq!(v["usage_bytes"], 2481475584u64);
    assert_eq!(v["limit_bytes"], 7864320000u64);
    // No `kernel` key before 5.18: kernel_stack + pagetables + percpu + slab (+ vmalloc, absent).
    assert_eq!(v["breakdown"]["kernel_bytes"], 8326928);
    assert!(
        v["breakdown"]["sources"]["kernel"]
            .as_str()
            .unwrap()
            .contains("before 5.18")
    );
    assert_eq!(v["breakdown"]["anon_bytes"], 2472849408u64);
    assert_eq!(v["breakdown"]["sock_bytes"], 4096);
    assert_eq!(v["breakdown"]["residual_bytes"], 237808);
    assert_eq!(v["views"]["working_set_bytes"], 2481471488u64);
    assert_eq!(v["views"]["cadvisor_rss_bytes"], 2472849408u64);
    assert_eq!(v["reclaimable_bytes"], 428464);
    assert_eq!(v["not_reclaimable_bytes"], 2480805216u64);
    assert_eq!(v["oom_headroom_bytes"], 5383514784u64);
    // Files this kernel/capture lacks are null, not 0.
    assert!(v["breakdown"]["swap_bytes"].is_null());
    assert!(v["usage"]["peak"].is_null());
}

#[test]
fn v2_6x_with_kernel_key_swap_peak_events_and_pressure() {
    let d = tree(
        true,
        "session",
        &[
            fx!("v2-6.x-fedora-session", "memory.stat"),
            fx!("v2-6.x-fedora-session", "memory.current"),
            fx!("v2-6.x-fedora-session", "memory.max"),
            fx!("v2-6.x-fedora-session", "memory.high"),
            fx!("v2-6.x-fedora-session", "memory.low"),
            fx!("v2-6.x-fedora-session", "memory.min"),
            fx!("v2-6.x-fedora-session", "memory.peak"),
            fx!("v2-6.x-fedora-session", "memory.events"),
            fx!("v2-6.x-fedora-session", "memory.events.local"),
            fx!("v2-6.x-fedora-session", "memory.pressure"),
            fx!("v2-6.x-fedora-session", "memory.swap.current"),
            fx!("v2-6.x-fedora-session", "memory.swap.max"),
            fx!("v2-6.x-fedora-session", "memory.oom.group"),
            fx!("v2-6.x-fedora-session", "cgroup.stat"),
        ],
    );
    let v = show(d.path(), "/session");
    assert_eq!(v["usage_bytes"], 10498404352u64);
    assert!(v["limit_bytes"].is_null(), "memory.max is `max`");
    assert_eq!(v["limits"]["max"], "max");
    assert_eq!(v["breakdown"]["kernel_bytes"], 195010560);
    assert_eq!(v["breakdown"]["sources"]["kernel"], "memory.stat kernel");
    assert_eq!(v["breakdown"]["residual_bytes"], 270860288);
    assert_eq!(v["breakdown"]["swap_bytes"], 17715200);
    assert_eq!(v["views"]["working_set_bytes"], 3812655104u64);
    assert_eq!(v["views"]["docker_stats_bytes"], 3812655104u64);
    assert_eq!(v["reclaimable_bytes"], 8792938072u64);
    assert_eq!(v["not_reclaimable_bytes"], 1434466728u64);
    assert!(v["oom_headroom_bytes"].is_null(), "no limit");
    // Unknown/new keys are kept.
    assert!(v["stat"]["sec_pagetables"].is_u64());
    assert!(v["stat"]["zswap"].is_u64());
    assert!(v["events"]["events"]["oom_group_kill"].is_u64());
    assert!(v["pressure"]["some"]["total_usec"].is_u64());
    assert!(v["usage"]["peak"].is_u64());
}

#[test]
fn v1_4_4_without_shmem_or_kmem_shows_unavailable() {
    let d = tree(
        false,
        "lxc",
        &[
            fx!("v1-4.4-xenial-lxd", "memory.stat"),
            fx!("v1-4.4-xenial-lxd", "memory.usage_in_bytes"),
        ],
    );
    let v = show(d.path(), "/lxc");
    assert_eq!(v["cgroup"]["version"], 1);
    assert_eq!(v["usage_bytes"], 217899008);
    assert_eq!(
        v["breakdown"]["anon_bytes"], 47849472,
        "total_rss, not the local rss"
    );
    assert_eq!(v["breakdown"]["file_bytes"], 165269504);
    assert!(
        v["breakdown"]["shmem_bytes"].is_null(),
        "4.4 has no shmem key"
    );
    assert!(v["breakdown"]["kernel_bytes"].is_null());
    assert!(v["breakdown"]["residual_bytes"].is_null());
    assert_eq!(v["views"]["working_set_bytes"], 183693312);
    assert_eq!(v["views"]["docker_stats_bytes"], 183693312);
}

#[test]
fn v1_2013_unlimited_is_the_unrounded_maximum_too() {
    let d = tree(
        false,
        "old",
        &[fx!("v1-3.x-docker-runmetrics-2013", "memory.stat")],
    );
    let v = show(d.path(), "/old");
    assert_eq!(
        v["limits"]["hierarchical"], "max",
        "9223372036854775807 is unlimited"
    );
    assert!(v["limit_bytes"].is_null());
    assert!(
        v["usage_bytes"].is_null(),
        "no usage file in this capture: unavailable, not 0"
    );
    assert_eq!(v["breakdown"]["anon_bytes"], 1930993664u64);
    assert_eq!(v["breakdown"]["inactive_file_bytes"], 7003344896u64);
}

#[test]
fn v1_amzn2_pod_limit_and_oom_kill_counter() {
    let d = tree(
        false,
        "pod",
        &[
            fx!("v1-amzn2-k8s-pod", "memory.stat"),
            fx!("v1-amzn2-k8s-pod", "memory.usage_in_bytes"),
            fx!("v1-amzn2-k8s-pod", "memory.limit_in_bytes"),
            fx!("v1-amzn2-k8s-pod", "memory.oom_control"),
        ],
    );
    let v = show(d.path(), "/pod");
    assert_eq!(v["limit_bytes"], 2147483648u64);
    assert_eq!(
        v["events"]["oom_kills"], 0,
        "oom_control has the oom_kill line (4.13+)"
    );
    assert_eq!(v["breakdown"]["anon_bytes"], 1119465472u64);
}

/// A capture taken by `memlens capture` on a real cgroup v2 kernel (Debian 6.1 in the VM, by
/// tests/vm/vm-capture.sh) while a known workload held 24 MiB anon, 8 MiB SysV shm and a
/// 16 MiB file written to ext4; show.json is what the live `memlens show --json` printed a
/// moment before.
#[test]
fn v2_capture_from_the_vm_reads_back() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures/v2-debian-6.1");
    let cap = dir.join("v2-capture.tar.gz");
    let v = show(&cap, "/memlens-test-capture");
    let live: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("show.json")).unwrap()).unwrap();
    const MIB: u64 = 1 << 20;
    let n = |v: &serde_json::Value, k: &str| v["breakdown"][k].as_u64().unwrap();
    assert_eq!(v["cgroup"]["version"], 2);
    assert!(n(&v, "anon_bytes") >= 24 * MIB);
    assert!(n(&v, "shmem_bytes") >= 8 * MIB);
    assert!(
        n(&v, "file_bytes") >= 24 * MIB,
        "16 MiB written + 8 MiB shm"
    );
    assert!(v["events"]["events"]["oom_kill"].is_u64());
    assert!(v["pressure"]["some"]["avg10"].is_number());
    assert!(v["usage"]["peak"].is_u64(), "memory.peak exists on 6.1");
    assert_eq!(v["breakdown"]["sources"]["kernel"], "memory.stat kernel");
    let p = &v["processes"][0];
    assert!(p["pss_bytes"].is_u64() && p["rss_shmem_bytes"].as_u64().unwrap() >= 8 * MIB);
    // The live run and the capture agree to within what a live counter moves in a moment.
    for k in ["anon_bytes", "shmem_bytes", "file_bytes"] {
        assert_eq!(n(&v, k), n(&live, k), "{k}");
    }
    let du = v["usage_bytes"]
        .as_u64()
        .unwrap()
        .abs_diff(live["usage_bytes"].as_u64().unwrap());
    assert!(du < MIB, "usage differs by {du}");
    // And the overview of the capture lists the cgroup.
    let (code, out, err) = run(&["--all", "--from", &cap.display().to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/memlens-test-capture"));
}

/// issue 19 item 13: without a shmem key (v1 before 4.x) the OOM headroom is bounded: between
/// the figure with no page cache reclaimable and with all of it.
#[test]
fn v1_without_shmem_bounds_the_oom_headroom() {
    let d = tree(
        false,
        "lxc",
        &[
            fx!("v1-4.4-xenial-lxd", "memory.stat"),
            fx!("v1-4.4-xenial-lxd", "memory.usage_in_bytes"),
            ("memory.limit_in_bytes", "536870912\n"),
        ],
    );
    let v = show(d.path(), "/lxc");
    let (anon, file) = (47849472u64, 165269504u64);
    let limit = 536870912u64;
    assert!(v["oom_headroom_bytes"].is_null(), "{v}");
    assert_eq!(v["oom_headroom_min_bytes"], limit - anon - file);
    assert_eq!(v["oom_headroom_max_bytes"], limit - anon);
    let src = v["derived_sources"]["oom_headroom"].as_str().unwrap_or("");
    assert!(src.contains("no shmem key"), "{src}");
}

/// issue 19 item 10: the v2 root (6.1 VM capture) is explained honestly: no residual of
/// −(kernel + sock), no memory.current label it lacks, no "memory.peak needs 5.19+" on 6.1.
#[test]
fn v2_root_is_explained_honestly() {
    let cap = "tests/fixtures/captures/v2-debian-6.1/v2-capture.tar.gz";
    let (code, out, err) = run(&["show", "/", "--from", cap, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["breakdown"]["residual_bytes"].is_null(),
        "{}",
        v["breakdown"]
    );
    let (code, out, err) = run(&["show", "/", "--from", cap, "--color", "never"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("5.19"), "{out}");
    assert!(out.contains("the v2 root has no memory.current"), "{out}");
    assert!(!out.contains("(memory.current, memory.stat)"), "{out}");
}
