//! The cAdvisor metrics the exporter adds (issue 11 item 12), read from a real memcg of
//! ours: container_spec_memory_limit_bytes = its memory limit, container_memory_max_usage_bytes
//! = its peak file, container_memory_kernel_usage, container_memory_failures_total from
//! memory.stat page faults, the v1 file-refault counter, and the collection's timestamp.
//! Also item 9: a limit above the host's RAM gives the host's headroom, not the limit's.

mod common;
use common::*;
use memlens::model::Version;

fn sample(metrics: &str, name: &str, id: &str, extra: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, value) = rest.rsplit_once("} ")?;
        (labels.contains(&format!("id=\"{id}\"")) && labels.contains(extra))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

#[test]
fn cadvisor_families_equal_the_kernel_files() {
    let cg = cgroup("cadv");
    limit(&cg, 64 * MIB);
    let w = Workload::start(&cg, &["anon=16M"]);
    let (_serve, port) = start_serve("1s", &[]);
    let (code, body) = http_get(port, "/metrics", None).unwrap();
    assert_eq!(code, 200);
    let id = cg.path();
    let v1 = hier().version == Version::V1;
    assert_eq!(
        sample(&body, "container_spec_memory_limit_bytes", id, ""),
        Some((64 * MIB) as f64)
    );
    let peak_file = if v1 {
        "memory.max_usage_in_bytes"
    } else {
        "memory.peak"
    };
    let got = sample(&body, "container_memory_max_usage_bytes", id, "");
    if cg.dir().join(peak_file).exists() {
        let peak: f64 = kfile(&cg, peak_file).trim().parse().unwrap();
        let got = got.expect("max usage");
        // The peak only rises: the file read after the scrape bounds it from above.
        assert!(
            got <= peak && got >= (16 * MIB) as f64,
            "{got} vs {peak_file} {peak}"
        );
    } else {
        // v2 before 5.19 has no memory.peak: no series, never a made-up 0 or the usage.
        assert_eq!(
            got, None,
            "no {peak_file} on this kernel, so no max usage series"
        );
    }
    assert!(sample(&body, "container_memory_kernel_usage", id, "").is_some());
    let st = kstat(&cg);
    let faults = sample(
        &body,
        "container_memory_failures_total",
        id,
        "failure_type=\"pgfault\",scope=\"hierarchy\"",
    )
    .expect("pgfault hierarchy");
    let now = st[&key("pgfault")] as f64;
    assert!(faults > 0.0 && faults <= now, "{faults} vs {now}");
    if v1 {
        assert!(
            sample(
                &body,
                "container_memory_failures_total",
                id,
                "scope=\"container\""
            )
            .is_some()
        );
    }
    if st.contains_key(&key("workingset_refault_file")) {
        assert!(
            sample(
                &body,
                "memlens_memory_workingset_refault_file_total",
                id,
                ""
            )
            .is_some(),
            "refault counter exported on v{}",
            if v1 { 1 } else { 2 }
        );
    }
    let ts = body
        .lines()
        .find_map(|l| l.strip_prefix("memlens_collection_timestamp_seconds "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now - ts < 5.0 && ts <= now, "{ts} vs {now}");
    w.finish();
}

#[test]
fn headroom_is_capped_at_host_ram() {
    let cg = cgroup("bighead");
    // 4 TiB: above any test machine's RAM.
    cg.set_limit(Some(4 << 40)).expect("limit");
    let w = Workload::start(&cg, &["anon=8M"]);
    let v = json(&["show", cg.path()]);
    let total = v["views"]["docker_stats_limit_bytes"].as_u64().unwrap();
    let head = v["derived"]["oom_headroom_bytes"]
        .as_u64()
        .or(v["oom_headroom_bytes"].as_u64());
    let src = serde_json::to_string(&v).unwrap();
    let head = head.expect("headroom");
    assert!(head < total, "headroom {head} not below host RAM {total}");
    assert!(src.contains("a global OOM comes first"), "{src}");
    w.finish();
}
