//! Benchmark (issue 2): one full overview snapshot of 1,000 real memcgs against the floor, a
//! loop that only reads the same files with `std::fs::read` and parses nothing. Prints both
//! times, their ratio, and the peak RSS of the `memlens --all --json` process.
//! Run: `cargo bench --bench overview` (root, cgroup memory controller; creates and removes
//! `memlens-test-bench-*`). Target: ratio <= 1.5, peak RSS < 20 MB.

mod common;
use memlens::cgroup::owned::OwnedCgroup;
use memlens::cgroup::read::{fs_path, overview_files};
use memlens::cgroup::walk;
use memlens::overview;
use memlens::sys::Root;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("MEMLENS_BENCH_CGROUPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let iters: usize = std::env::var("MEMLENS_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let root = Root::live();
    let h = memlens::report::hierarchy(&root).expect("memory controller");
    let parent = common::parent(&h, "");
    let t = Instant::now();
    let mut kids = Vec::with_capacity(n);
    for i in 0..n {
        kids.push(
            OwnedCgroup::create(&h, parent.path(), &format!("memlens-c{i}")).expect("create child"),
        );
    }
    eprintln!("created {n} memcgs in {:.2?}", t.elapsed());

    let paths = walk::all_paths(&root, &h, "/");
    let files: Vec<_> = paths
        .iter()
        .flat_map(|p| {
            let dir = fs_path(&h, p);
            overview_files(h.version).iter().map(move |f| dir.join(f))
        })
        .collect();
    let floor = || {
        let t = Instant::now();
        let mut bytes = 0;
        for f in &files {
            if let Ok(b) = std::fs::read(f) {
                bytes += b.len();
            }
        }
        std::hint::black_box(bytes);
        t.elapsed()
    };
    let ours = || {
        let t = Instant::now();
        let o = overview::collect(&root, &h, true);
        std::hint::black_box(o.rows.len());
        t.elapsed()
    };
    // Warm up both (dentry cache), then alternate to share any drift.
    floor();
    ours();
    let mut f_times = Vec::new();
    let mut o_times = Vec::new();
    for _ in 0..iters {
        f_times.push(floor());
        o_times.push(ours());
    }
    let (f, o) = (median(f_times), median(o_times));
    // A second floor that must also find the cgroups (std::fs::read_dir, as any tool must),
    // then reads the same files.
    let mount = h.mount_point.clone();
    let floor_walk = || {
        let t = Instant::now();
        let mut stack = vec![mount.clone()];
        let mut bytes = 0;
        while let Some(d) = stack.pop() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
            for f in overview_files(h.version) {
                if let Ok(b) = std::fs::read(d.join(f)) {
                    bytes += b.len();
                }
            }
        }
        std::hint::black_box(bytes);
        t.elapsed()
    };
    let fw = median((0..iters).map(|_| floor_walk()).collect());

    // Peak RSS and wall time of the real binary doing the same snapshot.
    let bin =
        std::env::var("MEMLENS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_memlens").to_string());
    let t = Instant::now();
    // Reaped below with wait4(2), which also gives its peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(&bin)
        .args(["--all", "--json"])
        .stdout(Stdio::null())
        .spawn()
        .expect("run memlens");
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with valid out pointers.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let bin_wall = t.elapsed();

    println!(
        "overview benchmark: {} cgroups ({} created), {} files, median of {iters}",
        paths.len(),
        n,
        files.len()
    );
    println!(
        "  floor (std::fs::read only): {:>8.2} ms",
        f.as_secs_f64() * 1e3
    );
    println!(
        "  memlens overview::collect:  {:>8.2} ms",
        o.as_secs_f64() * 1e3
    );
    println!(
        "  ratio:                      {:>8.2}x  (target <= 1.5x)",
        o.as_secs_f64() / f.as_secs_f64()
    );
    println!(
        "  floor incl. finding the cgroups (read_dir walk + read): {:.2} ms; ratio {:.2}x",
        fw.as_secs_f64() * 1e3,
        o.as_secs_f64() / fw.as_secs_f64()
    );
    println!(
        "  `memlens --all --json` process: wall {:.2} ms, peak RSS {:.1} MB (target < 20 MB)",
        bin_wall.as_secs_f64() * 1e3,
        ru.ru_maxrss as f64 / 1024.0
    );
    drop(kids);
    drop(parent);
}
