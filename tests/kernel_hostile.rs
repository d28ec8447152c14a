//! Hostile targets on the real kernel (issue 19 item 1, issue 12 item 3): paths that leave the
//! memory hierarchy, empty targets, the writer pointed outside cgroupfs, and a directory name
//! that two cgroups share.

mod common;

use common::*;

#[test]
fn paths_outside_the_hierarchy_are_refused() {
    let h = hier();
    let mp = h.mount_point.display().to_string();
    for t in [
        "../",
        "..",
        "/../../../../etc",
        "/..",
        "./..",
        "",
        "  ",
        &format!("{mp}/../../../../etc"),
        &format!("{mp}/.."),
    ] {
        let (code, out, err) = run(&["show", t]);
        assert_eq!(
            code, 2,
            "show {t:?} must be refused; stdout:\n{out}\nstderr:\n{err}"
        );
        assert!(out.is_empty(), "show {t:?} printed a report:\n{out}");
        assert!(!err.is_empty(), "show {t:?}: no message");
    }
    let (code, _, err) = run(&["show", ""]);
    assert_eq!(code, 2);
    assert!(err.contains("empty target"), "{err}");
    let (_, _, err) = run(&["show", "/../../etc"]);
    assert!(err.contains("`..`"), "{err}");
}

#[test]
fn the_writer_never_leaves_cgroupfs_nor_creates_files() {
    let h = hier();
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    let name = tmp
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // Every spelling that used to reach /tmp/NAME/memory.force_empty.
    let depth = h.mount_point.components().count();
    let up = "../".repeat(depth + 2);
    for t in [
        format!("/{up}tmp/{name}"),
        format!("{}/{up}tmp/{name}", h.mount_point.display()),
        format!("{up}tmp/{name}"),
    ] {
        let (code, out, err) = run(&["zombies", "--reclaim", &t]);
        assert_eq!(code, 2, "--reclaim {t:?} must be refused: {out}{err}");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "--reclaim {t:?} created {left:?}");
    }
    // A real cgroup of ours: the write goes to its existing file; nothing is created.
    let cg = cgroup("hostile-writer");
    let before: Vec<_> = std::fs::read_dir(cg.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let (code, out, err) = run(&["zombies", "--reclaim", cg.path()]);
    if h.version == memlens::model::Version::V2 && !release().at_least(5, 19) {
        // No memory.reclaim before 5.19 (5.10 guest): the writer must not create it either;
        // memlens says so and gives up (exit 1).
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains("memory.reclaim is missing") && err.contains("nothing was written"),
            "{err}"
        );
        assert!(!cg.dir().join("memory.reclaim").exists());
    } else {
        assert_eq!(code, 0, "{out}{err}");
    }
    let after: Vec<_> = std::fs::read_dir(cg.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_directory_name_two_cgroups_share_is_ambiguous() {
    let a = cgroup("dup-a");
    let b = cgroup("dup-b");
    let name = format!("memlens-test-dup-{}", std::process::id());
    let _ca = a.create_child(&name).unwrap();
    let _cb = b.create_child(&name).unwrap();
    let (code, out, err) = run(&["show", &name]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("ambiguous"), "{err}");
    assert!(err.contains(&format!("{}/{name}", a.path())), "{err}");
    assert!(err.contains(&format!("{}/{name}", b.path())), "{err}");
    // The full path still names one of them.
    let (code, _, err) = run(&["show", &format!("{}/{name}", a.path())]);
    assert_eq!(code, 0, "{err}");
}

/// issue 19 item 14: a capture records what `zombies --from` needs (/proc/cgroups on v1, the
/// root's cgroup.stat on v2), so the dying count is computed from it, not blamed on the kernel.
#[test]
fn zombies_from_a_capture_counts_dying_cgroups() {
    let cg = cgroup("capture-zombies");
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("c.tar.gz");
    let o = out.display().to_string();
    let (code, _, err) = run(&["capture", cg.path(), "-o", &o]);
    assert_eq!(code, 0, "{err}");
    // The metadata lists every file (so a file lost later is named).
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&out).unwrap(),
    ));
    let meta = ar
        .entries()
        .unwrap()
        .flatten()
        .find(|e| e.path().is_ok_and(|p| p.ends_with("memlens-capture.json")))
        .map(|mut e| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            s
        })
        .unwrap();
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert!(
        meta["paths"].as_array().is_some_and(|a| a.iter().any(
            |p| p == "/proc/cgroups" || p.as_str().is_some_and(|p| p.ends_with("cgroup.stat"))
        )),
        "{meta}"
    );
    let v = json(&["zombies", "--from", &o]);
    let h = &v["hierarchies"][0];
    assert!(
        h["dying"].is_u64(),
        "dying not counted from the capture: {h}"
    );
    let src = h["dying_source"].as_str().unwrap_or("");
    assert!(
        src.contains("/proc/cgroups") || src.contains("cgroup.stat"),
        "{src}"
    );
}
