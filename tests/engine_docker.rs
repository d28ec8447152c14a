//! memlens against a real Docker daemon (issue 11): our own dockerd (tests/engine), containers
//! with `--memory` running memlens's workloads, compared with what `docker stats` and
//! `docker inspect` say at the same moment. kdamond (a DAMON pageout scheme on this host)
//! reclaims cold page cache even below the limit, so each docker figure is bracketed by two
//! memlens reads and must lie between them (to docker's rounding).
//!
//! One test function per daemon: starting dockerd costs seconds, and a daemon in a static
//! would never be stopped.

mod common;
mod engine;

use engine::Engine;
use std::time::{Duration, Instant};

/// docker's `units.BytesSize`: `%.4g` of the value in the largest binary unit below 1024.
fn docker_size(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", g4(v), units[i])
}

/// C's `%.4g` for 0 ≤ v < 1024 (never the exponent form there).
fn g4(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = (3 - v.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    // Rounding can carry into a fifth digit (999.95 → 1000.0): %.4g then prints 1000.
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Parses docker's size text back to bytes (for the bracket test).
fn parse_docker_size(s: &str) -> f64 {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (n, u) = s.split_at(split);
    let mult = match u {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1048576.0,
        "GiB" => 1073741824.0,
        _ => panic!("unit {u:?} in {s:?}"),
    };
    n.parse::<f64>().unwrap() * mult
}

struct Views {
    usage: u64,
    limit: u64,
    percent: f64,
}

fn views(e: &Engine, name: &str) -> Views {
    let v = e.memlens_json(&["show", name]);
    let w = &v["views"];
    Views {
        usage: w["docker_stats_bytes"].as_u64().unwrap(),
        limit: w["docker_stats_limit_bytes"].as_u64().unwrap(),
        percent: w["docker_stats_percent"].as_f64().unwrap(),
    }
}

/// docker stats for one container, bracketed by memlens reads; compares.
fn compare_stats(e: &Engine, name: &str) {
    let before = views(e, name);
    let out = e.ok(&["stats", "--no-stream", "--format", "{{json .}}", name]);
    let after = views(e, name);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (usage, limit) = s["MemUsage"].as_str().unwrap().split_once(" / ").unwrap();
    assert_eq!(limit, docker_size(before.limit), "{name}: LIMIT");
    let exact = [docker_size(before.usage), docker_size(after.usage)];
    if !exact.iter().any(|x| x == usage) {
        // Between the two reads, to the last digit docker prints.
        let d = parse_docker_size(usage);
        let (lo, hi) = (before.usage.min(after.usage), before.usage.max(after.usage));
        let ulp = d / 1000.0;
        assert!(
            d >= lo as f64 - ulp && d <= hi as f64 + ulp,
            "{name}: docker MEM USAGE {usage} not between memlens {exact:?} ({lo}..{hi})"
        );
    }
    eprintln!(
        "{name}: docker stats {usage} / {limit} {}; memlens {} .. {} of {}, {:.2}% .. {:.2}%",
        s["MemPerc"], before.usage, after.usage, before.limit, before.percent, after.percent
    );
    let pct = s["MemPerc"].as_str().unwrap().trim_end_matches('%');
    let pct: f64 = pct.parse().unwrap();
    let (lo, hi) = (
        before.percent.min(after.percent),
        before.percent.max(after.percent),
    );
    assert!(
        pct >= (lo * 100.0).floor() / 100.0 - 0.005 && pct <= (hi * 100.0).ceil() / 100.0 + 0.005,
        "{name}: docker MEM % {pct} vs memlens {lo}..{hi}"
    );
    // The overview's row: same cgroup, its name, the working set docker 20.10+ shows.
    let ov = e.memlens_json(&[]);
    let row = ov["cgroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["identity"]["names"]["runtime_name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the overview: {ov}"));
    let ws = row["working_set_bytes"].as_u64().unwrap();
    let slack = 8 << 20; // kdamond between the reads
    assert!(
        ws + slack >= before.usage.min(after.usage) && ws <= before.usage.max(after.usage) + slack,
        "{name}: overview working set {ws} vs docker view {}..{}",
        before.usage,
        after.usage
    );
}

#[test]
fn docker() {
    let t0 = Instant::now();
    let Some(e) = Engine::docker() else { return };
    eprintln!(
        "engine: dockerd up and image imported in {:?}",
        e.started_in
    );
    let p = std::process::id();
    let n = |s: &str| format!("mlt-{s}-{p}");

    // --- docker stats, overview, show: the seeds' workloads under --memory.
    let anon = n("anon");
    e.workload(&anon, &["--memory", "128m"], &["anon=48M"]);
    let cache = n("cache");
    e.workload(
        &cache,
        &["--memory", "128m"],
        &["write=/var/f:32M", "read=/var/f:2"],
    );
    let shm = n("shm");
    e.workload(
        &shm,
        &["--memory", "64m", "--shm-size", "64m"],
        &["pshm=x:16M", "anon=4M"],
    );
    let unl = n("unlimited");
    e.workload(&unl, &[], &["anon=8M"]);
    for c in [&anon, &cache, &shm, &unl] {
        compare_stats(&e, c);
    }
    // NAME column and show carry the docker name and the image.
    let (code, out, err) = e.memlens(&["--color", "never"]);
    assert_eq!(code, 0, "{err}");
    for c in [&anon, &cache, &shm, &unl] {
        assert!(out.contains(c.as_str()), "overview lacks {c}: {out}");
    }
    let (code, out, err) = e.memlens(&["show", &anon, "--color", "never"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("name {anon}")) && out.contains(&e.image),
        "{out}"
    );

    // --- names as targets: show/ps/explain by name; after `docker rename`, the new name.
    let id = e.ok(&["inspect", "-f", "{{.Id}}", &anon]);
    for cmd in ["show", "ps", "explain"] {
        let (code, out, err) = e.memlens(&[cmd, &anon, "--json"]);
        assert_eq!(code, 0, "{cmd} {anon}: {err}");
        assert!(out.contains(&id), "{cmd} {anon}: {out}");
    }
    let renamed = n("renamed");
    e.ok(&["rename", &anon, &renamed]);
    let v = e.memlens_json(&["show", &renamed]);
    assert_eq!(v["identity"]["container_id"], id.as_str());
    assert_eq!(v["identity"]["names"]["runtime_name"], renamed.as_str());
    let (code, _, err) = e.memlens(&["show", &anon]);
    assert_eq!(code, 2, "the old name no longer names it: {err}");
    e.ok(&["rename", &renamed, &anon]);

    // --- `--cgroup-parent`: a bare-ID cgroup outside /docker is docker's when its config
    // says so (the path alone says "unknown").
    let parent = format!("memlens-test-parent-{p}");
    let cp = n("cgparent");
    let cpid = e.workload(
        &cp,
        &["--cgroup-parent", &format!("/{parent}")],
        &["anon=4M"],
    );
    let v = e.memlens_json(&["show", &cp]);
    assert_eq!(v["cgroup"]["path"], format!("/{parent}/{cpid}").as_str());
    assert_eq!(v["identity"]["runtime"], "docker");
    assert_eq!(v["identity"]["names"]["image"], e.image.as_str());
    e.remove(&cp);
    engine::remove_parent_cgroup(&parent);

    // --- a digits-only ID prefix that is also a live PID: ambiguous, both listed.
    // Run sleepers until one has a digit prefix that is a live PID.
    let mut checked = false;
    for i in 0..40 {
        let name = n(&format!("dsleep{i}"));
        let cid = e.run(&name, &[], &["/bin/sleep", "1000"]);
        let digits: String = cid.chars().take_while(|c| c.is_ascii_digit()).collect();
        let pick = (1..=digits.len().min(3)).rev().find(|k| {
            let pfx = &digits[..*k];
            !pfx.starts_with('0') && std::path::Path::new(&format!("/proc/{pfx}")).exists()
        });
        match pick {
            Some(k) => {
                let pfx = &digits[..k];
                let (code, _, err) = e.memlens(&["show", pfx]);
                assert_eq!(code, 2, "{pfx}: {err}");
                assert!(
                    err.contains(&format!("process {pfx}"))
                        && err.contains(&cid)
                        && err.contains(&name),
                    "{err}"
                );
                checked = true;
                e.remove(&name);
                break;
            }
            None => e.remove(&name),
        }
    }
    assert!(
        checked,
        "no container ID began with a live PID's digits in 40 tries"
    );

    // --- capture: another container's planted secret never leaves in a capture.
    let secret = format!("planted-secret-{p}");
    let sec = n("secret");
    let env = format!("DB_PASSWORD={secret}");
    let script = format!("sleep 100000 # --token={secret}");
    e.run(
        &sec,
        &["-e", &env, "--label", &format!("com.example.key={secret}")],
        &["/bin/sh", "-c", &script],
    );
    let dir = tempfile::tempdir().unwrap();
    for (target, what) in [(&anon, "another container"), (&sec, "the container itself")] {
        let out = dir.path().join("cap.tar.gz");
        let o = out.display().to_string();
        let (code, _, err) = e.memlens(&["capture", target, "-o", &o]);
        assert_eq!(code, 0, "{err}");
        let raw = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("gzip -dc {o} | grep -c -a -- {secret}"))
            .output()
            .unwrap();
        let hits = String::from_utf8_lossy(&raw.stdout).trim().to_string();
        assert_eq!(hits, "0", "capture of {what} holds the secret {hits} times");
        // Names survive: the target's name and image read back from the capture.
        let v = e.memlens_json(&["show", target, "--from", &o]);
        assert_eq!(v["identity"]["names"]["runtime_name"], target.as_str());
    }
    e.remove(&sec);

    // --- --host-root without the host's PID namespace: said, and no conclusion drawn from
    // the empty process lists (item 7).
    let (dk, dv) = e.env();
    let envarg = format!("{dk}={dv}");
    let o = e.cmd(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "/:/host:ro",
        "-e",
        &envarg,
        &e.image,
        "/bin/memlens",
        "--host-root",
        "/host",
        "show",
        &anon,
        "--json",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("not in the host's PID namespace"), "{out}");
    assert!(!out.contains("charged-but-empty"), "{out}");
    // With the host's PID namespace: the workload's process is listed, no such problem.
    let o = e.cmd(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pid",
        "host",
        "-v",
        "/:/host:ro",
        "-e",
        &envarg,
        &e.image,
        "/bin/memlens",
        "--host-root",
        "/host",
        "ps",
        &anon,
        "--json",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && !out.contains("not in the host's PID namespace"),
        "{out}"
    );
    assert!(out.contains("memlens"), "the workload process: {out}");

    // --- inside a container without --host-root (item 8): its own cgroup is named from the
    // mount's root (v1 /docker/ID), node-level figures are n/a with the reason.
    let me = n("inside");
    let o = e.cmd(&[
        "run",
        "--name",
        &me,
        "--network",
        "none",
        &e.image,
        "/bin/memlens",
        "--json",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let my_id = e.ok(&["inspect", "-f", "{{.Id}}", &me]);
    e.remove(&me);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    if common::hier().version == memlens::model::Version::V1 {
        let row = &v["cgroups"][0];
        assert_eq!(row["path"], "/");
        assert_eq!(row["identity"]["container_id"], my_id.as_str(), "{out}");
    }
    assert!(v["node"]["memory_available_bytes"].is_null(), "{out}");
    assert!(
        v["node"]["memory_available_source"]
            .as_str()
            .unwrap()
            .contains("n/a"),
        "{out}"
    );

    // --- a non-root reader loses names: every unreadable name source is a problem (item 14).
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(common::bin())
        .args(["--json"])
        .env(dk, &dv)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("container names:") && out.contains("permission denied"),
        "non-root: {out} {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // --- a real OOM kill: docker says OOMKilled + 137; memlens oom / oom show / --follow
    // report it with the container's name and image.
    let mut follow = std::process::Command::new(common::bin())
        .args(["oom", "--follow", "--count", "1", "--json"])
        .env(e.env().0, e.env().1)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The same, from inside a container as the DaemonSet runs memlens: host / at /host,
    // host PID namespace, CAP_SYSLOG only (syslog(2) reads the log the device cgroup keeps
    // /host/dev/kmsg from).
    let inside = n("follow-inside");
    e.run(
        &inside,
        &[
            "--pid",
            "host",
            "-v",
            "/:/host:ro",
            "-e",
            &envarg,
            "--cap-drop",
            "ALL",
            "--cap-add",
            "SYSLOG",
        ],
        &[
            "/bin/memlens",
            "--host-root",
            "/host",
            "oom",
            "--follow",
            "--count",
            "1",
            "--json",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let oom = n("oom");
    let oid = e.run(
        &oom,
        &["--memory", "32m", "--memory-swap", "32m"],
        &["/bin/memlens", "__workload", "grow=1G"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while e.ok(&["inspect", "-f", "{{.State.Running}}", &oom]) == "true" {
        assert!(Instant::now() < deadline, "the OOM container kept running");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        e.ok(&[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.State.ExitCode}}",
            &oom
        ]),
        "true 137"
    );
    let list = e.memlens_json(&["oom"]);
    let all = list["events"].as_array().unwrap();
    let pm = all
        .iter()
        .rev()
        .find(|p| p["identity"]["container_id"] == oid.as_str())
        .unwrap_or_else(|| panic!("the kill of {oid} is not in `memlens oom`"));
    assert_eq!(pm["identity"]["names"]["runtime_name"], oom.as_str());
    assert_eq!(pm["identity"]["names"]["image"], e.image.as_str());
    let num = pm["number"].as_u64().unwrap().to_string();
    let (code, out, err) = e.memlens(&["oom", "show", &num, "--color", "never"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("name {oom}")) && out.contains(&e.image),
        "{out}"
    );
    let (code, out, err) = e.memlens(&["oom", "--color", "never"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&oom), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while follow.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = follow.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let fo = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&fo.stdout);
    assert!(
        text.contains(&oid) && text.contains(&oom) && text.contains(&e.image),
        "oom --follow: {text} {}",
        String::from_utf8_lossy(&fo.stderr)
    );
    // Inside: --follow saw it, named.
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.ok(&["inspect", "-f", "{{.State.Running}}", &inside]) == "true" {
        assert!(
            Instant::now() < deadline,
            "oom --follow in a container saw no kill"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = e.ok(&["logs", &inside]);
    assert!(
        logs.contains(&oid) && logs.contains(&oom),
        "follow inside: {logs}"
    );
    // Inside, post-mortems: with CAP_SYSLOG the kill is listed with its names; without, the
    // message says what is missing.
    let host = [
        "--rm",
        "--network",
        "none",
        "--pid",
        "host",
        "-v",
        "/:/host:ro",
        "-e",
        &envarg,
        "--cap-drop",
        "ALL",
    ];
    let run_inside = |extra: &[&str], args: &[&str]| {
        let mut a: Vec<&str> = vec!["run"];
        a.extend(host);
        a.extend(extra);
        a.push(&e.image);
        a.push("/bin/memlens");
        a.extend(args);
        e.cmd(&a)
    };
    let o = run_inside(
        &["--cap-add", "SYSLOG"],
        &["--host-root", "/host", "oom", "--json"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains(&oid) && out.contains(&oom),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run_inside(&[], &["--host-root", "/host", "oom"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/host/dev/kmsg")
            && err.contains("device cgroup")
            && err.contains("CAP_SYSLOG"),
        "{err}"
    );
    let o = run_inside(&[], &["oom", "--file", "/dev/kmsg"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--device /dev/kmsg"), "no device: {err}");
    // The host's own device given to --file: read record by record (a short read is EINVAL).
    let (code, out, err) = e.memlens(&["oom", "--file", "/dev/kmsg", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&oid), "--file /dev/kmsg lacks the kill");
    // serve exports the kill, parsed, with the container's name.
    let port = common::free_port();
    let mut serve = std::process::Command::new(common::bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--interval",
            "1s",
        ])
        .env(dk, &dv)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        if let Ok((200, body)) = common::http_get(port, "/metrics", None) {
            break body;
        }
        assert!(Instant::now() < deadline, "serve did not answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = serve.kill();
    let _ = serve.wait();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("memlens_oom_kill_info{") && l.contains(&oid))
        .unwrap_or_else(|| panic!("no memlens_oom_kill_info for {oid}"));
    for w in [
        format!("container=\"{oom}\""),
        format!("image=\"{}\"", e.image),
        "verdict=\"".into(),
        "constraint=\"CONSTRAINT_MEMCG\"".into(),
        "victim=\"memlens\"".into(),
    ] {
        assert!(line.contains(&w), "{w} not in {line}");
    }
    eprintln!("engine: docker test took {:?} in all", t0.elapsed());
}
