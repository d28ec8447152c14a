//! The newest memcg counters on every kernel of the VM matrix (tests/vm/run matrix: Debian's
//! 5.10, 6.1 and 6.12 on cgroup v2, 5.10 on v1) and on the host (6.18, v1): a counter the
//! kernel has is shown with the kernel's value, one it lacks is `null`, never 0; and on the
//! matrix kernels exactly the counters measured there are missing.

mod common;
use common::*;
use memlens::model::Version;
use serde_json::Value;

/// memory.stat keys memlens shows under `offload` (or `breakdown`), and where.
const KEYS: [(&str, &str); 18] = [
    ("zswap", "offload.zswap_bytes"),
    ("zswapped", "offload.zswapped_bytes"),
    ("zswpin", "offload.events.zswpin"),
    ("zswpout", "offload.events.zswpout"),
    ("zswpwb", "offload.events.zswpwb"),
    ("swpin_zero", "offload.events.swpin_zero"),
    ("swpout_zero", "offload.events.swpout_zero"),
    ("pswpin", "offload.events.pswpin"),
    ("pswpout", "offload.events.pswpout"),
    ("sec_pagetables", "offload.sec_pagetables_bytes"),
    ("hugetlb", "offload.hugetlb_bytes"),
    ("anon_thp", "offload.anon_thp_bytes"),
    ("file_thp", "offload.file_thp_bytes"),
    ("shmem_thp", "offload.shmem_thp_bytes"),
    ("kernel", "breakdown.kernel_bytes"),
    ("pagetables", "breakdown.pagetables_bytes"),
    ("sock", "breakdown.sock_bytes"),
    ("slab_reclaimable", "breakdown.slab_reclaimable_bytes"),
];

/// What each matrix kernel's memory.stat lacks, of [`KEYS`] (measured in tests/vm/run; v2).
/// `kernel` on 5.10 is computed from its parts, so it is never null there.
fn lacking(r: memlens::kernel::Release) -> Option<&'static [&'static str]> {
    match (r.major, r.minor) {
        (5, 10) => Some(&[
            "zswap",
            "zswapped",
            "zswpin",
            "zswpout",
            "zswpwb",
            "swpin_zero",
            "swpout_zero",
            "pswpin",
            "pswpout",
            "sec_pagetables",
            "hugetlb",
            "file_thp",
            "shmem_thp",
            "kernel",
            "pagetables",
        ]),
        (6, 1) => Some(&[
            "zswpwb",
            "swpin_zero",
            "swpout_zero",
            "pswpin",
            "pswpout",
            "hugetlb",
        ]),
        // Debian's 6.12.117 has swpin_zero/swpout_zero (6.14 upstream) backported.
        (6, 12) => Some(&["pswpin", "pswpout", "hugetlb"]),
        _ => None,
    }
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

#[test]
fn every_counter_is_the_kernels_or_null() {
    let cg = cgroup("counters");
    let _w = Workload::start(&cg, &["anon=8M"]);
    let r = json(&["show", cg.path()]);
    let stat = kstat(&cg);
    let v1 = hier().version == Version::V1;
    for (key, path) in KEYS {
        let shown = at(&r, path);
        if v1 {
            // v1 memory.stat has none of these under these names (its THP is total_rss_huge,
            // its kernel memory memory.kmem.usage_in_bytes).
            if !matches!(key, "anon_thp" | "kernel") {
                assert!(shown.is_null(), "v1: {path} = {shown}");
            }
            continue;
        }
        let computed = key == "kernel"; // before 5.18: the sum of its parts, with the formula
        match stat.get(key) {
            Some(_) => assert!(shown.is_u64(), "{key} in memory.stat but {path} = {shown}"),
            None if computed => assert!(
                r["breakdown"]["sources"]["kernel"]
                    .as_str()
                    .is_some_and(|s| s.contains("no `kernel` key")),
                "{r:#}"
            ),
            None => assert!(
                shown.is_null(),
                "{key} not in memory.stat, {path} = {shown}"
            ),
        }
    }
    if v1 {
        return;
    }
    // memory.zswap.current / memory.peak: shown exactly when the file exists.
    for (file, path) in [
        ("memory.zswap.current", "offload.zswap_current_bytes"),
        ("memory.peak", "usage.peak_bytes"),
        ("memory.swap.peak", "usage.swap_peak_bytes"),
    ] {
        let exists = cg.dir().join(file).exists();
        assert_eq!(!at(&r, path).is_null(), exists, "{file}: {path}");
    }
    if let Some(lack) = lacking(release()) {
        for (key, _) in KEYS {
            assert_eq!(
                !stat.contains_key(key),
                lack.contains(&key),
                "{key} on {:?}: the matrix table (tests/kernel_counters.rs) is out of date",
                release()
            );
        }
        let rel = release();
        assert_eq!(cg.dir().join("memory.peak").exists(), rel.at_least(5, 19));
        assert_eq!(
            cg.dir().join("memory.zswap.current").exists(),
            rel.at_least(5, 19)
        );
    }
}

/// zswap enabled (the 6.12 guest boots with zswap.enabled=1 over zram swap): pages pushed out
/// of a limited cgroup land compressed in its zswap pool, which is charged to it.
#[test]
fn zswap_pool_is_charged_and_its_ratio_shown() {
    let enabled = std::fs::read_to_string("/sys/module/zswap/parameters/enabled")
        .is_ok_and(|t| t.trim() == "Y");
    let guest = std::env::var("MEMLENS_VM_GUEST").unwrap_or_default();
    if guest == "6.12" {
        assert!(enabled && swap_total() > 0, "the 6.12 guest runs zswap");
    }
    if !enabled || swap_total() == 0 || hier().version == Version::V1 {
        eprintln!("skipped: needs cgroup v2, swap and zswap enabled");
        return;
    }
    let cg = cgroup("zswap");
    if !cg.dir().join("memory.zswap.current").exists() {
        eprintln!("skipped: no memcg zswap accounting (before 5.19)");
        return;
    }
    cg.set_limit(Some(32 * MIB)).unwrap();
    cg.write("memory.swap.max", "max").unwrap();
    let _w = Workload::start(&cg, &["anon=48M"]);
    let r = json(&["show", cg.path()]);
    let o = &r["offload"];
    let z = u(o, "zswap_bytes");
    let zd = u(o, "zswapped_bytes");
    // 16 MiB over the limit went to swap; on 6.12 only small pages go through zswap: a
    // transparent huge page is swapped out whole, past it (measured: 277 pages in zswap,
    // 20 MB in swap; zswap stores large folios from 6.13).
    assert!(u(o, "swap_bytes") + stat_slack() >= 16 * MIB, "{o:#}");
    assert!(z > 0 && zd > z, "{o:#}");
    let ratio = o["compression_ratio"].as_f64().unwrap();
    assert!(
        (ratio - zd as f64 / z as f64).abs() < 1e-9 && ratio > 1.0,
        "{o:#}"
    );
    assert!(u(o, "zswap_current_bytes") > 0, "{o:#}");
    assert!(u(o, "events.zswpout") > 0, "{o:#}");
    // The compressed pool is charged: it is inside usage and in not-reclaimable.
    assert!(u(&r, "usage_bytes") <= 32 * MIB + stat_slack());
    assert!(u(&r, "not_reclaimable_bytes") >= u(&r, "breakdown.anon_bytes"));
    assert!(o["oom_headroom_with_swap_bytes"].is_u64(), "{o:#}");
    // The exporter scraped for real: its zswap series are memory.stat's, read between a
    // read of the file before the server starts and one after the scrape (pages may move).
    let before = kstat(&cg);
    let (serve, port) = start_serve("1s", &[]);
    let (code, body) = http_get(port, "/metrics", None).unwrap();
    assert_eq!(code, 200);
    let after = kstat(&cg);
    drop(serve);
    let id = format!("id=\"{}\"", cg.path());
    let series = |name: &str| -> Option<u64> {
        body.lines()
            .find_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix('{')?;
                let (labels, v) = rest.rsplit_once("} ")?;
                labels
                    .split(',')
                    .any(|x| x == id)
                    .then(|| v.trim().parse::<f64>().ok())?
            })
            .map(|v| v as u64)
    };
    for (metric, key) in [
        ("memlens_memory_zswap_bytes", "zswap"),
        ("memlens_memory_zswapped_bytes", "zswapped"),
        ("memlens_memory_zswpout_total", "zswpout"),
        ("memlens_memory_zswpwb_total", "zswpwb"),
    ] {
        let got = series(metric);
        match (before.get(key), after.get(key)) {
            (Some(&b), Some(&a)) => {
                let g = got.unwrap_or_else(|| panic!("{metric} missing for {id}"));
                assert!(
                    (b.min(a)..=b.max(a)).contains(&g),
                    "{metric} {g}, memory.stat {key} {b} before and {a} after"
                );
            }
            // A key the kernel lacks (zswpwb before 6.8) has no series, never 0.
            _ => assert_eq!(got, None, "{metric}: the kernel has no {key}"),
        }
    }
    let human = run(&["show", cg.path(), "--color", "never"]).1;
    assert!(human.contains("zswap compression ratio"), "{human}");
    let e = json(&["explain", cg.path()]);
    assert!(
        e["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "zswap-in-use"),
        "{e:#}"
    );
}

/// The cgroup-v1 finding: on a v1 hierarchy, with this cgroup's figures and their v2 names; on
/// v2, never.
#[test]
fn cgroup_v1_finding_says_what_the_figures_become() {
    let cg = cgroup("v1gone");
    let _w = Workload::start(&cg, &["anon=8M"]);
    let e = json(&["explain", cg.path()]);
    let f = e["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "cgroup-v1")
        .cloned();
    if hier().version == Version::V2 {
        assert!(f.is_none(), "{e:#}");
        return;
    }
    let f = f.expect("cgroup-v1 finding on v1");
    let ev = f["evidence"].as_array().unwrap();
    let get = |w: &str| {
        ev.iter()
            .find(|x| x["what"].as_str().is_some_and(|s| s.starts_with(w)))
            .unwrap_or_else(|| panic!("{w}: {f:#}"))
    };
    // total_rss is the workload's 8 MiB (anon on v2), straight from memory.stat.
    let rss = get("total_rss → v2 anon");
    assert!(
        rss["value_bytes"].as_u64().unwrap() + stat_slack() >= 8 * MIB,
        "{f:#}"
    );
    assert_eq!(
        rss["value_bytes"].as_u64(),
        kstat(&cg).get("total_rss").copied(),
        "{f:#}"
    );
    get("total_cache → v2 file");
    get("kmem → v2 kernel");
    get("memsw → v2");
    let meaning = f["meaning"].as_str().unwrap();
    for fact in [
        "1.35",
        "CONFIG_MEMCG_V1",
        "memory.swap.current",
        "memory.stat kernel",
    ] {
        assert!(meaning.contains(fact), "{fact}: {meaning}");
    }
}

/// hugetlb pages are charged to the hugetlb controller, not to memory.current (unless the
/// hierarchy is mounted with memory_hugetlb_accounting, 6.6+): memlens shows both and explains
/// the gap. Runs where the cgroup has hugetlb.<size>.current and huge pages are reserved (the
/// VM guests reserve 8 and enable +hugetlb).
#[test]
fn hugetlb_outside_memory_current_is_explained() {
    if hier().version == Version::V1 {
        eprintln!("skipped: v1 keeps hugetlb in its own hierarchy");
        return;
    }
    let cg = cgroup("hugetlb");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let free = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let size_kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Hugepagesize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let name = format!("hugetlb.{}MB.current", size_kb / 1024);
    if std::env::var_os("MEMLENS_VM").is_some() {
        assert!(
            free >= 2 && cg.dir().join(&name).exists(),
            "the guests reserve huge pages"
        );
    }
    if free < 2 || size_kb == 0 || !cg.dir().join(&name).exists() {
        eprintln!("skipped: needs 2 free huge pages and the hugetlb controller ({name})");
        return;
    }
    let bytes = 2 * size_kb * 1024;
    let _w = Workload::start(&cg, &[&format!("hugetlb={bytes}")]);
    let r = json(&["show", cg.path()]);
    let o = &r["offload"];
    assert_eq!(u(o, "hugetlb_controller_bytes"), bytes, "{o:#}");
    let accounted = kstat(&cg).contains_key("hugetlb");
    assert_eq!(o["hugetlb_in_usage"].as_bool(), Some(accounted), "{o:#}");
    if !accounted {
        assert!(u(&r, "usage_bytes") < bytes, "not in memory.current: {r:#}");
        let e = json(&["explain", cg.path()]);
        assert!(
            e["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["id"] == "hugetlb-unaccounted"),
            "{e:#}"
        );
    }
}
