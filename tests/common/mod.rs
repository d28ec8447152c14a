//! Support for the real-kernel tests: own memcgs (`memlens-test-*`, removed on drop), a
//! workload child that joins the memcg before exec, and running the memlens binary. Works on
//! cgroup v1 (this host) and v2 (tests/vm/run) alike.
#![allow(dead_code)]

use memlens::cgroup::owned::OwnedCgroup;
use memlens::model::{Hierarchy, Version};
use memlens::sys::Root;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod prometheus;

/// The memlens binary under test (MEMLENS_BIN overrides, for the VM).
pub fn bin() -> PathBuf {
    std::env::var_os("MEMLENS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_memlens")))
}

/// The memory hierarchy of this machine.
pub fn hier() -> Hierarchy {
    memlens::report::hierarchy(&Root::live()).expect("this machine has a memory cgroup controller")
}

static N: AtomicUsize = AtomicUsize::new(0);

/// A fresh memcg of ours.
pub fn cgroup(tag: &str) -> OwnedCgroup {
    let h = hier();
    let name = format!(
        "memlens-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    OwnedCgroup::create(&h, "/", &name).expect("create test memcg")
}

/// A directory on a disk-backed file system for page-cache tests (MEMLENS_TEST_DIR, default
/// /var/tmp). Page cache of a tmpfs would be shmem, which other tests cover.
pub fn disk_dir() -> PathBuf {
    PathBuf::from(std::env::var("MEMLENS_TEST_DIR").unwrap_or_else(|_| "/var/tmp".into()))
}

/// Whether `p` is on tmpfs.
pub fn on_tmpfs(p: &Path) -> bool {
    nix_statfs_is_tmpfs(p)
}

fn nix_statfs_is_tmpfs(p: &Path) -> bool {
    // nix, not libc: f_type is signed on glibc and unsigned on musl.
    nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// A running workload inside a memcg; killed and reaped on drop.
pub struct Workload {
    pub child: Child,
    stdin: Option<ChildStdin>,
}

impl Workload {
    /// Starts `memlens __workload STEPS` inside `cg` and waits until it holds its memory.
    pub fn start(cg: &OwnedCgroup, steps: &[&str]) -> Workload {
        let mut cmd = Command::new(bin());
        cmd.arg("__workload")
            .args(steps)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cg.join_before_exec(&mut cmd).expect("open cgroup.procs");
        let mut child = cmd.spawn().expect("spawn workload");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read READY");
        assert!(
            line.starts_with("READY"),
            "workload {steps:?} failed: {line:?}"
        );
        let stdin = child.stdin.take();
        Workload { child, stdin }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Lets the workload exit normally and waits for it.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs memlens with `args` and returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run memlens");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs memlens with `args` plus `--json` and parses the output.
pub fn json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = run(&a);
    assert_eq!(code, 0, "memlens {a:?} failed: {err}\nstdout:\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON from memlens {a:?}: {e}\n{out}"))
}

/// Reads a kernel file of a cgroup.
pub fn kfile(cg: &OwnedCgroup, name: &str) -> String {
    std::fs::read_to_string(cg.dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// memory.stat as a map.
pub fn kstat(cg: &OwnedCgroup) -> std::collections::HashMap<String, u64> {
    kfile(cg, "memory.stat")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The usage file of this hierarchy.
pub fn usage_file() -> &'static str {
    match hier().version {
        Version::V1 => "memory.usage_in_bytes",
        Version::V2 => "memory.current",
    }
}

/// The memory.stat key for a normalised name on this hierarchy (v1 uses total_*).
pub fn key(name: &str) -> String {
    match hier().version {
        Version::V2 => name.to_string(),
        Version::V1 => format!(
            "total_{}",
            match name {
                "anon" => "rss",
                "file" => "cache",
                "file_mapped" => "mapped_file",
                "file_dirty" => "dirty",
                "file_writeback" => "writeback",
                o => o,
            }
        ),
    }
}

pub const MIB: u64 = 1 << 20;

/// Field of a JSON object as u64 (panics with the path when absent or null).
pub fn u(v: &serde_json::Value, path: &str) -> u64 {
    let mut cur = v;
    for p in path.split('.') {
        cur = &cur[p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path} is not a number: {cur}"))
}

/// Sets the memory limit and forbids swap (v2 memory.swap.max = 0, v1 memsw = limit), so a
/// test about limits and OOM kills means the same thing on a host with swap (the VM has zram)
/// as without. Hosts without swap accounting have no memsw file: nothing to forbid there.
pub fn limit(cg: &OwnedCgroup, bytes: u64) {
    cg.set_limit(Some(bytes)).expect("set the memory limit");
    if let Err(e) = cg.set_swap(Some(0), Some(bytes)) {
        assert!(
            e.kind() == std::io::ErrorKind::NotFound
                || !Path::new("/proc/swaps").exists()
                || swap_total() == 0,
            "cannot forbid swap: {e}"
        );
    }
}

/// Total swap on this machine (bytes), from /proc/swaps.
pub fn swap_total() -> u64 {
    std::fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum::<u64>()
        * 1024
}

/// A child process killed and reaped on drop (servers started by tests).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A minimal HTTP/1.1 GET: (status, body). `accept` sets the Accept header.
pub fn http_get(port: u16, path: &str, accept: Option<&str>) -> std::io::Result<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let acc = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{acc}Connection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Chunked bodies are not expected (the server sends Content-Length).
    Ok((status, body.to_string()))
}

/// Starts `memlens serve` on a port of its own choosing (`--listen 127.0.0.1:0`, the bound
/// port read from `--port-file`: no window in which another process can take it) and waits
/// for /healthz. A child that exits is reported at once, with its status.
pub fn start_serve(interval: &str, extra: &[&str]) -> (Proc, u16) {
    start_serve_with(interval, extra, Stdio::inherit())
}

/// [`start_serve`] with the server's stderr (its log) going to `stderr`.
pub fn start_serve_with(interval: &str, extra: &[&str], stderr: Stdio) -> (Proc, u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pf = dir.path().join("port");
    let child = Command::new(bin())
        .args(extra)
        .args(["serve", "--listen", "127.0.0.1:0", "--interval", interval])
        .arg("--port-file")
        .arg(&pf)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start memlens serve");
    let mut p = Proc(child);
    let t = std::time::Instant::now();
    let mut port = None;
    while t.elapsed() < std::time::Duration::from_secs(30) {
        if let Ok(Some(st)) = p.0.try_wait() {
            panic!("memlens serve exited at once: {st}");
        }
        if port.is_none() {
            port = std::fs::read_to_string(&pf)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok());
        }
        if let Some(port) = port
            && let Ok((200, _)) = http_get(port, "/healthz", None)
        {
            return (p, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("memlens serve did not come up (port {port:?})");
}

/// Marks a test as skipped because a tool it needs is missing: fails under CI=true, and
/// otherwise says so where it shows. The harness captures `eprintln!` of passing tests, so
/// this writes to the stderr handle itself (printed at once in the run's output) and appends
/// the line to `target/tmp/memlens-skipped.log`, which `.ci/run` counts at the end.
pub fn skip(test: &str, reason: &str) {
    assert!(!in_ci(), "{test} cannot run under CI=true: {reason}");
    let line = format!("SKIPPED {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("memlens-skipped.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// VmRSS of a process in bytes.
pub fn vm_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|k| k * 1024)
        .unwrap_or(0)
}

/// Whether this run must not skip tests whose tools are missing (CI=true).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The running kernel's release, for the expectations that differ across the VM matrix
/// (tests/vm/run matrix: 5.10, 6.1, 6.12).
pub fn release() -> memlens::kernel::Release {
    memlens::kernel::Release::running().expect("/proc/sys/kernel/osrelease")
}

/// How far a memory.stat counter may lag on this kernel (memlens::kernel: 64 pages per CPU;
/// seen 8 pages short on 5.10). memory.current is exact.
pub fn stat_slack() -> u64 {
    memlens::kernel::running_stat_error_bytes()
}

/// Whether the multi-generational LRU is on (Debian's 6.12 enables it): file pages read with
/// read(2) then stay in the "inactive" generations however often they are read.
pub fn mglru() -> bool {
    memlens::kernel::mglru_enabled(&Root::live())
}

/// `memlens record` into `store` at `interval` (fast interval too, no OOM follower, `extra`
/// flags), its trace on: the process and the number of ticks it has committed so far.
pub fn start_recorder_counting(
    store: &Path,
    interval: &str,
    extra: &[&str],
) -> (Proc, std::sync::Arc<std::sync::Mutex<usize>>) {
    let mut child = Command::new(bin())
        .args(["--store", store.to_str().expect("utf-8 path"), "record"])
        .args([
            "--interval",
            interval,
            "--fast-interval",
            interval,
            "--no-oom",
        ])
        .args(extra)
        .env("MEMLENS_RECORD_TRACE", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start memlens record");
    let err = child.stderr.take().expect("stderr");
    let n = std::sync::Arc::new(std::sync::Mutex::new(0usize));
    let c = n.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.starts_with("memlens-record: committed ") {
                *c.lock().expect("counter") += 1;
            }
        }
    });
    (Proc(child), n)
}
