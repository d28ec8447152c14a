//! Real-kernel tests of `memlens cache`: files written by one cgroup and read by another, a
//! tmpfs file, a deleted-but-open file, ownership from /proc/kpagecgroup, `--drop`, and a
//! scan that changes no cgroup's counters; `zombies --why`; `memlens kernel` (negative
//! dentries inside a memcg, the node split against /proc/meminfo). Runs on v1 (host) and v2
//! (VM).

mod common;
use common::*;
use std::path::PathBuf;

fn within(what: &str, v: u64, want: u64, pct: f64) {
    let d = (v as f64 - want as f64).abs();
    assert!(
        d <= want as f64 * pct / 100.0,
        "{what} = {v} ({:.1} MiB), expected {:.1} MiB ± {pct}%",
        v as f64 / MIB as f64,
        want as f64 / MIB as f64
    );
}

fn row<'a>(r: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    r["files"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["path"] == path))
        .unwrap_or_else(|| panic!("{path} not listed: {r:#}"))
}

struct Files(Vec<PathBuf>);
impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[test]
fn files_owners_tmpfs_deleted_and_drop() {
    let dir = disk_dir();
    if on_tmpfs(&dir) {
        eprintln!("skipped: {} is tmpfs", dir.display());
        return;
    }
    let id = std::process::id();
    let f = |n: &str| dir.join(format!("memlens-test-cache-{id}-{n}"));
    let (f30, f20, f10, del) = (f("30"), f("20"), f("10"), f("del"));
    let shm = PathBuf::from(format!("/dev/shm/memlens-test-cache-{id}"));
    let _files = Files(vec![
        f30.clone(),
        f20.clone(),
        f10.clone(),
        del.clone(),
        shm.clone(),
    ]);
    let a = cgroup("cache-a");
    let b = cgroup("cache-b");
    let s = |p: &PathBuf| p.display().to_string();
    let wa = Workload::start(
        &a,
        &[
            &format!("write={}:30M", s(&f30)),
            &format!("write={}:20M", s(&f20)),
            &format!("write={}:10M", s(&f10)),
            &format!("open={}", s(&f30)),
            &format!("open={}", s(&f20)),
            &format!("open={}", s(&f10)),
            &format!("write={}:4M", s(&shm)),
            &format!("open={}", s(&shm)),
            &format!("write={}:5M", s(&del)),
            &format!("open={}", s(&del)),
            &format!("unlink={}", s(&del)),
        ],
    );
    let wb = Workload::start(
        &b,
        &[&format!("read={}:1", s(&f20)), &format!("open={}", s(&f20))],
    );
    let file_key = key("file");
    let before_a = kstat(&a)[&file_key];
    let before_b = kstat(&b)[&file_key];

    let ra = json(&["cache", a.path()]);
    assert!(ra["ownership_unavailable"].is_null(), "{ra:#}");
    for (p, mib) in [(&f30, 30), (&f20, 20), (&f10, 10)] {
        let r = row(&ra, &s(p));
        // kdamond's pageout scheme evicts cold page cache below the limit on this host (27 of
        // a 30 MiB file seen gone within a second): what is cached is the kernel's figure of
        // the moment (cachestat), never more than was written, and all of it charged to A.
        let cached = u(r, "cached_bytes");
        assert!(
            (mib * MIB / 2..=mib * MIB * 105 / 100).contains(&cached),
            "{}: cached {cached} of {mib} MiB",
            s(p)
        );
        within("charged to A", u(r, "charged_here_bytes"), cached, 5.0);
    }
    let t = row(&ra, &s(&shm));
    assert_eq!(t["tmpfs"], true, "{t}");
    within("tmpfs cached", u(t, "cached_bytes"), 4 * MIB, 5.0);
    let d = row(&ra, &s(&del));
    assert_eq!(d["deleted"], true, "{d}");
    within("deleted cached", u(d, "cached_bytes"), 5 * MIB, 5.0);
    // The named files are (nearly) all of A's page cache, as the kernel counts it.
    within(
        "files vs memory.stat",
        u(&ra, "charged_here_in_files_bytes"),
        u(&ra, "file_bytes"),
        5.0,
    );
    assert_eq!(u(&ra, "scan.major_faults"), 0, "{:#}", ra["scan"]);

    // B reads the 20 MiB file: used by B, charged to A (the first to touch it).
    let rb = json(&["cache", b.path()]);
    let r = row(&rb, &s(&f20));
    within("cached (B)", u(r, "cached_bytes"), 20 * MIB, 5.0);
    assert!(u(r, "charged_here_bytes") < MIB, "{r}");
    let other = r["charged_elsewhere"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["cgroup"] == a.path()))
        .unwrap_or_else(|| panic!("not charged to A: {r}"));
    within(
        "charged to A (seen from B)",
        u(other, "charged_bytes"),
        20 * MIB,
        5.0,
    );
    assert!(
        kstat(&b)[&file_key] < 2 * MIB,
        "B was charged: {:?}",
        kstat(&b)
    );

    // The scans changed neither cgroup's page cache (kdamond may only lower it), and
    // memlens itself, run in a third cgroup, was charged nothing.
    assert!(kstat(&a)[&file_key] <= before_a + 256 * 1024);
    assert!(kstat(&b)[&file_key] <= before_b + 256 * 1024);
    let c = cgroup("cache-c");
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["cache", a.path(), "--json"]);
    c.join_before_exec(&mut cmd).unwrap();
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let rc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u(&rc, "scan.major_faults"), 0);
    assert!(
        kstat(&c)[&file_key] < MIB,
        "the scan was charged page cache: {:?}",
        kstat(&c)
    );
    assert!(kstat(&a)[&file_key] <= before_a + 256 * 1024);

    // --drop: write back first (DONTNEED drops clean pages only), then drop the 30 MiB file.
    std::fs::File::open(&f30).unwrap().sync_all().unwrap();
    let counter = kstat(&a)[&file_key];
    let dr = json(&["cache", "--drop", &s(&f30)]);
    let d0 = &dr["dropped"][0];
    within("freed", u(d0, "freed_bytes"), 30 * MIB, 5.0);
    let o = d0["owners"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["owner"]["cgroup"] == a.path()))
        .unwrap_or_else(|| panic!("A not among the owners: {d0}"));
    within("freed from A", u(o, "owner.charged_bytes"), 30 * MIB, 5.0);
    let after = kstat(&a)[&file_key];
    // The counter fell by at least what was freed (kdamond may have taken more).
    assert!(
        counter.saturating_sub(after) as f64 >= u(d0, "freed_bytes") as f64 * 0.95,
        "A's page cache {counter} → {after}, freed {}",
        u(d0, "freed_bytes")
    );
    drop(wb);
    drop(wa);
}

fn dying_count() -> u64 {
    u(&json(&["zombies"])["hierarchies"][0], "dying")
}

#[test]
fn zombies_why_names_the_file_that_pins_a_dying_memcg() {
    let dir = disk_dir();
    if on_tmpfs(&dir) {
        eprintln!("skipped: {} is tmpfs", dir.display());
        return;
    }
    let v2 = hier().version == memlens::model::Version::V2;
    let file = dir.join(format!("memlens-test-zwhy-{}", std::process::id()));
    let _files = Files(vec![file.clone()]);
    let parent = cgroup("zwhy");
    if v2 {
        parent.write("cgroup.subtree_control", "+memory").unwrap();
    }
    let child = parent.create_child("memlens-test-child").unwrap();
    Workload::start(&child, &[&format!("write={}:50M", file.display()), "exit"]).finish();
    // Written back before the rmdir, as a long-gone container's files are: an inode still
    // dirty when its memcg goes offline keeps its cgroup-writeback association (a reference
    // on the memcg) after its pages are dropped (seen on 6.1, v2), which is not what this
    // test is about.
    std::fs::File::open(&file).unwrap().sync_all().unwrap();
    // The directory too: creating the file dirtied it from the child's memcg.
    std::fs::File::open(&dir).unwrap().sync_all().unwrap();
    child.remove().unwrap();
    let stat_file = key("file");
    let pinned = kstat(&parent)[&stat_file];
    assert!(pinned >= 45 * MIB, "the removed child's cache: {pinned}");

    // rmdir only starts taking the memcg offline (css_killed_work_fn runs after an RCU grace
    // period, from a workqueue); until then /proc/kpagecgroup still names the removed child's
    // own inode, which is no live directory (seen on 6.18 in CI, right after the rmdir). Ask
    // until the kernel has caught up.
    let t = std::time::Instant::now();
    let (w, hd, f) = loop {
        let w = json(&["zombies", "--why", "--path", &dir.display().to_string()]);
        // The named pages and memory.stat must agree in one report; memory.stat lags evictions
        // (kdamond) by up to the kernel's stat flush, so a disagreement is asked again.
        let agree = |hd: &serde_json::Value, f: &serde_json::Value| {
            let (d, n) = (u(hd, "dying_file_bytes"), u(f, "charged_bytes"));
            (d as f64 - n as f64).abs() <= d as f64 * 0.05
        };
        let w = w["why"].clone();
        let hd = w["holders"]
            .as_array()
            .and_then(|a| a.iter().find(|h| h["cgroup"] == parent.path()))
            .unwrap_or_else(|| panic!("{} not a holder: {w:#}", parent.path()))
            .clone();
        let f = hd["files"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["path"] == file.display().to_string()))
            .cloned();
        match f {
            Some(f) if agree(&hd, &f) || t.elapsed() > std::time::Duration::from_secs(10) => {
                break (w, hd, f);
            }
            None if t.elapsed() > std::time::Duration::from_secs(10) => {
                panic!("file not named: {hd:#}")
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    };
    assert_eq!(u(&w, "major_faults"), 0);
    // At most what the child wrote, at least half of it (kdamond, see above).
    let dying = u(&hd, "dying_file_bytes");
    assert!(
        (25 * MIB..=50 * MIB * 105 / 100).contains(&dying),
        "dying page cache {dying}"
    );
    assert_eq!(hd["certain"], true, "{hd}");
    let f = &f;
    within("named", u(f, "charged_bytes"), dying, 5.0);
    if v2 {
        assert!(u(&hd, "nr_dying_descendants") >= 1, "{hd}");
    }

    // Drop it: the dying memcg loses its last pages and is freed (after RCU and the
    // kernel's own delayed work: poll).
    let before = dying_count();
    let d = json(&["cache", "--drop", &file.display().to_string()]);
    within("freed", u(&d["dropped"][0], "freed_bytes"), 50 * MIB, 5.0);
    let t = std::time::Instant::now();
    let mut ok = false;
    while t.elapsed() < std::time::Duration::from_secs(20) {
        let gone = if v2 {
            memlens::cgroup::parse::flat_keyed(&kfile(&parent, "cgroup.stat"))
                .0
                .get("nr_dying_descendants")
                == Some(0)
        } else {
            dying_count() < before
        };
        if gone && kstat(&parent)[&stat_file] < MIB {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    if !ok && v2 && kstat(&parent)[&stat_file] < MIB {
        // Seen on 6.1 (v2, the VM): the page cache is gone but the memcg stays dying, held by
        // something that is not page cache (see src/dying.rs). Then `--why` must say so
        // instead of naming files.
        let w = json(&["zombies", "--why", "--path", &dir.display().to_string()]);
        let hd = w["why"]["holders"]
            .as_array()
            .and_then(|a| a.iter().find(|h| h["cgroup"] == parent.path()))
            .unwrap_or_else(|| panic!("{} not a holder: {w:#}", parent.path()));
        assert!(
            hd["remedy"]
                .as_str()
                .is_some_and(|r| r.starts_with("no page cache left")),
            "{hd:#}"
        );
        eprintln!(
            "note: the dying memcg outlived its page cache on this kernel (v2); --why says no page cache is left"
        );
        return;
    }
    assert!(
        ok,
        "the dying memcg stayed: dying {before} → {}, parent's cache {}",
        dying_count(),
        kstat(&parent)[&stat_file]
    );
}

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == key).then(|| v.split_whitespace().next()?.parse::<u64>().ok())?
        })
        .map(|k| k * 1024)
        .unwrap()
}

#[test]
fn negative_dentries_are_reclaimable_kernel_memory() {
    let cg = cgroup("kmem");
    let dir = disk_dir();
    let n = 200_000u64;
    let _w = Workload::start(&cg, &[&format!("lookup={}:{n}", dir.display())]);
    let r = json(&["kernel", cg.path()]);
    let total = u(&r, "split.total.value_bytes");
    // A dentry is 192 bytes (slabinfo objsize on x86_64).
    let want = n * 192 * 8 / 10;
    assert!(total >= want, "kernel {total} < {want}: {r:#}");
    let f = &r["finding"];
    assert_eq!(f["id"], "kernel-split");
    if hier().version == memlens::model::Version::V2 {
        assert!(u(&r, "split.reclaimable_bytes") >= want, "{r:#}");
        assert!(f["title"].as_str().unwrap().contains("harmless"), "{f:#}");
    } else {
        assert!(r["split"]["reclaimable_bytes"].is_null());
    }

    // The node: each part is /proc/meminfo's figure (read around memlens: between the two),
    // and the caches of /proc/slabinfo add up to meminfo Slab.
    let lo = meminfo("SUnreclaim");
    let n = json(&["kernel"]);
    let hi = meminfo("SUnreclaim");
    let parts = n["node"]["parts"].as_array().unwrap();
    let su = parts
        .iter()
        .find(|p| p["name"] == "slab_unreclaimable")
        .unwrap();
    let v = u(su, "figure.value_bytes");
    assert!(
        v + 4 * MIB >= lo.min(hi) && v <= lo.max(hi) + 4 * MIB,
        "SUnreclaim {v} not within {lo}..{hi}"
    );
    let slab = meminfo("Slab");
    let total = u(&n, "node.slabinfo_total_bytes");
    let d = (total as f64 - slab as f64).abs() / slab as f64;
    assert!(d < 0.05, "slabinfo {total} vs meminfo Slab {slab}");
    assert!(u(&n["node"]["dentries"], "nr_dentry") > 0);
}

/// On a capture: `cache` and `zombies --why` need the live page cache and refuse (exit 2);
/// `kernel` works from the captured files (this host's /proc/slabinfo fixture).
#[test]
fn captures_refuse_residency_but_give_the_kernel_split() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let w = |rel: &str, text: &str| {
        let p = r.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "proc/self/mountinfo",
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n",
    );
    w("sys/fs/cgroup/memory/memory.usage_in_bytes", "0\n");
    w(
        "proc/slabinfo",
        include_str!("fixtures/kernel/slabinfo/proc-slabinfo-6.18"),
    );
    w(
        "proc/sys/fs/dentry-state",
        include_str!("fixtures/kernel/slabinfo/dentry-state-6.18"),
    );
    let from = r.display().to_string();
    let (code, _, err) = run(&["cache", "/", "--from", &from]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("live system"), "{err}");
    let (code, _, err) = run(&["zombies", "--why", "--from", &from]);
    assert_eq!(code, 2, "{err}");
    // A named file that cannot be dropped is bad input, named in the output.
    let (code, out, _) = run(&["cache", "--drop", "/nonexistent/memlens-test-file"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("cannot drop /nonexistent/memlens-test-file"),
        "{out}"
    );
    let k = json(&["kernel", "--from", &from]);
    // ext4_inode_cache 453744 453838 1128 14 4 : ... slabdata 32417: 506.5 MiB, the largest.
    assert_eq!(
        k["node"]["slab_caches"][0]["name"], "ext4_inode_cache",
        "{k:#}"
    );
    assert_eq!(k["node"]["dentries"]["nr_negative"].as_u64(), Some(132124));
    // meminfo was not captured: unavailable, not 0.
    assert!(k["node"]["parts"][0]["figure"]["value_bytes"].is_null());

    // v1 memory.kmem.slabinfo from real kernels: before 5.9 a cgroup's own caches (largest
    // first), or the header alone (no cache of its own yet); since 5.9 0 bytes.
    // (Compiled in: the VM has the test binaries, not the source tree.)
    for (cg, text) in [
        (
            "qemu",
            include_str!("fixtures/kernel/slabinfo/memory.kmem.slabinfo-2017-slab-linux-mm"),
        ),
        (
            "kubepods",
            include_str!("fixtures/kernel/slabinfo/memory.kmem.slabinfo-kubepods-header-only"),
        ),
        (
            "new",
            include_str!("fixtures/kernel/slabinfo/memory.kmem.slabinfo-6.18"),
        ),
    ] {
        w(
            &format!("sys/fs/cgroup/memory/{cg}/memory.usage_in_bytes"),
            "0\n",
        );
        w(
            &format!("sys/fs/cgroup/memory/{cg}/memory.kmem.slabinfo"),
            text,
        );
    }
    let k = json(&["kernel", "/qemu", "--from", &from]);
    let c = &k["split"]["slab_caches"];
    // vm_area_struct 510 780 272 15 1 : ... slabdata 52 52 0, then anon_vma_chain (13 slabs).
    assert_eq!(c[0]["name"], "vm_area_struct", "{k:#}");
    assert_eq!(c[0]["total_bytes"].as_u64(), Some(52 * 4096));
    assert_eq!(c[1]["name"], "anon_vma_chain", "{k:#}");
    assert!(k["split"]["slab_caches_note"].is_null(), "{k:#}");
    let k = json(&["kernel", "/kubepods", "--from", &from]);
    let note = k["split"]["slab_caches_note"].as_str().unwrap_or("");
    assert!(
        note.contains("no slab cache of this cgroup's own yet") && !note.contains("5.9 all"),
        "{note}"
    );
    let k = json(&["kernel", "/new", "--from", &from]);
    let note = k["split"]["slab_caches_note"].as_str().unwrap_or("");
    assert!(note.contains("since 5.9"), "{note}");
    let (_, out, _) = run(&["kernel", "/qemu", "--from", &from]);
    assert!(out.contains("vm_area_struct"), "{out}");
}
