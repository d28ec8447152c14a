//! Human output of `memlens cache` and `cache --drop`.

use super::{Style, bytes, table};
use crate::cache::{CacheReport, Dropped, Owner};
use std::fmt::Write;

fn owner(o: &Owner) -> String {
    match (&o.name, &o.cgroup) {
        (Some(n), _) => n.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) if o.memcg_inode == 0 => "(no memcg)".into(),
        (None, None) => format!("(memcg inode {}: no live cgroup)", o.memcg_inode),
    }
}

fn path_cell(p: &str, deleted: bool, tmpfs: bool) -> String {
    let mut s = p.to_string();
    if deleted {
        s.push_str(" (deleted)");
    }
    if tmpfs {
        s.push_str(" [tmpfs]");
    }
    s
}

/// `memlens cache TARGET`.
pub fn report(r: &CacheReport, s: Style) -> String {
    let mut out = String::new();
    let who = match &r.name {
        Some(n) => format!("{n} ({})", r.cgroup),
        None => r.cgroup.clone(),
    };
    let _ = writeln!(
        out,
        "{} {who}: page cache {} (shmem {})",
        s.head("cache of"),
        bytes(r.file_bytes),
        bytes(r.shmem_bytes)
    );
    let _ = writeln!(out, "{}", s.dim(&format!("  {}", r.file_source)));
    let own = r.ownership_unavailable.is_none();
    let mut header = vec!["FILE", "CACHED"];
    if own {
        header.push("CHARGED HERE");
    }
    header.extend(["DIRTY", "THRASH", "SIZE"]);
    if own {
        header.push("ALSO CHARGED TO");
    }
    let rows: Vec<Vec<String>> = r
        .files
        .iter()
        .map(|f| {
            let mut row = vec![
                path_cell(&f.path, f.deleted, f.tmpfs),
                bytes(Some(f.cached_bytes)),
            ];
            if own {
                row.push(bytes(f.charged_here_bytes));
            }
            row.push(bytes(f.dirty_bytes));
            row.push(bytes(f.recently_evicted_bytes));
            row.push(bytes(Some(f.size_bytes)));
            if own {
                row.push(
                    f.charged_elsewhere
                        .iter()
                        .take(2)
                        .map(|o| format!("{} {}", owner(o), bytes(Some(o.bytes))))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            row
        })
        .collect();
    if rows.is_empty() {
        let _ = writeln!(out, "\nno candidate file has pages in the cache");
    } else {
        out.push('\n');
        let left = if own { vec![6] } else { vec![] };
        out.push_str(&table(&header, &rows, &left, s));
    }
    if r.more_files > 0 {
        let _ = writeln!(
            out,
            "{}",
            s.dim(&format!("… {} more cached files (--top)", r.more_files))
        );
    }
    out.push('\n');
    match (r.charged_here_in_files_bytes, r.file_bytes) {
        (Some(x), Some(y)) => {
            let _ = writeln!(
                out,
                "these files account for {} of the cgroup's {} of page cache",
                bytes(Some(x)),
                bytes(Some(y))
            );
            if let Some(u) = r.unnamed_bytes
                && u > 0
            {
                let _ = writeln!(
                    out,
                    "the other {} is likely: {}",
                    bytes(Some(u as u64)),
                    r.unnamed_likely
                );
            }
        }
        _ => {
            if let Some(why) = &r.ownership_unavailable {
                let _ = writeln!(
                    out,
                    "{}",
                    s.warn(&format!(
                        "ownership unavailable ({why}): residency only, not who is charged"
                    ))
                );
            }
        }
    }
    let tmpfs: Vec<_> = r.files.iter().filter(|f| f.tmpfs).collect();
    if !tmpfs.is_empty() {
        let _ = writeln!(
            out,
            "tmpfs files (shmem: stays until the file is deleted; reclaim can only swap it):"
        );
        for f in tmpfs {
            let _ = writeln!(
                out,
                "  {}  {} resident of {}",
                path_cell(&f.path, f.deleted, false),
                bytes(Some(f.cached_bytes)),
                bytes(Some(f.size_bytes))
            );
        }
    }
    let _ = writeln!(
        out,
        "{}",
        s.dim(&format!(
            "searched: fds and maps of {} processes, {} candidate files{}; {}",
            r.search.pids,
            r.search.candidates,
            if r.search.walked.is_empty() {
                String::new()
            } else {
                format!(", walked {}", r.search.walked.join(" "))
            },
            r.residency_source
        ))
    );
    if let Some(t) = &r.search.truncated {
        let _ = writeln!(out, "{}", s.warn(&format!("walk {t}: results incomplete")));
    }
    let _ = writeln!(
        out,
        "{}",
        s.dim(&format!(
            "scan: {} files in {:.2} s, {} major faults (pages read in), {} minor faults (resident pages mapped)",
            r.scan.files_scanned, r.scan.seconds, r.scan.major_faults, r.scan.minor_faults
        ))
    );
    if !r.problems.is_empty() {
        let _ = writeln!(out, "{}", s.warn("problems:"));
        for p in &r.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

/// `memlens cache --drop FILE...`.
pub fn dropped(d: &[Dropped], s: Style) -> String {
    let mut out = String::new();
    for f in d {
        if let Some(e) = &f.error {
            let _ = writeln!(out, "{}", s.bad(&format!("cannot drop {}: {e}", f.path)));
            continue;
        }
        let _ = writeln!(
            out,
            "{} {}: freed {} ({} cached before, {} after)",
            s.head("dropped"),
            f.path,
            bytes(Some(f.freed_bytes)),
            bytes(Some(f.cached_before_bytes)),
            bytes(Some(f.cached_after_bytes))
        );
        for o in &f.owners {
            let _ = writeln!(
                out,
                "  from {}: {} → {} of this file; its page cache {} → {}",
                owner(&o.owner),
                bytes(Some(o.owner.bytes)),
                bytes(Some(o.after_bytes)),
                bytes(o.file_counter_before_bytes),
                bytes(o.file_counter_after_bytes)
            );
        }
        if let Some(n) = &f.note {
            let _ = writeln!(out, "  {}", s.dim(n));
        }
    }
    out
}

/// `memlens zombies --why`.
pub fn why(w: &crate::dying::Why, s: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}",
        s.head("dying memory cgroups:"),
        w.dying.map_or("n/a".into(), |n| n.to_string())
    );
    let _ = writeln!(out, "{}", s.dim(&format!("  {}", w.dying_source)));
    if let Some(why) = &w.ownership_unavailable {
        let _ = writeln!(out, "{}", s.warn(&format!("files cannot be named: {why}")));
    }
    if w.holders.is_empty() {
        let _ = writeln!(
            out,
            "\nno live cgroup holds page cache of dying descendants (over 1 MiB)"
        );
    }
    for hd in &w.holders {
        let _ = writeln!(
            out,
            "\n{} {}: {} of page cache charged to dying descendants{}",
            s.head("under"),
            hd.cgroup,
            bytes(hd.dying_file_bytes),
            hd.nr_dying_descendants
                .map_or(String::new(), |n| format!(" ({n} dying)"))
        );
        let _ = writeln!(out, "{}", s.dim(&format!("  {}", hd.source)));
        if !hd.certain {
            let _ = writeln!(
                out,
                "  {}",
                s.dim(&format!(
                    "it also has page cache of its own ({}): the files below are charged to it or to its dying descendants",
                    bytes(hd.own_file_bytes)
                ))
            );
        }
        let rows: Vec<Vec<String>> = hd
            .files
            .iter()
            .take(10)
            .map(|f| {
                vec![
                    if f.tmpfs {
                        format!("{} [tmpfs]", f.path)
                    } else {
                        f.path.clone()
                    },
                    bytes(Some(f.bytes)),
                    f.found.clone(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            let t = table(
                &["  FILE", "BYTES", "FOUND"],
                &rows
                    .into_iter()
                    .map(|mut r| {
                        r[0] = format!("  {}", r[0]);
                        r
                    })
                    .collect::<Vec<_>>(),
                &[2],
                s,
            );
            out.push_str(&t);
        }
        if hd.files.len() > 10 {
            let _ = writeln!(out, "  … {} more files", hd.files.len() - 10);
        }
        if let Some(u) = hd.unnamed_bytes
            && u > 0
        {
            let _ = writeln!(
                out,
                "  not named: {} (files outside the checked directories, or already deleted and closed)",
                bytes(Some(u))
            );
        }
        let _ = writeln!(out, "  remedy: {}", hd.remedy);
    }
    let _ = writeln!(
        out,
        "{}",
        s.dim(&format!(
            "\nchecked {} files (open/mapped by any process; walked {}) in {:.2} s, {} major faults",
            w.files_checked,
            w.walked.join(" "),
            w.seconds,
            w.major_faults
        ))
    );
    if let Some(t) = &w.truncated {
        let _ = writeln!(out, "{}", s.warn(&format!("walk {t}: results incomplete")));
    }
    for p in &w.problems {
        let _ = writeln!(out, "  {}", s.warn(p));
    }
    out
}
