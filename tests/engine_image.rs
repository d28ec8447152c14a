//! The Dockerfile (issue 11 item 13): the static binary CI builds (.ci/run:
//! MEMLENS_STATIC_BIN) goes into a `FROM scratch` image built offline by our own dockerd,
//! which runs as the DaemonSet runs it (host / read-only at /host, host PID namespace, every
//! capability dropped but SYS_PTRACE and SYSLOG, read-only root) and a real Prometheus
//! scrapes it: a workload container's working set arrives with its docker name.

mod common;
mod engine;

use engine::Engine;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The static memlens: MEMLENS_STATIC_BIN, else the musl or static-glibc release build.
fn static_bin() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cands = std::env::var_os("MEMLENS_STATIC_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join("target/x86_64-unknown-linux-musl/release/memlens"),
            root.join("target/x86_64-unknown-linux-gnu/release/memlens"),
            root.join("target/vm/x86_64-unknown-linux-gnu/debug/memlens"),
        ]);
    for c in cands {
        if !c.is_file() {
            continue;
        }
        // Static: ldd says so (a dynamic one would not start FROM scratch).
        let o = Command::new("ldd").arg(&c).output().ok()?;
        let t = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if t.contains("not a dynamic executable") || t.contains("statically linked") {
            return Some(c);
        }
    }
    None
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn image_from_scratch_runs_as_the_daemonset_and_prometheus_scrapes_it() {
    let t0 = Instant::now();
    let Some(bin) = static_bin() else {
        return engine::unavailable(
            "no static memlens (.ci/run builds it: RUSTFLAGS=-Ctarget-feature=+crt-static cargo build --release --target x86_64-unknown-linux-gnu)",
        )
        .unwrap_or(());
    };
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        return engine::unavailable("prometheus not installed (apt-get install prometheus)")
            .unwrap_or(());
    }
    let Some(e) = Engine::docker() else { return };
    // From the repository itself when the binary is in it: .dockerignore must cut the
    // context (the target directory is gigabytes) to the binary. Else a context of the
    // Dockerfile and the binary alone.
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ctx = tempfile::tempdir().unwrap();
    let (dir, arg) = match bin.strip_prefix(&repo) {
        Ok(rel) => (repo.clone(), rel.display().to_string()),
        Err(_) => {
            std::fs::copy(repo.join("Dockerfile"), ctx.path().join("Dockerfile")).unwrap();
            std::fs::copy(&bin, ctx.path().join("memlens")).unwrap();
            (ctx.path().to_path_buf(), "memlens".to_string())
        }
    };
    let tag = format!("memlens-test/memlens:{}", std::process::id());
    let o = Command::new("docker")
        .args([
            "-H",
            &e.host(),
            "build",
            "--build-arg",
            &format!("BIN={arg}"),
            "-t",
            &tag,
        ])
        .arg(&dir)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "docker build: {out}");
    // "Sending build context to Docker daemon  20.97MB": the binary, not the target dir.
    if let Some(sz) = out
        .lines()
        .find_map(|l| l.strip_prefix("Sending build context to Docker daemon"))
    {
        let sz = sz.trim();
        assert!(
            sz.ends_with("kB")
                || sz.ends_with("MB")
                    && sz.trim_end_matches("MB").parse::<f64>().unwrap_or(1e9) < 200.0,
            "context {sz}"
        );
        eprintln!("build context: {sz}");
    }
    e.track_image(&tag);
    // A workload to see.
    let p = std::process::id();
    let work = format!("mlt-scraped-{p}");
    e.workload(&work, &["--memory", "64m"], &["anon=24M"]);
    // The exporter, as the DaemonSet runs it (host network: the test daemon has no bridge).
    let port = common::free_port();
    let (dk, dv) = e.env();
    let exporter = format!("mlt-exporter-{p}");
    let mut a: Vec<String> = vec![
        "run",
        "-d",
        "--name",
        &exporter,
        "--network",
        "host",
        "--pid",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "SYS_PTRACE",
        "--cap-add",
        "SYSLOG",
        "--security-opt",
        "no-new-privileges",
        "-v",
        "/:/host:ro",
        "-e",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    a.push(format!("{dk}={dv}"));
    a.push(tag.clone());
    a.extend(
        [
            "serve",
            &format!("--listen=127.0.0.1:{port}"),
            "--interval=1s",
            "--host-root=/host",
            "--log-format=json",
        ]
        .map(String::from),
    );
    e.track_container(&exporter);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    e.ok(&a);
    wait_for("the exporter's /healthz", 30, || {
        matches!(common::http_get(port, "/healthz", None), Ok((200, _))).then_some(())
    });

    let dir = tempfile::tempdir().unwrap();
    let (prom, pport) = common::prometheus::start(dir.path(), port);
    let q = format!("container_memory_working_set_bytes{{name=\"{work}\"}}");
    let ws = wait_for("the workload's working set in prometheus", 60, || {
        common::prometheus::value(pport, &q)
    });
    assert!(
        ws >= (24 << 20) as f64 && ws <= (64 << 20) as f64,
        "working set {ws}"
    );
    drop(prom);
    eprintln!("engine: image test took {:?} in all", t0.elapsed());
}
