//! `memlens recommend --prometheus URL` against a real Prometheus (Debian's package, as
//! kernel_serve.rs starts it) scraping `memlens serve` every second, while `memlens record`
//! records the same memcg: both give the same recommendation for a workload of known shape
//! (60 MiB of anon, 200 MiB of page cache read twice).

mod common;

use common::*;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn start_recorder(store: &Path) -> (Proc, Arc<Mutex<usize>>) {
    common::start_recorder_counting(store, "1s", &[])
}

fn samples_in_prometheus(pport: u16, id: &str) -> u64 {
    let q = format!("count_over_time(memlens_memory_not_reclaimable_bytes{{id=\"{id}\"}}[10m])");
    let enc = common::prometheus::encode(&q);
    let Ok((200, body)) = http_get(pport, &format!("/api/v1/query?query={enc}"), None) else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[test]
fn prometheus_gives_the_same_recommendation_as_the_store() {
    if !common::prometheus::available("kernel_prometheus_recommend") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let st = d.path().join("store");
    let cg = cgroup("promrec");
    limit(&cg, 1024 * MIB);
    let file = disk_dir().join(format!("memlens-test-promrec-{}", std::process::id()));
    let f = file.to_str().unwrap().to_string();
    let (_rec, ticks) = start_recorder(&st);
    let (_serve, mport) = start_serve("1s", &[]);
    let (prom, pport) = common::prometheus::start(d.path(), mport);
    let w = Workload::start(
        &cg,
        &[
            "anon=60M",
            &format!("write={f}:200M"),
            &format!("read={f}:2"),
        ],
    );
    let id = cg.path().to_string();
    let t = Instant::now();
    while samples_in_prometheus(pport, &id) < 15 || *ticks.lock().unwrap() < 15 {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "prometheus has {} samples, the store {} ticks",
            samples_in_prometheus(pport, &id),
            ticks.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let url = format!("http://127.0.0.1:{pport}");
    let p = common::json(&["recommend", "--prometheus", &url, &id, "--since", "10m"]);
    let s = common::json(&["--store", st.to_str().unwrap(), "recommend", &id]);
    let _ = std::fs::remove_file(&file);
    let (pr, sr) = (&p["recommendations"][0], &s["recommendations"][0]);
    eprintln!(
        "prometheus: {}\nstore: {}",
        serde_json::to_string_pretty(pr).unwrap(),
        serde_json::to_string_pretty(sr).unwrap()
    );
    let g = |r: &serde_json::Value, k: &str| {
        r.pointer(k)
            .and_then(|v| v.as_u64())
            .unwrap_or_else(|| panic!("{k} in {r}"))
    };
    let nr = g(pr, "/not_reclaimable/peak_bytes");
    assert!(
        (58 * MIB..=80 * MIB).contains(&nr),
        "not reclaimable peak {} MiB",
        nr / MIB
    );
    assert!(g(pr, "/working_set/peak_bytes") > 200 * MIB);
    assert!(g(pr, "/not_reclaimable/samples") >= 15);
    // The same recommendation: both sample the same steady memcg (a scrape and a tick see
    // it within a few pages of each other).
    for k in [
        "/request_bytes",
        "/recommended_limit_bytes",
        "/krr_style_limit_bytes",
    ] {
        let (a, b) = (g(pr, k), g(sr, k));
        assert!(
            a.abs_diff(b) <= 4 * MIB,
            "{k}: prometheus {} MiB, store {} MiB",
            a / MIB,
            b / MIB
        );
    }
    assert_eq!(g(pr, "/limit_bytes"), 1024 * MIB);
    assert_eq!(pr["limit_hits"], sr["limit_hits"]);
    assert!(pr["peak_note"].as_str().unwrap().contains("Prometheus"));
    assert!(
        pr["instance"]
            .as_str()
            .unwrap()
            .contains(&mport.to_string())
    );
    // Without a TARGET: this memcg is among the leaves.
    let all = common::json(&["recommend", "--prometheus", &url, "--since", "10m"]);
    assert!(
        all["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["cgroup"] == id.as_str())
    );
    // Bad addresses: exit 1 or 2 with the reason, no crash.
    let (code, _, err) = run(&["recommend", "--prometheus", "https://127.0.0.1:1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("https is not supported"), "{err}");
    let (code, _, err) = run(&[
        "recommend",
        "--prometheus",
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    let (code, _, err) = run(&["recommend", "--prometheus", &url, "/no/such/cgroup"]);
    assert_eq!(code, 2, "{err}");
    w.finish();
    drop(prom);
}
