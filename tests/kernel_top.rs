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
    /// Waits up to `d` for the screen to satisfy `f`; returns the last screen.
    fn wait(&self, d: Duration, f: impl Fn(&str) -> bool) -> String {
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

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
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
    let cmd = format!("{} top --interval 300ms --color never", bin().display());
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
    // Not a container: every cgroup is shown only in the tree, or by falling back when the
    // node has no container. The filter finds ours either way after `t`.
    let s = t.wait(Duration::from_secs(10), |s| s.contains("memlens top"));
    assert!(s.contains("memlens top"), "{s}");
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
    let dead = t.wait(Duration::from_secs(5), |_| {
        t.cmd(&["display", "-p", "-t", "top", "#{pane_dead}"])
            .trim()
            == "1"
    });
    let st = t.cmd(&[
        "display",
        "-p",
        "-t",
        "top",
        "#{pane_dead} #{pane_dead_status} #{alternate_on}",
    ]);
    assert_eq!(
        st.trim(),
        "1 0 0",
        "exited 0, alternate screen off:\n{dead}"
    );
    // The main screen is back and clean: nothing of the TUI left on it.
    let s = t.screen();
    assert!(!s.contains("memlens top"), "{s}");
    drop(w2);
    drop(w1);
}
