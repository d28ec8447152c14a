//! Naming the target the way users think of it: a cgroup path (absolute system path, or
//! relative to the hierarchy root), a PID, a container ID or a unique prefix of one, a pod
//! UID, a pod name (`NAMESPACE/POD` or `POD`, from the kubelet's /var/log/pods), or the name
//! of a cgroup directory.

use crate::cgroup::handle::{self, PathError};
use crate::cgroup::{mount, walk};
use crate::identity::{Identity, NodeNames};
use crate::model::Hierarchy;
use crate::sys::Root;
use std::path::Path;

/// Why a target could not be resolved. Every variant is a "bad target" (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Nothing matched.
    #[error(
        "no cgroup, process, container or pod matches {0:?} (try `memlens --all` to list memory cgroups)"
    )]
    NotFound(String),
    /// A PID whose memory cgroup could not be read.
    #[error("process {pid}: {reason}")]
    Process {
        /// The PID.
        pid: String,
        /// Why.
        reason: String,
    },
    /// A path that is not a canonical cgroup path inside the mounted memory hierarchy.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Several candidates.
    #[error("{target:?} is ambiguous; it matches:\n{}", .candidates.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))]
    Ambiguous {
        /// The target as given.
        target: String,
        /// The matching cgroup paths with what matched.
        candidates: Vec<String>,
    },
}

/// Resolves `target` to a cgroup path within the hierarchy.
pub fn resolve(root: &Root, h: &Hierarchy, target: &str) -> Result<String, TargetError> {
    let t = target.trim();
    if t.is_empty() {
        return Err(PathError::Empty.into());
    }
    // A path: absolute system path under the mount point, or a hierarchy path. It must be
    // canonical (no `..`) and name a directory of the mounted hierarchy (handle.rs).
    if t.starts_with('/') || t.starts_with('.') {
        let mp = h.mount_point.to_string_lossy();
        let rel = t
            .strip_prefix(mp.as_ref())
            .filter(|r| r.is_empty() || r.starts_with('/'))
            .unwrap_or(t);
        let p = handle::canonical(rel)?;
        return match handle::verify(root, h, &p) {
            Ok(()) => Ok(p),
            Err(PathError::NotCgroup { reason, .. }) if reason.contains("does not exist") => {
                Err(TargetError::NotFound(target.into()))
            }
            Err(e) => Err(e.into()),
        };
    }
    if !t.is_empty()
        && t.bytes().all(|b| b.is_ascii_digit())
        && root.exists(Path::new(&format!("/proc/{t}")))
    {
        let p = mount::process_cgroup(root, h, t).map_err(|e| TargetError::Process {
            pid: t.into(),
            reason: e.to_string(),
        })?;
        // /proc/PID/cgroup of a capture is as hostile as a typed path: canonical, verified.
        let p = handle::canonical(&p).map_err(|e| TargetError::Process {
            pid: t.into(),
            reason: format!("its /proc/{t}/cgroup names {e}"),
        })?;
        handle::verify(root, h, &p).map_err(|e| TargetError::Process {
            pid: t.into(),
            reason: e.to_string(),
        })?;
        let cg = p;
        // Docker prints 12 hex digits, which can all be decimal digits: `14` may be a
        // container-ID prefix as well as a PID. Both live: say so rather than guess.
        let containers = Containers::load(root, h);
        let ids = containers.id_prefix(t);
        if !ids.is_empty() {
            let mut candidates = vec![format!("{cg}  (process {t})")];
            candidates.extend(ids.into_iter().map(|(p, w)| format!("{p}  ({w})")));
            return Err(TargetError::Ambiguous {
                target: target.into(),
                candidates,
            });
        }
        return Ok(cg);
    }
    // A relative cgroup path that exists as given (else perhaps a NAMESPACE/POD name).
    if t.contains('/') {
        let p = handle::canonical(t)?;
        if handle::verify(root, h, &p).is_ok() {
            return Ok(p);
        }
    }
    // A pod name (`NAMESPACE/POD` or `POD`), from the kubelet's /var/log/pods.
    let names = NodeNames::load(root, None);
    let pods = names.find_pods(t);
    if !pods.is_empty() {
        let paths = walk::all_paths(root, h, "/");
        let mut hits: Vec<(String, String)> = Vec::new();
        for pod in &pods {
            // The pod's own cgroup: the deepest component carries its UID, not a container ID.
            if let Some(p) = paths.iter().find(|p| {
                let own = Identity::from_path(p.rsplit('/').next().unwrap_or(""));
                own.container_id.is_none() && own.pod_uid.as_deref() == Some(pod.uid.as_str())
            }) {
                hits.push((
                    p.clone(),
                    format!("pod {}/{} ({})", pod.namespace, pod.name, pod.uid),
                ));
            }
        }
        match hits.len() {
            0 => {
                return Err(TargetError::NotFound(format!(
                    "{target} (pod {} is in /var/log/pods, but no memory cgroup carries its UID {})",
                    pods[0].name, pods[0].uid
                )));
            }
            1 => return Ok(hits.remove(0).0),
            _ => {
                return Err(TargetError::Ambiguous {
                    target: target.into(),
                    candidates: hits
                        .into_iter()
                        .map(|(p, w)| format!("{p}  ({w})"))
                        .collect(),
                });
            }
        }
    }
    let needle = t.to_ascii_lowercase();
    let uid_needle = needle.replace('_', "-");
    let containers = Containers::load(root, h);
    // A runtime's container name (docker/podman `--name`, current after `docker rename`).
    let named = containers.named(t);
    if !named.is_empty() {
        return one_of(target, named);
    }
    let mut hits: Vec<(String, String)> = Vec::new();
    for p in &containers.paths {
        let p = p.clone();
        let base = p.rsplit('/').next().unwrap_or("");
        // Only the deepest component that carries the ID counts: a container's children
        // (e.g. podman's `container` sub-cgroup) are not separate matches.
        let own_id = Identity::from_path(base);
        if let Some(c) = &own_id.container_id
            && c.starts_with(&needle)
        {
            hits.push((p.clone(), containers.describe(&p)));
        } else if own_id.container_id.is_none()
            && let Some(u) = &own_id.pod_uid
            && u.starts_with(&uid_needle)
            && uid_needle.len() >= 4
        {
            hits.push((p.clone(), format!("pod {u}")));
        } else if base == t {
            hits.push((p.clone(), "cgroup name".into()));
        }
    }
    match hits.len() {
        0 => Err(TargetError::NotFound(target.into())),
        1 => Ok(hits.remove(0).0),
        _ => {
            // An exact full ID or exact name wins over prefixes, if it is the only one:
            // `A/dup` and `B/dup` are ambiguous, whichever the walk met first.
            let exact: Vec<_> = hits
                .iter()
                .filter(|(p, _)| p.rsplit('/').next() == Some(t))
                .collect();
            if let [one] = exact.as_slice() {
                return Ok(one.0.clone());
            }
            if exact.len() > 1 {
                hits.retain(|(p, _)| p.rsplit('/').next() == Some(t));
            }
            Err(TargetError::Ambiguous {
                target: target.into(),
                candidates: hits
                    .into_iter()
                    .map(|(p, w)| format!("{p}  ({w})"))
                    .collect(),
            })
        }
    }
}

/// One hit is the answer; several are ambiguous (listed with what matched).
fn one_of(target: &str, mut hits: Vec<(String, String)>) -> Result<String, TargetError> {
    if hits.len() == 1 {
        return Ok(hits.remove(0).0);
    }
    Err(TargetError::Ambiguous {
        target: target.into(),
        candidates: hits
            .into_iter()
            .map(|(p, w)| format!("{p}  ({w})"))
            .collect(),
    })
}

/// The hierarchy's cgroups with the names the runtimes give their containers.
struct Containers {
    paths: Vec<String>,
    names: NodeNames,
}

impl Containers {
    fn load(root: &Root, h: &Hierarchy) -> Self {
        let paths = walk::all_paths(root, h, "/");
        let ids: Vec<String> = paths
            .iter()
            .filter_map(|p| Identity::from_path(p.rsplit('/').next().unwrap_or("")).container_id)
            .collect();
        let names = NodeNames::load(root, ids.iter().map(String::as_str));
        Containers { paths, names }
    }

    /// The container cgroups (deepest component carrying the ID) whose ID starts with `prefix`.
    fn id_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let needle = prefix.to_ascii_lowercase();
        self.paths
            .iter()
            .filter(|p| {
                Identity::from_path(p.rsplit('/').next().unwrap_or(""))
                    .container_id
                    .is_some_and(|c| c.starts_with(&needle))
            })
            .map(|p| (p.clone(), self.describe(p)))
            .collect()
    }

    /// The container cgroups the runtime calls `name`.
    fn named(&self, name: &str) -> Vec<(String, String)> {
        self.paths
            .iter()
            .filter(|p| {
                let own = Identity::from_path(p.rsplit('/').next().unwrap_or(""));
                own.container_id.is_some()
                    && self.names.names_for(&own).runtime_name.as_deref() == Some(name)
            })
            .map(|p| (p.clone(), self.describe(p)))
            .collect()
    }

    /// `docker container ID, name NAME, image IMAGE` for a candidate list.
    fn describe(&self, p: &str) -> String {
        let id = Identity::named(p, &self.names);
        let mut s = format!(
            "{} container {}",
            id.runtime.unwrap_or("?"),
            id.container_id.as_deref().unwrap_or("?")
        );
        if let Some(n) = id.display_name().filter(|n| Some(n) != id.short().as_ref()) {
            s.push_str(&format!(", name {n}"));
        }
        if let Some(i) = &id.names.image {
            s.push_str(&format!(", image {i}"));
        }
        s
    }
}
