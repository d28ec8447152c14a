//! Container identity on real memcgs named as each runtime names them (cgroupfs and systemd
//! drivers), with the node's name files from tests/fixtures/identity, read through
//! `--host-root` (a directory whose sys/ and proc/ lead to this host's, and whose var/ is the
//! fixture). Run as root with a memory cgroup controller.

mod common;
use common::*;
use memlens::cgroup::owned::OwnedCgroup;
use memlens::model::Version;
use std::path::Path;

const ID1: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const ID2: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ID3: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const ID4: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
const UID1: &str = "0f2a4c6e-1b3d-4f5a-8c7e-9d0b1a2c3e4f";
const UID2: &str = "11111111-2222-4333-8444-555555555555";

/// Creates `names` as nested children of `parent` (delegating memory on v2); returns them
/// deepest last, so dropping the vector in reverse removes children first.
fn chain(parent: &OwnedCgroup, names: &[&str]) -> Vec<OwnedCgroup> {
    let v2 = hier().version == Version::V2;
    let mut out: Vec<OwnedCgroup> = Vec::new();
    for n in names {
        let p = out.last().unwrap_or(parent);
        if v2 {
            p.write("cgroup.subtree_control", "+memory")
                .expect("delegate memory");
        }
        let c = p.create_child(n).expect("create child");
        out.push(c);
    }
    out
}

struct Layout {
    chains: Vec<Vec<OwnedCgroup>>,
}

impl Drop for Layout {
    fn drop(&mut self) {
        for c in &mut self.chains {
            while let Some(x) = c.pop() {
                drop(x);
            }
        }
    }
}

#[test]
fn runtime_layouts_get_their_names() {
    let parent = cgroup("id");
    let u2 = UID2.replace('-', "_");
    let pod2 = format!("kubepods-burstable-pod{u2}.slice");
    let cri = format!("cri-containerd-{ID3}.scope");
    let dock_scope = format!("docker-{ID4}.scope");
    let pod1 = format!("pod{UID1}");
    let _layout = Layout {
        chains: vec![
            chain(&parent, &["docker", ID1]),
            chain(&parent, &["kubepods", "burstable", &pod1, ID2]),
            chain(
                &parent,
                &["kubepods.slice", "kubepods-burstable.slice", &pod2, &cri],
            ),
            chain(&parent, &["system.slice", &dock_scope]),
        ],
    };
    // A host root: this host's /sys and /proc, the fixture's /var.
    let hr = tempfile::tempdir().expect("tmp");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/identity/var");
    if !fixture.exists() {
        // The VM runs the test binaries without the repository: the layouts were created and
        // removed above; the name files can only be checked where the fixtures are.
        eprintln!("skipped the name checks: {} is not here", fixture.display());
        return;
    }
    std::os::unix::fs::symlink("/sys", hr.path().join("sys")).unwrap();
    std::os::unix::fs::symlink("/proc", hr.path().join("proc")).unwrap();
    std::os::unix::fs::symlink(&fixture, hr.path().join("var")).unwrap();
    let hrs = hr.path().to_str().unwrap();

    let o = json(&["--host-root", hrs, "--all"]);
    let rows = o["cgroups"].as_array().expect("rows");
    let row = |suffix: &str| {
        rows.iter()
            .find(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(parent.path()) && p.ends_with(suffix))
            })
            .unwrap_or_else(|| panic!("no row ending {suffix}"))
    };
    let id = |r: &serde_json::Value, k: &str| r["identity"][k].clone();
    let names = |r: &serde_json::Value, k: &str| r["identity"]["names"][k].clone();

    // cgroupfs docker: docker's config.v2.json.
    let r = row(&format!("/docker/{ID1}"));
    assert_eq!(id(r, "runtime"), "docker");
    assert_eq!(id(r, "driver"), "cgroupfs");
    assert_eq!(names(r, "runtime_name"), "web");
    assert_eq!(names(r, "image"), "nginx:1.25-alpine");
    // cgroupfs kubelet: /var/log/containers + /var/log/pods.
    let r = row(&format!("/{pod1}/{ID2}"));
    assert_eq!(id(r, "pod_uid"), UID1);
    assert_eq!(id(r, "qos"), "burstable");
    assert_eq!(names(r, "namespace"), "default");
    assert_eq!(names(r, "pod"), "web-0");
    assert_eq!(names(r, "container"), "app");
    let r = row(&format!("/{pod1}"));
    assert_eq!(names(r, "pod"), "web-0");
    // systemd kubelet with containerd.
    let r = row(&format!("/{cri}"));
    assert_eq!(id(r, "runtime"), "containerd");
    assert_eq!(id(r, "driver"), "systemd");
    assert_eq!(id(r, "unit"), cri.as_str());
    assert_eq!(names(r, "namespace"), "kube-system");
    assert_eq!(names(r, "pod"), "coredns-5d78c9869d-abcde");
    assert_eq!(names(r, "container"), "coredns");
    // systemd docker.
    let r = row(&format!("/{dock_scope}"));
    assert_eq!(id(r, "runtime"), "docker");
    assert_eq!(names(r, "runtime_name"), "redis-cache");
    assert_eq!(names(r, "image"), "redis:7");

    // The NAME column.
    let (code, out, err) = run(&["--host-root", hrs]);
    assert_eq!(code, 0, "{err}");
    for n in [
        "default/web-0/app",
        "kube-system/coredns-5d78c9869d-abcde/coredns",
        "web",
        "redis-cache",
    ] {
        assert!(out.contains(n), "{n} not in overview:\n{out}");
    }

    // Pod names as `show` targets.
    let s = json(&["--host-root", hrs, "show", "default/web-0"]);
    assert!(
        s["cgroup"]["path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{pod1}")),
        "{}",
        s["cgroup"]["path"]
    );
    assert_eq!(s["identity"]["names"]["pod"], "web-0");
    let s = json(&["--host-root", hrs, "show", "coredns-5d78c9869d-abcde"]);
    assert!(s["cgroup"]["path"].as_str().unwrap().ends_with(&pod2));
    let (code, out, _) = run(&["--host-root", hrs, "show", "default/web-0"]);
    assert_eq!(code, 0);
    assert!(out.contains("namespace default, pod web-0"), "{out}");
    let (code, _, err) = run(&["--host-root", hrs, "show", "other/web-0"]);
    assert_eq!(code, 2, "{err}");

    // A capture keeps the names: /var/log/containers holds only symlinks and the pod log
    // directories no file memlens reads, so their listings are recorded.
    let cap = hr.path().join("names.tar.gz");
    let caps = cap.to_str().unwrap();
    let (code, _, err) = run(&["--host-root", hrs, "capture", "--all", "-o", caps]);
    assert_eq!(code, 0, "{err}");
    let o = json(&["--from", caps, "--all"]);
    let rows = o["cgroups"].as_array().expect("rows");
    let from_capture = |suffix: &str| {
        rows.iter()
            .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
            .unwrap_or_else(|| panic!("no row ending {suffix} in the capture"))
            .clone()
    };
    let r = from_capture(&format!("/{pod1}/{ID2}"));
    assert_eq!(names(&r, "pod"), "web-0");
    assert_eq!(names(&r, "container"), "app");
    let r = from_capture(&format!("/{cri}"));
    assert_eq!(names(&r, "pod"), "coredns-5d78c9869d-abcde");
    let r = from_capture(&format!("/docker/{ID1}"));
    assert_eq!(names(&r, "runtime_name"), "web");
}

#[test]
fn top_level_stays_memlens_only() {
    let h = hier();
    assert!(OwnedCgroup::create(&h, "/", "docker").is_err());
    let p = cgroup("id-names");
    let c = p.create_child("docker").expect("child inside our own");
    assert!(p.create_child("../escape").is_err());
    drop(c);
}
