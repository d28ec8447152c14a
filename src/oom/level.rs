//! Which limit fired, who died with it, and whether the container lived on.
//!
//! - The level: the kernel's `oom-kill:` line names the memcg whose limit was hit
//!   (`oom_memcg`) and the victim's (`task_memcg`); when they differ, an *ancestor's* limit
//!   fired (the pod's, the QoS class's, kubepods = node allocatable) and the container's own
//!   limit was never reached: the case users cannot tell apart (containerd#12133). A report
//!   without a memcg constraint is a global OOM.
//! - The live counters per level back it up: v2 `memory.events.local` `oom` rises at the
//!   level whose limit was hit and `oom_kill` at the victim's (cgroup-v2.rst, memory.events
//!   vs .local); v1 `memory.failcnt` rises only at the page counter that hit its limit
//!   (mm/page_counter.c page_counter_try_charge).
//! - Group kills: with `memory.oom.group` the kernel prints `Tasks in X are going to be
//!   killed due to memory.oom.group set` and one `Killed process` line per task (mm/oom_kill.c
//!   oom_kill_memcg_member); they are one event with every victim.
//! - A victim that is not the container's first process leaves the container running, and
//!   its runtime reports OOMKilled=false (kubernetes#50632).

use crate::cgroup::read::{self, Level};
use crate::identity::Identity;
use crate::kmsg::oom::OomReport;
use crate::model::{Hierarchy, Limit, Version};
use crate::sys::Root;
use serde::Serialize;

/// The level whose limit fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitLevel {
    /// `container`, `pod`, `qos-class`, `kubepods` (node allocatable), `ancestor` (a parent
    /// cgroup outside Kubernetes), `own` (the victim's own non-Kubernetes cgroup), `global`,
    /// or `unknown` (the report has no oom-kill: line).
    pub level: &'static str,
    /// The cgroup whose limit was hit (`oom_memcg`).
    pub cgroup: Option<String>,
    /// True when that is the victim's own cgroup.
    pub own_limit: Option<bool>,
    /// One sentence.
    pub text: String,
}

fn last(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Classifies the cgroup whose limit fired.
pub fn limit_level(r: &OomReport) -> LimitLevel {
    if r.global {
        return LimitLevel {
            level: "global",
            cgroup: None,
            own_limit: None,
            text: "a global OOM: the node ran out of memory; no cgroup limit fired".into(),
        };
    }
    let Some(oom) = r.oom_memcg.clone() else {
        return LimitLevel {
            level: "unknown",
            cgroup: None,
            own_limit: None,
            text: "the report has no oom-kill: line (kernel before 4.19, or cut): the level is unknown".into(),
        };
    };
    let own = r.task_memcg.as_deref().map(|t| t == oom);
    let id = Identity::from_path(&oom);
    let l = last(&oom);
    let (level, what) = if oom == "/" {
        ("global", "the root cgroup".to_string())
    } else if id.container_id.is_some() {
        ("container", "the container's own limit".to_string())
    } else if id.pod_uid.is_some() {
        (
            "pod",
            "the pod's limit (the sum of its containers' limits, plus overhead)".to_string(),
        )
    } else if matches!(l, "kubepods" | "kubepods.slice") {
        (
            "kubepods",
            "the limit of every pod together (kubepods = node allocatable)".to_string(),
        )
    } else if id.qos.is_some() {
        (
            "qos-class",
            format!("the {} QoS class's limit", id.qos.unwrap_or("?")),
        )
    } else if own == Some(true) {
        ("own", "the victim's own cgroup limit".to_string())
    } else {
        ("ancestor", format!("the limit of an ancestor, {oom}"))
    };
    let text = match own {
        Some(false) => format!(
            "{what} fired at {oom}, not the victim's own cgroup ({}): its own limit was never reached",
            r.task_memcg.as_deref().unwrap_or("?")
        ),
        _ => format!("{what} fired at {oom}"),
    };
    LimitLevel {
        level,
        cgroup: Some(oom),
        own_limit: own,
        text,
    }
}

/// A kill of a whole cgroup (memory.oom.group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupKill {
    /// The cgroup killed as a whole.
    pub cgroup: Option<String>,
    /// Every victim: (pid, comm); in JSON objects `{pid, comm}` (one type per field).
    #[serde(serialize_with = "victims_json")]
    pub victims: Vec<(Option<i32>, Option<String>)>,
}

fn victims_json<S: serde::Serializer>(
    v: &[(Option<i32>, Option<String>)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for (pid, comm) in v {
        seq.serialize_element(&serde_json::json!({"pid": pid, "comm": comm}))?;
    }
    seq.end()
}

/// The group kill in a report, with all its victims (from the report's own lines).
pub fn group_kill(r: &OomReport) -> Option<GroupKill> {
    let head = r
        .lines
        .iter()
        .find(|l| l.starts_with("Tasks in ") && l.contains("memory.oom.group"))?;
    let cgroup = head
        .strip_prefix("Tasks in ")
        .and_then(|s| s.split(" are going to be killed").next())
        .map(String::from);
    let mut victims = Vec::new();
    for l in &r.lines {
        let Some((_, rest)) = l.split_once("Killed process ") else {
            continue;
        };
        let pid = rest
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<i32>().ok());
        let comm = rest
            .split_once('(')
            .and_then(|(_, c)| c.rsplit_once(')'))
            .map(|(c, _)| c.to_string());
        if !victims.iter().any(|(p, _)| *p == pid) {
            victims.push((pid, comm));
        }
    }
    Some(GroupKill { cgroup, victims })
}

/// Whether the victim was its container's first process, as far as the report and the live
/// node tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VictimRole {
    /// The victim had the lowest PID of the report's task table (the container's first
    /// process, normally its PID 1); `None` when the table is missing.
    pub first_process: Option<bool>,
    /// Processes still in the victim's cgroup now (live only).
    pub survivors: Option<usize>,
    /// One sentence, when there is something to say.
    pub text: Option<String>,
}

/// The victim's role from the report (and `survivors`, counted live by the caller).
pub fn victim_role(
    r: &OomReport,
    group: Option<&GroupKill>,
    survivors: Option<usize>,
) -> VictimRole {
    let vpid = r.victim.as_ref().and_then(|v| v.pid);
    // The task table lists the OOM memcg's tasks; it is the container's only when the
    // container's own limit fired.
    let own = r.task_memcg.is_some() && r.task_memcg == r.oom_memcg;
    let min = r.tasks.iter().filter_map(|t| t.tgid.or(t.pid)).min();
    let first = match (vpid, min, own, group.is_some()) {
        (_, _, _, true) => None,
        (Some(v), Some(m), true, _) => Some(v == m),
        _ => None,
    };
    let text = if group.is_some() {
        None
    } else if first == Some(false) || survivors.is_some_and(|n| n > 0) {
        Some(format!(
            "the victim (pid {}) was not the container's main process{}: the container keeps running and its runtime reports OOMKilled=false, so kubectl shows no OOM (kubernetes#50632); the kill is only in the kernel log and memory.events",
            vpid.map_or("?".into(), |p| p.to_string()),
            survivors
                .filter(|n| *n > 0)
                .map(|n| format!(" ({n} processes still run in its cgroup)"))
                .unwrap_or_default()
        ))
    } else {
        None
    };
    VictimRole {
        first_process: first,
        survivors,
        text,
    }
}

/// One level's counters now, from the victim's cgroup up to the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelCounters {
    /// cgroup path.
    pub path: String,
    /// Its own limit (`None` unlimited or unavailable).
    pub limit_bytes: Option<u64>,
    /// v2 memory.events.local `oom`: times *this* level's limit was hit and reclaim failed.
    pub oom_local: Option<u64>,
    /// v2 memory.events.local `oom_kill`: victims that were in this cgroup.
    pub oom_kill_local: Option<u64>,
    /// v2 memory.events `oom_group_kill` (5.17+).
    pub oom_group_kill: Option<u64>,
    /// v2 memory.oom.group.
    pub oom_group: Option<bool>,
    /// v1 memory.failcnt: times this level's own page counter hit its limit (kernels from
    /// about 6.15 keep it only where they track failcnt: 0 there proves nothing).
    pub failcnt: Option<u64>,
    /// v1 memory.max_usage_in_bytes, v2 memory.peak: at the limit when this level's limit
    /// is the one that was reached.
    pub peak_bytes: Option<u64>,
    /// v1 memory.oom_control oom_kill / v2 memory.events oom_kill (hierarchical).
    pub oom_kill: Option<u64>,
}

/// The kernel path of an OOM report (relative to the cgroup root) within `h`.
fn rel(h: &Hierarchy, p: &str) -> Option<String> {
    if h.mount_root == "/" {
        return Some(read::normalise(p));
    }
    let r = h.mount_root.trim_end_matches('/');
    p.strip_prefix(r)
        .map(|s| read::normalise(if s.is_empty() { "/" } else { s }))
}

/// The counters of every level from `task_memcg` up to the root (live cgroups only).
pub fn levels(root: &Root, h: &Hierarchy, task_memcg: &str) -> Vec<LevelCounters> {
    let Some(mut p) = rel(h, task_memcg) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // The victim's cgroup is gone (the container was removed): today's counters of its
    // ancestors no longer describe that kill.
    if !root.exists(&read::fs_path(h, &p)) {
        return out;
    }
    loop {
        if let Ok(cg) = read::read_cgroup(root, h, &p, Level::Full) {
            let loc = |k: &str| cg.events.events_local.as_ref().and_then(|e| e.get(k));
            out.push(LevelCounters {
                limit_bytes: cg.limits.max.and_then(Limit::bytes),
                oom_local: loc("oom"),
                oom_kill_local: loc("oom_kill"),
                oom_group_kill: cg
                    .events
                    .events
                    .as_ref()
                    .and_then(|e| e.get("oom_group_kill")),
                oom_group: cg.limits.oom_group,
                failcnt: (h.version == Version::V1)
                    .then_some(cg.events.failcnt)
                    .flatten(),
                peak_bytes: cg.usage.peak,
                oom_kill: cg.events.oom_kills(),
                path: p.clone(),
            });
        }
        if p == "/" {
            break;
        }
        p = match p.rsplit_once('/') {
            Some(("", _)) => "/".into(),
            Some((a, _)) => a.into(),
            None => break,
        };
    }
    out
}

/// Processes now in the victim's cgroup (None when it is gone or unreadable).
pub fn survivors(root: &Root, h: &Hierarchy, task_memcg: &str) -> Option<usize> {
    let p = rel(h, task_memcg)?;
    let t = root.read(&read::fs_path(h, &p).join("cgroup.procs")).ok()?;
    crate::cgroup::parse::pids(&t).ok().map(|v| v.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(oom: &str, task: &str) -> OomReport {
        OomReport {
            oom_memcg: Some(oom.into()),
            task_memcg: Some(task.into()),
            ..Default::default()
        }
    }

    #[test]
    fn levels_from_the_paths() {
        let pod = "/kubepods/burstable/pod0f2a4c6e-1b3d-4f5a-8c7e-9d0b1a2c3e4f";
        let ctr = format!("{pod}/{}", "a".repeat(64));
        assert_eq!(limit_level(&rep(&ctr, &ctr)).level, "container");
        let l = limit_level(&rep(pod, &ctr));
        assert_eq!((l.level, l.own_limit), ("pod", Some(false)));
        assert!(l.text.contains("never reached"));
        assert_eq!(limit_level(&rep("/kubepods.slice", &ctr)).level, "kubepods");
        assert_eq!(
            limit_level(&rep("/kubepods/burstable", &ctr)).level,
            "qos-class"
        );
        assert_eq!(limit_level(&rep("/a", "/a/b")).level, "ancestor");
        assert_eq!(limit_level(&rep("/a", "/a")).level, "own");
    }

    #[test]
    fn a_group_kill_is_one_event_with_every_victim() {
        let mut r = rep("/x", "/x");
        r.lines = vec![
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/x,task_memcg=/x,task=a,pid=10,uid=0".into(),
            "Memory cgroup out of memory: Killed process 10 (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0".into(),
            "Tasks in /x are going to be killed due to memory.oom.group set".into(),
            "Memory cgroup out of memory: Killed process 11 (b c) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0".into(),
            "Memory cgroup out of memory: Killed process 12 (d) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0".into(),
        ];
        let g = group_kill(&r).unwrap();
        assert_eq!(g.cgroup.as_deref(), Some("/x"));
        assert_eq!(
            g.victims,
            vec![
                (Some(10), Some("a".into())),
                (Some(11), Some("b c".into())),
                (Some(12), Some("d".into()))
            ]
        );
        assert!(victim_role(&r, Some(&g), Some(0)).text.is_none());
    }
}
