//! JSON output. The field names are a stable interface for scripts: sizes end in `_bytes`, a
//! value the kernel does not provide is `null`, and every figure's formula is given next to it
//! under `sources`.

use crate::model::{Limit, Process};
use crate::overview::Overview;
use crate::report::Report;
use crate::views::Figure;
use serde_json::{Map, Value, json};

/// The JSON schema version: in every top-level object as `"schema"`. Bumped on any change
/// a script could trip over (a field renamed, removed or changing type); docs/schema/
/// memlens.schema.json describes it.
pub const SCHEMA_VERSION: u64 = 2;

/// Wraps a command's JSON report: `schema` and `kind` first, `problems` always present (an
/// empty list when nothing went wrong), and, with `--from`, what the capture was.
pub fn envelope(kind: &str, v: Value, capture: Option<&crate::sys::CaptureMeta>) -> Value {
    let mut out = Map::new();
    out.insert("schema".into(), json!(SCHEMA_VERSION));
    out.insert("kind".into(), json!(kind));
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k != "schema" && k != "kind" {
                    out.insert(k, x);
                }
            }
        }
        other => {
            out.insert("value".into(), other);
        }
    }
    if let Some(c) = capture {
        out.insert("capture".into(), json!(c));
    }
    out.entry("problems").or_insert_with(|| json!([]));
    Value::Object(out)
}

/// A limit in bytes; `null` when unlimited or unavailable (`limits.unlimited` tells which).
fn lim(l: Option<Limit>) -> Value {
    match l {
        Some(Limit::Bytes(b)) => json!(b),
        _ => Value::Null,
    }
}

/// The v1 page-counter maximum (PAGE_COUNTER_MAX × PAGE_SIZE rounded): "no limit" in
/// memory.stat's hierarchical_*_limit.
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

/// A memory.stat-like object: the kernel's keys and values, a hierarchical limit that is
/// the v1 "unlimited" value as `null`.
fn stat_object(kv: &crate::model::KeyValues) -> Value {
    Value::Object(
        kv.0.iter()
            .map(|(k, v)| {
                let unlimited = k.starts_with("hierarchical_") && *v >= V1_UNLIMITED;
                (k.clone(), if unlimited { Value::Null } else { json!(v) })
            })
            .collect(),
    )
}

/// The host object, one shape in `memlens --json` and `show --json`.
pub fn host(h: &crate::model::Host) -> Value {
    json!({
        "kernel": h.kernel,
        "meminfo": h.meminfo,
        "pressure": h.pressure,
        "lxcfs_meminfo": h.lxcfs_meminfo,
        "problems": h.problems,
    })
}

fn figs(pairs: &[(&str, &Figure)]) -> (Map<String, Value>, Map<String, Value>) {
    let mut vals = Map::new();
    let mut srcs = Map::new();
    for (k, f) in pairs {
        vals.insert(format!("{k}_bytes"), json!(f.bytes));
        srcs.insert((*k).to_string(), json!(f.source));
    }
    (vals, srcs)
}

/// One process.
pub fn process(p: &Process) -> Value {
    json!({
        "pid": p.pid,
        "comm": p.comm,
        "cmdline": p.cmdline,
        "uid": p.uid,
        "user": p.user,
        "kernel_thread": p.no_mm,
        "cgroup": p.cgroup,
        "vm_size_bytes": p.vm_size_bytes,
        "rss_bytes": p.rss_bytes,
        "rss_anon_bytes": p.rss_anon_bytes,
        "rss_file_bytes": p.rss_file_bytes,
        "rss_shmem_bytes": p.rss_shmem_bytes,
        "pss_bytes": p.pss_bytes,
        "pss_anon_bytes": p.pss_anon_bytes,
        "pss_file_bytes": p.pss_file_bytes,
        "pss_shmem_bytes": p.pss_shmem_bytes,
        "uss_bytes": p.uss_bytes,
        "swap_bytes": p.swap_bytes,
        "swap_pss_bytes": p.swap_pss_bytes,
        "problems": p.problems,
    })
}

/// `memlens show --json`.
pub fn show(r: &Report) -> Value {
    let b = &r.breakdown;
    let d = &r.derived;
    let cg = &r.cgroup;
    let (mut bd, bd_src) = figs(&[
        ("anon", &b.anon),
        ("file", &b.file),
        ("active_file", &b.active_file),
        ("inactive_file", &b.inactive_file),
        ("active_anon", &b.active_anon),
        ("inactive_anon", &b.inactive_anon),
        ("shmem", &b.shmem),
        ("file_mapped", &b.file_mapped),
        ("file_dirty", &b.file_dirty),
        ("file_writeback", &b.file_writeback),
        ("kernel", &b.kernel),
        ("slab_reclaimable", &b.slab_reclaimable),
        ("slab_unreclaimable", &b.slab_unreclaimable),
        ("sock", &b.sock),
        ("pagetables", &b.pagetables),
        ("kernel_stack", &b.kernel_stack),
        ("swap", &b.swap),
        ("unevictable", &b.unevictable),
        ("anon_thp", &b.anon_thp),
    ]);
    bd.insert("residual_bytes".into(), json!(b.residual));
    let mut bd_src = bd_src;
    bd_src.insert("residual".into(), json!(b.residual_source));
    bd.insert("sources".into(), Value::Object(bd_src));

    let mut views = Map::new();
    let mut view_src = Map::new();
    for t in &r.tools.figures {
        let suffix = if t.figure.count { "" } else { "_bytes" };
        views.insert(format!("{}{suffix}", t.key), json!(t.figure.bytes));
        view_src.insert(
            t.key.to_string(),
            json!({"tool": t.tool, "formula": t.figure.source, "origin": t.origin}),
        );
    }
    views.insert("docker_stats_percent".into(), json!(r.tools.docker_percent));
    views.insert("podman_stats_percent".into(), json!(r.tools.podman_percent));
    views.insert("free".into(), json!(r.tools.free));
    views.insert("sources".into(), Value::Object(view_src));

    let stat: Value = cg.stat.as_ref().map_or(Value::Null, stat_object);
    let kv = |o: &Option<crate::model::KeyValues>| -> Value {
        o.as_ref().map_or(Value::Null, |s| json!(s))
    };
    let l = &cg.limits;
    let unlimited: Vec<&str> = [
        ("max", l.max),
        ("high", l.high),
        ("soft", l.soft),
        ("memsw", l.memsw),
        ("swap_max", l.swap_max),
        ("kmem", l.kmem),
        ("hierarchical", l.hierarchical),
        ("hierarchical_memsw", l.hierarchical_memsw),
    ]
    .iter()
    .filter(|(_, v)| matches!(v, Some(Limit::Unlimited)))
    .map(|(k, _)| *k)
    .collect();
    json!({
        "cgroup": {
            "path": cg.path,
            "fs_path": cg.fs_path,
            "version": cg.version.number(),
            "children": cg.children,
        },
        "identity": r.identity,
        "kernel": r.host.kernel,
        "usage_bytes": b.usage.bytes,
        "limit_bytes": d.limit.bytes,
        "limit": {"source": d.limit.source, "set_by": d.limit.set_by},
        "percent_of_limit": d.percent_of_limit,
        "breakdown": bd,
        "views": views,
        "reclaimable_bytes": d.reclaimable.bytes,
        "not_reclaimable_bytes": d.not_reclaimable.bytes,
        "oom_headroom_bytes": d.oom_headroom.bytes,
        "oom_headroom_min_bytes": d.oom_headroom_bounds.map(|b| b.0),
        "oom_headroom_max_bytes": d.oom_headroom_bounds.map(|b| b.1),
        "high_headroom_bytes": d.high_headroom.bytes,
        "derived_sources": {
            "reclaimable": d.reclaimable.source,
            "not_reclaimable": d.not_reclaimable.source,
            "oom_headroom": d.oom_headroom.source,
            "high_headroom": d.high_headroom.source,
        },
        "limits": {
            "max_bytes": lim(l.max),
            "high_bytes": lim(l.high),
            "low_bytes": l.low,
            "min_bytes": l.min,
            "soft_bytes": lim(l.soft),
            "memsw_bytes": lim(l.memsw),
            "swap_max_bytes": lim(l.swap_max),
            "kmem_bytes": lim(l.kmem),
            "hierarchical_bytes": lim(l.hierarchical),
            "hierarchical_memsw_bytes": lim(l.hierarchical_memsw),
            "unlimited": unlimited,
            "oom_group": l.oom_group,
            "swappiness": l.swappiness,
            "use_hierarchy": l.use_hierarchy,
        },
        "usage": cg.usage,
        "events": {
            "oom_kills": cg.events.oom_kills(),
            "failcnt": cg.events.failcnt,
            "memsw_failcnt": cg.events.memsw_failcnt,
            "oom_control": kv(&cg.events.oom_control),
            "events": kv(&cg.events.events),
            "events_local": kv(&cg.events.events_local),
            "swap_events": kv(&cg.events.swap_events),
        },
        "pressure": cg.pressure,
        "cgroup_stat": kv(&cg.cgroup_stat),
        "stat": stat,
        "processes": r.processes.iter().map(process).collect::<Vec<_>>(),
        "process_sums": r.sums,
        "reconcile": r.reconcile,
        "host": host(&r.host),
        "offload": offload(r),
        "problems": r.problems(),
    })
}

/// Swap, zswap, THP and hugetlb (views::offload): `null` where the kernel lacks the counter.
fn offload(r: &Report) -> Value {
    let o = &r.offload;
    let (mut vals, mut srcs) = figs(&[
        ("zswap", &o.zswap),
        ("zswapped", &o.zswapped),
        ("zswap_current", &o.zswap_current),
        ("zswap_max", &o.zswap_max),
        ("swap", &o.swap),
        ("swap_room", &o.swap_room),
        ("oom_headroom_with_swap", &o.oom_headroom_with_swap),
        ("anon_thp", &o.anon_thp),
        ("file_thp", &o.file_thp),
        ("shmem_thp", &o.shmem_thp),
        ("sec_pagetables", &o.sec_pagetables),
        ("hugetlb", &o.hugetlb),
        ("hugetlb_controller", &o.hugetlb_controller),
    ]);
    vals.insert("compression_ratio".into(), json!(o.compression_ratio));
    srcs.insert(
        "compression_ratio".into(),
        json!(o.compression_ratio_source),
    );
    vals.insert("zswap_writeback".into(), json!(o.zswap_writeback));
    vals.insert("hugetlb_in_usage".into(), json!(o.hugetlb_in_usage));
    vals.insert(
        "events".into(),
        Value::Object(
            o.events
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        ),
    );
    vals.insert(
        "hugetlb_sizes".into(),
        Value::Array(
            r.cgroup
                .hugetlb
                .iter()
                .map(|h| {
                    json!({"size": h.size, "current_bytes": h.current, "max_bytes": lim(h.max), "events_max": h.events_max})
                })
                .collect(),
        ),
    );
    vals.insert("sources".into(), Value::Object(srcs));
    Value::Object(vals)
}

/// `memlens ps --json`.
pub fn ps(r: &Report) -> Value {
    json!({
        "cgroup": {"path": r.cgroup.path, "version": r.cgroup.version.number()},
        "processes": r.processes.iter().map(process).collect::<Vec<_>>(),
        "process_sums": r.sums,
        "problems": r.cgroup.problems.iter().cloned().chain(r.processes.iter().flat_map(|p| p.problems.iter().map(move |x| format!("pid {}: {x}", p.pid)))).collect::<Vec<_>>(),
    })
}

/// `memlens --json` (the overview).
pub fn overview(o: &Overview) -> Value {
    json!({
        "hierarchy": {"version": o.hierarchy.version.number(), "mount_point": o.hierarchy.mount_point, "mount_root": o.hierarchy.mount_root},
        "filter": o.filter,
        "fell_back_to_all": o.fell_back_to_all,
        "hidden": o.hidden,
        "cgroups": o.rows,
        "host": host(&o.host.host),
        "node": {
            "memory_available_bytes": o.host.node_memory_available.bytes,
            "memory_available_source": o.host.node_memory_available.source,
            "root_usage_bytes": o.host.root_usage_bytes,
        },
        "problems": o.rows.iter().flat_map(|r| r.problems.iter().cloned()).chain(o.host.host.problems.iter().cloned()).collect::<Vec<_>>(),
    })
}
