//! Real-kernel tests of `memlens lab`: every scenario must come out `as_expected` on this
//! kernel (v1 on the host, v2 in the VM), except `swap`, which is `skipped` on a host without
//! swap. The scenarios run one at a time: the dying-cgroup scenario counts dying memcgs on the
//! whole host, and another scenario's removal running alongside would move that count.

mod common;
use common::*;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn scenario(name: &str) -> serde_json::Value {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = disk_dir().display().to_string();
    let v = json(&["lab", name, "--dir", &dir]);
    let arr = v["scenarios"]
        .as_array()
        .expect("lab --json has a scenarios array");
    assert_eq!(arr.len(), 1, "{v}");
    let r = arr[0].clone();
    assert_eq!(r["name"], name);
    for k in ["verdict", "reason", "expected", "counters"] {
        assert!(!r[k].is_null(), "{k} missing: {r}");
    }
    r
}

fn host_has_swap() -> bool {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("SwapTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .is_some_and(|kb| kb > 0)
}

fn as_expected(name: &str) {
    let r = scenario(name);
    if on_tmpfs(&disk_dir()) && r["verdict"] == "skipped" {
        eprintln!("skipped: {}", r["reason"]);
        return;
    }
    assert_eq!(r["verdict"], "as_expected", "{name}: {}", r["reason"]);
    // Every counter has before/after/delta, and at least one moved.
    let c = r["counters"].as_object().expect("counters");
    assert!(c.values().all(|x| x.get("before").is_some()
        && x.get("after").is_some()
        && x.get("delta").is_some()));
    assert!(
        c.values().any(|x| x["delta"].as_i64().unwrap_or(0) != 0),
        "{r}"
    );
    assert_no_lab_leftovers();
}

fn assert_no_lab_leftovers() {
    let me = std::process::id();
    let _ = me;
    for e in std::fs::read_dir(hier().mount_point).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = n.strip_prefix("memlens-lab-") {
            // memlens-lab-TAG-PID-N: a dead PID means a leak.
            let pid: Option<i32> = rest.rsplit('-').nth(1).and_then(|p| p.parse().ok());
            if let Some(pid) = pid {
                assert!(
                    std::path::Path::new(&format!("/proc/{pid}")).exists(),
                    "memcg {n} left behind"
                );
            }
        }
    }
    for d in ["/var/tmp", "/dev/shm"] {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = n
                .strip_prefix("memlens-lab-")
                .and_then(|r| r.rsplit('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            {
                assert!(
                    std::path::Path::new(&format!("/proc/{pid}")).exists(),
                    "file {d}/{n} left behind"
                );
            }
        }
    }
}

#[test]
fn untouched_malloc() {
    as_expected("untouched-malloc");
}
#[test]
fn touched_anon() {
    as_expected("touched-anon");
}
#[test]
fn page_cache_write() {
    as_expected("page-cache-write");
}
#[test]
fn page_cache_read_twice() {
    as_expected("page-cache-read-twice");
}
#[test]
fn shared_file_mmap() {
    as_expected("shared-file-mmap");
}
#[test]
fn sysv_shm() {
    as_expected("sysv-shm");
}
#[test]
fn posix_shm() {
    as_expected("posix-shm");
}
#[test]
fn tmpfs_write() {
    as_expected("tmpfs-write");
}
/// memlens itself on a tmpfs (an initramfs, as in the VM, or a container on tmpfs): its own
/// text pages are shmem in its RssShmem, which must not be taken for the file written.
#[test]
fn tmpfs_write_with_memlens_on_tmpfs() {
    if !on_tmpfs(std::path::Path::new("/dev/shm")) {
        eprintln!("/dev/shm is not a tmpfs here: nothing to prove");
        return;
    }
    let copy =
        std::path::PathBuf::from(format!("/dev/shm/memlens-test-bin-{}", std::process::id()));
    std::fs::copy(bin(), &copy).expect("copy memlens to /dev/shm");
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = disk_dir().display().to_string();
    let out = std::process::Command::new(&copy)
        .args(["lab", "tmpfs-write", "--dir", &dir, "--json"])
        .output()
        .expect("run memlens from /dev/shm");
    let _ = std::fs::remove_file(&copy);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let r = &v["scenarios"][0];
    assert_eq!(r["verdict"], "as_expected", "{v}");
    assert_eq!(out.status.code(), Some(0), "{v}");
}

#[test]
fn reclaim_at_limit() {
    as_expected("reclaim-at-limit");
}
#[test]
fn oom_kill() {
    as_expected("oom-kill");
}
#[test]
fn dying_cgroup() {
    as_expected("dying-cgroup");
}

#[test]
fn swap_runs_or_is_skipped_with_a_reason() {
    let r = scenario("swap");
    if host_has_swap() {
        assert_eq!(r["verdict"], "as_expected", "{}", r["reason"]);
    } else {
        assert_eq!(r["verdict"], "skipped");
        assert!(r["reason"].as_str().unwrap().contains("no swap"), "{r}");
    }
}

#[test]
fn list_and_summary_and_unknown_name() {
    let (code, out, _) = run(&["lab", "--list"]);
    assert_eq!(code, 0);
    for n in [
        "untouched-malloc",
        "touched-anon",
        "page-cache-write",
        "page-cache-read-twice",
        "shared-file-mmap",
        "sysv-shm",
        "posix-shm",
        "tmpfs-write",
        "reclaim-at-limit",
        "oom-kill",
        "swap",
        "dying-cgroup",
    ] {
        assert!(out.contains(n), "--list lacks {n}: {out}");
    }
    let (code, _, err) = run(&["lab", "no-such-scenario"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown scenario"), "{err}");
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (code, out, err) = run(&["lab", "touched-anon", "sysv-shm"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 as expected, 0 differ, 0 not run, 0 skipped"),
        "{out}"
    );
    assert!(
        out.contains("cgroup-v1/memory.rst"),
        "cites the docs: {out}"
    );
}

/// A scenario that cannot run (not root: no memcg can be created) is `not_run`, never
/// `differs`, and `lab` then exits non-zero so it can be used as a check.
#[test]
fn unprivileged_lab_is_not_run_and_fails() {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(bin())
        .args(["lab", "touched-anon", "--json"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run memlens as nobody");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["scenarios"][0]["verdict"], "not_run", "{v}");
    assert_eq!(v["summary"]["differs"], 0, "{v}");
    assert_eq!(out.status.code(), Some(1), "{v}");
}

#[test]
fn skip_oom_leaves_out_the_disruptive_scenarios() {
    let (code, out, err) = run(&["lab", "oom-kill", "dying-cgroup", "--skip-oom", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    for s in v["scenarios"].as_array().expect("scenarios") {
        assert_eq!(s["verdict"], "skipped", "{s}");
    }
    let (code, out, _) = run(&["lab", "--list", "--json"]);
    assert_eq!(code, 0);
    let l: serde_json::Value = serde_json::from_str(&out).expect("lab --list --json is JSON");
    assert!(
        l["scenarios"].as_array().is_some_and(|a| a.len() >= 12),
        "{l}"
    );
}
