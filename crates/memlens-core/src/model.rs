//! What one sample of the kernel's memory counters means: plain typed structs filled by the
//! kernel sources (`cgroup`, `proc`) and read by everything else.
//!
//! Every counter is an `Option`: `None` means the kernel did not provide it (file or key
//! absent, or unreadable: the reason is in `problems`), never 0. Limits distinguish
//! "unlimited" from "unavailable" with [`Limit`].

use serde::Serialize;
use std::path::PathBuf;

/// cgroup version of a hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// cgroup v1 (`cgroup` mount with the `memory` option).
    V1,
    /// cgroup v2 (`cgroup2` mount whose `cgroup.controllers` lists `memory`).
    V2,
}

/// In JSON the number 1 or 2, as every report writes it (one type per field).
impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

impl Version {
    /// 1 or 2.
    pub fn number(self) -> u8 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
        }
    }
}

/// The mounted hierarchy that holds the memory controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hierarchy {
    /// v1 or v2.
    pub version: Version,
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory` or `/sys/fs/cgroup`.
    pub mount_point: PathBuf,
    /// The mount's root within the hierarchy (mountinfo field 4): `/` normally, the
    /// container's own cgroup when a container sees a bind mount without a cgroup namespace.
    pub mount_root: String,
}

/// A memory limit as the kernel states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// `max` (v2) or the page-counter maximum 9223372036854771712 (v1).
    Unlimited,
    /// A limit in bytes.
    Bytes(u64),
}

impl Limit {
    /// The limit in bytes, `None` when unlimited.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Bytes(b) => Some(b),
        }
    }
}

/// Flat `key value` pairs in the kernel's order (memory.stat, memory.events, cgroup.stat,
/// memory.oom_control). Unknown keys are kept: a newer kernel's counters must not vanish.
/// Serialised as a JSON object keyed by counter, in the kernel's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValues(pub Vec<(String, u64)>);

impl Serialize for KeyValues {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// `(key, value)` pairs as a JSON object in their order (a report's `stat` keyed by counter).
pub fn pairs_as_map<S: serde::Serializer>(v: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, x) in v {
        m.serialize_entry(k, x)?;
    }
    m.end()
}

/// PSI averages as the kernel prints them: two decimals (kernel/sched/psi.c
/// psi_show() `%lu.%02lu`), not the f32 noise of 0.10000000149.
fn psi_avg<S: serde::Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((*v as f64 * 100.0).round() / 100.0)
}

impl KeyValues {
    /// The value of `key`, if the kernel printed it.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Whether the kernel printed `key`.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

/// One line of a PSI file (`some` or `full`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PressureLine {
    /// Share of wall time stalled over the last 10 s, in percent.
    #[serde(serialize_with = "psi_avg")]
    pub avg10: f32,
    /// Same over 60 s.
    #[serde(serialize_with = "psi_avg")]
    pub avg60: f32,
    /// Same over 300 s.
    #[serde(serialize_with = "psi_avg")]
    pub avg300: f32,
    /// Total stall time in microseconds.
    pub total_usec: u64,
}

/// Pressure stall information for memory (Documentation/accounting/psi.rst).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pressure {
    /// Some tasks stalled on memory.
    pub some: PressureLine,
    /// All non-idle tasks stalled on memory at once.
    pub full: PressureLine,
}

/// Limits and protections of one cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Limits {
    /// v1 `memory.limit_in_bytes`, v2 `memory.max`.
    pub max: Option<Limit>,
    /// v2 `memory.high` (throttling limit).
    pub high: Option<Limit>,
    /// v2 `memory.low` (best-effort protection).
    pub low: Option<u64>,
    /// v2 `memory.min` (hard protection).
    pub min: Option<u64>,
    /// v1 `memory.soft_limit_in_bytes`.
    pub soft: Option<Limit>,
    /// v1 `memory.memsw.limit_in_bytes` (memory + swap).
    pub memsw: Option<Limit>,
    /// v2 `memory.swap.max`.
    pub swap_max: Option<Limit>,
    /// v1 `memory.kmem.limit_in_bytes`.
    pub kmem: Option<Limit>,
    /// v1 `hierarchical_memory_limit` from memory.stat: the smallest limit on the path to root.
    pub hierarchical: Option<Limit>,
    /// v1 `hierarchical_memsw_limit` from memory.stat.
    pub hierarchical_memsw: Option<Limit>,
    /// v2 `memory.oom.group`: the whole cgroup is killed together.
    pub oom_group: Option<bool>,
    /// v1 `memory.swappiness`.
    pub swappiness: Option<u64>,
    /// v1 `memory.use_hierarchy`.
    pub use_hierarchy: Option<bool>,
    /// v2 `memory.zswap.max` (5.19+): the cap on this cgroup's compressed zswap pool.
    pub zswap_max: Option<Limit>,
    /// v2 `memory.zswap.writeback` (6.8+): whether zswap may write pages on to the swap device.
    pub zswap_writeback: Option<bool>,
}

/// Usage counters of one cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// v1 `memory.usage_in_bytes`, v2 `memory.current`.
    #[serde(rename = "current_bytes")]
    pub current: Option<u64>,
    /// v1 `memory.max_usage_in_bytes`, v2 `memory.peak` (5.19+).
    #[serde(rename = "peak_bytes")]
    pub peak: Option<u64>,
    /// v1 `memory.memsw.usage_in_bytes`.
    #[serde(rename = "memsw_bytes")]
    pub memsw: Option<u64>,
    /// v1 `memory.memsw.max_usage_in_bytes`.
    #[serde(rename = "memsw_peak_bytes")]
    pub memsw_peak: Option<u64>,
    /// v2 `memory.swap.current`.
    #[serde(rename = "swap_bytes")]
    pub swap: Option<u64>,
    /// v2 `memory.swap.peak`.
    #[serde(rename = "swap_peak_bytes")]
    pub swap_peak: Option<u64>,
    /// v1 `memory.kmem.usage_in_bytes` (charged to usage too on modern kernels).
    #[serde(rename = "kmem_bytes")]
    pub kmem: Option<u64>,
    /// v1 `memory.kmem.tcp.usage_in_bytes` (not charged to usage on v1).
    #[serde(rename = "kmem_tcp_bytes")]
    pub kmem_tcp: Option<u64>,
    /// v2 `memory.zswap.current` (5.19+): the compressed pool, charged to memory.current.
    pub zswap: Option<u64>,
}

/// One huge page size of the v2 hugetlb controller (`hugetlb.<size>.*` in the cgroup's
/// directory; cgroup-v2.rst "HugeTLB").
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HugetlbSize {
    /// The kernel's name for the size in the file names: `2MB`, `1GB`.
    pub size: String,
    /// `hugetlb.<size>.current`.
    pub current: Option<u64>,
    /// `hugetlb.<size>.max`.
    pub max: Option<Limit>,
    /// `hugetlb.<size>.events` `max`: allocations refused at the limit.
    pub events_max: Option<u64>,
}

/// Limit hits and OOM events of one cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Events {
    /// v1 `memory.failcnt`: times usage hit the limit.
    pub failcnt: Option<u64>,
    /// v1 `memory.memsw.failcnt`.
    pub memsw_failcnt: Option<u64>,
    /// v1 `memory.oom_control` (`oom_kill_disable`, `under_oom`, `oom_kill` from 4.13).
    pub oom_control: Option<KeyValues>,
    /// v2 `memory.events` (hierarchical: includes descendants).
    pub events: Option<KeyValues>,
    /// v2 `memory.events.local`.
    pub events_local: Option<KeyValues>,
    /// v2 `memory.swap.events`.
    pub swap_events: Option<KeyValues>,
}

impl Events {
    /// OOM kills in this cgroup and below: v2 `memory.events` oom_kill, v1
    /// `memory.oom_control` oom_kill (4.13+). `None` when the kernel does not count them.
    pub fn oom_kills(&self) -> Option<u64> {
        self.events
            .as_ref()
            .and_then(|e| e.get("oom_kill"))
            .or_else(|| self.oom_control.as_ref().and_then(|e| e.get("oom_kill")))
    }
}

/// One memory cgroup, as read at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cgroup {
    /// Path within the hierarchy, `/` for its root.
    pub path: String,
    /// Where its files are (system path).
    pub fs_path: PathBuf,
    /// v1 or v2.
    pub version: Version,
    /// Limits and protections.
    pub limits: Limits,
    /// Usage counters.
    pub usage: Usage,
    /// memory.stat, every key in the kernel's order (v1 holds both local and `total_*`).
    pub stat: Option<KeyValues>,
    /// v2 hugetlb controller files, one entry per huge page size the host has (empty when
    /// the controller is not enabled for this cgroup, or on v1 where it is its own hierarchy).
    pub hugetlb: Vec<HugetlbSize>,
    /// Limit hits and OOM events.
    pub events: Events,
    /// v2 `memory.pressure`.
    pub pressure: Option<Pressure>,
    /// v2 `cgroup.stat` (nr_descendants, nr_dying_descendants).
    pub cgroup_stat: Option<KeyValues>,
    /// Member processes (cgroup.procs).
    pub procs: Option<Vec<i32>>,
    /// Names of the child cgroups.
    pub children: Vec<String>,
    /// Files that exist but could not be read or parsed (never silently zero).
    pub problems: Vec<String>,
}

impl Cgroup {
    /// True for the hierarchy's root cgroup.
    pub fn is_root(&self) -> bool {
        self.path == "/"
    }

    /// A memory.stat key, preferring the hierarchical `total_` form on v1 (it equals the
    /// local value in a leaf, and includes the children otherwise).
    pub fn stat_hier(&self, key: &str) -> Option<u64> {
        let stat = self.stat.as_ref()?;
        match self.version {
            Version::V1 => stat.get(&format!("total_{key}")).or_else(|| stat.get(key)),
            Version::V2 => stat.get(key),
        }
    }
}

/// One process's memory, from /proc/PID/status and /proc/PID/smaps_rollup.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Process {
    /// Process ID.
    pub pid: i32,
    /// Command name (status `Name`).
    pub comm: Option<String>,
    /// Full command line, space separated.
    pub cmdline: Option<String>,
    /// Real user ID (status `Uid`, first field).
    pub uid: Option<u32>,
    /// Its name in the node's /etc/passwd (`None`: not listed there, e.g. a container's own
    /// user).
    pub user: Option<String>,
    /// No address space (status has no VmSize): a kernel thread or a zombie. Its memory
    /// figures are 0.
    pub no_mm: bool,
    /// The cgroup (within the memory hierarchy) the process belongs to.
    pub cgroup: Option<String>,
    /// status `VmSize`: virtual size (reserved, not necessarily touched).
    pub vm_size_bytes: Option<u64>,
    /// status `VmRSS` = RssAnon + RssFile + RssShmem: what top shows as RES.
    pub rss_bytes: Option<u64>,
    /// status `RssAnon` (4.5+).
    pub rss_anon_bytes: Option<u64>,
    /// status `RssFile` (4.5+): mapped file pages, charged to the cgroup's *cache*.
    pub rss_file_bytes: Option<u64>,
    /// status `RssShmem` (4.5+): mapped shmem/tmpfs, charged to the cgroup's *cache*.
    pub rss_shmem_bytes: Option<u64>,
    /// status `VmSwap`.
    pub swap_bytes: Option<u64>,
    /// smaps_rollup `Pss` (4.14+): shared pages divided among their users.
    pub pss_bytes: Option<u64>,
    /// smaps_rollup `Pss_Anon` (5.8+).
    pub pss_anon_bytes: Option<u64>,
    /// smaps_rollup `Pss_File` (5.8+).
    pub pss_file_bytes: Option<u64>,
    /// smaps_rollup `Pss_Shmem` (5.8+).
    pub pss_shmem_bytes: Option<u64>,
    /// smaps_rollup `Private_Clean + Private_Dirty`: what only this process maps (USS).
    pub uss_bytes: Option<u64>,
    /// smaps_rollup `SwapPss`.
    pub swap_pss_bytes: Option<u64>,
    /// Files that could not be read (permission, process exited).
    pub problems: Vec<String>,
}

/// The host's memory (/proc/meminfo, /proc/pressure/memory).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Host {
    /// Kernel release (/proc/sys/kernel/osrelease).
    pub kernel: Option<String>,
    /// Every /proc/meminfo line, in bytes where the kernel printed kB.
    pub meminfo: Option<KeyValues>,
    /// /proc/pressure/memory (4.20+ with CONFIG_PSI).
    pub pressure: Option<Pressure>,
    /// Whether lxcfs is mounted over /proc/meminfo in *this* mount namespace, which makes
    /// `free` inside a container show the container's figures.
    pub lxcfs_meminfo: bool,
    /// Files that could not be read.
    pub problems: Vec<String>,
    /// Set when memlens reads a host (`--host-root`) from outside its PID namespace: the
    /// kernel then lists no host process in cgroup.procs, so "no process" means nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_pid_namespace: Option<String>,
    /// Set when the memory hierarchy memlens sees is a container's, not the node's
    /// ([`crate::cgroup::mount::container_scope`]): node-level figures are then n/a.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_scope: Option<String>,
}

impl Host {
    /// A /proc/meminfo value in bytes.
    pub fn mem(&self, key: &str) -> Option<u64> {
        self.meminfo.as_ref().and_then(|m| m.get(key))
    }
}

/// A tmpfs (or other memory-backed file system) mounted where a member process can see it.
/// Its pages are shmem: charged to the cgroup that first touched them, never reclaimable
/// without swap (Documentation/filesystems/tmpfs.rst).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TmpfsMount {
    /// Mount point as the member process sees it (mountinfo field 5).
    pub mount_point: String,
    /// File system type (`tmpfs`, `shm`...).
    pub fs_type: String,
    /// `major:minor` of the super block: one tmpfs instance, whatever its bind mounts.
    pub device: String,
    /// PIDs of the member processes that see this mount.
    pub pids: Vec<i32>,
    /// Size of the file system: f_blocks × f_bsize (the `size=` option; half of RAM by default).
    pub size_bytes: Option<u64>,
    /// Bytes used: (f_blocks − f_bfree) × f_bsize from statfs(2). Every used byte is a page
    /// in memory or swap, charged to whichever cgroup wrote it first.
    pub used_bytes: Option<u64>,
    /// Where the numbers came from.
    pub source: String,
    /// Its largest files (path within the mount, bytes allocated), largest first.
    pub largest: Vec<(String, u64)>,
}

/// A System V shared memory segment created or last used by a member process
/// (/proc/sysvipc/shm). Its pages are shmem, charged to the cgroup that touched them first,
/// and they stay until the segment is removed, even with no process attached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SysvSegment {
    /// Segment ID (`ipcs -m`).
    pub shmid: u64,
    /// Key (0 = IPC_PRIVATE).
    pub key: i32,
    /// Size requested at shmget.
    pub size_bytes: u64,
    /// Resident part.
    pub rss_bytes: u64,
    /// Part in swap.
    pub swap_bytes: u64,
    /// Creator PID.
    pub cpid: i32,
    /// Last shmat/shmdt PID.
    pub lpid: i32,
    /// Processes attached now.
    pub nattch: u32,
}
