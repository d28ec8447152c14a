//! The kubelet's eviction forecast (`memlens node` with the flight recorder's store): the
//! root's recorded working set rising along a line reaches MemTotal − each memory.available
//! threshold at the time the line says. The store is written directly (as tests/store.rs
//! does), so the rise is exact; MemTotal is this machine's (node reads it live).

mod common;

use memlens::store::{Limits, Writer};

const MIB: u64 = 1 << 20;

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("MemTotal")
        * 1024
}

/// A store holding the v1 root's memory.stat and usage for 40 samples, 1 s apart, ending
/// `end_ms`, the working set (usage − total_inactive_file) rising by `rate` bytes a second
/// up to `last_ws`.
fn store(dir: &std::path::Path, end_ms: i64, last_ws: u64, rate: u64) {
    let mut w = Writer::open(
        dir,
        Limits {
            retention_ms: i64::MAX / 4,
            max_bytes: u64::MAX,
            chunk_ms: 600_000,
        },
    )
    .unwrap();
    w.set_meta("mount_point", "/sys/fs/cgroup/memory").unwrap();
    w.set_meta("cgroup_version", "1").unwrap();
    w.set_meta("mount_root", "/").unwrap();
    w.set_meta("interval_ms", "1000").unwrap();
    let inactive = 512 * MIB;
    for i in 0..40u64 {
        let t = end_ms - (39 - i as i64) * 1000;
        let ws = last_ws - (39 - i) * rate;
        let usage = ws + inactive;
        let stat = format!(
            "cache {}\nrss {}\ntotal_cache {}\ntotal_rss {}\ntotal_active_file 0\ntotal_inactive_file {inactive}\ntotal_active_anon {}\ntotal_inactive_anon 0\n",
            inactive, ws, inactive, ws, ws
        );
        let files = vec![
            (
                "/sys/fs/cgroup/memory/memory.stat".to_string(),
                stat.into_bytes(),
            ),
            (
                "/sys/fs/cgroup/memory/memory.usage_in_bytes".to_string(),
                format!("{usage}\n").into_bytes(),
            ),
        ];
        w.write(t, &files, &[], &[]).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn eviction_is_forecast_from_the_recorded_working_set() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().join("store");
    let cfg = d.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nevictionHard:\n  memory.available: 100Mi\nevictionSoft:\n  memory.available: 200Mi\nevictionSoftGracePeriod:\n  memory.available: 1m\n",
    )
    .unwrap();
    let total = mem_total();
    let rate = MIB;
    // 300 s of growth left before the hard threshold, 200 s before the soft one (small
    // enough for the VM's 1 GiB).
    let last_ws = total - 100 * MIB - 300 * rate;
    let end = memlens::store::now_ms() - 500;
    store(&st, end, last_ws, rate);
    let v = common::json(&[
        "--store",
        st.to_str().unwrap(),
        "node",
        "--kubelet-config",
        cfg.to_str().unwrap(),
    ]);
    let k = &v["kubelet"];
    let f = k["forecast"].as_array().unwrap_or_else(|| panic!("{k:#}"));
    assert_eq!(
        f.len(),
        2,
        "one forecast per memory.available threshold: {k:#}"
    );
    let of = |kind: &str| {
        f.iter()
            .find(|x| x["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} forecast: {k:#}"))
    };
    let hard = of("hard");
    let secs = hard["seconds"].as_f64().unwrap();
    assert!(
        (secs - 300.0).abs() < 0.5,
        "hard threshold in {secs} s, expected 300: {hard:#}"
    );
    let bps = hard["bytes_per_second"].as_f64().unwrap();
    assert!((bps - rate as f64).abs() < 1.0, "{bps}");
    let soft = of("soft")["seconds"].as_f64().unwrap();
    let expect = 200.0;
    assert!(
        (soft - expect).abs() < 0.5,
        "soft threshold in {soft} s, expected {expect}"
    );
    // Human output says it.
    let (code, out, err) = common::run(&[
        "--store",
        st.to_str().unwrap(),
        "node",
        "--kubelet-config",
        cfg.to_str().unwrap(),
        "--color",
        "never",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("forecast: memory.available reaches the hard threshold 100Mi"),
        "{out}"
    );
}

#[test]
fn without_a_store_the_forecast_says_why() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().join("none");
    let v = common::json(&["--store", st.to_str().unwrap(), "node"]);
    let k = &v["kubelet"];
    assert_eq!(k["forecast"], serde_json::json!([]), "{k:#}");
    let why = k["forecast_note"]
        .as_str()
        .unwrap_or_else(|| panic!("{k:#}"));
    assert!(why.contains("memlens record"), "{why}");
}
