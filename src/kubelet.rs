//! The kubelet's memory eviction, reproduced from its configuration and the node's cgroups:
//! thresholds (evictionHard / evictionSoft with grace periods), reserved memory and node
//! allocatable, the `memory.available` and `allocatableMemory.available` signals computed as
//! the kubelet computes them, and the order in which it would evict pods.
//!
//! Sources followed (kubernetes/kubernetes): `pkg/kubelet/eviction/helpers.go`
//! (makeSignalObservations: available = capacity − working set of the root cgroup, and of
//! the pods cgroup for allocatableMemory.available; rankMemoryPressure:
//! exceedMemoryRequests, then priority, then usage − request), `pkg/kubelet/cm`
//! (node allocatable = capacity − kube-reserved − system-reserved − hard eviction threshold;
//! the pods cgroup limit is capacity − the reserved amounts when enforceNodeAllocatable lists
//! `pods`), and the KubeletConfiguration v1beta1 defaults (memory.available < 100Mi).
//!
//! Kubernetes quantities are parsed by hand: no maintained Rust crate parses
//! resource.Quantity strings (k8s-openapi keeps them as strings).

use serde::Serialize;
use std::collections::BTreeMap;

/// The parts of a KubeletConfiguration that decide memory eviction.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Config {
    /// Where it was read (`None`: not found, defaults apply).
    pub source: Option<String>,
    /// evictionHard, as written.
    pub eviction_hard: BTreeMap<String, String>,
    /// evictionSoft, as written.
    pub eviction_soft: BTreeMap<String, String>,
    /// evictionSoftGracePeriod, as written.
    pub eviction_soft_grace: BTreeMap<String, String>,
    /// systemReserved memory, bytes.
    pub system_reserved_bytes: Option<u64>,
    /// kubeReserved memory, bytes.
    pub kube_reserved_bytes: Option<u64>,
    /// enforceNodeAllocatable (default `["pods"]`).
    pub enforce_node_allocatable: Vec<String>,
    /// cgroupDriver (`systemd` / `cgroupfs`).
    pub cgroup_driver: Option<String>,
    /// memorySwap.swapBehavior (`NoSwap`, `LimitedSwap`).
    pub swap_behavior: Option<String>,
    /// memoryThrottlingFactor (MemoryQoS; default 0.9).
    pub memory_throttling_factor: Option<f64>,
    /// featureGates.MemoryQoS.
    pub memory_qos: Option<bool>,
    /// singleProcessOOMKill (1.32+).
    pub single_process_oom_kill: Option<bool>,
    /// What could not be understood (the rest is still used).
    pub problems: Vec<String>,
}

/// Parses a Kubernetes quantity (`128Mi`, `1G`, `1.5Gi`, `100M`, `1e9`, `500k`, `1024`) into
/// bytes, rounding up fractions as the apiserver does for memory.
pub fn quantity(s: &str) -> Option<u64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    const SUF: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ];
    let (num, mult) = SUF
        .iter()
        .find_map(|(suf, m)| t.strip_suffix(suf).map(|n| (n, *m)))
        .unwrap_or((t, 1.0));
    let v: f64 = num.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let b = (v * mult).ceil();
    (b <= u64::MAX as f64).then_some(b as u64)
}

/// A threshold value: bytes or a percentage of capacity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// Bytes.
    Bytes(u64),
    /// Percent of the signal's capacity.
    Percent(f64),
}

impl Amount {
    /// Parses `100Mi` or `10%`.
    pub fn parse(s: &str) -> Option<Amount> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().ok()?;
            return (0.0..=100.0).contains(&v).then_some(Amount::Percent(v));
        }
        quantity(t).map(Amount::Bytes)
    }

    /// In bytes of `capacity`.
    pub fn bytes(self, capacity: u64) -> u64 {
        match self {
            Amount::Bytes(b) => b,
            Amount::Percent(p) => (capacity as f64 * p / 100.0) as u64,
        }
    }
}

fn map_of(
    v: &serde_yaml_ng::Value,
    key: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match v.get(key) {
        None | Some(serde_yaml_ng::Value::Null) => {}
        Some(serde_yaml_ng::Value::Mapping(m)) => {
            for (k, val) in m {
                let (Some(k), Some(val)) = (k.as_str(), scalar(val)) else {
                    problems.push(format!("{key}: an entry is not `signal: value`"));
                    continue;
                };
                out.insert(k.to_string(), val);
            }
        }
        Some(_) => problems.push(format!("{key}: not a mapping")),
    }
    out
}

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Config {
    /// Parses a KubeletConfiguration (YAML or JSON). Unknown fields are ignored; a field of
    /// the wrong shape is a problem, not a failure.
    pub fn parse(text: &str, source: &str) -> Result<Config, String> {
        let v: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| format!("{source}: not YAML: {e}"))?;
        if !v.is_mapping() {
            return Err(format!("{source}: not a KubeletConfiguration (no mapping)"));
        }
        let mut c = Config {
            source: Some(source.to_string()),
            ..Default::default()
        };
        let mut p = Vec::new();
        c.eviction_hard = map_of(&v, "evictionHard", &mut p);
        c.eviction_soft = map_of(&v, "evictionSoft", &mut p);
        c.eviction_soft_grace = map_of(&v, "evictionSoftGracePeriod", &mut p);
        for (key, slot) in [
            ("systemReserved", &mut c.system_reserved_bytes),
            ("kubeReserved", &mut c.kube_reserved_bytes),
        ] {
            let m = map_of(&v, key, &mut p);
            if let Some(q) = m.get("memory") {
                match quantity(q) {
                    Some(b) => *slot = Some(b),
                    None => p.push(format!("{key}.memory: {q:?} is not a quantity")),
                }
            }
        }
        c.enforce_node_allocatable = match v.get("enforceNodeAllocatable") {
            None | Some(serde_yaml_ng::Value::Null) => vec!["pods".into()],
            Some(serde_yaml_ng::Value::Sequence(s)) => s
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            Some(_) => {
                p.push("enforceNodeAllocatable: not a list".into());
                vec!["pods".into()]
            }
        };
        c.cgroup_driver = v.get("cgroupDriver").and_then(scalar);
        c.swap_behavior = v
            .get("memorySwap")
            .and_then(|m| m.get("swapBehavior"))
            .and_then(scalar);
        c.memory_throttling_factor = v.get("memoryThrottlingFactor").and_then(|x| x.as_f64());
        c.memory_qos = v
            .get("featureGates")
            .and_then(|f| f.get("MemoryQoS"))
            .and_then(|x| x.as_bool());
        c.single_process_oom_kill = v.get("singleProcessOOMKill").and_then(|x| x.as_bool());
        c.problems = p;
        Ok(c)
    }

    /// The configuration the kubelet runs with when it has no file.
    pub fn defaults() -> Config {
        Config {
            enforce_node_allocatable: vec!["pods".into()],
            ..Default::default()
        }
    }
}

/// One memory eviction threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// `memory.available` or `allocatableMemory.available`.
    pub signal: String,
    /// `hard` or `soft`.
    pub kind: &'static str,
    /// As configured (`100Mi`, `10%`).
    pub value: String,
    /// In bytes of the signal's capacity.
    #[serde(rename = "value_bytes")]
    pub bytes: u64,
    /// evictionSoftGracePeriod (soft only).
    pub grace_period: Option<String>,
    /// Where it came from (the file or "kubelet default").
    pub source: String,
}

/// A pod as the API server describes it (from `kubectl get pods -A -o json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApiPod {
    /// metadata.uid.
    pub uid: String,
    /// metadata.namespace.
    pub namespace: String,
    /// metadata.name.
    pub name: String,
    /// spec.priority (0 when absent, as the kubelet takes it).
    pub priority: i64,
    /// status.qosClass.
    pub qos: Option<String>,
    /// The pod's memory request: max(Σ containers, largest init container) + overhead.
    pub request_bytes: u64,
    /// Σ containers' memory limits, `None` when a container has none.
    pub limit_bytes: Option<u64>,
    /// Per container: (name, request, limit).
    pub containers: Vec<(String, Option<u64>, Option<u64>)>,
}

fn mem_of(res: Option<&serde_json::Value>, key: &str) -> Option<u64> {
    res?.get(key)?.get("memory")?.as_str().and_then(quantity)
}

/// Parses `kubectl get pods -A -o json` (a List; a single Pod works too).
pub fn parse_pods(text: &str) -> Result<Vec<ApiPod>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("--pods: not JSON: {e}"))?;
    let items: Vec<&serde_json::Value> = match v.get("items").and_then(|i| i.as_array()) {
        Some(a) => a.iter().collect(),
        None if v.get("kind").and_then(|k| k.as_str()) == Some("Pod") => vec![&v],
        None => return Err("--pods: neither a List with `items` nor a Pod".into()),
    };
    let mut out = Vec::new();
    for it in items {
        let md = it.get("metadata");
        let s = |k: &str| {
            md.and_then(|m| m.get(k))
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let spec = it.get("spec");
        let cs = |k: &str| -> Vec<&serde_json::Value> {
            spec.and_then(|sp| sp.get(k))
                .and_then(|c| c.as_array())
                .map(|a| a.iter().collect())
                .unwrap_or_default()
        };
        let mut pod = ApiPod {
            uid: s("uid"),
            namespace: s("namespace"),
            name: s("name"),
            priority: spec
                .and_then(|sp| sp.get("priority"))
                .and_then(|p| p.as_i64())
                .unwrap_or(0),
            qos: it
                .get("status")
                .and_then(|st| st.get("qosClass"))
                .and_then(|q| q.as_str())
                .map(String::from),
            ..Default::default()
        };
        let mut req_sum = 0u64;
        let mut lim_sum = Some(0u64);
        for c in cs("containers") {
            let res = c.get("resources");
            let (r, l) = (mem_of(res, "requests"), mem_of(res, "limits"));
            // A container with a limit and no request gets request = limit (API defaulting).
            let r = r.or(l);
            req_sum += r.unwrap_or(0);
            lim_sum = match (lim_sum, l) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            let name = c
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string();
            pod.containers.push((name, r, l));
        }
        let init_max = cs("initContainers")
            .iter()
            .filter_map(|c| {
                let res = c.get("resources");
                mem_of(res, "requests").or(mem_of(res, "limits"))
            })
            .max()
            .unwrap_or(0);
        let overhead = spec
            .and_then(|sp| sp.get("overhead"))
            .and_then(|o| o.get("memory"))
            .and_then(|m| m.as_str())
            .and_then(quantity)
            .unwrap_or(0);
        pod.request_bytes = req_sum.max(init_max) + overhead;
        pod.limit_bytes = if pod.containers.is_empty() {
            None
        } else {
            lim_sum
        };
        out.push(pod);
    }
    Ok(out)
}

/// A pod on this node, as its cgroup shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePod {
    /// Pod UID.
    pub uid: String,
    /// Pod cgroup path.
    pub path: String,
    /// QoS class from the cgroup path.
    pub qos: Option<&'static str>,
    /// `namespace/name` from the node's files, when known.
    pub name: Option<String>,
    /// Working set: usage − inactive_file of the pod cgroup (the kubelet's pod memory).
    pub working_set_bytes: Option<u64>,
}

/// One pod's place in the eviction order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// 1 = evicted first.
    pub rank: usize,
    /// The pod.
    pub pod: NodePod,
    /// `namespace/name` from --pods (or the node's files).
    pub name: Option<String>,
    /// Memory request (from --pods; BestEffort: 0).
    pub request_bytes: Option<u64>,
    /// spec.priority (from --pods).
    pub priority: Option<i64>,
    /// Working set above the request.
    pub exceeds_request: Option<bool>,
    /// Why it sits where it does.
    pub why: String,
}

/// Ranks the node's pods as the kubelet's rankMemoryPressure does. With `api` (from
/// --pods): exceeds request first, then lower priority, then larger usage − request.
/// Without: QoS class (BestEffort, Burstable, Guaranteed) then usage, and `missing` says so.
pub fn rank(pods: &[NodePod], api: Option<&[ApiPod]>) -> (Vec<Ranked>, Vec<String>) {
    let mut missing = Vec::new();
    let mut v: Vec<Ranked> = pods
        .iter()
        .map(|p| {
            let a = api.and_then(|a| a.iter().find(|x| x.uid == p.uid));
            let ws = p.working_set_bytes.unwrap_or(0);
            let (req, prio) = match (api, a) {
                (Some(_), Some(a)) => (Some(a.request_bytes), Some(a.priority)),
                _ => (
                    if p.qos == Some("besteffort") {
                        Some(0)
                    } else {
                        None
                    },
                    None,
                ),
            };
            Ranked {
                rank: 0,
                name: a
                    .map(|a| format!("{}/{}", a.namespace, a.name))
                    .or_else(|| p.name.clone()),
                pod: p.clone(),
                request_bytes: req,
                priority: prio,
                exceeds_request: req.map(|r| ws > r),
                why: String::new(),
            }
        })
        .collect();
    match api {
        Some(list) => {
            let unknown = v
                .iter()
                .filter(|r| !list.iter().any(|a| a.uid == r.pod.uid))
                .count();
            if unknown > 0 {
                missing.push(format!(
                    "{unknown} pod cgroups have no pod in --pods (request and priority unknown; ranked as request 0, priority 0)"
                ));
            }
            for r in &mut v {
                r.request_bytes.get_or_insert(0);
                r.priority.get_or_insert(0);
                let ws = r.pod.working_set_bytes.unwrap_or(0);
                r.exceeds_request = r.request_bytes.map(|q| ws > q);
            }
            v.sort_by(|a, b| {
                let ea = a.exceeds_request.unwrap_or(false);
                let eb = b.exceeds_request.unwrap_or(false);
                let over = |r: &Ranked| {
                    r.pod.working_set_bytes.unwrap_or(0) as i128
                        - r.request_bytes.unwrap_or(0) as i128
                };
                eb.cmp(&ea)
                    .then(a.priority.cmp(&b.priority))
                    .then(over(b).cmp(&over(a)))
            });
            for r in &mut v {
                r.why = format!(
                    "{} its request, priority {}, usage − request {}",
                    if r.exceeds_request == Some(true) {
                        "above"
                    } else {
                        "within"
                    },
                    r.priority.unwrap_or(0),
                    crate::render::signed_bytes(Some(
                        r.pod.working_set_bytes.unwrap_or(0) as i64
                            - r.request_bytes.unwrap_or(0) as i64
                    ))
                );
            }
        }
        None => {
            missing.push("requests and priorities are not on the node: pass --pods FILE (kubectl get pods -A -o json) for the kubelet's exact order; ranked by QoS class, then working set".into());
            let q = |r: &Ranked| match r.pod.qos {
                Some("besteffort") => 0,
                Some("burstable") => 1,
                _ => 2,
            };
            v.sort_by(|a, b| {
                q(a).cmp(&q(b))
                    .then(b.pod.working_set_bytes.cmp(&a.pod.working_set_bytes))
            });
            for r in &mut v {
                r.why = match r.pod.qos {
                    Some("besteffort") => "BestEffort: request 0, so any usage exceeds it".into(),
                    Some("burstable") => "Burstable: request unknown without --pods".into(),
                    _ => "Guaranteed: usage cannot exceed its request (= limit)".into(),
                };
            }
        }
    }
    for (n, r) in v.iter_mut().enumerate() {
        r.rank = n + 1;
    }
    (v, missing)
}

/// The memory thresholds in force, in bytes of `capacity` (`allocatable` for the
/// allocatable signal).
pub fn thresholds(c: &Config, capacity: u64, allocatable: Option<u64>) -> Vec<Threshold> {
    let src = c.source.clone().unwrap_or_else(|| "kubelet default".into());
    let mut out = Vec::new();
    let hard_mem = c.eviction_hard.get("memory.available");
    let hard = match hard_mem {
        Some(v) => Some((v.clone(), src.clone())),
        // The v1beta1 default applies when evictionHard is absent altogether.
        None if c.eviction_hard.is_empty() => Some((
            "100Mi".to_string(),
            "kubelet default (evictionHard unset)".to_string(),
        )),
        None => None,
    };
    if let Some((v, s)) = hard
        && let Some(a) = Amount::parse(&v)
    {
        out.push(Threshold {
            signal: "memory.available".into(),
            kind: "hard",
            bytes: a.bytes(capacity),
            value: v,
            grace_period: None,
            source: s,
        });
    }
    if let Some(v) = c.eviction_soft.get("memory.available")
        && let Some(a) = Amount::parse(v)
    {
        out.push(Threshold {
            signal: "memory.available".into(),
            kind: "soft",
            bytes: a.bytes(capacity),
            value: v.clone(),
            grace_period: c.eviction_soft_grace.get("memory.available").cloned(),
            source: src.clone(),
        });
    }
    for (kind, m) in [("hard", &c.eviction_hard), ("soft", &c.eviction_soft)] {
        if let (Some(v), Some(al)) = (m.get("allocatableMemory.available"), allocatable)
            && let Some(a) = Amount::parse(v)
        {
            out.push(Threshold {
                signal: "allocatableMemory.available".into(),
                kind,
                bytes: a.bytes(al),
                value: v.clone(),
                grace_period: (kind == "soft")
                    .then(|| {
                        c.eviction_soft_grace
                            .get("allocatableMemory.available")
                            .cloned()
                    })
                    .flatten(),
                source: src.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("128Mi"), Some(128 << 20));
        assert_eq!(quantity("1G"), Some(1_000_000_000));
        assert_eq!(quantity("1.5Gi"), Some(3 << 29));
        assert_eq!(quantity("1e3"), Some(1000));
        assert_eq!(quantity("500k"), Some(500_000));
        assert_eq!(quantity("1024"), Some(1024));
        assert_eq!(quantity("abc"), None);
        assert_eq!(Amount::parse("10%"), Some(Amount::Percent(10.0)));
        assert_eq!(Amount::parse("10%").map(|a| a.bytes(1000)), Some(100));
    }

    #[test]
    fn config_and_defaults() {
        let c = Config::parse(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nevictionHard:\n  memory.available: 500Mi\n  nodefs.available: 10%\nevictionSoft:\n  memory.available: 1Gi\nevictionSoftGracePeriod:\n  memory.available: 1m30s\nsystemReserved:\n  memory: 1Gi\n  cpu: 500m\nkubeReserved:\n  memory: 512Mi\n",
            "/var/lib/kubelet/config.yaml",
        )
        .unwrap();
        assert_eq!(c.system_reserved_bytes, Some(1 << 30));
        assert_eq!(c.kube_reserved_bytes, Some(512 << 20));
        assert_eq!(c.enforce_node_allocatable, vec!["pods"]);
        let t = thresholds(&c, 8 << 30, None);
        assert_eq!(t[0].bytes, 500 << 20);
        assert_eq!(t[1].grace_period.as_deref(), Some("1m30s"));
        let d = thresholds(&Config::defaults(), 8 << 30, None);
        assert_eq!(d[0].bytes, 100 << 20);
        assert!(Config::parse("- a\n- b\n", "x").is_err());
    }
}

/// One container's Memory QoS (KEP-2570) and swap (KEP-2400) settings: what the kubelet
/// would set from the pod's requests and limits, beside what is set (cgroup v2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QosCheck {
    /// `namespace/pod`.
    pub pod: String,
    /// Container name (from --pods).
    pub container: String,
    /// Its cgroup.
    pub cgroup: String,
    /// QoS class (from --pods).
    pub qos: Option<String>,
    /// KEP-2570 memory.min = the container's memory request.
    pub expected_min_bytes: Option<u64>,
    /// memory.min as set.
    pub set_min_bytes: Option<u64>,
    /// KEP-2570 memory.high = floor((request + factor × (limit or allocatable − request)) /
    /// page) × page; `None` = not set (max): Guaranteed, or not above the request.
    pub expected_high_bytes: Option<u64>,
    /// memory.high as set (`None` = max).
    pub set_high_bytes: Option<u64>,
    /// KEP-2400 memory.swap.max: LimitedSwap gives Burstable containers request / capacity
    /// × node swap; everyone else (and NoSwap) 0.
    pub expected_swap_max_bytes: Option<u64>,
    /// memory.swap.max as set (`None` = max).
    pub set_swap_max_bytes: Option<u64>,
    /// Headroom to the OOM killer without swap: effective limit − not reclaimable
    /// (views::derived).
    pub oom_headroom_bytes: Option<u64>,
    /// With swap as set: + what swapping can still free (views::offload: min(memory.swap.max
    /// − memory.swap.current, SwapFree), less zswap's compressed copy).
    pub oom_headroom_with_swap_bytes: Option<u64>,
    /// With the swap KEP-2400 would give: OOM headroom + min(expected swap.max −
    /// memory.swap.current, SwapFree).
    pub expected_oom_headroom_with_swap_bytes: Option<u64>,
    /// Where set and expected differ, in words.
    pub differences: Vec<String>,
}

/// The KEP-2570 memory.high of a container.
pub fn kep2570_high(
    request: u64,
    limit: Option<u64>,
    allocatable: u64,
    factor: f64,
    page: u64,
) -> Option<u64> {
    if limit == Some(request) {
        return None;
    }
    let cap = limit.unwrap_or(allocatable);
    let v = request as f64 + factor * cap.saturating_sub(request) as f64;
    let h = (v / page as f64).floor() as u64 * page;
    (h > request).then_some(h)
}

/// The KEP-2400 LimitedSwap memory.swap.max of a container.
pub fn kep2400_swap(
    behavior: Option<&str>,
    qos: Option<&str>,
    request: u64,
    capacity: u64,
    swap_total: u64,
) -> u64 {
    if behavior != Some("LimitedSwap") || qos != Some("Burstable") || request == 0 || capacity == 0
    {
        return 0;
    }
    (request as f64 / capacity as f64 * swap_total as f64) as u64
}
