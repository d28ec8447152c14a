//! Human output of `memlens kernel`.

use super::{Style, bytes, table};
use crate::kmem::KernelReport;
use crate::views::kernel::Part;
use std::fmt::Write;

fn parts_table(parts: &[Part], s: Style) -> String {
    if let Some(p) = parts.first()
        && parts.iter().all(|p| p.figure.bytes.is_none())
    {
        return format!("{}\n", s.dim(&format!("  parts: {}", p.figure.source)));
    }
    let rows: Vec<Vec<String>> = parts
        .iter()
        .map(|p| {
            vec![
                p.name.to_string(),
                bytes(p.figure.bytes),
                if p.reclaimable { "yes" } else { "no" }.to_string(),
                p.what.to_string(),
                s.dim(&p.figure.source),
            ]
        })
        .collect();
    table(
        &["PART", "BYTES", "RECLAIMABLE", "WHAT", "SOURCE"],
        &rows,
        &[2, 3, 4],
        s,
    )
}

/// `memlens kernel [TARGET]`.
pub fn report(r: &KernelReport, s: Style) -> String {
    let mut out = String::new();
    if let (Some(cg), Some(k)) = (&r.cgroup, &r.split) {
        let _ = writeln!(
            out,
            "{} {cg}: {} ({})",
            s.head("kernel memory of"),
            bytes(k.total.bytes),
            k.total.source
        );
        let _ = writeln!(
            out,
            "  reclaimable {}, not reclaimable {}",
            bytes(k.reclaimable_bytes),
            bytes(k.unreclaimable_bytes)
        );
        if let Some(t) = k.tcp_bytes {
            let _ = writeln!(
                out,
                "  TCP buffers {} (memory.kmem.tcp.usage_in_bytes, not in the usage)",
                bytes(Some(t))
            );
        }
        out.push_str(&parts_table(&k.parts, s));
        if !k.slab_caches.is_empty() {
            let rows: Vec<Vec<String>> = k
                .slab_caches
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        bytes(Some(c.bytes)),
                        c.active_objs.to_string(),
                    ]
                })
                .collect();
            out.push_str(&table(&["SLAB CACHE", "BYTES", "OBJECTS"], &rows, &[], s));
        } else if let Some(n) = &k.slab_caches_note {
            let _ = writeln!(out, "{}", s.dim(&format!("  slab caches: {n}")));
        }
        if let Some(f) = &r.finding {
            out.push_str(&super::human::findings(std::slice::from_ref(f), s));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", s.head("node kernel memory"));
    out.push_str(&parts_table(&r.node.parts, s));
    if !r.node.slab_caches.is_empty() {
        let rows: Vec<Vec<String>> = r
            .node
            .slab_caches
            .iter()
            .map(|c| {
                vec![
                    c.cache.name.clone(),
                    bytes(Some(c.cache.bytes)),
                    c.cache.active_objs.to_string(),
                    match c.reclaimable {
                        Some(true) => "yes".into(),
                        Some(false) => "no".into(),
                        None => "n/a".into(),
                    },
                ]
            })
            .collect();
        let _ = writeln!(
            out,
            "\nlargest slab caches (/proc/slabinfo; all caches {}):",
            bytes(r.node.slabinfo_total_bytes)
        );
        out.push_str(&table(
            &["CACHE", "BYTES", "OBJECTS", "RECLAIMABLE"],
            &rows,
            &[],
            s,
        ));
    }
    if let Some(d) = &r.node.dentries {
        let _ = writeln!(
            out,
            "dentries: {} allocated, {} unused (reclaimable), {} negative (/proc/sys/fs/dentry-state)",
            d.nr_dentry,
            d.nr_unused,
            d.nr_negative.map_or("n/a".into(), |n| n.to_string())
        );
    }
    for p in &r.problems {
        let _ = writeln!(out, "  {}", s.warn(p));
    }
    out
}
