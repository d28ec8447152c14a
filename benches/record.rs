//! Benchmark (issue 13): the flight recorder's store and process.
//! - bytes per recorded value, (a) 1,000 idle memcgs and (b) 100 memcgs with changing
//!   counters plus 900 idle, at 1 s, through the store's writer. The files are a real v1/v2
//!   memcg's file set (this host's, its every key) with synthetic counter motion: what
//!   changes in a busy memcg (usage, LRU sizes, pg* counters, PSI totals) moves by realistic
//!   steps. MEMLENS_BENCH_MINUTES (default 10) of samples; the marginal bytes per value
//!   (between the half and the end) extrapolate to a day;
//! - the real recorder (`memlens record`, release) on 1,000 real memcgs at a 10 s interval:
//!   CPU share (utime + stime over MEMLENS_BENCH_CPU_SECS, default 60) and RSS at the start
//!   and the end (it must not grow). The store compacts on wall-clock multiples of its chunk
//!   span (10 min), so only a window of 600 s or more is sure to hold a compaction: the
//!   printed line says how many the window held; use MEMLENS_BENCH_CPU_SECS=1200 for the
//!   figure (two compactions);
//! - `history --since 24h` of one cgroup over a day-sized store (a day at 5 s, the default
//!   interval: 17,280 samples of a busy cgroup and of an idle one, 9 more idle neighbours).
//!
//! Run: `cargo bench --bench record` (root; creates and removes `memlens-test-bench-*`).
//! Targets: <= 1 byte per value, < 0.5% of a core, < 40 MB RSS, history < 200 ms.

mod common;
use common::*;
use memlens::cgroup::owned::OwnedCgroup;
use memlens::store::{Limits, Writer, codec};
use memlens::sys::Root;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proc_stat_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// This thread's CPU time (user + system), in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// One memcg's files as (name, text) from a real memcg of this host.
fn template_files(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("memory.") || name.contains("force_empty") {
            continue;
        }
        if let Ok(t) = std::fs::read_to_string(e.path()) {
            v.push((name, t));
        }
    }
    v.sort();
    v
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A memcg in the synthetic workload: its files' numbers, moved each second when busy.
struct Cg {
    dir: String,
    files: Vec<(String, Vec<u8>, Vec<u64>)>,
    busy: bool,
}

impl Cg {
    fn new(dir: String, tpl: &[(String, String)], busy: bool) -> Self {
        let files = tpl
            .iter()
            .map(|(n, t)| {
                let (tt, v) = codec::tokenize(t.as_bytes());
                (n.clone(), tt, v)
            })
            .collect();
        Cg { dir, files, busy }
    }

    /// Moves a busy memcg's numbers: a quarter of them by a page-sized random step (sizes
    /// up and down, counters up).
    fn step(&mut self, rng: &mut Rng) {
        if !self.busy {
            return;
        }
        for (_, _, vals) in &mut self.files {
            for v in vals.iter_mut() {
                let r = rng.next();
                if r.is_multiple_of(4) && *v < u64::MAX / 4 {
                    let d = (r >> 8) % 256 * 4096;
                    *v = if r & 0x10 == 0 {
                        *v + d
                    } else {
                        v.saturating_sub(d / 2)
                    };
                }
            }
        }
    }

    fn texts(&self) -> (Vec<(String, Vec<u8>)>, u64) {
        let mut n = 0;
        let v = self
            .files
            .iter()
            .map(|(name, t, vals)| {
                n += vals.len() as u64;
                (
                    format!("{}/{name}", self.dir),
                    codec::render(t, vals).unwrap_or_default(),
                )
            })
            .collect();
        (v, n)
    }
}

/// Writes `secs` seconds of `cgs` at 1 s; returns (values, bytes at half, values at half,
/// bytes at the end).
fn bytes_per_value(label: &str, cgs: &mut [Cg], secs: i64) -> (f64, f64) {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(
        d.path(),
        Limits {
            retention_ms: i64::MAX / 4,
            max_bytes: u64::MAX,
            chunk_ms: 600_000,
        },
    )
    .unwrap();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let t0 = memlens::store::now_ms() - secs * 1000;
    let (mut values, mut half) = (0u64, None);
    let started = Instant::now();
    for s in 0..secs {
        let mut files = Vec::new();
        for c in cgs.iter_mut() {
            c.step(&mut rng);
            let (f, n) = c.texts();
            values += n;
            files.extend(f);
        }
        w.write(t0 + s * 1000, &files, &[], &[]).unwrap();
        if s == secs / 2 - 1 {
            w.flush().unwrap();
            half = Some((w.used_bytes().unwrap(), values));
        }
    }
    w.flush().unwrap();
    let end = w.used_bytes().unwrap();
    let (hb, hv) = half.unwrap();
    let overall = end as f64 / values as f64;
    let marginal = (end - hb) as f64 / (values - hv) as f64;
    let day_values = values as f64 * 86_400.0 / secs as f64;
    let day_bytes = end as f64 + marginal * (day_values - values as f64);
    println!(
        "{label}: {values} values in {secs} s -> {end} bytes: {overall:.4} B/value overall, {marginal:.4} B/value marginal; a day: {:.1} MB ({:.4} B/value) [written in {:.1} s]",
        day_bytes / 1e6,
        day_bytes / day_values,
        started.elapsed().as_secs_f64()
    );
    (overall, marginal)
}

fn main() {
    let minutes = env("MEMLENS_BENCH_MINUTES", 10) as i64;
    let cpu_secs = env("MEMLENS_BENCH_CPU_SECS", 60);
    let n = env("MEMLENS_BENCH_CGROUPS", 1000) as usize;
    let root = Root::live();
    let h = memlens::report::hierarchy(&root).expect("memory controller");
    let parent = common::parent(&h, "record");
    let tpl = template_files(parent.dir());
    println!(
        "template: {} files, {} values per memcg (this host's {:?} file set)",
        tpl.len(),
        tpl.iter()
            .map(|(_, t)| codec::tokenize(t.as_bytes()).1.len())
            .sum::<usize>(),
        h.version
    );
    let mk = |busy: usize| -> Vec<Cg> {
        (0..n)
            .map(|i| Cg::new(format!("{}/c{i}", parent.dir().display()), &tpl, i < busy))
            .collect()
    };
    let secs = minutes * 60;
    if part("bytes") {
        bytes_per_value("(a) 1000 idle", &mut mk(0), secs);
        bytes_per_value("(b) 100 busy + 900 idle", &mut mk(100), secs);
    }
    if part("history") {
        history_day(&h, &tpl);
    }
    if part("recorder") {
        recorder(&h, &parent, n, cpu_secs);
    }
}

/// Whether MEMLENS_BENCH_PARTS (comma-separated: bytes, history, recorder; default all)
/// names `p`: the parts run alone keep a run short on a shared machine.
fn part(p: &str) -> bool {
    std::env::var("MEMLENS_BENCH_PARTS").map_or(true, |v| v.split(',').any(|x| x.trim() == p))
}

/// A day at 5 s of the root cgroup, 1 busy and 10 idle cgroups, as the recorder writes it;
/// its last 10 minutes (the span the recorder has not compacted yet, left in frames) also
/// hold 989 more idle cgroups: a reader of a store being written at 1,000 cgroups decodes
/// those frames too.
fn write_day_store(h: &memlens::model::Hierarchy, tpl: &[(String, String)], d: &std::path::Path) {
    let mut w = Writer::open(
        d,
        Limits {
            retention_ms: i64::MAX / 4,
            max_bytes: u64::MAX,
            chunk_ms: 600_000,
        },
    )
    .unwrap();
    let mp = h.mount_point.to_string_lossy().to_string();
    let mut cgs: Vec<Cg> = vec![Cg::new(mp.clone(), tpl, false)];
    cgs.extend((0..11).map(|i| Cg::new(format!("{mp}/day{i}"), tpl, i == 0)));
    let mut rng = Rng(7);
    let ticks = 17_280i64;
    // The span boundary (chunk_ms) the last 120 ticks start at.
    let t0 = {
        let t = memlens::store::now_ms() - 86_400_000;
        t - t.rem_euclid(600_000)
    };
    let started = Instant::now();
    for (k, v) in [
        ("mount_point", mp.clone()),
        ("cgroup_version", h.version.number().to_string()),
        ("interval_ms", "5000".into()),
    ] {
        w.set_meta(k, &v).unwrap();
    }
    for s in 0..ticks {
        if s == ticks - 120 {
            cgs.extend((11..1000).map(|i| Cg::new(format!("{mp}/day{i}"), tpl, false)));
        }
        let mut files = Vec::new();
        for c in cgs.iter_mut() {
            c.step(&mut rng);
            files.extend(c.texts().0);
        }
        w.write(t0 + s * 5000, &files, &[], &[]).unwrap();
    }
    // No flush: the last span stays in frames, as while the recorder runs.
    println!(
        "day store: root + 11 cgroups (1 busy) x {ticks} samples, + 989 idle in the open span, {} bytes, written in {:.1} s",
        w.used_bytes().unwrap(),
        started.elapsed().as_secs_f64()
    );
}

/// `history --since 24h` of one cgroup over a day-sized store.
fn history_day(h: &memlens::model::Hierarchy, tpl: &[(String, String)]) {
    // MEMLENS_BENCH_DAY_STORE=DIR keeps the store (writing it takes a minute or two) and
    // reuses it while it covers the last 25 h.
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("MEMLENS_BENCH_DAY_STORE").map(std::path::PathBuf::from);
    let d = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let fresh = memlens::store::Reader::open(&d)
        .ok()
        .and_then(|r| r.range().ok().flatten())
        .is_some_and(|(lo, _)| lo > memlens::store::now_ms() - 25 * 3_600_000);
    if !fresh {
        let _ = std::fs::remove_dir_all(&d);
        write_day_store(h, tpl, &d);
    }
    for (target, what) in [("/day0", "busy"), ("/day1", "idle")] {
        let q = memlens::history::Query {
            target: target.into(),
            since: "25h".into(),
            until: None,
            step: None,
        };
        let (mut times, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let (t, c) = (Instant::now(), thread_cpu());
            let hist = memlens::history::history(Some(&d), &q).expect("history");
            times.push(t.elapsed());
            cpu.push(thread_cpu() - c);
            assert!(hist.samples >= 17_000, "{}", hist.samples);
        }
        times.sort();
        cpu.sort_by(f64::total_cmp);
        // CPU time beside wall time: on a shared machine the wall time is mostly waiting.
        println!(
            "history --since 24h of one {what} cgroup (17280 samples): median {:.0} ms (min {:.0} ms), CPU median {:.0} ms (min {:.0} ms)",
            times[2].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            cpu[2] * 1e3,
            cpu[0] * 1e3
        );
    }
}

/// The real recorder on `n` real memcgs at 10 s.
fn recorder(h: &memlens::model::Hierarchy, parent: &OwnedCgroup, n: usize, cpu_secs: u64) {
    let mut kids = Vec::with_capacity(n);
    for i in 0..n {
        kids.push(
            OwnedCgroup::create(h, parent.path(), &format!("memlens-c{i}")).expect("create child"),
        );
    }
    let st = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_memlens");
    let child = Command::new(bin)
        .args([
            "--store",
            st.path().to_str().unwrap(),
            "record",
            "--interval",
            "10s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start memlens record");
    let pid = child.id();
    let k = Kill(child);
    // The first tick (reads and interns every file) is start-up, not steady state.
    std::thread::sleep(Duration::from_secs(12));
    let (c0, t0) = (proc_stat_ticks(pid), Instant::now());
    let w0 = memlens::store::now_ms();
    let rss0 = status_kb(pid, "VmRSS:");
    // RSS each 10 s for the peak (a compaction's buffers).
    let mut peak = rss0;
    while t0.elapsed() < Duration::from_secs(cpu_secs) {
        let left = Duration::from_secs(cpu_secs).saturating_sub(t0.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(10)));
        peak = peak.max(status_kb(pid, "VmRSS:"));
    }
    let c1 = proc_stat_ticks(pid);
    let rss1 = status_kb(pid, "VmRSS:");
    // Compactions (the recorder's default --chunk 10m, on wall-clock multiples) in the window.
    let compactions = memlens::store::now_ms() / 600_000 - w0 / 600_000;
    let hz = 100.0; // USER_HZ
    let share = (c1 - c0) as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "recorder, {n} memcgs at 10 s: {share:.3}% of one core over {cpu_secs} s ({compactions} compactions); RSS {:.1} MB after the first tick, {:.1} MB at the end, {:.1} MB peak; store {} bytes",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        peak as f64 / 1024.0,
        memlens::store::Reader::open(st.path())
            .and_then(|r| r.used_bytes())
            .unwrap_or(0)
    );
    drop(k);
    drop(kids);
}
