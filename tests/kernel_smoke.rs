//! Real-kernel smoke test: proves the environment the other `tests/kernel_*.rs` tests rely on.
//!
//! Runs unchanged on the host (cgroup v1 or v2, as root) and in the VM (`tests/vm/run`,
//! cgroup v2). It finds the memory controller from /proc/self/mountinfo, creates
//! `memlens-test-smoke-<pid>` under it, moves a child `sleep` in before it execs, checks the
//! cgroup is charged for it, then kills the child and removes the cgroup (also on panic).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

/// Undo mountinfo's octal escapes (`\040` for a space and so on).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount point of the memory controller: a v1 `cgroup` mount with `memory` in its super
/// options, or a `cgroup2` mount whose `cgroup.controllers` lists `memory`.
fn memory_mount() -> (Version, PathBuf) {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    for (n, line) in mountinfo.lines().enumerate() {
        let Some((pre, post)) = line.split_once(" - ") else {
            panic!(
                "/proc/self/mountinfo line {}: no ' - ' separator: {line:?}",
                n + 1
            );
        };
        let mount_point = match pre.split(' ').nth(4) {
            Some(m) => PathBuf::from(unescape(m)),
            None => panic!(
                "/proc/self/mountinfo line {}: too few fields: {line:?}",
                n + 1
            ),
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let super_opts = post.next().unwrap_or("");
        match fstype {
            "cgroup" if super_opts.split(',').any(|o| o == "memory") => {
                return (Version::V1, mount_point);
            }
            "cgroup2" => {
                let controllers =
                    fs::read_to_string(mount_point.join("cgroup.controllers")).unwrap_or_default();
                if controllers.split_whitespace().any(|c| c == "memory") {
                    return (Version::V2, mount_point);
                }
            }
            _ => {}
        }
    }
    panic!("no cgroup memory controller in /proc/self/mountinfo:\n{mountinfo}");
}

/// A cgroup this test created; on drop its child is killed and the directory removed.
struct TestCgroup {
    path: PathBuf,
    child: Option<Child>,
}

impl TestCgroup {
    fn create(parent: &Path, name: &str) -> TestCgroup {
        let path = parent.join(name);
        if let Err(e) = fs::create_dir(&path) {
            panic!(
                "mkdir {} (real-kernel tests run as root): {e}",
                path.display()
            );
        }
        TestCgroup { path, child: None }
    }

    /// Spawn `cmd`, moved into this cgroup before it execs.
    fn spawn_inside(&mut self, cmd: &mut Command) -> u32 {
        let procs = CString::new(self.path.join("cgroup.procs").as_os_str().as_bytes())
            .expect("cgroup path has no NUL");
        // SAFETY: the closure only calls async-signal-safe functions (open, write, close) on
        // memory prepared before fork. Writing "0" to cgroup.procs moves the writing process
        // (same on v1 and v2).
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let r = libc::write(fd, b"0\n".as_ptr().cast(), 2);
                let err = io::Error::last_os_error();
                libc::close(fd);
                if r < 0 { Err(err) } else { Ok(()) }
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?} into {}: {e}", self.path.display()));
        let pid = child.id();
        self.child = Some(child);
        pid
    }

    fn read(&self, file: &str) -> String {
        let p = self.path.join(file);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    fn kill_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Remove the directory, retrying a little: the kernel can report EBUSY for a moment
    /// after the last process is reaped.
    fn remove(&mut self) -> io::Result<()> {
        self.kill_child();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

#[test]
fn memory_cgroup_charges_a_child_process() {
    let (version, mount) = memory_mount();
    eprintln!("memory controller: {version:?} at {}", mount.display());
    let name = format!("memlens-test-smoke-{}", std::process::id());
    let mut cg = TestCgroup::create(&mount, &name);

    let pid = cg.spawn_inside(Command::new("sleep").arg("60"));

    let procs = cg.read("cgroup.procs");
    assert!(
        procs.split_whitespace().any(|p| p == pid.to_string()),
        "child {pid} not in {}/cgroup.procs: {procs:?}",
        cg.path.display()
    );
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    assert!(
        own.contains(&name),
        "/proc/{pid}/cgroup does not name {name}: {own:?}"
    );

    let usage_file = match version {
        Version::V1 => "memory.usage_in_bytes",
        Version::V2 => "memory.current",
    };
    // The child is charged once it has exec'd and touched its own pages: wait for that.
    let deadline = Instant::now() + Duration::from_secs(10);
    let usage = loop {
        let text = cg.read(usage_file);
        let usage: u64 = text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{usage_file}: {text:?}: {e}"));
        if usage > 0 || Instant::now() >= deadline {
            break usage;
        }
        sleep(Duration::from_millis(50));
    };
    eprintln!("{usage_file} = {usage}");
    assert!(usage > 0, "{usage_file} stayed 0 with a process inside");

    cg.kill_child();
    cg.remove()
        .unwrap_or_else(|e| panic!("rmdir {}: {e}", cg.path.display()));
    assert!(!cg.path.exists(), "{} still exists", cg.path.display());
}

/// The memlens binary is where the test binary was compiled to find it (in the VM the harness
/// puts it at the same absolute path) and runs.
#[test]
fn memlens_binary_runs() {
    let bin = env!("CARGO_BIN_EXE_memlens");
    let out = Command::new(bin)
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"));
    assert!(
        out.status.success(),
        "{bin} exited {:?}: {out:?}",
        out.status
    );
}
