//! `memlens node`: where the node's RAM went (the waterfall from MemTotal), what free,
//! MemAvailable, the kubelet and systemd-cgtop say for the same moment and why they differ,
//! and the kubelet's memory eviction (thresholds, signals, who goes first). Reads through
//! [`Root`] (cgroup/, proc/), computes in views/ and kubelet.rs; rendering is in render/node.rs.

use crate::cgroup::read::{self, Level};
use crate::cgroup::walk;
use crate::identity::{Identity, NodeNames};
use crate::kubelet::{self, ApiPod, Config, NodePod, Ranked, Threshold};
use crate::model::{Cgroup, Hierarchy, Host, Version};
use crate::proc;
use crate::sys::{ReadError, Root};
use crate::views::Figure;
use crate::views::tools::node_available;
use crate::views::waterfall::{self, Waterfall};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The kubelet's default configuration file.
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";

/// What `node` was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The kubelet's configuration (a system path, read under --host-root); default
    /// [`KUBELET_CONFIG`].
    pub kubelet_config: Option<PathBuf>,
    /// Pods from the API server (`--pods`).
    pub pods: Option<Vec<ApiPod>>,
    /// The pods cgroup (default: the shallowest `kubepods` / `kubepods.slice`).
    pub kubepods: Option<String>,
    /// Sample every cgroup twice this far apart, for noisy neighbours.
    pub sample: Option<std::time::Duration>,
    /// Forecast the eviction from the flight recorder's store (not for a capture).
    pub forecast: bool,
    /// The store (`--store`; None: the default one).
    pub store: Option<PathBuf>,
}

/// When `memory.available` crosses one of its eviction thresholds at the rate the flight
/// recorder's store shows (`memlens record`): the root's working set fitted with the OOM
/// forecast's criterion ([`crate::trend::rise_to`]) up to MemTotal − the threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvictionForecast {
    /// `hard` or `soft` (a soft threshold evicts after its grace period).
    pub kind: &'static str,
    /// The threshold as configured.
    pub threshold: String,
    /// In bytes.
    pub threshold_bytes: u64,
    /// Seconds from the last recorded sample until memory.available reaches the threshold.
    pub seconds: f64,
    /// That moment (RFC 3339 UTC).
    pub at: String,
    /// Growth of the root's working set, bytes per second.
    pub bytes_per_second: f64,
    /// How it was computed.
    pub method: String,
}

/// One other tool's (or signal's) figure for the whole node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compare {
    /// Stable key.
    pub key: &'static str,
    /// Who says it.
    pub what: &'static str,
    /// The figure.
    pub figure: Figure,
    /// Why it differs from the others.
    pub why: String,
}

/// The kubelet's view of the node's memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KubeletView {
    /// The configuration in force (defaults when no file was found).
    pub config: Config,
    /// Why no file was read, when none was.
    pub config_missing: Option<String>,
    /// Node capacity: /proc/meminfo MemTotal (cAdvisor's MemoryCapacity).
    pub capacity_bytes: Option<u64>,
    /// The `memory.available` signal.
    pub memory_available: Figure,
    /// /proc/meminfo MemAvailable, beside it.
    pub mem_available_bytes: Option<u64>,
    /// Root active_file: page cache the kubelet counts as used.
    pub active_file_counted: Figure,
    /// The part of it that is clean, so reclaimable without writeback.
    pub active_file_reclaimable: Figure,
    /// Node allocatable as the API shows it: capacity − system-reserved − kube-reserved −
    /// hard memory.available threshold.
    pub allocatable_bytes: Option<u64>,
    /// The pods cgroup's limit the kubelet sets when enforceNodeAllocatable has `pods`:
    /// capacity − system-reserved − kube-reserved.
    pub pods_limit_bytes: Option<u64>,
    /// The pods cgroup (kubepods).
    pub pods_cgroup: Option<String>,
    /// Its limit as set on the node.
    pub pods_cgroup_limit_bytes: Option<u64>,
    /// The `allocatableMemory.available` signal: pods limit − pods working set.
    pub allocatable_available: Figure,
    /// Thresholds in force.
    pub thresholds: Vec<Threshold>,
    /// Per threshold: signal − threshold (negative: eviction now, or after the grace period).
    /// In JSON objects `{signal, kind, margin_bytes}` (one type per field, not a tuple).
    #[serde(serialize_with = "margins_json")]
    pub margins: Vec<(String, &'static str, Option<i64>)>,
    /// The pods in eviction order.
    pub ranking: Vec<Ranked>,
    /// What is missing for the kubelet's exact order.
    pub missing: Vec<String>,
    /// KEP-2570 / KEP-2400 values beside what is set, per container (v2, with --pods).
    pub qos: Vec<kubelet::QosCheck>,
    /// Why `qos` is empty or partial.
    pub qos_note: Option<String>,
    /// Per memory.available threshold, when the recorded trend crosses it.
    pub forecast: Vec<EvictionForecast>,
    /// Why there is no forecast (no store, no trusted rise, already crossed).
    pub forecast_note: Option<String>,
}

/// Everything `memlens node` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// The memory hierarchy.
    pub hierarchy: Hierarchy,
    /// /proc/meminfo and pressure.
    pub host: Host,
    /// Where the RAM went.
    pub waterfall: Waterfall,
    /// What the other tools say.
    pub compare: Vec<Compare>,
    /// The kubelet.
    pub kubelet: KubeletView,
    /// Cgroups below their limit that lost page cache while others grew (`--sample`).
    pub noisy_neighbours: Option<Vec<crate::views::neighbours::Noisy>>,
    /// Seconds between the two samples.
    pub sample_seconds: Option<f64>,
    /// Problems met (files unreadable or garbled).
    pub problems: Vec<String>,
}

fn ws(cg: &Cgroup) -> Option<u64> {
    let usage = cg.usage.current.or_else(|| {
        (cg.is_root() && cg.version == Version::V2)
            .then(|| Some(cg.stat_hier("anon")? + cg.stat_hier("file")?))
            .flatten()
    })?;
    Some(usage.saturating_sub(cg.stat_hier("inactive_file")?))
}

fn last(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Collects the node view.
pub fn collect(root: &Root, h: &Hierarchy, opts: &Options) -> Result<Node, ReadError> {
    let mut problems = Vec::new();
    let host = proc::read_host(root);
    let (root_cg, wf) = waterfall_of(root, h, &host, &mut problems)?;
    let mut kubelet = kubelet_view(root, h, &root_cg, &host, opts, &mut problems);
    if opts.forecast {
        match eviction_forecast(opts.store.as_deref(), &kubelet, crate::store::now_ms()) {
            Ok(f) => kubelet.forecast = f,
            Err(why) => kubelet.forecast_note = Some(why),
        }
    }
    let compare = compare(&root_cg, &host, &wf, &kubelet);
    let (noisy, secs) = match opts.sample {
        Some(d) => {
            let (n, s) = neighbours(root, h, d);
            (Some(n), Some(s))
        }
        None => (None, None),
    };
    Ok(Node {
        hierarchy: h.clone(),
        host,
        waterfall: wf,
        compare,
        kubelet,
        noisy_neighbours: noisy,
        sample_seconds: secs,
        problems,
    })
}

/// The eviction forecast from the store at `dir` for the samples up to `at` (ms): one per
/// memory.available threshold the recorded rise of the root's working set (the signal's
/// only moving part: memory.available = capacity − working set) reaches; an error says why
/// there is none.
pub fn eviction_forecast(
    dir: Option<&Path>,
    k: &KubeletView,
    at: i64,
) -> Result<Vec<EvictionForecast>, String> {
    let r = crate::history::open_store(dir)
        .map_err(|e| format!("no forecast: {e} (run `memlens record` to keep a history)"))?;
    let h = crate::history::recorded_hierarchy(&r)?;
    let capacity = k
        .capacity_bytes
        .ok_or("no forecast: /proc/meminfo MemTotal unavailable")?;
    let (pts, _) = crate::history::points(&r, &h, "/", at - 600_000, at)?;
    let xy: Vec<(i64, f64)> = pts
        .iter()
        .filter_map(|p| Some((p.t, p.get("working_set")? as f64)))
        .collect();
    if xy.is_empty() {
        return Err(
            "no forecast: the store holds no sample of the root cgroup in the last 10 minutes"
                .into(),
        );
    }
    let mut out = Vec::new();
    for t in k
        .thresholds
        .iter()
        .filter(|t| t.signal == "memory.available")
    {
        let Some((secs, f)) = crate::trend::rise_to(&xy, capacity.saturating_sub(t.bytes)) else {
            continue;
        };
        let last = xy.last().map_or(at, |p| p.0);
        out.push(EvictionForecast {
            kind: t.kind,
            threshold: t.value.clone(),
            threshold_bytes: t.bytes,
            seconds: secs,
            at: crate::history::format_time(last + (secs * 1000.0) as i64),
            bytes_per_second: f.slope,
            method: format!(
                "{}, up to MemTotal − threshold ({})",
                crate::trend::method(&f, "the root's working set (usage − inactive_file)"),
                crate::render::bytes(Some(capacity.saturating_sub(t.bytes)))
            ),
        });
    }
    if out.is_empty() {
        return Err(format!(
            "no forecast: the root's working set in the store ({} samples) shows no steady rise toward a threshold (a least-squares line with R² ≥ 0.9 over ≥ 16 s), or memory.available is already below it",
            xy.len()
        ));
    }
    Ok(out)
}

/// The waterfall alone (no kubelet, no comparison): what `top`'s header shows every
/// interval. `host` is /proc/meminfo read by the caller at the same moment.
pub fn waterfall(root: &Root, h: &Hierarchy, host: &Host) -> Result<Waterfall, ReadError> {
    let mut problems = Vec::new();
    waterfall_of(root, h, host, &mut problems).map(|(_, w)| w)
}

/// Reads the root and the top-level cgroups, zram and the per-CPU lists, and computes the
/// waterfall; returns the root cgroup too (the kubelet's signals are computed from it).
fn waterfall_of(
    root: &Root,
    h: &Hierarchy,
    host: &Host,
    problems: &mut Vec<String>,
) -> Result<(Cgroup, Waterfall), ReadError> {
    let root_cg = read::read_cgroup(root, h, "/", Level::Overview)?;
    let names = root.subdirs(&read::fs_path(h, "/")).unwrap_or_default();
    let mut top = Vec::new();
    for n in &names {
        match read::read_cgroup(root, h, &format!("/{n}"), Level::Overview) {
            Ok(c) => {
                problems.extend(c.problems.iter().cloned());
                top.push(c)
            }
            Err(ReadError::Missing { .. }) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    problems.extend(root_cg.problems.iter().cloned());
    problems.extend(host.problems.iter().cloned());
    let (zram, zp) = proc::node::zram(root);
    problems.extend(zp);
    let pcp = match proc::node::pcp_pages(root) {
        Ok(p) => Some(p * proc::node::page_size()),
        Err(ReadError::Missing { .. }) => None,
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let empty = Default::default();
    let meminfo = host.meminfo.as_ref().unwrap_or(&empty);
    let wf = Waterfall::of(waterfall::Input {
        meminfo,
        root: &root_cg,
        top: &top,
        zram: &zram,
        pcp_free_bytes: pcp,
    });
    Ok((root_cg, wf))
}

/// Two samples of every cgroup, `d` apart, compared for noisy neighbours (16 MiB of cache
/// lost against 16 MiB grown: below that it is noise).
fn neighbours(
    root: &Root,
    h: &Hierarchy,
    d: std::time::Duration,
) -> (Vec<crate::views::neighbours::Noisy>, f64) {
    let read_all = || -> Vec<Cgroup> {
        walk::all_paths(root, h, "/")
            .iter()
            .filter_map(|p| read::read_cgroup(root, h, p, Level::Overview).ok())
            .collect()
    };
    let t0 = std::time::Instant::now();
    let before = read_all();
    crate::progress::wait(d, "second sample");
    let after = read_all();
    let secs = t0.elapsed().as_secs_f64();
    // Effective limit: the smallest own limit on the path to the root.
    let limit_of = |p: &str| {
        after
            .iter()
            .filter(|c| c.path == "/" || p == c.path || p.starts_with(&format!("{}/", c.path)))
            .filter_map(|c| c.limits.max.and_then(crate::model::Limit::bytes))
            .min()
    };
    let n = crate::views::neighbours::find(&before, &after, limit_of, 16 << 20);
    (n, secs)
}

fn compare(root: &Cgroup, host: &Host, wf: &Waterfall, k: &KubeletView) -> Vec<Compare> {
    let m = |k: &str| host.mem(k);
    let total = m("MemTotal");
    let avail = m("MemAvailable");
    let used = match (total, avail) {
        (Some(t), Some(a)) => Some(t.saturating_sub(a)),
        _ => None,
    };
    let top = wf.get("top_level_cgroups").and_then(|l| l.bytes);
    let active = root.stat_hier("active_file");
    let b = |v: Option<u64>| crate::render::bytes(v);
    vec![
        Compare {
            key: "free_used",
            what: "free: used",
            figure: Figure::new(used, "MemTotal − MemAvailable (procps-ng 4.x)"),
            why: "everything the kernel could not hand out without reclaim: page cache and reclaimable slab count as available, so `used` is far below the cgroups' usage, which includes their page cache".into(),
        },
        Compare {
            key: "mem_available",
            what: "/proc/meminfo MemAvailable",
            figure: Figure::new(avail, "meminfo MemAvailable (mm/show_mem.c si_mem_available)"),
            why: "free + the file LRU and reclaimable kernel memory the kernel estimates it can reclaim, minus the low watermarks: the best single \"how much can still be allocated\"".into(),
        },
        Compare {
            key: "kubelet_memory_available",
            what: "kubelet memory.available",
            figure: k.memory_available.clone(),
            why: format!(
                "counts the root's active page cache ({}) as used although most of it is reclaimable, and leaves out kernel memory charged to no cgroup; differs from MemAvailable by {}",
                b(active),
                crate::render::signed_bytes(match (k.memory_available.bytes, avail) {
                    (Some(a), Some(b)) => Some(a as i64 - b as i64),
                    _ => None,
                })
            ),
        },
        {
            // systemd-cgtop (src/cgtop/cgtop.c): v1 reads the root's memory.usage_in_bytes
            // like any row; v2's root has no memory.current, so it takes the root row from
            // /proc/meminfo (procfs_memory_get_used: MemTotal − MemAvailable).
            let (fig, why) = if root.version == Version::V1 {
                (
                    Figure::new(root.usage.current, "root memory.usage_in_bytes (cgtop on cgroup v1)"),
                    format!(
                        "page cache included, so it is near MemTotal on a busy node ({} here) while free says {} used",
                        b(root.usage.current),
                        b(used)
                    ),
                )
            } else {
                (
                    Figure::new(used, "MemTotal − MemAvailable (cgtop on v2: procfs_memory_get_used, the root has no memory.current)"),
                    format!(
                        "its other rows are memory.current, page cache included: the top-level rows add up to {} against a root row of {}, so the rows can exceed the total (systemd PR #41798)",
                        b(top.map(|v| v.max(0) as u64)),
                        b(used)
                    ),
                )
            };
            Compare {
                key: "cgtop_root",
                what: "systemd-cgtop: root row",
                figure: fig,
                why,
            }
        },
    ]
}

fn find_kubepods(root: &Root, h: &Hierarchy) -> Option<String> {
    let mut found: Vec<String> = walk::all_paths(root, h, "/")
        .into_iter()
        .filter(|p| matches!(last(p), "kubepods" | "kubepods.slice"))
        .collect();
    found.sort_by_key(|p| p.matches('/').count());
    found.into_iter().next()
}

fn kubelet_view(
    root: &Root,
    h: &Hierarchy,
    root_cg: &Cgroup,
    host: &Host,
    opts: &Options,
    problems: &mut Vec<String>,
) -> KubeletView {
    let cfg_path = opts
        .kubelet_config
        .clone()
        .unwrap_or_else(|| PathBuf::from(KUBELET_CONFIG));
    let (config, config_missing) = match root.read(Path::new(&cfg_path)) {
        Ok(t) => match Config::parse(&t, &cfg_path.display().to_string()) {
            Ok(c) => (c, None),
            Err(e) => {
                problems.push(e.clone());
                (Config::defaults(), Some(e))
            }
        },
        Err(e) => {
            if opts.kubelet_config.is_some() || !matches!(e, ReadError::Missing { .. }) {
                problems.push(e.to_string());
            }
            (
                Config::defaults(),
                Some(format!("{e}: the kubelet's defaults are assumed")),
            )
        }
    };
    problems.extend(config.problems.iter().cloned());
    let capacity = host.mem("MemTotal");
    let memory_available = node_available(Some(root_cg), host);
    let reserved =
        config.system_reserved_bytes.unwrap_or(0) + config.kube_reserved_bytes.unwrap_or(0);
    let th0 = kubelet::thresholds(&config, capacity.unwrap_or(0), None);
    let hard = th0
        .iter()
        .find(|t| t.kind == "hard" && t.signal == "memory.available")
        .map(|t| t.bytes)
        .unwrap_or(0);
    let pods_limit = capacity.map(|c| c.saturating_sub(reserved));
    let allocatable = capacity.map(|c| c.saturating_sub(reserved + hard));
    let thresholds = kubelet::thresholds(&config, capacity.unwrap_or(0), pods_limit);
    let pods_cgroup = opts
        .kubepods
        .as_ref()
        .map(|p| read::normalise(p))
        .or_else(|| find_kubepods(root, h));
    let mut pods_cgroup_limit = None;
    let mut node_pods = Vec::new();
    let mut containers: Vec<(String, String)> = Vec::new();
    let mut allocatable_available = Figure::unavailable("no pods cgroup (kubepods) on this node");
    if let Some(pc) = &pods_cgroup {
        match read::read_cgroup(root, h, pc, Level::Overview) {
            Ok(kp) => {
                pods_cgroup_limit = kp.limits.max.and_then(crate::model::Limit::bytes);
                allocatable_available = match (pods_limit, ws(&kp)) {
                    (Some(l), Some(w)) => Figure::new(
                        Some(l.saturating_sub(w)),
                        format!(
                            "(MemTotal − system-reserved − kube-reserved) − {pc} working set (usage − inactive_file)"
                        ),
                    ),
                    _ => Figure::unavailable(format!("{pc}: usage or inactive_file unavailable")),
                };
                let nn = NodeNames::load(root, std::iter::empty());
                for p in walk::all_paths(root, h, pc) {
                    let id = Identity::from_path(&p);
                    let Some(uid) = id.pod_uid.clone() else {
                        continue;
                    };
                    if id.container_id.is_some() {
                        containers.push((uid.clone(), p.clone()));
                        continue;
                    }
                    // The pod's own cgroup: the component that names it is the last one.
                    if !last(&p).contains(&uid.replace('-', "_")) && !last(&p).contains(&uid) {
                        continue;
                    }
                    let Ok(cg) = read::read_cgroup(root, h, &p, Level::Overview) else {
                        continue;
                    };
                    let names = nn.names_for(&id);
                    node_pods.push(NodePod {
                        uid,
                        qos: id.qos,
                        name: match (names.namespace, names.pod) {
                            (Some(ns), Some(po)) => Some(format!("{ns}/{po}")),
                            _ => None,
                        },
                        working_set_bytes: ws(&cg),
                        path: p,
                    });
                }
            }
            Err(e) => problems.push(format!("pods cgroup {pc}: {e}")),
        }
    }
    let (ranking, mut missing) = kubelet::rank(&node_pods, opts.pods.as_deref());
    if pods_cgroup.is_none() {
        missing.push(
            "no kubepods cgroup found (no kubelet on this node, or pass --kubepods PATH)".into(),
        );
    }
    let margins = thresholds
        .iter()
        .map(|t| {
            let sig = if t.signal == "memory.available" {
                memory_available.bytes
            } else {
                allocatable_available.bytes
            };
            (
                t.signal.clone(),
                t.kind,
                sig.map(|s| s as i64 - t.bytes as i64),
            )
        })
        .collect();
    let (qos, qos_note) = qos_checks(
        root,
        h,
        host,
        &config,
        allocatable,
        &containers,
        opts.pods.as_deref(),
    );
    let active = root_cg.stat_hier("active_file");
    let dirty = match (
        root_cg.version,
        root_cg.stat_hier("dirty"),
        root_cg.stat_hier("writeback"),
    ) {
        (Version::V1, Some(d), Some(w)) => Some(d + w),
        _ => match (
            root_cg.stat_hier("file_dirty"),
            root_cg.stat_hier("file_writeback"),
        ) {
            (Some(d), Some(w)) => Some(d + w),
            _ => None,
        },
    };
    KubeletView {
        config,
        config_missing,
        capacity_bytes: capacity,
        memory_available,
        mem_available_bytes: host.mem("MemAvailable"),
        active_file_counted: Figure::new(
            active,
            "root memory.stat active_file (v1 total_active_file)",
        ),
        active_file_reclaimable: match (active, dirty) {
            (Some(a), Some(d)) => Figure::new(
                Some(a.saturating_sub(d)),
                "root active_file − (dirty + writeback): clean, dropped by reclaim before any OOM kill or eviction would be needed",
            ),
            _ => Figure::unavailable("root memory.stat has no active_file or dirty/writeback"),
        },
        allocatable_bytes: allocatable,
        pods_limit_bytes: pods_limit,
        pods_cgroup,
        pods_cgroup_limit_bytes: pods_cgroup_limit,
        allocatable_available,
        thresholds,
        margins,
        ranking,
        missing,
        qos,
        qos_note,
        forecast: Vec::new(),
        forecast_note: None,
    }
}

/// KEP-2570 / KEP-2400 values beside what is set, for each container of a pod in --pods
/// (v2 only). A container cgroup is matched to its spec when the pod has one container, or
/// by the name the node's files give it.
fn qos_checks(
    root: &Root,
    h: &Hierarchy,
    host: &Host,
    config: &Config,
    allocatable: Option<u64>,
    containers: &[(String, String)],
    api: Option<&[ApiPod]>,
) -> (Vec<kubelet::QosCheck>, Option<String>) {
    if h.version != Version::V2 {
        return (
            Vec::new(),
            Some("cgroup v1: Memory QoS (memory.min/high) and swap limits need cgroup v2".into()),
        );
    }
    let Some(api) = api else {
        return (
            Vec::new(),
            Some("the KEP-2570/KEP-2400 values need requests and limits: pass --pods".into()),
        );
    };
    let capacity = host.mem("MemTotal").unwrap_or(0);
    let swap_total = host.mem("SwapTotal").unwrap_or(0);
    let factor = config.memory_throttling_factor.unwrap_or(0.9);
    let page = proc::node::page_size();
    let nn = NodeNames::load(
        root,
        containers
            .iter()
            .filter_map(|(_, p)| last(p).rsplit('-').next()),
    );
    let mut out = Vec::new();
    let mut unmatched = 0;
    for (uid, path) in containers {
        let Some(pod) = api.iter().find(|a| &a.uid == uid) else {
            continue;
        };
        let name = nn.names_for(&Identity::from_path(path)).container;
        let spec = if pod.containers.len() == 1 {
            pod.containers.first()
        } else {
            name.as_ref()
                .and_then(|n| pod.containers.iter().find(|c| &c.0 == n))
        };
        let Some((cname, req, lim)) = spec else {
            unmatched += 1;
            continue;
        };
        let Ok(cg) = read::read_cgroup(root, h, path, Level::Full) else {
            continue;
        };
        let req_b = req.unwrap_or(0);
        let qos = pod.qos.as_deref();
        let exp_min = (qos != Some("BestEffort")).then_some(req_b);
        let exp_high = if qos == Some("Guaranteed") {
            None
        } else {
            kubelet::kep2570_high(req_b, *lim, allocatable.unwrap_or(capacity), factor, page)
        };
        let exp_swap = kubelet::kep2400_swap(
            config.swap_behavior.as_deref(),
            qos,
            req_b,
            capacity,
            swap_total,
        );
        let set_high = cg.limits.high.and_then(crate::model::Limit::bytes);
        let set_swap = cg.limits.swap_max.and_then(crate::model::Limit::bytes);
        // Swap in the headroom (KEP-2400): as set, and as LimitedSwap would set it.
        let bd = crate::views::breakdown::Breakdown::of(&cg);
        let mut dv = crate::views::derived::Derived::of(&cg, &bd, &read::ancestors(root, h, path));
        dv.cap_at_host(host.mem("MemTotal"));
        let headroom = dv.oom_headroom.bytes;
        let with_swap = crate::views::offload::Offload::of(&cg, host, headroom)
            .oom_headroom_with_swap
            .bytes;
        let exp_with_swap = match (headroom, cg.usage.swap, host.mem("SwapFree")) {
            (Some(hr), Some(used), Some(free)) => {
                Some(hr + exp_swap.saturating_sub(used).min(free))
            }
            _ => None,
        };
        let mut diff = Vec::new();
        let b = |v: Option<u64>| v.map_or("max".to_string(), |x| crate::render::bytes(Some(x)));
        if config.memory_qos == Some(true) {
            if exp_min != cg.limits.min && !(exp_min.is_none() && cg.limits.min == Some(0)) {
                diff.push(format!(
                    "memory.min {} (KEP-2570: {})",
                    b(cg.limits.min),
                    b(exp_min)
                ));
            }
            if exp_high != set_high {
                diff.push(format!(
                    "memory.high {} (KEP-2570: {})",
                    b(set_high),
                    b(exp_high)
                ));
            }
        }
        if config.swap_behavior.is_some() && set_swap != Some(exp_swap) {
            diff.push(format!(
                "memory.swap.max {} ({}: {})",
                b(set_swap),
                config.swap_behavior.as_deref().unwrap_or("?"),
                b(Some(exp_swap))
            ));
        }
        out.push(kubelet::QosCheck {
            pod: format!("{}/{}", pod.namespace, pod.name),
            container: cname.clone(),
            cgroup: path.clone(),
            qos: pod.qos.clone(),
            expected_min_bytes: exp_min,
            set_min_bytes: cg.limits.min,
            expected_high_bytes: exp_high,
            set_high_bytes: set_high,
            expected_swap_max_bytes: Some(exp_swap),
            set_swap_max_bytes: set_swap,
            oom_headroom_bytes: headroom,
            oom_headroom_with_swap_bytes: with_swap,
            expected_oom_headroom_with_swap_bytes: exp_with_swap,
            differences: diff,
        });
    }
    let note = (unmatched > 0).then(|| format!("{unmatched} containers of multi-container pods could not be matched to their spec (no names on the node)"));
    (out, note)
}

fn margins_json<S: serde::Serializer>(
    m: &[(String, &'static str, Option<i64>)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(m.len()))?;
    for (signal, kind, margin) in m {
        seq.serialize_element(
            &serde_json::json!({"signal": signal, "kind": kind, "margin_bytes": margin}),
        )?;
    }
    seq.end()
}
