//! The command line: clap definitions and dispatch. Reads nothing itself: it opens a
//! [`Root`], asks `report`/`overview` for results and hands them to `render`.

use crate::cgroup::read::{self, Level};
use crate::cgroup::walk;
use crate::model::Hierarchy;
use crate::overview;
use crate::render::{self, Style};
use crate::report::{self, Options};
use crate::sys::Root;
use crate::target::{self, TargetError};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Exit codes (stable; scripts may rely on them).
pub mod exit {
    /// Success (a report may still list problems with single files).
    pub const OK: i32 = 0;
    /// Could not produce a report at all (no memory controller, unreadable capture, I/O).
    pub const FAILURE: i32 = 1;
    /// Bad usage or a target that does not resolve (unknown, ambiguous).
    pub const BAD_TARGET: i32 = 2;
}

const AFTER_HELP: &str = "\
TARGETS can be named as:
  /sys/fs/cgroup/memory/docker/ID   a cgroup directory (absolute)
  /kubepods/burstable/podUID/ID     a cgroup path within the memory hierarchy
  1234                              a PID: its memory cgroup
  3f2a9c                            a container ID or a unique prefix (docker, containerd, CRI-O, podman)
  0f2a4c6e-1b3d-...                 a pod UID (or prefix)
  kube-system/coredns-5d78c-abcde   a pod name, NAMESPACE/POD or POD (from /var/log/pods)
  nginx.service                     the name of a cgroup directory

READING THE NUMBERS
  usage        v1 memory.usage_in_bytes / v2 memory.current: everything charged, page cache included
  working set  usage − inactive_file: what kubectl top and the kubelet show
  file         page cache INCLUDING shmem (tmpfs, /dev/shm, SysV shm), which cannot be dropped
  reclaimable  clean page cache (+ reclaimable slab): dropped at the limit before any OOM kill
Every figure names its kernel file and formula; `n/a` means the kernel does not provide it.

EXIT CODES
  0 report printed (problems with single files are listed in it)
  1 no report possible (no memory controller, unreadable capture)
  2 bad usage, or a target that is unknown or ambiguous

EXAMPLES
  memlens                      containers on this node, largest first
  memlens --all --sort working-set
  memlens show 3f2a9c          one container, explained
  memlens ps 1234 --sort pss   the processes in PID 1234's cgroup
  memlens capture 3f2a9c -o bundle.tar.gz && memlens show 3f2a9c --from bundle.tar.gz";

/// memlens: how much memory does a container really use, why, and what happens next.
#[derive(Debug, Parser)]
#[command(name = "memlens", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    overview: OverviewArgs,
    #[command(flatten)]
    global: Global,
}

#[derive(Debug, Args, Clone)]
struct Global {
    /// Print JSON instead of tables (every size in bytes, null when unavailable).
    #[arg(long, global = true)]
    json: bool,
    /// Analyse a capture (directory or .tar.gz from `memlens capture`) instead of this system.
    #[arg(long, global = true, value_name = "CAPTURE")]
    from: Option<PathBuf>,
    /// Read the host's files under DIR (memlens in a container with the host's / mounted at
    /// DIR and the host PID namespace): DIR/sys, DIR/proc, DIR/var/log/pods, ...
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "from")]
    host_root: Option<PathBuf>,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorMode::Auto)]
    color: ColorMode,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ColorMode {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Parses `10s`, `500ms`, `1m`, or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (10s, 500ms, 1m)"))?;
    let d = v * mult;
    if !(0.05..=3600.0).contains(&d) {
        return Err(format!("{s:?}: the interval must be between 50ms and 1h"));
    }
    Ok(std::time::Duration::from_secs_f64(d))
}

fn init_logging(f: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match f {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

#[derive(Debug, Args, Clone)]
struct OverviewArgs {
    /// Show every memory cgroup, not only container-like ones.
    #[arg(long)]
    all: bool,
    /// Sort column: usage, limit, working-set, anon, file, shmem, kernel, swap, percent, oom, name.
    #[arg(long, default_value = "usage", value_parser = clap::builder::PossibleValuesParser::new(overview::SORT_KEYS))]
    sort: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The full breakdown of one cgroup: limits, every counter with its source, what it means
    /// (reclaimable, headroom to OOM), what other tools would show, and its processes.
    Show {
        /// cgroup path, PID, container ID (prefix), pod UID, pod name, or cgroup name.
        target: String,
        /// Include the processes of descendant cgroups.
        #[arg(short = 'r', long)]
        descendants: bool,
    },
    /// The processes in a cgroup with RSS (anon/file/shmem), PSS, USS and swap.
    Ps {
        /// cgroup path, PID, container ID (prefix), pod UID, pod name, or cgroup name.
        target: String,
        /// Include the processes of descendant cgroups.
        #[arg(short = 'r', long)]
        descendants: bool,
        /// Sort column.
        #[arg(long, default_value = "rss", value_parser = ["rss", "anon", "file", "shmem", "pss", "uss", "swap", "pid", "name"])]
        sort: String,
    },
    /// Save every file a report reads into a .tar.gz support bundle (analyse it with --from).
    Capture {
        /// What to capture (as for `show`); omit with --all.
        target: Option<String>,
        /// Capture every memory cgroup and its processes.
        #[arg(long, conflicts_with = "target")]
        all: bool,
        /// Include the processes of descendant cgroups.
        #[arg(short = 'r', long)]
        descendants: bool,
        /// Output file.
        #[arg(short, long, value_name = "FILE.tar.gz")]
        output: PathBuf,
    },
    /// Run a read-only Prometheus exporter and JSON API: /metrics (Prometheus text 0.0.4, or
    /// OpenMetrics when the Accept header asks), /healthz, /api/v1/overview[?all=1],
    /// /api/v1/cgroup?path=/x/y.
    Serve {
        /// Address to listen on (loopback by default; use 0.0.0.0:9753 in a DaemonSet).
        #[arg(long, default_value = "127.0.0.1:9753")]
        listen: std::net::SocketAddr,
        /// Collection interval (e.g. 10s, 500ms, 1m).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        interval: std::time::Duration,
        /// Log format on stderr (RUST_LOG sets the level; default info).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Internal: run a memory workload (used by the tests and `memlens lab`).
    #[command(name = "__workload", hide = true)]
    Workload {
        /// Steps.
        steps: Vec<String>,
    },
}

/// An error with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: i32,
    /// Message for stderr.
    pub message: String,
}

impl Failure {
    fn new(code: i32, message: impl std::fmt::Display) -> Self {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}

impl From<TargetError> for Failure {
    fn from(e: TargetError) -> Self {
        Failure::new(exit::BAD_TARGET, e)
    }
}

fn style(g: &Global) -> Style {
    Style {
        color: match g.color {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        },
    }
}

fn open_root(g: &Global) -> Result<Root, Failure> {
    if let Some(d) = &g.host_root {
        if !d.is_dir() {
            return Err(Failure::new(
                exit::FAILURE,
                format!("--host-root {}: not a directory", d.display()),
            ));
        }
        return Ok(Root::host(d));
    }
    match &g.from {
        None => Ok(Root::live()),
        Some(p) => Root::from_capture(p).map_err(|e| {
            Failure::new(
                exit::FAILURE,
                format!("cannot open capture {}: {e}", p.display()),
            )
        }),
    }
}

fn hierarchy(root: &Root) -> Result<Hierarchy, Failure> {
    report::hierarchy(root).map_err(|e| Failure::new(exit::FAILURE, e))
}

fn emit(s: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (memlens | head) is not an error worth a panic.
    let _ = out.write_all(s.as_bytes());
}

fn emit_json(v: &serde_json::Value) {
    emit(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ));
}

/// Runs the command line; returns the exit code.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let g = cli.global.clone();
    let st = style(&g);
    match cli.command {
        None => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let mut o = overview::collect(&root, &h, cli.overview.all);
            overview::sort(&mut o.rows, &cli.overview.sort);
            if g.json {
                emit_json(&render::json::overview(&o));
            } else {
                emit(&render::human::overview(&o, st));
            }
        }
        Some(Command::Show {
            target,
            descendants,
        }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let path = target::resolve(&root, &h, &target)?;
            let r = report::build(&root, &h, &path, Options { descendants }).map_err(|e| {
                Failure::new(
                    exit::BAD_TARGET,
                    format!("cgroup {path} vanished while being read: {e}"),
                )
            })?;
            if g.json {
                emit_json(&render::json::show(&r));
            } else {
                emit(&render::human::show(&r, st));
            }
        }
        Some(Command::Ps {
            target,
            descendants,
            sort,
        }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let path = target::resolve(&root, &h, &target)?;
            let mut r = report::build(&root, &h, &path, Options { descendants }).map_err(|e| {
                Failure::new(
                    exit::BAD_TARGET,
                    format!("cgroup {path} vanished while being read: {e}"),
                )
            })?;
            sort_procs(&mut r.processes, &sort);
            if g.json {
                emit_json(&render::json::ps(&r));
            } else {
                emit(&render::human::ps(&r, st));
            }
        }
        Some(Command::Capture {
            target,
            all,
            descendants,
            output,
        }) => {
            let root = open_root(&g)?.record();
            let h = hierarchy(&root)?;
            let label;
            if all {
                label = "--all".to_string();
                let _ = overview::collect(&root, &h, true);
                for p in walk::all_paths(&root, &h, "/") {
                    let _ = report::build(&root, &h, &p, Options { descendants: false });
                }
            } else {
                let Some(t) = target else {
                    return Err(Failure::new(
                        exit::BAD_TARGET,
                        "capture needs a TARGET or --all",
                    ));
                };
                let path = target::resolve(&root, &h, &t)?;
                label = t;
                let _ = overview::collect(&root, &h, true);
                report::build(&root, &h, &path, Options { descendants }).map_err(|e| {
                    Failure::new(exit::BAD_TARGET, format!("cgroup {path} vanished: {e}"))
                })?;
                // The children at full detail too, so `show` works on them from the capture.
                for p in walk::all_paths(&root, &h, &path).into_iter().skip(1) {
                    let _ = read::read_cgroup(&root, &h, &p, Level::Full);
                }
            }
            let (n, bad) = crate::capture::write(&root, &output, &label).map_err(|e| {
                Failure::new(
                    exit::FAILURE,
                    format!("cannot write {}: {e}", output.display()),
                )
            })?;
            if g.json {
                emit_json(&serde_json::json!({"output": output, "files": n, "unreadable": bad}));
            } else {
                emit(&format!(
                    "wrote {} ({n} files, {bad} unreadable and listed in {}); analyse with: memlens --from {} ...\n",
                    output.display(),
                    crate::sys::CAPTURE_META,
                    output.display()
                ));
            }
        }
        Some(Command::Serve {
            listen,
            interval,
            log_format,
        }) => {
            init_logging(log_format);
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            crate::serve::run(root, h, crate::serve::ServeOptions { listen, interval })
                .map_err(|e| Failure::new(exit::FAILURE, format!("serve on {listen}: {e}")))?;
        }
        Some(Command::Workload { steps }) => {
            crate::workload::run(&steps).map_err(|e| Failure::new(exit::FAILURE, e))?;
        }
    }
    Ok(())
}

fn sort_procs(p: &mut [crate::model::Process], key: &str) {
    let k = |x: &crate::model::Process| match key {
        "anon" => x.rss_anon_bytes,
        "file" => x.rss_file_bytes,
        "shmem" => x.rss_shmem_bytes,
        "pss" => x.pss_bytes,
        "uss" => x.uss_bytes,
        "swap" => x.swap_bytes,
        _ => x.rss_bytes,
    };
    match key {
        "pid" => p.sort_by_key(|x| x.pid),
        "name" => p.sort_by(|a, b| a.comm.cmp(&b.comm)),
        _ => p.sort_by(|a, b| k(b).cmp(&k(a)).then(a.pid.cmp(&b.pid))),
    }
}
