//! `memlens top` in a real terminal: tmux runs it on this machine with a real memcg holding a
//! workload; keys are sent and the screen read with `capture-pane`.

mod common;

use common::{MIB, Workload, bin, cgroup, limit, skip};
use memlens::cgroup::owned::OwnedCgroup;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "top"])
    }
    fn keys(&self, k: &[&str]) {
        let mut a = vec!["send-keys", "-t", "top"];
        a.extend_from_slice(k);
        self.cmd(&a);
    }
    /// Waits up to `d` (6 × `d` in the TCG guest of tests/vm/run, where the drill-down's
    /// first read takes seconds) for the screen to satisfy `f`; returns the last screen.
    /// Latency targets are asserted separately, on the measured time.
    fn wait(&self, d: Duration, f: impl Fn(&str) -> bool) -> String {
        let d = if std::env::var_os("MEMLENS_VM").is_some() {
            d * 6
        } else {
            d
        };
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if f(&s) || t0.elapsed() > d {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Tmux {
    /// Where the pane's shell writes memlens's exit status once it exits. tmux's own
    /// `#{pane_dead_status}` stayed empty on CI and in the VM (busybox sh) although the pane
    /// was dead, so the status is taken from the shell instead.
    fn status_file(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("{}.status", self.0))
    }
    /// memlens's exit status, waiting up to `d` for it.
    fn exit_status(&self, d: Duration) -> Option<String> {
        let t0 = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(self.status_file())
                && s.ends_with('\n')
            {
                return Some(s.trim().to_string());
            }
            if t0.elapsed() > d {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.status_file());
        self.cmd(&["kill-server"]);
        // The server leaves its socket behind: $TMUX_TMPDIR (or /tmp)/tmux-UID/NAME.
        let dir = std::env::var("TMUX_TMPDIR").unwrap_or_else(|_| "/tmp".into());
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let _ = std::fs::remove_file(format!("{dir}/tmux-{uid}/{}", self.0));
    }
}

/// Runs `grow=512M` in `cg` until the kernel kills it; its PID and when it died.
fn grow_until_killed(cg: &OwnedCgroup) -> (u32, Instant) {
    let mut cmd = Command::new(bin());
    cmd.args(["__workload", "grow=512M"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cg.join_before_exec(&mut cmd).unwrap();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let status = child.wait().unwrap();
    let at = Instant::now();
    assert_eq!(status.signal(), Some(9), "grow=512M must be OOM-killed");
    (pid, at)
}

/// The USAGE cell of the row naming `name` (the 4th column at 160 columns: NAME IMAGE LIMIT
/// USAGE), in MiB.
fn usage_mib(screen: &str, name: &str) -> Option<f64> {
    let line = screen.lines().find(|l| l.contains(name))?;
    let w: Vec<&str> = line.split_whitespace().collect();
    // NAME, IMAGE "-", LIMIT "unlim", then USAGE as "N.N UNIT".
    let i = w.iter().position(|x| *x == "unlim")?;
    let v: f64 = w.get(i + 1)?.parse().ok()?;
    Some(match *w.get(i + 2)? {
        "KiB" => v / 1024.0,
        "MiB" => v,
        "GiB" => v * 1024.0,
        _ => v / 1048576.0,
    })
}

#[test]
fn top_in_tmux_on_a_real_memcg() {
    if Command::new("tmux").arg("-V").output().is_err() {
        skip("top_in_tmux_on_a_real_memcg", "tmux is not installed");
        return;
    }
    let cg = cgroup("top");
    let name = cg.path().trim_start_matches('/').to_string();
    let w1 = Workload::start(&cg, &["anon=8M"]);
    let t = Tmux(format!("memlens-test-top-{}", std::process::id()));
    // Not a container: every cgroup is shown only in the tree, or by falling back when the
    // node has no container. The filter finds ours either way after `t`.
    start_top(&t, "top --interval 300ms");
    t.keys(&["t"]);
    t.keys(&["/"]);
    t.keys(&["-l", &name]);
    t.keys(&["Enter"]);
    let s = t.wait(Duration::from_secs(5), |s| usage_mib(s, &name).is_some());
    let before = usage_mib(&s, &name).unwrap_or_else(|| panic!("row of {name}: {s}"));
    assert!(before >= 7.0, "8 MiB of anon charged: {before} MiB\n{s}");
    // The usage moves as the workload grows.
    let w2 = Workload::start(&cg, &["anon=48M"]);
    let s = t.wait(Duration::from_secs(5), |s| {
        usage_mib(s, &name).is_some_and(|u| u >= before + 40.0)
    });
    let after = usage_mib(&s, &name).unwrap_or(0.0);
    assert!(after >= before + 40.0, "{before} -> {after} MiB\n{s}");
    // Drill-down: its processes.
    t.keys(&["Enter"]);
    let pid = w2.pid().to_string();
    let s = t.wait(Duration::from_secs(5), |s| {
        s.contains("PROCESSES") && s.contains(&pid)
    });
    assert!(s.contains(&pid), "pid {pid} in the drill-down:\n{s}");
    assert!(s.contains(&w1.pid().to_string()), "{s}");
    assert!(s.contains("WHAT OTHER TOOLS SHOW"), "{s}");
    t.keys(&["p"]); // sort processes by PSS
    let s = t.wait(Duration::from_secs(2), |s| s.contains("by pss"));
    assert!(s.contains("by pss"), "{s}");
    t.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(300));
    // A real OOM kill in the memcg reaches the screen within 2 s: banner, row marked.
    limit(&cg, 96 * MIB);
    let (victim, killed) = grow_until_killed(&cg);
    let s = t.wait(Duration::from_secs(2), |s| s.contains("OOM KILL"));
    let took = killed.elapsed();
    assert!(
        s.contains("OOM KILL") && took <= Duration::from_secs(2),
        "no OOM banner {took:?} after the kill of {victim}:\n{s}"
    );
    assert!(
        s.lines().any(|l| l.contains(&name) && l.contains('!')),
        "row marked: {s}"
    );
    eprintln!("OOM kill of {victim} on screen {took:?} after it happened");
    t.keys(&["Escape"]);
    t.wait(Duration::from_secs(2), |s| !s.contains("OOM KILL"));
    t.keys(&["?"]);
    let s = t.wait(Duration::from_secs(2), |s| s.contains("NODE SCREEN"));
    assert!(s.contains("NODE SCREEN"), "help: {s}");
    t.keys(&["x"]);
    t.keys(&["q"]);
    let status = t.exit_status(Duration::from_secs(10));
    let dead = t.screen();
    assert_eq!(status.as_deref(), Some("0"), "exited 0:\n{dead}");
    let alt = t.cmd(&["display", "-p", "-t", "top", "#{alternate_on}"]);
    assert_eq!(alt.trim(), "0", "alternate screen off:\n{dead}");
    // The main screen is back and clean: nothing of the TUI left on it.
    let s = t.screen();
    assert!(!s.contains("memlens top"), "{s}");
    drop(w2);
    drop(w1);
}

/// The USAGE cell of the row naming `name`, in MiB, found under the USAGE title (columns are
/// fixed width), whatever the LIMIT says.
fn usage_col(screen: &str, name: &str) -> Option<f64> {
    let head = screen.lines().find(|l| l.contains("USAGE"))?;
    let at = head.find("USAGE")?;
    let line = screen.lines().find(|l| l.contains(name))?;
    let cell: String = line
        .chars()
        .skip(head[..at].chars().count())
        .take(10)
        .collect();
    let mut w = cell.split_whitespace();
    let v: f64 = w.next()?.parse().ok()?;
    Some(match w.next()? {
        "KiB" => v / 1024.0,
        "MiB" => v,
        "GiB" => v * 1024.0,
        _ => v / 1048576.0,
    })
}

/// A 160×48 tmux session "top" running `memlens ARGS`, kept when it exits (so its exit status
/// can be read), once the first table is drawn (a loaded machine takes seconds for the walk).
fn start_top(t: &Tmux, args: &str) {
    let _ = std::fs::remove_file(t.status_file());
    let cmd = format!(
        "{} {args} --color never; echo $? > {}",
        bin().display(),
        t.status_file().display()
    );
    t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "48",
        &cmd,
    ]);
    t.cmd(&["set-option", "-t", "top", "remain-on-exit", "on"]);
    let s = t.wait(Duration::from_secs(20), |s| s.contains("NAME"));
    assert!(s.contains("NAME"), "{s}");
}

fn quit(t: &Tmux) {
    t.keys(&["q"]);
    let status = t.exit_status(Duration::from_secs(10));
    assert_eq!(status.as_deref(), Some("0"), "exited 0:\n{}", t.screen());
    t.cmd(&["kill-session", "-t", "top"]);
}

/// A real recording (`memlens record` on this machine while our memcg grows from 8 to 56 MiB
/// and is OOM-killed): live `top` shows the store's samples in the drill-down's sparkline
/// while the recorder runs; `top --replay` starts at the newest moment, `{` lands on the
/// recorded kill (banner), `[` steps back to a moment before the memcg grew.
#[test]
fn top_sparkline_from_the_store_and_replay_of_a_real_recording() {
    if Command::new("tmux").arg("-V").output().is_err() {
        skip(
            "top_sparkline_from_the_store_and_replay_of_a_real_recording",
            "tmux is not installed",
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("store");
    let store_s = store.to_str().unwrap().to_string();
    let cg = cgroup("trp");
    let name = cg.path().trim_start_matches('/').to_string();
    let w1 = Workload::start(&cg, &["anon=8M"]);
    let rec = Command::new(bin())
        .args(["--store", &store_s, "record", "--interval", "250ms"])
        // Stopped by SIGTERM once live top has shown its samples (a TCG guest takes tens of
        // seconds to get there); --for is only the bound if the test dies first.
        .args(["--fast-interval", "250ms", "--for", "300s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let w2 = Workload::start(&cg, &["anon=48M"]);
    std::thread::sleep(Duration::from_millis(1500));
    limit(&cg, 96 * MIB);
    let (victim, _) = grow_until_killed(&cg);
    // Live, while recording: the drill-down's sparkline starts with the store's samples.
    let t = Tmux(format!("memlens-test-topreplay-{}", std::process::id()));
    start_top(&t, &format!("--store {store_s} top --interval 300ms"));
    t.keys(&["t", "/"]);
    t.keys(&["-l", &name]);
    t.keys(&["Enter"]);
    t.wait(Duration::from_secs(5), |s| usage_col(s, &name).is_some());
    t.keys(&["Enter"]);
    let s = t.wait(Duration::from_secs(5), |s| s.contains("from the store"));
    assert!(
        s.contains("from the store") && s.contains("PROCESSES"),
        "sparkline from the store:\n{s}"
    );
    quit(&t);
    // SAFETY: kill(2) of our own child, which has not been waited for yet.
    unsafe { libc::kill(rec.id() as libc::pid_t, libc::SIGTERM) };
    let out = rec.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "record: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(w2);
    drop(w1);
    // Replay: the newest moment first (after the kills: w1's 8 MiB; the kernel may have
    // chosen w2 as a victim too), then the last kill, then back to a moment before it,
    // when w2's 48 MiB were charged.
    start_top(&t, &format!("--store {store_s} top --replay"));
    t.keys(&["t", "/"]);
    t.keys(&["-l", &name]);
    t.keys(&["Enter"]);
    let s = t.wait(Duration::from_secs(5), |s| usage_col(s, &name).is_some());
    assert!(s.contains("paused"), "{s}");
    let newest = usage_col(&s, &name).unwrap_or_else(|| panic!("row of {name}: {s}"));
    assert!(
        newest < 30.0,
        "newest moment, after the kill: {newest} MiB\n{s}"
    );
    let time = |s: &str| {
        s.lines()
            .next()
            .and_then(|l| l.split(" · ").nth(1))
            .map(str::to_string)
    };
    let t_newest = time(&s);
    t.keys(&["{"]);
    let s = t.wait(Duration::from_secs(5), |s| s.contains("OOM KILL"));
    assert!(
        s.contains("OOM KILL"),
        "{{ lands on the recorded kill of {victim}:\n{s}"
    );
    assert_ne!(time(&s), t_newest, "{s}");
    t.keys(&["Escape"]);
    let mut big = None;
    for _ in 0..30 {
        t.keys(&["["]);
        std::thread::sleep(Duration::from_millis(250));
        if let Some(u) = usage_col(&t.screen(), &name)
            && u >= 50.0
        {
            big = Some(u);
            break;
        }
    }
    let s = t.screen();
    assert!(
        big.is_some(),
        "no step back to a moment with w2's 48 MiB charged:\n{s}"
    );
    quit(&t);
}
