//! Containers on a capture tree. Names as targets (issue 11 items 2, 3): docker and podman
//! names resolve, ambiguity lists candidates with their names, and a string of digits that
//! is both a live PID and a container-ID prefix is ambiguous.
//!
//! What a capture may carry off the node (issue 11 item 1): a capture of one container holds
//! the kernel files and, of the runtimes' configs, only the name, image and `io.kubernetes.*`
//! labels of the containers in it; never another container's environment, and no command
//! line unless `--include-cmdline`. The tree is a v1 layout with two docker containers and
//! one podman container whose configs hold planted secrets. The real-engine version (a
//! secret in a real container's `-e`) is in engine_docker.rs.

mod common;
use common::run;
use std::fs;
use std::io::Read;
use std::path::Path;

const ID1: &str = "abc1230000000000000000000000000000000000000000000000000000000001";
const ID2: &str = "abc1240000000000000000000000000000000000000000000000000000000002";
const ID3: &str = "abc1250000000000000000000000000000000000000000000000000000000003";
/// An ID of decimal digits only, as docker prints a short one about once in 300.
const ID4: &str = "4242000000000000000000000000000000000000000000000000000000000004";
const MOUNTINFO: &str =
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";
const STAT: &str = "cache 0\nrss 1339392\nshmem 0\nmapped_file 0\nswap 0\ninactive_anon 0\nactive_anon 1339392\ninactive_file 0\nactive_file 0\nunevictable 0\ntotal_cache 0\ntotal_rss 1339392\ntotal_shmem 0\ntotal_mapped_file 0\ntotal_swap 0\ntotal_inactive_anon 0\ntotal_active_anon 1339392\ntotal_inactive_file 0\ntotal_active_file 0\ntotal_unevictable 0\n";
const STATUS: &str = "Name:\tworker\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\tPID\nPid:\tPID\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nVmRSS:\t    1576 kB\nRssAnon:\t     116 kB\nRssFile:\t    1460 kB\nRssShmem:\t       0 kB\nThreads:\t1\n";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn docker_config(id: &str, name: &str, secret: &str) -> String {
    serde_json::json!({
        "ID": id, "Name": format!("/{name}"), "Path": "/app", "Args": [format!("--token={secret}")],
        "Config": {"Image": "shop/web:1.2", "Env": [format!("DB_PASSWORD={secret}")],
            "Cmd": ["/app", format!("--token={secret}")],
            "Labels": {"io.kubernetes.pod.name": "web-0", "com.example.secret": secret}},
        "MountPoints": {"/run/secrets": {"Source": format!("/srv/{secret}")}},
    })
    .to_string()
}

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "proc/self/mountinfo", MOUNTINFO);
    write(
        r,
        "proc/meminfo",
        "MemTotal:       24683656 kB\nMemFree:        23800000 kB\nMemAvailable:   24300000 kB\n",
    );
    let base = "sys/fs/cgroup/memory";
    write(r, &format!("{base}/memory.usage_in_bytes"), "247287808\n");
    write(r, &format!("{base}/memory.stat"), STAT);
    for (id, pid, parent) in [
        (ID1, 4242, "docker"),
        (ID2, 4343, "docker"),
        (ID3, 4444, "libpod_parent"),
    ] {
        let c = if parent == "docker" {
            format!("{base}/docker/{id}")
        } else {
            format!("{base}/{parent}/libpod-{id}")
        };
        write(r, &format!("{c}/memory.usage_in_bytes"), "19845120\n");
        write(r, &format!("{c}/memory.limit_in_bytes"), "134217728\n");
        write(r, &format!("{c}/memory.stat"), STAT);
        write(r, &format!("{c}/cgroup.procs"), &format!("{pid}\n"));
        write(
            r,
            &format!("proc/{pid}/status"),
            &STATUS.replace("PID", &pid.to_string()),
        );
        write(
            r,
            &format!("proc/{pid}/cmdline"),
            &format!("/app\0--token=CMDLINE-{id}\0"),
        );
        write(
            r,
            &format!("proc/{pid}/environ"),
            &format!("DB_PASSWORD=ENVIRON-{id}\0"),
        );
    }
    write(
        r,
        &format!("sys/fs/cgroup/memory/docker/{ID4}/memory.usage_in_bytes"),
        "0\n",
    );
    write(
        r,
        &format!("sys/fs/cgroup/memory/docker/{ID4}/memory.stat"),
        STAT,
    );
    write(r, "proc/4242/cgroup", &format!("4:memory:/docker/{ID1}\n"));
    write(r, "proc/4343/cgroup", &format!("4:memory:/docker/{ID2}\n"));
    write(
        r,
        &format!("var/lib/docker/containers/{ID4}/config.v2.json"),
        &docker_config(ID4, "digits", "SECRET-OF-4"),
    );
    write(
        r,
        &format!("var/lib/docker/containers/{ID1}/config.v2.json"),
        &docker_config(ID1, "shop-web", "SECRET-OF-1"),
    );
    write(
        r,
        &format!("var/lib/docker/containers/{ID2}/config.v2.json"),
        &docker_config(ID2, "billing", "SECRET-OF-2"),
    );
    write(
        r,
        &format!("var/lib/docker/containers/{ID1}/hostconfig.json"),
        "{\"Binds\":[\"SECRET-OF-1\"]}",
    );
    let podman = serde_json::json!([{"id": ID3, "names": ["pm-db"], "image": "f00",
        "metadata": serde_json::json!({"image-name": "localhost/db:3", "name": "pm-db", "secret": "SECRET-OF-3"}).to_string(),
        "flags": {"x": "SECRET-OF-3"}}]);
    write(
        r,
        "var/lib/containers/storage/overlay-containers/containers.json",
        &podman.to_string(),
    );
    d
}

/// Every file of a .tar.gz as (path, text).
fn members(p: &Path) -> Vec<(String, String)> {
    let f = fs::File::open(p).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        out.push((name, s));
    }
    out
}

fn grep<'a>(m: &'a [(String, String)], needle: &str) -> Vec<&'a str> {
    m.iter()
        .filter(|(n, t)| n.contains(needle) || t.contains(needle))
        .map(|(n, _)| n.as_str())
        .collect()
}

#[test]
fn a_capture_of_one_container_holds_no_secret() {
    let d = tree();
    let from = d.path().display().to_string();
    let out = d.path().join("cap.tar.gz");
    let (code, _, err) = run(&[
        "--from",
        &from,
        "capture",
        ID1,
        "-o",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let m = members(&out);
    for secret in [
        "SECRET-OF-1",
        "SECRET-OF-2",
        "SECRET-OF-3",
        "CMDLINE-",
        "ENVIRON-",
        "DB_PASSWORD",
        "--token",
    ] {
        assert!(
            grep(&m, secret).is_empty(),
            "{secret} leaked into {:?}",
            grep(&m, secret)
        );
    }
    // The other containers' names are not in it either; the target's are, and still work.
    assert!(grep(&m, "billing").is_empty() && grep(&m, "pm-db").is_empty());
    let (code, show, err) = run(&["show", ID1, "--from", &out.display().to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["identity"]["names"]["runtime_name"], "shop-web");
    assert_eq!(v["identity"]["names"]["image"], "shop/web:1.2");
    assert_eq!(v["identity"]["names"]["pod"], "web-0");
    // What was left out is listed in the metadata, by path.
    let meta: serde_json::Value = serde_json::from_str(
        &m.iter()
            .find(|(n, _)| n == "memlens-capture.json")
            .unwrap()
            .1,
    )
    .unwrap();
    let withheld = meta["withheld"].as_object().unwrap();
    assert!(withheld.contains_key("/proc/4242/cmdline"), "{meta}");
    assert!(
        withheld.contains_key(&format!("/var/lib/docker/containers/{ID1}/hostconfig.json"))
            || !m.iter().any(|(n, _)| n.ends_with("hostconfig.json"))
    );
}

#[test]
fn include_cmdline_keeps_the_targets_command_lines_and_all_keeps_only_names() {
    let d = tree();
    let from = d.path().display().to_string();
    let out = d.path().join("cap.tar.gz");
    let o = out.display().to_string();
    let (code, _, err) = run(&[
        "--from",
        &from,
        "capture",
        ID1,
        "-o",
        &o,
        "--include-cmdline",
    ]);
    assert_eq!(code, 0, "{err}");
    let m = members(&out);
    assert_eq!(
        grep(&m, &format!("CMDLINE-{ID1}")),
        vec!["proc/4242/cmdline"]
    );
    assert!(grep(&m, "SECRET-OF").is_empty());
    // --all: every container's names (podman's too), still no environment or labels.
    let (code, _, err) = run(&["--from", &from, "capture", "--all", "-o", &o]);
    assert_eq!(code, 0, "{err}");
    let m = members(&out);
    for secret in [
        "SECRET-OF-1",
        "SECRET-OF-2",
        "SECRET-OF-3",
        "CMDLINE-",
        "ENVIRON-",
    ] {
        assert!(
            grep(&m, secret).is_empty(),
            "{secret} leaked into {:?}",
            grep(&m, secret)
        );
    }
    assert!(!grep(&m, "billing").is_empty() && !grep(&m, "pm-db").is_empty());
    let (code, ov, err) = run(&["--from", &o, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        ov.contains("\"pm-db\"") && ov.contains("localhost/db:3"),
        "{ov}"
    );
}

#[test]
fn runtime_names_are_targets_and_ambiguity_names_the_candidates() {
    let d = tree();
    let from = d.path().display().to_string();
    for (name, id) in [("shop-web", ID1), ("billing", ID2), ("pm-db", ID3)] {
        for cmd in ["show", "ps", "explain"] {
            let (code, out, err) = run(&[cmd, name, "--from", &from, "--json"]);
            assert_eq!(code, 0, "{cmd} {name}: {err}");
            assert!(out.contains(id), "{cmd} {name}: {out}");
        }
    }
    // podman's container is podman's, with its image.
    let (_, out, _) = run(&["show", "pm-db", "--from", &from, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["identity"]["runtime"], "podman");
    assert_eq!(v["identity"]["names"]["image"], "localhost/db:3");
    // A prefix of two IDs: both listed, with their names and images.
    let (code, _, err) = run(&["show", "abc12", "--from", &from]);
    assert_eq!(code, 2, "{err}");
    for w in [
        "shop-web",
        "billing",
        "pm-db",
        "image shop/web:1.2",
        ID1,
        ID2,
    ] {
        assert!(err.contains(w), "{w} missing: {err}");
    }
}

#[test]
fn digits_that_are_a_pid_and_a_container_id_prefix_are_ambiguous() {
    let d = tree();
    let from = d.path().display().to_string();
    let (code, _, err) = run(&["show", "4242", "--from", &from]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ambiguous"), "{err}");
    assert!(
        err.contains("process 4242") && err.contains(&format!("/docker/{ID1}")),
        "{err}"
    );
    assert!(err.contains(ID4) && err.contains("name digits"), "{err}");
    // A PID that is no container's prefix is the process.
    let (code, out, err) = run(&["show", "4343", "--from", &from, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(ID2), "{out}");
    // The full ID is a container, whatever the PIDs.
    let (code, out, err) = run(&["show", ID4, "--from", &from, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"digits\""), "{out}");
}
