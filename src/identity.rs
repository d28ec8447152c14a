//! What people call a cgroup: container runtime and ID, Kubernetes pod UID and QoS class,
//! read from the cgroup path alone (cgroupfs and systemd drivers of docker, containerd,
//! CRI-O and podman). Names (pod name, container name, image) come from the node's files and
//! are added by the callers that have them.

use serde::Serialize;

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
    }
}
