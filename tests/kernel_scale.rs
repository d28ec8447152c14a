//! Issue 20 on the real exporter: memlens's own cost in /metrics, tiered reads (an idle
//! cgroup's series keep the values of its last full read, exact, with their read time; a
//! cgroup whose usage moves is read at once), the kept-open descriptors and their cap.
//! Run as root on a host with a memory cgroup controller (v1 here, v2 in tests/vm/run).

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The value of the first sample of `name` whose labels contain all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        let (lab, val) = rest.rsplit_once(' ')?;
        labels
            .iter()
            .all(|x| lab.contains(x))
            .then(|| val.parse().ok())?
    })
}

/// `memlens serve --interval I FLAGS...` (serve's own flags after the subcommand, unlike
/// common::start_serve's global ones), up when /healthz answers.
fn start(interval: &str, flags: &[&str]) -> (Proc, u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pf = dir.path().join("port");
    let p = Proc(
        Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--interval", interval])
            .args(flags)
            .arg("--port-file")
            .arg(&pf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memlens serve"),
    );
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if let Some(port) = std::fs::read_to_string(&pf)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            && let Ok((200, _)) = http_get(port, "/healthz", None)
        {
            return (p, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("memlens serve {flags:?} did not come up");
}

fn scrape(port: u16) -> String {
    http_get(port, "/metrics", None).expect("scrape").1
}

fn proc_cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<String> = s
        .rsplit_once(')')
        .map(|x| x.1.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (n(11) + n(12)) / hz
}

fn fd_links(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn serve_exports_its_own_cost_and_tiered_values_carry_their_age() {
    let idle = cgroup("scale-idle");
    let busy = cgroup("scale-busy");
    // Touches 256 MiB at 3 MiB/s: its usage moves every collection (a step that lasts
    // longer than the test, so no READY to wait for; a sawtooth whose period divides the
    // interval would look unchanged at each sample).
    let mut cmd = Command::new(bin());
    cmd.args(["__workload", "rate=256M:3M"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    busy.join_before_exec(&mut cmd).expect("join");
    let _w = Proc(cmd.spawn().expect("workload"));
    let (serve, port) = start("1s", &["--full-every", "5"]);
    let pid = serve.pid();
    let idle_id = format!("id=\"{}\"", idle.path());
    let busy_id = format!("id=\"{}\"", busy.path());

    // Over 8 collections: the idle cgroup's read time moves only every 5th, the busy one's
    // at each; the idle one's values stay what the kernel has (nothing moved).
    let (mut idle_ts, mut busy_ts) = (Vec::new(), Vec::new());
    let mut text = String::new();
    let mut last_count = 0.0;
    let t = Instant::now();
    while idle_ts.len() < 8 && t.elapsed() < Duration::from_secs(60) {
        text = scrape(port);
        let count = sample(&text, "memlens_collection_seconds_count", &[]).expect("count");
        if count > last_count {
            last_count = count;
            let ts = |id: &str| {
                sample(&text, "memlens_memory_read_timestamp_seconds", &[id]).expect("read ts")
            };
            idle_ts.push(ts(&idle_id));
            busy_ts.push(ts(&busy_id));
            let usage = sample(&text, "container_memory_usage_bytes", &[&idle_id]).unwrap();
            let k: f64 = kfile(&idle, usage_file()).trim().parse().unwrap();
            assert_eq!(usage, k, "idle cgroup's usage vs the kernel's");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let distinct = |v: &[f64]| {
        let mut d = v.to_vec();
        d.dedup();
        d.len()
    };
    assert!(idle_ts.len() >= 8, "collections seen: {}", idle_ts.len());
    assert!(
        distinct(&idle_ts) <= 3,
        "idle cgroup read in full at most every 5th collection: {idle_ts:?}"
    );
    assert!(
        distinct(&busy_ts) >= 6,
        "a busy cgroup is read at every collection: {busy_ts:?}"
    );
    assert!(busy_ts.last() > idle_ts.first());

    // Own cost: the kernel's own figures of the process.
    let cpu = sample(&text, "process_cpu_seconds_total", &[]).expect("process_cpu_seconds_total");
    let now_cpu = proc_cpu_seconds(pid);
    assert!(cpu > 0.0 && cpu <= now_cpu + 0.02, "{cpu} vs {now_cpu}");
    let user = sample(
        &text,
        "memlens_process_cpu_seconds_total",
        &["mode=\"user\""],
    )
    .unwrap();
    let sys = sample(
        &text,
        "memlens_process_cpu_seconds_total",
        &["mode=\"system\""],
    )
    .unwrap();
    assert!((user + sys - cpu).abs() < 1e-6, "{user} + {sys} vs {cpu}");
    let rss = sample(&text, "process_resident_memory_bytes", &[]).expect("rss");
    let k_rss = vm_rss(pid) as f64;
    assert!(
        rss > 0.5 * k_rss && rss < 1.5 * k_rss,
        "rss {rss} vs VmRSS {k_rss}"
    );
    let fds = sample(&text, "process_open_fds", &[]).expect("fds");
    let kept = sample(&text, "memlens_kept_open_fds", &[]).expect("kept fds");
    let cgroups = sample(&text, "memlens_collection_cgroups", &[]).expect("cgroups");
    assert!(kept >= 2.0 && kept <= cgroups, "kept {kept} of {cgroups}");
    assert!(fds >= kept, "fds {fds} kept {kept}");
    let links = fd_links(pid);
    assert!(
        (fds - links.len() as f64).abs() <= 3.0,
        "process_open_fds {fds} vs /proc/PID/fd {}",
        links.len()
    );
    // The descriptors kept are usage files of cgroups.
    let usage_links = links.iter().filter(|l| l.ends_with(usage_file())).count();
    // (One more when the collector is reading a cgroup's usage file at that moment.)
    let extra = usage_links as f64 - kept;
    assert!((0.0..=1.0).contains(&extra), "kept {kept}: {links:?}");
    // Tiers add up to the cgroups read.
    let full = sample(&text, "memlens_collection_tier_cgroups", &["tier=\"full\""]).unwrap();
    let unchanged = sample(
        &text,
        "memlens_collection_tier_cgroups",
        &["tier=\"unchanged\""],
    )
    .unwrap();
    assert_eq!(full + unchanged, cgroups);
    // The histogram: cumulative buckets, +Inf = count.
    let mut prev = 0.0;
    let mut inf = None;
    for l in text
        .lines()
        .filter(|l| l.starts_with("memlens_collection_seconds_bucket"))
    {
        let v: f64 = l.rsplit_once(' ').unwrap().1.parse().unwrap();
        assert!(v >= prev, "{l}");
        prev = v;
        if l.contains("le=\"+Inf\"") {
            inf = Some(v);
        }
    }
    let count = sample(&text, "memlens_collection_seconds_count", &[]).unwrap();
    assert_eq!(inf, Some(count));
    assert!(sample(&text, "memlens_collection_seconds_sum", &[]).unwrap() > 0.0);
    // OpenMetrics carries the histogram too.
    let (_, om) = http_get(port, "/metrics", Some("application/openmetrics-text")).unwrap();
    assert!(
        om.contains("# TYPE memlens_collection_seconds histogram"),
        "{om:.2000}"
    );
    assert!(om.contains("memlens_collection_seconds_bucket{le=\"+Inf\"}"));
    assert!(om.trim_end().ends_with("# EOF"));
    // promtool's parser and linter accept the 0.0.4 text (naming lints aside, as in
    // kernel_serve: cAdvisor's names).
    if Command::new("promtool").arg("--version").output().is_ok() {
        let mut lint = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool");
        lint.stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = lint.wait_with_output().unwrap();
        let o = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        for line in o.lines().filter(|l| !l.trim().is_empty()) {
            assert!(line.contains("container_memory_"), "promtool: {line}\n{o}");
        }
    } else {
        skip("kernel_scale promtool lint", "promtool not installed");
    }

    // The idle cgroup starts moving: read in full at the next collection, exact again.
    let _w2 = Workload::start(&idle, &["anon=16M"]);
    let before = *idle_ts.last().unwrap();
    let t = Instant::now();
    loop {
        let text = scrape(port);
        let ts = sample(&text, "memlens_memory_read_timestamp_seconds", &[&idle_id]).unwrap();
        let rss = sample(&text, "container_memory_rss", &[&idle_id]).unwrap();
        if ts > before && rss >= 16.0 * 1024.0 * 1024.0 {
            let k = kstat(&idle)[&key("anon")] as f64;
            assert_eq!(rss, k, "rss after the change vs memory.stat");
            // At the first collection after the change, not at the slow tier's.
            assert!(
                t.elapsed() < Duration::from_millis(3500),
                "{:?}",
                t.elapsed()
            );
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "never re-read");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kept_descriptors_are_capped_and_closed_when_their_cgroup_goes() {
    let a = cgroup("scale-fd");
    let b = cgroup("scale-fd");
    let (serve, port) = start("1s", &["--max-fds", "1"]);
    std::thread::sleep(Duration::from_millis(1500));
    let text = scrape(port);
    assert_eq!(sample(&text, "memlens_kept_open_fds", &[]), Some(1.0));
    // Beyond the cap the values are still read and exact.
    for cg in [&a, &b] {
        let id = format!("id=\"{}\"", cg.path());
        let u = sample(&text, "container_memory_usage_bytes", &[&id]).unwrap();
        let k: f64 = kfile(cg, usage_file()).trim().parse().unwrap();
        assert_eq!(u, k);
    }
    drop(serve);

    // Without the cap: a descriptor per cgroup; a removed cgroup's is closed.
    let (serve, port) = start("1s", &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let dir = a.dir().display().to_string();
    assert!(fd_links(serve.pid()).iter().any(|l| l.starts_with(&dir)));
    let kept = sample(&scrape(port), "memlens_kept_open_fds", &[]).unwrap();
    a.remove().expect("remove");
    let t = Instant::now();
    loop {
        let now = sample(&scrape(port), "memlens_kept_open_fds", &[]).unwrap();
        let held = fd_links(serve.pid()).iter().any(|l| l.starts_with(&dir));
        if now == kept - 1.0 && !held {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "kept {now} (was {kept}), removed cgroup's file still open: {held}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `walk::Tree` follows a mkdir or rmdir by walking only the new subtree or dropping the
/// removed one (issue 20: a whole walk per container started or stopped): its list stays
/// what a fresh walk lists, parents before children, and the hierarchy is not walked again.
#[test]
fn the_tree_follows_mkdir_and_rmdir_without_walking_the_hierarchy_again() {
    use memlens::cgroup::walk::{Tree, all_paths};
    let root = memlens::sys::Root::live();
    let h = hier();
    let parent = cgroup("tree-inc");
    let mine = |v: &[String]| -> Vec<String> {
        let under = format!("{}/", parent.path());
        v.iter()
            .filter(|p| **p == parent.path() || p.starts_with(&under))
            .cloned()
            .collect()
    };
    let mut t = Tree::new();
    t.paths(&root, &h);
    let walks = t.walks();
    let check = |t: &mut Tree, n: usize| {
        let got = mine(t.paths(&root, &h));
        for (i, p) in got.iter().enumerate() {
            if let Some(k) = p.rfind('/').filter(|k| *k > 0) {
                assert!(
                    got[..i].contains(&p[..k].to_string()),
                    "{p} before its parent: {got:?}"
                );
            }
        }
        let mut want = mine(&all_paths(&root, &h, "/"));
        let mut sorted = got.clone();
        sorted.sort();
        want.sort();
        assert_eq!(sorted, want);
        assert_eq!(got.len(), n, "{got:?}");
    };
    check(&mut t, 1);
    let a = parent.create_child("a").expect("child");
    let b = a.create_child("b").expect("grandchild");
    let c = parent.create_child("c").expect("child");
    check(&mut t, 4);
    drop(b);
    check(&mut t, 3);
    drop(a);
    let d = c.create_child("d").expect("grandchild");
    check(&mut t, 3);
    drop(d);
    drop(c);
    check(&mut t, 1);
    assert_eq!(t.walks(), walks, "the hierarchy was walked again");
}
