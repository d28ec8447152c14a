//! The recorded working set does not lag when page cache turns active without usage moving
//! (issue 13, the tiered memory.stat staleness): a memcg of ours near its limit holds 24 MiB
//! of inactive page cache; the test (outside the memcg, so nothing new is charged) reads the
//! file twice, which activates those pages: inactive_file falls and the working set (usage −
//! inactive_file) rises by about 24 MiB while usage stays put. The tiers (issue 20) read such
//! an "unchanged" cgroup again only after --full-interval (60 s); a cgroup near its limit has
//! its memory.stat read every interval, so the store shows it within a few intervals.

mod common;

use common::{MIB, Workload};
use memlens::store::Reader;
use std::time::{Duration, Instant};

#[test]
fn working_set_follows_cache_activation_near_the_limit() {
    if common::mglru() {
        // MGLRU (Debian's 6.12) keeps re-read page cache in the inactive generations: the
        // kernel shows no activation to follow (not a missing tool, so no skip()).
        eprintln!("MGLRU is on: read(2) does not activate page cache; nothing to follow");
        return;
    }
    let h = common::hier();
    let cg = common::cgroup("stale");
    common::limit(&cg, 64 * MIB);
    let dir = tempfile::tempdir_in(common::disk_dir()).expect("tmp on disk");
    let file = dir.path().join("cache");
    let w = Workload::start(&cg, &["anon=20M", &format!("write={}:24M", file.display())]);
    let d = tempfile::tempdir().expect("tmp");
    let (rec, ticks) = common::start_recorder_counting(d.path(), "500ms", &[]);
    let wait_ticks = |n: usize| {
        let end = Instant::now() + Duration::from_secs(60);
        while *ticks.lock().expect("ticks") < n {
            assert!(Instant::now() < end, "fewer than {n} ticks");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_ticks(4);
    let before = common::kstat(&cg);
    let usage0: u64 = common::kfile(&cg, common::usage_file())
        .trim()
        .parse()
        .expect("usage");
    let t_act = memlens::store::now_ms();
    for _ in 0..2 {
        let _ = std::fs::read(&file).expect("read the file");
    }
    let after = common::kstat(&cg);
    let usage1: u64 = common::kfile(&cg, common::usage_file())
        .trim()
        .parse()
        .expect("usage");
    let key = |k: &str| common::key(k);
    let activated = after[&key("active_file")].saturating_sub(before[&key("active_file")]);
    eprintln!(
        "activated {} MiB, usage {} -> {} ({} pages moved)",
        activated / MIB,
        usage0,
        usage1,
        (usage1 as i64 - usage0 as i64) / 4096
    );
    assert!(
        activated >= 16 * MIB,
        "the re-read activated only {activated} bytes"
    );
    // The recorded working set, polled until it shows the activation.
    let ws_before = usage0.saturating_sub(before[&key("inactive_file")]);
    let end = Instant::now() + Duration::from_secs(20);
    let lag = loop {
        let r = Reader::open(d.path()).expect("store");
        let (pts, _) =
            memlens::history::points(&r, &h, cg.path(), t_act - 10_000, i64::MAX).expect("points");
        if let Some(p) = pts.iter().find(|p| {
            p.t >= t_act
                && p.get("working_set")
                    .is_some_and(|ws| ws >= ws_before + 12 * MIB)
        }) {
            break p.t - t_act;
        }
        assert!(
            Instant::now() < end,
            "after 20 s the recorded working set still lags (last points: {:?})",
            pts.iter()
                .rev()
                .take(3)
                .map(|p| (p.t - t_act, p.get("working_set")))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("the recorded working set followed the activation after {lag} ms");
    assert!(lag <= 3_000, "{lag} ms");
    drop(rec);
    w.finish();
    let _ = cg.set_limit(None);
}
