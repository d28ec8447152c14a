//! The exporter's metric model: one snapshot of every metric `memlens serve` exposes, built
//! from the overview walk (model + views, never from files directly), and encoded by
//! `render::prometheus` in the Prometheus 0.0.4 and OpenMetrics 1.0 text formats.
//!
//! Names follow cAdvisor where cAdvisor has the metric (same labels `id`, `namespace`, `pod`,
//! `container`, `image`, `name`; same formulas as `views::tools`), so existing dashboards and
//! alerts work; everything else is `memlens_*`. A value the kernel does not provide has no
//! series at all (never a 0 that would look like a measurement).

use crate::cgroup::read::{self, Level};
use crate::cgroup::tier::Tiers;
use crate::cgroup::walk::Tree;
use crate::identity::Identity;
use crate::model::{Cgroup, Hierarchy, Limit, Version};
use crate::overview::{self, Overview, Row};
use crate::sys::Root;
use crate::views::breakdown::Breakdown;
use crate::views::derived::{Derived, EffectiveLimit};
use crate::views::tools::Tools;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing count. The model's name is the 0.0.4 exposition name, which
    /// ends in `_total` for every counter memlens defines; cAdvisor's `container_memory_failcnt`
    /// does not, and is exposed as `unknown` in OpenMetrics to keep its name.
    Counter,
    /// A histogram: its samples are the cumulative bucket counts (label `le`, the bound as
    /// text, `+Inf` last), then the sum (label `le` absent, `Value::Float`) and the count
    /// (`Value::Int`), in that order (see [`DurationHistogram::family`]).
    Histogram,
}

/// A sample value: integers stay exact (byte counts above 2^53 must not round).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// Bytes or a count.
    Int(u64),
    /// Seconds and other fractions.
    Float(f64),
}

/// Label pairs, shared by every sample of one cgroup (35 families × 1,000 cgroups would
/// otherwise copy the same six strings 35 times).
pub type Labels = Arc<[(&'static str, String)]>;

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels.
    pub labels: Labels,
    /// Its value.
    pub value: Value,
}

/// One metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Exposition name (0.0.4).
    pub name: &'static str,
    /// HELP text: what it is, from which file, by which formula.
    pub help: &'static str,
    /// Type.
    pub kind: Kind,
    /// The samples (none: the family is not exposed).
    pub samples: Vec<Sample>,
}

/// A per-cgroup metric: name, type, help.
struct Def(&'static str, Kind, &'static str);

use Kind::{Counter, Gauge};

/// Per-cgroup families, in exposition order. Indices are `M_*` below.
const CGROUP_DEFS: &[Def] = &[
    Def(
        "container_memory_working_set_bytes",
        Gauge,
        "Working set (cAdvisor, kubectl top): usage - inactive_file, clamped at 0 (v1 memory.usage_in_bytes - memory.stat total_inactive_file; v2 memory.current - memory.stat inactive_file).",
    ),
    Def(
        "container_memory_rss",
        Gauge,
        "cAdvisor rss: anonymous memory incl. swap cache (v1 memory.stat total_rss; v2 memory.stat anon).",
    ),
    Def(
        "container_memory_cache",
        Gauge,
        "cAdvisor cache: page cache incl. shmem/tmpfs (v1 memory.stat total_cache; v2 memory.stat file).",
    ),
    Def(
        "container_memory_swap",
        Gauge,
        "cAdvisor swap (v1 memory.stat total_swap; v2 memory.swap.current).",
    ),
    Def(
        "container_memory_mapped_file",
        Gauge,
        "cAdvisor mapped_file: page cache mapped into processes (v1 memory.stat total_mapped_file; v2 memory.stat file_mapped).",
    ),
    Def(
        "container_memory_usage_bytes",
        Gauge,
        "Usage incl. page cache (v1 memory.usage_in_bytes; v2 memory.current; v2 root: memory.stat anon + file).",
    ),
    Def(
        "container_memory_failcnt",
        Counter,
        "Times usage hit the limit (v1 memory.failcnt). Not exposed on v2, which has no such counter (cAdvisor reports a constant 0 there; see memlens_memory_events_max_total).",
    ),
    Def(
        "container_oom_events_total",
        Counter,
        "OOM kills in this cgroup and below, from the kernel's own counter (v1 memory.oom_control oom_kill, 4.13+; v2 memory.events oom_kill). cAdvisor counts the same kills from the kernel log.",
    ),
    Def(
        "memlens_memory_limit_bytes",
        Gauge,
        "Effective memory limit: the smallest v1 memory.limit_in_bytes (or memory.stat hierarchical_memory_limit) / v2 memory.max on the path to the root. No series when unlimited.",
    ),
    Def(
        "memlens_memory_anon_bytes",
        Gauge,
        "Anonymous memory (v1 memory.stat total_rss; v2 memory.stat anon).",
    ),
    Def(
        "memlens_memory_active_file_bytes",
        Gauge,
        "Page cache on the active LRU (memory.stat [total_]active_file).",
    ),
    Def(
        "memlens_memory_inactive_file_bytes",
        Gauge,
        "Page cache on the inactive LRU, reclaimed first (memory.stat [total_]inactive_file).",
    ),
    Def(
        "memlens_memory_shmem_bytes",
        Gauge,
        "shmem/tmpfs/SysV shm: counted in page cache but not reclaimable without swap (memory.stat [total_]shmem).",
    ),
    Def(
        "memlens_memory_kernel_bytes",
        Gauge,
        "Kernel memory charged to the cgroup (v1 memory.kmem.usage_in_bytes; v2 memory.stat kernel, or the sum of kernel_stack + pagetables + percpu + slab + vmalloc).",
    ),
    Def(
        "memlens_memory_slab_reclaimable_bytes",
        Gauge,
        "Reclaimable slab, e.g. dentries and inodes (memory.stat slab_reclaimable).",
    ),
    Def(
        "memlens_memory_slab_unreclaimable_bytes",
        Gauge,
        "Unreclaimable slab (memory.stat slab_unreclaimable).",
    ),
    Def(
        "memlens_memory_sock_bytes",
        Gauge,
        "Network socket buffers (v2 memory.stat sock).",
    ),
    Def(
        "memlens_memory_pagetables_bytes",
        Gauge,
        "Page tables (v2 memory.stat pagetables).",
    ),
    Def(
        "memlens_memory_reclaimable_bytes",
        Gauge,
        "Dropped at the limit before an OOM kill: active_file + inactive_file - file_dirty - file_writeback + slab_reclaimable (memory.stat).",
    ),
    Def(
        "memlens_memory_not_reclaimable_bytes",
        Gauge,
        "Cannot be reclaimed without swap: anon + shmem + (kernel - slab_reclaimable) (memory.stat, kernel as memlens_memory_kernel_bytes).",
    ),
    Def(
        "memlens_memory_oom_headroom_bytes",
        Gauge,
        "How much more the cgroup can pin before the OOM killer runs: effective limit - not reclaimable. No series without a limit.",
    ),
    Def(
        "memlens_memory_events_high_total",
        Counter,
        "Times usage went over memory.high and was throttled (v2 memory.events high).",
    ),
    Def(
        "memlens_memory_events_max_total",
        Counter,
        "Times usage hit memory.max (v2 memory.events max).",
    ),
    Def(
        "memlens_memory_oom_kills_total",
        Counter,
        "Processes killed by the OOM killer in this cgroup and below (v1 memory.oom_control oom_kill, 4.13+; v2 memory.events oom_kill).",
    ),
    Def(
        "memlens_memory_pressure_some_seconds_total",
        Counter,
        "Time some tasks of the cgroup stalled on memory (v2 memory.pressure some total, in seconds).",
    ),
    Def(
        "memlens_memory_pressure_full_seconds_total",
        Counter,
        "Time all non-idle tasks of the cgroup stalled on memory at once (v2 memory.pressure full total, in seconds).",
    ),
    Def(
        "memlens_memory_workingset_refault_file_total",
        Counter,
        "Evicted page-cache pages faulted back in, a sign the limit squeezes the cache (v1 memory.stat total_workingset_refault_file, v2 memory.stat workingset_refault_file; 5.9+).",
    ),
    Def(
        "container_spec_memory_limit_bytes",
        Gauge,
        "cAdvisor spec limit: the cgroup's own memory limit (v1 memory.limit_in_bytes, v2 memory.max); no series when unlimited (cAdvisor prints 0 or 2^63 there).",
    ),
    Def(
        "container_memory_max_usage_bytes",
        Gauge,
        "cAdvisor max usage: the peak of usage (v1 memory.max_usage_in_bytes; v2 memory.peak, 5.19+).",
    ),
    Def(
        "container_memory_kernel_usage",
        Gauge,
        "cAdvisor kernel usage (v1 memory.kmem.usage_in_bytes; v2 memory.stat kernel, or the sum of its parts before 5.18).",
    ),
    Def(
        "memlens_memory_zswap_bytes",
        Gauge,
        "The cgroup's compressed zswap pool, charged to its memory usage (v2 memory.stat zswap, 5.19+). No series where the kernel lacks it.",
    ),
    Def(
        "memlens_memory_zswapped_bytes",
        Gauge,
        "What the zswap pool holds, uncompressed; zswapped / zswap is the compression ratio (v2 memory.stat zswapped, 5.19+).",
    ),
    Def(
        "memlens_memory_zswpout_total",
        Counter,
        "Pages compressed into zswap (v2 memory.stat zswpout, 5.19+).",
    ),
    Def(
        "memlens_memory_zswpwb_total",
        Counter,
        "Pages written back from zswap to the swap device (v2 memory.stat zswpwb, 6.8+).",
    ),
    Def(
        "memlens_memory_read_timestamp_seconds",
        Gauge,
        "When this cgroup's files were read (unix seconds): every series of the cgroup is from that read. With tiered reads (serve --full-every, --reread-above) a cgroup whose usage has not moved is read in full only every --full-every collections; its values stay those of the last full read, exact for that moment.",
    ),
    Def(
        "memlens_memory_oom_limit_reached_total",
        Counter,
        "Times this cgroup's own limit was reached with an allocation about to fail: the level whose limit fired (v2 memory.events.local oom, 5.2+; its children count their own). Only for cgroups whose subtree counted an OOM (memory.events oom > 0), so the exporter reads the extra file only there; no series on v1.",
    ),
];

const M_WS: usize = 0;
const M_RSS: usize = 1;
const M_CACHE: usize = 2;
const M_SWAP: usize = 3;
const M_MAPPED: usize = 4;
const M_USAGE: usize = 5;
const M_FAILCNT: usize = 6;
const M_OOM_EVENTS: usize = 7;
const M_LIMIT: usize = 8;
const M_ANON: usize = 9;
const M_ACTIVE_FILE: usize = 10;
const M_INACTIVE_FILE: usize = 11;
const M_SHMEM: usize = 12;
const M_KERNEL: usize = 13;
const M_SLAB_R: usize = 14;
const M_SLAB_U: usize = 15;
const M_SOCK: usize = 16;
const M_PAGETABLES: usize = 17;
const M_RECLAIMABLE: usize = 18;
const M_NOT_RECLAIMABLE: usize = 19;
const M_HEADROOM: usize = 20;
const M_EV_HIGH: usize = 21;
const M_EV_MAX: usize = 22;
const M_OOM_KILLS: usize = 23;
const M_PSI_SOME: usize = 24;
const M_PSI_FULL: usize = 25;
const M_REFAULT: usize = 26;
const M_SPEC_LIMIT: usize = 27;
const M_MAX_USAGE: usize = 28;
const M_KERNEL_USAGE: usize = 29;
const M_ZSWAP: usize = 30;
const M_ZSWAPPED: usize = 31;
const M_ZSWPOUT: usize = 32;
const M_ZSWPWB: usize = 33;
const M_READ_AT: usize = 34;
const M_OOM_LOCAL: usize = 35;
const N_CGROUP: usize = 36;
/// How many values a [`CgSeries`] has (one per per-cgroup definition).
pub const N_CGROUP_VALUES: usize = N_CGROUP;

/// The /proc/meminfo fields exported as `memlens_host_meminfo_bytes{field=...}`.
pub const MEMINFO_FIELDS: &[&str] = &[
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Buffers",
    "Cached",
    "Shmem",
    "Active(file)",
    "Inactive(file)",
    "AnonPages",
    "Slab",
    "SReclaimable",
    "SUnreclaim",
    "SwapTotal",
    "SwapFree",
];

/// Every family name the exporter can emit (for tests and the dashboard check).
pub fn family_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = CGROUP_DEFS.iter().map(|d| d.0).collect();
    v.extend(HOST_NAMES);
    v.push(OOM_KILL_INFO);
    v.push(FAILURES);
    v.push(COLLECTED_AT);
    v.push(crate::trend::FORECAST_METRIC);
    v.extend(OWN_NAMES);
    v
}

const HOST_NAMES: [&str; 8] = [
    "memlens_host_meminfo_bytes",
    "memlens_host_memory_pressure_some_seconds_total",
    "memlens_host_memory_pressure_full_seconds_total",
    "memlens_node_memory_available_bytes",
    "memlens_dying_cgroups",
    "memlens_collection_duration_seconds",
    "memlens_collection_cgroups",
    "memlens_collection_problems",
];

/// One collection: the overview (all cgroups, for the JSON API) and the metric families.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The overview with every cgroup.
    pub overview: Overview,
    /// The metric families, in exposition order.
    pub families: Vec<Family>,
    /// How long the collection took.
    pub duration: Duration,
}

/// The per-cgroup values computed inside the overview walk.
pub type CgValues = [Option<Value>; N_CGROUP];

/// Page-fault samples of one cgroup: (failure_type, scope, count).
pub type Faults = Vec<(&'static str, &'static str, u64)>;

/// One cgroup's series: its labels, the values of the per-cgroup families, its page faults.
/// The exporter encodes a cgroup's lines again only when this changed
/// (`render::prometheus::LineCache`).
#[derive(Debug, Clone, PartialEq)]
pub struct CgSeries {
    /// Its cAdvisor labels ([`labels`]).
    pub labels: Labels,
    /// One value per per-cgroup family ([`CGROUP_FAMILIES`] without the last).
    pub values: CgValues,
    /// `container_memory_failures_total`'s samples.
    pub faults: Faults,
}

/// How many per-cgroup families precede the host's in the exposition: the cgroup
/// definitions, then `container_memory_failures_total`.
pub const CGROUP_FAMILIES: usize = N_CGROUP + 1;

/// How many samples `series` has in per-cgroup family `i` (< [`CGROUP_FAMILIES`]).
pub fn samples_in(series: &CgSeries, i: usize) -> usize {
    match series.values.get(i) {
        Some(v) => usize::from(v.is_some()),
        None => series.faults.len(),
    }
}

/// The per-cgroup families (exposition order, [`CGROUP_FAMILIES`] of them) of `series`, in
/// its order.
pub fn cgroup_families(series: &[CgSeries]) -> Vec<Family> {
    let mut families: Vec<Family> = CGROUP_DEFS
        .iter()
        .map(|d| Family {
            name: d.0,
            help: d.2,
            kind: d.1,
            samples: Vec::new(),
        })
        .collect();
    for cs in series {
        for (f, v) in families.iter_mut().zip(cs.values.iter()) {
            if let Some(v) = v {
                f.samples.push(Sample {
                    labels: cs.labels.clone(),
                    value: *v,
                });
            }
        }
    }
    let failures_samples: Vec<Sample> = series
        .iter()
        .flat_map(|cs| {
            cs.faults.iter().map(move |(ty, scope, v)| {
                let mut l: Vec<(&'static str, String)> = cs.labels.to_vec();
                l.push(("failure_type", (*ty).to_string()));
                l.push(("scope", (*scope).to_string()));
                Sample {
                    labels: Arc::from(l),
                    value: Value::Int(*v),
                }
            })
        })
        .collect();
    families.push(Family {
        name: FAILURES,
        help: "cAdvisor memory failures: page faults (memory.stat pgfault, pgmajfault); scope container = the cgroup's own (v1 only), hierarchy = with its descendants (v1 total_pgfault; v2 pgfault).",
        kind: Counter,
        samples: failures_samples,
    });
    families
}

fn cgroup_values(row: &Row, cg: &Cgroup, mem_total: Option<u64>) -> CgValues {
    let mut v: CgValues = [None; N_CGROUP];
    let int = |x: Option<u64>| x.map(Value::Int);
    let secs = |usec: u64| Value::Float(usec as f64 / 1e6);
    // The same formulas as `memlens show` (views::breakdown, derived, tools); the effective
    // limit comes from the walk, which already read every ancestor.
    let b = Breakdown::of(cg);
    let limit = EffectiveLimit {
        bytes: row.limit_bytes,
        set_by: None,
        source: "smallest limit on the path to the root".into(),
    };
    let mut d = Derived::with_limit(cg, &b, limit);
    d.cap_at_host(mem_total);
    let tools = Tools::of(cg, &b, &d.limit, None, &Default::default(), &[]);
    let tool = |k: &str| tools.get(k).and_then(|f| f.bytes);
    v[M_WS] = int(tool("working_set"));
    v[M_RSS] = int(tool("cadvisor_rss"));
    v[M_CACHE] = int(tool("cadvisor_cache"));
    v[M_SWAP] = int(tool("cadvisor_swap"));
    v[M_MAPPED] = int(tool("cadvisor_mapped_file"));
    v[M_USAGE] = int(row.usage_bytes);
    v[M_FAILCNT] = int(cg.events.failcnt);
    v[M_OOM_EVENTS] = int(row.oom_kills);
    v[M_LIMIT] = int(row.limit_bytes);
    v[M_ANON] = int(b.anon.bytes);
    v[M_ACTIVE_FILE] = int(b.active_file.bytes);
    v[M_INACTIVE_FILE] = int(b.inactive_file.bytes);
    v[M_SHMEM] = int(b.shmem.bytes);
    v[M_KERNEL] = int(row.kernel_bytes);
    v[M_SLAB_R] = int(b.slab_reclaimable.bytes);
    v[M_SLAB_U] = int(b.slab_unreclaimable.bytes);
    v[M_SOCK] = int(b.sock.bytes);
    v[M_PAGETABLES] = int(b.pagetables.bytes);
    v[M_RECLAIMABLE] = int(d.reclaimable.bytes);
    v[M_NOT_RECLAIMABLE] = int(d.not_reclaimable.bytes);
    v[M_HEADROOM] = int(d.oom_headroom.bytes);
    if let Some(e) = &cg.events.events {
        v[M_EV_HIGH] = int(e.get("high"));
        v[M_EV_MAX] = int(e.get("max"));
    }
    v[M_OOM_KILLS] = int(row.oom_kills);
    if let Some(p) = &cg.pressure {
        v[M_PSI_SOME] = Some(secs(p.some.total_usec));
        v[M_PSI_FULL] = Some(secs(p.full.total_usec));
    }
    // v1 prints it too (5.9+, total_ for the subtree).
    v[M_REFAULT] = int(cg.stat_hier("workingset_refault_file"));
    v[M_SPEC_LIMIT] = int(cg.limits.max.and_then(Limit::bytes));
    v[M_MAX_USAGE] = int(cg.usage.peak);
    v[M_KERNEL_USAGE] = int(row.kernel_bytes);
    v[M_READ_AT] = Some(Value::Float(crate::store::now_ms() as f64 / 1e3));
    if cg.version == Version::V2 {
        let stat = |k: &str| cg.stat.as_ref().and_then(|s| s.get(k));
        v[M_ZSWAP] = int(stat("zswap"));
        v[M_ZSWAPPED] = int(stat("zswapped"));
        v[M_ZSWPOUT] = int(stat("zswpout"));
        v[M_ZSWPWB] = int(stat("zswpwb"));
        v[M_OOM_LOCAL] = int(cg.events.events_local.as_ref().and_then(|e| e.get("oom")));
    }
    v
}

/// cAdvisor's `container_memory_failures_total{failure_type, scope}`: page faults from
/// memory.stat, `scope="container"` the cgroup's own (v1 pgfault/pgmajfault; v2 has only
/// the subtree's), `scope="hierarchy"` its subtree's (v1 total_pgfault; v2 pgfault).
fn failures(cg: &Cgroup) -> Vec<(&'static str, &'static str, u64)> {
    let Some(stat) = cg.stat.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (ty, key) in [("pgfault", "pgfault"), ("pgmajfault", "pgmajfault")] {
        let (own, hier) = match cg.version {
            Version::V1 => (stat.get(key), stat.get(&format!("total_{key}"))),
            Version::V2 => (None, stat.get(key)),
        };
        if let Some(v) = own {
            out.push((ty, "container", v));
        }
        if let Some(v) = hier {
            out.push((ty, "hierarchy", v));
        }
    }
    out
}

/// The cAdvisor label set of a cgroup: `id` (cgroup path), `namespace`, `pod`, `container`,
/// `image`, `name` (the runtime's name, else the systemd unit). Unknown names are empty, as
/// in cAdvisor (an empty label is the same as no label to Prometheus).
pub fn labels(path: &str, id: &Identity) -> Labels {
    let n = &id.names;
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    Arc::from(vec![
        ("id", path.to_string()),
        ("namespace", s(&n.namespace)),
        ("pod", s(&n.pod)),
        ("container", s(&n.container)),
        ("image", s(&n.image)),
        (
            "name",
            n.runtime_name
                .clone()
                .or(id.unit.clone())
                .unwrap_or_default(),
        ),
    ])
}

/// The family of the OOM kills the kernel log still holds, one series each (value 1):
/// victim, container (name, image, cgroup), constraint, verdict and time, so a dashboard can
/// list what was killed and why next to the bare counters. At most
/// [`crate::oom::KillLog::MAX_KILLS`] series.
pub fn oom_kills_family(pms: &[crate::oom::PostMortem]) -> Family {
    let samples = pms
        .iter()
        .map(|p| {
            let r = &p.report;
            let id = p.identity.as_ref();
            let v = r.victim.as_ref();
            let s = |o: Option<String>| o.unwrap_or_default();
            Sample {
                labels: Arc::from(vec![
                    ("number", p.number.to_string()),
                    ("time", s(r.time.clone())),
                    (
                        "victim_pid",
                        s(v.and_then(|v| v.pid).map(|x| x.to_string())),
                    ),
                    ("victim", s(v.and_then(|v| v.comm.clone()))),
                    ("id", s(r.task_memcg.clone().or(r.oom_memcg.clone()))),
                    ("container", s(id.and_then(|i| i.display_name()))),
                    ("image", s(id.and_then(|i| i.names.image.clone()))),
                    ("constraint", s(r.constraint.clone())),
                    // The level whose limit fired (oom/level.rs): container, pod, qos-class,
                    // kubepods, ancestor, own, global, unknown.
                    ("limit", p.limit.level.to_string()),
                    ("verdict", p.verdict.id.to_string()),
                ]),
                value: Value::Int(1),
            }
        })
        .collect();
    Family {
        name: OOM_KILL_INFO,
        help: "One series per OOM kill still in the kernel log (/dev/kmsg or syslog(2)), parsed: victim, container, constraint (CONSTRAINT_MEMCG, CONSTRAINT_NONE...), the level whose limit fired (limit: container, pod, qos-class, kubepods, ancestor, own, global, unknown), memlens's verdict (global, anon-growth, shmem, kernel-memory, dirty-cache, limit-too-small, unknown). The counters are container_oom_events_total.",
        kind: Gauge,
        samples,
    }
}

/// cAdvisor's page-fault counter family.
pub const FAILURES: &str = "container_memory_failures_total";
/// The collection's timestamp family.
pub const COLLECTED_AT: &str = "memlens_collection_timestamp_seconds";

/// Name of [`oom_kills_family`].
pub const OOM_KILL_INFO: &str = "memlens_oom_kill_info";

/// Collects one snapshot: every memory cgroup at `Level::Metrics`, the host, dying cgroups.
pub fn collect(root: &Root, h: &Hierarchy) -> Snapshot {
    collect_tree(root, h, &mut Tree::new())
}

/// [`collect`] with a cgroup list kept between collections ([`Tree`] walks the hierarchy only
/// after cgroups were created or removed): what `memlens serve` does every interval.
pub fn collect_tree(root: &Root, h: &Hierarchy, tree: &mut Tree) -> Snapshot {
    collect_tiered(root, h, tree, None)
}

/// What the tiers keep per cgroup for the exporter: its values and page-fault samples.
#[derive(Debug, Clone)]
pub struct CgExtra(CgValues, Faults);

/// The exporter's tiers ([`crate::cgroup::tier`]).
pub type MetricTiers = Tiers<overview::Kept<CgExtra>>;

/// [`collect_tree`] with tiered reads: what `memlens serve` runs every interval. Every
/// series of a cgroup comes from one read, whose time is its
/// `memlens_memory_read_timestamp_seconds`.
pub fn collect_tiered(
    root: &Root,
    h: &Hierarchy,
    tree: &mut Tree,
    tiers: Option<&mut MetricTiers>,
) -> Snapshot {
    let (mut snap, series) = collect_series(root, h, tree, tiers);
    let mut families = cgroup_families(&series);
    families.append(&mut snap.families);
    snap.families = families;
    snap
}

/// [`collect_tiered`] with the per-cgroup series left unbuilt as families: the snapshot's
/// families are the host's and the collection's (those after the per-cgroup ones), the
/// second result the cgroups' series in row order (what `memlens serve` encodes through its
/// line cache).
pub fn collect_series(
    root: &Root,
    h: &Hierarchy,
    tree: &mut Tree,
    mut tiers: Option<&mut MetricTiers>,
) -> (Snapshot, Vec<CgSeries>) {
    let t = Instant::now();
    let (paths, changed) = tree.paths_changed(root, h);
    if changed && let Some(ti) = tiers.as_mut() {
        ti.retain(paths);
    }
    // Headroom is capped at the host's RAM (views::derived::Derived::cap_at_host).
    let mem_total = root
        .read(std::path::Path::new("/proc/meminfo"))
        .ok()
        .and_then(|m| crate::proc::meminfo(&m).get("MemTotal"));
    let (overview, extras) =
        overview::collect_tiered(root, h, paths, true, Level::Metrics, tiers, |row, cg| {
            CgExtra(cgroup_values(row, cg, mem_total), failures(cg))
        });
    let (values, faults): (Vec<CgValues>, Vec<_>) =
        extras.into_iter().map(|CgExtra(v, f)| (v, f)).unzip();
    let dying = read::dying_cgroups(root, h, overview.rows.len());
    let mut families: Vec<Family> = Vec::new();
    let mut problems = overview.host.host.problems.len();
    // Names are added to rows after the walk: take the final labels by position.
    let series: Vec<CgSeries> = overview
        .rows
        .iter()
        .zip(values)
        .zip(faults)
        .map(|((row, values), faults)| {
            problems += row.problems.len();
            CgSeries {
                labels: labels(&row.path, &row.identity),
                values,
                faults,
            }
        })
        .collect();
    let none: Labels = Arc::from(Vec::new());
    let one = |v: Option<Value>| -> Vec<Sample> {
        v.map(|value| Sample {
            labels: none.clone(),
            value,
        })
        .into_iter()
        .collect()
    };
    let host = &overview.host.host;
    families.push(Family {
        name: HOST_NAMES[0],
        help: "Host memory from /proc/meminfo (kB converted to bytes), one series per field.",
        kind: Gauge,
        samples: MEMINFO_FIELDS
            .iter()
            .filter_map(|f| {
                Some(Sample {
                    labels: Arc::from(vec![("field", (*f).to_string())]),
                    value: Value::Int(host.mem(f)?),
                })
            })
            .collect(),
    });
    let psi = host.pressure.as_ref();
    families.push(Family {
        name: HOST_NAMES[1],
        help: "Time some tasks on the host stalled on memory (/proc/pressure/memory some total, in seconds).",
        kind: Counter,
        samples: one(psi.map(|p| Value::Float(p.some.total_usec as f64 / 1e6))),
    });
    families.push(Family {
        name: HOST_NAMES[2],
        help: "Time all non-idle tasks on the host stalled on memory at once (/proc/pressure/memory full total, in seconds).",
        kind: Counter,
        samples: one(psi.map(|p| Value::Float(p.full.total_usec as f64 / 1e6))),
    });
    families.push(Family {
        name: HOST_NAMES[3],
        help: "kubelet's eviction signal memory.available: MemTotal - (root cgroup usage - inactive_file) (v2 root: anon + file - inactive_file).",
        kind: Gauge,
        samples: one(overview.host.node_memory_available.bytes.map(Value::Int)),
    });
    families.push(Family {
        name: HOST_NAMES[4],
        help: "Removed memory cgroups the kernel still holds (pages still charged): v2 root cgroup.stat nr_dying_subsys_memory (6.11+) or nr_dying_descendants; v1 /proc/cgroups memory num_cgroups minus live directories.",
        kind: Gauge,
        samples: one(dying.map(Value::Int)),
    });
    families.push(Family {
        name: COLLECTED_AT,
        help: "When the last collection ran (unix seconds): the samples are this old.",
        kind: Gauge,
        samples: one(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| Value::Float(d.as_secs_f64()))),
    });
    let duration = t.elapsed();
    families.push(Family {
        name: HOST_NAMES[5],
        help: "Wall time of memlens's last collection (reading every memory cgroup and /proc), in seconds.",
        kind: Gauge,
        samples: one(Some(Value::Float(duration.as_secs_f64()))),
    });
    families.push(Family {
        name: HOST_NAMES[6],
        help: "Memory cgroups read in the last collection.",
        kind: Gauge,
        samples: one(Some(Value::Int(overview.rows.len() as u64))),
    });
    families.push(Family {
        name: HOST_NAMES[7],
        help: "Files that existed but could not be read or parsed in the last collection (see /api/v1/overview problems).",
        kind: Gauge,
        samples: one(Some(Value::Int(problems as u64))),
    });
    (
        Snapshot {
            overview,
            families,
            duration,
        },
        series,
    )
}

/// memlens's own cost (issue 20): the names [`own_families`] emits.
pub const OWN_NAMES: [&str; 7] = [
    "process_cpu_seconds_total",
    "memlens_process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "memlens_collection_seconds",
    "memlens_collection_tier_cgroups",
    "memlens_kept_open_fds",
];

/// Bounds (seconds) of [`DurationHistogram`]: 1 ms to 10 s (a collection of 100 idle
/// cgroups takes ~2 ms, a full read of 10,000 ~0.4-1 s on a shared 2-core host).
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The collections' durations since the exporter started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DurationHistogram {
    /// Per bucket of [`DURATION_BUCKETS`] (not cumulative), then the overflow.
    counts: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl DurationHistogram {
    /// Counts one collection.
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += s;
        self.count += 1;
    }

    /// Collections counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The family (see [`Kind::Histogram`] for the sample layout).
    fn family(&self) -> Family {
        let none: Labels = Arc::from(Vec::new());
        let mut samples = Vec::new();
        let mut cum = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cum += c;
            let le = DURATION_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            samples.push(Sample {
                labels: Arc::from(vec![("le", le)]),
                value: Value::Int(cum),
            });
        }
        samples.push(Sample {
            labels: none.clone(),
            value: Value::Float(self.sum),
        });
        samples.push(Sample {
            labels: none,
            value: Value::Int(self.count),
        });
        Family {
            name: OWN_NAMES[4],
            help: "memlens's collections (reading the cgroups and /proc, building the families) by wall time, since the exporter started.",
            kind: Kind::Histogram,
            samples,
        }
    }
}

/// memlens's own cost as families: CPU (total and by mode, /proc/self/stat), RSS
/// (/proc/self/status VmRSS), open descriptors (/proc/self/fd), the collections' duration
/// histogram, the cgroups of the last collection per tier and the descriptors the tiers keep.
pub fn own_families(
    cost: &crate::proc::OwnCost,
    hist: &DurationHistogram,
    counts: Option<crate::cgroup::tier::TierCounts>,
) -> Vec<Family> {
    let none: Labels = Arc::from(Vec::new());
    let one = |v: Option<Value>| -> Vec<Sample> {
        v.map(|value| Sample {
            labels: none.clone(),
            value,
        })
        .into_iter()
        .collect()
    };
    let by = |k: &'static str, pairs: Vec<(&str, Option<Value>)>| -> Vec<Sample> {
        pairs
            .into_iter()
            .filter_map(|(l, v)| {
                Some(Sample {
                    labels: Arc::from(vec![(k, l.to_string())]),
                    value: v?,
                })
            })
            .collect()
    };
    let total = match (cost.user_seconds, cost.system_seconds) {
        (Some(u), Some(s)) => Some(Value::Float(u + s)),
        _ => None,
    };
    let mut v = vec![
        Family {
            name: OWN_NAMES[0],
            help: "CPU time memlens used, user + system, in seconds (/proc/self/stat utime + stime).",
            kind: Kind::Counter,
            samples: one(total),
        },
        Family {
            name: OWN_NAMES[1],
            help: "CPU time memlens used by mode: user (memlens's own code) and system (the kernel, mostly formatting the cgroup files it reads), in seconds (/proc/self/stat utime, stime).",
            kind: Kind::Counter,
            samples: by(
                "mode",
                vec![
                    ("user", cost.user_seconds.map(Value::Float)),
                    ("system", cost.system_seconds.map(Value::Float)),
                ],
            ),
        },
        Family {
            name: OWN_NAMES[2],
            help: "memlens's resident memory in bytes (/proc/self/status VmRSS).",
            kind: Kind::Gauge,
            samples: one(cost.rss_bytes.map(Value::Int)),
        },
        Family {
            name: OWN_NAMES[3],
            help: "File descriptors memlens holds open (/proc/self/fd): kept-open cgroup files, connections, the inotify watch.",
            kind: Kind::Gauge,
            samples: one(cost.open_fds.map(Value::Int)),
        },
        hist.family(),
    ];
    if let Some(c) = counts {
        v.push(Family {
            name: OWN_NAMES[5],
            help: "Cgroups of the last collection by tier: full (every file read) or unchanged (only the usage file read: it had not moved, so the last full read's values stand, with their memlens_memory_read_timestamp_seconds).",
            kind: Kind::Gauge,
            samples: by(
                "tier",
                vec![
                    ("full", Some(Value::Int(c.full as u64))),
                    ("unchanged", Some(Value::Int(c.unchanged as u64))),
                ],
            ),
        });
        v.push(Family {
            name: OWN_NAMES[6],
            help: "Usage files the tiered reads keep open and re-read with pread (one per cgroup, capped by serve --max-fds).",
            kind: Kind::Gauge,
            samples: one(Some(Value::Int(c.fds as u64))),
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defs_and_indices_agree() {
        assert_eq!(CGROUP_DEFS.len(), N_CGROUP);
        assert_eq!(
            CGROUP_DEFS[M_REFAULT].0,
            "memlens_memory_workingset_refault_file_total"
        );
        assert_eq!(CGROUP_DEFS[M_OOM_EVENTS].0, "container_oom_events_total");
        assert_eq!(CGROUP_DEFS[M_LIMIT].0, "memlens_memory_limit_bytes");
        assert_eq!(
            CGROUP_DEFS[M_OOM_LOCAL].0,
            "memlens_memory_oom_limit_reached_total"
        );
        for d in CGROUP_DEFS {
            assert!(
                d.1 == Gauge || d.0.ends_with("_total") || d.0 == "container_memory_failcnt",
                "{}",
                d.0
            );
            assert!(!d.2.is_empty());
        }
    }
}
