//! Real-kernel tests of what a new user tripped over (issue 12): process names and sums, the
//! root's v1 residual, `explain` on an RSS far above the working set, `zombies --reclaim`
//! refusing a cgroup with processes. Own memcgs (`memlens-test-*`) only; v1 host and v2 VM.

mod common;
use common::*;
use std::process::{Command, Stdio};

/// A child process that sleeps 60 s as a binary named `name` (a copy of memlens: /bin/sleep
/// is busybox in the VM, which picks its applet by name), inside `cg`.
fn named_sleeper(
    cg: &memlens::cgroup::owned::OwnedCgroup,
    name: &str,
) -> (Proc, tempfile::TempDir) {
    let d = tempfile::tempdir().expect("tempdir");
    let exe = d.path().join(name);
    std::fs::copy(bin(), &exe).expect("copy the memlens binary");
    let mut cmd = Command::new(&exe);
    cmd.args(["__workload", "sleep=60000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cg.join_before_exec(&mut cmd).expect("open cgroup.procs");
    let p = Proc(cmd.spawn().expect("spawn"));
    // Wait until the exec happened (the name is the new binary's).
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(5) {
        let st = std::fs::read_to_string(format!("/proc/{}/status", p.pid())).unwrap_or_default();
        if st.starts_with(&format!("Name:\t{name}")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    (p, d)
}

#[test]
fn ps_keeps_a_name_with_a_colon() {
    let cg = cgroup("colon");
    let (p, _d) = named_sleeper(&cg, "my:app");
    let r = json(&["ps", cg.path()]);
    let procs = r["processes"].as_array().expect("processes");
    let me = procs
        .iter()
        .find(|x| x["pid"].as_u64() == Some(p.pid() as u64))
        .unwrap_or_else(|| panic!("pid {} not listed: {r}", p.pid()));
    assert_eq!(me["comm"], "my:app", "{me}");
    let (_, out, _) = run(&["ps", cg.path()]);
    // Arguments and USER as smem/ps show them; one cgroup: no CGROUP column.
    assert!(out.contains("my:app __workload sleep=60000"), "{out}");
    assert!(out.contains("USER") && !out.contains("CGROUP"), "{out}");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(me["user"], "root", "{me}");
    }
    // Processes in several cgroups (-r): the CGROUP column says which.
    let child = cg.create_child("sub").expect("child");
    let (_q, _d2) = named_sleeper(&child, "other");
    let (_, out, _) = run(&["ps", cg.path(), "-r"]);
    assert!(out.contains("CGROUP") && out.contains("/sub"), "{out}");
}

#[test]
fn kernel_threads_do_not_void_the_root_process_sums() {
    let r = json(&["ps", "/"]);
    let s = &r["process_sums"];
    assert!(
        s["kernel_threads"].as_u64().unwrap_or(0) > 0,
        "the root cgroup holds kernel threads: {s}"
    );
    assert!(s["rss_bytes"].as_u64().is_some(), "{s}");
    let kw = r["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| {
            p["comm"]
                .as_str()
                .is_some_and(|c| c.starts_with("kworker/") && c.contains(':'))
        });
    assert!(kw.is_some(), "a kworker/N:M name survives whole");
    let show = json(&["show", "/"]);
    assert!(show["views"]["process_rss_sum_bytes"].as_u64().is_some());
    // An empty cgroup sums to 0, not null.
    let cg = cgroup("empty");
    let e = json(&["ps", cg.path()]);
    assert_eq!(e["process_sums"]["rss_bytes"].as_u64(), Some(0), "{e}");
}

/// On v1 the root's usage_in_bytes excludes kernel memory: the residual is not −kmem.
#[test]
fn v1_root_residual_is_not_minus_kmem() {
    if hier().version != memlens::model::Version::V1 {
        return;
    }
    let r = json(&["show", "/"]);
    let b = &r["breakdown"];
    let res = b["residual_bytes"].as_i64().expect("residual");
    let kernel = u(b, "kernel_bytes") as i64;
    // Per-CPU batching and reading the files one after another leave a few MiB at most.
    assert!(
        res.abs() < 16 * MIB as i64 && (kernel < 32 * MIB as i64 || res.abs() < kernel / 2),
        "residual {res} with kernel {kernel}: {}",
        b["sources"]["residual"]
    );
    let src = b["sources"]["residual"].as_str().unwrap_or("");
    assert!(src.contains("kernel memory is not in usage"), "{src}");
}

/// A file mapped by a process but charged elsewhere (or inactive) makes RSS far above the
/// working set: `explain` says so.
#[test]
fn explain_names_rss_far_above_the_working_set() {
    let dir = disk_dir();
    let f = dir.join(format!("memlens-test-mapped-{}", std::process::id()));
    // Written (and so charged) by this test process, outside the test memcg.
    std::fs::write(&f, vec![7u8; 96 << 20]).expect("write the file");
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(f.clone());
    let cg = cgroup("mapped");
    let step = format!("mmap={}:96M", f.display());
    let _w = Workload::start(&cg, &[&step]);
    let r = json(&["explain", cg.path()]);
    let ids: Vec<&str> = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    let show = json(&["show", cg.path()]);
    assert!(
        ids.contains(&"rss-above-working-set"),
        "{ids:?}; rss sum {} working set {}",
        show["process_sums"]["rss_bytes"],
        show["views"]["working_set_bytes"]
    );
}

/// `--from` a capture of another target: what the capture lacks is "not in this capture",
/// never "none" or "not provided by this kernel", and no finding rests on it.
#[test]
fn from_a_capture_of_another_target_says_what_is_not_in_it() {
    let a = cgroup("capa");
    let b = cgroup("capb");
    let _w = Workload::start(&b, &["anon=8M"]);
    let d = tempfile::tempdir().expect("tempdir");
    let out = d.path().join("a.tar.gz");
    let outs = out.display().to_string();
    let (code, _, err) = run(&["capture", a.path(), "-o", &outs]);
    assert_eq!(code, 0, "{err}");
    let r = json(&["show", b.path(), "--from", &outs]);
    let probs: Vec<&str> = r["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(
        probs
            .iter()
            .any(|p| p.contains("cgroup.procs: not in this capture (captured: ")),
        "{probs:#?}"
    );
    assert!(
        !probs
            .iter()
            .any(|p| p.contains("not provided by this kernel")),
        "{probs:#?}"
    );
    // The processes are unknown, not "none".
    assert!(
        r["process_sums"]["rss_bytes"].is_null(),
        "{}",
        r["process_sums"]
    );
    let ids: Vec<&str> = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(!ids.contains(&"charged-but-empty"), "{ids:?}");
    let (_, human, _) = run(&["show", b.path(), "--from", &outs]);
    assert!(human.contains("PROBLEMS"), "{human}");
    assert!(human.contains("unknown"), "{human}");
    // zombies: the capture of one target holds no count of dying cgroups.
    let z = json(&["zombies", "--from", &outs]);
    let zs = z.to_string();
    assert!(!zs.contains("not provided by this kernel"), "{zs}");
    assert!(zs.contains("not in this capture"), "{zs}");
}

/// `zombies --reclaim` refuses a cgroup with processes unless --force, and the root as a usage
/// error; it says what it does before doing it.
#[test]
fn reclaim_refuses_live_cgroups_and_the_root() {
    let cg = cgroup("reclaim-busy");
    let f = disk_dir().join(format!("memlens-test-reclaim-{}", std::process::id()));
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(f.clone());
    let step = format!("write={}:16M", f.display());
    let _w = Workload::start(&cg, &[&step]);
    let (code, _, err) = run(&["zombies", "--reclaim", cg.path()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--force") && err.contains("process"), "{err}");
    // Nothing was written: the page cache is still charged (the kernel's own pageout may
    // trim some of it, not most).
    let file = kstat(&cg)[&key("file")];
    assert!(file >= 8 * MIB, "cache dropped although refused: {file}");
    let (code, _, err) = run(&["zombies", "--reclaim", cg.path(), "--force"]);
    assert!(
        err.contains("reclaiming") && err.contains("--force"),
        "{err}"
    );
    if hier().version == memlens::model::Version::V2 && !release().at_least(5, 19) {
        // No memory.reclaim before 5.19 (5.10 guest): --force is accepted, then memlens says
        // the kernel has no way to do it and writes nothing (exit 1: nothing could be done).
        assert!(!cg.dir().join("memory.reclaim").exists());
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("memory.reclaim")
                && err.contains("5.19")
                && err.contains("nothing was written"),
            "{err}"
        );
        let file = kstat(&cg)[&key("file")];
        assert!(
            file >= 8 * MIB,
            "cache dropped although nothing was written: {file}"
        );
    } else {
        assert_eq!(code, 0, "{err}");
    }
    let (code, _, err) = run(&["zombies", "--reclaim", "/"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("root"), "{err}");
}

/// As root, a denied /proc file does not get the advice "run as root".
#[test]
fn root_is_not_told_to_run_as_root() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let r = json(&["ps", "/"]);
    for p in r["problems"].as_array().expect("problems") {
        let p = p.as_str().unwrap_or("");
        if p.contains("permission denied") {
            assert!(!p.contains("run as root"), "{p}");
        }
    }
}

/// `show` starts with its verdict, `--brief` is short, and COLUMNS=80 wraps the report
/// (the process table aside) to 80 columns.
#[test]
fn show_starts_with_a_verdict_and_wraps() {
    let cg = cgroup("verdict");
    limit(&cg, 64 * MIB);
    let _w = Workload::start(&cg, &["anon=40M"]);
    let out = std::process::Command::new(bin())
        .args(["show", cg.path()])
        .env("COLUMNS", "80")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("");
    assert!(
        ["OK ", "WARN ", "CRITICAL "]
            .iter()
            .any(|p| first.starts_with(p))
            && first.contains("% of the 64.0 MiB limit cannot be reclaimed")
            && first.contains("to an OOM kill"),
        "{first}"
    );
    for l in text.lines() {
        assert!(l.chars().count() <= 80, "wider than 80: {l:?}");
    }
    let (code, brief, _) = run(&["show", cg.path(), "--brief"]);
    assert_eq!(code, 0);
    assert!(
        brief
            .lines()
            .next()
            .unwrap_or("")
            .contains("cannot be reclaimed"),
        "{brief}"
    );
    assert!(brief.lines().count() < 15, "{brief}");
}

/// `run` wording: an OOM-killed command's recommendation is a lower bound, the kernel's report
/// is introduced once, no recommendation under the floor, the command echoed as typed.
#[test]
fn run_says_at_least_after_an_oom_kill_and_quotes_the_command() {
    let bin_s = bin().display().to_string();
    let (code, _, err) = run(&[
        "run",
        "--limit",
        "32M",
        "--swap",
        "0",
        "--",
        &bin_s,
        "__workload",
        "grow=64M",
    ]);
    assert_eq!(code, 137, "{err}");
    assert!(err.contains("recommended limit: at least "), "{err}");
    assert!(err.contains("rerun with a larger --limit"), "{err}");
    assert!(err.matches("kernel OOM report:").count() <= 1, "{err}");
    let (code, _, err) = run(&["run", "--", "sh", "-c", "exit 0", "a b"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("memlens run: sh -c 'exit 0' 'a b'"), "{err}");
    assert!(err.contains("smallest sensible limit"), "{err}");
    assert!(!err.contains("seed"), "{err}");
}

/// A capture says it is one (banner, JSON `capture`) and keeps the OOM reports of the
/// captured cgroup, so `oom --from` works on a support bundle.
#[test]
fn a_capture_has_a_banner_and_its_cgroups_oom_kills() {
    let cg = cgroup("capoom");
    limit(&cg, 32 * MIB);
    let mut cmd = Command::new(bin());
    cmd.args(["__workload", "grow=64M"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cg.join_before_exec(&mut cmd).expect("join");
    let st = cmd.status().expect("run workload");
    assert!(!st.success(), "must be OOM-killed: {st:?}");
    // The kill is in /dev/kmsg (if this machine lets us read it).
    if run(&["oom", cg.path(), "--json"]).0 != 0 {
        return;
    }
    let d = tempfile::tempdir().expect("tmp");
    let out = d.path().join("b.tar.gz").display().to_string();
    let (code, _, err) = run(&["capture", cg.path(), "-o", &out]);
    assert_eq!(code, 0, "{err}");
    let v = json(&["oom", "--from", &out]);
    let ev = v["events"].as_array().expect("events");
    assert!(
        ev.iter()
            .any(|e| e["oom_memcg"] == cg.path() || e["task_memcg"] == cg.path()),
        "{v}"
    );
    // Only the captured cgroup's kills.
    assert!(
        ev.iter()
            .all(|e| e["oom_memcg"] == cg.path() || e["task_memcg"] == cg.path()),
        "{v}"
    );
    assert!(
        ev.iter().all(|e| e["time"].is_string()),
        "wall times from the captured btime"
    );
    assert_eq!(v["capture"]["target"], cg.path());
    let (_, human, _) = run(&["show", cg.path(), "--from", &out]);
    assert!(
        human.starts_with(&format!("CAPTURE of {} taken ", cg.path())),
        "{human}"
    );
}

/// A tmpfs over-mounted at /dev/shm: the hidden one is not measured through the path of the
/// one on top (that one would be counted twice), and the largest file is named.
#[test]
fn an_over_mounted_dev_shm_is_counted_once_and_its_largest_file_named() {
    if Command::new("unshare").arg("--version").output().is_err() {
        return skip(
            "kernel_first_contact::an_over_mounted_dev_shm_is_counted_once",
            "unshare (util-linux) is not installed",
        );
    }
    // The mount namespace must be private: the tmpfs mounted in it never reaches the host.
    let cg = cgroup("overmount");
    let name = format!("memlens-test-om-{}", std::process::id());
    let script = format!(
        "mount -t tmpfs memlens-test /dev/shm && exec {} __workload pshm={name}:24M",
        bin().display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    cg.join_before_exec(&mut cmd).expect("join");
    let mut child = Proc(cmd.spawn().expect("spawn"));
    let mut line = String::new();
    use std::io::BufRead;
    let _ = std::io::BufReader::new(child.0.stdout.take().expect("stdout")).read_line(&mut line);
    if !line.starts_with("READY") {
        // No mount namespace or tmpfs mount here (a busybox guest's unshare may lack the
        // options): nothing to check.
        eprintln!("cannot over-mount /dev/shm here: {line:?}");
        return;
    }
    let r = json(&["explain", cg.path()]);
    let f = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["id"] == "shmem-held")
        .cloned()
        .unwrap_or_else(|| panic!("no shmem-held: {r:#}"));
    let ev = f["evidence"].as_array().expect("evidence");
    let mounts: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|e| {
            e["what"]
                .as_str()
                .is_some_and(|w| w.contains(" /dev/shm used"))
        })
        .collect();
    assert_eq!(mounts.len(), 1, "/dev/shm counted once: {f:#}");
    assert!(
        ev.iter().any(|e| e["what"]
            .as_str()
            .is_some_and(|w| w.contains(&format!("file /dev/shm/{name}")))),
        "the largest file is named: {f:#}"
    );
    drop(child.0.stdin.take());
}

/// `memlens completions SHELL` registers dynamic completions whose TARGET candidates are the
/// live cgroups; `memlens man` renders a man page.
#[test]
fn completions_complete_live_targets_and_man_renders() {
    for sh in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(&["completions", sh]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("memlens"), "{sh}: {out}");
    }
    let cg = cgroup("complete");
    let prefix = &cg.path()[..cg.path().len() - 2];
    let out = Command::new(bin())
        .args(["--", "memlens", "show", prefix])
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .output()
        .expect("complete");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(cg.path()), "{text}");
    let (code, man, _) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(
        man.contains(".TH memlens 1") && man.contains("commit "),
        "{man}"
    );
}

/// `ps` of a cgroup with many processes (long command lines, two cgroups: the CGROUP
/// column) fits the terminal: every line within COLUMNS, the figures that say least left
/// out and named, every process still listed; piped (no width) nothing is left out.
#[test]
fn ps_of_many_processes_fits_the_terminal() {
    let cg = cgroup("pswide");
    let sub = cg
        .create_child("a-rather-long-child-cgroup-name")
        .expect("child");
    // A long command line: a file with a 150-character name held open.
    let d = tempfile::tempdir().expect("tmp");
    let f = d.path().join("x".repeat(150));
    std::fs::write(&f, b"x").expect("write");
    let long = format!("open={}", f.display());
    let mut procs = Vec::new();
    for i in 0..12 {
        let at = if i % 2 == 0 { &cg } else { &sub };
        procs.push(Workload::start(at, &["anon=1M", &long]));
    }
    for cols in [80usize, 100, 60] {
        let out = Command::new(bin())
            .args(["ps", cg.path(), "-r"])
            .env("COLUMNS", cols.to_string())
            .output()
            .expect("run");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for l in text.lines() {
            assert!(
                l.chars().count() <= cols,
                "wider than {cols}: {l:?}\n{text}"
            );
        }
        let head = text.lines().nth(1).unwrap_or("");
        for c in ["PID", "USER", "COMMAND", "RSS", "PSS"] {
            assert!(head.contains(c), "{cols}: {c} missing: {head}");
        }
        // Narrower, the cgroup goes on its own line under each row (the tables' rule).
        assert!(cols < 80 || head.contains("CGROUP"), "{head}");
        assert!(text.contains("long-child-cgroup-name"), "{text}");
        for w in &procs {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{} ", w.pid()))),
                "{cols}: pid {} not listed:\n{text}",
                w.pid()
            );
        }
        if cols == 80 {
            let flat = text.replace('\n', " ");
            assert!(
                flat.contains("Not shown, to fit 80 columns: SWAP"),
                "{text}"
            );
        }
    }
    // Piped: every column, the command cut at 60 characters only.
    let (_, out, _) = run(&["ps", cg.path(), "-r"]);
    let head = out.lines().nth(1).unwrap_or("");
    for c in ["ANON", "FILE", "SHMEM", "USS", "SWAP"] {
        assert!(head.contains(c), "{c} missing when piped: {head}");
    }
    assert!(!out.contains("Not shown"), "{out}");
}

/// The overview (`memlens --all`) fits the terminal as `ps` does: every line within COLUMNS,
/// the columns that say least left out and named, NAME cut (its start kept in the tree);
/// piped, every column.
#[test]
fn overview_fits_the_terminal() {
    let cg = cgroup("ovwide");
    let _w = Workload::start(&cg, &["anon=2M"]);
    let base = cg.path().rsplit('/').next().unwrap_or_default().to_string();
    for cols in [80usize, 100, 60] {
        let out = Command::new(bin())
            .args(["--all", "--color", "never"])
            .env("COLUMNS", cols.to_string())
            .output()
            .expect("run");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for l in text.lines() {
            assert!(
                l.chars().count() <= cols,
                "wider than {cols}: {l:?}\n{text}"
            );
        }
        let head = text.lines().find(|l| l.starts_with("NAME")).unwrap_or("");
        for c in ["NAME", "LIMIT", "USAGE", "NOT RECLAIMABLE"] {
            assert!(head.contains(c), "{cols}: {c} missing: {head}");
        }
        assert!(cols < 80 || head.contains("OOM KILLS"), "{head}");
        assert!(
            text.lines().any(|l| l.contains(&base[..14])),
            "{cols}: {base} not listed:\n{text}"
        );
        let flat = text.replace('\n', " ");
        if cols == 80 {
            assert!(
                flat.contains("Not shown, to fit 80 columns: SWAP, KERNEL"),
                "{text}"
            );
            // The legend of a column left out goes with it.
            assert!(!text.contains("KERNEL SWAP  "), "{text}");
        }
    }
    let (code, out, err) = run(&["--all", "--color", "never"]);
    assert_eq!(code, 0, "{err}");
    let head = out.lines().find(|l| l.starts_with("NAME")).unwrap_or("");
    for c in ["WORKING SET", "HEADROOM", "ANON", "SWAP", "% LIMIT", "PIDS"] {
        assert!(head.contains(c), "{c} missing when piped: {head}");
    }
    assert!(out.contains(&base), "{out}");
    assert!(!out.contains("Not shown"), "{out}");
}

/// Piped `--sample` output streams what is ready: the first count (zombies) or the first
/// sample's figures (explain) arrive before the wait ends, the rest after it.
#[test]
fn piped_sample_output_streams_the_first_sample_before_waiting() {
    use std::io::BufRead;
    let cg = cgroup("stream");
    let _w = Workload::start(&cg, &["anon=4M"]);
    for (args, first, last) in [
        (vec!["zombies", "--sample", "4s"], "DYING", "trend: "),
        (
            vec!["explain", cg.path(), "--sample", "4s"],
            "first sample of",
            "cgroup",
        ),
    ] {
        let t0 = std::time::Instant::now();
        let mut child = Command::new(bin())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut r = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        r.read_line(&mut line).expect("read");
        let at = t0.elapsed();
        assert!(line.contains(first), "{args:?}: first line {line:?}");
        assert!(
            at < std::time::Duration::from_secs(3),
            "{args:?}: the first line came after {at:?}, with the rest"
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "{args:?}: ended before the second sample"
        );
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut r, &mut rest).expect("read");
        assert!(child.wait().expect("wait").success());
        assert!(t0.elapsed() >= std::time::Duration::from_secs(4));
        assert!(rest.contains(last), "{args:?}: {rest}");
    }
}
