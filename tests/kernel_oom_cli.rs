//! `memlens oom` on a real OOM kill in a memcg of ours (v1 on the host, v2 in the VM), and on
//! captured reports from other kernels (tests/fixtures/oom, sources in SOURCES.md).

mod common;
use common::*;
use std::process::{Command, Stdio};

#[test]
fn a_real_oom_kill_is_listed_with_the_kernels_values() {
    let cg = cgroup("oomcli");
    limit(&cg, 32 * MIB);
    let mut cmd = Command::new(bin());
    cmd.args(["__workload", "grow=128M"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cg.join_before_exec(&mut cmd).unwrap();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as i64;
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "grow=128M in 32M must be OOM-killed: {status:?}"
    );
    let all = json(&["oom"]);
    let kill = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|k| k["victim"]["pid"].as_i64() == Some(pid))
        .unwrap_or_else(|| panic!("victim {pid} not in memlens oom: {all:#}"));
    assert_eq!(kill["limit_bytes"], 32 * MIB);
    assert_eq!(kill["oom_memcg"], cg.path());
    assert_eq!(kill["constraint"], "CONSTRAINT_MEMCG");
    assert!(kill["victim"]["anon_rss_bytes"].as_u64().unwrap() > 16 * MIB);
    assert_eq!(
        kill["verdict"]["id"], "anon-growth",
        "report: {:#}",
        kill["lines"]
    );
    assert!(
        kill["time"].as_str().is_some_and(|t| t.starts_with("20")),
        "wall time from btime"
    );
    let n = kill["number"].as_u64().unwrap().to_string();
    let one = json(&["oom", "show", &n]);
    assert_eq!(one["victim"]["pid"].as_i64(), Some(pid));
    let (code, out, _) = run(&["oom", "show", &n, "--color", "never"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("VERDICT") && out.contains("anonymous memory"),
        "{out}"
    );
}

#[test]
fn captured_reports_from_other_kernels() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oom");
    if !dir.exists() {
        eprintln!("skipped: fixtures are not in this environment (the VM has no repository)");
        return;
    }
    let f = dir.join("ubuntu-4.15-docker.log").display().to_string();
    let v = json(&["oom", "--file", &f])["events"].clone();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["victim"]["comm"], "java");
    assert_eq!(v[0]["identity"]["runtime"], "docker");
    assert_eq!(v[0]["limit_bytes"], 512 * MIB);
    let g = dir.join("el7-3.10-global-sysrq.log").display().to_string();
    let v = json(&["oom", "--file", &g])["events"].clone();
    assert_eq!(v[0]["global"], true);
    assert_eq!(v[0]["verdict"]["id"], "global");
    let (code, _, err) = run(&["oom", "show", "9", "--file", &g]);
    assert_eq!(code, 2, "{err}");
}
