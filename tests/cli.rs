//! Command-line behaviour on capture trees: bad input (garbled, truncated, empty files; a
//! process that vanished), exit codes, ambiguous targets. The trees are built from text a
//! real v1 kernel printed (this project's CI host, 6.18) and then damaged on purpose.

mod common;
use common::run;
use std::fs;
use std::path::Path;

const ID1: &str = "abc1230000000000000000000000000000000000000000000000000000000001";
const ID2: &str = "abc1240000000000000000000000000000000000000000000000000000000002";

const MOUNTINFO: &str = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

// memory.stat of a leaf memcg on 6.18 (v1), trimmed to the keys memlens reads.
const STAT: &str = "cache 9347072\nrss 1339392\nrss_huge 0\nshmem 9166848\nmapped_file 7012352\ndirty 16384\nwriteback 0\nswap 0\ninactive_anon 0\nactive_anon 1531904\ninactive_file 0\nactive_file 180224\nunevictable 8970240\nhierarchical_memory_limit 134217728\ntotal_cache 9347072\ntotal_rss 1339392\ntotal_shmem 9166848\ntotal_mapped_file 7012352\ntotal_dirty 16384\ntotal_writeback 0\ntotal_swap 0\ntotal_inactive_anon 0\ntotal_active_anon 1531904\ntotal_inactive_file 0\ntotal_active_file 180224\ntotal_unevictable 8970240\n";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "proc/self/mountinfo", MOUNTINFO);
    write(
        r,
        "proc/meminfo",
        "MemTotal:       24683656 kB\nMemFree:        23800000 kB\nMemAvailable:   24300000 kB\nBuffers: 0 kB\nCached: 700000 kB\nSReclaimable: 30000 kB\nShmem: 8900 kB\n",
    );
    let base = "sys/fs/cgroup/memory";
    write(r, &format!("{base}/memory.usage_in_bytes"), "247287808\n");
    write(r, &format!("{base}/memory.stat"), STAT);
    for id in [ID1, ID2] {
        let c = format!("{base}/docker/{id}");
        write(r, &format!("{c}/memory.usage_in_bytes"), "19845120\n");
        write(r, &format!("{c}/memory.limit_in_bytes"), "134217728\n");
        write(r, &format!("{c}/memory.stat"), STAT);
        write(
            r,
            &format!("{c}/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        write(r, &format!("{c}/cgroup.procs"), "4242\n999999\n");
    }
    write(
        r,
        "proc/4242/status",
        "Name:\tworker\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\nGroups:\t\nVmSize:\t  10000 kB\nVmRSS:\t    1576 kB\nRssAnon:\t     116 kB\nRssFile:\t    1460 kB\nRssShmem:\t       0 kB\nThreads:\t1\nSigQ:\t0/95487\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n",
    );
    d
}

#[test]
fn unknown_and_ambiguous_targets_exit_2_and_list_candidates() {
    let d = tree();
    let from = d.path().display().to_string();
    let (code, _, err) = run(&["show", "nosuchthing", "--from", &from]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no cgroup, process, container or pod matches"),
        "{err}"
    );
    let (code, _, err) = run(&["show", "abc12", "--from", &from]);
    assert_eq!(code, 2);
    assert!(
        err.contains("ambiguous") && err.contains(ID1) && err.contains(ID2),
        "{err}"
    );
    let (code, out, err) = run(&["show", "abc124", "--from", &from, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(ID2));
}

#[test]
fn missing_capture_exits_1() {
    let (code, _, err) = run(&["--from", "/nonexistent/capture.tar.gz"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot open capture"), "{err}");
}

#[test]
fn vanished_process_and_missing_files_still_report() {
    let d = tree();
    let from = d.path().display().to_string();
    let (code, out, err) = run(&["show", "abc123", "--from", &from, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // pid 999999 is listed in cgroup.procs but gone from /proc: skipped, not an error.
    assert_eq!(v["processes"].as_array().unwrap().len(), 1);
    assert_eq!(v["processes"][0]["rss_bytes"], 1576 * 1024);
    // smaps_rollup absent: PSS unavailable (null), not 0.
    assert!(v["processes"][0]["pss_bytes"].is_null());
    // kmem file absent: kernel unavailable, and so the residual.
    assert!(v["breakdown"]["kernel_bytes"].is_null());
    assert!(v["breakdown"]["residual_bytes"].is_null());
    assert_eq!(v["limit_bytes"], 134217728);
    assert_eq!(v["events"]["oom_kills"], 2);
}

#[test]
fn garbled_truncated_and_empty_files_are_named_and_the_rest_prints() {
    let d = tree();
    let c = d.path().join(format!("sys/fs/cgroup/memory/docker/{ID1}"));
    // Garbled line in the middle of memory.stat, truncated number file, empty limit file.
    let garbled = STAT.replace(
        "total_shmem 9166848\n",
        "total_shmem 91xx848\n@@@ garbage\n",
    );
    fs::write(c.join("memory.stat"), garbled).unwrap();
    fs::write(c.join("memory.usage_in_bytes"), "").unwrap();
    fs::write(c.join("memory.limit_in_bytes"), "1342").unwrap();
    let from = d.path().display().to_string();
    let (code, out, err) = run(&["show", "abc123", "--from", &from, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let probs = v["problems"].to_string();
    assert!(
        probs.contains("memory.stat") && probs.contains("line 17: \\\"total_shmem 91xx848\\\""),
        "{probs}"
    );
    assert!(
        probs.contains("memory.usage_in_bytes") && probs.contains("empty"),
        "{probs}"
    );
    assert!(v["usage_bytes"].is_null());
    // The keys around the garbled line survive; total_shmem is garbled so shmem falls back
    // to the local key.
    assert_eq!(v["breakdown"]["anon_bytes"], 1339392);
    assert_eq!(v["breakdown"]["shmem_bytes"], 9166848);
    assert_eq!(v["breakdown"]["sources"]["shmem"], "memory.stat shmem");
    // Human output prints the problems section and the rest.
    let (code, out, _) = run(&["show", "abc123", "--from", &from]);
    assert_eq!(code, 0);
    assert!(
        out.contains("PROBLEMS") && out.contains("BREAKDOWN"),
        "{out}"
    );
}

#[test]
fn help_teaches() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for w in [
        "working set",
        "EXIT CODES",
        "show",
        "capture",
        "--from",
        "container ID",
    ] {
        assert!(out.contains(w), "--help lacks {w:?}");
    }
}

#[test]
fn overview_lists_containers_with_oom_kills() {
    let d = tree();
    let from = d.path().display().to_string();
    let (code, out, err) = run(&["--from", &from, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["cgroups"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "only the two containers");
    assert_eq!(rows[0]["oom_kills"], 2);
    assert_eq!(rows[0]["identity"]["runtime"], "docker");
    let (code, out, _) = run(&["--from", &from, "--color", "never"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("docker abc123000000") && out.contains("OOM KILLS"),
        "{out}"
    );
}

/// `--from` on something that is not a capture names what it is not.
#[test]
fn from_refuses_what_is_not_a_capture() {
    let d = tempfile::tempdir().unwrap();
    let run = |p: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(["--from", p, "show", "/"])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (c, e) = run(&d.path().display().to_string());
    assert_eq!(c, Some(1));
    assert!(
        e.contains("not a memlens capture (no memlens-capture.json"),
        "{e}"
    );
    let (_, e) = run("/etc");
    assert!(e.contains("not a memlens capture"), "{e}");
    let (_, e) = run("/etc/hostname");
    assert!(e.contains("not a tar archive"), "{e}");
}

/// Errors name the user's mistake: a --host-root without the host's /proc, a path in another
/// cgroup hierarchy.
#[test]
fn errors_name_the_users_mistake() {
    let d = tempfile::tempdir().unwrap();
    let hr = d.path().display().to_string();
    let (code, _, err) = run(&["--host-root", &hr]);
    assert_eq!(code, 1);
    assert!(err.contains("is the host's / mounted at"), "{err}");
    let t = tree();
    let from = t.path().display().to_string();
    let (code, _, err) = run(&["show", "/sys/fs/cgroup/cpu/docker", "--from", &from]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not in the memory hierarchy, which is mounted at /sys/fs/cgroup/memory"),
        "{err}"
    );
}

/// A subcommand's --help offers only the flags it honours; -V names the commit.
#[test]
fn help_offers_only_what_applies_and_version_has_the_commit() {
    for (sub, flags) in [
        ("run", &["--from", "--host-root"][..]),
        ("lab", &["--from", "--host-root"]),
        ("serve", &["--json", "--color"]),
        // Commands that print no JSON report (a file, a script, a page, a screen, a store).
        ("plot", &["--json"]),
        ("export", &["--json"]),
        ("completions", &["--json"]),
        ("man", &["--json"]),
        ("top", &["--json"]),
        ("record", &["--json"]),
    ] {
        let (code, out, _) = run(&[sub, "--help"]);
        assert_eq!(code, 0);
        for f in flags {
            // A flag is offered as `--flag ` or `--flag <VALUE>`; `--from-max-file` is not `--from`.
            let offered = out.contains(&format!("{f} ")) || out.contains(&format!("{f}\n"));
            assert!(!offered, "{sub} --help offers {f}:\n{out}");
        }
    }
    let (_, out, _) = run(&["show", "--help"]);
    assert!(out.contains("--from") && out.contains("--json"), "{out}");
    // Still refused, with the reason, when given anyway.
    for args in [
        &["man", "--json"][..],
        &["completions", "bash", "--json"],
        &["record", "--json"],
        &["export", "--json"],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("--json does not apply"), "{args:?}: {err}");
    }
    let (code, out, _) = run(&["-V"]);
    assert_eq!(code, 0);
    assert!(out.contains("commit "), "{out}");
}

#[test]
fn every_subcommand_has_examples() {
    for sub in [
        "show",
        "explain",
        "ps",
        "oom",
        "zombies",
        "cache",
        "kernel",
        "capture",
        "run",
        "lab",
        "serve",
        "record",
        "top",
        "history",
        "plot",
        "recommend",
        "export",
        "node",
        "completions",
        "man",
    ] {
        let (code, out, _) = run(&[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(
            out.contains("EXAMPLES\n  memlens"),
            "{sub} --help has no examples:\n{out}"
        );
    }
}

/// The overview: what cannot be reclaimed and the headroom as columns, PIDS, every column
/// defined, hidden cgroups counted, colour by threshold, --no-headers, a tree for --all, and
/// a host line within 100 columns.
#[test]
fn overview_columns_footer_tree_and_colour() {
    let d = tree();
    let from = d.path().display().to_string();
    let (code, out, err) = run(&["--from", &from, "--color", "never"]);
    assert_eq!(code, 0, "{err}");
    for w in [
        "NOT RECLAIMABLE",
        "HEADROOM",
        "PIDS",
        "+2 other memory cgroups (not containers): --all",
    ] {
        assert!(out.contains(w), "{w}: {out}");
    }
    for col in [
        "LIMIT  ",
        "WORKING SET  ",
        "NOT RECLAIMABLE  ",
        "HEADROOM  ",
        "PIDS, OOM KILLS  ",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(col)),
            "footer lacks {col:?}: {out}"
        );
    }
    let host: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("host "))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(!host.is_empty());
    for l in host {
        assert!(l.chars().count() <= 100, "{l}");
    }
    // Two processes listed, one of them gone: PIDS counts cgroup.procs.
    assert!(out.contains("  2  "), "{out}");
    let (_, out, _) = run(&["--from", &from, "--no-headers"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let (_, out, _) = run(&["--from", &from, "--all", "--color", "never"]);
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .take(4)
        .map(|l| l.split("  ").next().unwrap_or(""))
        .collect();
    assert_eq!(names[0], "/", "{out}");
    assert!(names[1].starts_with("docker"), "{out}");
    // Both containers had OOM kills: red.
    let (_, out, _) = run(&["--from", &from, "--color", "always"]);
    assert!(out.contains("\x1b[31m"), "{out}");
}

/// `oom TARGET` filters; a log file's list has no /dev/kmsg "Times:" footer; COMPLETE is
/// explained; numbers are the kernel's sequence numbers where the log has them.
#[test]
fn oom_filters_by_target_and_footers_only_what_applies() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/oom/ubuntu-4.15-docker.log")
        .display()
        .to_string();
    let j = |a: &[&str]| -> serde_json::Value {
        let (code, out, err) = run(a);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    assert_eq!(
        j(&["oom", "--file", &f, "--json"])["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        j(&["oom", "java", "--file", &f, "--json"])["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        j(&["oom", "nosuch", "--file", &f, "--json"])["events"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let (_, out, _) = run(&["oom", "--file", &f]);
    assert!(out.contains("COMPLETE: yes = the whole report"), "{out}");
    assert!(!out.contains("/dev/kmsg monotonic"), "{out}");
    let k = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/oom/this-host-6.18-v1.kmsg")
        .display()
        .to_string();
    let v = j(&["oom", "--file", &k, "--json"]);
    for e in v["events"].as_array().unwrap() {
        if let Some(seq) = e["seq"].as_u64() {
            assert_eq!(e["number"].as_u64(), Some(seq), "{e}");
        }
    }
}
