//! OOM reports read wrongly before (issue 19 items 11, 12): v1 writeback that is swap-out
//! taken for dirty cache, the memory+swap limit that was hit not shown, the kernel's
//! "unlimited" sentinels reported as byte limits, yearless syslog times, and a report cut
//! after its stat header losing its memcg.

mod common;

use common::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("tests/fixtures/oom/{name}")).unwrap()
}

fn write(d: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = d.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn v1_writeback_of_swap_is_not_dirty_cache_and_the_memsw_limit_is_shown() {
    let d = tempfile::tempdir().unwrap();
    // The 6.18 v1 report with no page cache at all, and 30 MiB under writeback: anon pages
    // being written to swap (v1 `writeback` counts them too).
    let t = fixture("this-host-6.18-v1.kmsg")
        .replace(";writeback 0\n", ";writeback 31457280\n")
        .replace(";total_writeback 0\n", ";total_writeback 31457280\n");
    assert!(t.contains("total_writeback 31457280"));
    let f = write(&d, "swapout.kmsg", &t);
    let v = json(&["oom", "--file", &f])["events"].clone();
    let verdict = v[0]["verdict"]["id"].as_str().unwrap_or("");
    assert_ne!(verdict, "dirty-cache", "{}", v[0]["verdict"]);
    // 3.10: the memory+swap limit was the one hit; oom show says so.
    let f = "tests/fixtures/oom/el7-3.10-memcg-back-to-back.log";
    let v = json(&["oom", "--file", f])["events"].clone();
    assert_eq!(v[0]["verdict"]["id"], "memsw-limit", "{}", v[0]["verdict"]);
    let (code, out, err) = run(&["oom", "--file", f, "show", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("memory+swap: usage 200.0 MiB of limit 200.0 MiB  <- the limit that was hit"),
        "{out}"
    );
    assert!(out.contains("kmem: usage 0 B of limit unlimited"), "{out}");
    // The kernel's unlimited sentinel is null in JSON, never 9223372036854771712.
    assert!(v[0]["kmem_limit_bytes"].is_null(), "{}", v[0]);
    assert!(!v.to_string().contains("9223372036854771712"));
}

#[test]
fn yearless_syslog_times_get_the_files_year_and_say_so() {
    let d = tempfile::tempdir().unwrap();
    let f = write(&d, "syslog", &fixture("aks-5.15-v2-then-cut.syslog"));
    let st = std::process::Command::new("touch")
        .args(["-d", "2023-10-13 08:00:00", &f])
        .status()
        .unwrap();
    assert!(st.success());
    let v = json(&["oom", "--file", &f])["events"].clone();
    let t = v[0]["time"].as_str().unwrap_or("");
    assert!(t.starts_with("2023-10-12T19:00:"), "{}", v[0]["time"]);
    let note = v[0]["time_note"].as_str().unwrap_or("");
    assert!(
        note.contains("2023") && note.contains("modification time"),
        "{note}"
    );
}

#[test]
fn a_report_cut_after_its_stat_header_names_its_memcg() {
    let d = tempfile::tempdir().unwrap();
    let t: String = fixture("debian-6.1-v2.kmsg")
        .lines()
        .take(53)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        t.trim_end()
            .ends_with("Memory cgroup stats for /memlens-test-oom-138-0:")
    );
    let f = write(&d, "cut.kmsg", &t);
    let v = json(&["oom", "--file", &f])["events"].clone();
    assert_eq!(v[0]["oom_memcg"], "/memlens-test-oom-138-0", "{}", v[0]);
    let (_, out, _) = run(&["oom", "--file", &f]);
    assert!(out.contains("/memlens-test-oom-138-0"), "{out}");
}

fn no_raw_controls(what: &str, out: &str) {
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "{what}: a raw control character reached the terminal:\n{out:?}"
    );
}

/// issue 19 items 4 and 5: `oom` keeps the kernel's escaping of a process name, and a log
/// with non-UTF-8 bytes is read line by line.
#[test]
fn oom_keeps_the_kernels_escaping_and_reads_non_utf8_logs() {
    let kmsg = std::fs::read("tests/fixtures/oom/this-host-6.18-v1.kmsg").unwrap();
    let text = String::from_utf8(kmsg)
        .unwrap()
        .replace(" (tail) ", " (ta\\x1b[2Jil) ");
    let mut bytes = b"Oct 12 19:00:20 host prog[1]: caf\xe9 latin-1 \xff\xfe binary\n".to_vec();
    bytes.extend_from_slice(text.as_bytes());
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("mixed.log");
    std::fs::write(&f, &bytes).unwrap();
    let fs = f.display().to_string();
    let (code, out, err) = run(&["oom", "--file", &fs, "--color", "never"]);
    assert_eq!(code, 0, "a non-UTF-8 byte refused the whole log: {err}");
    no_raw_controls("oom", &out);
    assert!(out.contains("ta\\x1b[2Jil"), "{out}");
    // Kills are numbered by the kernel's sequence number when the log has one (kmsg): take
    // the number `oom show` wants from the list.
    let v = json(&["oom", "--file", &fs])["events"].clone();
    let n = v[0]["number"]
        .as_u64()
        .expect("a numbered kill")
        .to_string();
    // A position instead of that number is refused, naming the numbers the log holds.
    if n != "1" {
        let (code, _, err) = run(&["oom", "--file", &fs, "show", "1"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&format!("is number {n}")), "{err}");
    }
    let (code, out, err) = run(&["oom", "--file", &fs, "show", &n, "--color", "never"]);
    assert_eq!(code, 0, "{err}");
    no_raw_controls("oom show", &out);
    assert!(out.contains("ta\\x1b[2Jil"), "{out}");
    assert!(v.to_string().contains("ta\\u001b[2Jil"), "{v}");
}

/// issue 12 (oom: time zones where the input has them): a zone in the log is kept, in
/// RFC 3339 form (journalctl -o short-iso writes `+0100`), never converted or dropped; a
/// time without one says so.
#[test]
fn oom_times_keep_the_logs_zone_and_say_when_it_has_none() {
    let d = tempfile::tempdir().unwrap();
    // The host's journalctl -o short-iso export, as a machine in UTC+1 would write it.
    let t = fixture("host-6.18-v1-oom2.journal-short-iso.log").replace("+0000 ", "+0100 ");
    assert!(t.contains("2026-12-01T08:40:19+0100 vm kernel: tail invoked oom-killer"));
    let f = write(&d, "cet.log", &t);
    let v = json(&["oom", "--file", &f])["events"].clone();
    assert_eq!(
        v[0]["time"], "2026-12-01T08:40:19+01:00",
        "{}",
        v[0]["time"]
    );
    assert!(v[0]["time_note"].is_null(), "{}", v[0]["time_note"]);
    let (_, out, _) = run(&["oom", "--file", &f]);
    assert!(out.contains("2026-12-01T08:40:19+01:00"), "{out}");
    assert!(!out.contains("without a zone"), "{out}");
    // dmesg --time-format iso and RFC 5424 carry theirs already (`,` becomes `.`).
    for (name, want) in [
        (
            "host-6.18-v1-oom2.dmesg-iso.log",
            "2026-12-01T08:40:19.507995+00:00",
        ),
        (
            "host-6.18-v1-oom2.rfc5424.log",
            "2026-12-01T08:40:49.727898+00:00",
        ),
    ] {
        let v = json(&["oom", "--file", &format!("tests/fixtures/oom/{name}")])["events"].clone();
        assert_eq!(v[0]["time"], want, "{name}");
    }
    // dmesg -T and journalctl -o short give no zone: the time is the log's local time.
    for name in [
        "host-6.18-v1-oom2.dmesg-ctime.log",
        "host-6.18-v1-oom2.journal-short.log",
    ] {
        let f = format!("tests/fixtures/oom/{name}");
        let v = json(&["oom", "--file", &f])["events"].clone();
        let note = v[0]["time_note"].as_str().unwrap_or("");
        assert!(note.contains("no zone"), "{name}: {}", v[0]);
        let (_, out, _) = run(&["oom", "--file", &f]);
        assert!(out.contains("TIME without a zone"), "{name}: {out}");
    }
}
