//! `memlens capture`: write every file a report read into a `.tar.gz` support bundle, in the
//! layout of DEVELOPERS.md, so `--from` can analyse it on another machine.
//!
//! A capture leaves the node, so it carries only what its report needs ([`Scope`]): kernel
//! files under /proc and /sys; of the runtimes' container configs (which hold every
//! container's environment, command line and mounts) only the name, image and
//! `io.kubernetes.*` labels of the containers in the capture; of the kubelet's name
//! listings only the entries of the captured pods and containers; command lines only with
//! `--include-cmdline`. Everything else memlens read is withheld and listed, by path, in
//! the metadata.

use crate::identity::{Identity, is_docker_config, parse_container_log, parse_pod_dir};
use crate::sys::{CAPTURE_META, LISTING, Root};
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a capture may carry beyond the kernel's own memory files.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Container IDs whose names may be kept; `None`: every container (`capture --all`).
    pub containers: Option<HashSet<String>>,
    /// Pod UIDs whose names may be kept; `None`: every pod.
    pub pods: Option<HashSet<String>>,
    /// Keep `/proc/PID/cmdline` (`--include-cmdline`): command lines often hold secrets.
    pub include_cmdline: bool,
}

impl Scope {
    /// The scope of a capture of the cgroups `paths` (the target and its descendants):
    /// their containers and pods, read off each path (ancestors' components included, so a
    /// container's pod and a runtime's sub-cgroup's container count).
    pub fn of_paths<'a>(paths: impl IntoIterator<Item = &'a str>, include_cmdline: bool) -> Self {
        let (mut containers, mut pods) = (HashSet::new(), HashSet::new());
        for p in paths {
            let id = Identity::from_path(p);
            containers.extend(id.container_id);
            pods.extend(id.pod_uid);
        }
        Scope {
            containers: Some(containers),
            pods: Some(pods),
            include_cmdline,
        }
    }

    /// Everything (`capture --all`), command lines only when asked.
    pub fn all(include_cmdline: bool) -> Self {
        Scope {
            containers: None,
            pods: None,
            include_cmdline,
        }
    }

    fn container(&self, id: &str) -> bool {
        self.containers.as_ref().is_none_or(|s| s.contains(id))
    }

    fn pod(&self, uid: &str) -> bool {
        self.pods.as_ref().is_none_or(|s| s.contains(uid))
    }

    /// What of `(path, bytes)` may leave the node: `Ok(Some(bytes))` kept (possibly
    /// reduced), `Ok(None)` dropped silently (out of scope), `Err(reason)` withheld and
    /// listed.
    fn filter(&self, p: &Path, data: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
        let s = p.to_string_lossy();
        let comps: Vec<&str> = s.split('/').filter(|c| !c.is_empty()).collect();
        match comps.as_slice() {
            ["proc", pid, "cmdline"] if pid.bytes().all(|b| b.is_ascii_digit()) => {
                if self.include_cmdline {
                    Ok(Some(data.to_vec()))
                } else {
                    Err("command line (give --include-cmdline to keep command lines)")
                }
            }
            ["proc", _, "environ"] => Err("environment"),
            ["proc", ..] | ["sys", ..] => Ok(Some(data.to_vec())),
            ["var", "log", "pods", l] if *l == LISTING => Ok(Some(filter_listing(data, |n| {
                parse_pod_dir(n).is_some_and(|(_, _, uid)| self.pod(&uid))
            }))),
            ["var", "log", "pods", dir, l] if *l == LISTING => Ok(parse_pod_dir(dir)
                .is_some_and(|(_, _, uid)| self.pod(&uid))
                .then(|| data.to_vec())),
            ["var", "log", "containers", l] if *l == LISTING => {
                Ok(Some(filter_listing(data, |n| {
                    parse_container_log(n).is_some_and(|(_, _, _, id)| self.container(&id))
                })))
            }
            _ => {
                if let Some(id) = is_docker_config(p) {
                    return Ok(self
                        .container(id)
                        .then(|| crate::identity::reduce_docker_config(data))
                        .flatten());
                }
                if let Some(reduced) =
                    crate::identity::reduce_podman_file(p, data, &|id| self.container(id))
                {
                    return Ok(reduced);
                }
                Err("not a kernel file and not a name memlens keeps")
            }
        }
    }
}

fn filter_listing(data: &[u8], keep: impl Fn(&str) -> bool) -> Vec<u8> {
    String::from_utf8_lossy(data)
        .lines()
        .filter(|l| l.split_once('\t').is_some_and(|(_, n)| keep(n)))
        .flat_map(|l| [l, "\n"])
        .collect::<String>()
        .into_bytes()
}

/// What a capture holds: files kept, failed reads, paths withheld (with why).
pub type Selection = (
    BTreeMap<PathBuf, Vec<u8>>,
    BTreeMap<PathBuf, String>,
    BTreeMap<PathBuf, &'static str>,
);

/// The files of `root`'s recording that `scope` lets out, and the paths withheld (with why).
pub fn select(root: &Root, scope: &Scope) -> Selection {
    let (files, failures) = root.recorded();
    let mut kept = BTreeMap::new();
    let mut withheld = BTreeMap::new();
    for (p, data) in files {
        match scope.filter(&p, &data) {
            Ok(Some(d)) => {
                let p = crate::identity::canonical_names_path(&p).unwrap_or(p);
                kept.insert(p, d);
            }
            Ok(None) => {}
            Err(why) => {
                withheld.insert(p, why);
            }
        }
    }
    // A failed read of a withheld or out-of-scope file names it; keep only kernel ones.
    let failures = failures
        .into_iter()
        .filter(|(p, _)| p.starts_with("/proc") || p.starts_with("/sys"))
        .collect();
    (kept, failures, withheld)
}

/// Writes the files `root` recorded that `scope` lets out to `out` (a .tar.gz), with a
/// metadata file naming the kernel, the time, the target, the files that could not be
/// read and the ones withheld.
pub fn write(root: &Root, out: &Path, target: &str, scope: &Scope) -> io::Result<(usize, usize)> {
    let (files, failures, withheld) = select(root, scope);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let kernel = files
        .get(Path::new("/proc/sys/kernel/osrelease"))
        .map(|b| String::from_utf8_lossy(b).trim().to_string());
    let meta = serde_json::json!({
        "format": 1,
        "memlens_version": env!("CARGO_PKG_VERSION"),
        "kernel": kernel,
        "captured_at_unix": now,
        "target": target,
        "files": files.len(),
        // Every file's path: a capture read back names each one that was lost since.
        "paths": files.keys().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "unreadable": failures.iter().map(|(p, r)| (p.display().to_string(), serde_json::json!(r))).collect::<serde_json::Map<_, _>>(),
        "withheld": withheld.iter().map(|(p, r)| (p.display().to_string(), serde_json::json!(r))).collect::<serde_json::Map<_, _>>(),
    });
    let f = std::fs::File::create(out)?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, data: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(now);
        h.set_cksum();
        tar.append_data(&mut h, name, data)
    };
    let meta_bytes = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
    add(CAPTURE_META, &meta_bytes)?;
    for (p, data) in &files {
        let rel = p.strip_prefix("/").unwrap_or(p);
        add(&rel.to_string_lossy(), data)?;
    }
    tar.into_inner()?.finish()?;
    Ok((files.len(), failures.len()))
}
