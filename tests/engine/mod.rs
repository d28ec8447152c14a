//! Real container engines for the tests (issue 11): a private `dockerd` and a rootful
//! `podman`, each with its own state under a temporary directory, so a daemon or storage the
//! user runs is never touched. Images are made locally (no registry): `docker import` /
//! `podman import` of a tiny root file system holding busybox (static) and the memlens
//! binary under test with its shared libraries, so the containers' workloads are
//! `memlens __workload STEP...`.
//!
//! Everything made is removed on drop: containers, images, the daemon (SIGTERM, then its
//! pidfile is gone), its mounts, and the runtime's parent cgroups (`/docker`,
//! `/libpod_parent`) when they did not exist before. Where no engine can run, tests skip
//! with the reason on stderr; under `CI=true` they fail.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Skips (returns `None`, printing why) or, under CI=true, fails.
pub fn unavailable<T>(reason: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("container engine test cannot run under CI=true: {reason}");
    }
    eprintln!("SKIPPED (no container engine): {reason}");
    None
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The controllers' runtime parent cgroups that exist now (removed on drop if new).
fn parent_cgroups(name: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join(name))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

fn remove_new_parents(name: &str, before: &[PathBuf]) {
    // conmon and the shims leave their cgroups a moment after the containers are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<PathBuf> = parent_cgroups(name)
            .into_iter()
            .filter(|p| !before.contains(p))
            .filter(|p| rmdir_tree(p).is_err())
            .collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for p in left {
                eprintln!("engine cleanup: cannot remove {} (busy)", p.display());
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes the (empty) cgroup `name` a runtime made for a test (`--cgroup-parent`) in every
/// controller.
pub fn remove_parent_cgroup(name: &str) {
    remove_new_parents(name, &[]);
}

/// rmdir of an (empty) cgroup tree, children first.
fn rmdir_tree(p: &Path) -> std::io::Result<()> {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = rmdir_tree(&e.path());
            }
        }
    }
    std::fs::remove_dir(p)
}

/// The tiny root file system both engines import: busybox, memlens and its libraries.
fn rootfs_tar(dir: &Path) -> Result<PathBuf, String> {
    let busybox = ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or("busybox is not installed (apt-get install busybox-static)")?;
    let fs = dir.join("rootfs");
    let bin = fs.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    for d in ["tmp", "var", "dev/shm", "proc", "sys", "etc"] {
        std::fs::create_dir_all(fs.join(d)).map_err(|e| e.to_string())?;
    }
    std::fs::copy(&busybox, bin.join("busybox")).map_err(|e| e.to_string())?;
    for a in ["sh", "sleep", "cat", "dd", "head", "free", "ls", "true"] {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(a));
    }
    let memlens = super::common::bin();
    std::fs::copy(&memlens, bin.join("memlens")).map_err(|e| e.to_string())?;
    // Its shared libraries at their paths (a static build has none).
    let ldd = Command::new("ldd").arg(&memlens).output();
    if let Ok(o) = ldd {
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let lib = line
                .split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from);
            if let Some(lib) = lib {
                let dst = fs.join(lib.strip_prefix("/").unwrap_or(&lib));
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                std::fs::copy(&lib, &dst).map_err(|e| format!("{}: {e}", lib.display()))?;
            }
        }
    }
    let tar = dir.join("rootfs.tar");
    let o = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&fs)
        .arg(".")
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!("tar: {}", text(&o)));
    }
    Ok(tar)
}

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

/// A container engine of the test's own.
pub struct Engine {
    pub kind: Kind,
    dir: tempfile::TempDir,
    /// The client and the arguments that point it at our state.
    client: PathBuf,
    base_args: Vec<String>,
    daemon: Option<Child>,
    /// Where its state is (MEMLENS_DOCKER_ROOT / MEMLENS_PODMAN_ROOT for memlens).
    pub state_root: PathBuf,
    pub image: String,
    made: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
    parents_before: Vec<PathBuf>,
    pub started_in: Duration,
}

impl Engine {
    /// A private dockerd, or `None` (skipped) when it cannot run here.
    pub fn docker() -> Option<Engine> {
        let Some(dockerd) = which("dockerd") else {
            return unavailable("dockerd not found (apt-get install docker.io)");
        };
        let Some(client) = which("docker") else {
            return unavailable("docker client not found");
        };
        if !nix_is_root() {
            return unavailable("dockerd needs root");
        }
        let t0 = Instant::now();
        // A short path: the socket's must fit in sun_path (108 bytes).
        let dir = match tempfile::Builder::new().prefix("mlk").tempdir_in("/tmp") {
            Ok(d) => d,
            Err(e) => return unavailable(&format!("temp dir: {e}")),
        };
        let d = dir.path();
        let sock = d.join("d.sock");
        let parents_before = parent_cgroups("docker");
        let log = std::fs::File::create(d.join("dockerd.log")).ok()?;
        let child = Command::new(dockerd)
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=overlay2",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().ok()?)
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => return unavailable(&format!("cannot start dockerd: {e}")),
        };
        let mut e = Engine {
            kind: Kind::Docker,
            client,
            base_args: vec!["-H".into(), format!("unix://{}", sock.display())],
            daemon: Some(child),
            state_root: d.join("data"),
            image: String::new(),
            made: Mutex::new(Vec::new()),
            images: Mutex::new(Vec::new()),
            parents_before,
            started_in: Duration::ZERO,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if sock.exists() && e.cmd(&["version"]).status.success() {
                break;
            }
            if let Some(c) = &mut e.daemon
                && let Ok(Some(st)) = c.try_wait()
            {
                let log =
                    std::fs::read_to_string(e.dir.path().join("dockerd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return unavailable(&format!("dockerd exited ({st}): {tail:?}"));
            }
            if Instant::now() > deadline {
                return unavailable("dockerd did not answer within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Err(why) = e.import() {
            return unavailable(&why);
        }
        e.started_in = t0.elapsed();
        Some(e)
    }

    /// Rootful podman with its own storage (`--root`, `--runroot`), or `None` (skipped).
    pub fn podman() -> Option<Engine> {
        let Some(client) = which("podman") else {
            return unavailable("podman not found (apt-get install podman)");
        };
        if !nix_is_root() {
            return unavailable("rootful podman needs root");
        }
        let t0 = Instant::now();
        let dir = match tempfile::Builder::new().prefix("mlp").tempdir_in("/tmp") {
            Ok(d) => d,
            Err(e) => return unavailable(&format!("temp dir: {e}")),
        };
        let d = dir.path();
        let mut e = Engine {
            kind: Kind::Podman,
            client,
            base_args: vec![
                "--root".into(),
                d.join("root").display().to_string(),
                "--runroot".into(),
                d.join("run").display().to_string(),
                "--tmpdir".into(),
                d.join("tmp").display().to_string(),
                "--cgroup-manager=cgroupfs".into(),
                "--events-backend=none".into(),
            ],
            daemon: None,
            state_root: d.join("root"),
            image: String::new(),
            made: Mutex::new(Vec::new()),
            images: Mutex::new(Vec::new()),
            parents_before: parent_cgroups("libpod_parent"),
            started_in: Duration::ZERO,
            dir,
        };
        if let Err(why) = e.import() {
            return unavailable(&why);
        }
        e.started_in = t0.elapsed();
        Some(e)
    }

    fn import(&mut self) -> Result<(), String> {
        let tar = rootfs_tar(self.dir.path())?;
        let name = format!("memlens-test/workload:{}", std::process::id());
        let o = self.cmd(&["import", &tar.display().to_string(), &name]);
        if !o.status.success() {
            return Err(format!("{:?} import failed: {}", self.kind, text(&o)));
        }
        self.image = match self.kind {
            Kind::Docker => name,
            // podman names a local image localhost/...
            Kind::Podman => format!("localhost/{name}"),
        };
        Ok(())
    }

    /// Runs the client with `args`.
    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new(&self.client)
            .args(&self.base_args)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.client.display()))
    }

    /// Runs the client and returns its trimmed stdout, failing the test on an error.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(o.status.success(), "{:?} {args:?}: {}", self.kind, text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Starts a container (`run -d --network none`, our image) named `name` with the extra
    /// `opts`, running `cmd`; returns its full ID. Removed on drop.
    pub fn run(&self, name: &str, opts: &[&str], cmd: &[&str]) -> String {
        let mut a = vec!["run", "-d", "--name", name, "--network", "none"];
        if self.kind == Kind::Podman {
            // podman's default rlimits exceed what this machine lets a container set.
            a.extend([
                "--ulimit",
                "nofile=20000:20000",
                "--ulimit",
                "nproc=4096:4096",
            ]);
        }
        a.extend(opts);
        a.push(&self.image);
        a.extend(cmd);
        self.made.lock().unwrap().push(name.to_string());
        self.ok(&a).lines().last().unwrap_or_default().to_string()
    }

    /// Runs a container that holds `steps` of memlens's workloads (waits until it is READY).
    pub fn workload(&self, name: &str, opts: &[&str], steps: &[&str]) -> String {
        let mut cmd = vec!["/bin/sh", "-c"];
        // __workload holds its memory until stdin closes: keep stdin open with a sleep.
        let script = format!(
            "sleep 100000 | /bin/memlens __workload {} > /tmp/ready 2>&1",
            steps.join(" ")
        );
        cmd.push(&script);
        let id = self.run(name, opts, &cmd);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = self.cmd(&["exec", name, "/bin/cat", "/tmp/ready"]);
            let out = String::from_utf8_lossy(&o.stdout).to_string();
            if out.contains("READY") {
                break;
            }
            // An error line, or the container gone: no use waiting.
            if out.contains("memlens:") || out.contains("error") {
                panic!("workload {steps:?} in {name} failed: {out}");
            }
            assert!(
                Instant::now() < deadline,
                "workload {steps:?} in {name} not ready: {out} {}",
                text(&o)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        id
    }

    /// The environment memlens needs to find this engine's names.
    pub fn env(&self) -> (&'static str, String) {
        match self.kind {
            Kind::Docker => ("MEMLENS_DOCKER_ROOT", self.state_root.display().to_string()),
            Kind::Podman => ("MEMLENS_PODMAN_ROOT", self.state_root.display().to_string()),
        }
    }

    /// Runs memlens with this engine's state root in its environment.
    pub fn memlens(&self, args: &[&str]) -> (i32, String, String) {
        let (k, v) = self.env();
        let out = Command::new(super::common::bin())
            .args(args)
            .env(k, v)
            .output()
            .expect("run memlens");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// memlens `args` `--json`, parsed.
    pub fn memlens_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let (code, out, err) = self.memlens(&a);
        assert_eq!(code, 0, "memlens {a:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("memlens {a:?}: {e}: {out}"))
    }

    /// The daemon's address for a `docker -H` of the test's own (docker only).
    pub fn host(&self) -> String {
        self.base_args.get(1).cloned().unwrap_or_default()
    }

    /// Removes `name` on drop (a container made with [`Engine::cmd`]).
    pub fn track_container(&self, name: &str) {
        self.made.lock().unwrap().push(name.to_string());
    }

    /// Removes the image `tag` on drop.
    pub fn track_image(&self, tag: &str) {
        self.images.lock().unwrap().push(tag.to_string());
    }

    /// Removes a container now (killed at once: podman's `rm -f` waits 10 s for a stop).
    pub fn remove(&self, name: &str) {
        self.rm(name);
        self.made.lock().unwrap().retain(|n| n != name);
    }
}

impl Engine {
    fn rm(&self, name: &str) {
        match self.kind {
            Kind::Docker => drop(self.cmd(&["rm", "-f", name])),
            Kind::Podman => drop(self.cmd(&["rm", "-f", "-t", "0", name])),
        }
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let made: Vec<String> = self.made.lock().map(|m| m.clone()).unwrap_or_default();
        for name in made {
            self.rm(&name);
        }
        if !self.image.is_empty() {
            let _ = self.cmd(&["rmi", "-f", &self.image]);
        }
        let images: Vec<String> = self.images.lock().map(|m| m.clone()).unwrap_or_default();
        for i in images {
            let _ = self.cmd(&["rmi", "-f", &i]);
        }
        match self.kind {
            Kind::Docker => {
                if let Some(mut c) = self.daemon.take() {
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while Instant::now() < deadline {
                        if let Ok(Some(_)) = c.try_wait() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    let _ = c.kill();
                    let _ = c.wait();
                }
                remove_new_parents("docker", &self.parents_before);
            }
            Kind::Podman => {
                remove_new_parents("libpod_parent", &self.parents_before);
            }
        }
        // Mounts the engine left under our directory (overlay layers, shm).
        if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
            let d = self.dir.path().display().to_string();
            let mut points: Vec<&str> = m
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| p.starts_with(&d))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}
