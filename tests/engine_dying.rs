//! issue 18 with a real container engine (our own dockerd, tests/engine): `cache` names a
//! file a container wrote into its writable layer (an overlay file, seen through the
//! process's fd) as charged to it; once the container is stopped (its cgroup removed, its
//! memcg dying, its layer still on disk) `zombies --why` names the same file under the
//! layer's host path, found as the stopped container's writable layer.
//!
//! kdamond (a DAMON pageout scheme on this host) may reclaim some of the cold cache while the
//! test runs: the bytes are checked against what the kernel says at the same moment, or as a
//! share of what was written.

mod common;
mod engine;

use engine::Engine;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

#[test]
fn overlay_files_and_a_stopped_containers_layer() {
    let Some(e) = Engine::docker() else { return };
    let name = format!("mlt-pin-{}", std::process::id());
    e.workload(
        &name,
        &["--memory", "256m"],
        &["write=/var/pin:40M", "open=/var/pin"],
    );
    let id = e.ok(&["inspect", "-f", "{{.Id}}", &name]);
    // The running container: its overlay file, open by its process, charged to it.
    let v = e.memlens_json(&["cache", &name]);
    let files = v["files"].as_array().cloned().unwrap_or_default();
    let f = files
        .iter()
        .find(|f| f["path"] == "/var/pin")
        .unwrap_or_else(|| panic!("/var/pin not listed as the process sees it: {v:#}"));
    assert!(
        f["found"].as_str().is_some_and(|x| x.starts_with("fd ")),
        "found through the process's fd: {f}"
    );
    let cached = f["cached_bytes"].as_u64().unwrap_or(0);
    let here = f["charged_here_bytes"].as_u64().unwrap_or(0);
    assert!(cached > 20 * MIB && cached <= 42 * MIB, "{f}");
    assert!(here * 100 >= cached * 95, "charged to the container: {f}");
    assert_eq!(v["scan"]["major_faults"], 0, "{v:#}");

    // Stopped, not removed: the cgroup goes, the memcg is dying, the layer stays.
    e.ok(&["kill", &name]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (holder, file) = loop {
        let w = e.memlens_json(&["zombies", "--why"]);
        let hit = w["why"]["holders"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|h| {
                h["files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|f| {
                        f["path"]
                            .as_str()
                            .is_some_and(|p| p.ends_with("/diff/var/pin"))
                    })
                    .map(|f| (h.clone(), f.clone()))
            });
        if let Some(x) = hit {
            break x;
        }
        assert!(
            Instant::now() < deadline,
            "the stopped container's layer file is not named: {w:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        file["found"],
        format!("writable layer of stopped container {name}"),
        "{file}"
    );
    assert!(
        file["path"]
            .as_str()
            .is_some_and(|p| p.starts_with(&e.state_root.join("overlay2").display().to_string())),
        "{file}"
    );
    let b = file["charged_bytes"].as_u64().unwrap_or(0);
    assert!(b > 10 * MIB && b <= 42 * MIB, "{file}");
    assert!(
        !holder["cgroup"].as_str().unwrap_or("").contains(&id),
        "{holder}"
    );
    let (code, out, err) = e.memlens(&["zombies", "--why"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("writable layer of stopped container"), "{out}");
    e.remove(&name);
}
