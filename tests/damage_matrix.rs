//! The damage matrix (issue 19): every kind of damage on every file memlens reads, through
//! `--from` on captures generated from the fixture captures (tests/fixtures/captures: a v2
//! 6.1 VM and a v1 6.18 host). For each case: no panic, no hang, the whole report (`show`,
//! findings, `explain`, the overview, `zombies`, human and JSON) still produced, no raw
//! control character in human output, and the damage either named as a problem (with the
//! file, and its line where the file has lines) or without effect on any output: damage is
//! never taken silently for data.
//!
//! Runs memlens in-process (the library calls `memlens --from` makes) on two threads, each
//! with its own copy of the captures, restoring each file after its case: 1,105 cases in
//! about 15 s of a debug build instead of a process per case (DM_TIMES=1 prints each case's
//! time). A sample also goes through the binary.

mod common;

use memlens::render::{self, Style};
use memlens::sys::Root;
use memlens::{overview, report, rules, target, zombies};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BASES: &[(&str, &str)] = &[
    (
        "tests/fixtures/captures/v2-debian-6.1/v2-capture.tar.gz",
        "memlens-test-capture",
    ),
    (
        "tests/fixtures/captures/v1-host-6.18/v1-capture.tar.gz",
        "memlens-test-v1capture",
    ),
];

/// One kind of damage: the new contents (`None`: the file is deleted; `Some(Err(()))`: the
/// file becomes a directory).
type Damage = fn(&[u8]) -> Option<Result<Vec<u8>, ()>>;

fn map_digits(b: &[u8], f: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let j = b[i..]
                .iter()
                .position(|c| !c.is_ascii_digit())
                .map_or(b.len(), |p| i + p);
            out.extend(f(&b[i..j]));
            i = j;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn per_line(b: &[u8], f: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for l in b.split_inclusive(|c| *c == b'\n') {
        out.extend(f(l));
    }
    out
}

fn lcg(seed: u64) -> impl FnMut() -> u8 {
    let mut x = seed;
    move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as u8
    }
}

const DAMAGES: &[(&str, Damage)] = &[
    // Cut mid-line: a cut that lands exactly after a newline leaves a shorter valid file,
    // which no reader can tell from one the kernel wrote.
    ("truncated", |b| {
        let mut n = b.len() / 2;
        while n > 0 && n < b.len() && b[n - 1] == b'\n' {
            n += 1;
        }
        Some(Ok(b[..n].to_vec()))
    }),
    ("empty", |_| Some(Ok(Vec::new()))),
    ("garbage", |b| {
        Some(Ok(per_line(b, |l| {
            let mut v = b"#%@! garbage ~~".to_vec();
            if l.ends_with(b"\n") {
                v.push(b'\n');
            }
            v
        })))
    }),
    ("non-utf8", |b| {
        Some(Ok(per_line(b, |l| {
            let mut v = l.to_vec();
            v.insert(l.len() / 2, 0xff);
            v.insert(l.len() / 2, 0xc3);
            v
        })))
    }),
    ("huge-numbers", |b| {
        Some(Ok(map_digits(b, |_| b"18446744073709551615".to_vec())))
    }),
    ("overflow", |b| {
        Some(Ok(map_digits(b, |_| b"999999999999999999999999".to_vec())))
    }),
    ("negative", |b| {
        Some(Ok(map_digits(b, |d| {
            let mut v = b"-".to_vec();
            v.extend(d);
            v
        })))
    }),
    ("duplicate-lines", |b| {
        Some(Ok(per_line(b, |l| {
            let mut v = l.to_vec();
            let mut d = map_digits(l, |x| {
                let mut y = x.to_vec();
                y.push(b'7');
                y
            });
            if !d.ends_with(b"\n") {
                d.insert(0, b'\n');
            }
            v.extend(d);
            v
        })))
    }),
    ("no-final-newline", |b| {
        Some(Ok(b.strip_suffix(b"\n").unwrap_or(b).to_vec()))
    }),
    ("nul-bytes", |b| {
        Some(Ok(per_line(b, |l| {
            let mut v = l.to_vec();
            v.insert(l.len() / 2, 0);
            v
        })))
    }),
    ("long-line", |b| {
        let mut v = b.to_vec();
        // 256 KiB: far beyond any kernel line (a 1 MiB line costs 4 times as much in a
        // debug build and finds nothing more).
        v.extend(std::iter::repeat_n(b'a', 256 << 10));
        v.push(b'\n');
        Some(Ok(v))
    }),
    ("crlf", |b| {
        Some(Ok(per_line(b, |l| match l.strip_suffix(b"\n") {
            Some(x) => [x, b"\r\n"].concat(),
            None => l.to_vec(),
        })))
    }),
    ("deleted", |_| None),
    ("bit-flips", |b| {
        let mut v = b.to_vec();
        let mut r = lcg(v.len() as u64);
        for _ in 0..(v.len() / 16).max(1) {
            if v.is_empty() {
                break;
            }
            // The high bit: bit rot that a parser can see (a flipped low bit can turn a
            // digit into another digit, which no reader could tell from data).
            let i = (usize::from(r()) << 8 | usize::from(r())) % v.len();
            v[i] ^= 0x80;
        }
        Some(Ok(v))
    }),
    ("whitespace", |_| Some(Ok(b" \t \n\n  \t\n".to_vec()))),
    ("binary", |b| {
        let mut r = lcg(7);
        Some(Ok((0..b.len().max(64)).map(|_| r()).collect()))
    }),
    ("directory", |_| Some(Err(()))),
];

/// Files whose contents memlens treats as free text (any bytes are valid): damage to them
/// may change the output without being a problem.
fn free_text(sys: &str) -> bool {
    sys.ends_with("/cmdline") || sys.ends_with("osrelease")
}

/// Files with lines, whose problems must name the line for line-level damage.
fn has_lines(sys: &str) -> bool {
    [
        "memory.stat",
        "/status",
        "/smaps_rollup",
        "/proc/meminfo",
        "mountinfo",
    ]
    .iter()
    .any(|s| sys.ends_with(s))
}

const LINE_DAMAGE: &[&str] = &["garbage", "huge-numbers", "negative", "duplicate-lines"];

/// Everything `--from` can print about a capture, or why it could not.
#[derive(Debug)]
struct Outcome {
    /// The JSON of show (with findings), overview and zombies, or the error.
    json: Result<String, String>,
    human: String,
    problems: Vec<String>,
}

fn analyse(dir: &Path, target_name: &str) -> Outcome {
    let root = match Root::from_capture(dir) {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                json: Err(format!("cannot open capture: {e}")),
                human: String::new(),
                problems: vec![],
            };
        }
    };
    let h = match report::hierarchy(&root) {
        Ok(h) => h,
        Err(e) => {
            return Outcome {
                json: Err(e.to_string()),
                human: String::new(),
                problems: vec![],
            };
        }
    };
    let st = Style { color: false };
    let mut human = String::new();
    let mut problems = Vec::new();
    let mut json = serde_json::Map::new();
    let o = overview::collect(&root, &h, true);
    human.push_str(&render::human::overview(&o, st));
    problems.extend(o.host.host.problems.iter().cloned());
    problems.extend(o.rows.iter().flat_map(|r| r.problems.iter().cloned()));
    json.insert("overview".into(), render::json::overview(&o));
    let z = zombies::collect(&root, &h);
    human.push_str(&render::human::zombies(&z, None, st));
    problems.extend(z.problems.iter().cloned());
    json.insert("zombies".into(), serde_json::json!(z));
    let shown = target::resolve(&root, &h, target_name)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            report::build(&root, &h, &p, report::Options::default()).map_err(|e| e.to_string())
        });
    match shown {
        Ok(r) => {
            let f = rules::evaluate(&r, None);
            human.push_str(&render::human::show(&r, st));
            human.push_str(&render::human::findings(&f, st));
            human.push_str(&render::human::explain(&r, &f, st));
            human.push_str(&render::human::ps(&r, st));
            problems.extend(r.problems());
            let mut v = render::json::show(&r);
            v["findings"] = serde_json::json!(f);
            json.insert("show".into(), v);
        }
        Err(e) => {
            json.insert("show_error".into(), serde_json::json!(e));
            problems.push(e);
        }
    }
    Outcome {
        json: Ok(serde_json::Value::Object(json).to_string()),
        human,
        problems,
    }
}

fn extract(archive: &str, into: &Path) {
    let f = std::fs::File::open(archive).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(f))
        .unpack(into)
        .unwrap();
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

struct Case {
    base: usize,
    file: PathBuf, // relative to the capture
    damage: usize,
}

/// Runs one case in `dir` (a private copy of base capture), restoring the file afterwards.
fn run_case(dir: &Path, target_name: &str, c: &Case) -> Outcome {
    let p = dir.join(&c.file);
    let orig = std::fs::read(&p).unwrap();
    match (DAMAGES[c.damage].1)(&orig) {
        None => std::fs::remove_file(&p).unwrap(),
        Some(Err(())) => {
            std::fs::remove_file(&p).unwrap();
            std::fs::create_dir(&p).unwrap();
        }
        Some(Ok(b)) => std::fs::write(&p, b).unwrap(),
    }
    let out = std::panic::catch_unwind(|| analyse(dir, target_name));
    if p.is_dir() {
        std::fs::remove_dir(&p).unwrap();
    }
    std::fs::write(&p, &orig).unwrap();
    match out {
        Ok(o) => o,
        Err(e) => Outcome {
            json: Err(format!(
                "PANIC: {}",
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
            human: String::new(),
            problems: vec![],
        },
    }
}

/// What is wrong with a case's outcome (empty: fine).
fn judge(c: &Case, sys: &str, base: &Outcome, o: &Outcome) -> Vec<String> {
    let mut bad = Vec::new();
    let damage = DAMAGES[c.damage].0;
    if let Err(e) = &o.json {
        if e.starts_with("PANIC") {
            return vec![e.clone()];
        }
        // No report possible: only when the file that locates the hierarchy is damaged,
        // and the message says which.
        let structural = sys.ends_with("mountinfo") || sys.ends_with("cgroup.controllers");
        if !(structural && (e.contains(sys) || e.contains("no memory cgroup controller"))) {
            bad.push(format!("no report: {e}"));
        }
        return bad;
    }
    if let Some(c) = o.human.chars().find(|c| c.is_control() && *c != '\n') {
        bad.push(format!("raw control character {c:?} in human output"));
    }
    if !o.human.contains("BREAKDOWN") && !sys.contains(".memlens-entries") {
        bad.push("the show report was not printed".into());
    }
    let named: Vec<&String> = o
        .problems
        .iter()
        .filter(|p| {
            p.contains(sys)
                || (sys.ends_with("memlens-capture.json") && p.contains("memlens-capture.json"))
        })
        .collect();
    let unchanged = o.json == base.json && o.human == base.human;
    // A deleted file is named as lost by the capture's file count; an empty cgroup.procs is
    // what the kernel prints for a cgroup without processes.
    let lost = damage == "deleted" && o.problems.iter().any(|p| p.contains("were lost"));
    let legit = damage == "empty" && sys.ends_with("cgroup.procs");
    if named.is_empty() && !unchanged && !free_text(sys) && !lost && !legit {
        bad.push("damage changed the output but no problem names the file".into());
    }
    if has_lines(sys)
        && LINE_DAMAGE.contains(&damage)
        && !named.is_empty()
        && !named.iter().any(|p| p.contains("line "))
    {
        bad.push(format!(
            "the problem does not name the line: {:?}",
            named[0]
        ));
    }
    bad
}

#[test]
fn every_damage_on_every_file_is_named_or_harmless() {
    let t0 = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let workers = 2;
    let mut cases = Vec::new();
    let mut baselines = Vec::new();
    for (bi, (archive, target_name)) in BASES.iter().enumerate() {
        let pristine = work.path().join(format!("pristine-{bi}"));
        extract(archive, &pristine);
        baselines.push(analyse(&pristine, target_name));
        assert!(
            baselines[bi].json.is_ok() && baselines[bi].human.contains("BREAKDOWN"),
            "base capture {archive} does not analyse: {:?}",
            baselines[bi].json
        );
        for w in 0..workers {
            extract(archive, &work.path().join(format!("w{w}-{bi}")));
        }
        for f in files(&pristine) {
            let rel = f.strip_prefix(&pristine).unwrap().to_path_buf();
            for d in 0..DAMAGES.len() {
                cases.push(Case {
                    base: bi,
                    file: rel.clone(),
                    damage: d,
                });
            }
        }
    }
    let n = cases.len();
    let (tx, rx) = mpsc::channel::<(usize, Vec<String>)>();
    let cases = std::sync::Arc::new(cases);
    let baselines = std::sync::Arc::new(baselines);
    let mut handles = Vec::new();
    for w in 0..workers {
        let (tx, cases, baselines) = (tx.clone(), cases.clone(), baselines.clone());
        let dirs: Vec<PathBuf> = (0..BASES.len())
            .map(|bi| work.path().join(format!("w{w}-{bi}")))
            .collect();
        handles.push(std::thread::spawn(move || {
            for (i, c) in cases.iter().enumerate().filter(|(i, _)| i % workers == w) {
                let t = Instant::now();
                let o = run_case(&dirs[c.base], BASES[c.base].1, c);
                if std::env::var_os("DM_TIMES").is_some() {
                    eprintln!(
                        "TIME {} {} {}",
                        DAMAGES[c.damage].0,
                        c.file.display(),
                        t.elapsed().as_millis()
                    );
                }
                let sys = format!("/{}", c.file.display());
                let v = judge(c, &sys, &baselines[c.base], &o);
                if tx.send((i, v)).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    // Quiet panics of the cases (caught and reported as failures).
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut done = 0;
    while done < n {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((i, v)) => {
                done += 1;
                if !v.is_empty() {
                    let c = &cases[i];
                    failures.push(format!(
                        "{} /{} [{}]: {}",
                        if c.base == 0 { "v2" } else { "v1" },
                        c.file.display(),
                        DAMAGES[c.damage].0,
                        v.join("; ")
                    ));
                }
            }
            Err(_) => {
                failures.push(format!(
                    "a case hung (no result in 30 s after {done} of {n})"
                ));
                break;
            }
        }
    }
    let _ = std::panic::take_hook();
    for h in handles {
        let _ = h.join();
    }
    eprintln!(
        "damage matrix: {n} cases ({} kinds of damage on {} files of {} captures) in {:.1} s, {} failures",
        DAMAGES.len(),
        n / DAMAGES.len(),
        BASES.len(),
        t0.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A sample through the binary: exit codes, and the problem on stdout.
#[test]
fn a_sample_through_the_binary() {
    let d = tempfile::tempdir().unwrap();
    extract(BASES[0].0, d.path());
    let stat = d
        .path()
        .join("sys/fs/cgroup/memlens-test-capture/memory.stat");
    let t = std::fs::read_to_string(&stat).unwrap();
    std::fs::write(&stat, t.replacen("anon ", "anon -", 1)).unwrap();
    let dir = d.path().display().to_string();
    let (code, out, err) = common::run(&["show", BASES[0].1, "--from", &dir]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("BREAKDOWN"), "{out}");
    assert!(
        out.contains("/sys/fs/cgroup/memlens-test-capture/memory.stat: line 1"),
        "{out}"
    );
}
