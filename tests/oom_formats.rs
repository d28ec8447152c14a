//! Every kernel-log format the OOM parser reads, on one real OOM report (this host, 6.18,
//! cgroup v1, `tail /dev/zero` in a 32 MiB memcg) as each tool printed it
//! (tests/fixtures/oom/host-6.18-v1-oom2.*, SOURCES.md), plus the real reports of the VM
//! matrix kernels. Every format must give the same report as plain `dmesg`, and whatever
//! timing the format carries.

use memlens::kmsg::log::{LogLine, parse_line, parse_log};
use memlens::kmsg::oom::{OomReport, parse_reports};
use proptest::prelude::*;

const KB: u64 = 1024;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/oom/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn one_report(name: &str) -> (Vec<LogLine>, OomReport) {
    let lines = parse_log(&fixture(name));
    let mut rs = parse_reports(&lines);
    assert_eq!(rs.len(), 1, "{name}: one report");
    (lines, rs.remove(0))
}

/// (file suffix, monotonic time of the first line, wall clock of the first line, host, caller).
type Format = (
    &'static str,
    Option<u64>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// The formats of the same report, with what each carries.
const FORMATS: [Format; 21] = [
    ("dmesg", Some(722_507_995), None, None, None),
    ("dmesg-crlf", Some(722_507_995), None, None, None),
    ("dmesg-x", Some(722_507_995), None, None, None),
    ("dmesg-r", Some(722_507_995), None, None, None),
    ("dmesg-d", Some(722_507_995), None, None, None),
    ("dmesg-delta", None, None, None, None),
    ("dmesg-reltime", None, Some("Dec  1 08:40"), None, None),
    ("dmesg-ctime", None, Some("2026-12-01T08:40:19"), None, None),
    (
        "dmesg-iso",
        None,
        Some("2026-12-01T08:40:19.507995+00:00"),
        None,
        None,
    ),
    (
        "dmesg-x-iso",
        None,
        Some("2026-12-01T08:40:19.507995+00:00"),
        None,
        None,
    ),
    (
        "printk-caller",
        Some(722_507_995),
        None,
        None,
        Some("T29970"),
    ),
    (
        "journal-short",
        None,
        Some("Dec  1 08:40:19"),
        Some("vm"),
        None,
    ),
    (
        "journal-short-precise",
        None,
        Some("Dec  1 08:40:19.791072"),
        Some("vm"),
        None,
    ),
    (
        "journal-short-iso",
        None,
        Some("2026-12-01T08:40:19+0000"),
        Some("vm"),
        None,
    ),
    (
        "journal-short-iso-precise",
        None,
        Some("2026-12-01T08:40:19.791072+0000"),
        Some("vm"),
        None,
    ),
    (
        "journal-short-monotonic",
        Some(722_507_995),
        None,
        Some("vm"),
        None,
    ),
    ("journal-cat", None, None, None, None),
    (
        "journal-json",
        Some(722_507_995),
        Some("2026-12-01T08:40:19.791072Z"),
        Some("vm"),
        None,
    ),
    (
        "journal-json-pretty",
        Some(722_507_995),
        Some("2026-12-01T08:40:19.791072Z"),
        Some("vm"),
        None,
    ),
    ("rfc3164", None, Some("Dec  1 08:40:46"), Some("vm"), None),
    (
        "rfc5424",
        None,
        Some("2026-12-01T08:40:49.727898+00:00"),
        Some("vm"),
        None,
    ),
];

#[test]
fn every_format_gives_the_plain_dmesg_report() {
    let (_, want) = one_report("host-6.18-v1-oom2.dmesg.log");
    // The report itself, read off the fixture by hand.
    assert!(want.complete);
    assert_eq!(want.trigger.comm.as_deref(), Some("tail"));
    assert_eq!(want.trigger.pid, Some(29970));
    assert_eq!(want.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    assert_eq!(
        want.oom_memcg.as_deref(),
        Some("/memlens-test-issue15-fixture")
    );
    assert_eq!(
        (want.usage_bytes, want.limit_bytes),
        (Some(32768 * KB), Some(32768 * KB))
    );
    let v = want.victim.as_ref().expect("victim");
    assert_eq!(
        (v.pid, v.anon_rss_bytes, v.file_rss_bytes),
        (Some(29970), Some(32512 * KB), Some(1544 * KB))
    );
    assert_eq!(want.lines.len(), 112);

    for (suffix, mono, wall, host, caller) in FORMATS {
        let name = format!("host-6.18-v1-oom2.{suffix}.log");
        let (lines, r) = one_report(&name);
        assert_eq!(
            r.lines, want.lines,
            "{name}: the kernel's text, line by line"
        );
        assert_eq!(
            (&r.victim, &r.stat, &r.tasks, r.complete),
            (&want.victim, &want.stat, &want.tasks, true),
            "{name}"
        );
        let first = lines
            .iter()
            .find(|l| l.text.contains("invoked oom-killer"))
            .expect("start line");
        assert_eq!(first.mono_usec, mono, "{name}: monotonic time");
        assert_eq!(first.wall.as_deref(), wall, "{name}: wall clock");
        assert_eq!(first.host.as_deref(), host, "{name}: host");
        assert_eq!(first.caller.as_deref(), caller, "{name}: caller");
        assert!(lines.iter().all(LogLine::is_kernel), "{name}: kernel lines");
        assert_eq!(r.mono_usec, mono, "{name}: report time");
    }
}

#[test]
fn crlf_fixture_really_has_crlf() {
    let t = fixture("host-6.18-v1-oom2.dmesg-crlf.log");
    assert_eq!(t.matches("\r\n").count(), 112);
}

#[test]
fn caller_ids_in_every_spelling() {
    // The kernel's console format ("[%5lu.%06lu][%6s] "), dmesg's (a space between), the
    // interrupt-context id, /dev/kmsg's caller= field, and a syslog kernel message.
    let cases = [
        (
            "[   49.920000][ T6736] msg",
            Some(49_920_000),
            "T6736",
            "msg",
        ),
        (
            "[   49.920000] [ T6736] msg",
            Some(49_920_000),
            "T6736",
            "msg",
        ),
        (
            "[   49.920000][    C3] irq msg",
            Some(49_920_000),
            "C3",
            "irq msg",
        ),
        (
            "[   49.920000][T29970]  <TASK>",
            Some(49_920_000),
            "T29970",
            " <TASK>",
        ),
        (
            "6,4711,49920000,-,caller=T6736;msg",
            Some(49_920_000),
            "T6736",
            "msg",
        ),
        (
            "Nov 23 07:42:32 host kernel: [   49.92][ T1] msg",
            Some(49_920_000),
            "T1",
            "msg",
        ),
    ];
    for (raw, mono, caller, text) in cases {
        let l = parse_line(raw);
        assert_eq!(
            (l.mono_usec, l.caller.as_deref(), l.text.as_str()),
            (mono, Some(caller), text),
            "{raw}"
        );
    }
    // Not a caller id: kept as text.
    let l = parse_line("[   49.920000] [Tx] msg");
    assert_eq!((l.caller, l.text.as_str()), (None, "[Tx] msg"));
}

#[test]
fn syslog_variants() {
    // busybox syslogd without -S: facility.level before the tag.
    let l = parse_line("Dec  1 08:40:19 memlens-vm kern.warn kernel: [  722.507995] msg");
    assert_eq!(
        (
            l.host.as_deref(),
            l.ident.as_deref(),
            l.mono_usec,
            l.text.as_str()
        ),
        (Some("memlens-vm"), Some("kernel"), Some(722_507_995), "msg")
    );
    let l = parse_line("Dec  1 08:40:19 memlens-vm daemon.info sshd[4]: hello");
    assert!(!l.is_kernel());
    // RFC 5424 with a PRI, nil fields, no structured data, a BOM, and escaped SD values.
    let l = parse_line("<4>1 2026-12-01T08:40:19.507995+00:00 node kernel - - - \u{feff}msg");
    assert_eq!(
        (l.wall.as_deref(), l.host.as_deref(), l.text.as_str()),
        (
            Some("2026-12-01T08:40:19.507995+00:00"),
            Some("node"),
            "msg"
        )
    );
    let l = parse_line(r#"<4>1 2026-12-01T08:40:19Z - kernel - - [a b="x\]y"][c@1 d="e"] msg"#);
    assert_eq!((l.host, l.text.as_str()), (None, "msg"));
    let l = parse_line("<30>1 2026-12-01T08:40:19Z node systemd 1 - - Started.");
    assert!(!l.is_kernel());
    // dmesg -r without a time.
    let l = parse_line("<6>plain");
    assert_eq!(l.text, "plain");
}

#[test]
fn kmsg_fragments_are_joined() {
    // Before 4.9 a line printed in pieces (KERN_CONT) could reach /dev/kmsg as a record
    // flagged 'c' followed by '+' records (Documentation/ABI/testing/dev-kmsg).
    let lines =
        parse_log("4,10,100,c;Killed process 42 (x) \n4,11,101,+;total-vm:10kB\n4,12,102,-;next\n");
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["Killed process 42 (x) total-vm:10kB", "next"]);
    // A '+' record with nothing before it stays a line.
    assert_eq!(parse_log("4,11,101,+;orphan\n").len(), 1);
}

#[test]
fn journal_json_message_as_bytes_and_with_newlines() {
    // MESSAGE is an array of bytes when it is not valid UTF-8 (systemd.journal-fields(7)).
    let l = parse_line(
        r#"{"MESSAGE":[104,105,255],"_TRANSPORT":"kernel","_SOURCE_MONOTONIC_TIMESTAMP":"5"}"#,
    );
    assert_eq!(
        (l.text.as_str(), l.mono_usec, l.is_kernel()),
        ("hi\u{fffd}", Some(5), true)
    );
    let lines = parse_log(
        r#"{"MESSAGE":"anon 1\nfile 2\n","SYSLOG_IDENTIFIER":"kernel"}
{"MESSAGE":"x","SYSLOG_IDENTIFIER":"sshd"}
"#,
    );
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["anon 1", "file 2", "x"]);
    assert!(!lines[2].is_kernel());
}

/// The prefixes a kernel line can carry, applied to arbitrary kernel text.
fn prefixed(kind: u8, secs: u32, usec: u32, caller: u32, text: &str) -> String {
    match kind % 16 {
        0 => format!("[{secs:5}.{usec:06}] {text}"),
        1 => format!("[{secs:5}.{usec:06}][{:>6}] {text}", format!("T{caller}")),
        2 => format!(
            "[{secs:5}.{usec:06}] [{:>6}] {text}",
            format!("C{}", caller % 64)
        ),
        3 => format!("kern  :warn  : [{secs:5}.{usec:06}] {text}"),
        4 => format!("<4>[{secs:5}.{usec:06}] {text}"),
        5 => format!("[{secs:5}.{usec:06} <    0.000016>] {text}"),
        6 => format!("[<    0.000016>] {text}"),
        7 => format!("[  +0.000016] {text}"),
        8 => format!("2026-12-01T08:40:19,{usec:06}+00:00 {text}"),
        9 => format!("Dec 01 08:40:19.{usec:06} vm kernel: {text}"),
        10 => format!("[{secs:5}.{usec:06}] vm kernel: {text}"),
        11 => format!("<4>Dec  1 08:40:46 vm kernel: {text}"),
        12 => format!("<4>1 2026-12-01T08:40:49.727898+00:00 vm kernel - - - {text}"),
        13 => format!("6,{caller},{secs}{usec:06},-,caller=T{caller};{text}"),
        14 => format!(
            "{{\"MESSAGE\":{},\"SYSLOG_IDENTIFIER\":\"kernel\"}}",
            serde_json::to_string(text).unwrap_or_default()
        ),
        _ => format!("Dec  1 08:40:19 memlens-vm kern.warn kernel: [{secs:5}.{usec:06}] {text}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the prefix, the kernel's text comes back unchanged (kernel text: printable,
    /// not itself starting with something that looks like a prefix).
    #[test]
    fn every_prefix_gives_back_the_kernel_text(
        kind in any::<u8>(),
        secs in 0u32..99_999,
        usec in 0u32..999_999,
        caller in 1u32..99_999,
        text in "[a-zA-Z][ -~]{0,60}",
    ) {
        let raw = prefixed(kind, secs, usec, caller, &text);
        let l = parse_line(&raw);
        prop_assert_eq!(&l.text, &text, "{}", raw);
        prop_assert!(l.is_kernel());
        let crlf = parse_log(&format!("{raw}\r\n{raw}\r\n"));
        prop_assert_eq!(crlf.len(), 2);
        prop_assert_eq!(&crlf[1].text, &text);
    }

    /// The real report survives any mix of the formats, line by line.
    #[test]
    fn report_lines_in_mixed_formats(kinds in proptest::collection::vec(any::<u8>(), 112)) {
        let (_, want) = one_report("host-6.18-v1-oom2.dmesg.log");
        let mut text = String::new();
        for (line, kind) in want.lines.iter().zip(kinds) {
            // JSON and kmsg records keep leading spaces; the others do too.
            text.push_str(&prefixed(kind, 722, 507_995, 29970, line));
            text.push('\n');
        }
        let rs = parse_reports(&parse_log(&text));
        prop_assert_eq!(rs.len(), 1);
        prop_assert_eq!(&rs[0].lines, &want.lines);
        prop_assert_eq!(&rs[0].victim, &want.victim);
    }
}

/// (fixture, trigger/victim pid, memcg, failcnt, victim anon-rss kB, shmem-rss kB, stat anon
/// bytes): the memcg OOM of `tail /dev/zero` in a 32 MiB memcg, swap forbidden, that
/// tests/kernel_oom.rs causes on each matrix kernel (values read off the records by eye).
const MATRIX_MEMCG: [(&str, i32, &str, u64, u64, u64, u64); 2] = [
    (
        "debian-5.10-v2.kmsg",
        343,
        "/memlens-test-oom-339-0",
        21,
        32632,
        1344,
        33_386_496,
    ),
    (
        "debian-6.12-v2.kmsg",
        448,
        "/memlens-test-oom-443-0",
        36,
        32640,
        1324,
        33_427_456,
    ),
];

#[test]
fn matrix_kernels_memcg_oom_reports() {
    for (name, pid, cg, failcnt, anon_kb, shmem_kb, stat_anon) in MATRIX_MEMCG {
        let (_, r) = one_report(name);
        assert!(r.complete, "{name}");
        assert_eq!(
            (r.trigger.pid, r.trigger.comm.as_deref()),
            (Some(pid), Some("tail")),
            "{name}"
        );
        assert_eq!(
            (r.constraint.as_deref(), r.global),
            (Some("CONSTRAINT_MEMCG"), false),
            "{name}"
        );
        assert_eq!(
            (r.oom_memcg.as_deref(), r.task_memcg.as_deref()),
            (Some(cg), Some(cg)),
            "{name}"
        );
        assert_eq!(
            (r.usage_bytes, r.limit_bytes, r.failcnt),
            (Some(32768 * KB), Some(32768 * KB), Some(failcnt)),
            "{name}"
        );
        assert_eq!(
            (r.swap_usage_bytes, r.swap_limit_bytes),
            (Some(0), Some(0)),
            "{name}"
        );
        let v = r.victim.as_ref().expect("victim");
        assert_eq!(
            (v.pid, v.anon_rss_bytes, v.shmem_rss_bytes),
            (Some(pid), Some(anon_kb * KB), Some(shmem_kb * KB)),
            "{name}"
        );
        assert_eq!(r.stat_memcg.as_deref(), Some(cg), "{name}");
        let anon = r.stat.iter().find(|(k, _)| k == "anon").map(|(_, v)| *v);
        assert_eq!(anon, Some(stat_anon), "{name}");
        assert_eq!(r.tasks.len(), 1, "{name}");
    }
}

/// A global OOM (no memcg limit) in the 5.10-v1, 6.1 and 6.12 guests: tests/vm/vm-capture.sh grows a
/// `memlens __workload` with oom_score_adj 1000 until the kernel kills it (busybox dmesg).
#[test]
fn matrix_kernels_global_oom_reports() {
    for (name, pid, anon_kb) in [
        ("debian-5.10-v1-global.dmesg", 603, 620_500),
        ("debian-6.1-global.dmesg", 647, 616_280),
        ("debian-6.12-global.dmesg", 684, 624_768),
    ] {
        let (_, r) = one_report(name);
        assert!(r.complete, "{name}");
        assert!(r.global, "{name}");
        assert_eq!(r.constraint.as_deref(), Some("CONSTRAINT_NONE"), "{name}");
        assert_eq!(r.oom_score_adj, Some(1000), "{name}");
        assert_eq!(r.oom_memcg, None, "{name}");
        assert_eq!(r.task_memcg.as_deref(), Some("/"), "{name}");
        let v = r.victim.as_ref().expect("victim");
        assert_eq!(
            (v.pid, v.comm.as_deref(), v.anon_rss_bytes, v.oom_score_adj),
            (Some(pid), Some("memlens"), Some(anon_kb * KB), Some(1000)),
            "{name}"
        );
        assert!(!r.tasks.is_empty(), "{name}: the task table");
    }
}

#[test]
fn matrix_fixtures_truncated_anywhere() {
    for name in [
        "debian-5.10-v2.kmsg",
        "debian-6.12-v2.kmsg",
        "debian-6.1-global.dmesg",
        "debian-6.12-global.dmesg",
        "debian-5.10-v1.kmsg",
        "host-6.18-v1-oom2.journal-json.log",
        "host-6.18-v1-oom2.rfc5424.log",
    ] {
        let text = fixture(name);
        let lines: Vec<&str> = text.lines().collect();
        for n in 0..=lines.len() {
            let rs = parse_reports(&parse_log(&lines[..n].join("\n")));
            assert!(rs.len() <= 1, "{name} cut at {n}");
        }
    }
}

/// The memcg OOM on cgroup v1 in the 5.10-v1 guest: memory and memory+swap limited to 32 MiB;
/// 5.10 prints the stat dump in the v2 format (one `\x0a`-joined record) on v1 too.
#[test]
fn matrix_5_10_v1_memcg_oom_report() {
    let (_, r) = one_report("debian-5.10-v1.kmsg");
    assert!(r.complete);
    assert_eq!(
        (r.trigger.pid, r.trigger.comm.as_deref()),
        (Some(358), Some("tail"))
    );
    let cg = "/memlens-test-oom-354-0";
    assert_eq!(
        (r.oom_memcg.as_deref(), r.constraint.as_deref()),
        (Some(cg), Some("CONSTRAINT_MEMCG"))
    );
    assert_eq!(
        (r.usage_bytes, r.limit_bytes, r.failcnt),
        (Some(32768 * KB), Some(32768 * KB), Some(0))
    );
    assert_eq!(
        (r.memsw_usage_bytes, r.memsw_limit_bytes),
        (Some(32768 * KB), Some(32768 * KB))
    );
    assert_eq!(
        (r.kmem_usage_bytes, r.kmem_limit_bytes),
        // The kernel's "unlimited" sentinel (PAGE_COUNTER_MAX pages) is no limit: null.
        (Some(116 * KB), None)
    );
    assert_eq!((r.swap_usage_bytes, r.swap_limit_bytes), (None, None));
    assert_eq!(
        r.stat.iter().find(|(k, _)| k == "anon").map(|(_, v)| *v),
        Some(33_386_496)
    );
    let v = r.victim.as_ref().expect("victim");
    assert_eq!((v.pid, v.anon_rss_bytes), (Some(358), Some(32632 * KB)));
}
