//! Real-kernel tests of the breakdown: each test builds its own memcg (`memlens-test-*`), runs
//! a workload that does one thing the seed articles describe, and checks that memlens's
//! counters moved the way the kernel documentation says they should. Runs on cgroup v1 on the
//! host and on cgroup v2 in the VM (tests/vm/run).

mod common;
use common::*;

fn show(cg: &memlens::cgroup::owned::OwnedCgroup) -> serde_json::Value {
    json(&["show", cg.path()])
}

/// lo ≤ v ≤ hi, widened by the kernel's memory.stat error (64 pages per CPU; 5.10 showed a
/// 32 MiB file 8 pages short).
fn in_range(what: &str, v: u64, lo: u64, hi: u64) {
    let (lo, hi) = (lo.saturating_sub(stat_slack()), hi + stat_slack());
    assert!(
        v >= lo && v <= hi,
        "{what} = {v} ({} MiB), expected {} MiB ..= {} MiB",
        v / MIB,
        lo / MIB,
        hi / MIB
    );
}

#[test]
fn touched_anon_is_charged_untouched_malloc_is_not() {
    let cg = cgroup("anon");
    let w = Workload::start(&cg, &["anon=64M", "reserve=256M"]);
    let r = show(&cg);
    // 64 MiB touched + the workload's own small heap/stack; the 256 MiB reservation is not charged.
    in_range("anon", u(&r, "breakdown.anon_bytes"), 64 * MIB, 72 * MIB);
    let p = &r["processes"][0];
    assert_eq!(p["pid"].as_i64(), Some(w.pid() as i64));
    assert!(
        u(p, "vm_size_bytes") >= 320 * MIB,
        "VmSize counts the untouched reservation: {p}"
    );
    // (per-CPU batched RSS counters since 6.1: allow a few pages short)
    in_range("RssAnon", u(p, "rss_anon_bytes"), 63 * MIB, 70 * MIB);
    assert!(u(&r, "breakdown.shmem_bytes") < MIB);
}

#[test]
fn written_file_is_page_cache_not_rss() {
    let dir = disk_dir();
    if on_tmpfs(&dir) {
        eprintln!(
            "skipped: {} is tmpfs (set MEMLENS_TEST_DIR to a disk file system)",
            dir.display()
        );
        return;
    }
    let f = dir.join(format!("memlens-test-write-{}", std::process::id()));
    let cg = cgroup("write");
    let w = Workload::start(&cg, &[&format!("write={}:32M", f.display())]);
    let r = show(&cg);
    in_range("file", u(&r, "breakdown.file_bytes"), 32 * MIB, 40 * MIB);
    assert!(u(&r, "breakdown.anon_bytes") < 8 * MIB);
    assert!(u(&r, "breakdown.shmem_bytes") < MIB);
    let p = &r["processes"][0];
    assert!(
        u(p, "rss_file_bytes") < 16 * MIB,
        "written (not mapped) file pages are in no RSS: {p}"
    );
    // Clean or dirty, written page cache is in usage: working set subtracts only inactive_file.
    assert!(u(&r, "usage_bytes") >= 32 * MIB);
    drop(w);
    let _ = std::fs::remove_file(&f);
}

#[test]
fn file_read_twice_moves_from_inactive_to_active() {
    let dir = disk_dir();
    if on_tmpfs(&dir) {
        eprintln!("skipped: {} is tmpfs", dir.display());
        return;
    }
    let f = dir.join(format!("memlens-test-read-{}", std::process::id()));
    let fs = f.display().to_string();
    let once = cgroup("read1");
    let w1 = Workload::start(
        &once,
        &[
            &format!("write={fs}:32M"),
            &format!("drop={fs}"),
            &format!("read={fs}:1"),
        ],
    );
    let r1 = show(&once);
    drop(w1);
    drop(once);
    let twice = cgroup("read2");
    let w2 = Workload::start(&twice, &[&format!("drop={fs}"), &format!("read={fs}:2")]);
    let r2 = show(&twice);
    drop(w2);
    let _ = std::fs::remove_file(&f);
    assert!(
        u(&r1, "breakdown.inactive_file_bytes") + stat_slack() >= 30 * MIB,
        "read once: inactive {}",
        r1["breakdown"]
    );
    assert!(
        u(&r1, "breakdown.active_file_bytes") < 8 * MIB,
        "read once: active {}",
        r1["breakdown"]
    );
    if mglru() {
        // Debian 6.12 runs the multi-generational LRU: a re-read raises the tier, not the
        // generation, so the pages stay inactive (memlens::kernel::mglru_enabled).
        assert!(
            u(&r2, "breakdown.active_file_bytes") < 8 * MIB,
            "read twice under MGLRU: active {}",
            r2["breakdown"]
        );
        return;
    }
    assert!(
        u(&r2, "breakdown.active_file_bytes") + stat_slack() >= 30 * MIB,
        "read twice: active {}",
        r2["breakdown"]
    );
    // kubectl top's working set keeps the active cache: the twice-read cgroup looks 32 MiB bigger.
    assert!(u(&r2, "views.working_set_bytes") >= u(&r1, "views.working_set_bytes") + 24 * MIB);
}

#[test]
fn dev_shm_file_is_shmem_counted_as_cache_and_not_reclaimable() {
    let f = format!("/dev/shm/memlens-test-shm-{}", std::process::id());
    let cg = cgroup("devshm");
    let w = Workload::start(&cg, &[&format!("write={f}:32M")]);
    let r = show(&cg);
    in_range("shmem", u(&r, "breakdown.shmem_bytes"), 32 * MIB, 33 * MIB);
    assert!(
        u(&r, "breakdown.file_bytes") + stat_slack() >= 32 * MIB,
        "shmem is counted in file/cache"
    );
    assert!(u(&r, "views.cadvisor_cache_bytes") + stat_slack() >= 32 * MIB);
    assert!(u(&r, "breakdown.anon_bytes") < 8 * MIB);
    assert!(
        u(&r, "not_reclaimable_bytes") >= 32 * MIB,
        "shmem is not reclaimable without swap"
    );
    assert!(u(&r, "reclaimable_bytes") < 8 * MIB);
    drop(w);
    let _ = std::fs::remove_file(&f);
}

#[test]
fn shared_file_mmap_is_process_rssfile_and_cgroup_cache() {
    let dir = disk_dir();
    if on_tmpfs(&dir) {
        eprintln!("skipped: {} is tmpfs", dir.display());
        return;
    }
    let f = dir.join(format!("memlens-test-mmap-{}", std::process::id()));
    let cg = cgroup("mmap");
    let w = Workload::start(&cg, &[&format!("mmap={}:32M", f.display())]);
    let r = show(&cg);
    let p = &r["processes"][0];
    assert!(
        u(p, "rss_file_bytes") >= 31 * MIB, // per-CPU batched RSS counters (6.1+): a few pages short
        "mapped file pages are in the process's RssFile: {p}"
    );
    assert!(u(&r, "breakdown.file_mapped_bytes") + stat_slack() >= 32 * MIB);
    assert!(
        u(&r, "breakdown.file_bytes") + stat_slack() >= 32 * MIB,
        "and in the cgroup's cache"
    );
    assert!(u(&r, "breakdown.anon_bytes") < 8 * MIB, "not in anon/rss");
    assert!(
        u(&r, "views.cadvisor_rss_bytes") < 8 * MIB,
        "cAdvisor's rss misses them"
    );
    drop(w);
    let _ = std::fs::remove_file(&f);
}

#[test]
fn sysv_shm_is_shmem_and_process_rssshmem() {
    let cg = cgroup("sysv");
    let _w = Workload::start(&cg, &["shm=32M"]);
    let r = show(&cg);
    in_range("shmem", u(&r, "breakdown.shmem_bytes"), 32 * MIB, 33 * MIB);
    let p = &r["processes"][0];
    assert!(
        u(p, "rss_shmem_bytes") >= 31 * MIB,
        "attached SysV shm is in RssShmem: {p}"
    );
    assert!(u(&r, "breakdown.anon_bytes") < 8 * MIB);
}

/// Reads `f` until two reads in a row agree (the cgroup is quiescent) and returns the value.
fn stable<T: PartialEq + std::fmt::Debug>(mut f: impl FnMut() -> T) -> T {
    let mut prev = f();
    for _ in 0..20 {
        let cur = f();
        if cur == prev {
            return cur;
        }
        prev = cur;
    }
    prev
}

#[test]
fn every_number_equals_the_kernels_own_file() {
    let cg = cgroup("exact");
    let _w = Workload::start(&cg, &["anon=16M", "shm=8M"]);
    // Read the kernel, then memlens, then the kernel again; accept only when both kernel reads
    // agree with each other, so the comparison is "at the same moment".
    for attempt in 0..10 {
        let before = stable(|| (kfile(&cg, usage_file()), kstat(&cg)));
        let r = show(&cg);
        let o = json(&["--all"]);
        let after = (kfile(&cg, usage_file()), kstat(&cg));
        if before != after {
            eprintln!("attempt {attempt}: counters moved, retrying");
            continue;
        }
        let usage: u64 = before.0.trim().parse().unwrap();
        let st = &before.1;
        let k = |n: &str| {
            *st.get(&key(n))
                .unwrap_or_else(|| panic!("{} missing", key(n)))
        };
        assert_eq!(u(&r, "usage_bytes"), usage);
        for n in [
            "anon",
            "file",
            "active_file",
            "inactive_file",
            "shmem",
            "file_mapped",
        ] {
            assert_eq!(u(&r, &format!("breakdown.{n}_bytes")), k(n), "{n}");
        }
        assert_eq!(u(&r, "views.working_set_bytes"), usage - k("inactive_file"));
        assert_eq!(
            u(&r, "views.docker_stats_bytes"),
            usage - k("inactive_file")
        );
        assert_eq!(u(&r, "views.cadvisor_rss_bytes"), k("anon"));
        assert_eq!(u(&r, "views.cadvisor_cache_bytes"), k("file"));
        let dirty = k("file_dirty") + k("file_writeback");
        let slab = st.get("slab_reclaimable").copied().unwrap_or(0);
        assert_eq!(
            u(&r, "reclaimable_bytes"),
            k("active_file") + k("inactive_file") - dirty + slab
        );
        assert!(
            r["limit_bytes"].is_null(),
            "no limit set: null, not 9223372036854771712"
        );
        let row = o["cgroups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["path"] == cg.path())
            .expect("overview row");
        assert_eq!(u(row, "usage_bytes"), usage);
        assert_eq!(u(row, "anon_bytes"), k("anon"));
        assert_eq!(u(row, "shmem_bytes"), k("shmem"));
        assert_eq!(u(row, "working_set_bytes"), usage - k("inactive_file"));
        // Process figures equal /proc/PID/status.
        let p = &r["processes"][0];
        let pid = p["pid"].as_i64().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb = |name: &str| -> u64 {
            let l = status.lines().find(|l| l.starts_with(name)).unwrap();
            l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
        };
        assert_eq!(u(p, "rss_anon_bytes"), kb("RssAnon:"));
        assert_eq!(u(p, "rss_shmem_bytes"), kb("RssShmem:"));
        return;
    }
    panic!("the test cgroup never stayed still long enough to compare");
}

#[test]
fn limit_is_shown_with_headroom_and_percent() {
    let cg = cgroup("limit");
    limit(&cg, 128 * MIB);
    let _w = Workload::start(&cg, &["anon=32M"]);
    let r = show(&cg);
    assert_eq!(u(&r, "limit_bytes"), 128 * MIB);
    let nr = u(&r, "not_reclaimable_bytes");
    assert_eq!(u(&r, "oom_headroom_bytes"), 128 * MIB - nr);
    assert!(nr >= 32 * MIB);
    let o = json(&["--all"]);
    let row = o["cgroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["path"] == cg.path())
        .unwrap();
    assert_eq!(u(row, "limit_bytes"), 128 * MIB);
}

#[test]
fn page_cache_is_reclaimed_at_the_limit_without_oom() {
    // Seed 000's experiment scaled down: page cache fills the limit, then anon grows into it;
    // the kernel drops cache instead of killing.
    let dir = disk_dir();
    if on_tmpfs(&dir) {
        eprintln!("skipped: {} is tmpfs", dir.display());
        return;
    }
    let f = dir.join(format!("memlens-test-reclaim-{}", std::process::id()));
    let cg = cgroup("reclaim");
    limit(&cg, 64 * MIB);
    let w = Workload::start(&cg, &[&format!("write={}:48M", f.display()), "anon=40M"]);
    let r = show(&cg);
    assert!(u(&r, "usage_bytes") <= 64 * MIB);
    assert!(u(&r, "breakdown.anon_bytes") + stat_slack() >= 40 * MIB);
    assert!(
        u(&r, "breakdown.file_bytes") < 24 * MIB,
        "cache was reclaimed to make room: {}",
        r["breakdown"]
    );
    assert_eq!(r["events"]["oom_kills"].as_u64().unwrap_or(0), 0);
    drop(w);
    let _ = std::fs::remove_file(&f);
}

#[test]
fn pid_target_and_ps_and_capture_roundtrip() {
    let cg = cgroup("target");
    let w = Workload::start(&cg, &["anon=8M"]);
    let pid = w.pid().to_string();
    let by_pid = json(&["show", &pid]);
    assert_eq!(by_pid["cgroup"]["path"], cg.path());
    let ps = json(&["ps", &pid]);
    assert_eq!(ps["processes"][0]["pid"].as_i64(), Some(w.pid() as i64));
    let by_dir = json(&["show", &cg.dir().display().to_string()]);
    assert_eq!(by_dir["cgroup"]["path"], cg.path());
    // Capture, then analyse the capture: same figures as the live read at capture time.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c.tar.gz");
    let (code, _, err) = run(&["capture", cg.path(), "-o", &out.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let from = json(&["show", cg.path(), "--from", &out.display().to_string()]);
    assert_eq!(from["cgroup"]["path"], cg.path());
    assert_eq!(from["processes"][0]["pid"].as_i64(), Some(w.pid() as i64));
    assert!(u(&from, "breakdown.anon_bytes") + stat_slack() >= 8 * MIB);
    let ov = json(&["--all", "--from", &out.display().to_string()]);
    assert!(
        ov["cgroups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["path"] == cg.path())
    );
}
