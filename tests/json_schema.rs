//! Every command's `--json` (and the serve API's) against docs/schema/memlens.schema.json,
//! on the real kernel with a memcg of ours holding memory. Validated with Python's
//! `jsonschema` (Debian python3-jsonschema, or pip): the validator the deploy tests already
//! use, rather than a heavy Rust dependency built for one test.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

fn schema_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema/memlens.schema.json")
}

fn have_validator() -> bool {
    Command::new("python3")
        .args(["-c", "import jsonschema"])
        .status()
        .is_ok_and(|s| s.success())
}

/// PSI averages carry the kernel's two decimals, not f32 noise (JSON Schema's multipleOf
/// cannot say that of floats).
fn psi_two_decimals(name: &str, text: &str) {
    for key in ["\"avg10\": ", "\"avg60\": ", "\"avg300\": "] {
        for (i, _) in text.match_indices(key) {
            let v: String = text[i + key.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let decimals = v.split_once('.').map_or(0, |(_, d)| d.len());
            assert!(decimals <= 2, "{name}: {key}{v}");
        }
    }
}

/// Validates each (name, JSON text) against the schema file, and the rules it states for
/// every report (DEVELOPERS.md "JSON schema"): a size ends in `_bytes` (no bare `bytes`) and
/// is an integer or null, and a field has one type (per `kind`, across every document of
/// that kind: null aside, integers and decimals both count as numbers). Panics with every
/// error found.
fn validate(docs: &[(String, String)]) {
    for (name, text) in docs {
        psi_two_decimals(name, text);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let mut files = Vec::new();
    for (i, (name, text)) in docs.iter().enumerate() {
        let f = dir.path().join(format!("{i}.json"));
        std::fs::write(&f, text).expect("write");
        files.push((name.clone(), f));
    }
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
bad = 0
args = sys.argv[2:]
types = {}
def walk(x, p, kind, name):
    global bad
    if isinstance(x, dict):
        for k, y in x.items():
            q = p + "." + k
            if k == "bytes":
                bad += 1
                print(f"{name}: {q}: a size is named *_bytes")
            if k.endswith("_bytes") and not (y is None or (isinstance(y, int) and not isinstance(y, bool))):
                bad += 1
                print(f"{name}: {q}: a *_bytes field is an integer or null: {json.dumps(y)[:80]}")
            walk(y, q, kind, name)
    elif isinstance(x, list):
        for y in x:
            walk(y, p + "[]", kind, name)
    if x is None:
        return
    t = {bool: "boolean", int: "number", float: "number", str: "string", dict: "object", list: "array"}[type(x)]
    types.setdefault((kind, p), {}).setdefault(t, name)
for name, path in zip(args[0::2], args[1::2]):
    try:
        doc = json.load(open(path))
    except ValueError as e:
        bad += 1
        print(f"{name}: not JSON: {e}: {open(path).read()[:300]!r}")
        continue
    for e in v.iter_errors(doc):
        bad += 1
        print(f"{name}: at {list(e.absolute_path)}: {e.message[:300]}")
    walk(doc, "", doc.get("kind") if isinstance(doc, dict) else None, name)
for (kind, p), ts in types.items():
    if len(ts) > 1:
        bad += 1
        print(f"kind {kind}: {p or '.'} has several types: " + ", ".join(f"{t} (in {n})" for t, n in ts.items()))
sys.exit(1 if bad else 0)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(schema_path())
        .args(
            files
                .iter()
                .flat_map(|(n, f)| [n.clone(), f.display().to_string()]),
        )
        .stderr(Stdio::piped())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "JSON does not match docs/schema/memlens.schema.json:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn j(args: &[&str]) -> (String, String) {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = run(&a);
    assert!(code == 0 || args[0] == "lab", "memlens {a:?}: {err}");
    (args.join(" "), out)
}

#[test]
fn every_commands_json_matches_the_schema() {
    if !have_validator() {
        skip(
            "json_schema::every_commands_json_matches_the_schema",
            "python3 jsonschema is not installed (apt-get install python3-jsonschema; .ci/run does)",
        );
        return;
    }
    let cg = cgroup("schema");
    let child = cg.create_child("leaf").expect("child");
    let _w = Workload::start(&child, &["anon=8M", "pshm=memlens-test-schema:4M"]);
    let empty = cgroup("schema-empty");
    let d = tempfile::tempdir().expect("tmp");
    let cap = d.path().join("c.tar.gz").display().to_string();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/oom/ubuntu-4.15-docker.log")
        .display()
        .to_string();
    // A 20 MiB file the cgroup caches (cache, cache --drop, kernel).
    let file = disk_dir().join(format!("memlens-test-schema-{}", std::process::id()));
    let fs = file.display().to_string();
    let _file = Remove(file.clone());
    let _w2 = Workload::start(&child, &[&format!("write={fs}:20M"), &format!("open={fs}")]);
    let (code, _, err) = run(&["capture", cg.path(), "-o", &cap]);
    assert_eq!(code, 0, "{err}");
    let store = tempfile::tempdir().expect("tmp");
    let st = store.path().display().to_string();
    record_briefly(&st, &cap);
    let mut docs = vec![
        j(&[]),
        j(&["--all"]),
        j(&["show", cg.path()]),
        j(&["show", cg.path(), "-r"]),
        j(&["show", "/"]),
        j(&["explain", child.path()]),
        j(&["explain", child.path(), "--sample", "100ms"]),
        j(&["ps", child.path()]),
        j(&["ps", "/"]),
        j(&["zombies"]),
        j(&["zombies", "--sample", "100ms"]),
        j(&["zombies", "--reclaim", empty.path()]),
        j(&["capture", cg.path(), "-o", &cap]),
        j(&["show", child.path(), "--from", &cap]),
        j(&["show", empty.path(), "--from", &cap]),
        j(&["--all", "--from", &cap]),
        j(&["zombies", "--from", &cap]),
        j(&["oom", "--from", &cap]),
        j(&["oom", "x-no-such-target", "--file", &fixture]),
        j(&["oom", "--file", &fixture]),
        j(&["oom", "show", "1", "--file", &fixture]),
        j(&["lab", "--list"]),
        j(&["node"]),
        j(&["node", "--sample", "100ms"]),
        j(&["kernel"]),
        j(&["kernel", cg.path()]),
        j(&["kernel", child.path(), "--sample", "100ms"]),
        j(&["kernel", "/"]),
        j(&["cache", cg.path()]),
        j(&[
            "cache",
            child.path(),
            "--path",
            &disk_dir().display().to_string(),
            "--max-time",
            "2s",
        ]),
        j(&["zombies", "--why", "--max-time", "2s"]),
        j(&["--store", &st, "history", cg.path(), "--since", "1m"]),
        j(&["--store", &st, "history", child.path(), "--since", "1m"]),
        j(&["--store", &st, "recommend"]),
        j(&[
            "--store",
            &st,
            "recommend",
            child.path(),
            "--check-limit",
            "64M",
        ]),
        j(&["cache", "--drop", &fs]),
        j(&[
            "lab",
            "untouched-malloc",
            "--dir",
            &disk_dir().display().to_string(),
        ]),
    ];
    // `lab --compare` of two saved lab reports (here the same one twice).
    let lab_json = docs.last().expect("the lab report").1.clone();
    let labs = tempfile::tempdir().unwrap();
    let (la, lb) = (labs.path().join("a.json"), labs.path().join("b.json"));
    std::fs::write(&la, &lab_json).unwrap();
    std::fs::write(&lb, &lab_json).unwrap();
    docs.push(j(&[
        "lab",
        "--compare",
        la.to_str().unwrap(),
        lb.to_str().unwrap(),
    ]));
    // Every OOM log fixture (each format and kernel: times with and without zones, group
    // kills, v1 kmem/memsw lines, cut reports), the list and each kill.
    let oom_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oom");
    let mut logs: Vec<_> = std::fs::read_dir(&oom_dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_none_or(|x| x != "md"))
        .collect();
    logs.sort();
    for l in &logs {
        let l = l.display().to_string();
        let d = j(&["oom", "--file", &l]);
        let v: serde_json::Value = serde_json::from_str(&d.1).expect("oom JSON");
        for e in v["events"].as_array().into_iter().flatten().take(3) {
            let n = e["number"].to_string();
            docs.push(j(&["oom", "show", &n, "--file", &l]));
        }
        docs.push(d);
    }
    // The capture fixtures from real kernels (v2 6.1, v1 6.18): the v2 shapes on this v1 host.
    for (file, target) in [
        (
            "tests/fixtures/captures/v2-debian-6.1/v2-capture.tar.gz",
            "/memlens-test-capture",
        ),
        (
            "tests/fixtures/captures/v1-host-6.18/v1-capture.tar.gz",
            "/memlens-test-v1capture",
        ),
    ] {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let f = f.display().to_string();
        for args in [
            vec!["show", target],
            vec!["ps", target],
            vec!["explain", target],
            vec!["kernel", target],
            vec!["--all"],
            vec!["zombies"],
            vec!["node"],
        ] {
            let mut a = args.clone();
            a.extend(["--from", &f]);
            docs.push(j(&a));
        }
    }
    // `run` prints its report on stderr; so does --find-limit, after its trial lines.
    let (code, _, err) = run(&["run", "--json", "--limit", "64M", "--", "true"]);
    assert_eq!(code, 0);
    docs.push(("run (stderr)".into(), err));
    // run --probe: the report with its probe (v1 here: its own memcg's limit, put back).
    let (code, _, err) = run(&[
        "run", "--probe", "--json", "--limit", "64M", "--", "sleep", "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: String = err
        .lines()
        .skip_while(|l| !l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(report.contains("\"probe\""), "{err}");
    docs.push(("run --probe (stderr)".into(), report));
    let (code, _, err) = run(&["run", "--find-limit", "--json", "--", "true"]);
    assert_eq!(code, 0, "{err}");
    let report: String = err
        .lines()
        .skip_while(|l| !l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    docs.push(("run --find-limit (stderr)".into(), report));
    // The live kernel log, when this machine lets us read it.
    let (code, out, _) = run(&["oom", "--json"]);
    if code == 0 {
        docs.push(("oom".into(), out));
    }
    // `oom --follow --json`: the line of a real OOM kill in a 32 MiB memcg of ours.
    docs.push(("oom --follow".into(), follow_one_kill()));
    // The serve API: the same objects as the commands.
    let (_serve, port) = start_serve("1s", &[]);
    for p in [
        "/api/v1/overview".to_string(),
        "/api/v1/overview?all=1".to_string(),
        format!("/api/v1/cgroup?path={}", child.path()),
    ] {
        let (code, body) = http_get(port, &p, None).expect("GET");
        assert_eq!(code, 200, "{p}: {body}");
        docs.push((format!("GET {p}"), body));
    }
    validate(&docs);
}

/// Removes a file on drop.
struct Remove(std::path::PathBuf);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `memlens record` of the capture `cap` at 200 ms into `store` until it committed 5 ticks
/// (for history, recommend). From a capture: a walk of the live node can take minutes when
/// other tests hold thousands of cgroups, and SIGINT is only seen between ticks.
fn record_briefly(store: &str, cap: &str) {
    use std::io::BufRead;
    let mut child = Command::new(bin())
        .args([
            "--store",
            store,
            "--from",
            cap,
            "record",
            "--interval",
            "200ms",
        ])
        .args(["--fast-interval", "200ms", "--no-oom"])
        .env("MEMLENS_RECORD_TRACE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start memlens record");
    let err = child.stderr.take().expect("stderr");
    let mut ticks = 0;
    for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
        if line.starts_with("memlens-record: committed ") {
            ticks += 1;
            if ticks == 5 {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            }
        }
    }
    let st = child.wait().expect("wait record");
    assert!(ticks >= 5 && st.success(), "record: {st}, {ticks} ticks");
}

/// `memlens oom --follow --json --count 1` while a workload in a 32 MiB memcg of ours grows
/// until the kernel kills it: the one line printed.
fn follow_one_kill() -> String {
    use std::io::{BufRead, Read};
    let mut f = Command::new(bin())
        .args(["oom", "--follow", "--json", "--count", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oom --follow");
    let mut err = std::io::BufReader::new(f.stderr.take().expect("stderr"));
    let mut banner = String::new();
    err.read_line(&mut banner).expect("banner");
    assert!(banner.contains("following OOM kills"), "{banner}");
    let cg = cgroup("schema-oom");
    limit(&cg, 32 << 20);
    let mut cmd = Command::new(bin());
    cmd.args(["__workload", "grow=128M"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cg.join_before_exec(&mut cmd).expect("join");
    let mut w = cmd.spawn().expect("spawn workload");
    let _ = w.wait();
    let mut out = String::new();
    f.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    let st = f.wait().expect("wait follow");
    assert!(st.success(), "oom --follow: {st}: {out}");
    out
}
