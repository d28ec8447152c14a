//! `runtime-heap` on real runtimes in real memcgs of ours: a JVM whose -Xmx is above its
//! limit (found, then really OOM-killed by the kernel when it grows), a default JVM whose
//! heap memlens computes exactly as the JVM does (-XX:+PrintFlagsFinal), a JVM with
//! container support off, Node.js with --max-old-space-size above the limit (a secret in its
//! environment never printed), and a Go program without GOMEMLIMIT. Skips a runtime that is
//! not installed (.ci/run installs openjdk-17-jre-headless, default-jdk-headless, nodejs,
//! golang-go).

mod common;
use common::*;
use memlens::cgroup::owned::OwnedCgroup;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Whether `cmd` runs; with CI=true a missing runtime fails (.ci/run installs them).
fn have(cmd: &str) -> bool {
    let ok = Command::new(cmd)
        .arg(if cmd == "go" { "version" } else { "--version" })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok || !in_ci(), "{cmd} is not installed (CI=true)");
    ok
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runtimes")
}

/// Starts `cmd` inside `cg` and waits for its READY line (or, with `ready` false, a moment).
fn start(cg: &OwnedCgroup, mut cmd: Command, ready: bool) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cg.join_before_exec(&mut cmd).unwrap();
    let mut c = cmd.spawn().expect("spawn runtime");
    if ready {
        let mut line = String::new();
        BufReader::new(c.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("READY"), "{line:?}");
    } else {
        std::thread::sleep(std::time::Duration::from_millis(800));
    }
    c
}

fn finding(cg: &OwnedCgroup) -> Option<serde_json::Value> {
    let v = json(&["explain", cg.path()]);
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "runtime-heap")
        .cloned()
}

fn heap_of(f: &serde_json::Value, pid: u32) -> Option<u64> {
    f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["what"]
                .as_str()
                .is_some_and(|w| w.starts_with(&format!("pid {pid} ")) && w.ends_with("heap bound"))
        })
        .and_then(|e| e["value_bytes"].as_u64())
}

struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn javac() -> Option<tempfile::TempDir> {
    if !have("java") || !have("javac") {
        eprintln!("skipped: java/javac not installed");
        return None;
    }
    let d = tempfile::tempdir().unwrap();
    let ok = Command::new("javac")
        .args(["-d", d.path().to_str().unwrap()])
        .arg(fixtures().join("Hog.java"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "javac Hog.java");
    Some(d)
}

#[test]
fn jvm_xmx_above_the_limit_is_found_and_really_oom_killed() {
    let Some(classes) = javac() else { return };
    let cg = cgroup("jvm");
    limit(&cg, 192 * MIB);
    let mut cmd = Command::new("java");
    cmd.args(["-Xmx1g", "-cp", classes.path().to_str().unwrap(), "Hog"]);
    let mut child = start(&cg, cmd, true);
    let pid = child.id();
    let f = finding(&cg).expect("runtime-heap for -Xmx1g in 192 MiB");
    assert_eq!(f["severity"], "critical", "{f:#}");
    assert_eq!(heap_of(&f, pid), Some(1 << 30));
    // Let it grow: the heap may reach 1 GiB, the cgroup allows 192 MiB: the kernel kills it
    // before the JVM would throw OutOfMemoryError.
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.signal(), Some(9), "the kernel OOM-kills the JVM: {st:?}");
    let oom = json(&["oom"]);
    assert!(
        oom["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["victim"]["pid"].as_i64() == Some(pid as i64)),
        "the kill is in the kernel log"
    );
}

#[test]
fn jvm_default_heap_is_computed_as_the_jvm_does() {
    let Some(classes) = javac() else { return };
    let cg = cgroup("jvmdef");
    limit(&cg, 1024 * MIB);
    // What the JVM itself computes under this limit.
    let mut p = Command::new("java");
    p.args(["-XX:+PrintFlagsFinal", "-version"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cg.join_before_exec(&mut p).unwrap();
    let out = String::from_utf8(p.output().unwrap().stdout).unwrap();
    let jvm: u64 = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("MaxHeapSize"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .expect("MaxHeapSize in PrintFlagsFinal");
    let mut cmd = Command::new("java");
    cmd.args(["-cp", classes.path().to_str().unwrap(), "Hog"]);
    let _c = Reap(start(&cg, cmd, true));
    // 256 MiB of 1 GiB fits: no finding.
    assert!(finding(&cg).is_none(), "a default JVM fits its limit");
    drop(_c);
    let cg2 = cgroup("jvmhost");
    limit(&cg2, 256 * MIB);
    let mut cmd = Command::new("java");
    cmd.args([
        "-XX:-UseContainerSupport",
        "-cp",
        classes.path().to_str().unwrap(),
        "Hog",
    ]);
    let c = Reap(start(&cg2, cmd, true));
    let f = finding(&cg2).expect("container support off: sized from the host");
    assert_eq!(f["severity"], "critical");
    assert!(heap_of(&f, c.0.id()).unwrap() > 256 * MIB);
    // The default JVM's bound, as memlens computes it, equals the JVM's own.
    let b = memlens::rules::runtimes::bound(
        &memlens::proc::runtime::RuntimeProcess {
            pid: 0,
            runtime: "jvm",
            version: Some("17".into()),
            ..Default::default()
        },
        Some(1024 * MIB),
        None,
    );
    assert_eq!(b.max_bytes, Some(jvm), "JVM says {jvm}");
}

#[test]
fn node_old_space_above_the_limit_and_no_secret_printed() {
    if !have("node") {
        eprintln!("skipped: node not installed");
        return;
    }
    let cg = cgroup("node");
    limit(&cg, 128 * MIB);
    let mut cmd = Command::new("node");
    cmd.args(["-e", "console.log('READY'); setInterval(() => {}, 1000)"])
        .env("NODE_OPTIONS", "--max-old-space-size=1024 --title=x")
        .env("MEMLENS_TEST_SECRET", "hunter2-do-not-print");
    let c = Reap(start(&cg, cmd, true));
    let f = finding(&cg).expect("runtime-heap for node");
    assert_eq!(f["severity"], "critical");
    assert_eq!(heap_of(&f, c.0.id()), Some(1 << 30));
    let (_, out, _) = run(&["explain", cg.path(), "--json"]);
    assert!(!out.contains("hunter2"), "a secret leaked");
    let (_, out, _) = run(&["show", cg.path(), "--json"]);
    assert!(!out.contains("hunter2"), "a secret leaked");
}

#[test]
fn go_without_gomemlimit_is_unbounded() {
    if !have("go") {
        eprintln!("skipped: go not installed");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("sleep");
    let ok = Command::new("go")
        .args(["build", "-o", bin.to_str().unwrap()])
        .arg(fixtures().join("sleep.go"))
        .env("GOCACHE", d.path().join("cache"))
        .env("GOPATH", d.path().join("gopath"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "go build");
    let cg = cgroup("go");
    limit(&cg, 128 * MIB);
    let c = Reap(start(&cg, Command::new(&bin), true));
    let f = finding(&cg).expect("runtime-heap for Go without GOMEMLIMIT");
    assert_eq!(f["severity"], "warn");
    assert!(heap_of(&f, c.0.id()).is_none(), "{f:#}");
    drop(c);
    let mut cmd = Command::new(&bin);
    cmd.env("GOMEMLIMIT", "64MiB");
    let _c = Reap(start(&cg, cmd, true));
    assert!(finding(&cg).is_none(), "GOMEMLIMIT 64MiB fits 128 MiB");
}
