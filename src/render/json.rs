//! JSON output. The field names are a stable interface for scripts: sizes end in `_bytes`, a
//! value the kernel does not provide is `null`, and every figure's formula is given next to it
//! under `sources`.

use crate::model::{Limit, Process};
use crate::overview::Overview;
use crate::report::Report;
use crate::views::Figure;
use serde_json::{Map, Value, json};

fn lim(l: Option<Limit>) -> Value {
    match l {
        Some(Limit::Bytes(b)) => json!(b),
        Some(Limit::Unlimited) => json!("max"),
        None => Value::Null,
    }
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
    views.insert("free".into(), json!(r.tools.free));
    views.insert("sources".into(), Value::Object(view_src));

    let stat: Option<Map<String, Value>> = cg
        .stat
        .as_ref()
        .map(|s| s.0.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
    let kv = |o: &Option<crate::model::KeyValues>| -> Value {
        o.as_ref().map_or(Value::Null, |s| {
            Value::Object(s.0.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
        })
    };
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
            "max": lim(cg.limits.max),
            "high": lim(cg.limits.high),
            "low_bytes": cg.limits.low,
            "min_bytes": cg.limits.min,
            "soft": lim(cg.limits.soft),
            "memsw": lim(cg.limits.memsw),
            "swap_max": lim(cg.limits.swap_max),
            "kmem": lim(cg.limits.kmem),
            "hierarchical": lim(cg.limits.hierarchical),
            "hierarchical_memsw": lim(cg.limits.hierarchical_memsw),
            "oom_group": cg.limits.oom_group,
            "swappiness": cg.limits.swappiness,
            "use_hierarchy": cg.limits.use_hierarchy,
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
        "host": r.host,
        "problems": r.problems(),
    })
}

/// `memlens ps --json`.
pub fn ps(r: &Report) -> Value {
    json!({
        "cgroup": {"path": r.cgroup.path, "version": r.cgroup.version.number()},
        "processes": r.processes.iter().map(process).collect::<Vec<_>>(),
        "process_sums": r.sums,
        "problems": r.processes.iter().flat_map(|p| p.problems.iter().map(move |x| format!("pid {}: {x}", p.pid))).collect::<Vec<_>>(),
    })
}

/// `memlens --json` (the overview).
pub fn overview(o: &Overview) -> Value {
    json!({
        "hierarchy": {"version": o.hierarchy.version.number(), "mount_point": o.hierarchy.mount_point, "mount_root": o.hierarchy.mount_root},
        "filter": o.filter,
        "fell_back_to_all": o.fell_back_to_all,
        "cgroups": o.rows,
        "host": {
            "kernel": o.host.host.kernel,
            "meminfo": o.host.host.meminfo.as_ref().map(|m| m.0.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>()),
            "pressure": o.host.host.pressure,
            "node_memory_available_bytes": o.host.node_memory_available.bytes,
            "node_memory_available_source": o.host.node_memory_available.source,
            "root_usage_bytes": o.host.root_usage_bytes,
            "problems": o.host.host.problems,
        },
    })
}
