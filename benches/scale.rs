//! Benchmark (issue 20): memlens at 100, 1,000 and 10,000 real memcgs, idle plus 5% running a
//! workload (`memlens __workload saw=4M:13700:0`: anon growing and freed, so its usage moves
//! at every 10 s sample).
//!
//! For each size it prints, against the tight read floor measured in the same run (the
//! machine is shared: ratios, medians of MEMLENS_BENCH_REPEATS, default 3):
//! - one-shot: `overview::collect` in-process and the `memlens --all --json` process (wall,
//!   user, system, peak RSS) vs the tight floor (a readdir per cgroup, then each overview file
//!   opened with openat on an O_PATH directory and read once into a reused buffer); µs per
//!   cgroup for linearity;
//! - user vs system time per file type (one loop over every cgroup per file, RUSAGE_THREAD),
//!   openat+read+close vs pread on a kept-open descriptor;
//! - `memlens serve` and `memlens record` (release binary) at `--interval 10s` over
//!   MEMLENS_BENCH_WINDOW seconds (default 60) after their first collection: CPU % of one core
//!   (user and system from /proc/PID/stat), RSS at the start and the end, peak RSS, open fds;
//!   serve's self metrics (collection duration, cgroups per tier) from its own /metrics;
//! - `top`'s refresh (`tui::snapshot::take`, what the live collector runs every 1 s): CPU per
//!   refresh as a share of one core at 1 s.
//!
//! Run: `cargo bench --bench scale` (root, cgroup memory controller). MEMLENS_BENCH_SIZES
//! (default `100,1000,10000`). Creates `memlens-test-bench-scale-PID/memlens-cN` and removes
//! them all (also a previous run's, whose PID is gone); checks first that the kernel's memcg
//! ID space (65535, dying memcgs included: /proc/cgroups num_cgroups) has room.

mod common;
use common::*;
use memlens::cgroup::read::{fs_path, metrics_files, overview_files};
use memlens::cgroup::walk;
use memlens::sys::Root;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (user, system) seconds of this thread.
fn thread_times() -> (f64, f64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(ru.ru_utime), s(ru.ru_stime))
}

/// Wall, user, system seconds of `f`.
fn timed(f: impl FnOnce()) -> (f64, f64, f64) {
    let (u0, s0) = thread_times();
    let t = Instant::now();
    f();
    let w = t.elapsed().as_secs_f64();
    let (u1, s1) = thread_times();
    (w, u1 - u0, s1 - s0)
}

/// (utime, stime) ticks of a process.
fn proc_ticks(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (n(11), n(12))
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn memcg_count() -> u64 {
    std::fs::read_to_string("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"memory")).then(|| f.get(2)?.parse().ok())?
        })
        .unwrap_or(0)
}

fn get(port: u16, path: &str, accept: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )?;
    let mut b = Vec::new();
    s.read_to_end(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// Removes a previous run's tree (`memlens-test-bench-scale-PID` whose PID is gone): the
/// children first (killing what is left in them), then the parent. Only our own names.
fn sweep(mount: &Path) {
    let Ok(rd) = std::fs::read_dir(mount) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("memlens-test-bench-scale-") else {
            continue;
        };
        if pid
            .parse::<u32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists())
        {
            continue;
        }
        let dir = e.path();
        if let Ok(kids) = std::fs::read_dir(&dir) {
            for k in kids.flatten() {
                if k.file_type().is_ok_and(|t| t.is_dir())
                    && k.file_name().to_string_lossy().starts_with("memlens-c")
                {
                    for pid in std::fs::read_to_string(k.path().join("cgroup.procs"))
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| l.trim().parse::<i32>().ok())
                    {
                        // SAFETY: kill(2) has no memory-safety preconditions.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    for _ in 0..50 {
                        if std::fs::remove_dir(k.path()).is_ok() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
        let _ = std::fs::remove_dir(&dir);
        eprintln!("removed a previous run's {}", dir.display());
    }
}

/// Files of every cgroup, one loop per file name: openat+read+close (tight) and, for the
/// same files kept open, pread at offset 0 (the kernel formats the file again: seq_file
/// restarts when the offset is not where the last read ended).
fn per_file(dirs: &[PathBuf], names: &[&str], repeats: usize) -> Vec<String> {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::Mode;
    let dfds: Vec<_> = dirs
        .iter()
        .filter_map(|d| {
            open(
                d,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ok()
        })
        .collect();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16384];
    let per = 1e6 / dfds.len() as f64;
    for name in names {
        let mut o = Vec::new();
        for _ in 0..repeats {
            o.push(timed(|| {
                for d in &dfds {
                    if let Ok(fd) =
                        openat(d, *name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                    {
                        std::hint::black_box(nix::unistd::read(&fd, &mut buf).unwrap_or(0));
                    }
                }
            }));
        }
        let files: Vec<std::fs::File> = dfds
            .iter()
            .filter_map(|d| {
                openat(d, *name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                    .ok()
                    .map(std::fs::File::from)
            })
            .collect();
        let mut p = Vec::new();
        for _ in 0..repeats {
            p.push(timed(|| {
                for f in &files {
                    std::hint::black_box(f.read_at(&mut buf, 0).unwrap_or(0));
                }
            }));
        }
        drop(files);
        let m = |v: &[(f64, f64, f64)], i: usize| {
            median(v.iter().map(|t| [t.0, t.1, t.2][i]).collect::<Vec<f64>>()) * per
        };
        out.push(format!(
            "    {name:<28} open+read: {:>6.2} µs/cgroup (user {:>5.2}, sys {:>6.2})   pread kept open: {:>6.2} µs (user {:>5.2}, sys {:>6.2})  = {:.2}x",
            m(&o, 0),
            m(&o, 1),
            m(&o, 2),
            m(&p, 0),
            m(&p, 1),
            m(&p, 2),
            m(&p, 0) / m(&o, 0)
        ));
    }
    out
}

/// The tight floor of a one-shot: a readdir per cgroup (finding them, as any tool must), then
/// each of `names` opened with openat on an O_PATH directory and read once.
fn floor_tight(dirs: &[PathBuf], names: &[&str], with_walk: bool) {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::Mode;
    let mut buf = vec![0u8; 16384];
    let mut bytes = 0usize;
    for d in dirs {
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
        for f in names {
            if let Ok(fd) = openat(&dfd, *f, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
                bytes += nix::unistd::read(&fd, &mut buf).unwrap_or(0);
            }
        }
    }
    std::hint::black_box(bytes);
}

struct Agent {
    cpu: f64,
    user: f64,
    sys: f64,
    rss0: f64,
    rss1: f64,
    hwm: f64,
    fds: usize,
    extra: String,
    /// Collections in the window: serve's own count (`memlens_collection_seconds_count`,
    /// first to last scrape, scaled to the window); for record the window over the interval
    /// (it has no endpoint; a guest under TCG that cannot keep up makes this an overcount).
    collections: f64,
    /// The process's user + system CPU seconds per collection.
    cpu_per: f64,
}

/// Runs the release binary with `args`, waits `settle` for its first collection, then
/// measures it over `window` (scraping /metrics every 10 s when `port_file` is given).
fn agent(
    bin: &str,
    args: &[&str],
    port_file: Option<&Path>,
    settle: Duration,
    window: Duration,
    interval: Duration,
) -> Agent {
    let child = Kill(
        Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start memlens"),
    );
    let pid = child.0.id();
    let t = Instant::now();
    let mut port = 0u16;
    if let Some(pf) = port_file {
        while t.elapsed() < Duration::from_secs(300) {
            if port == 0 {
                port = std::fs::read_to_string(pf)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
            }
            if port != 0 && get(port, "/healthz", "*/*").is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::thread::sleep(settle);
    let (u0, s0) = proc_ticks(pid);
    let rss0 = status_kb(pid, "VmRSS:") as f64 / 1024.0;
    let t0 = Instant::now();
    let mut last = String::new();
    let count = |doc: &str| {
        doc.lines()
            .find(|l| l.starts_with("memlens_collection_seconds_count"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    // (seconds into the window, collection count) of the first and last scrape.
    let (mut first, mut latest) = (None, None);
    while t0.elapsed() < window {
        if port != 0 {
            // As Prometheus asks (OpenMetrics first).
            last = get(
                port,
                "/metrics",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            )
            .unwrap_or_default();
            if let Some(c) = count(&last) {
                let at = t0.elapsed().as_secs_f64();
                first.get_or_insert((at, c));
                latest = Some((at, c));
            }
        }
        let left = window.saturating_sub(t0.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(10)));
    }
    let (u1, s1) = proc_ticks(pid);
    let secs = t0.elapsed().as_secs_f64();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let user = (u1 - u0) as f64 / hz / secs * 100.0;
    let sys = (s1 - s0) as f64 / hz / secs * 100.0;
    let collections = match (first, latest) {
        (Some((a, ca)), Some((b, cb))) if cb > ca && b > a => (cb - ca) / (b - a) * secs,
        _ => secs / interval.as_secs_f64(),
    };
    let extra = last
        .lines()
        .filter(|l| {
            l.starts_with("memlens_collection_tier_cgroups")
                || l.starts_with("memlens_kept_open_fds")
                || l.starts_with("memlens_collection_seconds_sum")
                || l.starts_with("memlens_collection_seconds_count")
                || l.starts_with("process_")
        })
        .filter(|l| !l.contains("_bucket"))
        .collect::<Vec<_>>()
        .join("; ");
    Agent {
        collections,
        cpu_per: (user + sys) / 100.0 * secs / collections,
        cpu: user + sys,
        user,
        sys,
        rss0,
        rss1: status_kb(pid, "VmRSS:") as f64 / 1024.0,
        hwm: status_kb(pid, "VmHWM:") as f64 / 1024.0,
        fds: fds(pid),
        extra,
    }
}

/// Raises the open-file limit (soft and hard, as root) to 65536: the per-file loops hold a
/// directory and a file descriptor per cgroup (20,000 at 10,000 cgroups), and the VM guest's
/// init starts with 1024/4096 (at 1,000 cgroups every openat failed with EMFILE and the loop
/// timed nothing). The agents inherit it; serve caps its kept-open files itself (--max-fds).
fn raise_fd_limit() {
    let want = 65_536;
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < want {
            let r = libc::rlimit {
                rlim_cur: want,
                rlim_max: rl.rlim_max.max(want),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                rl.rlim_cur = rl.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            }
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
    }
    println!("open files limit: {}", rl.rlim_cur);
}

fn main() {
    raise_fd_limit();
    let sizes: Vec<usize> = std::env::var("MEMLENS_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let repeats = env("MEMLENS_BENCH_REPEATS", 3) as usize;
    let window = Duration::from_secs(env("MEMLENS_BENCH_WINDOW", 60));
    let agents = env("MEMLENS_BENCH_AGENTS", 1) == 1;
    let root = Root::live();
    let h = memlens::report::hierarchy(&root).expect("memory controller");
    sweep(&h.mount_point);
    let bin =
        std::env::var("MEMLENS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_memlens").to_string());
    let mut table = Vec::new();
    for &n in &sizes {
        // The kernel's memcg IDs: 16 bits (MEM_CGROUP_ID_MAX 65535), dying memcgs included.
        let have = memcg_count();
        if have + n as u64 + 1000 > 65_535 {
            println!(
                "{n} memcgs: skipped, the kernel holds {have} memcgs (dying included) and has IDs for 65535"
            );
            continue;
        }
        let parent = common::parent(&h, "scale");
        let t = Instant::now();
        let mut kids = Vec::with_capacity(n);
        for i in 0..n {
            kids.push(
                parent
                    .create_child(&format!("memlens-c{i}"))
                    .expect("create child"),
            );
        }
        let created = t.elapsed();
        // 5% run a workload: 4 MiB of anon grown over 13.7 s and freed, forever (a period
        // prime to the 10 s interval: a sample never sees the same phase twice running).
        let busy = n / 20;
        let mut workers = Vec::new();
        for k in kids.iter().step_by(20).take(busy) {
            let mut cmd = Command::new(&bin);
            cmd.args(["__workload", "saw=4M:13700:0"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            k.join_before_exec(&mut cmd).expect("join");
            workers.push(Kill(cmd.spawn().expect("workload")));
        }
        std::thread::sleep(Duration::from_secs(2));
        let paths = walk::all_paths(&root, &h, "/");
        let dirs: Vec<PathBuf> = paths.iter().map(|p| fs_path(&h, p)).collect();
        println!(
            "\n== {n} memcgs ({} on the node, {busy} running a workload; created in {:.1} s; kernel memcgs now {}) ==",
            paths.len(),
            created.as_secs_f64(),
            memcg_count()
        );
        let per = |s: f64| s * 1e6 / paths.len() as f64;

        // One-shot.
        let ofiles = overview_files(h.version);
        floor_tight(&dirs, ofiles, true);
        let (mut fl, mut ov, mut pr, mut pu, mut ps, mut prss, mut ovu, mut ovs) = (
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        let mut flc = vec![];
        for _ in 0..repeats {
            let (w, u, s) = timed(|| floor_tight(&dirs, ofiles, true));
            fl.push(w);
            flc.push(u + s);
            let (w, u, s) = timed(|| {
                std::hint::black_box(memlens::overview::collect(&root, &h, true).rows.len());
            });
            ov.push(w);
            ovu.push(u);
            ovs.push(s);
            let t = Instant::now();
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
            pr.push(t.elapsed().as_secs_f64());
            let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            pu.push(s(ru.ru_utime));
            ps.push(s(ru.ru_stime));
            prss.push(ru.ru_maxrss as f64 / 1024.0);
        }
        let (fl, ov, pr) = (median(fl), median(ov), median(pr));
        // CPU time (user + system), which a loaded machine distorts less than wall time.
        let flc = median(flc);
        let ovc = median(ovu.iter().zip(&ovs).map(|(u, s)| u + s).collect());
        let prc = median(pu.iter().zip(&ps).map(|(u, s)| u + s).collect());
        println!(
            "  one-shot CPU: floor {:.1} ms, overview::collect {:.1} ms = {:.2}x, `--all --json` process {:.1} ms = {:.2}x",
            flc * 1e3,
            ovc * 1e3,
            ovc / flc,
            prc * 1e3,
            prc / flc
        );
        println!(
            "  one-shot: tight floor {:.1} ms ({:.1} µs/cgroup); overview::collect {:.1} ms = {:.2}x (user {:.1} ms, sys {:.1} ms); `--all --json` process {:.1} ms = {:.2}x (user {:.1}, sys {:.1} ms, peak RSS {:.1} MB)",
            fl * 1e3,
            per(fl),
            ov * 1e3,
            ov / fl,
            median(ovu) * 1e3,
            median(ovs) * 1e3,
            pr * 1e3,
            pr / fl,
            median(pu) * 1e3,
            median(ps) * 1e3,
            median(prss.clone())
        );

        // Per file type.
        let mut names: Vec<&str> = metrics_files(h.version).to_vec();
        names.push("cgroup.procs");
        println!("  per file type (median of {repeats}):");
        for l in per_file(&dirs, &names, repeats) {
            println!("{l}");
        }
        // The periodic floor: the exporter's files, no walk (the tree is kept by inotify).
        let mfiles = metrics_files(h.version);
        // The periodic floor in CPU time (user + system): what a collector must spend.
        let pf = median(
            (0..repeats)
                .map(|_| {
                    let (_, u, s) = timed(|| floor_tight(&dirs, mfiles, false));
                    u + s
                })
                .collect(),
        );
        println!(
            "  periodic floor (metrics files, no walk): {:.1} ms of CPU a collection = {:.3}% of a core at 10 s",
            pf * 1e3,
            pf / 10.0 * 100.0
        );

        // top's refresh.
        let (mut tw, mut tu, mut ts) = (vec![], vec![], vec![]);
        let mut cache = memlens::tui::snapshot::Cache::default();
        // One cycle of the slow tier after the first refresh (which reads everything).
        for _ in 0..memlens::tui::snapshot::FULL_EVERY + 1 {
            let (w, u, s) = timed(|| {
                std::hint::black_box(
                    memlens::tui::snapshot::take_cached(&root, &h, None, 0, "live", &mut cache)
                        .overview
                        .rows
                        .len(),
                );
            });
            tw.push(w);
            tu.push(u);
            ts.push(s);
        }
        // The first refresh reads everything; the steady state is the rest.
        let first = tw.remove(0);
        tu.remove(0);
        ts.remove(0);
        let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        let (tw, tu, ts) = (mean(tw), mean(tu), mean(ts));
        println!(
            "  top refresh: first {:.1} ms, then on average {:.1} ms (user {:.1}, sys {:.1}) = {:.1}% of a core at 1 s",
            first * 1e3,
            tw * 1e3,
            tu * 1e3,
            ts * 1e3,
            (tu + ts) * 100.0
        );

        let (mut serve, mut record) = (None, None);
        if agents {
            let settle = Duration::from_secs(12);
            let pfile = std::env::temp_dir()
                .join(format!("memlens-bench-scale-port-{}", std::process::id()));
            let _ = std::fs::remove_file(&pfile);
            let s = agent(
                &bin,
                &[
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--interval",
                    "10s",
                    "--port-file",
                    pfile.to_str().unwrap_or_default(),
                ],
                Some(&pfile),
                settle,
                window,
                Duration::from_secs(10),
            );
            let _ = std::fs::remove_file(&pfile);
            println!(
                "  serve per collection: {:.1} ms of CPU ({:.1} collections in the window) = {:.2}x the periodic floor ({:.1} ms)",
                s.cpu_per * 1e3,
                s.collections,
                s.cpu_per / pf,
                pf * 1e3
            );
            println!(
                "  serve --interval 10s over {} s: {:.3}% of a core (user {:.3}, sys {:.3}); floor {:.3}% -> {:.2}x; RSS {:.1} -> {:.1} MB (peak {:.1}); {} fds\n    {}",
                window.as_secs(),
                s.cpu,
                s.user,
                s.sys,
                pf / 10.0 * 100.0,
                s.cpu / (pf / 10.0 * 100.0),
                s.rss0,
                s.rss1,
                s.hwm,
                s.fds,
                s.extra
            );
            let store = tempfile::tempdir().expect("tempdir");
            let r = agent(
                &bin,
                &[
                    "--store",
                    store.path().to_str().unwrap_or_default(),
                    "record",
                    "--interval",
                    "10s",
                ],
                None,
                settle,
                window,
                Duration::from_secs(10),
            );
            println!(
                "  record per collection: {:.1} ms of CPU ({:.1} collections assumed: window / interval) = {:.2}x the periodic floor ({:.1} ms)",
                r.cpu_per * 1e3,
                r.collections,
                r.cpu_per / pf,
                pf * 1e3
            );
            let size = memlens::store::Reader::open(store.path())
                .and_then(|r| r.used_bytes())
                .unwrap_or(0);
            println!(
                "  record --interval 10s over {} s: {:.3}% of a core (user {:.3}, sys {:.3}); floor {:.3}% -> {:.2}x; RSS {:.1} -> {:.1} MB (peak {:.1}); {} fds; store {:.1} MB",
                window.as_secs(),
                r.cpu,
                r.user,
                r.sys,
                pf / 10.0 * 100.0,
                r.cpu / (pf / 10.0 * 100.0),
                r.rss0,
                r.rss1,
                r.hwm,
                r.fds,
                size as f64 / 1e6
            );
            serve = Some(s);
            record = Some(r);
        }
        table.push((
            n,
            fl,
            ov,
            pr,
            median(prss),
            prc / flc,
            tu + ts,
            serve,
            record,
            pf,
        ));

        let t = Instant::now();
        drop(workers);
        drop(kids);
        drop(parent);
        std::thread::sleep(Duration::from_secs(1));
        println!(
            "  removed in {:.1} s; kernel memcgs now {} (the rest are dying: freed as their pages go)",
            t.elapsed().as_secs_f64(),
            memcg_count()
        );
    }

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "\ncgroup v{}, kernel {}; serve/record CPU: % of one core (CPU per collection = ratio to the periodic floor)",
        h.version.number(),
        kernel.trim()
    );
    println!(
        "\n| memcgs | floor (one-shot) | `--all --json` | ratio | µs/cgroup | top refresh (1 s) | serve 10 s CPU | serve RSS | serve fds | record 10 s CPU | record RSS | record fds |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (n, fl, ov, pr, rss, cpu_ratio, top, s, r, pf) in &table {
        let per = |a: &Agent| {
            format!(
                "{:.2}% ({:.0} ms = {:.1}x)",
                a.cpu,
                a.cpu_per * 1e3,
                a.cpu_per / pf
            )
        };
        let a =
            |x: &Option<Agent>, f: &dyn Fn(&Agent) -> String| x.as_ref().map_or("-".to_string(), f);
        println!(
            "| {n} | {:.1} ms | {:.1} ms ({:.1} MB) | {:.2}x (in-process {:.2}x; CPU {:.2}x) | {:.1} | {:.1}% | {} | {} | {} | {} | {} | {} |",
            fl * 1e3,
            pr * 1e3,
            rss,
            pr / fl,
            ov / fl,
            cpu_ratio,
            pr * 1e6 / *n as f64,
            top * 100.0,
            a(s, &per),
            a(s, &|a| format!("{:.1}→{:.1} MB", a.rss0, a.rss1)),
            a(s, &|a| a.fds.to_string()),
            a(r, &per),
            a(r, &|a| format!("{:.1}→{:.1} MB", a.rss0, a.rss1)),
            a(r, &|a| a.fds.to_string()),
        );
    }
}
