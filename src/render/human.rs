//! Human output: the overview table, the `show` report, the `ps` table.

use super::escape::{term, term_lines};
use super::{Style, bytes, percent, signed_bytes, table};
use crate::model::{Limit, Process, Version};
use crate::overview::Overview;
use crate::report::Report;
use crate::views::Figure;
use std::fmt::Write;

fn lim(l: Option<Limit>) -> String {
    match l {
        None => "n/a".into(),
        Some(Limit::Unlimited) => "unlimited".into(),
        Some(Limit::Bytes(b)) => bytes(Some(b)),
    }
}

fn name_of(path: &str, id: &crate::identity::Identity) -> String {
    match id.display_name() {
        Some(s) => s,
        None => path.to_string(),
    }
}

/// The overview's columns fitted to a terminal width.
struct OverviewFit {
    /// Indices into the header of the columns shown, in order.
    keep: Vec<usize>,
    /// The rows with only those columns (NAME cut to the room left).
    rows: Vec<Vec<String>>,
    /// Titles of the columns left out.
    hidden: Vec<&'static str>,
}

/// Fits the overview to `width` columns as `ps` does: the columns that say least go first
/// (SWAP, KERNEL, SHMEM, FILE, ANON, PIDS, % LIMIT, HEADROOM, WORKING SET, and below 66
/// columns OOM KILLS), named under the table; NAME, LIMIT, USAGE and NOT RECLAIMABLE stay, and
/// NAME is cut to the room left (at least 16; a path keeps its end, where the container's ID or name is).
fn fit_overview(
    header: &[&'static str],
    rows: Vec<Vec<String>>,
    width: Option<usize>,
) -> OverviewFit {
    const NAME: usize = 0;
    const MIN_NAME: usize = 16;
    // Indices into the overview's header, in the order they are dropped.
    const DROP: [usize; 10] = [10, 9, 8, 7, 6, 12, 11, 5, 3, 13];
    let mut keep: Vec<usize> = (0..header.len()).collect();
    let mut hidden = Vec::new();
    let Some(tw) = width else {
        return OverviewFit { keep, rows, hidden };
    };
    let col_w = |i: usize| -> usize {
        rows.iter()
            .map(|r| r.get(i).map_or(0, |c| term(c).chars().count()))
            .chain(std::iter::once(header[i].chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(col_w).collect();
    // Every kept column but NAME, each with its two-space gap.
    let others = |keep: &[usize]| -> usize {
        keep.iter()
            .filter(|i| **i != NAME)
            .map(|i| widths[*i] + 2)
            .sum()
    };
    let name_w = widths[NAME].min(MIN_NAME);
    for d in DROP {
        if others(&keep) + name_w <= tw {
            break;
        }
        keep.retain(|i| *i != d);
        hidden.push(header[d]);
    }
    let room = tw.saturating_sub(others(&keep)).max(MIN_NAME);
    let rows = rows
        .into_iter()
        .map(|r| {
            keep.iter()
                .map(|i| {
                    let c = r.get(*i).cloned().unwrap_or_default();
                    if *i == NAME { cut_name(&c, room) } else { c }
                })
                .collect()
        })
        .collect();
    OverviewFit { keep, rows, hidden }
}

/// A NAME cell cut to `max` characters: a path keeps its end (`…/docker/3f2a…`), a name or a
/// tree-indented label its start.
fn cut_name(name: &str, max: usize) -> String {
    let n = name.chars().count();
    if n <= max {
        name.to_string()
    } else if name.starts_with('/') {
        format!("…{}", name.chars().skip(n + 1 - max).collect::<String>())
    } else {
        cut(name, max)
    }
}

/// How `memlens` (the overview) prints: `--all` as a tree, `--no-headers`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverviewStyle {
    /// Names indented under their parent (rows in hierarchy order).
    pub tree: bool,
    /// No header line, no footer: rows only, for scripts.
    pub no_headers: bool,
}

/// The overview table and host line.
pub fn overview(o: &Overview, s: Style) -> String {
    overview_with(o, s, OverviewStyle::default())
}

/// The overview, with its printing options.
pub fn overview_with(o: &Overview, s: Style, os: OverviewStyle) -> String {
    let mut out = String::new();
    if o.fell_back_to_all && !os.no_headers {
        let _ = writeln!(
            out,
            "{}",
            s.dim(&super::wrapped("", 0, "No container-like cgroups (docker, containerd, CRI-O, podman, kubepods) here: showing every memory cgroup.", 0))
        );
    }
    let header = [
        "NAME",
        "LIMIT",
        "USAGE",
        "WORKING SET",
        "NOT RECLAIMABLE",
        "HEADROOM",
        "ANON",
        "FILE",
        "SHMEM",
        "KERNEL",
        "SWAP",
        "% LIMIT",
        "PIDS",
        "OOM KILLS",
    ];
    let pct_nr = |r: &crate::overview::Row| match (r.not_reclaimable_bytes, r.limit_bytes) {
        (Some(n), Some(l)) if l > 0 => Some(n as f64 * 100.0 / l as f64),
        _ => None,
    };
    let rows: Vec<Vec<String>> = o
        .rows
        .iter()
        .map(|r| {
            let name = if os.tree {
                let depth = r.path.split('/').filter(|c| !c.is_empty()).count();
                let base = r
                    .path
                    .rsplit('/')
                    .next()
                    .filter(|b| !b.is_empty())
                    .unwrap_or("/");
                let shown = r
                    .identity
                    .display_name()
                    .unwrap_or_else(|| base.to_string());
                format!("{}{shown}", "  ".repeat(depth.saturating_sub(1).min(12)))
            } else {
                name_of(&r.path, &r.identity)
            };
            vec![
                name,
                r.limit_bytes.map_or("unlimited".into(), |b| bytes(Some(b))),
                bytes(r.usage_bytes),
                bytes(r.working_set_bytes),
                match pct_nr(r) {
                    Some(p) => format!("{} {p:.0}%", bytes(r.not_reclaimable_bytes)),
                    None => bytes(r.not_reclaimable_bytes),
                },
                r.oom_headroom_bytes.map_or("-".into(), |b| bytes(Some(b))),
                bytes(r.anon_bytes),
                bytes(r.file_bytes),
                bytes(r.shmem_bytes),
                bytes(r.kernel_bytes),
                bytes(r.swap_bytes),
                percent(r.percent_of_limit),
                r.pids.map_or("n/a".into(), |n| n.to_string()),
                r.oom_kills.map_or("n/a".into(), |n| n.to_string()),
            ]
        })
        .collect();
    // Colour by threshold, as htop and below do: red when what cannot be reclaimed is at 90%
    // of the limit or an OOM kill happened, yellow from 75%. Whole rows are coloured after
    // layout so the widths stay right.
    let fit = fit_overview(&header, rows, super::width());
    let head: Vec<&str> = fit.keep.iter().map(|i| header[*i]).collect();
    let t = table(&head, &fit.rows, &[], Style { color: false });
    let mut lines = t.lines();
    if let Some(h) = lines.next()
        && !os.no_headers
    {
        let _ = writeln!(out, "{}", s.head(h));
    }
    for (l, r) in lines.zip(&o.rows) {
        let p = pct_nr(r).unwrap_or(0.0);
        let line = if p >= 90.0 || r.oom_kills.is_some_and(|k| k > 0) {
            s.bad(l)
        } else if p >= 75.0 {
            s.warn(l)
        } else {
            l.to_string()
        };
        let _ = writeln!(out, "{line}");
    }
    if os.no_headers {
        return out;
    }
    if o.hidden > 0 {
        let _ = writeln!(
            out,
            "{}",
            s.dim(&format!(
                "+{} other memory cgroup{} (not containers): --all",
                o.hidden,
                if o.hidden == 1 { "" } else { "s" }
            ))
        );
    }
    let h = &o.host.host;
    let swap_used = match (h.mem("SwapTotal"), h.mem("SwapFree")) {
        (Some(t), Some(f)) => Some(t.saturating_sub(f)),
        _ => None,
    };
    // Each line fits 100 columns whatever the figures (units roll over at 1000).
    // At a narrower terminal they wrap, continuation lines under the text.
    let host_line = format!(
        "{} total, {} available, {} free, {} page cache ({} shmem)",
        bytes(h.mem("MemTotal")),
        bytes(h.mem("MemAvailable")),
        bytes(h.mem("MemFree")),
        bytes(h.mem("Cached")),
        bytes(h.mem("Shmem")),
    );
    let _ = writeln!(
        out,
        "\n{}",
        super::wrapped(&format!("{} ", s.head("host")), 5, &host_line, 5)
    );
    let swap_line = format!(
        "swap {} of {} used; kubelet memory.available {}",
        bytes(swap_used),
        bytes(h.mem("SwapTotal")),
        bytes(o.host.node_memory_available.bytes),
    );
    let _ = writeln!(out, "{}", super::wrapped("     ", 5, &swap_line, 5));
    if let Some(p) = &h.pressure {
        let psi = format!(
            "memory pressure: some {:.2}% full {:.2}% (avg10, /proc/pressure/memory)",
            p.some.avg10, p.full.avg10
        );
        let _ = writeln!(out, "{}", super::wrapped("     ", 5, &psi, 5));
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{}",
        s.dim(&super::wrapped(
            "",
            0,
            &format!(
                "cgroup v{} at {}. `memlens show NAME` explains one.",
                o.hierarchy.version.number(),
                o.hierarchy.mount_point.display()
            ),
            0
        ))
    );
    // Each column's legend (the header indices it defines), printed while any of them is
    // shown; at a narrower terminal the text wraps under itself.
    let legend: [(&[usize], &str); 10] = [
        (
            &[1],
            "LIMIT            the smallest memory limit on the path to the root (effective limit)",
        ),
        (
            &[2],
            "USAGE            everything charged, page cache included (usage_in_bytes / memory.current)",
        ),
        (
            &[3],
            "WORKING SET      usage − inactive_file: what kubectl top and docker stats show",
        ),
        (
            &[4],
            "NOT RECLAIMABLE  anon + shmem + unreclaimable kernel memory, and its share of LIMIT:",
        ),
        (
            &[4],
            "                 what an OOM kill is about (red from 90%, yellow from 75%)",
        ),
        (
            &[5],
            "HEADROOM         LIMIT − NOT RECLAIMABLE: what can still be pinned before an OOM kill",
        ),
        (
            &[6, 7, 8],
            "ANON FILE SHMEM  anonymous memory; page cache (shmem included); tmpfs, /dev/shm, SysV shm",
        ),
        (
            &[9, 10],
            "KERNEL SWAP      kernel memory charged to the cgroup; swap used (not in usage)",
        ),
        (
            &[11],
            "% LIMIT          USAGE / LIMIT, page cache included: not by itself a sign of trouble",
        ),
        (
            &[12, 13],
            "PIDS, OOM KILLS  processes in the cgroup itself; OOM kills the kernel counted (red if > 0)",
        ),
    ];
    for (cols, l) in legend {
        if !cols.iter().any(|i| fit.keep.contains(i)) {
            continue;
        }
        let line = match l.char_indices().nth(17) {
            Some((at, _)) => super::wrapped(&l[..at], 17, &l[at..], 17),
            None => l.to_string(),
        };
        let _ = writeln!(out, "{}", s.dim(&line));
    }
    if !fit.hidden.is_empty() {
        let l = format!(
            "Not shown, to fit {} columns: {} (a wider terminal or COLUMNS=N shows them; --json has every figure)",
            super::width().unwrap_or(0),
            fit.hidden.join(", ")
        );
        let _ = writeln!(out, "{}", s.dim(&super::wrapped("", 0, &l, 0)));
    }
    let probs: Vec<String> = o
        .rows
        .iter()
        .flat_map(|r| r.problems.iter().cloned())
        .chain(o.host.host.problems.iter().cloned())
        .collect();
    problems(&mut out, &probs, s);
    out
}

fn problems(out: &mut String, probs: &[String], s: Style) {
    if probs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{}",
        s.warn("PROBLEMS (the rest of the report is complete)")
    );
    for p in probs {
        let _ = writeln!(out, "{}", super::wrapped("  - ", 4, &term(p), 4));
    }
}

fn fig_row(name: &str, f: &Figure) -> Vec<String> {
    vec![name.to_string(), bytes(f.bytes), f.source.to_string()]
}

/// The full `show` report.
pub fn show(r: &Report, s: Style) -> String {
    let mut out = String::new();
    let cg = &r.cgroup;
    let b = &r.breakdown;
    let d = &r.derived;
    let _ = writeln!(
        out,
        "{}",
        super::wrapped(
            &format!("{} ", s.head("cgroup")),
            7,
            &format!(
                "{}  (cgroup v{}, {})",
                term(&cg.path),
                cg.version.number(),
                term(&cg.fs_path.display().to_string())
            ),
            7
        )
    );
    if let Some(n) = r.identity.short() {
        let mut extra = String::new();
        if let Some(p) = &r.identity.pod_uid {
            let _ = write!(extra, ", pod {p}");
        }
        if let Some(q) = r.identity.qos {
            let _ = write!(extra, ", QoS {q}");
        }
        let _ = writeln!(out, "{} {}", s.head("is"), term(&format!("{n}{extra}")));
    }
    let names = &r.identity.names;
    if !names.is_empty() {
        let mut parts = Vec::new();
        for (k, v) in [
            ("namespace", &names.namespace),
            ("pod", &names.pod),
            ("container", &names.container),
            ("name", &names.runtime_name),
            ("image", &names.image),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k} {}", term(v)));
            }
        }
        let _ = writeln!(out, "{} {}", s.head("names"), parts.join(", "));
    } else if r.identity.short().is_none()
        && let Some(u) = &r.identity.unit
    {
        let _ = writeln!(out, "{} systemd unit {}", s.head("is"), term(u));
    }
    if let Some(k) = &r.host.kernel {
        let _ = writeln!(out, "{} {}", s.head("kernel"), term(k));
    }
    let usage_line = format!(
        "{} of {} limit ({})",
        bytes(b.usage.bytes),
        d.limit.bytes.map_or("no".into(), |l| bytes(Some(l))),
        percent(d.percent_of_limit),
    );
    let _ = writeln!(
        out,
        "\n{}",
        super::wrapped(
            &format!("{} ", s.head("USAGE")),
            6,
            &format!(
                "{usage_line}  [{}; limit: {}]",
                b.usage.source, d.limit.source
            ),
            6
        )
    );

    let _ = writeln!(out, "\n{}", s.head("BREAKDOWN"));
    let mut rows: Vec<Vec<String>> = b.rows().into_iter().map(|(n, f)| fig_row(n, f)).collect();
    rows.push(vec![
        "residual (usage − parts)".into(),
        signed_bytes(b.residual),
        b.residual_source.to_string(),
    ]);
    out.push_str(&itable(&["", "BYTES", "SOURCE"], &rows, &[2], s, 2));

    let _ = writeln!(out, "\n{}", s.head("WHAT HAPPENS NEXT"));
    let rows = vec![
        fig_row("reclaimable now", &d.reclaimable),
        fig_row("not reclaimable without swap", &d.not_reclaimable),
        fig_row("headroom to OOM kill", &d.oom_headroom),
        fig_row("headroom to memory.high", &d.high_headroom),
    ];
    out.push_str(&itable(&["", "BYTES", "FORMULA"], &rows, &[2], s, 2));
    if let (Some(l), Some(n)) = (d.limit.bytes, d.not_reclaimable.bytes) {
        let line = if n >= l {
            s.bad("  What cannot be reclaimed already fills the limit: the next allocation that reclaim cannot satisfy triggers the OOM killer.")
        } else if b.usage.bytes.is_some_and(|u| u as f64 >= l as f64 * 0.9)
            && d.reclaimable.bytes.is_some_and(|r| r > 0)
        {
            format!(
                "  Usage is near the limit, but {} of it is clean page cache the kernel drops at the limit before any OOM kill.",
                bytes(d.reclaimable.bytes)
            )
        } else {
            format!(
                "  {} more unreclaimable memory fits before an OOM kill.",
                bytes(d.oom_headroom.bytes)
            )
        };
        let _ = writeln!(out, "{line}");
    }

    offload(&mut out, r, s);

    let _ = writeln!(out, "\n{}", s.head("WHAT OTHER TOOLS SHOW"));
    let rows: Vec<Vec<String>> = r
        .tools
        .figures
        .iter()
        .map(|t| {
            let v = if t.figure.count {
                t.figure.bytes.map_or("n/a".into(), |n| n.to_string())
            } else {
                bytes(t.figure.bytes)
            };
            vec![t.tool.to_string(), v, t.figure.source.to_string()]
        })
        .collect();
    out.push_str(&itable(&["", "BYTES", "FORMULA"], &rows, &[2], s, 2));
    if let Some(p) = r.tools.docker_percent {
        let _ = writeln!(out, "  docker stats MEM %: {p:.2}%");
    }
    if let Some(p) = r.tools.podman_percent {
        let _ = writeln!(out, "  podman stats MEM %: {p:.2}%");
    }
    let f = &r.tools.free;
    let free_line = format!(
        "  free inside the container (procps-ng 4): total {} used {} free {} shared {} buff/cache {} available {}",
        bytes(f.total_bytes),
        bytes(f.used_bytes),
        bytes(f.free_bytes),
        bytes(f.shared_bytes),
        bytes(f.buff_cache_bytes),
        bytes(f.available_bytes),
    );
    let _ = writeln!(
        out,
        "{}\n{}",
        super::wrapped("", 0, &free_line, 4),
        s.dim(&super::wrapped("  ", 2, &f.note, 2))
    );
    for v in &f.used_variants {
        let line = format!(
            "used per {}: {}  ({})",
            v.tool,
            bytes(v.used_bytes),
            v.formula
        );
        let _ = writeln!(out, "{}", super::wrapped("    ", 4, &line, 6));
    }

    let _ = writeln!(out, "\n{}", s.head("LIMITS AND EVENTS"));
    let l = &cg.limits;
    let mut rows: Vec<Vec<String>> = Vec::new();
    match cg.version {
        Version::V1 => {
            rows.push(vec!["memory.limit_in_bytes".into(), lim(l.max)]);
            rows.push(vec![
                "hierarchical_memory_limit".into(),
                lim(l.hierarchical),
            ]);
            rows.push(vec!["memory.soft_limit_in_bytes".into(), lim(l.soft)]);
            rows.push(vec!["memory.memsw.limit_in_bytes".into(), lim(l.memsw)]);
            rows.push(vec!["memory.kmem.limit_in_bytes".into(), lim(l.kmem)]);
            rows.push(vec![
                "memory.max_usage_in_bytes".into(),
                bytes(cg.usage.peak),
            ]);
            rows.push(vec![
                "memory.memsw.usage_in_bytes".into(),
                bytes(cg.usage.memsw),
            ]);
            rows.push(vec![
                "memory.swappiness".into(),
                l.swappiness.map_or("n/a".into(), |v| v.to_string()),
            ]);
            rows.push(vec![
                "memory.failcnt (limit hits)".into(),
                cg.events.failcnt.map_or("n/a".into(), |v| v.to_string()),
            ]);
            if let Some(oc) = &cg.events.oom_control {
                for (k, v) in &oc.0 {
                    rows.push(vec![format!("memory.oom_control {k}"), v.to_string()]);
                }
                if !oc.has("oom_kill") {
                    rows.push(vec![
                        "memory.oom_control oom_kill".into(),
                        "n/a (kernel < 4.13)".into(),
                    ]);
                }
            }
        }
        Version::V2 => {
            rows.push(vec!["memory.max".into(), lim(l.max)]);
            rows.push(vec!["memory.high".into(), lim(l.high)]);
            rows.push(vec!["memory.low".into(), bytes(l.low)]);
            rows.push(vec!["memory.min".into(), bytes(l.min)]);
            rows.push(vec!["memory.swap.max".into(), lim(l.swap_max)]);
            rows.push(vec![
                "memory.oom.group".into(),
                l.oom_group.map_or("n/a".into(), |g| g.to_string()),
            ]);
            rows.push(vec!["memory.peak".into(), bytes(cg.usage.peak)]);
            if let Some(ev) = &cg.events.events {
                for (k, v) in &ev.0 {
                    rows.push(vec![format!("memory.events {k}"), v.to_string()]);
                }
            }
            if let Some(p) = &cg.pressure {
                rows.push(vec![
                    "memory.pressure some/full avg10".into(),
                    format!("{:.2}% / {:.2}%", p.some.avg10, p.full.avg10),
                ]);
            }
            if let Some(cs) = &cg.cgroup_stat
                && let Some((n, key)) = crate::cgroup::parse::dying_memory(cs)
            {
                rows.push(vec![format!("cgroup.stat {key}"), n.to_string()]);
            }
        }
    }
    out.push_str(&itable(&["", "VALUE"], &rows, &[], s, 2));

    let _ = writeln!(
        out,
        "\n{} ({}{})",
        s.head("PROCESSES"),
        r.processes.len(),
        if r.cgroup.procs.is_none() {
            ", unknown: cgroup.procs unreadable (see PROBLEMS)"
        } else if r.processes.is_empty() {
            ", none in this cgroup; -r includes descendants"
        } else {
            ""
        }
    );
    if !r.processes.is_empty() {
        out.push_str(&indent(&ps_table_in(&r.processes, s, 2)));
        let _ = writeln!(
            out,
            "\n{}",
            s.head("WHY THE PROCESSES DO NOT ADD UP TO THE CGROUP")
        );
        let rows: Vec<Vec<String>> = r
            .reconcile
            .iter()
            .map(|x| {
                vec![
                    x.what.clone(),
                    bytes(x.processes_bytes),
                    bytes(x.cgroup_bytes),
                    x.why.clone(),
                ]
            })
            .collect();
        out.push_str(&itable(
            &["", "PROCESSES", "CGROUP", "WHY"],
            &rows,
            &[3],
            s,
            2,
        ));
    }
    problems(&mut out, &r.problems(), s);
    out
}

/// Swap, zswap, THP and hugetlb (views::offload); rows the kernel lacks are left out, and
/// the section is left out when nothing is there.
fn offload(out: &mut String, r: &Report, s: Style) {
    let o = &r.offload;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut add = |name: &str, f: &Figure, show_zero: bool| {
        if f.bytes.is_some_and(|b| b > 0 || show_zero) {
            rows.push(fig_row(name, f));
        }
    };
    let zswap_known = o.zswap.bytes.is_some();
    add("swap", &o.swap, zswap_known);
    add("zswap pool (compressed, charged)", &o.zswap, zswap_known);
    add("zswapped (uncompressed)", &o.zswapped, zswap_known);
    add("memory.zswap.current", &o.zswap_current, false);
    add("memory.zswap.max", &o.zswap_max, true);
    add("swap room", &o.swap_room, false);
    add(
        "headroom to OOM kill with swap",
        &o.oom_headroom_with_swap,
        false,
    );
    add("anon THP", &o.anon_thp, false);
    add("file THP", &o.file_thp, false);
    add("shmem THP", &o.shmem_thp, false);
    add("secondary page tables", &o.sec_pagetables, false);
    add("hugetlb (memory.stat)", &o.hugetlb, false);
    add("hugetlb (controller)", &o.hugetlb_controller, false);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", s.head("SWAP, ZSWAP AND HUGE PAGES"));
    out.push_str(&indent(&table(&["", "BYTES", "SOURCE"], &rows, &[2], s)));
    if let Some(ratio) = o.compression_ratio {
        let _ = writeln!(
            out,
            "  zswap compression ratio {ratio:.2} ({}): each page in zswap still costs 1/{ratio:.2} of a page, charged to this cgroup.",
            o.compression_ratio_source
        );
    }
    let ev: Vec<String> = o
        .events
        .iter()
        .filter_map(|(k, v)| v.map(|n| format!("{k} {n}")))
        .collect();
    if !ev.is_empty() {
        let _ = writeln!(
            out,
            "  {}",
            s.dim(&format!("memory.stat events: {}", ev.join(", ")))
        );
    }
    if o.hugetlb_in_usage == Some(false) {
        let _ = writeln!(
            out,
            "  {}",
            s.warn("hugetlb pages are in use but not in memory.current: the hierarchy is not mounted with memory_hugetlb_accounting (6.6+), so usage does not add up to what the cgroup holds")
        );
    }
}

/// A table printed indented by `ind` columns, its last text column wrapped to the width.
fn itable(header: &[&str], rows: &[Vec<String>], left: &[usize], s: Style, ind: usize) -> String {
    let pad = " ".repeat(ind);
    super::table_in(header, rows, left, s, ind)
        .lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect()
}

fn indent(t: &str) -> String {
    t.lines().map(|l| format!("  {l}\n")).collect()
}

/// The process table. COMMAND is the command line (`[name]` for kernel threads, as ps
/// prints them), cut to 60 characters; CGROUP only when the processes span several cgroups.
pub fn ps_table(procs: &[Process], s: Style) -> String {
    ps_table_in(procs, s, 0)
}

/// Cuts `t` to `max` characters, ending in `…` when cut.
fn cut(t: &str, max: usize) -> String {
    if t.chars().count() <= max {
        t.to_string()
    } else {
        let mut c: String = t.chars().take(max.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// [`ps_table`] to be printed indented by `indent` columns. With a terminal width
/// ([`super::width`]) the rows fit it as top and htop fit theirs: USER is cut to 8, a CGROUP
/// path keeps its last 24 characters, COMMAND gets the room left (at least 12), and when the
/// figures alone are too wide the columns that say least go first (SWAP, USS, SHMEM, FILE,
/// ANON; RSS and PSS stay), named under the table.
pub fn ps_table_in(procs: &[Process], s: Style, indent: usize) -> String {
    const USER: usize = 1;
    const COMMAND: usize = 2;
    const CGROUP: usize = 10;
    // Dropped in this order when the terminal is too narrow.
    const DROP: [usize; 5] = [9, 8, 6, 5, 4];
    let width = super::width().map(|w| w.saturating_sub(indent));
    let several = procs
        .iter()
        .filter_map(|p| p.cgroup.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let mut header = vec![
        "PID", "USER", "COMMAND", "RSS", "ANON", "FILE", "SHMEM", "PSS", "USS", "SWAP",
    ];
    if several {
        header.push("CGROUP");
    }
    // Cells are escaped here (the table escapes again, a no-op) so widths are what is shown.
    let cmd = |p: &Process| -> String {
        let c = match (&p.cmdline, &p.comm) {
            (Some(c), _) => c.clone(),
            (None, Some(n)) => format!("[{n}]"),
            (None, None) => "?".into(),
        };
        let c = term(&c).into_owned();
        if width.is_some() { c } else { cut(&c, 60) }
    };
    let mut rows: Vec<Vec<String>> = procs
        .iter()
        .map(|p| {
            let user = term(
                &p.user
                    .clone()
                    .or_else(|| p.uid.map(|u| u.to_string()))
                    .unwrap_or_else(|| "?".into()),
            )
            .into_owned();
            let mut r = vec![
                p.pid.to_string(),
                if width.is_some() { cut(&user, 8) } else { user },
                cmd(p),
                bytes(p.rss_bytes),
                bytes(p.rss_anon_bytes),
                bytes(p.rss_file_bytes),
                bytes(p.rss_shmem_bytes),
                bytes(p.pss_bytes),
                bytes(p.uss_bytes),
                bytes(p.swap_bytes),
            ];
            if several {
                let c = term(p.cgroup.as_deref().unwrap_or_default()).into_owned();
                let n = c.chars().count();
                r.push(if width.is_some() && n > 24 {
                    format!("…{}", c.chars().skip(n - 23).collect::<String>())
                } else {
                    c
                });
            }
            r
        })
        .collect();
    let sums = crate::views::processes::ProcessSums::of(procs);
    let mut sum_row = vec![
        "Σ".into(),
        String::new(),
        format!(
            "{} processes{}",
            sums.count,
            if sums.unreadable > 0 {
                format!(" ({} unreadable)", sums.unreadable)
            } else {
                String::new()
            }
        ),
        bytes(sums.rss_bytes),
        bytes(sums.rss_anon_bytes),
        bytes(sums.rss_file_bytes),
        bytes(sums.rss_shmem_bytes),
        bytes(sums.pss_bytes),
        bytes(sums.uss_bytes),
        bytes(sums.swap_bytes),
    ];
    if several {
        sum_row.push(String::new());
    }
    rows.push(sum_row);
    let mut keep: Vec<usize> = (0..header.len()).collect();
    let mut hidden: Vec<&str> = Vec::new();
    if let Some(tw) = width {
        let col_w = |i: usize| -> usize {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(header[i].chars().count()))
                .max()
                .unwrap_or(0)
        };
        // Everything but COMMAND, with the gaps (COMMAND's own gap included).
        let others = |keep: &[usize]| -> usize {
            keep.iter()
                .filter(|i| **i != COMMAND)
                .map(|i| col_w(*i) + 2)
                .sum()
        };
        const MIN_COMMAND: usize = 12;
        for d in DROP {
            if others(&keep) + MIN_COMMAND <= tw {
                break;
            }
            keep.retain(|i| *i != d);
            hidden.push(header[d]);
        }
        let room = tw.saturating_sub(others(&keep)).max(MIN_COMMAND);
        for r in &mut rows {
            r[COMMAND] = cut(&r[COMMAND], room);
        }
    }
    let head: Vec<&str> = keep.iter().map(|i| header[*i]).collect();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| keep.iter().map(|i| r[*i].clone()).collect())
        .collect();
    let left: Vec<usize> = keep
        .iter()
        .enumerate()
        .filter(|(_, i)| [USER, COMMAND, CGROUP].contains(i))
        .map(|(k, _)| k)
        .collect();
    let mut t = table(&head, &rows, &left, s);
    let mut foot = String::from(
        "RSS/ANON/FILE/SHMEM: /proc/PID/status VmRSS/RssAnon/RssFile/RssShmem; PSS, USS (Private_Clean + Private_Dirty): /proc/PID/smaps_rollup; SWAP: VmSwap",
    );
    if !hidden.is_empty() {
        let _ = write!(
            foot,
            ". Not shown, to fit {} columns: {} (a wider terminal or COLUMNS=N shows them; --json has every figure)",
            width.unwrap_or(0) + indent,
            hidden.join(", ")
        );
    }
    let lines = match width {
        Some(w) => super::wrap_words(&foot, w.max(20)),
        None => vec![foot],
    };
    for l in lines {
        t.push_str(&s.dim(&l));
        t.push('\n');
    }
    t
}

/// The number of member processes, or why it is unknown.
fn proc_count(r: &Report) -> String {
    if r.cgroup.procs.is_none() {
        "unknown (cgroup.procs unreadable)".into()
    } else {
        r.processes.len().to_string()
    }
}

/// `memlens ps` output.
pub fn ps(r: &Report, s: Style) -> String {
    let mut out = format!(
        "{} {} ({} processes)\n",
        s.head("cgroup"),
        term(&r.cgroup.path),
        proc_count(r)
    );
    out.push_str(&ps_table(&r.processes, s));
    let probs: Vec<String> = r
        .processes
        .iter()
        .flat_map(|p| {
            p.problems
                .iter()
                .map(move |x| format!("pid {}: {x}", p.pid))
        })
        .collect();
    problems(&mut out, &probs, s);
    out
}

/// The verdict, one line, first in `show`: the most severe finding's level, then what cannot
/// be reclaimed against the limit, the headroom to an OOM kill and the kills so far.
pub fn verdict_line(r: &Report, f: &[crate::rules::Finding], s: Style) -> String {
    use crate::rules::Severity;
    let worst = f.iter().map(|x| x.severity).max();
    let d = &r.derived;
    let mut parts = Vec::new();
    match (d.limit.bytes, d.not_reclaimable.bytes) {
        (Some(l), Some(n)) if l > 0 => {
            parts.push(format!(
                "{:.0}% of the {} limit cannot be reclaimed",
                n as f64 * 100.0 / l as f64,
                bytes(Some(l))
            ));
            if let Some(h) = d.oom_headroom.bytes {
                parts.push(format!("{} to an OOM kill", bytes(Some(h))));
            }
        }
        (None, Some(n)) => parts.push(format!("no limit; {} cannot be reclaimed", bytes(Some(n)))),
        _ => parts.push(format!("usage {}", bytes(r.breakdown.usage.bytes))),
    }
    if let Some(k) = r.cgroup.events.oom_kills()
        && k > 0
    {
        parts.push(format!("{k} OOM kill{}", if k == 1 { "" } else { "s" }));
    }
    let n_warn = f.iter().filter(|x| x.severity >= Severity::Warn).count();
    if n_warn > 0 {
        parts.push(format!(
            "{n_warn} finding{} below",
            if n_warn == 1 { "" } else { "s" }
        ));
    }
    let (tag, styled) = match worst {
        Some(Severity::Critical) => ("CRITICAL", s.bad("CRITICAL")),
        Some(Severity::Warn) => ("WARN", s.warn("WARN")),
        _ => ("OK", s.head("OK")),
    };
    let _ = tag;
    format!(
        "{}\n",
        super::wrapped(&format!("{styled} "), tag.len() + 1, &parts.join("; "), 2)
    )
}

/// `show --brief`: the verdict, what the cgroup is, and one line per finding.
pub fn brief(r: &Report, f: &[crate::rules::Finding], s: Style) -> String {
    let mut out = verdict_line(r, f, s);
    let _ = writeln!(
        out,
        "{} {}{}",
        s.head("cgroup"),
        r.cgroup.path,
        r.identity
            .short()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default()
    );
    for x in f {
        let _ = writeln!(
            out,
            "{}",
            super::wrapped(
                &format!("  [{}] ", x.severity.as_str()),
                x.severity.as_str().len() + 5,
                &format!("{}  ({})", x.title, x.id),
                4
            )
        );
    }
    if f.is_empty() {
        let _ = writeln!(out, "  {}", s.dim("no findings"));
    }
    let probs = r.problems();
    if !probs.is_empty() {
        let _ = writeln!(
            out,
            "  {} problem(s) reading files: see memlens show",
            probs.len()
        );
    }
    out
}

/// The findings section (appended to `show`, the body of `explain`).
pub fn findings(f: &[crate::rules::Finding], s: Style) -> String {
    use crate::rules::Severity;
    let mut out = format!("\n{} ({})\n", s.head("FINDINGS"), f.len());
    if f.is_empty() {
        let _ = writeln!(out, "  {}", s.dim("nothing to report: no rule fired"));
        return out;
    }
    for x in f {
        let tag = format!("[{}]", x.severity.as_str());
        let tag = match x.severity {
            Severity::Critical => s.bad(&tag),
            Severity::Warn => s.warn(&tag),
            Severity::Info => s.dim(&tag),
        };
        let _ = writeln!(
            out,
            "\n{}",
            super::wrapped(
                &format!("  {tag} "),
                x.severity.as_str().len() + 5,
                &format!("{}  ({})", term(&x.title), x.id),
                4
            )
        );
        let rows: Vec<Vec<String>> = x
            .evidence
            .iter()
            .map(|e| vec![e.what.clone(), e.value.clone(), e.source.clone()])
            .collect();
        out.push_str(&itable(&["EVIDENCE", "VALUE", "SOURCE"], &rows, &[2], s, 4));
        let _ = writeln!(
            out,
            "{}",
            super::wrapped(
                &format!("    {} ", s.head("meaning:")),
                13,
                &term_lines(&x.meaning),
                6
            )
        );
        let _ = writeln!(
            out,
            "{}",
            super::wrapped(
                &format!("    {} ", s.head("advice:")),
                12,
                &term_lines(&x.advice),
                6
            )
        );
    }
    out
}

/// `memlens explain` output.
pub fn explain(r: &Report, f: &[crate::rules::Finding], s: Style) -> String {
    let d = &r.derived;
    let mut out = format!(
        "{} {}  (cgroup v{}): usage {} of {} limit ({}), not reclaimable {}, {} processes\n",
        s.head("cgroup"),
        term(&r.cgroup.path),
        r.cgroup.version.number(),
        bytes(r.breakdown.usage.bytes),
        d.limit.bytes.map_or("no".into(), |l| bytes(Some(l))),
        percent(d.percent_of_limit),
        bytes(d.not_reclaimable.bytes),
        proc_count(r),
    );
    out.push_str(&findings(f, s));
    problems(&mut out, &r.problems(), s);
    out
}

/// `explain --sample`: the line printed before the wait (what the first sample says), so
/// piped output is not silent for the whole interval.
pub fn explain_first_sample(r: &Report, wait: std::time::Duration) -> String {
    let d = &r.derived;
    format!(
        "first sample of {}: usage {}, not reclaimable {}; the findings follow the second sample in {:.1} s\n",
        term(&r.cgroup.path),
        bytes(r.breakdown.usage.bytes),
        bytes(d.not_reclaimable.bytes),
        wait.as_secs_f64()
    )
}

/// `zombies --sample`: the trend lines printed after the wait, under the first count
/// (printed before it).
pub fn zombies_trend(z: &crate::zombies::Zombies, trend: Option<(f64, Option<u64>)>) -> String {
    let mut out = String::new();
    let n = |v: Option<u64>| v.map_or("n/a".into(), |x: u64| x.to_string());
    if let Some((secs, after)) = trend {
        for h in &z.hierarchies {
            let delta = match (h.dying, after) {
                (Some(a), Some(b)) => format!(" ({:+})", b as i64 - a as i64),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "\ntrend: {} → {} dying over {secs:.1} s{delta} (v{} {})",
                n(h.dying),
                n(after),
                h.version,
                h.mount
            );
        }
    }
    out
}

/// `memlens zombies` output.
pub fn zombies(z: &crate::zombies::Zombies, trend: Option<(f64, Option<u64>)>, s: Style) -> String {
    let mut out = String::new();
    let n = |v: Option<u64>| v.map_or("n/a".into(), |x| x.to_string());
    for h in &z.hierarchies {
        let rows = vec![vec![
            format!("v{} {}", h.version, h.mount),
            n(h.dying),
            h.live.to_string(),
            h.dying_source.clone(),
        ]];
        out.push_str(&table(
            &["HIERARCHY", "DYING", "LIVE", "SOURCE"],
            &rows,
            &[3],
            s,
        ));
        if let Some((secs, after)) = trend {
            let delta = match (h.dying, after) {
                (Some(a), Some(b)) => format!(" ({:+})", b as i64 - a as i64),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "trend: {} → {} dying over {secs:.1} s{delta}",
                n(h.dying),
                n(after)
            );
        }
        if !h.subtrees.is_empty() {
            let _ = writeln!(
                out,
                "\n{}",
                s.head("SUBTREES WITH DYING DESCENDANTS (cgroup.stat nr_dying_descendants)")
            );
            let rows: Vec<Vec<String>> = h
                .subtrees
                .iter()
                .take(20)
                .map(|t| vec![t.path.clone(), t.dying.to_string()])
                .collect();
            out.push_str(&itable(&["PATH", "DYING"], &rows, &[], s, 2));
        }
        let _ = writeln!(
            out,
            "\n{} ({})",
            s.head("NO PROCESSES BUT STILL CHARGED: will be dying cgroups when removed"),
            h.empty_charged.len()
        );
        if h.empty_charged.is_empty() {
            let _ = writeln!(out, "  {}", s.dim("none"));
        } else {
            let rows: Vec<Vec<String>> = h
                .empty_charged
                .iter()
                .map(|e| {
                    vec![
                        e.path.clone(),
                        bytes(e.usage_bytes),
                        bytes(e.file_bytes),
                        bytes(e.shmem_bytes),
                    ]
                })
                .collect();
            out.push_str(&itable(
                &["PATH", "USAGE", "FILE", "SHMEM"],
                &rows,
                &[],
                s,
                2,
            ));
        }
        let _ = writeln!(out, "\n{}", s.head("WHAT TO DO (and the risk of each)"));
        let remedy = if h.version == 1 {
            "  - before removing an empty cgroup: `memlens zombies --reclaim PATH` (writes 0 to its memory.force_empty).\n    Risk: the dropped cache must be re-read from disk by whoever uses those files next; dirty pages are written first (I/O burst)."
        } else {
            "  - before removing, or for a parent full of dying children: `memlens zombies --reclaim PATH` (writes its usage to memory.reclaim).\n    Risk: reclaim of the whole amount also pushes the cgroup's live anon to swap where swap is allowed; dropped cache is re-read later."
        };
        let _ = writeln!(out, "{remedy}");
        let _ = writeln!(
            out,
            "  - echo 1 > /proc/sys/vm/drop_caches frees every clean page cache page on the host, which also frees dying memcgs.\n    Risk: production avoids it: every workload on the node loses its cache at once and re-reads from disk (latency spike, I/O storm); it is a global hammer for a local problem and the zombies come back.\n  - dying cgroups that hold only page cache are freed by ordinary reclaim when memory gets short; a count that only grows (see --sample) points at a workload creating and removing cgroups (cron jobs, short-lived containers) that leave cache behind."
        );
    }
    problems(&mut out, &z.problems, s);
    out
}

/// `memlens zombies --reclaim` output.
pub fn reclaimed(r: &crate::zombies::Reclaimed, s: Style) -> String {
    let freed = match (r.usage_before_bytes, r.usage_after_bytes) {
        (Some(a), Some(b)) => bytes(Some(a.saturating_sub(b))),
        _ => "n/a".into(),
    };
    let rows = vec![
        vec![
            "usage".to_string(),
            bytes(r.usage_before_bytes),
            bytes(r.usage_after_bytes),
        ],
        vec![
            "page cache (file)".to_string(),
            bytes(r.file_before_bytes),
            bytes(r.file_after_bytes),
        ],
    ];
    let mut out = format!(
        "{} {}: wrote {:?} to {}; freed {freed}\n",
        s.head("reclaimed"),
        term(&r.path),
        r.request,
        r.file
    );
    out.push_str(&itable(&["", "BEFORE", "AFTER"], &rows, &[], s, 2));
    if let Some(p) = &r.partial {
        let _ = writeln!(out, "  {}", s.warn(&format!("partial: {}", term(p))));
    }
    out
}

/// `memlens oom`: one line per OOM kill.
pub fn oom_list(all: &[crate::oom::PostMortem], s: Style) -> String {
    oom_list_with(
        all,
        s,
        Some(
            "Times: /dev/kmsg monotonic stamps + the boot time (CLOCK_REALTIME − CLOCK_BOOTTIME), in UTC.",
        ),
    )
}

/// [`oom_list`] with its `Times:` footer (`None`: the times are as the log printed them).
pub fn oom_list_with(all: &[crate::oom::PostMortem], s: Style, times: Option<&str>) -> String {
    if all.is_empty() {
        return "No OOM kills in the kernel log (it keeps only what its ring buffer still holds; older kills may be in journalctl -k or /var/log: use --file).\n".into();
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|p| {
            let r = &p.report;
            let v = r.victim.as_ref();
            vec![
                p.number.to_string(),
                r.time.clone().unwrap_or_else(|| "?".into()),
                v.map_or("?".into(), |v| {
                    format!(
                        "{} ({})",
                        v.pid.map_or("?".into(), |x| x.to_string()),
                        v.comm.as_deref().unwrap_or("?")
                    )
                }),
                bytes(v.and_then(|v| v.anon_rss_bytes)),
                if r.global {
                    "global".into()
                } else {
                    "memcg".into()
                },
                p.identity
                    .as_ref()
                    .and_then(|i| i.display_name())
                    .or_else(|| r.oom_memcg.clone())
                    .unwrap_or_else(|| "-".into()),
                format!("{} / {}", bytes(r.usage_bytes), bytes(r.limit_bytes)),
                p.verdict.id.to_string(),
                if r.complete {
                    "yes".into()
                } else {
                    "cut".into()
                },
            ]
        })
        .collect();
    let mut out = table(
        &[
            "#",
            "TIME",
            "VICTIM",
            "ANON RSS",
            "KIND",
            "MEMCG / CONTAINER",
            "USAGE / LIMIT",
            "VERDICT",
            "COMPLETE",
        ],
        &rows,
        &[1, 2, 4, 5, 7, 8],
        s,
    );
    let mut foot = String::from(
        "`memlens oom show N` explains one (# is the kernel's sequence number when the log has it).",
    );
    foot.push_str("\nCOMPLETE: yes = the whole report is in the log; cut = lines were lost (ring buffer rotated, rate-limited or the log truncated), so some figures are n/a.");
    if let Some(t) = times {
        foot.push('\n');
        foot.push_str(t);
    }
    if all.iter().any(|p| {
        p.report
            .time
            .as_deref()
            .is_some_and(|t| crate::kmsg::oom::zone_of(t).is_none())
    }) {
        foot.push_str("\nTIME without a zone: the log gave none; it is the local time of the machine that wrote the log (a zone, Z or ±HH:MM, is shown as the log gave it).");
    }
    for l in foot.lines() {
        out.push_str(&s.dim(l));
        out.push('\n');
    }
    out
}

/// `memlens oom show N`: one post-mortem.
pub fn oom_show(p: &crate::oom::PostMortem, s: Style) -> String {
    let r = &p.report;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} #{} at {}{}",
        s.head("OOM kill"),
        p.number,
        r.time.as_deref().unwrap_or("?"),
        if r.complete {
            ""
        } else {
            " (report cut: parsed as far as it goes)"
        }
    );
    let _ = writeln!(
        out,
        "  constraint {}  oom_memcg {}  task_memcg {}",
        term(r.constraint.as_deref().unwrap_or("?")),
        term(r.oom_memcg.as_deref().unwrap_or("-")),
        term(r.task_memcg.as_deref().unwrap_or("-"))
    );
    if let Some(i) = &p.identity
        && let Some(short) = i.short()
    {
        let _ = write!(out, "  container {}", term(&short));
        if let Some(n) = i.display_name().filter(|n| *n != short) {
            let _ = write!(out, ", name {}", term(&n));
        }
        if let Some(img) = &i.names.image {
            let _ = write!(out, ", image {}", term(img));
        }
        out.push('\n');
    }
    out.push_str(&crate::render::node::oom_level(p, s));
    let _ = writeln!(
        out,
        "  trigger {} ({}), gfp_mask {}, order {}",
        r.trigger.pid.map_or("?".into(), |x| x.to_string()),
        term(r.trigger.comm.as_deref().unwrap_or("?")),
        r.gfp_mask.as_deref().unwrap_or("?"),
        r.order.map_or("?".into(), |o| o.to_string())
    );
    if let Some(v) = &r.victim {
        let _ = writeln!(
            out,
            "  victim {} ({}): total-vm {}, anon-rss {}, file-rss {}, shmem-rss {}, page tables {}",
            v.pid.map_or("?".into(), |x| x.to_string()),
            term(v.comm.as_deref().unwrap_or("?")),
            bytes(v.total_vm_bytes),
            bytes(v.anon_rss_bytes),
            bytes(v.file_rss_bytes),
            bytes(v.shmem_rss_bytes),
            bytes(v.pgtables_bytes)
        );
    }
    let lim = |l: Option<u64>, u: Option<u64>| match (l, u) {
        (None, Some(_)) => "unlimited".to_string(),
        (l, _) => bytes(l),
    };
    let full = |u: Option<u64>, l: Option<u64>| matches!((u, l), (Some(u), Some(l)) if l > 0 && u >= l - l / 100);
    // Which limit was hit: memory+swap when it allows swap beyond the memory limit and is
    // full, else memory.
    let memsw_hit =
        full(r.memsw_usage_bytes, r.memsw_limit_bytes) && r.memsw_limit_bytes > r.limit_bytes;
    let _ = writeln!(
        out,
        "  memory: usage {} of limit {} (failcnt {}){}",
        bytes(r.usage_bytes),
        lim(r.limit_bytes, r.usage_bytes),
        r.failcnt.map_or("n/a".into(), |f| f.to_string()),
        if !memsw_hit && full(r.usage_bytes, r.limit_bytes) {
            "  <- the limit that was hit"
        } else {
            ""
        }
    );
    for (name, u, l) in [
        ("memory+swap", r.memsw_usage_bytes, r.memsw_limit_bytes),
        ("kmem", r.kmem_usage_bytes, r.kmem_limit_bytes),
        ("swap", r.swap_usage_bytes, r.swap_limit_bytes),
    ] {
        if u.is_some() {
            let hit = name == "memory+swap" && memsw_hit;
            let _ = writeln!(
                out,
                "  {name}: usage {} of limit {}{}",
                bytes(u),
                lim(l, u),
                if hit {
                    "  <- the limit that was hit"
                } else {
                    ""
                }
            );
        }
    }
    if let Some(n) = &r.time_note {
        let _ = writeln!(out, "  {}", s.dim(n));
    }
    let _ = writeln!(
        out,
        "\n{}\n  {}",
        s.head("VERDICT"),
        term_lines(&p.verdict.text)
    );
    if !r.stat.is_empty() {
        let _ = writeln!(
            out,
            "\n{} ({})",
            s.head("MEMORY.STAT AT THE KILL"),
            term(r.stat_memcg.as_deref().unwrap_or("the OOM memcg"))
        );
        let keys = [
            "anon",
            "file",
            "kernel",
            "shmem",
            "file_dirty",
            "file_writeback",
            "slab",
            "sock",
            "rss",
            "cache",
            "total_rss",
            "total_cache",
            "total_shmem",
            "total_dirty",
            "total_writeback",
        ];
        let rows: Vec<Vec<String>> = r
            .stat
            .iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .map(|(k, v)| vec![k.clone(), bytes(Some(*v))])
            .collect();
        out.push_str(&itable(&["", "BYTES"], &rows, &[], s, 2));
    }
    if !p.top_tasks.is_empty() {
        let _ = writeln!(out, "\n{}", s.head("TOP PROCESSES (task table)"));
        let rows: Vec<Vec<String>> = p
            .top_tasks
            .iter()
            .map(|t| {
                vec![
                    t.pid.map_or("?".into(), |x| x.to_string()),
                    t.name.clone().unwrap_or_default(),
                    bytes(t.rss_bytes),
                    percent(t.share_percent),
                ]
            })
            .collect();
        out.push_str(&itable(&["PID", "NAME", "RSS", "SHARE"], &rows, &[1], s, 2));
    }
    out
}

/// One kill seen by `memlens oom --follow`: the full post-mortem when the kernel's report was
/// read, else what the kernel's counter says.
pub fn oom_detected(d: &crate::oom::follow::Detected, s: Style) -> String {
    let mut out = String::new();
    let who = d
        .identity
        .as_ref()
        .and_then(|i| {
            let short = i.short()?;
            Some(match i.display_name().filter(|n| *n != short) {
                Some(n) => format!("{short}, {n}"),
                None => short,
            })
        })
        .map(|i| format!(" ({i})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} seen at {} from the {}: {}{}",
        s.head(&format!("== OOM kill #{}", d.number)),
        d.detected_at,
        if d.detected_by == "counter" {
            "kernel's oom_kill counter"
        } else {
            "kernel log"
        },
        term(d.cgroup.as_deref().unwrap_or("no memcg (global OOM)")),
        term(&who)
    );
    match &d.post_mortem {
        Some(pm) => out.push_str(&oom_show(pm, s)),
        None => {
            let _ = writeln!(
                out,
                "  {} kill{} counted in {}",
                d.kills,
                if d.kills == 1 { "" } else { "s" },
                term(d.cgroup.as_deref().unwrap_or("?"))
            );
        }
    }
    if let Some(n) = &d.note {
        let _ = writeln!(out, "  {}", s.dim(&term(n)));
    }
    out.push('\n');
    out
}
