//! `--from` on hostile archives (issue 19 items 3 and 8): an archive that expands far beyond
//! its size is refused naming the member, within bounded memory; the limits can be raised; an
//! archive cut short keeps the files before the cut and says where it stopped.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};

const FIXTURE: &str = "tests/fixtures/captures/v2-debian-6.1/v2-capture.tar.gz";

fn targz(out: &Path, members: &[(&str, &[u8])]) {
    let f = std::fs::File::create(out).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, *data).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

/// Runs memlens and returns (exit code, stderr, its peak RSS in bytes, from wait4).
// wait4 reaps the child (std's wait() cannot report its rusage).
#[allow(clippy::zombie_processes)]
fn run_rss(args: &[&str]) -> (i32, String, u64) {
    let mut child = std::process::Command::new(bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, writing into our structs.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert!(r > 0);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, err, ru.ru_maxrss as u64 * 1024)
}

#[test]
fn an_archive_bomb_is_refused_naming_the_member_within_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let bomb = d.path().join("bomb.tar.gz");
    let zeros = vec![0u8; 40 << 20];
    targz(
        &bomb,
        &[
            ("memlens-capture.json", b"{\"format\":1}"),
            ("sys/fs/cgroup/memory.stat", &zeros),
        ],
    );
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    let b = bomb.display().to_string();
    let (code, err, rss) = run_rss(&["--from", &b]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("sys/fs/cgroup/memory.stat"), "{err}");
    assert!(err.contains("per-file limit"), "{err}");
    assert!(err.contains("--from-max-file"), "{err}");
    assert!(rss < 24 << 20, "memlens used {rss} bytes refusing a bomb");
    // The total: three 6 MiB members under a 16 MiB total.
    let six = vec![b'1'; 6 << 20];
    let many = d.path().join("many.tar.gz");
    targz(
        &many,
        &[
            ("sys/fs/cgroup/a/memory.stat", &six),
            ("sys/fs/cgroup/b/memory.stat", &six),
            ("sys/fs/cgroup/c/memory.stat", &six),
        ],
    );
    let m = many.display().to_string();
    let (code, _, err) = run(&["--from", &m, "--from-max-total", "16M"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("sys/fs/cgroup/c/memory.stat"), "{err}");
    assert!(err.contains("--from-max-total"), "{err}");
    // Raised, the archive loads (it is not a valid capture: no mountinfo, exit 1 for that).
    let (_, _, err) = run(&["--from", &b, "--from-max-file", "64M"]);
    assert!(!err.contains("per-file limit"), "{err}");
    let (code, _, err) = run(&["--from", &b, "--from-max-file", "lots"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_capture_directory_with_a_huge_file_names_it() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("cap");
    let status = std::process::Command::new("tar")
        .args(["xzf", FIXTURE, "-C"])
        .arg({
            std::fs::create_dir_all(&cap).unwrap();
            &cap
        })
        .status()
        .unwrap();
    assert!(status.success());
    let stat = cap.join("sys/fs/cgroup/memlens-test-capture/memory.stat");
    let f = std::fs::File::options().append(true).open(&stat).unwrap();
    f.set_len(20 << 20).unwrap();
    let c = cap.display().to_string();
    let (code, out, err) = run(&["show", "memlens-test-capture", "--from", &c, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let probs = v["problems"].to_string();
    assert!(
        probs.contains("memlens-test-capture/memory.stat") && probs.contains("per-file limit"),
        "{probs}"
    );
}

#[test]
fn a_cut_archive_uses_what_was_read_and_says_where_it_stopped() {
    let whole = std::fs::read(FIXTURE).unwrap();
    let d = tempfile::tempdir().unwrap();
    let cut: PathBuf = d.path().join("cut.tar.gz");
    std::fs::write(&cut, &whole[..whole.len() * 3 / 4]).unwrap();
    let c = cut.display().to_string();
    let (code, out, err) = run(&["--all", "--from", &c, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let probs = v["host"]["problems"].to_string();
    assert!(probs.contains("cut.tar.gz"), "{probs}");
    assert!(probs.contains("cut short"), "{probs}");
    assert!(probs.contains("last complete: "), "{probs}");
    // Human output says it too, and the rest of the report printed.
    let (code, out, err) = run(&["--all", "--from", &c]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cut short"), "{out}");
}

/// issue 19 item 17: a shmem lookup that was denied (unprivileged capture: /proc/PID/mountinfo
/// of another user's process) says denied, not "not found".
#[test]
fn a_denied_shmem_lookup_says_denied() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("cap");
    std::fs::create_dir_all(&cap).unwrap();
    let st = std::process::Command::new("tar")
        .args(["xzf", FIXTURE, "-C"])
        .arg(&cap)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(cap.join("proc/437/mountinfo")).unwrap();
    std::fs::remove_file(cap.join("proc/sysvipc/shm")).unwrap();
    let meta_path = cap.join("memlens-capture.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["unreadable"]["/proc/437/mountinfo"] = serde_json::json!(
        "/proc/437/mountinfo: permission denied (run as root, or with CAP_SYS_PTRACE for other users' /proc/PID files)"
    );
    meta["unreadable"]["/proc/sysvipc/shm"] =
        serde_json::json!("/proc/sysvipc/shm: permission denied (run as root)");
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let c = cap.display().to_string();
    let (code, out, err) = run(&["explain", "memlens-test-capture", "--from", &c, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = v["findings"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["id"] == "shmem-held"))
        .cloned()
        .unwrap_or_default();
    let ev = f["evidence"].to_string();
    assert!(ev.contains("lookup denied"), "{f}");
    assert!(!ev.contains("not found"), "{f}");
}

/// issue 19 item 1 for captures: a capture's own /proc/PID/cgroup cannot point memlens at the
/// analyst's files outside the capture (`..`), and neither can a typed path.
#[test]
fn a_hostile_capture_cannot_reach_outside_it() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("cap");
    std::fs::create_dir_all(cap.join("proc/437")).unwrap();
    let st = std::process::Command::new("tar")
        .args(["xzf", FIXTURE, "-C"])
        .arg(&cap)
        .status()
        .unwrap();
    assert!(st.success());
    // A directory beside the capture that looks like a cgroup.
    let outside = d.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("memory.current"), "4242424242\n").unwrap();
    std::fs::write(outside.join("memory.stat"), "anon 4242424242\n").unwrap();
    std::fs::write(cap.join("proc/437/cgroup"), "0::/../../../../outside\n").unwrap();
    let c = cap.display().to_string();
    for t in ["437", "/../../../../outside", "../../../../outside"] {
        let (code, out, err) = run(&["show", t, "--from", &c, "--json"]);
        assert_eq!(code, 2, "show {t}: {out}{err}");
        assert!(!out.contains("4242424242"), "{out}");
    }
}

/// issue 19 item 8: a file lost from a capture is named (memlens-capture.json lists every
/// file), not shown as "not provided by this kernel".
#[test]
fn a_file_lost_from_a_capture_is_named() {
    let d = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("tar")
        .args([
            "xzf",
            "tests/fixtures/captures/v1-host-6.18/v1-capture.tar.gz",
            "-C",
        ])
        .arg(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    let lost = "sys/fs/cgroup/memory/memlens-test-v1capture/memory.stat";
    std::fs::remove_file(d.path().join(lost)).unwrap();
    let c = d.path().display().to_string();
    let (code, out, err) = run(&["show", "memlens-test-v1capture", "--from", &c, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let probs = v["problems"].to_string();
    assert!(
        probs.contains(&format!(
            "/{lost}: recorded when the capture was taken, but missing"
        )),
        "{probs}"
    );
}
