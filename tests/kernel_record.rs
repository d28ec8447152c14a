//! The flight recorder on real memcgs (recorded at 200 ms): crash safety under kill -9, and
//! workloads of known shape (linear anon growth to an OOM kill, page cache filling to the
//! limit, /dev/shm growth, a sawtooth) read back with `history`, `oom show`, the forecast.

mod common;

use common::{MIB, Proc};
use memlens::store::Reader;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A recorder process and the ticks it reported committed.
struct Recorder {
    proc: Proc,
    committed: Arc<Mutex<Vec<i64>>>,
}

fn start_recorder(store: &Path, extra: &[&str]) -> Recorder {
    start_recorder_env(store, extra, &[])
}

fn start_recorder_env(store: &Path, extra: &[&str], env: &[(&str, &str)]) -> Recorder {
    let mut child = Command::new(common::bin())
        .args(["--store", store.to_str().unwrap(), "record"])
        .args(if extra.contains(&"--interval") {
            &[][..]
        } else {
            &["--interval", "200ms", "--fast-interval", "200ms"][..]
        })
        .args(extra)
        .envs(env.iter().copied())
        .env("MEMLENS_RECORD_TRACE", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start memlens record");
    let err = child.stderr.take().unwrap();
    let committed = Arc::new(Mutex::new(Vec::new()));
    let c = committed.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(t) = line.strip_prefix("memlens-record: committed ") {
                if let Ok(t) = t.parse::<i64>() {
                    c.lock().unwrap().push(t);
                }
            } else {
                eprintln!("recorder: {line}");
            }
        }
    });
    Recorder {
        proc: Proc(child),
        committed,
    }
}

impl Recorder {
    fn wait_ticks(&self, n: usize) {
        let end = Instant::now() + Duration::from_secs(30);
        while self.committed.lock().unwrap().len() < n {
            assert!(
                Instant::now() < end,
                "the recorder wrote fewer than {n} ticks"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM: the recorder writes its open chunks and exits.
    fn stop(mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.proc.pid() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(st)) = self.proc.0.try_wait() {
                assert!(st.success(), "recorder exited with {st}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the recorder did not stop on SIGTERM");
    }
}

fn meminfo_times(store: &Path) -> Vec<i64> {
    let r = Reader::open(store).expect("the store opens");
    let (s, problems) = r.group_samples(&["/proc"], 0, i64::MAX).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    s.get("/proc/meminfo")
        .map(|v| v.iter().map(|x| x.t).collect())
        .unwrap_or_default()
}

#[test]
fn kill_9_at_20_random_moments_loses_at_most_the_tick_being_written() {
    let d = tempfile::tempdir().unwrap();
    let mut all: Vec<i64> = Vec::new();
    let mut x: u64 = std::process::id() as u64 * 2654435761 + 1;
    for round in 0..20 {
        // 1 s chunks: many kills land in a compaction (chunks written, frames dropped).
        let r = start_recorder(d.path(), &["--chunk", "1s", "--no-oom"]);
        r.wait_ticks(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(100 + x % 1400));
        // SAFETY: our own child.
        unsafe { libc::kill(r.proc.pid() as i32, libc::SIGKILL) };
        let mut r = r;
        let _ = r.proc.0.wait();
        std::thread::sleep(Duration::from_millis(50));
        all.extend(r.committed.lock().unwrap().iter().copied());
        let stored = meminfo_times(d.path());
        for t in &all {
            assert!(
                stored.binary_search(t).is_ok(),
                "round {round}: committed tick {t} is missing after kill -9 ({} stored)",
                stored.len()
            );
        }
    }
    // A writer opening the store compacts what the last recorder left in frames.
    drop(
        memlens::store::Writer::open(
            d.path(),
            memlens::store::Limits {
                retention_ms: i64::MAX / 4,
                max_bytes: u64::MAX,
                chunk_ms: 1000,
            },
        )
        .unwrap(),
    );
    let stored = meminfo_times(d.path());
    assert!(all.iter().all(|t| stored.binary_search(t).is_ok()));
    assert!(all.len() >= 20, "{} ticks", all.len());
}

/// Starts `memlens __workload STEPS` in `cg` without waiting for READY (paced steps run for
/// a while; the OOM test's never ends).
fn spawn_in(cg: &memlens::cgroup::owned::OwnedCgroup, steps: &[&str]) -> Proc {
    let mut cmd = Command::new(common::bin());
    cmd.arg("__workload")
        .args(steps)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    cg.join_before_exec(&mut cmd).unwrap();
    Proc(cmd.spawn().unwrap())
}

fn forecast(store: &str, cg: &str) -> Option<serde_json::Value> {
    let v = common::json(&["--store", store, "explain", cg]);
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "oom-forecast")
        .cloned()
}

fn points(store: &Path, cg: &str) -> Vec<memlens::history::Point> {
    let r = Reader::open(store).unwrap();
    let h = memlens::history::recorded_hierarchy(&r).unwrap();
    memlens::history::points(&r, &h, cg, 0, i64::MAX).unwrap().0
}

/// Least-squares slope (bytes/s) of `col` over the points where it is between 10% and 90%
/// of its maximum (the ramp, without the start and the end).
fn ramp_slope(pts: &[memlens::history::Point], col: &str) -> f64 {
    let max = pts.iter().filter_map(|p| p.get(col)).max().unwrap_or(0) as f64;
    let xy: Vec<(i64, f64)> = pts
        .iter()
        .filter_map(|p| Some((p.t, p.get(col)? as f64)))
        .skip_while(|(_, v)| *v < 0.1 * max)
        .take_while(|(_, v)| *v < 0.9 * max)
        .collect();
    memlens::history::fit(&xy).expect("a ramp").slope
}

#[test]
fn linear_anon_growth_to_an_oom_kill() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().to_str().unwrap();
    let cg = common::cgroup("rec-oom");
    common::limit(&cg, 240 * MIB);
    let rec = start_recorder(d.path(), &[]);
    rec.wait_ticks(3);
    let rate = 8 * MIB;
    let mut w = spawn_in(&cg, &["rate=1G:8M"]);
    let started = Instant::now();
    // The forecast, made while it grows (18 s into a 30 s ramp; it needs 16 s of samples).
    std::thread::sleep(Duration::from_secs(18));
    // The forecast counts from the store's last sample, taken before `explain` starts: time the
    // kill from there, not from explain's answer (2 s later in a TCG guest).
    let asked = Instant::now();
    let f = forecast(st, cg.path()).expect("a forecast while anon grows linearly");
    let predicted = {
        let nr = f["evidence"][0]["value_bytes"].as_u64().unwrap() as f64;
        let lim = f["evidence"][1]["value_bytes"].as_u64().unwrap() as f64;
        let bps: f64 = f["evidence"][2]["value"]
            .as_str()
            .unwrap()
            .trim_end_matches(" B/s")
            .parse()
            .unwrap();
        assert!(
            (bps - rate as f64).abs() <= 0.1 * rate as f64,
            "forecast slope {bps} B/s, workload {rate} B/s"
        );
        (lim - nr) / bps
    };
    // The kill is the moment the kernel counts it (memory.events / memory.oom_control
    // oom_kill), not when the victim has finished exiting: tearing down 240 MiB takes seconds
    // in a TCG guest.
    let oom_kills = || -> u64 {
        let f = match common::hier().version {
            memlens::model::Version::V2 => "memory.events",
            memlens::model::Version::V1 => "memory.oom_control",
        };
        std::fs::read_to_string(cg.dir().join(f))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            .unwrap_or(0)
    };
    let actual = loop {
        if oom_kills() > 0 {
            break asked.elapsed().as_secs_f64();
        }
        if let Some(st) = w.0.try_wait().unwrap() {
            // Exited before the count was seen (a poll missed it, or no counter): its exit.
            eprintln!("workload exited ({st}) before an oom_kill count was read");
            break asked.elapsed().as_secs_f64();
        }
        assert!(asked.elapsed() < Duration::from_secs(120), "no OOM kill");
        std::thread::sleep(Duration::from_millis(20));
    };
    let st_w = w.0.wait().unwrap();
    eprintln!(
        "forecast {predicted:.1} s, kill counted after {actual:.1} s, victim gone after {:.1} s",
        asked.elapsed().as_secs_f64()
    );
    assert!(!st_w.success(), "the workload should have been OOM-killed");
    assert!(
        (predicted - actual).abs() <= 0.2 * actual,
        "forecast said {predicted:.1} s, the kill came after {actual:.1} s (ramp began {:.1} s earlier)",
        asked.duration_since(started).as_secs_f64()
    );
    std::thread::sleep(Duration::from_millis(1500));
    // The cgroup goes away while recorded: history still finds it, by its directory name.
    let path = cg.path().to_string();
    let name = path.trim_start_matches('/').to_string();
    // Every tick the recorder committed while the cgroup existed holds a sample of it.
    let ticks_while_there = rec.committed.lock().unwrap().len();
    drop(cg);
    std::thread::sleep(Duration::from_millis(800));
    rec.stop();
    // history: the ramp, its slope, the kill, the removal.
    let h = common::json(&[
        "--store", st, "history", &name, "--since", "2m", "--step", "1s",
    ]);
    assert_eq!(h["path"], path.as_str());
    assert!(h["removed_at"].is_string(), "{}", h["removed_at"]);
    // (~160 ticks at 200 ms on the host; a loaded TCG guest commits fewer: 87 seen. A tick
    // may land just before the cgroup was first read or after its removal: 10% of slack.)
    let samples = h["samples"].as_u64().unwrap() as usize;
    assert!(
        samples >= ticks_while_there * 9 / 10 && samples >= 40,
        "{samples} samples of the cgroup, {ticks_while_there} ticks committed while it existed"
    );
    eprintln!(
        "forecast {predicted:.1} s, kill after {actual:.1} s; history growth {}",
        h["not_reclaimable_growth"]
    );
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"oom-kill"), "{kinds:?}");
    assert!(kinds.contains(&"process-started"), "{kinds:?}");
    let pts = points(d.path(), &path);
    let slope = ramp_slope(&pts, "anon");
    eprintln!("anon slope {slope:.0} B/s (workload {rate})");
    assert!(
        (slope - rate as f64).abs() <= 0.1 * rate as f64,
        "anon slope {slope:.0} B/s vs {rate}"
    );
    // oom show N: the verdict and its slope.
    let list = common::json(&["oom"]);
    let n = list["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|k| k["oom_memcg"].as_str().is_some_and(|m| m.ends_with(&name)))
        .and_then(|k| k["number"].as_u64())
        .expect("the kill in the kernel log");
    let cap = d.path().join("kill.tar.gz");
    let show = common::json(&[
        "--store",
        st,
        "oom",
        "show",
        &n.to_string(),
        "--capture",
        cap.to_str().unwrap(),
    ]);
    let v = &show["history"]["verdict"];
    assert_eq!(v["id"], "steady-anon-growth", "{v}");
    let per_min = v["mib_per_minute"].as_f64().unwrap();
    eprintln!("oom show verdict: {}", v["text"]);
    assert!(
        (per_min - 8.0 * 60.0).abs() <= 0.1 * 8.0 * 60.0,
        "verdict slope {per_min} MiB/min"
    );
    // The capture of the kill reads back with --from.
    let s = common::json(&["--from", cap.to_str().unwrap(), "show", &path]);
    assert!(
        s["usage_bytes"].as_u64().unwrap() > 100 * MIB,
        "{}",
        s["usage_bytes"]
    );
    // The plot, PNG and SVG, with the kill marked.
    for ext in ["png", "svg"] {
        let out = d.path().join(format!("p.{ext}"));
        let o = out.to_str().unwrap();
        let (code, _, err) = common::run(&["--store", st, "plot", &path, "--since", "2m", "-o", o]);
        assert_eq!(code, 0, "{err}");
        let b = std::fs::read(&out).unwrap();
        match ext {
            "png" => assert!(b.starts_with(b"\x89PNG") && b.len() > 10_000),
            _ => assert!(String::from_utf8_lossy(&b).contains("OOM kill")),
        }
    }
}

#[test]
fn page_cache_fills_the_limit_and_dev_shm_grows() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().to_str().unwrap();
    let cache_cg = common::cgroup("rec-cache");
    common::limit(&cache_cg, 64 * MIB);
    let shm_cg = common::cgroup("rec-shm");
    common::limit(&shm_cg, 256 * MIB);
    let file = common::disk_dir().join(format!("memlens-test-rec-{}", std::process::id()));
    let shm = format!("/dev/shm/memlens-test-rec-{}", std::process::id());
    let rec = start_recorder(d.path(), &["--no-oom"]);
    rec.wait_ticks(3);
    let fa = format!("writerate={}:160M:16M", file.display());
    let sa = format!("writerate={shm}:80M:8M");
    let mut a = spawn_in(&cache_cg, &[&fa, "exit"]);
    let mut b = spawn_in(&shm_cg, &[&sa, "exit"]);
    assert!(a.0.wait().unwrap().success());
    assert!(b.0.wait().unwrap().success());
    // No forecast for a cgroup whose growth is page cache.
    assert!(forecast(st, cache_cg.path()).is_none());
    std::thread::sleep(Duration::from_millis(600));
    rec.stop();
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&shm);
    // Page cache: up to the limit, never over it, and what cannot be reclaimed stays small.
    let pts = points(d.path(), cache_cg.path());
    // 10 s of writing at 200 ms: 50 samples here; the TCG guests record about 30.
    assert!(pts.len() >= 20, "{} samples", pts.len());
    let file_max = pts
        .iter()
        .filter_map(|p| Some(p.get("active_file")? + p.get("inactive_file")?))
        .max()
        .unwrap();
    assert!(file_max >= 40 * MIB, "page cache peaked at {file_max}");
    assert!(pts.iter().all(|p| p.get("usage").unwrap() <= 64 * MIB));
    assert!(
        pts.iter()
            .all(|p| p.get("not_reclaimable").unwrap() < 32 * MIB)
    );
    // /dev/shm: shmem at the writer's rate.
    let pts = points(d.path(), shm_cg.path());
    let slope = ramp_slope(&pts, "shmem");
    eprintln!("shmem slope {slope:.0} B/s (writer {})", 8 * MIB);
    assert!(
        (slope - 8.0 * MIB as f64).abs() <= 0.1 * 8.0 * MIB as f64,
        "shmem slope {slope:.0} B/s"
    );
    let h = common::json(&["--store", st, "history", shm_cg.path(), "--since", "1m"]);
    let g = h["not_reclaimable_growth"]["bytes_per_second"]
        .as_f64()
        .unwrap();
    assert!(g > 0.0, "{g}");
}

#[test]
fn a_sawtooth_raises_no_forecast() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().to_str().unwrap();
    let cg = common::cgroup("rec-saw");
    common::limit(&cg, 200 * MIB);
    let rec = start_recorder(d.path(), &["--no-oom"]);
    rec.wait_ticks(3);
    let _w = spawn_in(&cg, &["saw=80M:3000:0"]);
    let mut seen = 0;
    for _ in 0..6 {
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            forecast(st, cg.path()).is_none(),
            "a sawtooth raised a forecast"
        );
        seen += 1;
    }
    rec.stop();
    assert_eq!(seen, 6);
    let pts = points(d.path(), cg.path());
    let max = pts.iter().filter_map(|p| p.get("anon")).max().unwrap();
    assert!(max >= 60 * MIB, "the sawtooth reached {max}");
}

/// `serve --record`: one agent records, and its /metrics carries
/// memlens_oom_forecast_seconds for a cgroup growing linearly towards its limit.
#[test]
fn serve_record_exports_the_forecast() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().to_str().unwrap();
    let cg = common::cgroup("rec-serve");
    common::limit(&cg, 240 * MIB);
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let _serve = Proc(
        Command::new(common::bin())
            .args([
                "--store",
                st,
                "serve",
                "--listen",
                &listen,
                "--interval",
                "1s",
            ])
            .args(["--record", "--record-interval", "200ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = std::time::Instant::now();
    let _w = spawn_in(&cg, &["rate=1G:8M"]);
    // 240 MiB at 8 MiB/s: about 30 s of ramp. The forecast needs enough points of it; a slow
    // machine (the TCG guests) records fewer, so poll from 15 s on rather than read once.
    std::thread::sleep(Duration::from_secs(15));
    let mut found = None;
    while found.is_none() && t0.elapsed() < Duration::from_secs(27) {
        let (code, body) = common::http_get(port, "/metrics", None).unwrap();
        assert_eq!(code, 200);
        found = body
            .lines()
            .find(|l| l.starts_with("memlens_oom_forecast_seconds{") && l.contains(cg.path()))
            .map(|l| (l.to_string(), t0.elapsed().as_secs_f64()));
        if found.is_none() {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let (line, at) = found.unwrap_or_else(|| panic!("no forecast for {} in /metrics", cg.path()));
    let secs: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    // What is left of the ramp when read, within the collection's lag and the fit's error.
    let left = 30.0 - at;
    assert!(
        secs > 0.0 && (secs - left).abs() <= 8.0,
        "{line} at {at:.1} s"
    );
}

/// Under `--host-root` the recorder follows the host's kernel log (HOST/dev/kmsg), as
/// `oom --follow --host-root` does, not the log of the container it runs in.
#[test]
fn record_under_host_root_follows_the_hosts_kernel_log() {
    let hr = tempfile::tempdir().expect("tmp");
    std::os::unix::fs::symlink("/sys", hr.path().join("sys")).unwrap();
    std::os::unix::fs::symlink("/proc", hr.path().join("proc")).unwrap();
    std::fs::create_dir(hr.path().join("dev")).unwrap();
    // Not a kmsg device: the follower names it (and why it cannot read it) either way.
    std::fs::write(hr.path().join("dev/kmsg"), b"").unwrap();
    let store = tempfile::tempdir().expect("tmp");
    let out = Command::new(common::bin())
        .args(["--host-root", hr.path().to_str().unwrap()])
        .args(["--store", store.path().to_str().unwrap(), "record"])
        .args(["--interval", "200ms", "--for", "1s"])
        .env_remove("MEMLENS_KMSG")
        .env("RUST_LOG", "info")
        .output()
        .expect("record");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let want = format!("{}/dev/kmsg", hr.path().display());
    let line = err
        .lines()
        .find(|l| l.contains("OOM kills recorded from"))
        .unwrap_or_else(|| panic!("no OOM source in the log:\n{err}"));
    assert!(line.contains(&want), "{want} not followed: {line}");
}

/// The recorder's OOM follower takes the cgroup list and the v1 oom_kill counts from the
/// recorder's own reads (no tree or counter reads of its own, issue 20): a kill is still
/// stored once, from the kernel log with its post-mortem, and, with the log taken away
/// (MEMLENS_KMSG), from the counter alone, within a few intervals of the kernel counting it,
/// also in a cgroup the tiers had found idle (only its usage read).
#[test]
fn the_recorder_stores_each_kill_once_from_the_log_or_the_counter_alone() {
    for (tag, env, by) in [
        ("rec-oomlog", None, "kernel-log"),
        ("rec-oomctr", Some("/nonexistent/kmsg"), "counter"),
    ] {
        let d = tempfile::tempdir().unwrap();
        let st = d.path().to_str().unwrap().to_string();
        let cg = common::cgroup(tag);
        common::limit(&cg, 32 * MIB);
        let env: Vec<(&str, &str)> = env.map(|k| ("MEMLENS_KMSG", k)).into_iter().collect();
        // 1 s intervals and a 3 s full interval: the idle cgroup is tiered before the kill.
        let rec = start_recorder_env(
            d.path(),
            &[
                "--interval",
                "1s",
                "--fast-interval",
                "1s",
                "--full-interval",
                "3s",
            ],
            &env,
        );
        rec.wait_ticks(2);
        std::thread::sleep(Duration::from_secs(4));
        let mut w = Command::new(common::bin());
        w.args(["__workload", "grow=128M"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cg.join_before_exec(&mut w).expect("join");
        let st_w = w.spawn().expect("workload").wait().expect("wait");
        assert!(!st_w.success(), "the workload should have been OOM-killed");
        let killed = Instant::now();
        // Seen within a few intervals (the counter at the next read of the cgroup, whose
        // usage moved), and not a second time later (up to past the full interval).
        std::thread::sleep(Duration::from_secs(6));
        rec.stop();
        let waited = killed.elapsed();
        // The stored events themselves (`history` merges a counter's rise with the report).
        let events = Reader::open(Path::new(&st))
            .expect("the store opens")
            .events(0, i64::MAX)
            .expect("events");
        let kills: Vec<&memlens::store::Event> = events
            .iter()
            .filter(|e| e.kind == "oom-kill" && e.cgroup.as_deref() == Some(cg.path()))
            .collect();
        assert_eq!(
            kills.len(),
            1,
            "{tag}: {kills:?} ({waited:?} after the kill)"
        );
        assert_eq!(kills[0].data["detected_by"], by, "{tag}: {:?}", kills[0]);
        // The kill's moment (the workload's exit, after the kernel counted it) to its event.
        let after = waited.as_millis() as i64 - (memlens::store::now_ms() - kills[0].t);
        assert!(after <= 3000, "{tag}: stored {after} ms after the kill");
        drop(cg);
    }
}
