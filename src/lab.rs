//! `memlens lab`: the seed articles' experiments, run on this kernel.
//!
//! Each scenario gets its own temporary memcg (`memlens-lab-*`), runs `memlens __workload`
//! inside it (joined before exec), reads the counters before and while the workload holds its
//! memory, and compares what moved with what the kernel documentation says should move. The
//! verdict is `as_expected`, `differs` (with the failed expectation and the numbers),
//! `not_run` (it could not run: not root, no memcg could be created...; with the error), or
//! `skipped` (not applicable here, with the reason: no swap, a tmpfs where a disk file system
//! is needed, `--skip-oom`...).
//! Files go to `--dir` (default /var/tmp) and /dev/shm and are removed afterwards.

use crate::cgroup::owned::OwnedCgroup;
use crate::cgroup::read::{self, Level};
use crate::cgroup::walk;
use crate::model::{Hierarchy, Version};
use crate::render;
use crate::sys::Root;
use crate::views::breakdown::Breakdown;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// A scenario's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every expectation held.
    AsExpected,
    /// At least one did not; `reason` says which, with the numbers.
    Differs,
    /// Not applicable here (no swap, `--skip-oom`...); `reason` says why.
    Skipped,
    /// Could not run (memcg not creatable, workload failed to start...); `reason` has the
    /// error. Never `differs`: nothing was measured.
    NotRun,
}

impl Verdict {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::AsExpected => "as_expected",
            Verdict::Differs => "differs",
            Verdict::Skipped => "skipped",
            Verdict::NotRun => "not_run",
        }
    }
}

/// One counter before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counter {
    /// Before the workload ran (processes: 0, they did not exist).
    pub before: Option<u64>,
    /// While the workload holds its memory (or after it ended, for the OOM and dying cases).
    pub after: Option<u64>,
    /// after − before.
    pub delta: Option<i64>,
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct LabResult {
    /// Scenario name.
    pub name: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Why it differs or was skipped; for `as_expected`, the checks that held.
    pub reason: String,
    /// What the kernel documentation says should move, with the section cited.
    pub expected: String,
    /// The counters, by key (`cgroup.anon`, `process.RssFile`, `events.oom_kill`...).
    pub counters: BTreeMap<String, Counter>,
}

/// A scenario: name, one-line description, what should happen (with the doc section), and
/// the code.
pub struct Scenario {
    /// Name on the command line.
    pub name: &'static str,
    /// One line for `--list`.
    pub about: &'static str,
    /// Expected behaviour and its source.
    pub expected: &'static str,
    run: fn(&Lab) -> Result<Done, String>,
}

/// Every scenario, in the order they run.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "untouched-malloc",
            about: "reserve 256 MiB and never touch it: VmSize grows, nothing is charged",
            expected: "Anonymous pages are charged when first touched (page fault), not when reserved: VmSize grows by the reservation, the memcg's anon and usage do not (cgroup-v1/memory.rst 2.2.1 \"Accounting details\": RSS pages are accounted at page_fault; cgroup-v2.rst \"Memory Ownership\": charged to the cgroup which instantiated it).",
            run: untouched_malloc,
        },
        Scenario {
            name: "touched-anon",
            about: "touch 64 MiB of anonymous memory",
            expected: "Touched anonymous memory is charged as anon (v1 total_rss, v2 anon) and in usage, and is the process's RssAnon (cgroup-v1/memory.rst 5.2 \"stat file\" rss; cgroup-v2.rst \"memory.stat\" anon).",
            run: touched_anon,
        },
        Scenario {
            name: "page-cache-write",
            about: "write a 32 MiB file with write(2)",
            expected: "Written file pages are page cache charged to the writer's memcg as cache/file, not anon, and are in no process's RSS because nothing maps them (cgroup-v1/memory.rst 2.2.1: a file page is accounted as Page Cache when inserted into the inode; cgroup-v2.rst \"memory.stat\" file).",
            run: page_cache_write,
        },
        Scenario {
            name: "page-cache-read-twice",
            about: "read a dropped 32 MiB file once, then (in a second memcg) twice",
            expected: "Page cache read once lands on the inactive file LRU; a second access promotes it to the active list, so the working set (usage − inactive_file) of the twice-read memcg is ~32 MiB larger (cgroup-v1/memory.rst 5.2 active_file/inactive_file; cgroup-v2.rst \"memory.stat\" active_file, inactive_file). With the multi-generational LRU on (Debian 6.12+) a re-read only raises the pages' tier, so both stay inactive (admin-guide/mm/multigen_lru.rst).",
            run: read_twice,
        },
        Scenario {
            name: "shared-file-mmap",
            about: "MAP_SHARED a 32 MiB file and write every page",
            expected: "Mapped file pages are the process's RssFile and the memcg's cache/file and mapped_file, not its anon/rss (cgroup-v1/memory.rst 5.2 mapped_file; cgroup-v2.rst \"memory.stat\" file_mapped).",
            run: shared_mmap,
        },
        Scenario {
            name: "sysv-shm",
            about: "shmget + shmat 32 MiB and touch it",
            expected: "SysV shared memory is shmem: counted in cache/file (not anon) and in the attaching process's RssShmem, and cannot be reclaimed without swap (cgroup-v1/memory.rst 5.2 shmem; cgroup-v2.rst \"memory.stat\" shmem).",
            run: sysv_shm,
        },
        Scenario {
            name: "posix-shm",
            about: "shm_open a 32 MiB object in /dev/shm, mmap and touch it",
            expected: "POSIX shared memory is a tmpfs file in /dev/shm: shmem, counted in cache/file, and mapped so it is in RssShmem (cgroup-v1/memory.rst 5.2 shmem; cgroup-v2.rst \"memory.stat\" shmem).",
            run: posix_shm,
        },
        Scenario {
            name: "tmpfs-write",
            about: "write(2) a 32 MiB file on tmpfs (/dev/shm) without mapping it",
            expected: "A tmpfs file is shmem charged to the writer even though no process maps it (no RSS anywhere), and it stays charged after the writer exits until the file is removed (cgroup-v1/memory.rst 5.2 shmem; cgroup-v2.rst \"memory.stat\" shmem).",
            run: tmpfs_write,
        },
        Scenario {
            name: "reclaim-at-limit",
            about: "limit 64M: write 48 MiB of page cache, then touch 40 MiB of anon",
            expected: "At the limit the kernel reclaims clean page cache before it kills: anon reaches 40 MiB, cache shrinks, usage stays at or under the limit, the limit-hit counter rises, no OOM kill (cgroup-v1/memory.rst 2.5 \"Reclaim\"; cgroup-v2.rst \"memory.max\": if usage reaches the limit and can't be reduced, the OOM killer is invoked).",
            run: reclaim_at_limit,
        },
        Scenario {
            name: "oom-kill",
            about: "limit 32M: grow anon to 64 MiB (the 100/101 MiB case of the OOM article, scaled)",
            expected: "Anonymous memory cannot be reclaimed without swap, so at the limit the memcg OOM killer kills the workload with SIGKILL and oom_kill rises by 1; usage never exceeds the limit (cgroup-v1/memory.rst 10 \"OOM Control\"; cgroup-v2.rst \"memory.max\", \"memory.events\" oom_kill).",
            run: oom_kill,
        },
        Scenario {
            name: "swap",
            about: "limit 32M, swap allowed: touch 48 MiB of anon",
            expected: "With swap allowed, anon beyond the limit is swapped out instead of OOM-killed: the memcg's swap grows by at least the excess and oom_kill stays 0 (cgroup-v1/memory.rst 2.4 \"Swap Extension\"; cgroup-v2.rst \"memory.swap.max\", \"memory.swap.current\").",
            run: swap,
        },
        Scenario {
            name: "dying-cgroup",
            about: "remove a memcg with page cache still charged, then one reclaimed first",
            expected: "Page cache stays charged to the memcg that first touched it after the memcg is removed, so the removed memcg lingers as a dying cgroup until the pages are reclaimed; reclaiming first (v1 memory.force_empty, v2 memory.reclaim) leaves none (cgroup-v2.rst \"Memory Ownership\" and cgroup.stat nr_dying_descendants; cgroup-v1/memory.rst 4.3 still says charges move to the parent, which kernels since 3.19 no longer do; cgroup-v1/memory.rst 5.1 force_empty).",
            run: dying,
        },
    ]
}

/// The context every scenario runs in.
pub struct Lab {
    root: Root,
    h: Hierarchy,
    dir: PathBuf,
    bin: PathBuf,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Lab {
    /// A lab writing its files to `dir`, running workloads with `bin` (the memlens binary).
    pub fn new(dir: PathBuf, bin: PathBuf) -> Result<Self, String> {
        let root = Root::live();
        let h = crate::report::hierarchy(&root).map_err(|e| e.to_string())?;
        Ok(Lab { root, h, dir, bin })
    }

    /// What the lab runs on, for its report: the kernel release and the hierarchy (`v1`,
    /// `v2`), so two reports can be compared (`lab --compare`).
    pub fn about(&self) -> (Option<String>, String) {
        let kernel = self
            .root
            .read(Path::new("/proc/sys/kernel/osrelease"))
            .ok()
            .map(|t| t.trim().to_string());
        (kernel, format!("v{}", self.h.version.number()))
    }

    fn cgroup(&self, tag: &str) -> Result<OwnedCgroup, String> {
        let name = format!(
            "memlens-lab-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        OwnedCgroup::create(&self.h, "/", &name).map_err(|e| {
            format!(
                "{e}\nmemlens lab needs {}",
                match self.h.version {
                    Version::V1 => "root (only root may create memcgs on cgroup v1)",
                    Version::V2 =>
                        "root, or a writable cgroup v2 root with memory in cgroup.subtree_control",
                }
            )
        })
    }

    fn file(&self, tag: &str) -> PathBuf {
        self.dir
            .join(format!("memlens-lab-{tag}-{}", std::process::id()))
    }

    fn disk_dir_problem(&self) -> Option<String> {
        if is_tmpfs(&self.dir) {
            Some(format!(
                "{} is tmpfs, where file pages are shmem; give a disk file system with --dir",
                self.dir.display()
            ))
        } else {
            None
        }
    }

    fn workload(&self, cg: &OwnedCgroup, steps: &[String]) -> Result<Command, String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("__workload")
            .args(steps)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cg.join_before_exec(&mut cmd).map_err(|e| e.to_string())?;
        Ok(cmd)
    }

    /// Starts a workload and waits until it holds its memory.
    fn hold(&self, cg: &OwnedCgroup, steps: &[String]) -> Result<Held, String> {
        let mut child = self
            .workload(cg, steps)?
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let stdin = child.stdin.take();
        let held = Held { child, stdin };
        if !line.starts_with("READY") {
            let mut held = held;
            let _ = held.child.kill();
            let out = held.child.wait_with_output_lossy();
            return Err(format!("workload {steps:?} failed: {out}"));
        }
        Ok(held)
    }

    /// Reads every counter of `cg` (and of `pid`'s /proc files when given).
    fn snapshot(&self, cg: &OwnedCgroup, pid: Option<i32>) -> BTreeMap<String, Option<u64>> {
        let mut m = BTreeMap::new();
        if let Ok(c) = read::read_cgroup(&self.root, &self.h, cg.path(), Level::Sample) {
            let b = Breakdown::of(&c);
            let ws = match (b.usage.bytes, b.inactive_file.bytes) {
                (Some(u), Some(i)) => Some(u.saturating_sub(i)),
                _ => None,
            };
            for (k, v) in [
                ("cgroup.usage", b.usage.bytes),
                ("cgroup.working_set", ws),
                ("cgroup.anon", b.anon.bytes),
                ("cgroup.file", b.file.bytes),
                ("cgroup.shmem", b.shmem.bytes),
                ("cgroup.active_file", b.active_file.bytes),
                ("cgroup.inactive_file", b.inactive_file.bytes),
                ("cgroup.file_mapped", b.file_mapped.bytes),
                ("cgroup.kernel", b.kernel.bytes),
                ("cgroup.swap", b.swap.bytes),
                ("cgroup.peak_usage", c.usage.peak),
                (
                    "events.max",
                    match self.h.version {
                        Version::V1 => c.events.failcnt,
                        Version::V2 => c.events.events.as_ref().and_then(|e| e.get("max")),
                    },
                ),
                ("events.oom_kill", c.events.oom_kills()),
            ] {
                m.insert(k.to_string(), v);
            }
        }
        let p = pid.and_then(|p| crate::proc::read_process(&self.root, p));
        for (k, f) in [
            ("process.VmSize", p.as_ref().and_then(|p| p.vm_size_bytes)),
            ("process.RssAnon", p.as_ref().and_then(|p| p.rss_anon_bytes)),
            ("process.RssFile", p.as_ref().and_then(|p| p.rss_file_bytes)),
            (
                "process.RssShmem",
                p.as_ref().and_then(|p| p.rss_shmem_bytes),
            ),
        ] {
            // Before the workload runs its process does not exist: 0.
            m.insert(k.to_string(), if pid.is_some() { f } else { Some(0) });
        }
        m
    }

    /// Dying memory cgroups on the host: v2 root cgroup.stat nr_dying_descendants; v1
    /// /proc/cgroups num_cgroups (which counts a removed memcg until it is freed) minus the
    /// memcg directories that exist.
    pub fn dying(&self) -> Option<u64> {
        match self.h.version {
            Version::V2 => {
                let t = std::fs::read_to_string(self.h.mount_point.join("cgroup.stat")).ok()?;
                crate::cgroup::parse::dying_memory(&crate::cgroup::parse::flat_keyed(&t).0)
                    .map(|(n, _)| n)
            }
            Version::V1 => {
                let t = std::fs::read_to_string("/proc/cgroups").ok()?;
                let n: u64 = t.lines().find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.first() == Some(&"memory")).then(|| f.get(2)?.parse().ok())?
                })?;
                let live = walk::all_paths(&self.root, &self.h, "/").len() as u64;
                Some(n.saturating_sub(live))
            }
        }
    }
}

struct Held {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Held {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    /// Closes stdin and waits for a normal exit.
    fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

trait Lossy {
    fn wait_with_output_lossy(&mut self) -> String;
}

impl Lossy for Child {
    fn wait_with_output_lossy(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        let st = self.wait().map(|s| s.to_string()).unwrap_or_default();
        format!("{} ({st})", s.trim())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// statfs(2) through nix: `f_type`'s C type differs between glibc (signed) and musl
/// (unsigned), which a direct comparison with libc's TMPFS_MAGIC did not survive.
fn is_tmpfs(p: &Path) -> bool {
    nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// What a scenario measured.
struct Done {
    counters: BTreeMap<String, Counter>,
    checks: Vec<(String, bool)>,
    skipped: Option<String>,
}

impl Done {
    fn skipped(why: impl Into<String>) -> Self {
        Done {
            counters: BTreeMap::new(),
            checks: Vec::new(),
            skipped: Some(why.into()),
        }
    }
}

/// Collects counters and checks.
#[derive(Default)]
struct Rec {
    counters: BTreeMap<String, Counter>,
    checks: Vec<(String, bool)>,
}

impl Rec {
    /// Records `keys` from two snapshots, under `prefix` (`""` or `"once."`).
    fn take(
        &mut self,
        prefix: &str,
        before: &BTreeMap<String, Option<u64>>,
        after: &BTreeMap<String, Option<u64>>,
        keys: &[&str],
    ) {
        for k in keys {
            let b = before.get(*k).copied().flatten();
            let a = after.get(*k).copied().flatten();
            let d = match (b, a) {
                (Some(b), Some(a)) => Some(a as i64 - b as i64),
                _ => None,
            };
            self.counters.insert(
                format!("{prefix}{k}"),
                Counter {
                    before: b,
                    after: a,
                    delta: d,
                },
            );
        }
    }

    fn set(&mut self, key: &str, before: Option<u64>, after: Option<u64>) {
        let d = match (before, after) {
            (Some(b), Some(a)) => Some(a as i64 - b as i64),
            _ => None,
        };
        self.counters.insert(
            key.into(),
            Counter {
                before,
                after,
                delta: d,
            },
        );
    }

    fn delta(&self, key: &str) -> Option<i64> {
        self.counters.get(key).and_then(|c| c.delta)
    }

    fn after(&self, key: &str) -> Option<u64> {
        self.counters.get(key).and_then(|c| c.after)
    }

    /// Checks lo ≤ delta(key) ≤ hi (bytes, `None`: unbounded). memory.stat counters
    /// (`cgroup.*` but usage) get the kernel's own error on either side
    /// ([`crate::kernel::memcg_stat_error_bytes`]: seen 8 pages short on 5.10).
    fn delta_in(&mut self, key: &str, lo: Option<i64>, hi: Option<i64>) {
        let d = self.delta(key);
        let slack = if key.contains("cgroup.") && !key.ends_with(".usage") {
            i64::try_from(crate::kernel::running_stat_error_bytes()).unwrap_or(0)
        } else {
            0
        };
        let ok = d.is_some_and(|d| {
            lo.is_none_or(|l| d >= l - slack) && hi.is_none_or(|h| d <= h + slack)
        });
        // Event and cgroup counts are plain numbers, everything else bytes.
        let count = key.contains("events.") || key.contains("dying");
        let f = |v: i64| if count { format!("{v}") } else { mib(v) };
        let range = match (lo, hi) {
            (Some(l), Some(h)) if l == h => f(l),
            (Some(l), Some(h)) => format!("{} ..= {}", f(l), f(h)),
            (Some(l), None) => format!("≥ {}", f(l)),
            (None, Some(h)) => format!("≤ {}", f(h)),
            (None, None) => "any".into(),
        };
        let moved = match d {
            None => "n/a".to_string(),
            Some(d) if count => format!("{d:+}"),
            Some(d) => render::signed_bytes(Some(d)),
        };
        self.checks
            .push((format!("{key} moved {moved} (expected {range})"), ok));
    }

    fn check(&mut self, what: impl Into<String>, ok: bool) {
        self.checks.push((what.into(), ok));
    }

    fn done(self) -> Done {
        Done {
            counters: self.counters,
            checks: self.checks,
            skipped: None,
        }
    }
}

fn mib(b: i64) -> String {
    if b % (MIB as i64) == 0 {
        format!("{} MiB", b / MIB as i64)
    } else {
        render::signed_bytes(Some(b))
    }
}

const M: i64 = MIB as i64;

const CG_KEYS: [&str; 7] = [
    "cgroup.usage",
    "cgroup.anon",
    "cgroup.file",
    "cgroup.shmem",
    "cgroup.file_mapped",
    "cgroup.active_file",
    "cgroup.inactive_file",
];
const PROC_KEYS: [&str; 4] = [
    "process.VmSize",
    "process.RssAnon",
    "process.RssFile",
    "process.RssShmem",
];

/// Runs `steps` in a fresh memcg (with `limit`) and records the usual counters. `files` are
/// removed before the memcg, so it does not linger as a dying cgroup (which would disturb
/// the dying-cgroup scenario's count).
fn simple(
    lab: &Lab,
    tag: &str,
    limit: Option<u64>,
    steps: &[String],
    files: &[&Path],
) -> Result<Rec, String> {
    let cg = lab.cgroup(tag)?;
    if limit.is_some() {
        cg.set_limit(limit).map_err(|e| e.to_string())?;
    }
    let before = lab.snapshot(&cg, None);
    let w = lab.hold(&cg, steps)?;
    let after = lab.snapshot(&cg, Some(w.pid()));
    w.finish();
    let mut r = Rec::default();
    r.take("", &before, &after, &CG_KEYS);
    r.take("", &before, &after, &PROC_KEYS);
    r.take("", &before, &after, &["events.max", "events.oom_kill"]);
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    cg.remove().map_err(|e| e.to_string())?;
    Ok(r)
}

fn untouched_malloc(lab: &Lab) -> Result<Done, String> {
    let mut r = simple(lab, "untouched", None, &["reserve=256M".into()], &[])?;
    r.delta_in("process.VmSize", Some(256 * M), None);
    r.delta_in("cgroup.anon", None, Some(8 * M));
    r.delta_in("cgroup.usage", None, Some(16 * M));
    Ok(r.done())
}

fn touched_anon(lab: &Lab) -> Result<Done, String> {
    let mut r = simple(lab, "anon", None, &["anon=64M".into()], &[])?;
    r.delta_in("cgroup.anon", Some(64 * M), Some(72 * M));
    r.delta_in("cgroup.usage", Some(64 * M), None);
    r.delta_in("process.RssAnon", Some(64 * M), Some(72 * M));
    r.delta_in("cgroup.shmem", None, Some(M));
    Ok(r.done())
}

fn page_cache_write(lab: &Lab) -> Result<Done, String> {
    if let Some(p) = lab.disk_dir_problem() {
        return Ok(Done::skipped(p));
    }
    let f = lab.file("write");
    let res = simple(
        lab,
        "write",
        None,
        &[format!("write={}:32M", f.display())],
        &[&f],
    );
    let _ = std::fs::remove_file(&f);
    let mut r = res?;
    r.delta_in("cgroup.file", Some(32 * M), Some(40 * M));
    r.delta_in("cgroup.anon", None, Some(8 * M));
    r.delta_in("cgroup.shmem", None, Some(M));
    r.delta_in("process.RssFile", None, Some(16 * M));
    Ok(r.done())
}

fn read_twice(lab: &Lab) -> Result<Done, String> {
    if let Some(p) = lab.disk_dir_problem() {
        return Ok(Done::skipped(p));
    }
    let f = lab.file("read");
    let fs = f.display().to_string();
    let res = (|| -> Result<Rec, String> {
        let keys = [
            "cgroup.active_file",
            "cgroup.inactive_file",
            "cgroup.working_set",
        ];
        let mut r = Rec::default();
        let once = lab.cgroup("read1")?;
        let b1 = lab.snapshot(&once, None);
        let w = lab.hold(
            &once,
            &[
                format!("write={fs}:32M"),
                format!("drop={fs}"),
                format!("read={fs}:1"),
            ],
        )?;
        let a1 = lab.snapshot(&once, Some(w.pid()));
        w.finish();
        // Drop the cache before removal, or the memcg lingers as a dying cgroup.
        let _ = crate::run::reclaim(&once, lab.h.version);
        once.remove().map_err(|e| e.to_string())?;
        r.take("once.", &b1, &a1, &keys);
        let twice = lab.cgroup("read2")?;
        let b2 = lab.snapshot(&twice, None);
        let w = lab.hold(&twice, &[format!("drop={fs}"), format!("read={fs}:2")])?;
        let a2 = lab.snapshot(&twice, Some(w.pid()));
        w.finish();
        let _ = crate::run::reclaim(&twice, lab.h.version);
        twice.remove().map_err(|e| e.to_string())?;
        r.take("twice.", &b2, &a2, &keys);
        Ok(r)
    })();
    let _ = std::fs::remove_file(&f);
    let mut r = res?;
    r.delta_in("once.cgroup.inactive_file", Some(30 * M), None);
    r.delta_in("once.cgroup.active_file", None, Some(8 * M));
    let (w1, w2) = (
        r.after("once.cgroup.working_set").unwrap_or(0),
        r.after("twice.cgroup.working_set").unwrap_or(0),
    );
    if crate::kernel::mglru_enabled(&lab.root) {
        // Multi-generational LRU (Debian 6.12): the second read(2) raises the pages' tier,
        // not their generation, so they stay "inactive" (crate::kernel::mglru_enabled).
        r.check(
            "MGLRU is on (/sys/kernel/mm/lru_gen/enabled): re-read page cache stays in the inactive generations",
            true,
        );
        r.delta_in("twice.cgroup.inactive_file", Some(30 * M), None);
        r.delta_in("twice.cgroup.active_file", None, Some(8 * M));
        r.check(
            format!(
                "working set read twice ({}) < read once ({}) + 8 MiB (MGLRU)",
                render::bytes(Some(w2)),
                render::bytes(Some(w1))
            ),
            w2 < w1 + 8 * MIB,
        );
        return Ok(r.done());
    }
    r.delta_in("twice.cgroup.active_file", Some(30 * M), None);
    r.check(
        format!(
            "working set read twice ({}) ≥ read once ({}) + 24 MiB",
            render::bytes(Some(w2)),
            render::bytes(Some(w1))
        ),
        w2 >= w1 + 24 * MIB,
    );
    Ok(r.done())
}

fn shared_mmap(lab: &Lab) -> Result<Done, String> {
    if let Some(p) = lab.disk_dir_problem() {
        return Ok(Done::skipped(p));
    }
    let f = lab.file("mmap");
    let res = simple(
        lab,
        "mmap",
        None,
        &[format!("mmap={}:32M", f.display())],
        &[&f],
    );
    let _ = std::fs::remove_file(&f);
    let mut r = res?;
    // RSS counters are per-CPU batched since 6.1: a few pages short while the task runs.
    r.delta_in("process.RssFile", Some(31 * M), None);
    r.delta_in("cgroup.file_mapped", Some(32 * M), None);
    r.delta_in("cgroup.file", Some(32 * M), None);
    r.delta_in("cgroup.anon", None, Some(8 * M));
    Ok(r.done())
}

fn shm_checks(r: &mut Rec, mapped: bool) {
    r.delta_in("cgroup.shmem", Some(32 * M), Some(33 * M));
    r.delta_in("cgroup.file", Some(32 * M), None);
    r.delta_in("cgroup.anon", None, Some(8 * M));
    if mapped {
        // (per-CPU batched RSS counters since 6.1: a few pages short)
        r.delta_in("process.RssShmem", Some(31 * M), None);
    } else {
        // Not mapped: nothing of the 32 MiB written is in the writer's RSS (the delta is from
        // the same binary idle, so its own text on a tmpfs is not counted).
        r.delta_in("process.RssShmem", None, Some(8 * M));
    }
}

fn sysv_shm(lab: &Lab) -> Result<Done, String> {
    let mut r = simple(lab, "sysv", None, &["shm=32M".into()], &[])?;
    shm_checks(&mut r, true);
    Ok(r.done())
}

fn posix_shm(lab: &Lab) -> Result<Done, String> {
    if !is_tmpfs(Path::new("/dev/shm")) {
        return Ok(Done::skipped("/dev/shm is not a tmpfs here"));
    }
    let name = format!("memlens-lab-pshm-{}", std::process::id());
    let res = simple(lab, "pshm", None, &[format!("pshm={name}:32M")], &[]);
    let _ = std::fs::remove_file(Path::new("/dev/shm").join(&name));
    let mut r = res?;
    shm_checks(&mut r, true);
    Ok(r.done())
}

fn tmpfs_write(lab: &Lab) -> Result<Done, String> {
    if !is_tmpfs(Path::new("/dev/shm")) {
        return Ok(Done::skipped("/dev/shm is not a tmpfs here"));
    }
    let f = PathBuf::from(format!("/dev/shm/memlens-lab-tmpfs-{}", std::process::id()));
    let res = (|| -> Result<Rec, String> {
        let cg = lab.cgroup("tmpfs")?;
        // The process counters start from the same binary idle, not from 0: when memlens
        // itself lives on a tmpfs (an initramfs, a container's overlay on tmpfs) its own text
        // pages are shmem and count in RssShmem (10 MiB of a debug build), which says nothing
        // about the file written. The idle run exits before the cgroup's own `before`.
        let idle = lab.hold(&cg, &[])?;
        let idle_proc = lab.snapshot(&cg, Some(idle.pid()));
        idle.finish();
        let before = lab.snapshot(&cg, None);
        let w = lab.hold(&cg, &[format!("write={}:32M", f.display())])?;
        let after = lab.snapshot(&cg, Some(w.pid()));
        w.finish();
        // The writer is gone; the file keeps its pages charged.
        let gone = lab.snapshot(&cg, None);
        let mut r = Rec::default();
        r.take("", &before, &after, &CG_KEYS);
        r.take("", &idle_proc, &after, &PROC_KEYS);
        r.take("writer_exited.", &before, &gone, &["cgroup.shmem"]);
        let _ = std::fs::remove_file(&f);
        cg.remove().map_err(|e| e.to_string())?;
        Ok(r)
    })();
    let _ = std::fs::remove_file(&f);
    let mut r = res?;
    shm_checks(&mut r, false);
    r.delta_in("writer_exited.cgroup.shmem", Some(32 * M), None);
    Ok(r.done())
}

fn reclaim_at_limit(lab: &Lab) -> Result<Done, String> {
    if let Some(p) = lab.disk_dir_problem() {
        return Ok(Done::skipped(p));
    }
    let f = lab.file("reclaim");
    let res = simple(
        lab,
        "reclaim",
        Some(64 * MIB),
        &[format!("write={}:48M", f.display()), "anon=40M".into()],
        &[&f],
    );
    let _ = std::fs::remove_file(&f);
    let mut r = res?;
    r.delta_in("cgroup.anon", Some(40 * M), None);
    let file = r.after("cgroup.file").unwrap_or(u64::MAX);
    r.check(
        format!(
            "cgroup.file after = {} < 24 MiB (48 MiB written, the rest reclaimed)",
            render::bytes(Some(file))
        ),
        file < 24 * MIB,
    );
    let usage = r.after("cgroup.usage").unwrap_or(u64::MAX);
    r.check(
        format!("cgroup.usage {} ≤ limit 64 MiB", render::bytes(Some(usage))),
        usage <= 64 * MIB,
    );
    r.delta_in("events.max", Some(1), None);
    r.delta_in("events.oom_kill", Some(0), Some(0));
    Ok(r.done())
}

fn oom_kill(lab: &Lab) -> Result<Done, String> {
    let cg = lab.cgroup("oom")?;
    cg.set_limit(Some(32 * MIB)).map_err(|e| e.to_string())?;
    // With swap the anon would be swapped out instead of killed: forbid it (v2 swap.max 0,
    // v1 memsw = limit). A v1 host without swap accounting has no memsw file and no per-cgroup
    // swap to forbid.
    if let Err(e) = cg.set_swap(Some(0), Some(32 * MIB))
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(e.to_string());
    }
    let before = lab.snapshot(&cg, None);
    let mut child = lab
        .workload(&cg, &["grow=64M".into()])?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let after = lab.snapshot(&cg, None);
    let mut r = Rec::default();
    r.take(
        "",
        &before,
        &after,
        &["cgroup.peak_usage", "events.max", "events.oom_kill"],
    );
    cg.remove().map_err(|e| e.to_string())?;
    let sig = status.and_then(|s| s.signal());
    r.check(
        format!(
            "workload ended by SIGKILL (ended: {})",
            status.map_or("did not end in 30 s".into(), |s| s.to_string())
        ),
        sig == Some(libc::SIGKILL),
    );
    r.delta_in("events.oom_kill", Some(1), Some(1));
    let peak = r.after("cgroup.peak_usage");
    r.check(
        format!("peak usage {} ≤ limit 32 MiB", render::bytes(peak)),
        peak.is_none_or(|p| p <= 32 * MIB),
    );
    Ok(r.done())
}

fn swap(lab: &Lab) -> Result<Done, String> {
    let host = crate::proc::read_host(&lab.root);
    let total = host.mem("SwapTotal");
    if total.unwrap_or(0) == 0 {
        return Ok(Done::skipped(format!(
            "the host has no swap (SwapTotal {} in /proc/meminfo)",
            render::bytes(total)
        )));
    }
    let cg = lab.cgroup("swap")?;
    cg.set_limit(Some(32 * MIB)).map_err(|e| e.to_string())?;
    let file = match lab.h.version {
        Version::V1 => "memory.memsw.limit_in_bytes",
        Version::V2 => "memory.swap.max",
    };
    if !cg.dir().join(file).exists() {
        return Ok(Done::skipped(format!(
            "swap is not accounted per cgroup here ({file} missing: swapaccount=0 or CONFIG_MEMCG_SWAP off)"
        )));
    }
    cg.set_swap(Some(128 * MIB), Some(32 * MIB))
        .map_err(|e| e.to_string())?;
    let before = lab.snapshot(&cg, None);
    let w = lab.hold(&cg, &["anon=48M".into()])?;
    let after = lab.snapshot(&cg, Some(w.pid()));
    w.finish();
    let mut r = Rec::default();
    r.take(
        "",
        &before,
        &after,
        &[
            "cgroup.usage",
            "cgroup.anon",
            "cgroup.swap",
            "events.oom_kill",
        ],
    );
    cg.remove().map_err(|e| e.to_string())?;
    r.delta_in("cgroup.swap", Some(16 * M), None);
    r.delta_in("events.oom_kill", Some(0), Some(0));
    Ok(r.done())
}

/// Polls `dying()` for up to `wait` until `want` holds; returns the last value.
fn dying_settle(lab: &Lab, wait: Duration, want: impl Fn(u64) -> bool) -> Option<u64> {
    let end = Instant::now() + wait;
    loop {
        let d = lab.dying();
        if d.is_some_and(&want) || Instant::now() >= end {
            return d;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dying(lab: &Lab) -> Result<Done, String> {
    if let Some(p) = lab.disk_dir_problem() {
        return Ok(Done::skipped(p));
    }
    // The count is host-wide: other memcgs being removed or freed at the same moment move
    // it too. Up to three attempts; the first in which both phases behave is reported.
    let mut last = None;
    for attempt in 1..=3 {
        let mut r = dying_once(lab)?;
        if r.checks.iter().all(|(_, ok)| *ok) {
            if attempt > 1 {
                r.check(
                    format!("(attempt {attempt}: host-wide dying count disturbed before)"),
                    true,
                );
            }
            return Ok(r.done());
        }
        last = Some(r);
    }
    Ok(last
        .map(Rec::done)
        .unwrap_or_else(|| Done::skipped("no attempt ran")))
}

fn dying_once(lab: &Lab) -> Result<Rec, String> {
    let mut r = Rec::default();
    for (phase, reclaim_first) in [("charged", false), ("reclaimed", true)] {
        let f = lab.file(&format!("dying-{phase}"));
        let res = (|| -> Result<[Option<u64>; 3], String> {
            let cg = lab.cgroup(&format!("dying-{phase}"))?;
            let w = lab.hold(&cg, &[format!("write={}:16M", f.display())])?;
            w.finish();
            if reclaim_first {
                let _ = crate::run::reclaim(&cg, lab.h.version);
            }
            let charged = read::read_cgroup(&lab.root, &lab.h, cg.path(), Level::Sample)
                .ok()
                .and_then(|c| c.usage.current);
            let before = lab.dying();
            cg.remove().map_err(|e| e.to_string())?;
            let after = if reclaim_first {
                // A memcg with nothing charged is freed after an RCU grace period and a
                // work item: wait for the count to come back.
                // (10 s: Debian's 5.10 under TCG took longer than 3 s.)
                let b = before.unwrap_or(0);
                dying_settle(lab, Duration::from_secs(10), |d| d <= b)
            } else {
                // A charged one becomes dying at rmdir: read at once, before unrelated
                // memcgs elsewhere on the host change the count.
                lab.dying()
            };
            Ok([charged, before, after])
        })();
        // Removing the file frees its page cache, and with it the dying memcg.
        let _ = std::fs::remove_file(&f);
        let [charged, before, after] = res?;
        r.set(&format!("{phase}.cgroup.usage_at_rmdir"), Some(0), charged);
        r.set(&format!("{phase}.host.dying_memcgs"), before, after);
    }
    r.delta_in("charged.cgroup.usage_at_rmdir", Some(16 * M), None);
    r.delta_in("charged.host.dying_memcgs", Some(1), None);
    let old_cgwb = lab.h.version == Version::V2
        && crate::kernel::Release::running().is_some_and(|k| !k.at_least(5, 14));
    if old_cgwb {
        // Before 5.14 ("writeback, cgroup: release dying cgwbs by switching attached inodes")
        // the cgroup-writeback structure of a file the memcg wrote holds it until the inode
        // is evicted, reclaimed or not: measured on Debian's 5.10.
        r.check(
            "v2 before 5.14: the written file's cgroup writeback pins the reclaimed memcg too, until the inode goes",
            true,
        );
        r.delta_in("reclaimed.host.dying_memcgs", None, Some(1));
    } else {
        r.delta_in("reclaimed.host.dying_memcgs", None, Some(0));
    }
    r.delta_in("reclaimed.cgroup.usage_at_rmdir", None, Some(M));
    Ok(r)
}

/// Runs the named scenarios (all when `names` is empty). Unknown names are an error listing
/// the known ones.
pub fn run(lab: &Lab, names: &[String]) -> Result<Vec<LabResult>, String> {
    let all = scenarios();
    for n in names {
        if !all.iter().any(|s| s.name == n) {
            return Err(format!(
                "unknown scenario {n:?}; known: {}",
                all.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let mut out = Vec::new();
    for s in all
        .iter()
        .filter(|s| names.is_empty() || names.iter().any(|n| n == s.name))
    {
        out.push(run_one(lab, s));
    }
    Ok(out)
}

fn run_one(lab: &Lab, s: &Scenario) -> LabResult {
    let (verdict, reason, counters) = match (s.run)(lab) {
        Err(e) => (Verdict::NotRun, e, BTreeMap::new()),
        Ok(d) => match d.skipped {
            Some(why) => (Verdict::Skipped, why, d.counters),
            None => {
                let failed: Vec<&str> = d
                    .checks
                    .iter()
                    .filter(|(_, ok)| !ok)
                    .map(|(c, _)| c.as_str())
                    .collect();
                if failed.is_empty() {
                    let held: Vec<&str> = d.checks.iter().map(|(c, _)| c.as_str()).collect();
                    (Verdict::AsExpected, held.join("; "), d.counters)
                } else {
                    (
                        Verdict::Differs,
                        format!("not as documented: {}", failed.join("; ")),
                        d.counters,
                    )
                }
            }
        },
    };
    LabResult {
        name: s.name.to_string(),
        verdict,
        reason,
        expected: s.expected.to_string(),
        counters,
    }
}

/// Whether every scenario ran and held (skipped ones aside): `lab` as a check.
pub fn all_held(results: &[LabResult]) -> bool {
    results
        .iter()
        .all(|r| matches!(r.verdict, Verdict::AsExpected | Verdict::Skipped))
}

/// The scenarios that cause a real OOM kill or leave a dying cgroup (`--skip-oom`).
pub const DISRUPTIVE: &[&str] = &["oom-kill", "dying-cgroup"];

/// A `skipped` result for a scenario left out by `--skip-oom`.
pub fn skipped_by_flag(name: &str) -> LabResult {
    let expected = scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.expected.to_string())
        .unwrap_or_default();
    LabResult {
        name: name.to_string(),
        verdict: Verdict::Skipped,
        reason: "--skip-oom: causes a real OOM kill or leaves a dying cgroup".into(),
        expected,
        counters: BTreeMap::new(),
    }
}
