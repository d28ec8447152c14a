//! Real-kernel test: make the kernel OOM-kill a process in a memcg we create, then find that
//! report in /dev/kmsg with our parser. Runs on cgroup v1 (host) and v2 (tests/vm/run).
//! Skips (passes with a note) when not root or no memory controller is mounted.
//!
//! Set MEMLENS_CAPTURE_OOM_FIXTURE=PATH to also write the raw /dev/kmsg records logged during
//! the test there (how tests/fixtures/oom/this-host-6.18-v1.kmsg was made).

use memlens::kmsg::log::{parse_log, read_kmsg_raw};
use memlens::kmsg::oom::parse_reports;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const LIMIT: u64 = 32 * 1024 * 1024;

enum Hierarchy {
    V1(PathBuf),
    V2(PathBuf),
}

/// The memory hierarchy from /proc/self/mountinfo (v1 `memory` wins on hybrid systems).
fn memory_hierarchy() -> Option<Hierarchy> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut v2 = None;
    for line in info.lines() {
        let (pre, post) = line.split_once(" - ")?;
        let mount = PathBuf::from(pre.split(' ').nth(4)?);
        let mut post = post.split(' ');
        let (fstype, _src, opts) = (post.next()?, post.next()?, post.next().unwrap_or(""));
        if fstype == "cgroup" && opts.split(',').any(|o| o == "memory") {
            return Some(Hierarchy::V1(mount));
        }
        if fstype == "cgroup2" && v2.is_none() {
            let ctrls =
                std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
            if ctrls.split_whitespace().any(|c| c == "memory") {
                v2 = Some(Hierarchy::V2(mount));
            }
        }
    }
    v2
}

/// A cgroup this test created: kills and reaps its child, then removes the directory.
struct OwnedCgroup {
    path: PathBuf,
    child: Option<Child>,
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove {}", self.path.display());
    }
}

fn write(path: &Path, value: &str) {
    std::fs::write(path, value)
        .unwrap_or_else(|e| panic!("write {value:?} to {}: {e}", path.display()));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn last_seq() -> u64 {
    let raw = read_kmsg_raw(Path::new("/dev/kmsg")).expect("read /dev/kmsg");
    parse_log(&raw.concat())
        .iter()
        .filter_map(|l| l.seq)
        .max()
        .unwrap_or(0)
}

#[test]
fn kernel_oom_report_is_parsed() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let Some(h) = memory_hierarchy() else {
        eprintln!("skipped: no memory cgroup controller");
        return;
    };
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "memlens-test-oom-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let (root, v2) = match &h {
        Hierarchy::V1(r) => (r.clone(), false),
        Hierarchy::V2(r) => (r.clone(), true),
    };
    if v2 {
        let sc = root.join("cgroup.subtree_control");
        if !read(&sc).split_whitespace().any(|c| c == "memory") {
            write(&sc, "+memory");
        }
    }
    let path = root.join(&name);
    std::fs::create_dir(&path).expect("mkdir test cgroup");
    let mut cg = OwnedCgroup {
        path: path.clone(),
        child: None,
    };
    if v2 {
        write(&path.join("memory.max"), &LIMIT.to_string());
        if path.join("memory.swap.max").exists() {
            write(&path.join("memory.swap.max"), "0");
        }
    } else {
        write(&path.join("memory.limit_in_bytes"), &LIMIT.to_string());
        if path.join("memory.memsw.limit_in_bytes").exists() {
            write(
                &path.join("memory.memsw.limit_in_bytes"),
                &LIMIT.to_string(),
            );
        }
    }
    let before = last_seq();

    // `tail` buffers a line-less stream without bound: a pure-tool OOM trigger.
    let script = format!(
        "echo $$ > {}/cgroup.procs; exec tail /dev/zero",
        path.display()
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .spawn()
        .expect("spawn sh");
    let pid = child.id() as i32;
    let child = cg.child.insert(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait child") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "child not OOM-killed within 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    cg.child = None;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "child status {status:?}"
    );

    // The report is printed before the kill is delivered, so it is in the buffer by now.
    let raw: Vec<String> = read_kmsg_raw(Path::new("/dev/kmsg")).expect("read /dev/kmsg");
    let lines = parse_log(&raw.concat());
    let lines: Vec<_> = lines
        .into_iter()
        .filter(|l| l.seq.is_some_and(|s| s > before))
        .collect();
    let reports = parse_reports(&lines);
    let r = reports
        .iter()
        .find(|r| r.victim.as_ref().and_then(|v| v.pid) == Some(pid))
        .unwrap_or_else(|| panic!("no report with victim {pid} in {reports:#?}"));
    let cg_name = format!("/{name}");
    assert_eq!(r.oom_memcg.as_deref(), Some(cg_name.as_str()));
    assert_eq!(r.task_memcg.as_deref(), Some(cg_name.as_str()));
    assert_eq!(r.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    assert!(!r.global);
    assert_eq!(r.limit_bytes, Some(LIMIT));
    assert!(
        r.victim
            .as_ref()
            .and_then(|v| v.anon_rss_bytes)
            .is_some_and(|a| a > 0)
    );
    assert!(r.complete, "{r:#?}");

    let (file, key) = if v2 {
        ("memory.events", "oom_kill")
    } else {
        ("memory.oom_control", "oom_kill")
    };
    let counters = read(&path.join(file));
    assert!(
        counters.lines().any(|l| l == format!("{key} 1")),
        "{file}: {counters}"
    );

    // In the VM (tests/vm/run) the records always go to its output directory, from where
    // tests/fixtures/oom/debian-6.1-v2.kmsg was taken.
    let out = std::env::var("MEMLENS_CAPTURE_OOM_FIXTURE")
        .ok()
        .or_else(|| {
            std::env::var("MEMLENS_VM_OUT")
                .ok()
                .map(|d| format!("{d}/oom-report.kmsg"))
        });
    if let Some(out) = out {
        // Every record logged since `before`: the report, as /dev/kmsg gave it.
        let records: String = raw
            .iter()
            .filter(|rec| {
                parse_log(rec)
                    .first()
                    .and_then(|l| l.seq)
                    .is_some_and(|s| s > before)
            })
            .cloned()
            .collect();
        std::fs::write(&out, records).expect("write capture");
    }
}
