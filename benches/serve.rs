//! Benchmark (issue 7): `memlens serve` with 1,000 real memcgs.
//! - collection time per interval (metrics::collect, and collect + both encodings) against the
//!   raw-read floor: `std::fs::read` of the same files, parsing nothing (and against
//!   benches/overview.rs's floor, the overview's files only);
//! - scrape latency p50/p99 over 200 scrapes of the running exporter;
//! - the exporter's RSS and CPU share at a 10 s interval (/proc/PID/stat utime + stime over
//!   MEMLENS_BENCH_CPU_SECS, default 40 s).
//!
//! Run: `cargo bench --bench serve` (root, cgroup memory controller; creates and removes
//! `memlens-test-bench-*`). Targets: collection <= 1.5x floor, < 1% of a core, < 30 MB RSS.

mod common;
use common::*;
use memlens::cgroup::owned::OwnedCgroup;
use memlens::cgroup::read::{fs_path, metrics_files, overview_files};
use memlens::cgroup::walk;
use memlens::metrics;
use memlens::render::prometheus;
use memlens::sys::Root;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> std::io::Result<usize> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut b = Vec::new();
    s.read_to_end(&mut b)?;
    Ok(b.len())
}

fn proc_stat_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after ")" (state is 3).
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn main() {
    let n = env("MEMLENS_BENCH_CGROUPS", 1000) as usize;
    let iters = env("MEMLENS_BENCH_ITERS", 11) as usize;
    let cpu_secs = env("MEMLENS_BENCH_CPU_SECS", 40);
    let root = Root::live();
    let h = memlens::report::hierarchy(&root).expect("memory controller");
    let parent = common::parent(&h, "serve");
    let mut kids = Vec::with_capacity(n);
    for i in 0..n {
        kids.push(
            OwnedCgroup::create(&h, parent.path(), &format!("memlens-c{i}")).expect("create child"),
        );
    }
    let paths = walk::all_paths(&root, &h, "/");
    let files = |names: &'static [&'static str]| -> Vec<std::path::PathBuf> {
        paths
            .iter()
            .flat_map(|p| {
                let dir = fs_path(&h, p);
                names.iter().map(move |f| dir.join(f))
            })
            .collect()
    };
    let mfiles = files(metrics_files(h.version));
    let ofiles = files(overview_files(h.version));
    let floor = |fs: &[std::path::PathBuf]| {
        let t = Instant::now();
        let mut bytes = 0;
        for f in fs {
            if let Ok(b) = std::fs::read(f) {
                bytes += b.len();
            }
        }
        std::hint::black_box(bytes);
        t.elapsed()
    };
    // The tightest floor: what any collector must do at the least, done the cheapest way we
    // know: list each cgroup's children (read_dir) and read its files with openat on an
    // O_PATH directory and one read each into a reused buffer (kernfs single-record files).
    let metric_names = metrics_files(h.version);
    let dirs: Vec<std::path::PathBuf> = paths.iter().map(|p| fs_path(&h, p)).collect();
    let floor_tight = |with_walk: bool| {
        use nix::fcntl::{OFlag, open, openat};
        use nix::sys::stat::Mode;
        let t = Instant::now();
        let mut buf = vec![0u8; 16384];
        let mut bytes = 0usize;
        for d in &dirs {
            if with_walk && let Ok(rd) = std::fs::read_dir(d) {
                bytes += rd
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .count();
            }
            let Ok(dfd) = open(
                d,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            for f in metric_names {
                if let Ok(fd) = openat(&dfd, *f, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                {
                    bytes += nix::unistd::read(&fd, &mut buf).unwrap_or(0);
                }
            }
        }
        std::hint::black_box(bytes);
        t.elapsed()
    };
    // What `memlens serve` runs every interval: the cgroup list is kept by inotify
    // (walk::Tree), so a steady-state collection reads the files without walking.
    let mut tree = memlens::cgroup::walk::Tree::new();
    assert!(
        tree.watched(),
        "inotify is needed for the steady-state figure"
    );
    let walked = || {
        let t = Instant::now();
        std::hint::black_box(metrics::collect(&root, &h).families.len());
        t.elapsed()
    };
    let mut collect = || {
        let t = Instant::now();
        let s = metrics::collect_tree(&root, &h, &mut tree);
        let c = t.elapsed();
        let fams = Arc::new(s.families);
        let a = prometheus::text_004(&fams);
        let b = prometheus::openmetrics(fams);
        std::hint::black_box((a.len(), b.len()));
        (c, t.elapsed())
    };
    floor(&mfiles);
    collect();
    let (mut fm, mut fo, mut co, mut cr, mut ft, mut fw, mut cw) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..iters {
        ft.push(floor_tight(false));
        fw.push(floor_tight(true));
        cw.push(walked());
        fm.push(floor(&mfiles));
        fo.push(floor(&ofiles));
        let (c, r) = collect();
        co.push(c);
        cr.push(r);
    }
    let (fm, fo, co, cr, ft) = (median(fm), median(fo), median(co), median(cr), median(ft));
    let (fw, cw) = (median(fw), median(cw));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;

    // The real exporter.
    let bin =
        std::env::var("MEMLENS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_memlens").to_string());
    // Port 0: serve binds a free port itself and writes it to --port-file (no race).
    let pf = std::env::temp_dir().join(format!("memlens-bench-port-{}", std::process::id()));
    let _ = std::fs::remove_file(&pf);
    let child = Kill(
        Command::new(&bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--interval",
                "10s",
                "--port-file",
            ])
            .arg(&pf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve"),
    );
    let pid = child.0.id();
    let t = Instant::now();
    let mut port = 0u16;
    while t.elapsed() < Duration::from_secs(30) {
        if port == 0 {
            port = std::fs::read_to_string(&pf)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
        }
        if port != 0 && get(port, "/healthz").is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&pf);
    let mut lat = Vec::new();
    let mut size = 0;
    for _ in 0..200 {
        let t = Instant::now();
        size = get(port, "/metrics").expect("scrape");
        lat.push(t.elapsed());
    }
    lat.sort();
    let p50 = lat[lat.len() / 2];
    let p99 = lat[lat.len() * 99 / 100];
    // CPU share over a window with a scrape every 10 s (as Prometheus would).
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let c0 = proc_stat_ticks(pid);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(cpu_secs) {
        let _ = get(port, "/metrics");
        std::thread::sleep(Duration::from_secs(10).min(Duration::from_secs(cpu_secs)));
    }
    let cpu = (proc_stat_ticks(pid) - c0) as f64 / tick / t0.elapsed().as_secs_f64();
    let rss = status_kb(pid, "VmRSS:");
    let hwm = status_kb(pid, "VmHWM:");
    drop(child);

    println!(
        "serve benchmark: {} cgroups ({n} created), median of {iters}",
        paths.len()
    );
    println!(
        "  floor, metrics files ({} files):   {:>8.2} ms",
        mfiles.len(),
        ms(fm)
    );
    println!(
        "  floor, overview files ({} files):  {:>8.2} ms",
        ofiles.len(),
        ms(fo)
    );
    println!(
        "  tight floor, same files (openat, one read each): {:>6.2} ms",
        ms(ft)
    );
    println!(
        "  serve's collection (metrics::collect_tree, cgroup list kept by inotify): {:>6.2} ms = {:.2}x the std::fs::read floor, {:.2}x the tight floor (target <= 1.5x)",
        ms(co),
        ms(co) / ms(fm),
        ms(co) / ms(ft)
    );
    println!(
        "  with a walk (metrics::collect, one readdir per cgroup): {:>6.2} ms = {:.2}x the tight floor incl. the walk ({:.2} ms)",
        ms(cw),
        ms(cw) / ms(fw),
        ms(fw)
    );
    println!(
        "  collect + both encodings:           {:>8.2} ms  ({:.2}x metrics floor)",
        ms(cr),
        ms(cr) / ms(fm)
    );
    println!(
        "  scrape latency over 200 scrapes ({size} bytes): p50 {:.2} ms, p99 {:.2} ms",
        ms(p50),
        ms(p99)
    );
    println!(
        "  exporter at --interval 10s over {cpu_secs} s: CPU {:.3}% of a core (target < 1%), RSS {:.1} MB, peak {:.1} MB (target < 30 MB)",
        cpu * 100.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    drop(kids);
    drop(parent);
}
