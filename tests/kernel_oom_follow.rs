//! `memlens oom --follow` on real OOM kills in memcgs of ours (v1 on the host: counters
//! polled; v2 in the VM: inotify on memory.events): each kill is printed within 1 s of the
//! moment the kernel counted it, once from the kernel log with its post-mortem, and once with
//! the log taken away (MEMLENS_KMSG), from the kernel's oom_kill counter alone.
//!
//! The reference time is measured by the test itself, not by memlens: a thread reads the
//! memcg's own counter file every millisecond and notes when `oom_kill` becomes 1.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The file holding the memcg's own oom_kill counter.
fn counter_file() -> &'static str {
    match hier().version {
        memlens::model::Version::V1 => "memory.oom_control",
        memlens::model::Version::V2 => "memory.events",
    }
}

fn oom_kills(cg: &memlens::cgroup::owned::OwnedCgroup) -> u64 {
    kfile(cg, counter_file())
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// Starts `memlens oom --follow --json` (with `env` set) and returns it once its banner says
/// it is watching, with a channel of (arrival time, line) for its stdout.
fn start_follow(env: &[(&str, &str)]) -> (Proc, mpsc::Receiver<(Instant, String)>, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["oom", "--follow", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start memlens oom --follow");
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let mut banner = String::new();
    BufReader::new(err)
        .read_line(&mut banner)
        .expect("banner on stderr");
    assert!(banner.contains("following OOM kills"), "banner: {banner}");
    (Proc(child), rx, banner)
}

/// Runs grow=128M in a 32 MiB memcg until the kernel kills it; returns (victim pid, the
/// moment the test saw the kernel's counter rise).
fn kill_one(cg: &memlens::cgroup::owned::OwnedCgroup) -> (i64, Instant) {
    let mut cmd = Command::new(bin());
    cmd.args(["__workload", "grow=128M"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cg.join_before_exec(&mut cmd).expect("join");
    let mut child = cmd.spawn().expect("spawn workload");
    let pid = child.id() as i64;
    let counted = loop {
        if oom_kills(cg) >= 1 {
            break Instant::now();
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Died before a poll saw the counter: the counter rose before this moment.
            assert_eq!(
                oom_kills(cg),
                1,
                "workload ended without an OOM kill: {status:?}"
            );
            break Instant::now();
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = child.wait();
    (pid, counted)
}

/// The first event about `cg` (other tests may OOM their own memcgs meanwhile).
fn event_for(
    rx: &mpsc::Receiver<(Instant, String)>,
    cg: &memlens::cgroup::owned::OwnedCgroup,
) -> (Instant, serde_json::Value) {
    let until = Instant::now() + Duration::from_secs(10);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let Ok((at, line)) = rx.recv_timeout(left) else {
            break;
        };
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
        if v["cgroup"] == cg.path() {
            return (at, v);
        }
    }
    panic!(
        "memlens oom --follow printed nothing about {} in 10 s",
        cg.path()
    );
}

#[test]
fn follow_reports_a_real_kill_from_the_kernel_log_within_a_second() {
    let cg = cgroup("follow");
    limit(&cg, 32 * MIB);
    let (_f, rx, _) = start_follow(&[]);
    let (pid, counted) = kill_one(&cg);
    let (at, ev) = event_for(&rx, &cg);
    let late = at.saturating_duration_since(counted);
    assert!(
        late < Duration::from_secs(1),
        "printed {late:?} after the kill"
    );
    assert_eq!(ev["detected_by"], "kernel-log", "{ev:#}");
    assert_eq!(ev["kills"], 1);
    let pm = &ev["post_mortem"];
    assert_eq!(pm["victim"]["pid"].as_i64(), Some(pid), "{ev:#}");
    assert_eq!(pm["oom_memcg"], cg.path());
    assert_eq!(pm["limit_bytes"], 32 * MIB);
    assert_eq!(pm["constraint"], "CONSTRAINT_MEMCG");
    assert_eq!(pm["verdict"]["id"], "anon-growth");
    // The kernel's counter for the same kill is matched to this report, not printed again.
    let quiet_until = Instant::now() + Duration::from_millis(1500);
    while let Some(left) = quiet_until.checked_duration_since(Instant::now()) {
        if let Ok((_, line)) = rx.recv_timeout(left) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("json line");
            assert_ne!(v["cgroup"], cg.path(), "the same kill printed twice: {v:#}");
        }
    }
    // The same kill, as `memlens oom` lists it afterwards.
    let all = json(&["oom"]);
    let listed = all["events"]
        .as_array()
        .expect("list")
        .iter()
        .rev()
        .find(|k| k["victim"]["pid"].as_i64() == Some(pid))
        .expect("the kill is in memlens oom");
    assert_eq!(listed["victim"], pm["victim"]);
    assert_eq!(listed["usage_bytes"], pm["usage_bytes"]);
    eprintln!("kernel-log event {late:?} after the counter rose");
}

#[test]
fn follow_reports_a_kill_from_the_counter_alone_when_the_log_is_unreadable() {
    let (_f, rx, banner) = start_follow(&[("MEMLENS_KMSG", "/nonexistent/kmsg")]);
    assert!(banner.contains("no kernel log"), "{banner}");
    // Created after the follower started: it must find the new cgroup (and count its kills
    // from zero) on its own.
    let cg = cgroup("followctr");
    limit(&cg, 32 * MIB);
    let (_, counted) = kill_one(&cg);
    let (at, ev) = event_for(&rx, &cg);
    let late = at.saturating_duration_since(counted);
    assert!(
        late < Duration::from_secs(1),
        "printed {late:?} after the kill"
    );
    assert_eq!(ev["detected_by"], "counter", "{ev:#}");
    assert_eq!(ev["kills"], 1);
    assert!(ev["post_mortem"].is_null());
    assert!(
        ev["note"]
            .as_str()
            .is_some_and(|n| n.contains("/nonexistent/kmsg")),
        "{ev:#}"
    );
    eprintln!("counter event {late:?} after the counter rose");
}

#[test]
fn follow_refuses_a_capture_and_show() {
    let (code, _, err) = run(&["oom", "--follow", "show", "1"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&["oom", "--follow", "--file", "/dev/null"]);
    assert_eq!(code, 2, "{err}");
}
