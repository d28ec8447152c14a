//! `memlens zombies --why`: which files keep dying memcgs alive.
//!
//! A removed memcg stays (dying, offline) while pages are charged to it; each cached page
//! holds a reference (Documentation/admin-guide/cgroup-v2.rst "Memory Ownership": "a memory
//! area … stays charged to the cgroup until the area is released"). /proc/kpagecgroup does
//! not show a dying memcg: for a page charged to one it gives the inode of the nearest online
//! ancestor (`page_cgroup_ino` walks up past offline memcgs; checked on 6.18). So the pages of
//! dying memcgs are found per live ancestor P:
//!
//! - how much: P's page cache minus that of its live children minus P's own (v1: memory.stat
//!   `total_cache − cache − Σ children total_cache`; v2, whose memory.stat is hierarchical
//!   only: `file − Σ children file`, P's own assumed 0 when P has no processes, as the v2
//!   no-internal-process rule makes the norm),
//! - which files: candidate files whose resident pages kpagecgroup reports as P's. When P
//!   holds page cache of its own (v1 `cache` > 0, the root, a v2 cgroup with processes) those
//!   pages may be P's own: the file is named "charged to P or to its dying descendants".
//!
//! What no candidate explains is counted, not hidden. Page cache is not the only pin: swap
//! entries, and on v2 an inode the memcg dirtied (its cgroup-writeback association holds a
//! reference until the inode is switched to another wb or evicted; an inode still dirty at
//! rmdir stayed attached in the 6.1 VM after its pages were dropped) keep a memcg dying too.

use crate::cache::{cgroup_inodes, scan_file};
use crate::cgroup::read::{self, Level};
use crate::cgroup::walk;
use crate::model::{Hierarchy, Version};
use crate::pagecache::{self, candidates};
use crate::proc::kpage::{Kpage, page_size};
use crate::sys::Root;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

/// Directories checked by default (those that exist): logs, temporary files, runtime state,
/// container logs and kubelet volumes (emptyDir).
pub const DEFAULT_DIRS: &[&str] = &[
    "/var/log",
    "/tmp",
    "/var/tmp",
    "/run",
    "/dev/shm",
    "/var/lib/docker/containers",
    "/var/lib/containers/storage/overlay-containers",
    "/var/log/pods",
    "/var/lib/kubelet/pods",
];

/// A file holding pages of dying memcgs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinningFile {
    /// The path.
    pub path: String,
    /// How it was found.
    pub found: String,
    /// Resident bytes that kpagecgroup reports as the holder's.
    #[serde(rename = "charged_bytes")]
    pub bytes: u64,
    /// On tmpfs (dropping does not free it; deleting the file does).
    pub tmpfs: bool,
}

/// A live cgroup whose dying descendants still hold page cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// The live cgroup (nearest online ancestor of the dying ones).
    pub cgroup: String,
    /// Page cache charged to its dying descendants (see the module docs).
    pub dying_file_bytes: Option<u64>,
    /// The formula.
    pub source: String,
    /// v2 cgroup.stat nr_dying_descendants (v1 has no per-subtree count).
    pub nr_dying_descendants: Option<u64>,
    /// Its own page cache, which kpagecgroup cannot tell apart from the dying ones'
    /// (0 means every named page is a dying memcg's).
    pub own_file_bytes: Option<u64>,
    /// The files, largest first.
    pub files: Vec<PinningFile>,
    /// Bytes named by the files.
    pub named_bytes: u64,
    /// True when the holder has no page cache of its own, so every named page is a dying
    /// memcg's; false: the named pages may be the holder's own.
    pub certain: bool,
    /// `dying_file_bytes − named_bytes` (when positive): not found among the candidates.
    pub unnamed_bytes: Option<u64>,
    /// What to do.
    pub remedy: String,
}

/// The result of `memlens zombies --why`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Why {
    /// Dying memcgs (as `memlens zombies` counts them).
    pub dying: Option<u64>,
    /// How `dying` was counted.
    pub dying_source: String,
    /// The live cgroups holding dying descendants' page cache, largest first.
    pub holders: Vec<Holder>,
    /// `null` when ownership was read; otherwise why the files cannot be named.
    pub ownership_unavailable: Option<String>,
    /// Directories walked.
    pub walked: Vec<String>,
    /// Files checked.
    pub files_checked: usize,
    /// Set when a bound stopped the walk.
    pub truncated: Option<String>,
    /// Major faults during the scan (0: nothing read in).
    pub major_faults: u64,
    /// Wall time.
    pub seconds: f64,
    /// What could not be read.
    pub problems: Vec<String>,
}

struct Stat {
    file: Option<u64>,
    own: Option<u64>,
}

fn stat_of(root: &Root, h: &Hierarchy, p: &str) -> Option<Stat> {
    let cg = read::read_cgroup(root, h, p, Level::Overview).ok()?;
    let s = cg.stat.as_ref()?;
    Some(match h.version {
        Version::V1 => Stat {
            file: s.get("total_cache"),
            own: s.get("cache"),
        },
        Version::V2 => Stat {
            file: s.get("file"),
            own: None,
        },
    })
}

/// Collects `zombies --why` (live system).
pub fn collect(root: &Root, h: &Hierarchy, paths: &[PathBuf], bounds: candidates::Bounds) -> Why {
    let t0 = Instant::now();
    let mut problems = Vec::new();
    let (dying, dying_source, _, p) = crate::zombies::count(root, h);
    problems.extend(p);
    let all = walk::all_paths(root, h, "/");
    let stats: HashMap<String, Stat> = all
        .iter()
        .filter_map(|p| stat_of(root, h, p).map(|s| (p.clone(), s)))
        .collect();
    let children = |p: &str| -> Vec<&String> {
        all.iter()
            .filter(|c| {
                let parent = std::path::Path::new(c.as_str())
                    .parent()
                    .map(|x| x.to_string_lossy().into_owned());
                c.as_str() != "/" && parent.as_deref() == Some(p)
            })
            .collect()
    };
    let mut holders: BTreeMap<String, Holder> = BTreeMap::new();
    for p in &all {
        let Some(st) = stats.get(p) else { continue };
        let Some(file) = st.file else { continue };
        let kids: Option<u64> = children(p)
            .iter()
            .map(|c| stats.get(c.as_str()).and_then(|s| s.file))
            .sum();
        let has_procs = root
            .read(&read::fs_path(h, p).join("cgroup.procs"))
            .map(|t| !t.trim().is_empty())
            .unwrap_or(true);
        let (own, formula) = match h.version {
            Version::V1 => (
                st.own,
                "memory.stat total_cache − cache − Σ live children's total_cache",
            ),
            Version::V2 => (
                if p != "/" && !has_procs {
                    Some(0)
                } else {
                    None
                },
                "memory.stat file − Σ live children's file (no processes: none of its own)",
            ),
        };
        let nr = if h.version == Version::V2 {
            root.read(&read::fs_path(h, p).join("cgroup.stat"))
                .ok()
                .and_then(|t| {
                    crate::cgroup::parse::flat_keyed(&t)
                        .0
                        .get("nr_dying_descendants")
                })
        } else {
            None
        };
        let dying_file = match (kids, own, h.version) {
            (Some(k), Some(o), _) => Some(file.saturating_sub(k).saturating_sub(o)),
            // v2 root or a cgroup with processes: its own share is unknown.
            (Some(_), None, Version::V2) if nr.unwrap_or(0) > 0 => None,
            _ => continue,
        };
        if dying_file.is_some_and(|d| d < 1 << 20) && nr.unwrap_or(0) == 0 {
            continue;
        }
        holders.insert(
            p.clone(),
            Holder {
                cgroup: p.clone(),
                dying_file_bytes: dying_file,
                source: formula.to_string(),
                nr_dying_descendants: nr,
                own_file_bytes: own,
                files: Vec::new(),
                named_bytes: 0,
                certain: own == Some(0),
                unnamed_bytes: None,
                remedy: String::new(),
            },
        );
    }
    // Candidates: every process's open and mapped files, the default directories, --path.
    let mut dirs: Vec<PathBuf> = Vec::new();
    for d in DEFAULT_DIRS {
        let p = PathBuf::from(d);
        if root.real_path(&p).is_some_and(|r| r.exists()) {
            dirs.push(p);
        }
    }
    // docker's own state directory when the daemon uses another --data-root.
    let dcont = crate::identity::docker_root(root).join("containers");
    if !dirs.contains(&dcont) && root.real_path(&dcont).is_some_and(|r| r.exists()) {
        dirs.push(dcont);
    }
    let stopped = stopped_container_dirs(root, &all);
    let pids = root.pids();
    let found = candidates::collect_with(root, &pids, paths, &stopped, &dirs, false, bounds);
    problems.extend(found.problems.iter().cloned());
    let inodes = cgroup_inodes(root, h);
    let holder_ino: HashMap<u64, String> = inodes
        .iter()
        .filter(|(_, p)| holders.contains_key(*p))
        .map(|(i, p)| (*i, p.clone()))
        .collect();
    let (kpage, ownership_unavailable) = match Kpage::open(root) {
        Ok(k) => (Some(k), None),
        Err(e) => (None, Some(e)),
    };
    let ps = page_size();
    let mut major = 0;
    let mut checked = 0;
    if let Some(kp) = &kpage
        && !holder_ino.is_empty()
    {
        let mut cs = true;
        let mut not_offline_pages = 0u64;
        for c in &found.files {
            let Ok(f) = pagecache::open(&c.open) else {
                continue;
            };
            let Ok(md) = f.metadata() else { continue };
            if !md.is_file() {
                continue;
            }
            checked += 1;
            let Ok(s) = scan_file(&f, md.len(), Some(kp), &mut cs) else {
                continue;
            };
            major += s.pages.major_faults;
            for (ino, n) in &s.by_memcg {
                if *ino != 0 && !inodes.contains_key(ino) {
                    not_offline_pages += n;
                }
                if let Some(hp) = holder_ino.get(ino)
                    && let Some(hd) = holders.get_mut(hp)
                {
                    hd.files.push(PinningFile {
                        path: c.name.clone(),
                        found: c.found.clone(),
                        bytes: n * ps,
                        tmpfs: pagecache::is_tmpfs(&f),
                    });
                }
            }
        }
        if not_offline_pages > 0 {
            // rmdir only starts a memcg's offlining (css_killed_work_fn, after an RCU grace
            // period); until it ends kpagecgroup names the removed memcg itself.
            problems.push(format!(
                "{} bytes of the files' pages are charged to memcgs that are no live cgroup directory: cgroups removed moments ago that the kernel has not finished taking offline; ask again in a second",
                not_offline_pages * ps
            ));
        }
    }
    let mut out: Vec<Holder> = holders.into_values().collect();
    for hd in &mut out {
        hd.files
            .sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path)));
        // With page cache of its own, only as much as the dying share can be the dying's.
        hd.named_bytes = hd.files.iter().map(|f| f.bytes).sum();
        hd.files.truncate(50);
        hd.unnamed_bytes = hd
            .dying_file_bytes
            .map(|d| d.saturating_sub(hd.named_bytes));
        let drop = hd
            .files
            .iter()
            .filter(|f| !f.tmpfs)
            .take(3)
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>();
        let reclaim = match h.version {
            Version::V1 => "memory.force_empty",
            Version::V2 => "memory.reclaim",
        };
        hd.remedy = if hd.dying_file_bytes.is_some_and(|d| d < 1 << 20) {
            "no page cache left: what still holds them is not page cache (swap entries, on v2 an inode they dirtied that is still attached to their writeback, kernel objects); deleting or evicting those files releases them".to_string()
        } else if drop.is_empty() {
            format!(
                "reclaim the parent: `memlens zombies --reclaim {}` ({reclaim} reaches its dying descendants)",
                hd.cgroup
            )
        } else {
            format!(
                "drop the files' clean pages: `memlens cache --drop {}`; or reclaim the parent: `memlens zombies --reclaim {}` ({reclaim})",
                drop.join(" "),
                hd.cgroup
            )
        };
        if hd.own_file_bytes.is_none_or(|o| o > 0) {
            hd.remedy
                .push_str("; this cgroup has page cache of its own, which the files' pages may be");
        }
    }
    out.sort_by(|a, b| {
        b.dying_file_bytes
            .cmp(&a.dying_file_bytes)
            .then(a.cgroup.cmp(&b.cgroup))
    });
    Why {
        dying,
        dying_source,
        holders: out,
        ownership_unavailable,
        walked: found.walked,
        files_checked: checked,
        truncated: found.truncated,
        major_faults: major,
        seconds: t0.elapsed().as_secs_f64(),
        problems,
    }
}

/// The writable layers and volumes of containers that still exist but have no live cgroup
/// (stopped, not removed): the files they wrote stay cached, charged to their memcg, now
/// dying. docker: `DATA-ROOT/containers/ID` without a cgroup naming ID; its layer is
/// `image/overlay2/layerdb/mounts/ID/mount-id` -> `overlay2/MOUNT-ID/diff`, its volumes the
/// `Type: volume` sources of config.v2.json `MountPoints`. podman (containers/storage):
/// `overlay-containers/containers.json` `layer` -> `overlay/LAYER/diff`. A removed container
/// (`docker rm`) has none left to walk: its layer is deleted with it, and a deleted file's
/// pages are freed with its inode unless a process still holds it open (then its fd names
/// it). Named volumes outlive `rm`: they are walked under `volumes/` of each root.
pub fn stopped_container_dirs(root: &Root, live: &[String]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let has_cgroup = |id: &str| live.iter().any(|p| p.contains(id));
    let read_dir = |p: &std::path::Path| -> Vec<String> {
        root.real_path(p)
            .and_then(|r| std::fs::read_dir(r).ok())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = |p: &std::path::Path| -> Option<String> {
        let r = root.real_path(p)?;
        std::fs::read_to_string(r).ok()
    };
    let droot = crate::identity::docker_root(root);
    let mut ids = read_dir(&droot.join("containers"));
    ids.sort();
    for id in ids {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || has_cgroup(&id) {
            continue;
        }
        let cfg: serde_json::Value =
            text(&droot.join("containers").join(&id).join("config.v2.json"))
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
        let name = cfg["Name"]
            .as_str()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| id[..12].to_string());
        if let Some(m) = text(
            &droot
                .join("image/overlay2/layerdb/mounts")
                .join(&id)
                .join("mount-id"),
        ) {
            let m = m.trim();
            if !m.is_empty() && !m.contains('/') && m != ".." {
                out.push((
                    droot.join("overlay2").join(m).join("diff"),
                    format!("writable layer of stopped container {name}"),
                ));
            }
        }
        if let Some(mps) = cfg["MountPoints"].as_object() {
            for mp in mps.values() {
                if mp["Type"] == "volume"
                    && let Some(src) = mp["Source"].as_str()
                {
                    out.push((
                        PathBuf::from(src),
                        format!(
                            "volume {} of stopped container {name}",
                            mp["Name"].as_str().unwrap_or("?")
                        ),
                    ));
                }
            }
        }
    }
    let proot = crate::identity::podman_root(root);
    let pc: serde_json::Value = text(&proot.join("overlay-containers/containers.json"))
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    for c in pc.as_array().into_iter().flatten() {
        let (Some(id), Some(layer)) = (c["id"].as_str(), c["layer"].as_str()) else {
            continue;
        };
        if has_cgroup(id) || layer.contains('/') || layer == ".." {
            continue;
        }
        let name = c["names"][0].as_str().unwrap_or(&id[..id.len().min(12)]);
        out.push((
            proot.join("overlay").join(layer).join("diff"),
            format!("writable layer of stopped container {name}"),
        ));
    }
    // Named volumes outlive their containers.
    for (r, what) in [(&droot, "docker"), (&proot, "podman")] {
        let v = r.join("volumes");
        let mut names = read_dir(&v);
        names.sort();
        for n in names {
            let d = v.join(&n).join("_data");
            if root.real_path(&d).is_some_and(|x| x.is_dir()) {
                out.push((d, format!("{what} volume {n}")));
            }
        }
    }
    out
}
