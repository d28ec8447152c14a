//! `memlens serve` against the real kernel and a real Prometheus (Debian's `prometheus`
//! package: `.ci/run` installs it). Run as root on a host with a memory cgroup controller.

mod common;
use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::prometheus::encode as enc;

/// Instant query; the result vector.
fn query(port: u16, q: &str) -> Vec<serde_json::Value> {
    let (code, body) =
        http_get(port, &format!("/api/v1/query?query={}", enc(q)), None).expect("query prometheus");
    assert_eq!(code, 200, "prometheus query {q}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("prometheus JSON");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn value(r: &serde_json::Value) -> f64 {
    r["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("sample value")
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_scrapes_kernel_values_and_series_go_stale() {
    if !common::prometheus::available(
        "kernel_serve::prometheus_scrapes_kernel_values_and_series_go_stale",
    ) {
        return;
    }
    let cg = cgroup("serve");
    let w = Workload::start(&cg, &["anon=32M"]);
    let (_serve, mport) = start_serve("1s", &[]);

    // The 0.0.4 text passes promtool's linter (OpenMetrics is what Prometheus negotiates
    // below, so both encoders meet a real parser).
    let (_, text) = http_get(mport, "/metrics", None).expect("scrape");
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    lint.stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = lint.wait_with_output().expect("promtool");
    let lint_out =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // promtool lints naming conventions too; cAdvisor's own names (container_memory_rss,
    // container_memory_failcnt counter without _total) are kept on purpose.
    for line in lint_out.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.contains("container_memory_")
                && (line.contains("_total") || line.contains("unit")),
            "promtool: {line}\n{lint_out}"
        );
    }

    let dir = tempfile::tempdir().expect("tmp");
    let (prom, pport) = common::prometheus::start(dir.path(), mport);
    wait_for("prometheus ready", 60, || {
        matches!(http_get(pport, "/-/ready", None), Ok((200, _))).then_some(())
    });

    let id = cg.path().to_string();
    let sel = |m: &str| format!("{m}{{id=\"{id}\"}}");
    // rss: exact for a quiescent workload.
    let rss = wait_for("container_memory_rss in prometheus", 60, || {
        query(pport, &sel("container_memory_rss"))
            .first()
            .map(value)
    });
    let k = kstat(&cg);
    assert_eq!(
        rss as u64,
        k[&key("anon")],
        "container_memory_rss vs memory.stat"
    );
    assert!(rss as u64 >= 32 * MIB);
    let anon = query(pport, &sel("memlens_memory_anon_bytes"));
    assert_eq!(value(&anon[0]) as u64, k[&key("anon")]);
    // usage: a live counter; within 1 MiB of the kernel's at about the same time.
    let usage = value(&query(pport, &sel("container_memory_usage_bytes"))[0]);
    let kusage: u64 = kfile(&cg, usage_file()).trim().parse().expect("usage");
    assert!(
        (usage as i64 - kusage as i64).unsigned_abs() <= MIB,
        "usage {usage} vs kernel {kusage}"
    );
    let ws = value(&query(pport, &sel("container_memory_working_set_bytes"))[0]);
    assert!(ws <= usage && ws as u64 >= 32 * MIB);
    // OOM kills: the kernel's counter (0 here) where the kernel has one.
    let ooms = query(pport, &sel("container_oom_events_total"));
    assert!(ooms.iter().all(|r| value(r) == 0.0));
    // Host and self metrics.
    assert!(!query(pport, "memlens_host_meminfo_bytes{field=\"MemTotal\"}").is_empty());
    assert!(!query(pport, "memlens_collection_duration_seconds").is_empty());
    // Prometheus scraped successfully all along.
    let up = query(pport, "up{job=\"memlens\"}");
    assert_eq!(value(&up[0]), 1.0);

    // Remove the memcg: its series go stale (absent from an instant query).
    drop(w);
    cg.remove().expect("remove memcg");
    wait_for("series of the removed memcg to go stale", 30, || {
        query(pport, &sel("container_memory_rss"))
            .is_empty()
            .then_some(())
    });
    drop(prom);
}

#[test]
fn api_matches_cli_json_and_is_read_only() {
    let cg = cgroup("serve-api");
    let _w = Workload::start(&cg, &["anon=8M"]);
    let (_serve, port) = start_serve("1s", &[]);
    let (code, body) = http_get(
        port,
        &format!("/api/v1/cgroup?path={}", enc(cg.path())),
        None,
    )
    .expect("api");
    assert_eq!(code, 200, "{body}");
    let api: serde_json::Value = serde_json::from_str(&body).expect("json");
    let cli = json(&["show", cg.path()]);
    for k in ["cgroup", "identity", "limit_bytes"] {
        assert_eq!(api[k], cli[k], "{k}");
    }
    assert_eq!(
        api["breakdown"]["anon_bytes"], cli["breakdown"]["anon_bytes"],
        "quiescent anon"
    );
    // Overview: the same object as `memlens --json`.
    wait_for("the new memcg in the overview", 10, || {
        let (_, b) = http_get(port, "/api/v1/overview?all=1", None).ok()?;
        let v: serde_json::Value = serde_json::from_str(&b).ok()?;
        v["cgroups"]
            .as_array()?
            .iter()
            .any(|r| r["path"] == cg.path())
            .then_some(())
    });
    let (_, b) = http_get(port, "/api/v1/overview", None).expect("overview");
    let v: serde_json::Value = serde_json::from_str(&b).expect("json");
    let cli = json(&[]);
    assert_eq!(v["hierarchy"], cli["hierarchy"]);
    assert_eq!(v["filter"], cli["filter"]);
    // Errors and read-only.
    assert_eq!(
        http_get(port, "/api/v1/cgroup?path=/nope-x", None)
            .unwrap()
            .0,
        404
    );
    assert_eq!(
        http_get(port, "/api/v1/cgroup?path=/../etc", None)
            .unwrap()
            .0,
        400
    );
    assert_eq!(http_get(port, "/nope", None).unwrap().0, 404);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    // OpenMetrics on request.
    let (_, om) = http_get(
        port,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .unwrap();
    assert!(om.ends_with("# EOF\n"));
}

#[test]
fn survives_concurrency_slow_clients_and_garbage_with_bounded_rss() {
    let (serve, port) = start_serve("1s", &[]);
    let _ = http_get(port, "/metrics", None);
    std::thread::sleep(Duration::from_millis(1500));
    let rss_before = vm_rss(serve.pid());
    // Slow clients: connect, send half a request, hold.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /metr").unwrap();
        slow.push(s);
    }
    // Garbage.
    for g in [
        &b"\x00\x01\x02garbage\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: \xff\xfe\r\n\r\n",
        &[b'A'; 70000][..],
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(g);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    // A client that disconnects mid-response.
    for _ in 0..10 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut b = [0u8; 16];
        let _ = s.read(&mut b);
        drop(s);
    }
    // 50 concurrent scrapes, all served while the slow clients hold their connections.
    let hs: Vec<_> = (0..50)
        .map(|_| std::thread::spawn(move || http_get(port, "/metrics", None)))
        .collect();
    for h in hs {
        let (code, body) = h.join().unwrap().expect("scrape");
        assert_eq!(code, 200);
        assert!(body.contains("container_memory_usage_bytes"));
    }
    let rss_after = vm_rss(serve.pid());
    assert!(
        rss_after < rss_before + 16 * MIB,
        "exporter RSS grew from {rss_before} to {rss_after}"
    );
    drop(slow);
    assert_eq!(http_get(port, "/healthz", None).unwrap().0, 200);
}

/// serve keeps its cgroup list with inotify (walk::Tree) instead of walking every interval:
/// a cgroup created after it started, even nested two deep, gets its series, and loses them
/// once removed.
#[test]
fn cgroups_created_and_removed_while_serving_come_and_go() {
    let (_serve, port) = start_serve("1s", &[]);
    let parent = cgroup("serve-late");
    if hier().version == memlens::model::Version::V2 {
        parent
            .write("cgroup.subtree_control", "+memory")
            .expect("delegate memory to the child");
    }
    let child = parent.create_child("inner").expect("child memcg");
    let series = |path: &str| {
        let (_, body) = http_get(port, "/metrics", None).ok()?;
        let needle = format!("container_memory_usage_bytes{{id=\"{path}\"");
        Some(body.contains(&needle))
    };
    wait_for("the nested memcg created after start", 10, || {
        series(child.path())?.then_some(())
    });
    let child_path = child.path().to_string();
    drop(child);
    wait_for("the removed memcg's series to go", 10, || {
        (!series(&child_path)?).then_some(())
    });
    assert_eq!(series(parent.path()), Some(true));
}

/// `--listen 127.0.0.1:0` reports its port; a port in use fails at once (before the first
/// collection); `/` lists the endpoints; `/api/v1/cgroup` takes every TARGET form and says
/// "no such cgroup"; SIGTERM logs a line and exits 0.
#[test]
fn serve_binds_first_indexes_resolves_targets_and_exits_on_sigterm() {
    let cg = cgroup("serve-target");
    let (serve, port) = start_serve("1s", &[]);
    let (code, body) = http_get(port, "/", None).expect("GET /");
    assert_eq!(code, 200);
    for e in ["/metrics", "/healthz", "/api/v1/overview", "?target="] {
        assert!(body.contains(e), "{body}");
    }
    let name = cg.path().trim_start_matches('/');
    let (code, body) =
        http_get(port, &format!("/api/v1/cgroup?target={name}"), None).expect("GET cgroup");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["cgroup"]["path"], cg.path());
    let (code, body) = http_get(port, "/api/v1/cgroup?path=/nosuch-memlens", None).expect("GET");
    assert_eq!(code, 404);
    assert!(body.contains("no such cgroup"), "{body}");

    // The port is taken: fail before collecting, with the address named.
    let t = std::time::Instant::now();
    let listen = format!("127.0.0.1:{port}");
    let (code, _, err) = run(&["serve", "--listen", &listen]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&listen), "{err}");
    assert!(!err.contains("first collection"), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));

    // SIGTERM: a log line and exit 0.
    let mut serve = serve;
    let out = {
        let pid = serve.pid() as i32;
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t = std::time::Instant::now();
        loop {
            if let Ok(Some(st)) = serve.0.try_wait() {
                break st;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "no exit on SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    assert_eq!(out.code(), Some(0), "{out}");
}

#[test]
fn serve_listen_accepts_colon_port() {
    let d = tempfile::tempdir().expect("tmp");
    let pf = d.path().join("port");
    let mut c = std::process::Command::new(bin())
        .args(["serve", "--listen", ":0", "--interval", "1s", "--port-file"])
        .arg(&pf)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let t = std::time::Instant::now();
    while !pf.exists() && t.elapsed() < std::time::Duration::from_secs(20) {
        assert!(matches!(c.try_wait(), Ok(None)), "serve --listen :0 exited");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    let port: u16 = std::fs::read_to_string(&pf)
        .expect("port file")
        .trim()
        .parse()
        .expect("a port");
    assert!(port > 0);
}
