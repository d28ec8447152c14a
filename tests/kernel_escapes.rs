//! Hostile names on the real kernel (issue 19 items 4 and 5): a cgroup directory and a process
//! whose names carry terminal escapes are printed escaped in every human output, exactly in
//! JSON (the `oom` side is in tests/oom_hostile.rs).

mod common;

use common::*;
use memlens::cgroup::owned::OwnedCgroup;
use std::process::{Command, Stdio};

const ESC_NAME: &str = "\x1b[31mRED\x1b]0;title\x07";

fn no_raw_controls(what: &str, out: &str) {
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "{what}: a raw control character reached the terminal:\n{out:?}"
    );
}

#[test]
fn escape_sequences_in_cgroup_and_process_names_are_escaped() {
    let h = hier();
    let name = format!("memlens-test-esc-{}-{ESC_NAME}", std::process::id());
    let cg = OwnedCgroup::create(&h, "/", &name).unwrap();
    // A process named with an escape: comm is the basename of the path it was exec'd by.
    let d = tempfile::tempdir().unwrap();
    // memlens's own workload (busybox's sleep would not know its applet name in the VM).
    let exe = d.path().join("zz\x1b[2Jzz");
    std::os::unix::fs::symlink(bin(), &exe).unwrap();
    let mut cmd = Command::new(&exe);
    cmd.args(["__workload", "sleep=30000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cg.join_before_exec(&mut cmd).unwrap();
    let child = Proc(cmd.spawn().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let path = cg.path().to_string();
    for args in [
        vec!["--all", "--color", "never"],
        vec!["show", &path, "--color", "never"],
        vec!["ps", &path, "--color", "never"],
        vec!["explain", &path, "--color", "never"],
        vec!["zombies", "--color", "never"],
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        no_raw_controls(&format!("{args:?}"), &out);
        no_raw_controls(&format!("{args:?} stderr"), &err);
        if args[0] != "zombies" {
            assert!(
                out.contains("\\x1b[31mRED"),
                "{args:?}: name not shown escaped:\n{out}"
            );
        }
    }
    let (_, out, _) = run(&["ps", &path]);
    assert!(
        out.contains("zz\\x1b[2Jzz"),
        "process name not escaped:\n{out}"
    );
    // With colour on, memlens's own colours stay, the name's do not.
    let (_, out, _) = run(&["show", &path, "--color", "always"]);
    assert!(!out.contains("\x1b[31mRED"), "the name coloured the output");
    // JSON: the exact bytes, escaped as JSON.
    let v = json(&["show", &path]);
    assert_eq!(
        v["cgroup"]["path"].as_str(),
        Some(path.as_str()),
        "{}",
        v["cgroup"]
    );
    let procs = v["processes"].to_string();
    assert!(procs.contains("zz\\u001b[2Jzz"), "{procs}");
    drop(child);
}
