//! `history`'s figures from the store equal the figures of the same files read the usual
//! way (every file rendered and read by `read_cgroup`, as `show` does), for a real memcg's
//! files sampled while a workload grows, its limit changes and its processes come and go.
//! `history::points` updates the numbers of unchanged templates in place (issue 13: a day
//! of a busy cgroup in 1.3 s before); this is the check that doing so changes nothing.

mod common;

use memlens::cgroup::read::{self, Level};
use memlens::model::{Limit, Version};
use memlens::store::{Limits, Reader, Writer};
use memlens::sys::Root;
use memlens::views::breakdown::Breakdown;
use memlens::views::derived::{Derived, EffectiveLimit};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Every memory file of the cgroup and its cgroup.procs, as read now.
fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("memory.") || name == "cgroup.procs")
            || name.contains("force_empty")
            || name.contains("event_control")
        {
            continue;
        }
        if let Ok(b) = std::fs::read(e.path()) {
            v.push((e.path().to_string_lossy().into_owned(), b));
        }
    }
    v.sort();
    v
}

/// A point's figures, limit hits, OOM kills and processes.
type Figures = (Vec<Option<u64>>, Option<u64>, Option<u64>, Option<Vec<i32>>);

/// The figures of one sample read the usual way (the reference).
fn reference(h: &memlens::model::Hierarchy, path: &str, sample: &[(String, Vec<u8>)]) -> Figures {
    let map: BTreeMap<PathBuf, Vec<u8>> = sample
        .iter()
        .map(|(p, b)| (PathBuf::from(p), b.clone()))
        .collect();
    let root = Root::from_files(map);
    let cg = read::read_cgroup(&root, h, path, Level::Sample).unwrap();
    let b = Breakdown::of(&cg);
    let eff = [
        cg.limits.max.and_then(Limit::bytes),
        cg.limits.hierarchical.and_then(Limit::bytes),
    ]
    .into_iter()
    .flatten()
    .min();
    let d = Derived::with_limit(
        &cg,
        &b,
        EffectiveLimit {
            bytes: eff,
            set_by: None,
            source: String::new(),
        },
    );
    let ws = b
        .usage
        .bytes
        .zip(b.inactive_file.bytes)
        .map(|(u, i)| u.saturating_sub(i));
    let hits = match h.version {
        Version::V1 => cg.events.failcnt,
        Version::V2 => cg.events.events.as_ref().and_then(|e| e.get("max")),
    };
    let pids = root
        .read(&cg.fs_path.join("cgroup.procs"))
        .ok()
        .and_then(|t| memlens::cgroup::parse::pids(&t).ok());
    (
        vec![
            b.usage.bytes,
            ws,
            b.anon.bytes,
            b.active_file.bytes,
            b.inactive_file.bytes,
            b.shmem.bytes,
            b.kernel.bytes,
            b.swap.bytes,
            d.not_reclaimable.bytes,
            eff,
            cg.limits.high.and_then(Limit::bytes),
            // usage_interval_peak: the recorder's file beside the kernel's, when it has one.
            root.read(&cg.fs_path.join(memlens::cgroup::peak::RECORDED_FILE))
                .ok()
                .and_then(|t| t.trim().parse().ok()),
        ],
        hits,
        cg.events.oom_kills(),
        pids,
    )
}

#[test]
fn history_figures_equal_reading_every_file_of_each_sample() {
    let h = common::hier();
    let cg = common::cgroup("history-figures");
    common::limit(&cg, 256 << 20);
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(
        d.path(),
        Limits {
            retention_ms: i64::MAX / 4,
            max_bytes: u64::MAX,
            chunk_ms: 2_000,
        },
    )
    .unwrap();
    w.set_meta("mount_point", &h.mount_point.to_string_lossy())
        .unwrap();
    w.set_meta("cgroup_version", &h.version.number().to_string())
        .unwrap();
    let t0 = memlens::store::now_ms() - 60_000;
    let mut samples = Vec::new();
    let scratch = tempfile::tempdir_in(common::disk_dir()).unwrap();
    let cache = format!("write={}:8M", scratch.path().join("f").display());
    let mut work = vec![common::Workload::start(&cg, &["anon=8M"])];
    for i in 0..120i64 {
        match i {
            // Processes come and go, the anon grows, the limit changes (a new template
            // where the number was, and a file read the usual way).
            20 => work.push(common::Workload::start(&cg, &["anon=24M"])),
            40 => common::limit(&cg, 200 << 20),
            60 => {
                work.remove(0);
            }
            80 => work.push(common::Workload::start(&cg, &["anon=16M", &cache])),
            _ => {}
        }
        let mut f = files(cg.dir());
        // A counter that wrapped (2^63 or more) in one sample: flat_keyed drops it, so the
        // in-place update must not be used there.
        if i == 90
            && let Some((_, b)) = f.iter_mut().find(|(p, _)| p.ends_with("/memory.stat"))
        {
            let text = String::from_utf8_lossy(b).into_owned();
            let key = common::key("inactive_file");
            *b = text
                .lines()
                .map(|l| match l.split_once(' ') {
                    Some((k, _)) if k == key => format!("{k} 9223372036854775809\n"),
                    _ => format!("{l}\n"),
                })
                .collect::<String>()
                .into_bytes();
        }
        w.write(t0 + i * 250, &f, &[], &[]).unwrap();
        samples.push(f);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(work);
    // Half compacted into chunks, the rest left in frames (a store being written).
    drop(w);
    let r = Reader::open(d.path()).unwrap();
    let (pts, problems) =
        memlens::history::points(&r, &h, cg.path(), t0 - 1, t0 + 120 * 250).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(pts.len(), samples.len());
    let mut moved = 0;
    let mut moved_at = Vec::new();
    for (i, (p, s)) in pts.iter().zip(&samples).enumerate() {
        let (values, hits, ooms, pids) = reference(&h, cg.path(), s);
        assert_eq!(p.values.to_vec(), values, "sample {i}: figures");
        assert_eq!(p.limit_hits, hits, "sample {i}: limit hits");
        assert_eq!(p.oom_kills, ooms, "sample {i}: OOM kills");
        assert_eq!(p.pids.as_deref(), pids.as_deref(), "sample {i}: processes");
        if i > 0 && pts[i - 1].values != p.values {
            moved += 1;
            moved_at.push(i);
        }
    }
    // The figures did move (the in-place path was taken, not only the unchanged one), at
    // least at each scripted change: 20, 40, 60 and 80, and on v2 the wrapped counter at 90
    // and back at 91. On v1 the wrap moves nothing: without `total_inactive_file` the
    // breakdown takes the cgroup's own `inactive_file`, which equals it in a leaf (the 5.10-v1
    // guest, where nothing else moved, saw exactly those four).
    let scripted = match h.version {
        memlens::model::Version::V1 => 4,
        memlens::model::Version::V2 => 6,
    };
    assert!(
        moved >= scripted,
        "only {moved} samples changed (at {moved_at:?}; first {:?}, last {:?})",
        pts.first().map(|p| &p.values),
        pts.last().map(|p| &p.values)
    );
}
