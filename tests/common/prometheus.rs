//! A real Prometheus (Debian's package) for the tests that scrape memlens: started on a free
//! port with its own config and data under a temp dir, stopped when dropped.

use super::{Proc, free_port, http_get, skip};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `prometheus` runs here; says why `test` is skipped when it does not.
pub fn available(test: &str) -> bool {
    let ok = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(
            test,
            "prometheus is not installed (apt-get install -y prometheus; .ci/run does)",
        );
    }
    ok
}

/// Prometheus scraping `127.0.0.1:target` every second, ready; its process and port. It
/// cannot report a port it chose, so it gets a free one; another process may take it between
/// the check and the bind, and then Prometheus exits: up to 5 ports are tried.
pub fn start(dir: &Path, target: u16) -> (Proc, u16) {
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: memlens\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .expect("config");
    let data = dir.join("data");
    for _ in 0..5 {
        let pport = free_port();
        let mut prom = Proc(
            Command::new("prometheus")
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start prometheus"),
        );
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = prom.0.try_wait() {
                break;
            }
            if matches!(http_get(pport, "/-/ready", None), Ok((200, _))) {
                return (prom, pport);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("prometheus did not start on any of 5 free ports");
}

/// `q` percent-encoded for a query string (RFC 3986 unreserved characters kept).
pub fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The first sample's value of the instant query `q`, if Prometheus has one.
pub fn value(pport: u16, q: &str) -> Option<f64> {
    let (code, body) = http_get(pport, &format!("/api/v1/query?query={}", encode(q)), None).ok()?;
    (code == 200).then_some(())?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}
