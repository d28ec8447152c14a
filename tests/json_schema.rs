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

/// Validates each (name, JSON text); panics with every error found.
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
    // `run` prints its report on stderr.
    let (code, _, err) = run(&["run", "--json", "--limit", "64M", "--", "true"]);
    assert_eq!(code, 0);
    docs.push(("run (stderr)".into(), err));
    // The live kernel log, when this machine lets us read it.
    let (code, out, _) = run(&["oom", "--json"]);
    if code == 0 {
        docs.push(("oom".into(), out));
    }
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
