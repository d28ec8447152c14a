//! Which limit fired, on real OOM kills in nested memcgs of ours laid out as a kubelet lays
//! out pods (`kubepods/burstable/pod<UID>/<container ID>`): one kill at the pod's limit (the
//! container has none) and one at the container's own limit, told apart by `memlens oom`;
//! and in the second, a victim that is not the container's first process, with the
//! container living on. v1 on the host, v2 in the VM.

mod common;
use common::*;
use memlens::cgroup::owned::OwnedCgroup;
use memlens::model::Version;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

fn grow_until_killed(cg: &OwnedCgroup) -> i64 {
    let mut cmd = Command::new(bin());
    cmd.args(["__workload", "grow=512M"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cg.join_before_exec(&mut cmd).unwrap();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as i64;
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "grow=512M must be OOM-killed");
    pid
}

fn kill_of(pid: i64) -> serde_json::Value {
    let all = json(&["oom"]);
    all["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|k| k["victim"]["pid"].as_i64() == Some(pid))
        .cloned()
        .unwrap_or_else(|| panic!("victim {pid} not in memlens oom"))
}

/// parent/kubepods/burstable/pod<uid>/<id>, memory delegated on v2.
fn layout(parent: &OwnedCgroup, uid: &str, id: &str) -> Vec<OwnedCgroup> {
    let v2 = hier().version == Version::V2;
    let mut out: Vec<OwnedCgroup> = Vec::new();
    for n in ["kubepods", "burstable", &format!("pod{uid}"), id] {
        let p = out.last().unwrap_or(parent);
        if v2 {
            p.write("cgroup.subtree_control", "+memory").unwrap();
        }
        out.push(p.create_child(n).unwrap());
    }
    out
}

#[test]
fn pod_level_and_container_level_kills_are_told_apart() {
    let parent = cgroup("oomlevel");
    let uid = "bbbbbbbb-2222-4222-8222-000000000001";
    let id = "e".repeat(64);
    let l = Chain(layout(&parent, uid, &id));
    let l = &l.0;
    let (pod, ctr) = (&l[2], &l[3]);
    // 1. The pod's limit: 48 MiB on the pod, none on the container.
    limit(pod, 48 * MIB);
    let pid = grow_until_killed(ctr);
    let k = kill_of(pid);
    assert_eq!(k["oom_memcg"], pod.path());
    assert_eq!(k["task_memcg"], ctr.path());
    assert_eq!(k["limit"]["level"], "pod", "{:#}", k["limit"]);
    assert_eq!(k["limit"]["own_limit"], false);
    // The counters now, per level: the pod's own limit was hit, the container's was not.
    let lv = k["levels"].as_array().unwrap();
    let at = |p: &str| lv.iter().find(|x| x["path"] == p).unwrap().clone();
    if hier().version == Version::V2 {
        assert!(at(pod.path())["oom_local"].as_u64().unwrap() >= 1);
        assert_eq!(at(ctr.path())["oom_local"].as_u64(), Some(0));
        assert!(at(ctr.path())["oom_kill_local"].as_u64().unwrap() >= 1);
        // The exporter says the same: the pod's own limit fired, not the container's.
        let snap = memlens::metrics::collect(&memlens::sys::Root::live(), &hier());
        let fam = snap
            .families
            .iter()
            .find(|f| f.name == "memlens_memory_oom_limit_reached_total")
            .expect("the family");
        let val = |p: &str| {
            fam.samples
                .iter()
                .find(|s| s.labels.iter().any(|(k, v)| *k == "id" && v == p))
                .map(|s| format!("{:?}", s.value))
        };
        let pod_v = val(pod.path()).unwrap_or_else(|| panic!("no series for the pod: {fam:?}"));
        assert!(pod_v != "Int(0)", "{pod_v}");
        // The container's subtree counted no OOM of its own limit: no series (or 0).
        let c = val(ctr.path());
        assert!(matches!(c.as_deref(), None | Some("Int(0)")), "{c:?}");
    } else {
        // v1: the pod's peak reached its limit (failcnt is not kept by 6.15+ kernels).
        let p = at(pod.path());
        assert!(
            p["peak_bytes"].as_u64().unwrap() + 2 * MIB >= 48 * MIB,
            "{p:#}"
        );
        assert!(at(ctr.path())["limit_bytes"].is_null());
    }
    let n = k["number"].as_u64().unwrap().to_string();
    let (code, out, _) = run(&["oom", "show", &n, "--color", "never"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("limit that fired: pod") && out.contains("never reached"),
        "{out}"
    );

    // 2. The container's own limit (32 MiB under a pod of 256 MiB), with a first process
    // that stays small: the grower is killed, the container lives on.
    let v2 = hier().version == Version::V2;
    let pod2 = l[1]
        .create_child("podbbbbbbbb-2222-4222-8222-000000000002")
        .unwrap();
    if v2 {
        pod2.write("cgroup.subtree_control", "+memory").unwrap();
    }
    let ctr2 = pod2.create_child(&"f".repeat(64)).unwrap();
    let l2 = Chain(vec![pod2, ctr2]);
    let (pod, ctr) = (&l2.0[0], &l2.0[1]);
    limit(pod, 256 * MIB);
    limit(ctr, 32 * MIB);
    let main = Workload::start(ctr, &["anon=1M"]);
    let pid = grow_until_killed(ctr);
    let k = kill_of(pid);
    assert_eq!(k["oom_memcg"], ctr.path());
    assert_eq!(k["limit"]["level"], "container");
    assert_eq!(k["limit"]["own_limit"], true);
    assert_eq!(
        k["victim_role"]["first_process"], false,
        "{:#}",
        k["victim_role"]
    );
    assert_eq!(k["victim_role"]["survivors"].as_u64(), Some(1));
    assert!(
        k["victim_role"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("OOMKilled=false")),
        "{:#}",
        k["victim_role"]
    );
    drop(main);
    drop(l2);
}

/// Removes nested cgroups children first, also when a test panics.
struct Chain(Vec<OwnedCgroup>);

impl Drop for Chain {
    fn drop(&mut self) {
        while let Some(c) = self.0.pop() {
            drop(c);
        }
    }
}

#[test]
fn a_group_kill_is_one_event_with_every_victim() {
    if hier().version != Version::V2 {
        eprintln!("skipped: memory.oom.group is cgroup v2 only (this host is v1)");
        return;
    }
    let parent = cgroup("oomgroup");
    parent.write("cgroup.subtree_control", "+memory").unwrap();
    let ctr = Chain(vec![parent.create_child(&"a".repeat(64)).unwrap()]);
    let c = &ctr.0[0];
    c.write("memory.oom.group", "1").unwrap();
    limit(c, 48 * MIB);
    let holder = Workload::start(c, &["anon=8M"]);
    let hpid = holder.pid() as i64;
    let gpid = grow_until_killed(c);
    // The holder dies with it: the whole cgroup is killed.
    let mut holder = holder;
    let st = holder.child.wait().unwrap();
    assert_eq!(st.signal(), Some(9), "the holder is killed with the group");
    let all = json(&["oom"]);
    let mine: Vec<&serde_json::Value> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["oom_memcg"] == c.path())
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one event: {:#?}",
        mine.iter().map(|k| &k["lines"]).collect::<Vec<_>>()
    );
    let g = &mine[0]["group_kill"];
    let pids: Vec<i64> = g["victims"]
        .as_array()
        .unwrap_or_else(|| panic!("not a group kill: {:#}", mine[0]["lines"]))
        .iter()
        .filter_map(|v| v["pid"].as_i64())
        .collect();
    assert!(
        pids.contains(&hpid) && pids.contains(&gpid),
        "{pids:?} has {hpid} and {gpid}"
    );
    assert!(mine[0]["victim_role"]["text"].is_null());
}

#[test]
fn follow_reports_the_level_and_the_counters_at_the_kill() {
    let parent = cgroup("oomfollow");
    let l = Chain(layout(
        &parent,
        "bbbbbbbb-2222-4222-8222-000000000009",
        &"9".repeat(64),
    ));
    let (pod, ctr) = (&l.0[2], &l.0[3]);
    limit(pod, 48 * MIB);
    let mut f = Command::new(bin())
        .args(["oom", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its banner on stderr comes once it has read every counter and opened the log: a kill
    // after that is reported.
    use std::io::BufRead;
    let mut banner = String::new();
    // Kept open until the end: the follower may write more to stderr.
    let mut _err = std::io::BufReader::new(f.stderr.take().unwrap());
    _err.read_line(&mut banner).unwrap();
    assert!(banner.contains("following"), "{banner}");
    let pid = grow_until_killed(ctr);
    // Other kills on the node (other tests) are followed too: take ours.
    let mut d = serde_json::Value::Null;
    for line in std::io::BufReader::new(f.stdout.take().unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["cgroup"] == ctr.path() {
            d = v;
            break;
        }
    }
    let _ = f.kill();
    let _ = f.wait();
    let pm = &d["post_mortem"];
    if pm.is_null() {
        // Only the counter saw it (kernel log unreadable): nothing more to check.
        eprintln!("skipped: the kill was seen by its counter only");
        return;
    }
    assert_eq!(pm["victim"]["pid"].as_i64(), Some(pid));
    assert_eq!(pm["limit"]["level"], "pod");
    let lv = pm["levels"].as_array().unwrap();
    assert_eq!(
        lv[0]["path"],
        ctr.path(),
        "levels start at the victim's cgroup: {lv:#?}"
    );
    assert!(
        lv.iter()
            .any(|x| x["path"] == pod.path() && x["limit_bytes"].as_u64() == Some(48 * MIB))
    );
}
