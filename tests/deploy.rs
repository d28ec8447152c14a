//! The deployment files: Kubernetes manifests validated offline (tests/deploy/check.py:
//! kubernetes-validate for core kinds, a CRD-derived schema for the ServiceMonitor, and
//! cross-references), the Grafana dashboard parses and uses only metrics the exporter emits.

mod common;
use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn kubernetes_manifests_validate() {
    let have = Command::new("python3")
        .args(["-c", "import yaml, jsonschema"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("kubernetes-validate")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !have {
        let msg = "kubernetes-validate (pip install kubernetes-validate) is not installed: cannot validate deploy/kubernetes";
        common::skip("deploy::kubernetes_manifests_validate", msg);
        return;
    }
    let out = Command::new("python3")
        .arg(repo().join("tests/deploy/check.py"))
        .arg(repo())
        .output()
        .expect("run check.py");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn grafana_dashboard_uses_only_emitted_metrics() {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/memlens.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let known = memlens::metrics::family_names();
    let mut exprs = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if (k == "expr" || k == "definition") && x.is_string() {
                        out.push(x.as_str().unwrap().to_string());
                    }
                    walk(x, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&v, &mut exprs);
    assert!(exprs.len() >= 15, "too few queries: {}", exprs.len());
    let mut used = 0;
    for e in &exprs {
        // Metric names: identifiers starting container_ or memlens_.
        let bytes = e.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let rest = &e[i..];
            let at_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            if at_word && (rest.starts_with("container_") || rest.starts_with("memlens_")) {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let name = &rest[..end];
                assert!(
                    known.contains(&name),
                    "dashboard uses {name}, which memlens does not emit (in {e})"
                );
                used += 1;
                i += end;
            } else {
                i += 1;
            }
        }
    }
    assert!(used >= 15);
    for needle in [
        "memlens_memory_anon_bytes",
        "memlens_memory_active_file_bytes",
        "memlens_memory_inactive_file_bytes",
        "memlens_memory_shmem_bytes",
        "memlens_memory_kernel_bytes",
        "memlens_memory_limit_bytes",
        "container_oom_events_total",
        "memlens_memory_pressure_some_seconds_total",
    ] {
        assert!(text.contains(needle), "dashboard lacks {needle}");
    }
}

/// The systemd unit parses and its directives exist (systemd-analyze verify), with ExecStart
/// pointed at the binary under test; its capability set is the one the comment explains.
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/memlens.service"))
        .expect("deploy/systemd/memlens.service");
    assert!(unit.contains("CapabilityBoundingSet=CAP_SYS_PTRACE CAP_SYSLOG\n"));
    assert!(unit.contains("--listen 127.0.0.1:"), "loopback by default");
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        common::skip(
            "deploy::systemd_unit_verifies",
            "systemd-analyze is not installed (apt-get install systemd): cannot verify deploy/systemd",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let copy = dir.path().join("memlens.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/memlens",
            &common::bin().display().to_string(),
        ),
    )
    .expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
