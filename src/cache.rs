//! `memlens cache TARGET`: which files fill a cgroup's page cache, who is charged for them,
//! and whether that cache is hot; `memlens cache --drop FILE...`: drop named files' clean
//! pages and say from which cgroups they went.
//!
//! A page-cache page is charged to the memcg of the task that brought it into the cache (the
//! first toucher) and stays there while it is cached (Documentation/admin-guide/cgroup-v2.rst
//! "Memory Ownership"; cgroup-v1/memory.rst 2.3), so a file two containers read is paid by
//! one of them. The candidates come from [`crate::pagecache::candidates`], residency from
//! cachestat/mincore and ownership from kpagecgroup ([`crate::pagecache`]).

use crate::cgroup::read::{self, Level};
use crate::cgroup::walk;
use crate::identity::Identity;
use crate::model::Hierarchy;
use crate::pagecache::{self, Residency, candidates};
use crate::proc::kpage::{Kpage, page_size};
use crate::sys::Root;
use crate::views::breakdown::Breakdown;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `memlens cache`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Extra directories (or files) to check, system paths.
    pub paths: Vec<PathBuf>,
    /// Walk bounds.
    pub bounds: candidates::Bounds,
    /// Rows to keep.
    pub top: usize,
}

/// A memcg a file's pages are charged to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// Cgroup path within the hierarchy; `null` when the inode matches no live cgroup. Pages
    /// of a dying memcg show as its nearest live ancestor's (see [`crate::dying`]).
    pub cgroup: Option<String>,
    /// The container or unit the path names, when it names one.
    pub name: Option<String>,
    /// The memcg inode number from /proc/kpagecgroup (0: charged to no memcg).
    pub memcg_inode: u64,
    /// Resident bytes charged to it.
    #[serde(rename = "charged_bytes")]
    pub bytes: u64,
}

/// One file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRow {
    /// The path (as the process sees it).
    pub path: String,
    /// How it was found.
    pub found: String,
    /// Unlinked but still open or mapped.
    pub deleted: bool,
    /// On tmpfs: shmem, the only copy; freed when the file is deleted, not by reclaim
    /// (without swap).
    pub tmpfs: bool,
    /// st_size.
    pub size_bytes: u64,
    /// In the page cache (cachestat nr_cache, or mincore).
    pub cached_bytes: u64,
    /// Dirty (cachestat only).
    pub dirty_bytes: Option<u64>,
    /// Under writeback (cachestat only).
    pub writeback_bytes: Option<u64>,
    /// Evicted (cachestat only).
    pub evicted_bytes: Option<u64>,
    /// Recently evicted: evicted while part of the working set (cachestat only): thrash.
    pub recently_evicted_bytes: Option<u64>,
    /// Resident bytes charged to the target cgroup or its descendants; `null` when ownership
    /// could not be read.
    pub charged_here_bytes: Option<u64>,
    /// Resident bytes charged to other memcgs, largest first.
    pub charged_elsewhere: Vec<Owner>,
}

/// How the candidate search went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Search {
    /// PIDs whose fds and maps were read.
    pub pids: usize,
    /// Candidate files found.
    pub candidates: usize,
    /// Directories walked.
    pub walked: Vec<String>,
    /// Set when a bound stopped the walk.
    pub truncated: Option<String>,
}

/// What the scan cost and proved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scan {
    /// Wall time of the search and scan.
    pub seconds: f64,
    /// Files whose residency was read.
    pub files_scanned: usize,
    /// Major faults of memlens during the page scan: pages read from disk (0 means nothing
    /// was brought into the cache).
    pub major_faults: u64,
    /// Minor faults: resident pages mapped to read their frame.
    pub minor_faults: u64,
    /// Resident pages whose frame could not be read (evicted during the scan).
    pub unresolved_pages: u64,
}

/// The result of `memlens cache TARGET`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheReport {
    /// The cgroup path.
    pub cgroup: String,
    /// Its container/unit name, when it has one.
    pub name: Option<String>,
    /// cgroup version.
    pub version: u8,
    /// The cgroup's page cache (incl. shmem), as the kernel counts it.
    pub file_bytes: Option<u64>,
    /// Where `file_bytes` comes from.
    pub file_source: String,
    /// Its shmem.
    pub shmem_bytes: Option<u64>,
    /// Where the counts come from (`cachestat(2)` or `mincore(2)`).
    pub residency_source: String,
    /// `null` when ownership was read from /proc/kpagecgroup; otherwise why not.
    pub ownership_unavailable: Option<String>,
    /// The top files (charged here first, then used here and charged elsewhere).
    pub files: Vec<FileRow>,
    /// Files with cached pages that were left out of `files` (beyond --top).
    pub more_files: usize,
    /// Sum over every scanned file of the bytes charged to this cgroup.
    pub charged_here_in_files_bytes: Option<u64>,
    /// `file_bytes − charged_here_in_files_bytes`: page cache the search did not name.
    pub unnamed_bytes: Option<i64>,
    /// What that remainder likely is.
    pub unnamed_likely: String,
    /// The search.
    pub search: Search,
    /// The scan.
    pub scan: Scan,
    /// What could not be read.
    pub problems: Vec<String>,
}

/// memcg inode numbers of every live cgroup: inode → path.
pub fn cgroup_inodes(root: &Root, h: &Hierarchy) -> HashMap<u64, String> {
    let mut m = HashMap::new();
    for p in walk::all_paths(root, h, "/") {
        if let Some(real) = root.real_path(&read::fs_path(h, &p))
            && let Ok(md) = std::fs::metadata(real)
        {
            m.insert(md.ino(), p);
        }
    }
    m
}

fn name_of(path: &str) -> Option<String> {
    let id = Identity::from_path(path);
    if id.container_id.is_some() || id.unit.is_some() || id.pod_uid.is_some() {
        id.display_name()
    } else {
        None
    }
}

fn under(p: &str, top: &str) -> bool {
    top == "/" || p == top || p.starts_with(&format!("{top}/"))
}

/// Scans one open file: residency, and with `kpage` ownership (pages by memcg inode).
pub struct FileScan {
    /// Counts.
    pub residency: Residency,
    /// Pages by memcg inode.
    pub by_memcg: BTreeMap<u64, u64>,
    /// The page scan's faults and unresolved pages.
    pub pages: pagecache::PageScan,
}

/// Residency (cachestat, else mincore) and ownership of one file.
pub fn scan_file(
    f: &std::fs::File,
    size: u64,
    kpage: Option<&Kpage>,
    use_cachestat: &mut bool,
) -> std::io::Result<FileScan> {
    let cs = if *use_cachestat {
        match pagecache::cachestat(f)? {
            Some(r) => Some(r),
            None => {
                *use_cachestat = false;
                None
            }
        }
    } else {
        None
    };
    // Nothing cached: nothing to map.
    let need_pages = cs.is_none_or(|r| r.cached > 0);
    let pages = if need_pages && size > 0 {
        pagecache::scan(f, size, kpage)?
    } else {
        pagecache::PageScan::default()
    };
    let residency = cs.unwrap_or(Residency {
        cached: pages.resident,
        ..Default::default()
    });
    Ok(FileScan {
        residency,
        by_memcg: pages.by_memcg.clone(),
        pages,
    })
}

/// Builds `memlens cache` for the cgroup at `path` (live system only).
pub fn collect(root: &Root, h: &Hierarchy, path: &str, opts: &Options) -> CacheReport {
    let t0 = Instant::now();
    let mut problems = Vec::new();
    let (file_bytes, file_source, shmem_bytes) =
        match read::read_cgroup(root, h, path, Level::Overview) {
            Ok(cg) => {
                problems.extend(cg.problems.iter().cloned());
                let b = Breakdown::of(&cg);
                (b.file.bytes, b.file.source.into_owned(), b.shmem.bytes)
            }
            Err(e) => {
                problems.push(e.to_string());
                (None, e.to_string(), None)
            }
        };
    // Members: every process of the cgroup and its descendants (the charge is hierarchical).
    let mut pids = Vec::new();
    for p in walk::all_paths(root, h, path) {
        match root.read(&read::fs_path(h, &p).join("cgroup.procs")) {
            Ok(t) => pids.extend(crate::cgroup::parse::pids(&t).unwrap_or_default()),
            Err(crate::sys::ReadError::Missing { .. }) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    pids.sort_unstable();
    pids.dedup();
    let found = candidates::collect(root, &pids, &opts.paths, &[], true, opts.bounds);
    problems.extend(found.problems.iter().cloned());
    let (kpage, ownership_unavailable) = match Kpage::open(root) {
        Ok(k) => (Some(k), None),
        Err(e) => (None, Some(e)),
    };
    let inodes = cgroup_inodes(root, h);
    let here: HashSet<u64> = inodes
        .iter()
        .filter(|(_, p)| under(p, path))
        .map(|(i, _)| *i)
        .collect();
    let ps = page_size();
    let mut use_cachestat = true;
    let mut kp = kpage;
    let mut own_err = ownership_unavailable;
    let mut rows = Vec::new();
    let (mut majf, mut minf, mut unres, mut scanned) = (0, 0, 0, 0usize);
    for c in &found.files {
        let f = match pagecache::open(&c.open) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    problems.push(format!("{}: {e}", c.name));
                }
                continue;
            }
        };
        let Ok(md) = f.metadata() else { continue };
        if !md.is_file() {
            continue;
        }
        let s = match scan_file(&f, md.len(), kp.as_ref(), &mut use_cachestat) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && kp.is_some() => {
                // pagemap hides frames: go on with residency only.
                own_err = Some(e.to_string());
                kp = None;
                match scan_file(&f, md.len(), None, &mut use_cachestat) {
                    Ok(s) => s,
                    Err(e) => {
                        problems.push(format!("{}: {e}", c.name));
                        continue;
                    }
                }
            }
            Err(e) => {
                problems.push(format!("{}: {e}", c.name));
                continue;
            }
        };
        scanned += 1;
        majf += s.pages.major_faults;
        minf += s.pages.minor_faults;
        unres += s.pages.unresolved;
        if s.residency.cached == 0 {
            continue;
        }
        let b = |p: u64| p * ps;
        let (charged_here, elsewhere) = if kp.is_some() {
            let mut h_pages = 0;
            let mut other = Vec::new();
            for (ino, n) in &s.by_memcg {
                if here.contains(ino) {
                    h_pages += n;
                } else {
                    let cg = inodes.get(ino).cloned();
                    other.push(Owner {
                        name: cg.as_deref().and_then(name_of),
                        cgroup: cg,
                        memcg_inode: *ino,
                        bytes: b(*n),
                    });
                }
            }
            other.sort_by_key(|o| std::cmp::Reverse(o.bytes));
            (Some(b(h_pages)), other)
        } else {
            (None, Vec::new())
        };
        rows.push(FileRow {
            path: c.name.clone(),
            found: c.found.clone(),
            deleted: c.deleted,
            tmpfs: pagecache::is_tmpfs(&f),
            size_bytes: md.len(),
            cached_bytes: b(s.residency.cached),
            dirty_bytes: s.residency.dirty.map(b),
            writeback_bytes: s.residency.writeback.map(b),
            evicted_bytes: s.residency.evicted.map(b),
            recently_evicted_bytes: s.residency.recently_evicted.map(b),
            charged_here_bytes: charged_here,
            charged_elsewhere: elsewhere,
        });
    }
    let charged_here_in_files_bytes = if kp.is_some() {
        Some(rows.iter().filter_map(|r| r.charged_here_bytes).sum())
    } else {
        None
    };
    // Charged here first, then what is used here and paid by others.
    rows.sort_by(|a, b| {
        b.charged_here_bytes
            .unwrap_or(b.cached_bytes)
            .cmp(&a.charged_here_bytes.unwrap_or(a.cached_bytes))
            .then(b.cached_bytes.cmp(&a.cached_bytes))
            .then(a.path.cmp(&b.path))
    });
    let more_files = rows.len().saturating_sub(opts.top);
    // tmpfs files are always named (their memory does not go away): keep them past --top.
    let mut kept = Vec::new();
    for (i, r) in rows.into_iter().enumerate() {
        if i < opts.top || r.tmpfs {
            kept.push(r);
        }
    }
    let unnamed_bytes = match (file_bytes, charged_here_in_files_bytes) {
        (Some(f), Some(c)) => Some(f as i64 - c as i64),
        _ => None,
    };
    let mut likely = String::from(
        "files read or written and then closed by processes that are gone or no longer hold them (logs, package installs, build outputs, image layers pulled), outside the walked mounts: name their directories with --path",
    );
    if found.truncated.is_some() {
        likely.push_str("; the walk was cut short (raise --max-files/--max-time)");
    }
    if shmem_bytes.is_some_and(|s| s > 0) {
        likely.push_str(
            "; shmem not on a walked tmpfs: SysV segments, shared anonymous memory, memfd of exited processes",
        );
    }
    likely.push_str("; pages of dying child cgroups count here too (see `memlens zombies --why`)");
    CacheReport {
        cgroup: path.to_string(),
        name: name_of(path),
        version: h.version.number(),
        file_bytes,
        file_source,
        shmem_bytes,
        residency_source: if use_cachestat {
            "cachestat(2): nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted × page size".into()
        } else {
            "mincore(2) on a read-only shared mapping (no cachestat before 6.5: dirty, writeback and evicted unavailable)".into()
        },
        ownership_unavailable: own_err,
        files: kept,
        more_files,
        charged_here_in_files_bytes,
        unnamed_bytes,
        unnamed_likely: likely,
        search: Search {
            pids: pids.len(),
            candidates: found.files.len(),
            walked: found.walked,
            truncated: found.truncated,
        },
        scan: Scan {
            seconds: t0.elapsed().as_secs_f64(),
            files_scanned: scanned,
            major_faults: majf,
            minor_faults: minf,
            unresolved_pages: unres,
        },
        problems,
    }
}

/// One cgroup's share of a dropped file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropOwner {
    /// The owner (as in [`Owner`]).
    pub owner: Owner,
    /// Bytes of the file charged to it after the drop.
    pub after_bytes: u64,
    /// Its page cache counter before and after (memory.stat file / cache).
    pub file_counter_before_bytes: Option<u64>,
    /// After.
    pub file_counter_after_bytes: Option<u64>,
}

/// What `cache --drop FILE` did to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// The file.
    pub path: String,
    /// Cached before.
    pub cached_before_bytes: u64,
    /// Cached after.
    pub cached_after_bytes: u64,
    /// Freed (before − after).
    pub freed_bytes: u64,
    /// Dirty pages before (not dropped: write-back is started).
    pub dirty_before_bytes: Option<u64>,
    /// Who was charged (before), and after.
    pub owners: Vec<DropOwner>,
    /// Why some pages stayed.
    pub note: Option<String>,
    /// Why nothing could be done (the file cannot be opened, is not a regular file...).
    pub error: Option<String>,
}

fn file_counter(root: &Root, h: &Hierarchy, cg: &Option<String>) -> Option<u64> {
    let p = cg.as_deref()?;
    let c = read::read_cgroup(root, h, p, Level::Overview).ok()?;
    Breakdown::of(&c).file.bytes
}

/// `memlens cache --drop FILE...` (live system): POSIX_FADV_DONTNEED on each named file.
/// Writes nothing else; the files are opened read-only.
pub fn drop_files(root: &Root, h: &Hierarchy, files: &[PathBuf]) -> Vec<Dropped> {
    let kpage = Kpage::open(root).ok();
    let inodes = cgroup_inodes(root, h);
    let ps = page_size();
    let mut out = Vec::new();
    for path in files {
        let shown = path.display().to_string();
        let fail = |error: String| Dropped {
            path: shown.clone(),
            cached_before_bytes: 0,
            cached_after_bytes: 0,
            freed_bytes: 0,
            dirty_before_bytes: None,
            owners: Vec::new(),
            note: None,
            error: Some(error),
        };
        let real = root.real_path(path).unwrap_or_else(|| path.clone());
        let f = match pagecache::open(&real) {
            Ok(f) => f,
            Err(e) => {
                out.push(fail(format!("cannot open: {e}")));
                continue;
            }
        };
        let size = match f.metadata() {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => {
                out.push(fail("not a regular file".into()));
                continue;
            }
            Err(e) => {
                out.push(fail(format!("cannot stat: {e}")));
                continue;
            }
        };
        let mut cs = true;
        let before = match scan_file(&f, size, kpage.as_ref(), &mut cs) {
            Ok(s) => s,
            Err(e) => {
                out.push(fail(format!("cannot read its residency: {e}")));
                continue;
            }
        };
        let owners_before: Vec<(u64, Option<String>, Option<u64>)> = before
            .by_memcg
            .keys()
            .map(|ino| {
                let cg = inodes.get(ino).cloned();
                let fc = file_counter(root, h, &cg);
                (*ino, cg, fc)
            })
            .collect();
        let tmpfs = pagecache::is_tmpfs(&f);
        if let Err(e) = pagecache::drop_clean(&f) {
            out.push(fail(format!("posix_fadvise(POSIX_FADV_DONTNEED): {e}")));
            continue;
        }
        let after = scan_file(&f, size, kpage.as_ref(), &mut cs).ok();
        let after_cached = after.as_ref().map_or(0, |a| a.residency.cached);
        let mut owners = Vec::new();
        for (ino, cg, fc) in owners_before {
            let n = before.by_memcg.get(&ino).copied().unwrap_or(0);
            let a = after
                .as_ref()
                .and_then(|a| a.by_memcg.get(&ino).copied())
                .unwrap_or(0);
            owners.push(DropOwner {
                owner: Owner {
                    name: cg.as_deref().and_then(name_of),
                    cgroup: cg.clone(),
                    memcg_inode: ino,
                    bytes: n * ps,
                },
                after_bytes: a * ps,
                file_counter_before_bytes: fc,
                file_counter_after_bytes: file_counter(root, h, &cg),
            });
        }
        owners.sort_by_key(|o| std::cmp::Reverse(o.owner.bytes));
        let note = if tmpfs && after_cached > 0 {
            Some("tmpfs: the pages are the file's only copy; they go when the file is deleted (or swapped), not with DONTNEED".into())
        } else if after_cached > 0 {
            Some("pages left: dirty ones (their write-back was started; drop again once it is done) and pages mapped by a process".into())
        } else {
            None
        };
        out.push(Dropped {
            path: shown,
            cached_before_bytes: before.residency.cached * ps,
            cached_after_bytes: after_cached * ps,
            freed_bytes: before.residency.cached.saturating_sub(after_cached) * ps,
            dirty_before_bytes: before.residency.dirty.map(|d| d * ps),
            owners,
            note,
            error: None,
        });
    }
    out
}
