//! The flight recorder's store without a kernel: damaged chunks, retention, the size cap,
//! versions; and `--at` against `--from` on the same files (a capture recorded as if live).

mod common;

use memlens::store::{Limits, Reader, Writer};
use std::path::Path;

fn limits(retention_ms: i64, max_bytes: u64, chunk_ms: i64) -> Limits {
    Limits {
        retention_ms,
        max_bytes,
        chunk_ms,
    }
}

fn file(stat: u64) -> Vec<u8> {
    format!("cache {stat}\nrss {}\nunknown_new_key 7\n", stat * 2).into_bytes()
}

#[test]
fn damaged_chunk_is_named_and_skipped() {
    let d = tempfile::tempdir().unwrap();
    let t0 = 1_800_000_000_000i64;
    {
        let mut w = Writer::open(d.path(), limits(i64::MAX / 4, u64::MAX, 1000)).unwrap();
        for i in 0..30 {
            let t = t0 + i * 200;
            let files = vec![
                (
                    "/sys/fs/cgroup/memory/a/memory.stat".to_string(),
                    file(i as u64),
                ),
                (
                    "/sys/fs/cgroup/memory/b/memory.stat".to_string(),
                    file(100 + i as u64),
                ),
            ];
            w.write(t, &files, &[], &[]).unwrap();
        }
        w.flush().unwrap();
    }
    // Damage the first chunk of group a (flip bytes in the middle of its zstd frame).
    let c = rusqlite::Connection::open(d.path().join("memlens.db")).unwrap();
    let (id, data): (i64, Vec<u8>) = c
        .query_row(
            "SELECT c.id, c.data FROM chunks c JOIN groups g ON g.id=c.grp WHERE g.name='/sys/fs/cgroup/memory/a' ORDER BY t0 LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mut bad = data.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 4] {
        *b ^= 0xff;
    }
    c.execute(
        "UPDATE chunks SET data=?1 WHERE id=?2",
        rusqlite::params![bad, id],
    )
    .unwrap();
    drop(c);
    let r = Reader::open(d.path()).unwrap();
    let (a, pa) = r
        .group_samples(&["/sys/fs/cgroup/memory/a"], t0, t0 + 10_000)
        .unwrap();
    assert_eq!(pa.len(), 1, "{pa:?}");
    assert!(
        pa[0].contains("/sys/fs/cgroup/memory/a")
            && pa[0].contains("damaged")
            && pa[0].contains("2027-01-15T08:00:00"),
        "{}",
        pa[0]
    );
    // a's other chunks are read; b is whole.
    let a_n = a.values().next().map_or(0, Vec::len);
    assert!(a_n > 0 && a_n < 30, "{a_n}");
    let (b, pb) = r
        .group_samples(&["/sys/fs/cgroup/memory/b"], t0, t0 + 10_000)
        .unwrap();
    assert!(pb.is_empty());
    let bs = &b["/sys/fs/cgroup/memory/b/memory.stat"];
    assert_eq!(bs.len(), 30);
    assert_eq!(r.text(&bs[29]).unwrap(), file(129));
}

#[test]
fn retention_and_size_cap_hold() {
    let d = tempfile::tempdir().unwrap();
    let now = memlens::store::now_ms();
    // Retention: 5 s of 60 s written with 1 s chunks (times end now).
    {
        let mut w = Writer::open(d.path(), limits(5_000, u64::MAX, 1000)).unwrap();
        for i in 0..300 {
            let t = now - 60_000 + i * 200;
            w.write(t, &[("/proc/meminfo".into(), file(i as u64))], &[], &[])
                .unwrap();
        }
        w.flush().unwrap();
    }
    let r = Reader::open(d.path()).unwrap();
    let (lo, hi) = r.range().unwrap().unwrap();
    assert!(
        lo >= now - 5_000 - 1_000,
        "oldest {} ms before now",
        now - lo
    );
    assert!(hi >= now - 1_000);
    drop(r);
    // Size cap: incompressible files (random numbers), a 1 MiB cap.
    let d2 = tempfile::tempdir().unwrap();
    let cap = 1 << 20;
    let mut x: u64 = 88172645463325252;
    {
        let mut w = Writer::open(d2.path(), limits(i64::MAX / 4, cap, 1000)).unwrap();
        for i in 0..400 {
            let mut text = String::new();
            for k in 0..400 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push_str(&format!("k{k} {x}\n"));
            }
            w.write(
                now - 80_000 + i * 200,
                &[("/proc/meminfo".into(), text.into_bytes())],
                &[],
                &[],
            )
            .unwrap();
        }
        w.flush().unwrap();
        let used = w.used_bytes().unwrap();
        assert!(used <= cap, "store uses {used} bytes, cap {cap}");
    }
    let on_disk: u64 = std::fs::read_dir(d2.path())
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    // The file itself shrinks with the deletions (auto_vacuum), give or take a chunk span.
    assert!(on_disk <= cap + cap / 2, "{on_disk} bytes on disk");
    let r = Reader::open(d2.path()).unwrap();
    let (lo, hi) = r.range().unwrap().unwrap();
    assert!(hi - lo < 60_000, "the oldest went first: {lo}..{hi}");
}

#[test]
fn newer_format_is_refused_with_a_clear_message() {
    let d = tempfile::tempdir().unwrap();
    drop(Writer::open(d.path(), limits(1000, u64::MAX, 1000)).unwrap());
    let c = rusqlite::Connection::open(d.path().join("memlens.db")).unwrap();
    c.execute("UPDATE meta SET value='99' WHERE key='format'", [])
        .unwrap();
    drop(c);
    let e = Reader::open(d.path()).err().unwrap().to_string();
    assert!(
        e.contains("format 99") && e.contains("newer memlens"),
        "{e}"
    );
    let e = Reader::open(Path::new("/nonexistent-store"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no store at"), "{e}");
}

/// A store of the previous format (1: the same tables without `refusals`, meta format 1,
/// made here from a new one by dropping the table, which is all that differs) opens for
/// reading with no refusals; a writer adds the table, marks it 2 and keeps its samples; and
/// refusals are stored once when they start, found for the moments they cover, and dropped
/// when the file reads again.
#[test]
fn a_format_1_store_opens_and_refusals_are_kept() {
    let d = tempfile::tempdir().unwrap();
    let t0 = 1_800_000_000_000i64;
    let stat = "/sys/fs/cgroup/memory/a/memory.stat".to_string();
    let usage = "/sys/fs/cgroup/memory/a/memory.usage_in_bytes".to_string();
    {
        let mut w = Writer::open(d.path(), limits(i64::MAX / 4, u64::MAX, 1000)).unwrap();
        for i in 0..10 {
            w.write(t0 + i * 200, &[(stat.clone(), file(i as u64))], &[], &[])
                .unwrap();
        }
        w.flush().unwrap();
    }
    let c = rusqlite::Connection::open(d.path().join("memlens.db")).unwrap();
    c.execute_batch("DROP TABLE refusals; UPDATE meta SET value='1' WHERE key='format';")
        .unwrap();
    drop(c);
    let r = Reader::open(d.path()).expect("a format-1 store opens");
    assert_eq!(r.meta("format"), Some("1"));
    assert_eq!(r.range().unwrap(), Some((t0, t0 + 9 * 200)));
    assert_eq!(r.refusal(&stat, t0 + 2000), None);
    assert!(
        r.refusals_of("/sys/fs/cgroup/memory/a", 0, i64::MAX)
            .is_empty()
    );
    drop(r);
    {
        let mut w = Writer::open(d.path(), limits(i64::MAX / 4, u64::MAX, 1000)).unwrap();
        let denied = "permission denied (test)".to_string();
        for i in 10..20 {
            let t = t0 + i * 200;
            // Refused from sample 12 to 15, readable again from 16.
            if (12..16).contains(&i) {
                w.write(
                    t,
                    &[(usage.clone(), b"4096\n".to_vec())],
                    &[(stat.clone(), denied.clone())],
                    &[],
                )
                .unwrap();
            } else {
                w.write(t, &[(stat.clone(), file(i as u64))], &[], &[])
                    .unwrap();
            }
        }
        w.flush().unwrap();
    }
    let r = Reader::open(d.path()).unwrap();
    assert_eq!(r.meta("format"), Some("2"), "upgraded in place");
    assert_eq!(
        r.range().unwrap().map(|x| x.0),
        Some(t0),
        "old samples kept"
    );
    let rows = r.refusals_of("/sys/fs/cgroup/memory/a", 0, i64::MAX);
    assert_eq!(
        rows.len(),
        1,
        "one row when the refusal starts, not one a tick: {rows:?}"
    );
    assert_eq!(rows[0].0, t0 + 12 * 200);
    let (m, _) = r.latest_at(t0 + 14 * 200, 600).unwrap();
    assert_eq!(m[&stat].tpl, 0, "absent then");
    assert_eq!(
        r.refusal(&stat, t0 + 14 * 200),
        Some((t0 + 12 * 200, "permission denied (test)".to_string()))
    );
    // `--at` then: the error, worded as not recorded.
    let at = memlens::units::format_time(t0 + 14 * 200);
    let (root, _) = memlens::history::root_at(Some(d.path()), &at).unwrap();
    let e = root.read(Path::new(&stat)).unwrap_err().to_string();
    assert_eq!(e, format!("{stat}: not recorded: permission denied (test)"));
    // And after it was read again, the sample is present.
    let (m, _) = r.latest_at(t0 + 17 * 200, 600).unwrap();
    assert_ne!(m[&stat].tpl, 0);
}

/// Takes out what legitimately differs between `--from CAPTURE` and `--at` of its recording
/// (README "What the store does not keep"):
/// - the top-level `capture` banner: it describes the capture archive, and `--at` reads none;
/// - every `cmdline` (set to null): the store does not keep command lines (other users'
///   secrets);
/// - problems about a denied read (`: permission denied`): a capture lists each unreadable
///   file as "unreadable when captured", the store (format 2) as "not recorded" (here the statfs answers `show` asks for tmpfs, which the store does not keep, and
///   PID 1's smaps_rollup, which the ptrace check refuses even to root in this sandbox).
fn strip_unkept(v: &mut serde_json::Value) {
    if let serde_json::Value::Object(m) = v {
        m.remove("capture");
    }
    strip_nested(v);
}

/// A finding drawn from lookups the kernel refused (statfs of PID 1's mounts is denied to
/// root on this host; which processes are looked up depends on what else runs) is left out
/// of both: the recorder keeps neither the refusals nor the tmpfs lookups of `show`, so
/// `--at` says "not found" where the capture says "lookup denied" (noted as left to do).
fn drop_denied_lookups(a: &mut serde_json::Value, b: &mut serde_json::Value) {
    let denied: Vec<serde_json::Value> = a["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| {
            f["evidence"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["value"] == "lookup denied")
        })
        .map(|f| f["id"].clone())
        .collect();
    for v in [a, b] {
        if let Some(fs) = v["findings"].as_array_mut() {
            fs.retain(|f| !denied.contains(&f["id"]));
        }
        // Nor does it keep the mount tables those lookups read: a process that starts while
        // `capture --all` runs has no mountinfo in the capture, a problem only the live
        // output can have.
        if let Some(ps) = v["problems"].as_array_mut() {
            ps.retain(|p| {
                !p.as_str()
                    .is_some_and(|p| p.starts_with("/proc/") && p.contains("/mountinfo: "))
            });
        }
    }
}

fn strip_nested(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match (k.as_str(), x) {
                    ("cmdline", x) => *x = serde_json::Value::Null,
                    ("problems", serde_json::Value::Array(p)) => {
                        p.retain(|e| {
                            !e.as_str()
                                .is_some_and(|e| e.contains(": permission denied"))
                        });
                        // A read the recorder met refused is kept as its reason, and `--at`
                        // lists it as not kept ("PATH: not recorded: WHY" where the live
                        // command said "PATH: WHY"). A cgroup that appears or goes while
                        // `capture --all` runs (this sandbox's own process cgroups do) is
                        // such a read: its files are "not in this capture".
                        for e in p.iter_mut() {
                            if let Some(s) = e.as_str().filter(|s| s.contains(": not recorded: ")) {
                                *e = s.replacen(": not recorded: ", ": ", 1).into();
                            }
                        }
                    }
                    (_, x) => strip_nested(x),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_nested),
        _ => {}
    }
}

/// The same files read live (here: a capture, so the moment is fixed) and through the store
/// render the same JSON in every command `--at` supports.
#[test]
fn at_renders_the_recorded_moment_like_the_live_command() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("cap.tar.gz");
    let cap_s = cap.to_str().unwrap();
    let st = d.path().join("store");
    let st_s = st.to_str().unwrap();
    let (code, _, err) = common::run(&["capture", "--all", "-o", cap_s]);
    assert_eq!(code, 0, "{err}");
    let out = std::process::Command::new(common::bin())
        .args([
            "--from",
            cap_s,
            "--store",
            st_s,
            "record",
            "--interval",
            "200ms",
        ])
        // Every process kept (the default keeps the 10 largest per cgroup).
        .args([
            "--fast-interval",
            "200ms",
            "--for",
            "700ms",
            "--no-oom",
            "--top",
            "100000",
        ])
        .env("MEMLENS_RECORD_TRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let t: i64 = err
        .lines()
        .filter_map(|l| l.strip_prefix("memlens-record: committed "))
        .next_back()
        .and_then(|t| t.parse().ok())
        .expect("a committed tick");
    let at = format!("@{}.{:03}", t / 1000, t % 1000);
    let mut live = common::json(&["--from", cap_s, "--all"]);
    let mut past = common::json(&["--store", st_s, "--at", &at, "--all"]);
    strip_unkept(&mut live);
    strip_unkept(&mut past);
    assert_eq!(live, past, "overview");
    let rows = live["cgroups"].as_array().unwrap();
    // The largest cgroup and the root.
    for path in [rows[0]["path"].as_str().unwrap(), "/"] {
        for cmd in ["show", "ps", "explain"] {
            let mut a = common::json(&["--from", cap_s, cmd, path]);
            let mut b = common::json(&["--store", st_s, "--at", &at, cmd, path]);
            strip_unkept(&mut a);
            strip_unkept(&mut b);
            drop_denied_lookups(&mut a, &mut b);
            assert!(a == b, "{cmd} {path} differs:\n{a:#}\n{b:#}");
        }
    }
    // export: OpenMetrics that Debian's promtool turns into TSDB blocks, every sample kept.
    let (code, om, err) = common::run(&["--store", st_s, "export", "--since", "100000d"]);
    assert_eq!(code, 0, "{err}");
    assert!(om.ends_with("# EOF\n"));
    let samples = om.lines().filter(|l| !l.starts_with('#')).count();
    assert!(samples > 0);
    // The host's series the recorder stores: meminfo, host PSI, the dying/memory cgroups.
    assert!(
        om.contains("memlens_host_meminfo_bytes{field=\"MemTotal\"} "),
        "no meminfo in the export"
    );
    if Path::new("/proc/pressure/memory").exists() {
        assert!(om.contains("\nmemlens_host_memory_pressure_some_seconds_total "));
        assert!(om.contains("# TYPE memlens_host_memory_pressure_full_seconds counter\n"));
    }
    let cgroups = match common::hier().version {
        memlens::model::Version::V1 => "\nmemlens_host_memory_cgroups ",
        memlens::model::Version::V2 => "\nmemlens_dying_cgroups ",
    };
    assert!(om.contains(cgroups), "no {cgroups:?} in the export");
    let omf = d.path().join("h.om");
    std::fs::write(&omf, &om).unwrap();
    match std::process::Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&omf)
        .arg(d.path().join("blocks"))
        .output()
    {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "promtool: {text}{}",
                String::from_utf8_lossy(&o.stderr)
            );
            // The block table's NUM SAMPLES column: every sample went in.
            let n: usize = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(4)?.parse::<usize>().ok())
                .sum();
            assert_eq!(n, samples, "{text}");
        }
        Err(e) if !common::in_ci() => {
            eprintln!("SKIPPED promtool check: {e} (apt-get install prometheus)")
        }
        Err(e) => panic!("promtool: {e}"),
    }
    // Outside the recorded range: "not recorded", never zeros.
    let (code, _, err) = common::run(&["--store", st_s, "--at", "2001-01-01T00:00:00Z", "--all"]);
    assert_eq!(code, 1);
    assert!(err.contains("was not recorded"), "{err}");
}

/// Rows of the store's `table` whose `col` contains `needle` (events: equals it).
fn rows(d: &Path, table: &str, col: &str, needle: &str) -> i64 {
    let c = rusqlite::Connection::open(d.join("memlens.db")).unwrap();
    c.query_row(
        &format!("SELECT count(*) FROM {table} WHERE {col} LIKE ?1"),
        [if table == "events" {
            needle.to_string()
        } else {
            format!("%{needle}%")
        }],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn gone_cgroups_are_pruned_and_kept_windows_released_by_oom_forget() {
    let d = tempfile::tempdir().unwrap();
    let now = memlens::store::now_ms();
    let mp = "/sys/fs/cgroup/memory";
    let ident = |t: i64, cg: &str| memlens::store::Event {
        t,
        kind: "identity".into(),
        cgroup: Some(cg.into()),
        data: serde_json::json!({"names": {"container": format!("ctr{cg}")}}),
    };
    {
        let mut w = Writer::open(d.path(), limits(5_000, u64::MAX, 1000)).unwrap();
        w.set_meta("mount_point", mp).unwrap();
        // a (killed: its window kept) and c (gone) for the first 20 s, b all along.
        for i in 0..300 {
            let t = now - 60_000 + i * 200;
            let mut files = Vec::new();
            if i < 100 {
                files.push((format!("{mp}/a/memory.stat"), file(i as u64)));
                files.push((format!("{mp}/c/memory.stat"), file(i as u64)));
            }
            // b last: the series with the largest id is never pruned (ids are not reused).
            files.push((format!("{mp}/b/memory.stat"), file(i as u64)));
            let ev = if i == 0 {
                vec![ident(t, "/a"), ident(t, "/c")]
            } else {
                vec![]
            };
            w.write(t, &files, &[], &ev).unwrap();
            if i == 90 {
                w.keep(&format!("{mp}/a"), t - 10_000, t + 1_000).unwrap();
            }
        }
        w.flush().unwrap();
    }
    // c is gone longer than retention: no chunk, no index row, no identity left.
    assert_eq!(rows(d.path(), "series", "path", "/memory/c/"), 0);
    assert_eq!(rows(d.path(), "groups", "name", "/memory/c"), 0);
    assert_eq!(rows(d.path(), "events", "cgroup", "/c"), 0);
    // a's kept window holds its samples, its index rows and its identity.
    assert_eq!(rows(d.path(), "series", "path", "/memory/a/"), 1);
    assert_eq!(rows(d.path(), "events", "cgroup", "/a"), 1);
    let r = Reader::open(d.path()).unwrap();
    let (s, _) = r
        .group_samples(&["/sys/fs/cgroup/memory/a"], 0, now)
        .unwrap();
    assert!(!s.is_empty());
    assert!(
        r.group_samples(&["/sys/fs/cgroup/memory/c"], 0, now)
            .unwrap()
            .0
            .is_empty()
    );
    drop(r);
    // `oom forget` lists the window; `oom forget 1` releases it; 2 does not exist.
    let store = d.path().to_str().unwrap();
    let (code, out, _) = common::run(&["--store", store, "oom", "forget"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/sys/fs/cgroup/memory/a"), "{out}");
    let (code, _, err) = common::run(&["--store", store, "oom", "forget", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no kept window 2"), "{err}");
    let (code, out, err) = common::run(&["--store", store, "oom", "forget", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Released window 1"), "{out}");
    let (_, out, _) = common::run(&["--store", store, "oom", "forget"]);
    assert!(out.contains("keeps no window"), "{out}");
    // The recorder's next compaction removes a like any gone cgroup.
    {
        let mut w = Writer::open(d.path(), limits(5_000, u64::MAX, 1000)).unwrap();
        w.write(
            memlens::store::now_ms(),
            &[(format!("{mp}/b/memory.stat"), file(1))],
            &[],
            &[],
        )
        .unwrap();
        w.flush().unwrap();
    }
    assert_eq!(rows(d.path(), "series", "path", "/memory/a/"), 0);
    assert_eq!(rows(d.path(), "events", "cgroup", "/a"), 0);
    assert_eq!(rows(d.path(), "series", "path", "/memory/b/"), 1);
}

/// `Reader::each_group` (columns, `recommend`'s one pass) reads exactly what
/// `group_samples` reads: compacted chunks and frames not yet compacted, a damaged chunk
/// skipped and named, a template change, an absent file, unchanged runs, a time window
/// cutting chunks, a series `keep` drops, and a group with no samples.
#[test]
fn each_group_columns_equal_group_samples() {
    let d = tempfile::tempdir().unwrap();
    let t0 = 1_800_000_000_000i64;
    let g = |c: &str| format!("/sys/fs/cgroup/memory/{c}");
    {
        let mut w = Writer::open(d.path(), limits(i64::MAX / 4, u64::MAX, 1000)).unwrap();
        for i in 0..40u64 {
            let t = t0 + i as i64 * 200;
            let limit = if i < 17 {
                "max\n".to_string()
            } else {
                format!("{}\n", 1000 + i / 9)
            };
            let mut files = vec![
                (format!("{}/memory.stat", g("a")), file(i / 3)),
                (
                    format!("{}/memory.limit_in_bytes", g("a")),
                    limit.into_bytes(),
                ),
                (format!("{}/memory.stat", g("b")), file(100 + i)),
                (format!("{}/memory.numa_stat", g("b")), file(i)),
            ];
            let mut absent = vec![];
            if i % 7 == 3 {
                absent.push((
                    format!("{}/memory.usage_in_bytes", g("a")),
                    "No such file or directory (os error 2)".to_string(),
                ));
            } else {
                files.push((
                    format!("{}/memory.usage_in_bytes", g("a")),
                    format!("{}\n", 4096 * (i / 5)).into_bytes(),
                ));
            }
            w.write(t, &files, &absent, &[]).unwrap();
        }
        // No flush: the last span stays in frames.
    }
    let c = rusqlite::Connection::open(d.path().join("memlens.db")).unwrap();
    let frames: i64 = c
        .query_row("SELECT count(*) FROM frames", [], |r| r.get(0))
        .unwrap();
    assert!(frames > 0, "the test needs frames not yet compacted");
    let (id, mut data): (i64, Vec<u8>) = c
        .query_row(
            "SELECT c.id, c.data FROM chunks c JOIN groups g ON g.id=c.grp WHERE g.name=?1 ORDER BY t0 LIMIT 1 OFFSET 2",
            [g("a")],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // Damage the rows of the chunk's last series, not its compression: the series before
    // it decode, and must not be kept (the whole chunk is skipped).
    let mut raw = zstd::decode_all(&data[..]).unwrap();
    let n = raw.len();
    for b in &mut raw[n - 3..] {
        *b = 0xff;
    }
    data = zstd::bulk::compress(&raw, 3).unwrap();
    c.execute(
        "UPDATE chunks SET data=?1 WHERE id=?2",
        rusqlite::params![data, id],
    )
    .unwrap();
    drop(c);
    let r = Reader::open(d.path()).unwrap();
    // The slow read through a second reader (each_group holds its read transaction).
    let r2 = Reader::open(d.path()).unwrap();
    let keep = |p: &str| !p.ends_with("numa_stat");
    for (since, until) in [
        (i64::MIN, i64::MAX),
        (t0 + 600, t0 + 6_000),
        (t0 + 7_000, t0 + 7_800),
    ] {
        let names = [g("a"), g("b"), g("none")];
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut seen = 0;
        r.each_group(&names, since, until, &keep, |name, (cols, problems)| {
            seen += 1;
            let (want, want_p) = r2.group_samples_where(&[name], since, until, keep).unwrap();
            assert_eq!(*problems, want_p, "{name} {since}..{until}");
            assert_eq!(
                cols.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{name} {since}..{until}"
            );
            for (p, ss) in &want {
                let got: Vec<(i64, u64, Vec<u64>)> = cols[p]
                    .iter()
                    .map(|s| (s.t, s.tpl, s.vals.to_vec()))
                    .collect();
                let want: Vec<(i64, u64, Vec<u64>)> =
                    ss.iter().map(|s| (s.t, s.tpl, s.vals.clone())).collect();
                assert_eq!(got, want, "{p} {since}..{until}");
            }
            if name == g("a") && since == i64::MIN {
                assert_eq!(problems.len(), 1, "{problems:?}");
            }
        })
        .unwrap();
        assert_eq!(seen, 3);
    }
}

/// `history`'s `usage_interval_peak`: the highest interval peak the recorder took since the
/// previous point, those of the usage-only reads between points included; a point without
/// one carries the recorder's reason.
#[test]
fn interval_peaks_fold_into_the_next_point_with_their_reason() {
    let d = tempfile::tempdir().unwrap();
    let t0 = 1_800_000_000_000i64;
    let dir = "/sys/fs/cgroup/memory/a";
    let f = |name: &str, text: &str| (format!("{dir}/{name}"), text.as_bytes().to_vec());
    let full = |peak: &str| {
        vec![
            f("memory.usage_in_bytes", "8388608\n"),
            f("memory.limit_in_bytes", "67108864\n"),
            f(
                "memory.stat",
                "cache 0\nrss 8388608\ninactive_file 0\nactive_file 0\n",
            ),
            f("memlens.interval_peak", peak),
        ]
    };
    {
        let mut w = Writer::open(d.path(), limits(i64::MAX / 4, u64::MAX, 1000)).unwrap();
        w.write(t0, &full("9000000\n"), &[], &[]).unwrap();
        // A usage-only read between two points caught a spike.
        w.write(
            t0 + 1000,
            &[f("memlens.interval_peak", "41943040\n")],
            &[],
            &[],
        )
        .unwrap();
        w.write(t0 + 2000, &full("8400000\n"), &[], &[]).unwrap();
        w.write(
            t0 + 3000,
            &full("unavailable: reading or resetting memory.peak failed (test)\n"),
            &[],
            &[],
        )
        .unwrap();
        w.flush().unwrap();
    }
    let r = Reader::open(d.path()).unwrap();
    let h = memlens::model::Hierarchy {
        version: memlens::model::Version::V1,
        mount_point: "/sys/fs/cgroup/memory".into(),
        mount_root: "/".into(),
    };
    let (pts, problems) = memlens::history::points(&r, &h, "/a", t0 - 1, t0 + 4000).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let got: Vec<(i64, Option<u64>)> = pts
        .iter()
        .map(|p| (p.t - t0, p.get("usage_interval_peak")))
        .collect();
    assert_eq!(
        got,
        vec![(0, Some(9_000_000)), (2000, Some(41_943_040)), (3000, None)]
    );
    assert_eq!(
        pts[2].interval_peak_why.as_deref(),
        Some("reading or resetting memory.peak failed (test)")
    );
    let src = memlens::history::PeakSource::of(&pts);
    assert_eq!(
        (src.source, src.exact_points, src.sampled_points),
        ("partly exact", 2, 1)
    );
}

/// A window kept around an OOM kill reaches past the span being written: the chunks
/// compacted after it was added are marked by that compaction (the marking looks at the new
/// chunks only), and they alone outlive retention with the window's samples.
#[test]
fn a_kept_window_marks_the_chunks_compacted_after_it() {
    let d = tempfile::tempdir().unwrap();
    let now = memlens::store::now_ms();
    let mp = "/sys/fs/cgroup/memory";
    let t = |i: i64| now - 60_000 + i * 200;
    {
        let mut w = Writer::open(d.path(), limits(5_000, u64::MAX, 1000)).unwrap();
        w.set_meta("mount_point", mp).unwrap();
        for i in 0..300 {
            let files = [
                (format!("{mp}/a/memory.stat"), file(i as u64)),
                (format!("{mp}/b/memory.stat"), file(i as u64)),
            ];
            w.write(t(i), &files, &[], &[]).unwrap();
            if i == 50 {
                // From this tick to 5 s ahead: five spans not written yet.
                w.keep(&format!("{mp}/a"), t(50), t(75)).unwrap();
            }
        }
        w.flush().unwrap();
    }
    let r = Reader::open(d.path()).unwrap();
    let (a, _) = r.group_samples(&[&format!("{mp}/a")], 0, now).unwrap();
    let a = &a[&format!("{mp}/a/memory.stat")];
    // The window's 26 samples are there (in chunks that may begin a little before it),
    // nothing between the window's last chunk and retention's cut.
    let inside = a.iter().filter(|s| s.t >= t(50) && s.t <= t(75)).count();
    assert_eq!(
        inside,
        26,
        "{:?}",
        a.iter().map(|s| s.t - now).collect::<Vec<_>>()
    );
    assert!(
        !a.iter().any(|s| s.t > t(75) + 1_000 && s.t < now - 7_000),
        "a sample outside the kept window outlived retention"
    );
    // b has no window: retention alone.
    let (b, _) = r.group_samples(&[&format!("{mp}/b")], 0, now).unwrap();
    let b = &b[&format!("{mp}/b/memory.stat")];
    assert!(
        b.iter().all(|s| s.t >= now - 7_000),
        "b kept past retention"
    );
}
