//! `free` variants (issue 11 item 11): memlens's `used` per procps-ng 4 and per BusyBox /
//! procps-ng 3.3 equal what those tools print, read between two memlens reads (MemFree and
//! MemAvailable move all the time: the tool's value must lie between, within 16 MiB).

mod common;
use common::*;
use std::process::Command;

fn tool_used(cmd: &[&str]) -> Option<u64> {
    let o = Command::new(cmd[0]).args(&cmd[1..]).output().ok()?;
    let t = String::from_utf8_lossy(&o.stdout);
    let mem = t.lines().find(|l| l.starts_with("Mem:"))?;
    mem.split_whitespace().nth(2)?.parse().ok()
}

fn variants() -> Vec<(String, u64)> {
    let v = json(&["show", "/"]);
    v["views"]["free"]["used_variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["tool"].as_str().unwrap().to_string(),
                x["used_bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn used_per_free_variant_equals_the_tools() {
    for (cmd, which) in [
        (vec!["free", "-b"], "procps-ng 4.0.1+"),
        (vec!["busybox", "free", "-b"], "BusyBox"),
    ] {
        let Some(_) = tool_used(&cmd) else {
            assert!(!in_ci(), "{cmd:?} not installed");
            eprintln!("SKIPPED: {cmd:?} not installed");
            continue;
        };
        if which.starts_with("procps") {
            let ver = Command::new("free").arg("--version").output().unwrap();
            let ver = String::from_utf8_lossy(&ver.stdout).to_string();
            if !ver.contains(" 4.") {
                eprintln!("SKIPPED: free is not procps-ng 4 ({ver})");
                continue;
            }
        }
        let before = variants();
        let got = tool_used(&cmd).unwrap();
        let after = variants();
        let pick = |v: &[(String, u64)]| v.iter().find(|(t, _)| t.contains(which)).unwrap().1;
        let (a, b) = (pick(&before), pick(&after));
        let (lo, hi) = (a.min(b) - (16 << 20), a.max(b) + (16 << 20));
        assert!(
            (lo..=hi).contains(&got),
            "{cmd:?} used {got}, memlens {which} {a}..{b}"
        );
    }
}
