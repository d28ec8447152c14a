//! Benchmark (issue 17): `memlens recommend` over a day-sized store of 1,000 containers.
//! The store is generated through the store's writer (as benches/record.rs does): each
//! container is a real memcg's file set of this host (every memory.* file, its every key)
//! plus a cgroup.procs holding one PID, 10% of them with moving counters, for a day at
//! MEMLENS_BENCH_INTERVAL_S (default 5 s, the recorder's default: 17,280 samples each).
//! MEMLENS_BENCH_CGROUPS (default 1000), MEMLENS_BENCH_TICKS (default a day's worth).
//!
//! MEMLENS_BENCH_SHAPE: `recorder` (default) writes what `memlens record` writes at its
//! defaults: the moving 10% have every file each tick; an idle container has its usage file
//! each tick and its every file at its full read every 60 s (--full-interval), staggered, as
//! the tiered reads do. `every` writes every file of every container at each tick (the worst
//! case: every container moving). MEMLENS_BENCH_STORE=DIR keeps the generated store in DIR
//! and reuses it when DIR already holds one (a day of 1,000 containers takes minutes to
//! write); MEMLENS_BENCH_RUNS (default 3) timed runs, the median reported.
//!
//! Run: `cargo bench --bench recommend` (root; creates and removes `memlens-test-bench-*`).
//! Target: under 2 s.

mod common;
use common::*;
use memlens::cgroup::owned::OwnedCgroup;
use memlens::store::{Limits, Writer, codec};
use memlens::sys::Root;
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    let n = env("MEMLENS_BENCH_CGROUPS", 1000) as usize;
    let every = env("MEMLENS_BENCH_INTERVAL_S", 5) as i64;
    let ticks = env("MEMLENS_BENCH_TICKS", (86_400 / every) as u64) as i64;
    let all_files = std::env::var("MEMLENS_BENCH_SHAPE").as_deref() == Ok("every");
    let full_every = (60 / every).max(1);
    let runs = env("MEMLENS_BENCH_RUNS", 3).max(1) as usize;
    let kept = std::env::var_os("MEMLENS_BENCH_STORE").map(std::path::PathBuf::from);
    if let Some(k) = &kept
        && k.join(memlens::store::DB_FILE).exists()
    {
        println!("store: reusing {}", k.display());
        time_recommend(k, n, runs);
        return;
    }
    let root = Root::live();
    let h = memlens::report::hierarchy(&root).expect("memory controller");
    let tplcg = OwnedCgroup::create(
        &h,
        "/",
        &format!("memlens-test-bench-recommend-{}", std::process::id()),
    )
    .expect("create template memcg");
    let mut tpl: Vec<(String, Vec<u8>, Vec<u64>)> = Vec::new();
    for e in std::fs::read_dir(tplcg.dir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("memory.") || name.contains("force_empty") {
            continue;
        }
        if let Ok(t) = std::fs::read_to_string(e.path()) {
            let (tt, v) = codec::tokenize(t.as_bytes());
            tpl.push((name, tt, v));
        }
    }
    drop(tplcg);
    tpl.sort();
    let mp = h.mount_point.to_string_lossy().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dir = match &kept {
        Some(k) => {
            std::fs::create_dir_all(k).unwrap();
            k.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let usage_file = match h.version {
        memlens::model::Version::V1 => "memory.usage_in_bytes",
        memlens::model::Version::V2 => "memory.current",
    };
    let mut w = Writer::open(
        &dir,
        Limits {
            retention_ms: i64::MAX / 4,
            max_bytes: u64::MAX,
            chunk_ms: 600_000,
        },
    )
    .unwrap();
    let mut cgs: Vec<(String, Vec<Vec<u64>>)> = (0..n)
        .map(|i| {
            (
                format!("{mp}/kubepods/pod{i}/c{i}"),
                tpl.iter().map(|(_, _, v)| v.clone()).collect(),
            )
        })
        .collect();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let t0 = memlens::store::now_ms() - ticks * every * 1000;
    let started = Instant::now();
    for s in 0..ticks {
        let mut files = Vec::with_capacity(n * (tpl.len() + 1));
        for (i, (dir, vals)) in cgs.iter_mut().enumerate() {
            if i % 10 == 0 {
                for vs in vals.iter_mut() {
                    for v in vs.iter_mut() {
                        let r = rng.next();
                        if r.is_multiple_of(4) && *v < u64::MAX / 4 {
                            *v += (r >> 8) % 256 * 4096;
                        }
                    }
                }
            }
            let full = all_files || i % 10 == 0 || (s + i as i64) % full_every == 0;
            for ((name, tt, _), vs) in tpl.iter().zip(vals.iter()) {
                if !full && name != usage_file {
                    continue;
                }
                files.push((
                    format!("{dir}/{name}"),
                    codec::render(tt, vs).unwrap_or_default(),
                ));
            }
            if !full {
                continue;
            }
            files.push((
                format!("{dir}/cgroup.procs"),
                format!("{}\n", 1000 + i).into_bytes(),
            ));
        }
        w.write(t0 + s * every * 1000, &files, &[], &[]).unwrap();
    }
    w.flush().unwrap();
    for (k, v) in [
        ("mount_point", mp.clone()),
        ("cgroup_version", h.version.number().to_string()),
        ("interval_ms", (every * 1000).to_string()),
    ] {
        w.set_meta(k, &v).unwrap();
    }
    println!(
        "store: {n} containers x {ticks} ticks at {every} s ({}), {} bytes, written in {:.1} s",
        if all_files {
            "every file each tick"
        } else {
            "as the recorder writes"
        },
        w.used_bytes().unwrap(),
        started.elapsed().as_secs_f64()
    );
    drop(w);
    time_recommend(&dir, n, runs);
}

fn time_recommend(dir: &std::path::Path, n: usize, runs: usize) {
    let q = memlens::recommend::Query {
        target: None,
        since: None,
        margin: 0.15,
        check_limit: None,
    };
    let mut times = Vec::new();
    let mut samples = 0;
    let mut cpu = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let c = cpu_s();
        let rep = memlens::recommend::recommend(Some(dir), &q).expect("recommend");
        times.push(t.elapsed());
        cpu.push(cpu_s() - c);
        assert_eq!(rep.recommendations.len(), n, "one per container");
        samples = rep
            .recommendations
            .iter()
            .map(|r| r.usage.samples)
            .sum::<usize>();
    }
    times.sort();
    cpu.sort_by(f64::total_cmp);
    let med = times[times.len() / 2].as_secs_f64();
    // On this shared 2-core host the wall time depends on the other agents' load; the CPU
    // time (user + system) is what the command itself costs.
    println!(
        "recommend CPU time (user + system): median {:.2} s, {:.2}x the 2 s target",
        cpu[cpu.len() / 2],
        cpu[cpu.len() / 2] / 2.0
    );
    println!(
        "recommend over {n} containers ({samples} points): median {med:.2} s (min {:.2} s), target 2 s: {:.2}x the target",
        times[0].as_secs_f64(),
        med / 2.0
    );
}

/// This process's user + system CPU seconds.
fn cpu_s() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}
