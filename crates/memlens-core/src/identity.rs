//! What people call a cgroup: container runtime and ID, Kubernetes pod UID and QoS class,
//! read from the cgroup path alone (cgroupfs and systemd drivers of docker, containerd,
//! CRI-O and podman). Names (pod name, namespace, container name, image) come from the
//! node's own files, read through [`Root`] so `--from` captures and `--host-root` work:
//!
//! - kubelet's `/var/log/pods/NAMESPACE_PODNAME_PODUID/CONTAINERNAME/` directories (pod UID →
//!   namespace and pod name; present for every pod the kubelet runs, whatever the runtime);
//! - kubelet's `/var/log/containers/PODNAME_NAMESPACE_CONTAINERNAME-CONTAINERID.log` symlinks
//!   (container ID → pod, namespace, container name);
//! - docker's `/var/lib/docker/containers/ID/config.v2.json` (`Name`, `Config.Image`, and the
//!   `io.kubernetes.*` labels dockershim/cri-dockerd set);
//! - the systemd unit (`*.service`/`*.scope` component) for everything else.
//!
//! Kubernetes names are DNS labels/subdomains, which cannot contain `_`, so splitting the
//! kubelet's names on `_` is unambiguous; a container name may contain `-`, so the ID is what
//! follows the *last* `-` and must be 64 hex digits.

use crate::sys::Root;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The identity a cgroup path reveals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// `docker`, `containerd`, `cri-o`, `podman`, or `unknown` for a bare 64-hex ID.
    pub runtime: Option<&'static str>,
    /// Full container ID (64 hex digits).
    pub container_id: Option<String>,
    /// Kubernetes pod UID (with dashes).
    pub pod_uid: Option<String>,
    /// Kubernetes QoS class: `guaranteed`, `burstable`, `besteffort`.
    pub qos: Option<&'static str>,
    /// cgroup driver: `systemd` (`*.scope`/`*.slice` names) or `cgroupfs`.
    pub driver: Option<&'static str>,
    /// The systemd unit the cgroup is (the last `*.service`/`*.scope` component).
    pub unit: Option<String>,
    /// Names from the node's files ([`NodeNames`]); absent when none were found.
    pub names: Names,
}

/// What the node's files call a container or pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Names {
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Kubernetes pod name.
    pub pod: Option<String>,
    /// Kubernetes container name.
    pub container: Option<String>,
    /// Image (docker `Config.Image`).
    pub image: Option<String>,
    /// Runtime's container name (docker `Name`, without the leading `/`).
    pub runtime_name: Option<String>,
}

impl Names {
    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        *self == Names::default()
    }

    fn fill_from(&mut self, o: &Names) {
        for (mine, theirs) in [
            (&mut self.namespace, &o.namespace),
            (&mut self.pod, &o.pod),
            (&mut self.container, &o.container),
            (&mut self.image, &o.image),
            (&mut self.runtime_name, &o.runtime_name),
        ] {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
    }
}

/// A pod as the kubelet's log directory names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodName {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// Its containers' names (the subdirectories).
    pub containers: Vec<String>,
}

/// The names the node's files give, indexed by pod UID and container ID. Built once per
/// overview/collection: two directory listings plus one small JSON file per docker container
/// that is actually present in the hierarchy (callers pass the IDs they need).
#[derive(Debug, Clone, Default)]
pub struct NodeNames {
    /// Pod UID → pod.
    pub pods: HashMap<String, PodName>,
    /// Container ID → names.
    pub containers: HashMap<String, Names>,
    /// Container ID → the runtime whose files named it (`docker`, `podman`): a container
    /// started with `--cgroup-parent` has a bare-ID cgroup the path alone cannot attribute.
    pub runtimes: HashMap<String, &'static str>,
    /// Name sources that exist but could not be read (a non-root exporter: permission
    /// denied on /var/lib/docker), so a missing name is explained, not silent. A source
    /// that is absent (no kubelet, no docker) is not a problem.
    pub problems: Vec<String>,
}

/// Notes a failed read of a name source unless the source is simply absent.
fn note(problems: &mut Vec<String>, e: crate::sys::ReadError) {
    if !matches!(e, crate::sys::ReadError::Missing { .. }) {
        problems.push(format!("container names: {e}"));
    }
}

/// Parses a `/var/log/pods` entry `NAMESPACE_PODNAME_PODUID`.
pub fn parse_pod_dir(name: &str) -> Option<(String, String, String)> {
    let mut it = name.splitn(3, '_');
    let (ns, pod, uid) = (it.next()?, it.next()?, it.next()?);
    (!ns.is_empty() && !pod.is_empty() && is_uid(uid))
        .then(|| (ns.to_string(), pod.to_string(), uid.to_string()))
}

/// Parses a `/var/log/containers` entry `PODNAME_NAMESPACE_CONTAINERNAME-CONTAINERID.log`
/// into (pod, namespace, container, ID).
pub fn parse_container_log(name: &str) -> Option<(String, String, String, String)> {
    let stem = name.strip_suffix(".log")?;
    let mut it = stem.splitn(3, '_');
    let (pod, ns, rest) = (it.next()?, it.next()?, it.next()?);
    let (cname, id) = rest.rsplit_once('-')?;
    (!pod.is_empty() && !ns.is_empty() && !cname.is_empty() && is_hex64(id)).then(|| {
        (
            pod.to_string(),
            ns.to_string(),
            cname.to_string(),
            id.to_string(),
        )
    })
}

/// Reads docker's `config.v2.json` into names: `Name`, `Config.Image`, and the kubelet's
/// `io.kubernetes.*` labels (dockershim, cri-dockerd).
pub fn parse_docker_config(json: &[u8]) -> Option<Names> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let s = |x: &serde_json::Value| x.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let labels = &v["Config"]["Labels"];
    Some(Names {
        runtime_name: s(&v["Name"]).map(|n| n.trim_start_matches('/').to_string()),
        image: s(&v["Config"]["Image"]),
        namespace: s(&labels["io.kubernetes.pod.namespace"]),
        pod: s(&labels["io.kubernetes.pod.name"]),
        container: s(&labels["io.kubernetes.container.name"]),
    })
}

/// Where docker keeps its state on the system `root` reads: `MEMLENS_DOCKER_ROOT` (a daemon
/// run with `--data-root`) on a live system or under `--host-root`, else /var/lib/docker. A
/// capture stores the names at the default place whatever the daemon used.
pub fn docker_root(root: &Root) -> PathBuf {
    env_root(root, "MEMLENS_DOCKER_ROOT", DOCKER_ROOT)
}

/// Where podman (containers/storage) keeps its state: `MEMLENS_PODMAN_ROOT` (podman
/// `--root`), else /var/lib/containers/storage; as [`docker_root`].
pub fn podman_root(root: &Root) -> PathBuf {
    env_root(root, "MEMLENS_PODMAN_ROOT", PODMAN_ROOT)
}

const DOCKER_ROOT: &str = "/var/lib/docker";
const PODMAN_ROOT: &str = "/var/lib/containers/storage";
/// containers/storage keeps one `DRIVER-containers/containers.json`; these are its drivers.
const PODMAN_DRIVERS: [&str; 4] = ["overlay", "vfs", "btrfs", "zfs"];

fn env_root(root: &Root, var: &str, default: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !root.is_capture() && !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(default),
    }
}

/// The container ID of a docker `.../containers/ID/config.v2.json` path.
pub fn is_docker_config(p: &Path) -> Option<&str> {
    let mut it = p.iter().rev().filter_map(|c| c.to_str());
    let (file, id, dir) = (it.next()?, it.next()?, it.next()?);
    (file == "config.v2.json" && dir == "containers" && is_hex64(id)).then_some(id)
}

/// Reduces a docker config.v2.json to what memlens reads from it ([`parse_docker_config`]):
/// `Name`, `Config.Image` and the `io.kubernetes.*` labels. The rest (`Env`, `Args`,
/// `Path`, mounts, every other label) never leaves the node in a capture. `None` when the
/// file is not JSON (then nothing of it is kept).
pub fn reduce_docker_config(json: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let labels: serde_json::Map<String, serde_json::Value> = v["Config"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("io.kubernetes."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let out = serde_json::json!({
        "ID": v["ID"],
        "Name": v["Name"],
        "Config": {"Image": v["Config"]["Image"], "Labels": labels},
    });
    serde_json::to_vec(&out).ok()
}

/// For a podman `DRIVER-containers/containers.json`: `Some` with the file reduced to the
/// containers `keep` accepts, each with only its ID, names and image name (see
/// [`parse_podman_containers`]); `None` for any other path.
pub fn reduce_podman_file(
    p: &Path,
    json: &[u8],
    keep: &dyn Fn(&str) -> bool,
) -> Option<Option<Vec<u8>>> {
    if !is_podman_containers(p) {
        return None;
    }
    let kept: Vec<serde_json::Value> = parse_podman_containers(json)
        .into_iter()
        .filter(|(id, _)| keep(id))
        .map(|(id, n)| {
            let meta = serde_json::json!({"image-name": n.image, "name": n.runtime_name});
            serde_json::json!({
                "id": id,
                "names": n.runtime_name.into_iter().collect::<Vec<_>>(),
                "metadata": meta.to_string(),
            })
        })
        .collect();
    Some(serde_json::to_vec(&kept).ok())
}

/// Whether `p` is a containers/storage `DRIVER-containers/containers.json`.
pub fn is_podman_containers(p: &Path) -> bool {
    let mut it = p.iter().rev().filter_map(|c| c.to_str());
    matches!((it.next(), it.next()), (Some("containers.json"), Some(d)) if d.strip_suffix("-containers").is_some_and(|drv| PODMAN_DRIVERS.contains(&drv)))
}

/// The canonical place of a names file in a capture: docker configs and podman's
/// containers.json under the default roots, whatever `--data-root`/`--root` the daemon used,
/// so `--from` finds them without the environment of the node.
pub fn canonical_names_path(p: &Path) -> Option<PathBuf> {
    if let Some(id) = is_docker_config(p) {
        return Some(
            Path::new(DOCKER_ROOT)
                .join("containers")
                .join(id)
                .join("config.v2.json"),
        );
    }
    if is_podman_containers(p) {
        let drv = p.parent()?.file_name()?;
        return Some(Path::new(PODMAN_ROOT).join(drv).join("containers.json"));
    }
    None
}

/// Reads containers/storage's containers.json (podman): per container its ID, first name
/// and the image name from its `metadata` (a JSON string: `image-name`).
pub fn parse_podman_containers(json: &[u8]) -> Vec<(String, Names)> {
    let Ok(serde_json::Value::Array(v)) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Vec::new();
    };
    v.iter()
        .filter_map(|c| {
            let id = c["id"].as_str().filter(|i| is_hex64(i))?.to_string();
            let meta: serde_json::Value = c["metadata"]
                .as_str()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_default();
            let name = c["names"][0]
                .as_str()
                .or_else(|| meta["name"].as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            let image = meta["image-name"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            Some((
                id,
                Names {
                    runtime_name: name,
                    image,
                    ..Names::default()
                },
            ))
        })
        .collect()
}

impl NodeNames {
    /// Reads the kubelet's log directories and, for each docker container in `docker_ids`,
    /// its config.v2.json. Missing directories (no kubelet, no docker) give no names.
    pub fn load<'a>(root: &Root, docker_ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut n = NodeNames::default();
        let pods = root
            .subdirs(Path::new("/var/log/pods"))
            .unwrap_or_else(|e| {
                note(&mut n.problems, e);
                Vec::new()
            });
        for e in pods {
            if let Some((namespace, name, uid)) = parse_pod_dir(&e) {
                let containers = root
                    .subdirs(&Path::new("/var/log/pods").join(&e))
                    .unwrap_or_default();
                n.pods.insert(
                    uid.clone(),
                    PodName {
                        namespace,
                        name,
                        uid,
                        containers,
                    },
                );
            }
        }
        let logs = root
            .entries(Path::new("/var/log/containers"))
            .unwrap_or_else(|e| {
                note(&mut n.problems, e);
                Vec::new()
            });
        for e in logs {
            if let Some((pod, ns, c, id)) = parse_container_log(&e) {
                n.containers.insert(
                    id,
                    Names {
                        namespace: Some(ns),
                        pod: Some(pod),
                        container: Some(c),
                        ..Names::default()
                    },
                );
            }
        }
        let mut unnamed = Vec::new();
        for id in docker_ids {
            let found = Self::docker_checked(root, id).unwrap_or_else(|e| {
                note(&mut n.problems, e);
                None
            });
            if let Some(d) = found {
                n.containers
                    .entry(id.to_string())
                    .or_default()
                    .fill_from(&d);
                n.runtimes.insert(id.to_string(), "docker");
            } else {
                unnamed.push(id);
            }
        }
        // podman keeps every container in one file: read it only when docker did not name one.
        if !unnamed.is_empty() {
            let (pods, probs) = Self::podman_checked(root);
            n.problems.extend(probs);
            for id in unnamed {
                if let Some(p) = pods.get(id) {
                    n.containers.entry(id.to_string()).or_default().fill_from(p);
                }
            }
        }
        n
    }

    /// podman's names of every container in its storage (containers.json of each driver).
    pub fn podman(root: &Root) -> HashMap<String, Names> {
        Self::podman_checked(root).0
    }

    /// [`NodeNames::podman`] and the files that exist but could not be read.
    fn podman_checked(root: &Root) -> (HashMap<String, Names>, Vec<String>) {
        let base = podman_root(root);
        let mut out = HashMap::new();
        let mut problems = Vec::new();
        for drv in PODMAN_DRIVERS {
            let f = base
                .join(format!("{drv}-containers"))
                .join("containers.json");
            match root.read_bytes(&f) {
                Ok(b) => out.extend(parse_podman_containers(&b)),
                Err(e) => note(&mut problems, e),
            }
        }
        (out, problems)
    }

    /// docker's names for one container ID (reads its config.v2.json).
    pub fn docker(root: &Root, id: &str) -> Option<Names> {
        Self::docker_checked(root, id).ok().flatten()
    }

    /// [`NodeNames::docker`]: `Ok(None)` when there is no such config (not docker's, or
    /// no docker), `Err` when it exists but cannot be read.
    pub fn docker_checked(root: &Root, id: &str) -> Result<Option<Names>, crate::sys::ReadError> {
        if !is_hex64(id) {
            return Ok(None);
        }
        let f = docker_root(root)
            .join("containers")
            .join(id)
            .join("config.v2.json");
        match root.read_bytes(&f) {
            Ok(b) => match parse_docker_config(&b) {
                Some(n) => Ok(Some(n)),
                None => Err(crate::sys::ReadError::parse(&f, "not docker's JSON config")),
            },
            Err(crate::sys::ReadError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds the names to `id`, and the runtime whose files named a container its path left
    /// `unknown`.
    pub fn apply(&self, id: &mut Identity) {
        id.names = self.names_for(id);
        if matches!(id.runtime, None | Some("unknown"))
            && let Some(rt) = id.container_id.as_ref().and_then(|c| self.runtimes.get(c))
        {
            id.runtime = Some(rt);
        }
    }

    /// The names for an identity: the container's (by ID) and its pod's (by UID).
    pub fn names_for(&self, id: &Identity) -> Names {
        let mut out = id
            .container_id
            .as_ref()
            .and_then(|c| self.containers.get(c))
            .cloned()
            .unwrap_or_default();
        if let Some(p) = id.pod_uid.as_ref().and_then(|u| self.pods.get(u)) {
            out.fill_from(&Names {
                namespace: Some(p.namespace.clone()),
                pod: Some(p.name.clone()),
                ..Names::default()
            });
        }
        out
    }

    /// Pods whose name matches `target` (`NAMESPACE/POD` or `POD`).
    pub fn find_pods(&self, target: &str) -> Vec<&PodName> {
        let (ns, name) = match target.split_once('/') {
            Some((ns, n)) => (Some(ns), n),
            None => (None, target),
        };
        let mut v: Vec<&PodName> = self
            .pods
            .values()
            .filter(|p| p.name == name && ns.is_none_or(|ns| p.namespace == ns))
            .collect();
        v.sort_by(|a, b| (&a.namespace, &a.uid).cmp(&(&b.namespace, &b.uid)));
        v
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_uid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

impl Identity {
    /// Reads the identity off a cgroup path such as
    /// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`.
    pub fn from_path(path: &str) -> Self {
        let mut id = Identity::default();
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        for (i, c) in comps.iter().enumerate() {
            let prev = if i > 0 { comps[i - 1] } else { "" };
            if c.ends_with(".service") || c.ends_with(".scope") {
                id.unit = Some(c.to_string());
            }
            // systemd driver: PREFIX-ID.scope
            if let Some(stem) = c.strip_suffix(".scope") {
                for (prefix, rt) in [
                    ("docker-", "docker"),
                    ("cri-containerd-", "containerd"),
                    ("crio-", "cri-o"),
                    ("libpod-", "podman"),
                ] {
                    if let Some(cid) = stem.strip_prefix(prefix)
                        && is_hex64(cid)
                    {
                        id.runtime = Some(rt);
                        id.container_id = Some(cid.to_string());
                        id.driver = Some("systemd");
                    }
                }
            } else if let Some(stem) = c.strip_suffix(".slice") {
                if let Some(p) = stem.rsplit('-').next().and_then(|l| l.strip_prefix("pod")) {
                    let uid = p.replace('_', "-");
                    if is_uid(&uid) {
                        id.pod_uid = Some(uid);
                        id.driver = Some("systemd");
                    }
                }
                if stem == "kubepods" || stem.starts_with("kubepods-") {
                    id.qos = Some(if stem.contains("burstable") {
                        "burstable"
                    } else if stem.contains("besteffort") {
                        "besteffort"
                    } else {
                        "guaranteed"
                    });
                }
            } else if is_hex64(c) {
                // cgroupfs driver: /docker/ID, /kubepods/.../podUID/ID, /libpod_parent/libpod-ID
                id.container_id = Some(c.to_string());
                id.driver.get_or_insert("cgroupfs");
                id.runtime = Some(if prev == "docker" {
                    "docker"
                } else {
                    "unknown"
                });
            } else if let Some(cid) = c.strip_prefix("libpod-")
                && is_hex64(cid)
            {
                id.runtime = Some("podman");
                id.container_id = Some(cid.to_string());
                id.driver.get_or_insert("cgroupfs");
            } else if let Some(uid) = c.strip_prefix("pod")
                && is_uid(uid)
            {
                id.pod_uid = Some(uid.to_string());
                id.driver.get_or_insert("cgroupfs");
            } else if *c == "kubepods" {
                id.qos = Some("guaranteed");
            } else if prev == "kubepods" && (*c == "burstable" || *c == "besteffort") {
                id.qos = Some(if *c == "burstable" {
                    "burstable"
                } else {
                    "besteffort"
                });
            }
        }
        id
    }

    /// The identity of `path` with the node's names added.
    pub fn named(path: &str, names: &NodeNames) -> Self {
        let mut id = Identity::from_path(path);
        names.apply(&mut id);
        id
    }

    /// The best human name: `namespace/pod/container`, `namespace/pod`, the runtime's name,
    /// then the short ID form or the systemd unit. `None` when nothing names it.
    pub fn display_name(&self) -> Option<String> {
        let n = &self.names;
        match (&n.namespace, &n.pod, &n.container) {
            (Some(ns), Some(p), Some(c)) if self.container_id.is_some() => {
                return Some(format!("{ns}/{p}/{c}"));
            }
            (Some(ns), Some(p), _) if self.container_id.is_none() => {
                return Some(format!("{ns}/{p}"));
            }
            _ => {}
        }
        if let Some(r) = &n.runtime_name {
            return Some(r.clone());
        }
        self.short().or_else(|| self.unit.clone())
    }

    /// True for a cgroup that is a container (has a container ID).
    pub fn is_container(&self) -> bool {
        self.container_id.is_some()
    }

    /// A short human name: `docker 0123456789ab`, `pod 1234-...`, or `None`.
    pub fn short(&self) -> Option<String> {
        match (&self.container_id, &self.pod_uid) {
            (Some(c), _) => Some(format!(
                "{} {}",
                self.runtime.unwrap_or("container"),
                &c[..12.min(c.len())]
            )),
            (None, Some(p)) => Some(format!("pod {p}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const ID: &str = "fda7bbf297d9300894c10c5514c32c70a50987ae99cad5731234058d9f6e2b7f";
    const UID: &str = "0f2a4c6e-1b3d-4f5a-8c7e-9d0b1a2c3e4f";

    #[test]
    fn runtimes_and_drivers() {
        let i = Identity::from_path(&format!("/docker/{ID}"));
        assert_eq!((i.runtime, i.driver), (Some("docker"), Some("cgroupfs")));
        let i = Identity::from_path(&format!("/system.slice/docker-{ID}.scope"));
        assert_eq!(
            (i.runtime, i.driver, i.container_id.as_deref()),
            (Some("docker"), Some("systemd"), Some(ID))
        );
        let i = Identity::from_path(&format!("/kubepods/burstable/pod{UID}/{ID}"));
        assert_eq!(
            (i.qos, i.pod_uid.as_deref(), i.container_id.as_deref()),
            (Some("burstable"), Some(UID), Some(ID))
        );
        let u = UID.replace('-', "_");
        let i = Identity::from_path(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope"
        ));
        assert_eq!(
            (i.runtime, i.qos, i.pod_uid.as_deref()),
            (Some("containerd"), Some("burstable"), Some(UID))
        );
        let i = Identity::from_path(&format!(
            "/kubepods.slice/kubepods-pod{u}.slice/crio-{ID}.scope"
        ));
        assert_eq!((i.runtime, i.qos), (Some("cri-o"), Some("guaranteed")));
        let i = Identity::from_path(&format!("/machine.slice/libpod-{ID}.scope"));
        assert_eq!(i.runtime, Some("podman"));
        let i = Identity::from_path("/system.slice/sshd.service");
        assert!(!i.is_container() && i.pod_uid.is_none());
        assert_eq!(i.display_name().as_deref(), Some("sshd.service"));
    }

    #[test]
    fn kubelet_and_docker_names() {
        assert_eq!(
            parse_pod_dir(&format!("kube-system_coredns-5d78c9869d-abcde_{UID}")),
            Some((
                "kube-system".into(),
                "coredns-5d78c9869d-abcde".into(),
                UID.into()
            ))
        );
        assert_eq!(parse_pod_dir("kube-system_coredns_notauid"), None);
        assert_eq!(
            parse_container_log(&format!("web-0_default_my-app-{ID}.log")),
            Some(("web-0".into(), "default".into(), "my-app".into(), ID.into()))
        );
        assert_eq!(parse_container_log("web-0_default_app-123.log"), None);
        let n = parse_docker_config(
            br#"{"Name":"/web","Config":{"Image":"nginx:1.25","Labels":{"io.kubernetes.pod.name":"p"}}}"#,
        )
        .unwrap();
        assert_eq!(n.runtime_name.as_deref(), Some("web"));
        assert_eq!(n.image.as_deref(), Some("nginx:1.25"));
        assert_eq!(n.pod.as_deref(), Some("p"));
        assert!(parse_docker_config(b"{garbage").is_none());
    }
}
