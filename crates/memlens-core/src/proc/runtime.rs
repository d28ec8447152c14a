//! Kernel source: the heap settings of language runtimes, from /proc/PID/cmdline and
//! /proc/PID/environ (which needs CAP_SYS_PTRACE for other users' processes).
//!
//! Secrets: only the *names* of the environment are looked at, and only the values of an
//! allow-list of heap variables are kept (GOMEMLIMIT, GOGC, DOTNET_GCHeapHardLimit...). From
//! JVM and Node option variables (JAVA_TOOL_OPTIONS, NODE_OPTIONS), which may carry
//! `-Dpassword=...`, only the heap tokens are kept. environ is never read while recording a
//! capture ([`Root::is_recording`]).

use crate::sys::{ReadError, Root};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A process of a known runtime and its heap settings as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuntimeProcess {
    /// PID.
    pub pid: i32,
    /// `jvm`, `go`, `node`, `dotnet`.
    pub runtime: &'static str,
    /// The heap-related settings in the order the runtime applies them, each as
    /// `where: token` (`cmdline: -Xmx512m`, `env: GOMEMLIMIT=400MiB`).
    pub settings: Vec<(String, String)>,
    /// The runtime's version when the node says it (JVM: JAVA_VERSION of its `release`).
    pub version: Option<String>,
    /// Files that could not be read (environ without CAP_SYS_PTRACE...).
    pub problems: Vec<String>,
}

/// Heap variables whose values are kept.
const ENV_KEEP: &[&str] = &[
    "GOMEMLIMIT",
    "GOGC",
    "DOTNET_GCHeapHardLimit",
    "DOTNET_GCHeapHardLimitPercent",
    "COMPlus_GCHeapHardLimit",
    "COMPlus_GCHeapHardLimitPercent",
];
/// Option variables from which only heap tokens are kept.
const JVM_ENV: &[&str] = &["JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"];
const JVM_ENV_LAST: &str = "_JAVA_OPTIONS";

fn jvm_token(t: &str) -> bool {
    t.starts_with("-Xmx")
        || t.starts_with("-XX:MaxHeapSize=")
        || t.starts_with("-XX:MaxRAMPercentage=")
        || t.starts_with("-XX:MaxRAMFraction=")
        || t.starts_with("-XX:MaxRAM=")
        || t == "-XX:-UseContainerSupport"
        || t == "-XX:+UseContainerSupport"
}

fn node_token(t: &str) -> bool {
    t.starts_with("--max-old-space-size=") || t.starts_with("--max_old_space_size=")
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Reads `pid`'s runtime settings; `None` when it is not a JVM, Go, Node.js or .NET process
/// (as far as its command, environment names and executable tell) or is gone.
pub fn read(root: &Root, pid: i32) -> Option<RuntimeProcess> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let args: Vec<String> = match root.read_bytes(&dir.join("cmdline")) {
        Ok(c) => c
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
        Err(_) => return None,
    };
    let mut problems = Vec::new();
    let env: Vec<(String, String)> = if root.is_recording() {
        Vec::new()
    } else {
        match root.read_bytes(&dir.join("environ")) {
            Ok(e) => e
                .split(|b| *b == 0)
                .filter_map(|kv| {
                    let s = String::from_utf8_lossy(kv);
                    let (k, v) = s.split_once('=')?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect(),
            Err(ReadError::Missing { .. }) => return None,
            Err(e) => {
                problems.push(e.to_string());
                Vec::new()
            }
        }
    };
    let exe = root
        .real_path(&dir.join("exe"))
        .and_then(|p| std::fs::read_link(p).ok());
    let exe_name = exe
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let arg0 = args
        .first()
        .map(|a| base(a).to_string())
        .unwrap_or_default();
    let named = |n: &str| exe_name == n || arg0 == n;
    let has_env = |pre: &str| env.iter().any(|(k, _)| k.starts_with(pre));
    let kept_env = |keys: &[&str]| -> Vec<(String, String)> {
        env.iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .map(|(k, v)| ("env".to_string(), format!("{k}={v}")))
            .collect()
    };
    let tokens_of = |var: &str, keep: fn(&str) -> bool| -> Vec<(String, String)> {
        env.iter()
            .filter(|(k, _)| k == var)
            .flat_map(|(_, v)| {
                v.split_whitespace()
                    .filter(|t| keep(t))
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .map(|t| (format!("env {var}"), t))
            .collect()
    };
    let mut p = RuntimeProcess {
        pid,
        problems,
        ..Default::default()
    };
    if named("java") {
        p.runtime = "jvm";
        // The JVM applies JAVA_TOOL_OPTIONS, then JDK_JAVA_OPTIONS (launcher, 9+), then the
        // command line, then _JAVA_OPTIONS; the last setting of a flag wins.
        for v in JVM_ENV {
            p.settings.extend(tokens_of(v, jvm_token));
        }
        // Options end at the main class or -jar: later words are the program's.
        for a in args.iter().skip(1) {
            if !a.starts_with('-') || a == "-jar" {
                break;
            }
            if jvm_token(a) {
                p.settings.push(("cmdline".into(), a.clone()));
            }
        }
        p.settings.extend(tokens_of(JVM_ENV_LAST, jvm_token));
        p.version = exe.as_deref().and_then(|e| java_version(root, e));
    } else if named("node") || named("nodejs") {
        p.runtime = "node";
        p.settings.extend(tokens_of("NODE_OPTIONS", node_token));
        for a in args.iter().skip(1) {
            if !a.starts_with('-') {
                break;
            }
            if node_token(a) {
                p.settings.push(("cmdline".into(), a.clone()));
            }
        }
    } else if named("dotnet") || has_env("DOTNET_") || has_env("COMPlus_") {
        p.runtime = "dotnet";
        p.settings.extend(kept_env(&ENV_KEEP[2..]));
    } else if has_env("GOMEMLIMIT")
        || has_env("GOGC")
        || exe.as_deref().is_some_and(|e| is_go(root, e, pid))
    {
        p.runtime = "go";
        p.settings.extend(kept_env(&ENV_KEEP[..2]));
    } else {
        return None;
    }
    Some(p)
}

/// JAVA_VERSION from the `release` file of the JDK/JRE whose `bin/java` is `exe`.
fn java_version(root: &Root, exe: &Path) -> Option<String> {
    let home = exe.parent()?.parent()?;
    let t = root.read(&home.join("release")).ok()?;
    t.lines().find_map(|l| {
        l.strip_prefix("JAVA_VERSION=")
            .map(|v| v.trim_matches('"').to_string())
    })
}

/// Whether the executable is a Go program: its ELF notes (in the first pages, right after
/// the program headers) hold the `Go` build-ID note (cmd/link: .note.go.buildid, type 4).
/// A bounded read of /proc/PID/exe directly, not through [`Root::read_bytes`]: the whole
/// binary is not wanted, and it must not land in a capture.
fn is_go(root: &Root, _exe: &Path, pid: i32) -> bool {
    let Some(p) = root.real_path(Path::new(&format!("/proc/{pid}/exe"))) else {
        return false;
    };
    let Ok(f) = std::fs::File::open(p) else {
        return false;
    };
    let mut buf = Vec::with_capacity(16384);
    if f.take(16384).read_to_end(&mut buf).is_err() {
        return false;
    }
    // namesz = 4, descsz, type = 4 (ELF_NOTE_GOBUILDID_TAG), name "Go\0\0".
    buf.windows(16)
        .any(|w| w[0..4] == [4, 0, 0, 0] && w[8..12] == [4, 0, 0, 0] && &w[12..16] == b"Go\0\0")
}
