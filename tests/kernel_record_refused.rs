//! The store keeps the recorder's read refusals (issue 13): a real memcg of ours whose
//! memory.stat the recorder may not read (mode 000, the recorder run as `nobody`: setuid
//! before exec, as util-linux's setpriv would, which busybox's in the VM cannot) is recorded as refused, with the error and the time, and `history` and `--at`
//! say "not recorded: permission denied" instead of only "not recorded".

mod common;

use common::Workload;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn a_refused_read_is_recorded_with_its_error() {
    let cg = common::cgroup("refused");
    let w = Workload::start(&cg, &["anon=4M"]);
    let stat = cg.dir().join("memory.stat");
    std::fs::set_permissions(&stat, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let d = tempfile::tempdir().expect("tmp");
    // nobody writes the store.
    std::os::unix::fs::chown(d.path(), Some(65534), Some(65534)).expect("chown");
    let store = d.path().to_str().expect("utf-8").to_string();
    let mut cmd = Command::new(common::bin());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .args(["--store", &store, "record", "--interval", "200ms"])
        .args(["--fast-interval", "200ms", "--no-oom", "--for", "5s"])
        .env("MEMLENS_RECORD_TRACE", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the recorder as nobody");
    let err = child.stderr.take().expect("stderr");
    let ticks: Arc<Mutex<Vec<i64>>> = Arc::default();
    let c = ticks.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            match line.strip_prefix("memlens-record: committed ") {
                Some(t) => c.lock().expect("ticks").extend(t.parse::<i64>().ok()),
                None => eprintln!("recorder: {line}"),
            }
        }
    });
    let end = Instant::now() + Duration::from_secs(60);
    let st = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < end,
            "the recorder did not stop after --for 5s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = reader.join();
    assert!(st.success(), "recorder: {st}");
    let ticks = ticks.lock().expect("ticks").clone();
    // (TCG in the VM: a tick can take seconds.)
    assert!(!ticks.is_empty(), "no tick committed");
    // history: the refusal, with its error and time, and the steps say why.
    let h = common::json(&["--store", &store, "history", cg.path(), "--since", "10m"]);
    let refusals = h["refusals"].as_array().expect("refusals");
    let r = refusals
        .iter()
        .find(|r| r["file"] == "memory.stat")
        .unwrap_or_else(|| panic!("memory.stat not listed as refused: {h}"));
    assert!(
        r["reason"]
            .as_str()
            .is_some_and(|s| s.starts_with("permission denied")),
        "{r}"
    );
    let t = r["t"].as_i64().expect("t");
    assert!(
        ticks.contains(&t),
        "refused at {t}, not at a committed tick"
    );
    let (code, out, err) =
        common::run(&["--store", &store, "history", cg.path(), "--since", "10m"]);
    assert_eq!(code, 0, "{err}");
    eprintln!("{out}");
    assert!(
        out.contains("not recorded: permission denied on memory.stat"),
        "{out}"
    );
    assert!(out.contains("not recorded from "), "{out}");
    // --at: the moment's memory.stat is "not recorded: permission denied", not "missing".
    let at = memlens::units::format_time(ticks[ticks.len() / 2]);
    let (_, out, err) = common::run(&["--store", &store, "show", cg.path(), "--at", &at, "--json"]);
    let all = format!("{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("show --at --json");
    eprintln!("show --at problems: {}", v["problems"]);
    assert!(
        all.contains("memory.stat: not recorded: permission denied"),
        "show --at {at}: {all}"
    );
    std::fs::set_permissions(&stat, std::fs::Permissions::from_mode(0o444)).expect("chmod back");
    w.finish();
}
