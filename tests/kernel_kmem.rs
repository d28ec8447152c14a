//! Real-kernel tests of `memlens kernel`: negative dentries made inside a memcg show as
//! (reclaimable) kernel memory, and the node split agrees with /proc/meminfo and slabinfo.

mod common;
use common::*;

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == key).then(|| v.split_whitespace().next()?.parse::<u64>().ok())?
        })
        .map(|k| k * 1024)
        .unwrap()
}

#[test]
fn negative_dentries_are_reclaimable_kernel_memory() {
    let cg = cgroup("kmem");
    let dir = disk_dir();
    let n = 200_000u64;
    let _w = Workload::start(&cg, &[&format!("lookup={}:{n}", dir.display())]);
    let r = json(&["kernel", cg.path()]);
    let total = u(&r, "split.total.bytes");
    // A dentry is 192 bytes (slabinfo objsize on x86_64).
    let want = n * 192 * 8 / 10;
    assert!(total >= want, "kernel {total} < {want}: {r:#}");
    let f = &r["finding"];
    assert_eq!(f["id"], "kernel-split");
    if hier().version == memlens::model::Version::V2 {
        assert!(u(&r, "split.reclaimable_bytes") >= want, "{r:#}");
        assert!(f["title"].as_str().unwrap().contains("harmless"), "{f:#}");
    } else {
        assert!(r["split"]["reclaimable_bytes"].is_null());
    }

    // The node: each part is /proc/meminfo's figure (read around memlens: between the two),
    // and the caches of /proc/slabinfo add up to meminfo Slab.
    let lo = meminfo("SUnreclaim");
    let n = json(&["kernel"]);
    let hi = meminfo("SUnreclaim");
    let parts = n["node"]["parts"].as_array().unwrap();
    let su = parts
        .iter()
        .find(|p| p["name"] == "slab_unreclaimable")
        .unwrap();
    let v = u(su, "figure.bytes");
    assert!(
        v + 4 * MIB >= lo.min(hi) && v <= lo.max(hi) + 4 * MIB,
        "SUnreclaim {v} not within {lo}..{hi}"
    );
    let slab = meminfo("Slab");
    let total = u(&n, "node.slabinfo_total_bytes");
    let d = (total as f64 - slab as f64).abs() / slab as f64;
    assert!(d < 0.05, "slabinfo {total} vs meminfo Slab {slab}");
    assert!(u(&n["node"]["dentries"], "nr_dentry") > 0);
}
